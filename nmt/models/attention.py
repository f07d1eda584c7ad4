"""Attention over encoder memory, as the papers write it: additive (Bahdanau et al.
2015) and multiplicative (Luong et al. 2015). The reference: decoding speed-ups of
these formulas live in `nmt.fast.attention`, tested equal to them.

Shapes: N sentences, T queries per sentence, S source positions, M memory size,
H query size, K key size (A for additive attention).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ATTENTIONS = ("bahdanau", "luong_dot", "luong_general", "luong_concat", "none")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """scores (N, T, S), mask (N, S) True at real positions -> float32 weights
    (N, T, S) summing to 1 over the unmasked S."""
    scores = scores.float().masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1)


class Attention(nn.Module):
    """a = softmax(score(q, k)) over the source; context c = sum_s a_s m_s."""

    def project_keys(self, memory: Tensor) -> Tensor:
        """memory (N, S, M) -> keys (N, S, K), computed once per batch."""
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (N, T, H), keys (N, S, K) -> scores (N, T, S)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Attend.

        Args:
            query: (N, T, H) decoder states.
            keys: (N, S, K) from `project_keys`.
            memory: (N, S, M) encoder outputs (the values).
            mask: (N, S) bool, True at real (non-pad) source positions.

        Returns:
            context (N, T, M) and weights (N, T, S) float32.
        """
        weights = masked_softmax(self.score(query, keys), mask)  # (N, T, S)
        context = torch.bmm(weights.to(memory.dtype), memory)  # (N, T, M)
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau et al. (2015) eq. 6: score(q, k) = v^T tanh(W_q q + W_k k).

    Also Luong et al. (2015) "concat" (the same form on the current state). The
    (N, T, S, A) energy runs in float32, also under bf16 autocast.
    """

    def __init__(self, *, query_size: int, memory_size: int, attn_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, attn_size, bias=False)  # W_k
        self.query_proj = nn.Linear(query_size, attn_size, bias=False)  # W_q
        self.v = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        """memory (N, S, M) -> W_k memory (N, S, A) float32."""
        return self.key_proj(memory).float()

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query).float()  # (N, T, A)
        with torch.autocast(query.device.type, enabled=False):
            energy = torch.tanh(q[:, :, None, :] + keys[:, None, :, :])  # (N,T,S,A)
            return (energy @ self.v.weight.float().t()).squeeze(-1)  # (N, T, S)


class DotAttention(Attention):
    """Luong et al. (2015) eq. 8 "dot": score(q, k) = q^T k (needs H == M)."""

    def __init__(self, *, query_size: int, memory_size: int) -> None:
        super().__init__()
        if query_size != memory_size:
            raise ValueError(
                f"luong_dot needs decoder hidden size ({query_size}) == encoder output "
                f"size ({memory_size}); use luong_general or a sum/ave merge mode"
            )

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (N, T, S)


class GeneralAttention(Attention):
    """Luong et al. (2015) eq. 8 "general": score(q, k) = q^T W k; keys = W k."""

    def __init__(self, *, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, query_size, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (N, S, H)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (N, T, S)


def build_attention(
    kind: str, *, query_size: int, memory_size: int, attn_size: int
) -> Attention | None:
    """Attention module for `kind` (one of ATTENTIONS); None for "none"."""
    if kind in ("bahdanau", "luong_concat"):
        return AdditiveAttention(
            query_size=query_size, memory_size=memory_size, attn_size=attn_size
        )
    if kind == "luong_dot":
        return DotAttention(query_size=query_size, memory_size=memory_size)
    if kind == "luong_general":
        return GeneralAttention(query_size=query_size, memory_size=memory_size)
    if kind == "none":
        return None
    raise ValueError(
        f"unknown attention '{kind}'; choose one of {', '.join(ATTENTIONS)}"
    )
