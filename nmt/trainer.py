"""The translation training loop: optimisation, validation, checkpoints, exact resume.

Not an entry point (see `train.py`) and knows nothing of Hydra.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from nmt.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nmt.data import DataError, ParallelData, load_parallel, split_files
from nmt.metrics import corpus_scores, perplexity
from nmt.models.seq2seq import Seq2Seq
from nmt.runtime import autocast, pick_device, resolve_precision, set_seed, set_threads
from nmt.tokenizer import SentencePieceTokenizer, build_tokenizers
from nmt.translator import Translator

if TYPE_CHECKING:
    from nmt.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class LoopConfig:
    """Optimisation, limits, validation and run-time settings (Hydra group `train`)."""

    seed: int = 1
    lr: float = 1e-3  # Adam learning rate (peak for warmup_decay)
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # gradient-norm clipping; 0 = off
    schedule: str = "plateau"  # plateau | warmup_decay (inverse sqrt) | constant
    warmup_steps: int = 1000  # warmup_decay only
    decay_factor: float = 0.5  # plateau: lr *= factor ...
    decay_patience: int = 2  # ... after this many validations without a val BLEU gain
    min_lr: float = 1e-5
    max_epochs: int = 0  # 0 = no limit
    max_steps: int = 0  # 0 = no limit
    max_minutes: float = 0.0  # wall-clock budget incl. validation; 0 = no limit
    valid_every: int = 1000  # steps between validations; 0 = once per epoch
    valid_beam: int = 1  # beam width for validation BLEU (1 = greedy)
    patience: int = (
        0  # early stopping after this many validations without gain; 0 = off
    )
    resume: bool = False  # continue exactly from <run dir>/checkpoints/last.pt
    threads: int = 0  # torch threads; 0 = all cores available to the process
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 where native) | fp32 | bf16
    save_every: int = 0  # also write last.pt every N steps; 0 = at validations only
    log_every: int = 100  # steps between progress log lines (stderr)
    cache_dir: str = "data/cache"  # where trained SentencePiece models are cached
    test_at_end: bool = (
        True  # translate the test split with best.pt and `search` at the end
    )


@dataclass
class Progress:
    """Where training stands; saved in checkpoints so resume is exact."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already consumed
    elapsed: float = 0.0  # seconds of training so far (all sessions)
    lr: float = 0.0
    best_bleu: float = -1.0
    bad_validations: int = 0  # since the last val BLEU gain (early stopping)
    bad_lr: int = 0  # since the last gain or lr decay (plateau schedule)
    tokens: int = 0  # target tokens trained on
    train_seconds: float = 0.0  # time inside optimizer steps (excludes validation)


