"""Pure tensor functions used by the searches: length penalty, token masks, filters.

Nothing here knows about models, beams or configs; every function maps tensors to
new tensors (inputs are never modified). Shapes: R rows, V vocab, T steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

NEG_INF = float("-inf")


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, eq. 14).

    A hypothesis score is log_prob / lp, so alpha > 0 favours longer hypotheses,
    alpha < 0 shorter ones, and alpha = 0 gives lp = 1 (raw log-prob).

    Args:
        lengths: (...) hypothesis lengths |Y|.
        alpha: penalty strength.

    Returns:
        (...) floating penalties (float32 unless `lengths` is already floating).
    """
    lengths = lengths if lengths.is_floating_point() else lengths.to(torch.float32)
    return ((5.0 + lengths) / 6.0) ** alpha


def forbid_tokens(log_probs: Tensor, token_ids: Sequence[int]) -> Tensor:
    """Set the given token columns to -inf in every row.

    Args:
        log_probs: (R, V) scores.
        token_ids: vocabulary ids to forbid (e.g. PAD, or EOS before `min_len`).

    Returns:
        (R, V) scores with those columns at -inf.
    """
    if not token_ids:
        return log_probs
    index = torch.tensor(list(token_ids), dtype=torch.long, device=log_probs.device)
    return log_probs.index_fill(1, index, NEG_INF)


def forbid_candidates(
    values: Tensor, tokens: Tensor, token_ids: Sequence[int]
) -> Tensor:
    """Set the candidates whose token is one of `token_ids` to -inf.

    `forbid_tokens` for a row's best candidates (from `top_k_rows`) instead of
    its whole vocabulary: the k best allowed tokens of a row lie among its
    k + len(token_ids) best.

    Args:
        values: (R, K) candidate scores.
        tokens: (R, K) their token ids.
        token_ids: vocabulary ids to forbid.

    Returns:
        (R, K) scores with the forbidden candidates at -inf.
    """
    if not token_ids:
        return values
    index = torch.tensor(list(token_ids), dtype=tokens.dtype, device=tokens.device)
    return values.masked_fill(torch.isin(tokens, index), NEG_INF)


def ban_ngrams(log_probs: Tensor, history: Tensor, n: int) -> Tensor:
    """Forbid every token that would repeat an n-gram already present in a row's history.

    Args:
        log_probs: (R, V) scores for the next token.
        history: (R, T) tokens generated so far, one row per hypothesis.
        n: n-gram size; n <= 0 disables the ban, n = 1 bans every seen token.

    Returns:
        (R, V) scores with the banned tokens at -inf.
    """
    steps = history.size(1)
    if n <= 0 or steps < n:
        return log_probs
    windows = history.unfold(1, n, 1)  # (R, T-n+1, n)
    key = history[:, steps - (n - 1) :]  # (R, n-1) the last n-1 tokens
    seen = (windows[:, :, : n - 1] == key.unsqueeze(1)).all(dim=2)  # (R, T-n+1)
    hits = torch.zeros_like(log_probs).scatter_add_(
        1, windows[:, :, -1], seen.to(log_probs.dtype)
    )
    return log_probs.masked_fill(hits > 0, NEG_INF)


def force_tokens(
    log_probs: Tensor, forced: Tensor, source: Tensor | None = None
) -> Tensor:
    """Keep only the forced token's score in rows that have one (forced prefix).

    The forced token keeps its own log-prob whatever its rank, so it counts in the
    hypothesis score; every other token of that row becomes -inf. Its log-prob is
    read from `source` when given (the log-probs before bans such as
    `ban_ngrams`: a forced token is never banned), else from `log_probs`.

    Args:
        log_probs: (R, V) scores.
        forced: (R,) long token id per row, or -1 for rows that are free.
        source: optional (R, V) scores the forced tokens' values come from.

    Returns:
        (R, V) scores.
    """
    is_forced = forced >= 0  # (R,)
    if not bool(is_forced.any()):
        return log_probs
    source = log_probs if source is None else source
    index = forced.clamp(min=0).unsqueeze(1)  # (R, 1)
    only = torch.full_like(log_probs, NEG_INF).scatter(
        1, index, source.gather(1, index)
    )
    return torch.where(is_forced.unsqueeze(1), only, log_probs)


