"""The one beam search for seq2seq and LM (width 1 is greedy) over a `Stepper`.

Its settings, its results and the step loop stay in one module (longer than most
here) because they are read together: every setting is honoured in `_Search`.
Shapes: N sentences, A sentences still searching, B beam width, V vocab, S source
length, T steps. Rows are flat: row a*B + b is sentence a, beam b.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.search import scoring
from nmt.search.scoring import NEG_INF
from nmt.search.stepper import Stepper, first_tensor, inference, special_tokens


@dataclass
class BeamConfig:
    """Beam search settings (Hydra group `search`); beam_size=1 is greedy decoding."""

    beam_size: int = 5  # B: hypotheses kept alive per sentence
    nbest: int = 1  # hypotheses returned per sentence, 1 <= nbest <= beam_size
    len_penalty: float = 1.0  # GNMT length penalty alpha; 0 ranks by raw log-prob
    max_len_a: float = 1.5  # max target tokens = int(a * src_len + b)
    max_len_b: int = 10  # constant part of the max target length
    # hard cap on target tokens, whatever a and b say; 0 = none (nmt.translate,
    # nmt.evaluate and the REPL then take the model's: its data.max_len)
    max_len: int = 0
    # source subwords translated per line, longer lines are cut with a warning (used
    # by callers); 0 = the model's data.max_len, the longest it was trained on
    max_src_len: int = 0
    min_len: int = 0  # EOS forbidden until a hypothesis has this many tokens
    no_repeat_ngram: int = 0  # never repeat an n-gram of this size; 0 = off
    batch_size: int = 64  # sentences per batch (used by callers, not by beam_search)
    # batches decoded at once by that many threads sharing the torch threads (used
    # by callers); 0 = auto: 2 on a CPU with >= 2 threads, else 1
    workers: int = 0
    prefix: str = ""  # forced target prefix as text (callers tokenize it)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for settings the search cannot honour."""
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = auto), got {self.workers}")
        if not 1 <= self.nbest <= self.beam_size:
            raise ValueError(
                f"nbest must be between 1 and beam_size ({self.beam_size}), got "
                f"{self.nbest}: the search keeps only beam_size hypotheses per sentence"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not math.isfinite(self.len_penalty):
            raise ValueError(
                f"len_penalty must be a finite number, got {self.len_penalty}"
            )
        if not (math.isfinite(self.max_len_a) and self.max_len_a >= 0):
            raise ValueError(f"max_len_a must be finite and >= 0, got {self.max_len_a}")
        for name in ("max_len", "max_src_len", "min_len", "no_repeat_ngram"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Hypothesis:
    """One finished hypothesis; the length |Y| counts EOS when it ended with EOS."""

    tokens: tuple[int, ...]  # without BOS and EOS; includes forced prefix tokens
    log_prob: float  # sum of the log-probs of tokens (and of EOS if it ended with EOS)
    score: float  # log_prob / length_penalty(|Y|, alpha)
    # (T, S) with T = len(tokens): row i is the step that produced tokens[i]; the
    # EOS step is left out. None when the stepper has no attention.
    attention: Tensor | None = field(default=None, compare=False, repr=False)


def beam_search(
    stepper: Stepper,
    inputs: Any,
    src_lengths: Tensor,
    cfg: BeamConfig,
    prefix: Sequence[Sequence[int]] | None = None,
    *,
    deadline: SupportsFloat | None = None,
    keep_attention: bool = True,
) -> list[list[Hypothesis]]:
    """Batched beam search over N sentences x B beams, one `stepper.step` per step.

    A sentence stops when it has B finished hypotheses (fairseq's rule), earlier
    when its nbest finished ones can no longer be beaten by any live hypothesis (a
    bound using the length penalty at its max length: with a length penalty the
    best beam's EOS alone never stops it), when its live beams reach its max length
    (they are then kept without EOS), when every candidate is -inf (live beams
    kept as they are), or when the `deadline` has passed (live beams kept as they
    are, for all sentences). PAD and BOS are never generated. Exact ties go to the
    lower token id within a row (as `argmax`, `scoring.top_k_rows`), then to the
    lower beam, so width 1 is argmax decoding and a sentence's search does not depend on
    its batch mates (its scores may still differ by the rounding of the stepper's
    matrix products at another batch size).

    Args:
        stepper: the model, seen only through the `Stepper` protocol.
        inputs: passed unchanged to `stepper.init_state(inputs, cfg.beam_size)`.
        src_lengths: (N,) long source lengths; sentence n has at most
            int(max_len_a * src_lengths[n] + max_len_b) tokens, and at most
            cfg.max_len when that is not 0 (never fewer than its prefix). An LM
            passes zeros, so max_len_b is its length. Attention is cut to
            (T, src_lengths[n]) when that is positive.
        cfg: search settings; cfg.batch_size, cfg.workers and cfg.prefix are for
            callers.
        prefix: optional forced tokens, one list per sentence (length N; use [] for
            none), fed after BOS whatever their probability (no_repeat_ngram does
            not ban them); their log-probs count. Ids must be ordinary tokens of
            the vocabulary (not PAD/BOS/EOS), else ValueError. A forced token the
            model gives probability 0 (-inf) leaves no candidate: the sentence
            ends there, as when every candidate is -inf.
        deadline: a `time.monotonic()` time (or what `float()` reads as one, such
            as a `stepper.Deadline`); checked before each step, so the search
            overruns it by at most one step.
        keep_attention: False leaves `Hypothesis.attention` None, and saves
            keeping each beam's attention history (copied at every step: time and
            memory grow with T * T * S).

    Returns:
        Per sentence, cfg.nbest distinct hypotheses (fewer only if fewer exist, never
        none) sorted best-first by score.
    """
    cfg.validate()
    with inference(stepper):
        search = _Search(stepper, cfg, src_lengths, prefix, deadline, keep_attention)
        return search.run(inputs)


@dataclass
class _Beams:
    """Live hypotheses of the A sentences still searching (t tokens so far).

    W rows per sentence: 1 before the first step, then the beam width B.
    """

    sentences: Tensor  # (A,) index of each sentence in the input batch
    scores: Tensor  # (A, W) raw cumulative log-probs, -inf for empty slots
    tokens: Tensor  # (A, W, t) generated tokens
    attention: Tensor | None  # (A*W, t, S) attention history, None without attention

    def select(self, keep: Tensor) -> _Beams:
        rows = keep.repeat_interleave(self.scores.size(1))  # (A*B,)
        attention = None if self.attention is None else self.attention[rows]
        return _Beams(
            self.sentences[keep], self.scores[keep], self.tokens[keep], attention
        )


class _Search:
    """State of one `beam_search` call: settings, finished lists and the step loop."""

    def __init__(
        self,
        stepper: Stepper,
        cfg: BeamConfig,
        src_lengths: Tensor,
        prefix: Sequence[Sequence[int]] | None,
        deadline: SupportsFloat | None,
        keep_attention: bool,
    ) -> None:
        self.stepper, self.cfg, self.width = stepper, cfg, cfg.beam_size
        self.deadline, self.keep_attention = deadline, keep_attention
        self.src_lengths: list[int] = src_lengths.tolist()
        self.forced = scoring.prefix_table(prefix, len(self.src_lengths))  # (N, P)
        specials = {stepper.pad_id, stepper.bos_id, stepper.eos_id}
        if bad := sorted(specials & set(self.forced[self.forced >= 0].tolist())):
            raise ValueError(
                f"prefix tokens must be ordinary tokens, not PAD/BOS/EOS (ids {bad})"
            )
        prefix_lens = (self.forced >= 0).sum(dim=1).tolist()
        budgets = [int(cfg.max_len_a * n + cfg.max_len_b) for n in self.src_lengths]
        if cfg.max_len:
            budgets = [min(budget, cfg.max_len) for budget in budgets]
        self.max_lens = [
            max(budget, forced, 1)
            for budget, forced in zip(budgets, prefix_lens, strict=True)
        ]
        lengths = torch.arange(max(self.max_lens, default=1) + 2)
        penalty = scoring.length_penalty(lengths, cfg.len_penalty)  # (max_len+2,)
        self.penalty: list[float] = penalty.tolist()
        self.specials = special_tokens(stepper)
        self.finished: list[list[Hypothesis]] = [[] for _ in self.src_lengths]

    def run(self, inputs: Any) -> list[list[Hypothesis]]:
        n = len(self.finished)
        # one row per sentence for the first step (its B beams would all be the
        # same BOS row); `reorder` then widens the state to B rows per sentence
        state = self.stepper.init_state(inputs, 1)
        leaf = first_tensor(state)
        device = leaf.device if leaf is not None else torch.device("cpu")
        self.forced = self.forced.to(device)
        scores = torch.zeros((n, 1), device=device)  # (N, 1)
        tokens = scores.new_zeros((n, 1, 0), dtype=torch.long)  # (N, 1, 0)
        beams = _Beams(torch.arange(n, device=device), scores, tokens, None)
        last = tokens.new_full((n,), self.stepper.bos_id)  # (N,)
        step = 0
        while beams.sentences.numel() > 0:
            if self.deadline is not None and time.monotonic() >= float(self.deadline):
                for a in range(beams.sentences.numel()):  # the best they have
                    self._finalize_live(beams, a)
                break
            scores, state = self.stepper.step(last, state)  # (A*W, V)
            if step == 0 and self.forced.numel() > 0:
                self._check_prefix(scores.size(1))
            # (A*W, S) or None
            attention = self.stepper.attention(state) if self.keep_attention else None
            beams, rows = self._advance(beams, scores, attention, step)
            if beams.sentences.numel() > 0:
                state = self.stepper.reorder(state, rows)
                last = beams.tokens[:, :, -1].reshape(-1)  # (A*B,)
            step += 1
        return [hyps[: self.cfg.nbest] for hyps in self.finished]

    def _check_prefix(self, vocab: int) -> None:
        """Raise ValueError for a prefix token outside the vocabulary (V,)."""
        top = int(self.forced.max())
        if top >= vocab:
            raise ValueError(
                f"prefix token id {top} is outside the vocabulary (size {vocab})"
            )

    def _banned(self, step: int) -> list[int]:
        """Tokens no row may take at this step: PAD, BOS, and EOS before min_len."""
        eos = [self.stepper.eos_id] if step < self.cfg.min_len else []
        return self.specials + eos

    def _candidates(
        self, scores: Tensor, beams: _Beams, step: int, k: int
    ) -> tuple[Tensor, Tensor]:
        """Each row's k best log-probs (A*W, k) and tokens from the step's scores.

        The scores (A*W, V) are normalised here (the stepper may return logits).
        Without n-gram bans or a forced token at this step that is one fused
        log-softmax + top-k; else the full log-probs are masked first.
        """
        if self.cfg.no_repeat_ngram == 0 and step >= self.forced.size(1):
            return scoring.top_log_probs(scores, k)
        log_probs = scoring.log_softmax(scores)  # (A*W, V)
        return scoring.top_k_rows(self._mask(log_probs, beams, step), k)

    def _mask(self, log_probs: Tensor, beams: _Beams, step: int) -> Tensor:
        """Apply no_repeat_ngram and the forced prefix to (A*W, V) log-probs.

        W is the number of rows per sentence (1 at the first step, then B). The
        `_banned` tokens are dropped later, from each row's best candidates only.
        """
        masked = log_probs
        if self.cfg.no_repeat_ngram > 0:
            history = beams.tokens.reshape(log_probs.size(0), step)  # (A*W, t)
            masked = scoring.ban_ngrams(log_probs, history, self.cfg.no_repeat_ngram)
        if step < self.forced.size(1):
            rows_per = beams.scores.size(1)
            forced = self.forced[beams.sentences, step].repeat_interleave(rows_per)
            # forced: (A*W,); a forced token keeps its log-prob even if it repeats
            # an n-gram (the prefix is the user's, not the search's choice)
            masked = scoring.force_tokens(masked, forced, source=log_probs)
        return masked

    def _advance(
        self, beams: _Beams, scores: Tensor, attention: Tensor | None, step: int
    ) -> tuple[_Beams, Tensor]:
        """One step: finalise EOS candidates, keep the best B others, drop done sentences.

        Takes the step's scores (A*W, V); returns the surviving beams and their rows
        (A'*B,) in the old state.
        """
        a, rows_per = beams.scores.shape  # rows_per: W rows per sentence (1 or B)
        width, vocab = self.width, scores.size(1)
        k = min(2 * width, rows_per * vocab)
        # two-stage top-k (per row, then per sentence): a row's score is added to its
        # own k best only, never to all (A, W, V) entries; the banned tokens are
        # dropped from those candidates, so each row takes len(banned) extra
        banned = self._banned(step)
        per_row = min(k + len(banned), vocab)
        row_values, row_tokens = self._candidates(scores, beams, step, per_row)
        row_values = scoring.forbid_candidates(row_values, row_tokens, banned)
        row_values = row_values.view(a, rows_per, per_row) + beams.scores.unsqueeze(2)
        # (A, 2B): a stable sort, so exact ties go to the lower beam, then to its
        # better candidate (its lower token on ties), whatever else is in the batch
        values, index = row_values.view(a, -1).sort(dim=1, descending=True, stable=True)
        values, index = values[:, :k], index[:, :k]
        origin = index // per_row  # (A, 2B) row (beam) of each candidate
        tokens = row_tokens.view(a, -1).gather(1, index)  # (A, 2B) its token
        if k < width:  # tiny vocabulary at the first step: pad with empty candidates
            values = F.pad(values, (0, width - k), value=NEG_INF)
            tokens = F.pad(tokens, (0, width - k), value=self.stepper.pad_id)
            origin, k = F.pad(origin, (0, width - k)), width
        finite, is_eos = values > NEG_INF, tokens == self.stepper.eos_id  # (A, 2B)
        history = _extend(beams.attention, attention)  # (A*W, t+1, S) or None
        in_top = torch.arange(k, device=values.device) < width  # (2B,) fairseq rule
        ends = (finite & is_eos & in_top).nonzero()  # (F, 2) EOS candidates
        if ends.numel() > 0:
            i, j = ends.unbind(1)
            self._add(beams, i * rows_per + origin[i, j], values[i, j], history, True)
        live = finite & ~is_eos  # (A, 2B)
        dead_last = torch.sort((~live).to(torch.uint8), dim=1, stable=True)
        pick = dead_last.indices[:, :width]  # (A, B) best B live candidates first
        scores = values.gather(1, pick).masked_fill(~live.gather(1, pick), NEG_INF)
        base = torch.arange(a, device=values.device).unsqueeze(1) * rows_per  # (A, 1)
        rows = (base + origin.gather(1, pick)).view(-1)  # (A*B,)
        old_tokens = beams.tokens.reshape(a * rows_per, step).index_select(0, rows)
        new_tokens = torch.cat([old_tokens, tokens.gather(1, pick).view(-1, 1)], dim=1)
        new_tokens = new_tokens.view(a, width, step + 1)  # (A, B, t+1)
        # (A*B, t+1, S) attention history of the surviving beams
        attention = None if history is None else history.index_select(0, rows)
        moved = _Beams(beams.sentences, scores, new_tokens, attention)  # (A, B, t+1)
        done = self._close(beams, moved, stuck=~finite.any(dim=1), step=step)  # (A,)
        if not bool(done.any()):  # nobody left: no copies
            return moved, rows
        return moved.select(~done), rows.view(a, width)[~done].view(-1)

    def _finalize_live(self, beams: _Beams, a: int) -> None:
        """Finish the live (finite) beams of sentence a as they are, without EOS."""
        scores = beams.scores[a]  # (W,)
        live = (scores > NEG_INF).nonzero().squeeze(1)  # (W',)
        rows = a * beams.scores.size(1) + live
        self._add(beams, rows, scores[live], beams.attention, ended=False)

    def _close(self, old: _Beams, new: _Beams, stuck: Tensor, step: int) -> Tensor:
        """Finalise and flag (A,) the sentences that are done after this step."""
        done = []
        best = new.scores.max(dim=1).values.tolist()  # (A,)
        stuck_rows = stuck.tolist()
        for a, n in enumerate(new.sentences.tolist()):
            at_max = step + 1 >= self.max_lens[n]
            if stuck_rows[
                a
            ]:  # every candidate -inf: keep what was live before this step
                self._finalize_live(old, a)
            elif at_max:
                self._finalize_live(new, a)
            done.append(stuck_rows[a] or at_max or self._settled(n, best[a], step))
        return torch.tensor(done, dtype=torch.bool, device=stuck.device)

    def _settled(self, n: int, best: float, step: int) -> bool:
        """Whether sentence n is done: B finished hypotheses, or (early stop) its
        n-best finished ones can no longer be beaten by any live one (best raw
        log-prob `best`)."""
        if best == NEG_INF:
            return True
        hyps = self.finished[n]
        if len(hyps) >= self.width:
            return True
        if len(hyps) < self.cfg.nbest:
            return False
        # log-probs only fall, so the best reachable score uses the largest penalty
        # over the lengths still possible: step + 2 ... max_len
        largest = max(self.penalty[step + 2], self.penalty[self.max_lens[n]])
        return best / largest <= hyps[self.cfg.nbest - 1].score

    def _add(
        self,
        beams: _Beams,
        rows: Tensor,
        log_probs: Tensor,
        history: Tensor | None,
        ended: bool,
    ) -> None:
        """Finish the beams `rows` (F,) (row a*W + b) with totals `log_probs` (F,).

        Each sentence keeps its best B, sorted. `history` (A*W, t', S) holds the
        attention of the rows; their first t (the tokens') steps are kept. |Y| in
        the length penalty counts the EOS when the hypotheses `ended` with it.
        """
        width, steps = beams.scores.size(1), beams.tokens.size(2)
        sentences = beams.sentences[rows // width].tolist()
        tokens = beams.tokens.flatten(0, 1)[rows].tolist()  # (F, t)
        attention = None if history is None else history[rows, :steps]  # (F, t, S)
        penalty = self.penalty[steps + ended]
        for f, log_prob in enumerate(log_probs.tolist()):
            n, score = sentences[f], log_prob / penalty
            hyps = self.finished[n]
            if len(hyps) >= self.width and score <= hyps[-1].score:
                continue  # would be cut at once (ties: the earlier one stays)
            attn = None
            if attention is not None:
                src = self.src_lengths[n]
                attn = (attention[f, :, :src] if src > 0 else attention[f]).clone()
            hyps.append(Hypothesis(tuple(tokens[f]), log_prob, score, attn))
            hyps.sort(key=lambda h: -h.score)  # stable: earlier hypotheses win ties
            del hyps[self.width :]


def _extend(history: Tensor | None, attention: Tensor | None) -> Tensor | None:
    """Append this step's attention (A*B, S) to the history (A*B, t, S)."""
    if attention is None:
        return None
    step = attention.float().unsqueeze(1)  # (A*B, 1, S)
    return step if history is None else torch.cat([history, step], dim=1)