class StopRequest:
    """SIGINT/SIGTERM set a flag the loop checks between steps (a second ^C kills)."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> StopRequest:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested: finishing the current step and saving last.pt")

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def schedule_lr(cfg: LoopConfig, progress: Progress) -> float:
    """Learning rate for the next step (warmup_decay), or the current one."""
    if cfg.schedule == "warmup_decay":
        step = max(1, progress.step + 1)
        return cfg.lr * min(step / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / step))
    if cfg.schedule in ("plateau", "constant"):
        return progress.lr or cfg.lr
    raise ValueError(
        f"unknown schedule '{cfg.schedule}'; use plateau|warmup_decay|constant"
    )


def after_validation(cfg: LoopConfig, progress: Progress, bleu: float) -> bool:
    """Update best/patience/plateau state; True when this validation is the best."""
    improved = bleu > progress.best_bleu
    if improved:
        progress.best_bleu, progress.bad_validations, progress.bad_lr = bleu, 0, 0
    else:
        progress.bad_validations += 1
        progress.bad_lr += 1
        if cfg.schedule == "plateau" and progress.bad_lr >= cfg.decay_patience:
            progress.lr = max(cfg.min_lr, progress.lr * cfg.decay_factor)
            progress.bad_lr = 0
            log.info("val BLEU plateau: lr -> %.2e", progress.lr)
    return improved


class Trainer:
    """Builds data, tokenizers and model from a TrainConfig and runs the loop."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.cfg, self.loop = cfg, cfg.train
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.threads = set_threads(self.loop.threads)
        self.device = pick_device(self.loop.device)
        self.precision = resolve_precision(self.loop.precision, self.device)
        set_seed(self.loop.seed)
        resume = self._load_resume() if self.loop.resume else None
        self._setup_data(resume)
        self.model = Seq2Seq(
            cfg.model,
            src_vocab=self.src_tok.vocab_size,
            tgt_vocab=self.tgt_tok.vocab_size,
        ).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.loop.lr,
            weight_decay=self.loop.weight_decay,
        )
        self.progress = Progress(lr=self.loop.lr)
        if resume is not None:
            self._restore(resume)
        self.translator = Translator(
            self.model,
            self.src_tok,
            self.tgt_tok,
            device=self.device,
            precision=self.precision,
        )

    # -- set-up ---------------------------------------------------------------
    def _load_resume(self) -> dict[str, Any] | None:
        path = self.ckpt_dir / "last.pt"
        if not path.exists():
            log.warning("train.resume=true but %s does not exist: starting fresh", path)
            return None
        payload = load_checkpoint(path)
        saved = payload["config"]["model"]
        now = dataclasses.asdict(self.cfg.model)
        diff = [
            f"{k}={saved.get(k)!r}->{v!r}" for k, v in now.items() if saved.get(k) != v
        ]
        if diff:
            raise ValueError(
                f"cannot resume {path}: model config differs ({', '.join(diff)})"
            )
        return payload

    def _setup_data(self, resume: dict[str, Any] | None) -> None:
        d = self.cfg.data
        langs = (d.src_lang, d.tgt_lang)
        train = load_parallel(d.root, d.train_split, langs)
        val = load_parallel(d.root, d.val_split, langs)
        if resume is not None:
            toks = resume["tokenizers"]
            self.src_tok = SentencePieceTokenizer.from_bytes(toks["src"])
            self.tgt_tok = SentencePieceTokenizer.from_bytes(toks["tgt"])
        else:
            src_files, tgt_files = self._tokenizer_inputs(train)
            self.src_tok, self.tgt_tok = build_tokenizers(
                src_files, tgt_files, self.cfg.tokenizer, Path(self.loop.cache_dir)
            )
        self.train_data = ParallelData(
            *train, self.src_tok, self.tgt_tok, max_len=d.max_len
        )
        self.val_data = ParallelData(*val, self.src_tok, self.tgt_tok, max_len=10**9)
        self.val_src, self.val_ref = val
        log.info(
            "train %d pairs (%d dropped by length), val %d; vocab src %d tgt %d",
            len(self.train_data),
            self.train_data.dropped,
            len(val[0]),
            self.src_tok.vocab_size,
            self.tgt_tok.vocab_size,
        )

    def _tokenizer_inputs(
        self, train: list[list[str]]
    ) -> tuple[list[Path], list[Path]]:
        d = self.cfg.data
        if Path(d.root).exists():
            src, tgt = split_files(d.root, d.train_split, (d.src_lang, d.tgt_lang))
            return [src], [tgt]
        paths = []  # hub data: write the text where the tokenizer trainer can read it
        for lang, lines in zip((d.src_lang, d.tgt_lang), train):
            path = (
                Path(self.loop.cache_dir)
                / "text"
                / f"{d.root.replace('/', '__')}.{lang}"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            paths.append(path)
        return [paths[0]], [paths[1]]

    def _restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.progress = Progress(**payload["progress"])
        set_rng_state(payload["rng"])
        log.info(
            "resumed at step %d (epoch %d, batch %d)",
            self.progress.step,
            self.progress.epoch,
            self.progress.batch,
        )

    # -- checkpoints and validation ------------------------------------------
    def payload(self) -> dict[str, Any]:
        return {
            "kind": "seq2seq",
            "config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "rng": rng_state(),
            "tokenizers": {
                "src": self.src_tok.to_bytes(),
                "tgt": self.tgt_tok.to_bytes(),
            },
        }

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        total, tokens = 0.0, 0
        for indices in self.val_data.batches(
            self.cfg.data, seed=0, epoch=0, shuffle=False
        ):
            batch = self.val_data.collate(indices).to(self.device)
            with autocast(self.device, self.precision):
                total += float(
                    self.model.loss(
                        batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out
                    )
                )
            tokens += batch.num_tgt_tokens
        search = dataclasses.replace(
            self.cfg.search,
            beam_size=self.loop.valid_beam,
            nbest=1,
            len_penalty=self.cfg.search.len_penalty
            if self.loop.valid_beam > 1
            else 0.0,
        )
        hyps = self.translator.translate_best(self.val_src, search)
        scores = corpus_scores(hyps, self.val_ref)
        self.model.train()
        loss = total / max(1, tokens)
        return {
            "val_loss": loss,
            "val_ppl": perplexity(loss),
            "val_bleu": scores.bleu,
            "val_chrf": scores.chrf,
        }

    # -- the loop -------------------------------------------------------------
    def _limits_reached(self) -> str | None:
        p, c = self.progress, self.loop
        if c.max_steps and p.step >= c.max_steps:
            return f"max_steps={c.max_steps}"
        if c.max_epochs and p.epoch >= c.max_epochs:
            return f"max_epochs={c.max_epochs}"
        if c.max_minutes and p.elapsed >= 60 * c.max_minutes:
            return f"max_minutes={c.max_minutes:g}"
        if c.patience and p.bad_validations >= c.patience:
            return f"no val BLEU gain in {c.patience} validations"
        return None

    def train_step(self, indices: list[int]) -> float:
        """One optimizer step on the batch `indices`; returns mean token loss."""
        began = time.perf_counter()
        batch = self.train_data.collate(indices).to(self.device)
        lr = schedule_lr(self.loop, self.progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.progress.lr = lr
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            loss = self.model.loss(
                batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out
            )
        tokens = batch.num_tgt_tokens
        (loss / tokens).backward()
        if self.loop.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.loop.clip_norm)
        self.optimizer.step()
        self.progress.step += 1
        self.progress.tokens += tokens
        loss = (
            float(loss.detach()) / tokens
        )  # syncs the device, so the timing below is true
        self.progress.train_seconds += time.perf_counter() - began
        return loss

    def _validate_and_save(self, rate: float) -> None:
        metrics = self.validate()
        best = after_validation(self.loop, self.progress, metrics["val_bleu"])
        p = self.progress
        record = {
            "step": p.step,
            "epoch": p.epoch,
            **{k: round(v, 4) for k, v in metrics.items()},
            "tokens_per_s": round(rate, 1),
            "lr": p.lr,
            "elapsed_s": round(p.elapsed, 1),
        }
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        log.info(
            "step %d epoch %d | val loss %.3f ppl %.2f BLEU %.2f chrF %.2f | %.0f tok/s%s",
            p.step,
            p.epoch,
            metrics["val_loss"],
            metrics["val_ppl"],
            metrics["val_bleu"],
            metrics["val_chrf"],
            rate,
            " | best" if best else "",
        )
        payload = self.payload()
        save_checkpoint(self.ckpt_dir / "last.pt", payload)
        if best:
            save_checkpoint(self.ckpt_dir / "best.pt", payload)

    def run(self) -> dict[str, Any]:
        """Train until a limit, then score the best checkpoint; returns a summary."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model.train()
        p = self.progress
        log.info(
            "model %d parameters; %d threads, %s, %s",
            self.model.num_parameters(),
            self.threads,
            self.device,
            self.precision,
        )
        self._clock = time.time() - p.elapsed
        self._rate = 0.0
        bar = tqdm(
            total=self.loop.max_steps or None,
            initial=p.step,
            file=sys.stderr,
            unit="step",
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )
        with StopRequest() as stop:
            reason = self._limits_reached()
            while reason is None and not stop.requested:
                self._train_epoch(bar, stop)
                reason = self._limits_reached()
        bar.close()
        if stop.requested:
            reason = "stopped by signal"
            save_checkpoint(self.ckpt_dir / "last.pt", self.payload())
        elif not self._just_validated():
            self._validate_and_save(self._rate)
        log.info(
            "training stopped (%s) at step %d; best val BLEU %.2f",
            reason,
            p.step,
            p.best_bleu,
        )
        summary = {
            "status": "ok" if not stop.requested else "stopped",
            "stop_reason": reason,
            "steps": p.step,
            "epochs": p.epoch,
            "best_val_bleu": p.best_bleu,
            "best_val_loss": self._best_val_loss(),
            "parameters": self.model.num_parameters(),
            "tokens_per_s": round(p.tokens / max(1e-9, p.train_seconds), 1),
            "wall_time_s": round(p.elapsed, 1),
        }
        if self.loop.test_at_end and not stop.requested:
            summary.update(self.score_best_on_test())
        return summary

    def _train_epoch(self, bar: tqdm, stop: StopRequest) -> None:
        """Run the rest of the current epoch, or until a limit or a stop request."""
        p, c = self.progress, self.loop
        batches = self.train_data.batches(self.cfg.data, seed=c.seed, epoch=p.epoch)
        for indices in batches[p.batch :]:
            loss = self.train_step(indices)
            p.batch += 1
            p.elapsed = time.time() - self._clock
            bar.update(1)
            if p.step % c.log_every == 0:
                self._log_progress(bar, loss)
            if c.valid_every and p.step % c.valid_every == 0:
                self._validate_and_save(self._rate)
            elif c.save_every and p.step % c.save_every == 0:
                save_checkpoint(self.ckpt_dir / "last.pt", self.payload())
            if stop.requested or self._limits_reached():
                return
        p.epoch, p.batch = p.epoch + 1, 0
        if not c.valid_every:
            self._validate_and_save(self._rate)

    def _log_progress(self, bar: tqdm, loss: float) -> None:
        p = self.progress
        now = time.time()
        mark_time, mark_tokens = getattr(self, "_mark", (self._clock, 0))
        self._rate = (p.tokens - mark_tokens) / max(1e-9, now - mark_time)
        self._mark = (now, p.tokens)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{p.lr:.1e}", tok_s=f"{self._rate:.0f}")
        if bar.disable:
            log.info(
                "step %d loss %.3f lr %.2e %.0f tok/s", p.step, loss, p.lr, self._rate
            )

    def _best_val_loss(self) -> float | None:
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
        return min(json.loads(line)["val_loss"] for line in lines if line.strip())

    @torch.no_grad()
    def score_best_on_test(self) -> dict[str, Any]:
        """Translate the test split with best.pt and `cfg.search`; test_bleu/test_chrf."""
        d = self.cfg.data
        try:
            src, ref = load_parallel(d.root, d.test_split, (d.src_lang, d.tgt_lang))
        except DataError as error:
            log.warning("no test score: %s", error)
            return {}
        best = self.ckpt_dir / "best.pt"
        if best.exists():
            self.model.load_state_dict(load_checkpoint(best)["model"])
        scores = corpus_scores(
            self.translator.translate_best(src, self.cfg.search), ref
        )
        log.info(
            "test %s (beam %d): BLEU %.2f chrF %.2f | %s",
            d.test_split,
            self.cfg.search.beam_size,
            scores.bleu,
            scores.chrf,
            scores.bleu_signature,
        )
        return {
            "test_bleu": round(scores.bleu, 2),
            "test_chrf": round(scores.chrf, 2),
            "test_beam_size": self.cfg.search.beam_size,
            "bleu_signature": scores.bleu_signature,
        }

    def _just_validated(self) -> bool:
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return False
        last = path.read_text(encoding="utf-8").strip().splitlines()[-1]
        return json.loads(last)["step"] == self.progress.step
