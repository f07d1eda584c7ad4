"""Attention for a search step, faster than `nmt.models.attention` and equal to it.

- Additive (Bahdanau) attention runs on doubled projections, q = 2 W_q query and
  k = 2 W_k memory, as v^T tanh(x / 2) = v^T (2 sigmoid(x) - 1): on CPUs float32
  sigmoid is several times faster than tanh. With e = exp(-k) computed once per
  sentence (`prepare`), 2 v_a sigmoid(q_a + k_a) = 1 / (c_a + p_a e_a) with
  c = 1 / 2v and p = exp(-q) c: a product, a sum and a reciprocal per energy
  element instead of an exp. It needs |q|, |k| <= EXP_LIMIT, else the sigmoid form.
- `mix` returns the weights and their mix of per-sentence values (N, S, G) (the
  context already multiplied by the decoder's weights, `nmt.fast.seq2seq`).

Shapes: N sentences, W queries (beams) per sentence, S source positions,
A attention size, Q projected query size, G values size, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from nmt.models.attention import AdditiveAttention, Attention, masked_softmax

# |q|, |k| up to this keep exp(-q), exp(-k) normal float32 numbers (e^80 < 3.4e38)
EXP_LIMIT = 80.0
# energy elements per chunk: 4 MiB of float32, which stays in the cache
ENERGY_CHUNK = 1 << 20


def additive(attention: Attention | None) -> bool:
    return isinstance(attention, AdditiveAttention)


def project_keys(attention: Attention, memory: Tensor) -> Tensor:
    """memory (N, S, M) -> keys (N, S, K): 2 W_k memory (float32) for additive
    attention, else the reference's keys."""
    if additive(attention):
        return 2.0 * attention.key_proj(memory).float()
    return attention.project_keys(memory)


def query_weight(attention: Attention) -> Tensor | None:
    """W (Q, H) with project_query(q) == (q W^T).float(), or None when
    `project_query` is the identity."""
    return 2.0 * attention.query_proj.weight if additive(attention) else None


def project_query(attention: Attention, query: Tensor) -> Tensor:
    """query (..., H) -> what `mix` takes (..., Q)."""
    if additive(attention):
        return 2.0 * attention.query_proj(query).float()
    return query


def prepare(attention: Attention, keys: Tensor) -> Tensor | None:
    """exp(-keys) (N, S, A) for additive attention whose |keys| <= EXP_LIMIT,
    else None."""
    if not additive(attention) or keys.numel() == 0:
        return None
    if float(keys.abs().amax()) > EXP_LIMIT:
        return None
    return torch.exp(-keys)


def mix(
    attention: Attention,
    q: Tensor,
    keys: Tensor,
    prepared: Tensor | None,
    mask: Tensor,
    values: Tensor,
    offsets: Tensor | None = None,
    index: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Weights (N, W, S) float32 of the queries q (N, W, Q) from `project_query`,
    and their mix of values (N, S, G) -> (N, W, G), plus rows `index` (N*W,) of
    `offsets` (V, G) float32 when given."""
    weights = _weights(attention, q, keys, prepared, mask)
    mixed = torch.bmm(weights.to(values.dtype), values)  # (N, W, G)
    if offsets is None:
        return weights, mixed
    return weights, mixed + offsets.index_select(0, index).view_as(mixed)


def _weights(
    attention: Attention,
    q: Tensor,
    keys: Tensor,
    prepared: Tensor | None,
    mask: Tensor,
) -> Tensor:
    if not additive(attention):
        return masked_softmax(attention.score(q, keys), mask)
    q = q.float()  # (N, W, A)
    v = attention.v.weight.float()[0]  # (A,)
    with torch.autocast(device_type=q.device.type, enabled=False):
        if prepared is None or float(q.abs().amax()) > EXP_LIMIT:
            scores = _sigmoid_scores(q, keys, 2.0 * v[:, None])
        else:
            inverse = 1.0 / (2.0 * v)  # (A,) +-inf where v is +-0: the term is 0
            scores = _exp_scores(torch.exp(-q) * inverse, prepared, inverse)
    return masked_softmax(scores - v.sum(), mask)  # v^T (2 sigmoid - 1)


def _energy_chunks(q: Tensor, keys: Tensor) -> Iterator[tuple[int, int, Tensor]]:
    """(start, stop, buffer (n', W, S, A)) for runs of sentences whose energy fits
    ENERGY_CHUNK elements; q (N, W, A), keys (N, S, A); one buffer is reused."""
    n, width, size = q.shape
    src = keys.size(1)
    per = max(1, ENERGY_CHUNK // max(1, width * src * size))  # sentences per chunk
    buffer = q.new_empty(min(per, n), width, src, size)
    for start in range(0, n, per):
        stop = min(n, start + per)
        yield start, stop, buffer[: stop - start]


def _exp_scores(p: Tensor, exp_keys: Tensor, c: Tensor) -> Tensor:
    """sum_a 1 / (c_a + p_a e_a): p (N, W, A), exp_keys e (N, S, A), c (A,)
    float32 -> (N, W, S)."""
    scores = p.new_empty(p.size(0), p.size(1), exp_keys.size(1))
    for start, stop, terms in _energy_chunks(p, exp_keys):
        torch.addcmul(c, p[start:stop, :, None], exp_keys[start:stop, None], out=terms)
        torch.sum(terms.reciprocal_(), dim=-1, out=scores[start:stop])
    return scores


def _sigmoid_scores(q: Tensor, keys: Tensor, v: Tensor) -> Tensor:
    """v^T sigmoid(q + k): q (N, W, A), keys (N, S, A), v (A, 1) float32 ->
    (N, W, S)."""
    scores = q.new_empty(q.size(0), q.size(1), keys.size(1), 1)
    for start, stop, energy in _energy_chunks(q, keys):
        torch.add(q[start:stop, :, None], keys[start:stop, None], out=energy)
        torch.matmul(energy.sigmoid_(), v, out=scores[start:stop])
    return scores.squeeze(-1)  # (N, W, S)
