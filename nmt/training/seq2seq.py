"""Translation training: parallel data, SentencePiece, Seq2Seq, BLEU validation.

The loop itself (limits, checkpoints, exact resume) is `loop.TrainingLoop`.
Not an entry point (see `train.py`) and knows nothing of Hydra.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nmt.data.parallel import DataError, ParallelData, load_parallel, split_files
from nmt.data.tokenizer import SentencePieceTokenizer, build_tokenizers
from nmt.inference.metrics import corpus_scores, perplexity
from nmt.inference.translator import Translator
from nmt.models.seq2seq import Seq2Seq
from nmt.training.checkpoint import load_checkpoint
from nmt.training.distributed import LossModule
from nmt.training.loop import StepLoss, TrainingLoop
from nmt.training.progress import (  # noqa: F401  (LoopConfig: re-exported for callers)
    LoopConfig,
    read_metrics,
)
from nmt.training.stop import StopRequest
from nmt.utils.io import atomic_write
from nmt.utils.runtime import autocast

if TYPE_CHECKING:
    from nmt.config import TrainConfig

log = logging.getLogger(__name__)


class Trainer(TrainingLoop):
    """Builds data, tokenizers and a Seq2Seq from a TrainConfig and runs the loop."""

    kind = "seq2seq"
    metric = "val BLEU"
    tokenizer_keys = ("src", "tgt")

    def __init__(
        self, cfg: TrainConfig, run_dir: Path, *, stop: StopRequest | None = None
    ) -> None:
        self.setup_runtime(cfg, run_dir, stop)
        resume = self.load_resume() if self.loop.resume else None
        self._setup_data(resume)
        self.model = self.build_model(
            lambda: Seq2Seq(
                cfg.model,
                src_vocab=self.src_tok.vocab_size,
                tgt_vocab=self.tgt_tok.vocab_size,
            )
        )
        self.setup_optimizer(resume)
        # under torchrun: DDP averages gradients over ranks (a no-op wrapper otherwise)
        self.loss_module = self.dist.wrap(LossModule(self.model), self.device)
        self.translator = Translator(
            self.model,
            self.src_tok,
            self.tgt_tok,
            device=self.device,
            precision=self.precision,
            max_src_len=cfg.data.max_len,  # what a checkpoint's translator uses
            max_tgt_len=cfg.data.max_len,
        )

    # -- set-up ---------------------------------------------------------------
    def _setup_data(self, resume: dict[str, Any] | None) -> None:
        d = self.cfg.data
        langs = (d.src_lang, d.tgt_lang)
        train = load_parallel(d.root, d.train_split, langs)
        val = load_parallel(d.root, d.val_split, langs)
        if resume is not None:
            toks = resume["tokenizers"]
            with self.resume_errors():
                self.src_tok = SentencePieceTokenizer.from_bytes(toks["src"])
                self.tgt_tok = SentencePieceTokenizer.from_bytes(toks["tgt"])
        else:
            src_files, tgt_files = self._tokenizer_inputs(train)
            tok_cfg = self.cfg.tokenizer
            if self.cfg.model.share_embeddings:  # one embedding: one vocabulary
                tok_cfg = dataclasses.replace(tok_cfg, restrict_tgt=False)
            self.src_tok, self.tgt_tok = build_tokenizers(
                src_files, tgt_files, tok_cfg, Path(self.loop.cache_dir)
            )
        tok = self.cfg.tokenizer
        self.train_data = ParallelData(
            *train,
            self.src_tok,
            self.tgt_tok,
            max_len=d.max_len,
            sample_alpha=tok.sample_alpha,
            sample_nbest=tok.sample_nbest,
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
        if tok.sample_alpha > 0:
            log.info(
                "subword regularization: training pairs re-segmented each epoch (%s)",
                f"BPE-dropout {tok.sample_alpha}"
                if tok.model_type == "bpe"
                else f"unigram sampling, alpha {tok.sample_alpha}, "
                f"nbest {tok.sample_nbest}",
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
            # atomic: parallel sweep jobs write and read the same cached file
            atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))
            paths.append(path)
        return [paths[0]], [paths[1]]

    # -- loop hooks -------------------------------------------------------------
    def epoch_batches(self) -> list[list[int]]:
        p, c = self.progress, self.loop
        # subword regularization: this epoch's segmentations, before its batches
        self.train_data.resample(seed=c.seed, epoch=p.epoch)
        return self.train_data.batches(self.cfg.data, seed=c.seed, epoch=p.epoch)

    def payload(self) -> dict[str, Any]:
        return {
            **self.base_payload(),
            "tokenizers": {
                "src": self.src_tok.to_bytes(),
                "tgt": self.tgt_tok.to_bytes(),
            },
        }

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Teacher-forced val loss per target token."""
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
        self.model.train()
        return total / max(1, tokens)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        loss = self.validation_loss()
        self.model.eval()
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
        return {
            "val_loss": loss,
            "val_ppl": perplexity(loss),
            "val_bleu": scores.bleu,
            "val_chrf": scores.chrf,
        }

    def is_best(self, metrics: dict[str, float]) -> bool:
        if metrics["val_bleu"] <= self.progress.best_bleu:
            return False
        self.progress.best_bleu = metrics["val_bleu"]
        return True

    def final_work(self) -> float:
        # the test: about as many lines as validation, searched with `search`
        # (beam 5 takes about twice greedy validation's time)
        if not self.loop.test_at_end:
            return 1.0
        return 1.0 + (2.0 if self.cfg.search.beam_size > 1 else 1.0)

    def describe(self, metrics: dict[str, float]) -> str:
        m = metrics
        return (
            f"val loss {m['val_loss']:.3f} ppl {m['val_ppl']:.2f} "
            f"BLEU {m['val_bleu']:.2f} chrF {m['val_chrf']:.2f}"
        )

    def train_step(self, indices: list[int]) -> float:
        """One optimizer step on the global batch `indices` (this rank takes its
        share); returns the mean loss per target token of this rank's share."""

        def forward() -> StepLoss:
            batch = self.train_data.collate(self.dist.shard(indices)).to(self.device)
            loss = self.loss_module(
                batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out
            )
            tokens = batch.num_tgt_tokens
            return StepLoss(loss, tokens, int(self.dist.sum(tokens, self.device)))

        return self.optimizer_step(forward)

    # -- run --------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until a limit, then score the best checkpoint; returns a summary."""
        reason, stopped = self.train_until_limit()
        p = self.progress
        log.info(
            "training stopped (%s) at step %d; best val BLEU %.2f",
            reason,
            p.step,
            p.best_bleu,
        )
        summary = self.base_summary(reason, stopped)
        summary.update(best_val_bleu=p.best_bleu, best_val_chrf=self._best_val_chrf())
        if self.dist.enabled:
            summary.update(
                world_size=self.dist.world,
                ddp_params_in_sync=self.dist.params_in_sync(self.model),
            )
        if self.loop.test_at_end and not stopped and self.dist.is_main:
            self.test_at_end(summary, self.score_best_on_test)
        summary = self.dist.from_main(summary)
        self.dist.close()
        return summary

    def _best_val_chrf(self) -> float | None:
        """val chrF of the first validation with the best val BLEU (best.pt's)."""
        best = max(
            (r for r in self.report.records() if "val_bleu" in r),
            key=lambda r: r["val_bleu"],
            default=None,
        )
        return None if best is None else best.get("val_chrf")

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