def keep_top_k(logits: Tensor, k: int) -> Tensor:
    """Set all but the k highest scores of each row to -inf (top-k sampling).

    Args:
        logits: (R, V) scores.
        k: tokens kept per row; k <= 0 or k >= V keeps everything.

    Returns:
        (R, V) scores with exactly min(k, V) entries per row left untouched.
    """
    if k <= 0 or k >= logits.size(1):
        return logits
    values, index = logits.topk(k, dim=1)  # (R, k)
    return torch.full_like(logits, NEG_INF).scatter(1, index, values)


def keep_top_p(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of best tokens whose probability reaches p.

    Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration". The most
    likely token is always kept.

    Args:
        logits: (R, V) unnormalised scores.
        p: probability mass to keep, in (0, 1]; p >= 1 keeps everything.

    Returns:
        (R, V) scores with the tokens outside the nucleus at -inf.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=1, descending=True)  # (R, V)
    probs = sorted_logits.softmax(dim=1)  # (R, V)
    mass_before = probs.cumsum(dim=1) - probs  # (R, V) mass of strictly better tokens
    sorted_drop = mass_before >= p  # (R, V)
    drop = torch.zeros_like(sorted_drop).scatter(
        1, order, sorted_drop
    )  # (R, V) vocab order
    return logits.masked_fill(drop, NEG_INF)


def prefix_table(prefix: Sequence[Sequence[int]] | None, n: int) -> Tensor:
    """Forced prefix token ids, one list per sentence, as an (N, P) long table.

    Args:
        prefix: N token lists (possibly empty), or None for no prefix.
        n: number of sentences N.

    Returns:
        (N, P) long, P the longest prefix, padded with -1 (the `force_tokens` "free").
    """
    if prefix is None:
        return torch.full((n, 0), -1, dtype=torch.long)
    if len(prefix) != n:
        raise ValueError(
            f"prefix needs one token list per sentence ({n}), got {len(prefix)}"
        )
    table = torch.full((n, max(map(len, prefix), default=0)), -1, dtype=torch.long)
    for i, tokens in enumerate(prefix):
        if any(t < 0 for t in tokens):
            raise ValueError(f"prefix token ids must be >= 0, got {list(tokens)}")
        table[i, : len(tokens)] = torch.tensor(list(tokens), dtype=torch.long)
    return table


def top_k_rows(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best entries of each row, best first, exact ties going to the lower
    column (as `argmax` breaks them), so a row's result never depends on the other
    rows of its batch.

    `topk` is asked for k + 1 entries: a row whose k-th and (k+1)-th best differ
    has a unique set of k best columns, only to be ordered; a row where they tie
    (rare but for -inf, as in banned tokens) takes its k from a stable sort.

    Args:
        scores: (R, V) scores.
        k: entries per row, 1 <= k <= V.

    Returns:
        values (R, k) sorted descending and their column indices (R, k).
    """
    values, columns = scores.topk(min(k + 1, scores.size(1)), dim=1)  # (R, k + 1)
    columns = columns[:, :k]
    if values.size(1) > k:
        tied = (values[:, k - 1] == values[:, k]).nonzero().squeeze(1)  # (T,)
        if tied.numel() > 0:
            columns = columns.clone()
            ranked = scores[tied].sort(dim=1, descending=True, stable=True).indices
            columns[tied] = ranked[:, :k]
    columns = columns.sort(dim=1).values  # ascending: the stable sort below then
    values = scores.gather(1, columns)  # orders equal values by column
    order = values.sort(dim=1, descending=True, stable=True).indices  # (R, k)
    return values.gather(1, order), columns.gather(1, order)


def top_log_probs(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each row's k best log-probs, best first: `top_k_rows(log_softmax(scores), k)`.

    Args:
        scores: (R, V) logits or log-probs (a log-softmax leaves log-probs as they
            are, up to rounding), float32 or bfloat16.
        k: entries per row, 1 <= k <= V.

    Returns:
        values (R, k) float32 and their column indices (R, k).
    """
    return top_k_rows(log_softmax(scores), k)


def log_softmax(scores: Tensor) -> Tensor:
    """(R, V) logits or log-probs -> float32 log-probs; a row of -inf stays -inf
    (a stepper's dead end), where `F.log_softmax` would give NaN."""
    log_probs = F.log_softmax(scores.float(), dim=1)
    dead = scores.amax(dim=1, keepdim=True) == NEG_INF  # (R, 1)
    return log_probs.masked_fill(dead, NEG_INF)
