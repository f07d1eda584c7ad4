"""Attention scorers over encoder memory: additive (Bahdanau) and multiplicative (Luong).

Shapes: N sentences (rows), T query steps, S source positions, M memory size,
H query size, A attention size. Keys are projected once per batch by
`project_keys`; `forward` only scores queries against them. A search also asks
once per batch for `prepare(keys)` and then scores with `prepared_weights`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from nmt import native

ATTENTIONS = ("bahdanau", "luong_dot", "luong_general", "luong_concat", "none")


class Attention(nn.Module):
    """Base: masked softmax over scores and the weighted sum of memory."""

    def project_keys(self, memory: Tensor) -> Tensor:
        """memory (N, S, M) -> keys (N, S, K), computed once per batch."""
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (N, T, H), keys (N, S, K) -> scores (N, T, S)."""
        raise NotImplementedError

    def weights(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        """query (N, T, H), keys (N, S, K), mask (N, S) -> weights (N, T, S) float32."""
        return _masked_softmax(self.score(query, keys), mask)

    def prepare(self, keys: Tensor) -> Tensor:
        """keys (N, S, K) -> per-sentence tensor (N, S, ·) that `prepared_weights`
        reuses at every search step; (N, S, 0) when the attention needs none."""
        return keys[:, :, :0]

    def query_weight(self) -> Tensor | None:
        """W (Q, H) with project_query(q) == (q W^T).float(), or None when
        `project_query` is the identity (a caller may then fuse W into a larger
        matrix product of the same input)."""
        return None

    def project_query(self, query: Tensor) -> Tensor:
        """query (N, T, H) -> what `prepared_weights` takes (N, T, Q)."""
        return query

    def prepared_weights(
        self, projected: Tensor, keys: Tensor, prepared: Tensor, mask: Tensor
    ) -> Tensor:
        """`weights` without gradients from project_query(query) (N, T, Q) and
        `prepare(keys)`; same result."""
        return self.weights(projected, keys, mask)

    def prepared_mix(
        self,
        projected: Tensor,
        keys: Tensor,
        prepared: Tensor,
        mask: Tensor,
        values: Tensor,
        offsets: Tensor | None = None,
        index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """`prepared_weights` (N, T, S) and their mix of per-sentence values
        (N, S, G) -> (N, T, G) in the values' dtype or float32; plus, when given,
        rows `index` (N*T,) of `offsets` (K, G) float32."""
        weights = self.prepared_weights(projected, keys, prepared, mask)
        mixed = torch.bmm(weights.to(values.dtype), values)
        if offsets is None:
            return weights, mixed
        return weights, mixed + offsets.index_select(0, index).view_as(mixed)

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
            context (N, T, M) and weights (N, T, S) summing to 1 over unmasked positions.
        """
        weights = self.weights(query, keys, mask)  # (N, T, S)
        context = torch.bmm(weights.to(memory.dtype), memory)  # (N, T, M)
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau et al. (2015) eq. 6: score = v^T tanh(W_q q + W_k k).

    Also Luong et al. (2015) "concat" (same form, applied to the current state).
    Computed as tanh(x) = 2 sigmoid(2x) - 1 in float32: the (N, T, S, A) energy is
    the costliest tensor of a decoder step, and on CPU float32 sigmoid is ~9x
    faster than float32 tanh and ~4x faster than bfloat16 tanh (and more exact).
    """

    def __init__(self, *, query_size: int, memory_size: int, attn_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, attn_size, bias=False)
        self.query_proj = nn.Linear(query_size, attn_size, bias=False)
        self.v = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        """memory (N, S, M) -> 2 W_k memory (N, S, A), float32."""
        return 2.0 * self.key_proj(memory).float()

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return self._score(self.project_query(query), keys)

    def query_weight(self) -> Tensor:
        return 2.0 * self.query_proj.weight  # (A, H)

    def project_query(self, query: Tensor) -> Tensor:
        """query (N, T, H) -> 2 W_q query (N, T, A), float32."""
        return 2.0 * self.query_proj(query).float()

    def _score(self, q: Tensor, keys: Tensor) -> Tensor:
        """q = 2 W_q query (N, T, A) float32, keys (N, S, A) -> scores (N, T, S)."""
        v = self.v.weight.float()  # (1, A)
        with torch.autocast(device_type=q.device.type, enabled=False):
            if torch.is_grad_enabled():
                energy = (q[:, :, None, :] + keys[:, None, :, :]).sigmoid_()
                scores = (energy @ (2.0 * v).t()).squeeze(-1)  # (N, T, S)
            else:
                scores = _additive_scores(q, keys, 2.0 * v.t())
        return scores - v.sum()  # v^T (2 sigmoid(2x) - 1)

    def prepare(self, keys: Tensor) -> Tensor:
        """exp(-keys) (N, S, A), or (N, S, 0) when some |key| > EXP_LIMIT."""
        if keys.numel() == 0 or float(keys.detach().abs().amax()) > EXP_LIMIT:
            return keys[:, :, :0]
        return torch.exp(-keys)

    def prepared_weights(
        self, projected: Tensor, keys: Tensor, prepared: Tensor, mask: Tensor
    ) -> Tensor:
        """With x = q + k (both doubled), 2 v_a sigmoid(x_a) = 1 / (c_a + p_a e_a)
        for c = 1 / 2v, p = exp(-q) c, e = exp(-k) = `prepared`: a product, a sum
        and a reciprocal per energy element instead of an exp. Needs |q|, |k| <=
        EXP_LIMIT and no gradients (else the sigmoid form). Where p e overflows
        (large -x) the term it drops is below float32's smallest normal number,
        except where p itself does (|v_a| < exp(-q_a) / 6.8e38 < 8.1e-5): that
        term becomes 0 instead of at most 2 |v_a| < 1.7e-4."""
        q = projected.float()  # (N, T, A)
        if (
            prepared.size(-1) == 0
            or torch.is_grad_enabled()
            or float(q.detach().abs().amax()) > EXP_LIMIT
        ):
            return _masked_softmax(self._score(q, keys), mask)
        v = self.v.weight.float()[0]  # (A,)
        with torch.autocast(device_type=q.device.type, enabled=False):
            inverse = 1.0 / (2.0 * v)  # (A,) +-inf where v is +-0: the term is 0
            scores = _exp_scores(torch.exp(-q) * inverse, prepared, inverse)
        return _masked_softmax(scores - v.sum(), mask)

    def prepared_mix(
        self,
        projected: Tensor,
        keys: Tensor,
        prepared: Tensor,
        mask: Tensor,
        values: Tensor,
        offsets: Tensor | None = None,
        index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """On a CPU one native pass (`nmt.native.additive_mix`: the scores of
        `prepared_weights`, softmax, mix and offsets, float32 throughout) where it
        can run."""
        if prepared.size(-1) > 0:
            v = self.v.weight[0].float()  # (A,)
            fused = native.additive_mix(
                projected, prepared, v, mask, values, offsets, index
            )
            if fused is not None:
                return fused
        return super().prepared_mix(
            projected, keys, prepared, mask, values, offsets, index
        )


# energy elements per chunk in `_additive_scores`: 4 MiB of float32 stays in the
# cache, where the add, sigmoid and product run ~2x faster than on the whole
# (N, T, S, A) tensor (2.6 vs 5.2 ms at 64 sentences x 5 beams x 35 positions;
# smaller chunks lose it again to per-call overhead)
ENERGY_CHUNK = 1 << 20


# |q|, |k| up to this keep exp(-q), exp(-k) normal float32 numbers in
# `prepared_weights` (e^80 = 5.5e34 < 3.4e38)
EXP_LIMIT = 80.0


def _masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """scores (N, T, S), mask (N, S) -> float32 softmax over the unmasked S."""
    scores = scores.float().masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1)


def _energy_chunks(q: Tensor, keys: Tensor) -> Iterator[tuple[int, int, Tensor]]:
    """(start, stop, buffer (n', T, S, A)) for runs of sentences whose energy fits
    ENERGY_CHUNK elements; q (N, T, A), keys (N, S, A); one buffer is reused."""
    n, steps, size = q.shape
    src = keys.size(1)
    per = max(1, ENERGY_CHUNK // max(1, steps * src * size))  # sentences per chunk
    buffer = q.new_empty(min(per, n), steps, src, size)
    for start in range(0, n, per):
        stop = min(n, start + per)
        yield start, stop, buffer[: stop - start]


def _exp_scores(p: Tensor, exp_keys: Tensor, c: Tensor) -> Tensor:
    """sum_a 1 / (c_a + p_a e_a) without gradients, a few sentences at a time.

    p (N, T, A), exp_keys e (N, S, A), c (A,) float32 -> (N, T, S).
    """
    scores = p.new_empty(p.size(0), p.size(1), exp_keys.size(1))
    for start, stop, terms in _energy_chunks(p, exp_keys):
        torch.addcmul(c, p[start:stop, :, None], exp_keys[start:stop, None], out=terms)
        torch.sum(terms.reciprocal_(), dim=-1, out=scores[start:stop])
    return scores


def _additive_scores(q: Tensor, keys: Tensor, v: Tensor) -> Tensor:
    """v^T sigmoid(q + k) without gradients, a few sentences at a time.

    q (N, T, A), keys (N, S, A), v (A, 1) float32 -> scores (N, T, S).
    """
    scores = q.new_empty(q.size(0), q.size(1), keys.size(1), 1)
    for start, stop, energy in _energy_chunks(q, keys):
        torch.add(q[start:stop, :, None], keys[start:stop, None], out=energy)
        torch.matmul(energy.sigmoid_(), v, out=scores[start:stop])
    return scores.squeeze(-1)  # (N, T, S)


class DotAttention(Attention):
    """Luong et al. (2015) eq. 8 "dot": score = q^T k (needs H == M)."""

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
    """Luong et al. (2015) eq. 8 "general": score = q^T W k, with W k precomputed."""

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
