"""The REPL's core without a terminal: `:commands`, answers, plain (pipe) replies.

`Session.handle(line) -> str` serves both checkpoint kinds: a TextGenerator
continues the line, a Translator translates it (n-best with scores). The settings
are in `settings.py`, the terminal and pipe loops in `repl.py`.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from nmt.inference.attention_table import attention_table
from nmt.inference.generator import TextGenerator
from nmt.inference.settings import (
    MAX_LM_CHARS,
    MAX_SECONDS,
    MAX_TGT_TOKENS,
    CommandError,
    check_seconds,
    default_settings,
    number,
)
from nmt.inference.translator import Translator
from nmt.search import BeamConfig, SampleConfig, sample
from nmt.search.stepper import Deadline, inference
from nmt.utils.runtime import autocast
from nmt.utils.text import flatten, join_fields, join_lines

HELP = """\
commands (they change the settings of the next answers):
  :beam N      beam search of width N     :sample        sampling
  :temp T      temperature (0 = greedy)   :topk K        top-k sampling (0 = off)
  :topp P      nucleus mass (1 = off)     :len N         max length (0 = auto)
  :nbest N     answers per line           :seed N|random sampling seed
  :time S      time limit of an answer, in seconds (it stops with the best so far)
  :attn [FILE.png]  the last translation's attention: a table, or a PNG picture
  :prefix TEXT force the start of translations (:prefix alone clears it)
  :help        this text                  :quit          exit (or Ctrl-D)
type '::text' for text that starts with ':'"""
# the commands a language model lacks, and why (its reply when one is asked for)
TRANSLATION_ONLY = {
    "attn": "it attends to nothing",
    "prefix": "type the start as part of the prompt",
}
# HELP for an LM: without those commands, and its :len is in characters
LM_HELP = "\n".join(
    line.replace("max length (0 = auto)", "max characters")
    for line in HELP.split("\n")
    if not line.startswith(tuple(f"  :{name} " for name in TRANSLATION_ONLY))
)
MAX_PROMPT_CHARS = 2_000  # an LM answer reads at most this much of its prompt


class Session:
    """One REPL conversation with a Translator or a TextGenerator."""

    def __init__(
        self,
        engine: Translator | TextGenerator,
        *,
        plain: bool = False,
        max_seconds: float | None = None,
        stream: Callable[[str], None] | None = None,
    ) -> None:
        """`plain`: every reply on one line (for pipes), n-best answers as
        tab-separated fields; `max_seconds`: the time limit of each answer
        (default Settings'); `stream`: where an LM's sampled answer is written
        while it is generated, as the start of its reply (not in plain mode)."""
        self.engine = engine
        self.is_lm = isinstance(engine, TextGenerator)
        self.settings = default_settings(self.is_lm, plain)
        if max_seconds is not None:
            self.settings.max_seconds = check_seconds(max_seconds, "--max-seconds")
        self.plain = plain
        self.stream = stream
        self.help = LM_HELP if self.is_lm else HELP
        self.done = False
        # (source pieces, target pieces, (T, S) weights) of the last translation
        self.last_attention: tuple[list[str], list[str], torch.Tensor] | None = None
        self._deadline: Deadline | None = None  # of the answer being found
        self.commands: dict[str, Callable[[str], str]] = {
            "beam": self._beam,
            "sample": self._sample_mode,
            "temp": lambda a: self._set(
                "temperature", number(a, "temp", float, 0), True
            ),
            "topk": lambda a: self._set("top_k", number(a, "topk", int, 0), True),
            "topp": lambda a: self._set(
                "top_p", number(a, "topp", float, 1e-6, 1), True
            ),
            "len": self._len,
            "time": lambda a: self._set(
                "max_seconds", number(a, "time", float, 0.1, MAX_SECONDS)
            ),
            "nbest": self._nbest,
            "seed": self._seed,
            "attn": self._attn,
            "prefix": self._prefix,
            "help": lambda a: f"{self.help}\n{self.settings.describe()}",
            "quit": self._quit,
            "q": self._quit,
            "exit": self._quit,
        }

    def handle(self, line: str) -> str:
        """The answer to one input line: a command's reply or the model's output.

        In plain mode a command's lines are joined by " | "; an answer is built on
        one line (`flatten` only guards that promise)."""
        line = line.rstrip("\r\n")
        if line.startswith(":") and not line.startswith("::"):
            reply = self.command(line)
            return join_lines(reply) if self.plain else reply
        reply = self.answer(line[1:] if line.startswith("::") else line)
        return flatten(reply) if self.plain else reply

    def command(self, line: str) -> str:
        name, arg = (line[1:].split(None, 1) + ["", ""])[:2]  # any whitespace
        name = name.lower()
        if self.is_lm and name in TRANSLATION_ONLY:
            why = TRANSLATION_ONLY[name]
            return f"error: :{name} is not available for a language model ({why})"
        action = self.commands.get(name)
        if action is None:
            return f"unknown command ':{name}'\n{self.help}"
        try:
            return action(arg.strip())
        except CommandError as error:
            return f"error: {error}"

    # -- commands -------------------------------------------------------------------
    def _set(self, name: str, value: object, sampling: bool = False) -> str:
        self.settings = dataclasses.replace(self.settings, **{name: value})
        if sampling:
            self.settings.mode = "sample"
        return self.settings.describe()

    def _beam(self, arg: str) -> str:
        width = number(arg, "beam", int, 1, 100)
        self.settings.nbest = min(self.settings.nbest, width)
        self.settings.mode = "beam"
        return self._set("beam", width)

    def _sample_mode(self, arg: str) -> str:
        self.settings.mode = "sample"
        return self.settings.describe()

    def _len(self, arg: str) -> str:
        unit = "characters" if self.is_lm else "tokens"
        why = f" ({unit}; longer answers take minutes)"
        high = MAX_LM_CHARS if self.is_lm else MAX_TGT_TOKENS
        return self._set("max_len", number(arg, "len", int, int(self.is_lm), high, why))

    def _nbest(self, arg: str) -> str:
        s = self.settings
        high = s.beam if s.mode == "beam" else 64
        return self._set("nbest", number(arg, "nbest", int, 1, high))

    def _seed(self, arg: str) -> str:
        if arg == "random":
            return self._set("seed", None)
        return self._set("seed", number(arg, "seed", int, 0, 2**63 - 1))

    def _attn(self, arg: str) -> str:
        """`:attn` prints the table; `:attn FILE.png` draws it into FILE.png."""
        path = Path(arg).expanduser()
        if arg and path.suffix.lower() != ".png":
            raise CommandError(f":attn writes a picture to FILE.png, got {arg!r}")
        if self.last_attention is None:
            return "no attention yet: translate a line first"
        if not arg:
            return attention_table(*self.last_attention)
        from nmt.figures.attention_map import save_attention_map

        try:
            save_attention_map(*self.last_attention, path)
        except OSError as error:
            raise CommandError(
                f"cannot write {arg}: {error.strerror or error}"
            ) from None
        return f"attention picture saved to {path}"

    def _prefix(self, arg: str) -> str:
        reply = self._set("prefix", arg)
        unknown = "".join(self.engine.tgt_tok.unknown_chars(arg))
        if unknown:
            reply += f" (warning: unknown to the target vocabulary: {unknown!r})"
        return reply

    def _quit(self, arg: str) -> str:
        self.done = True
        return "bye"

    # -- answers --------------------------------------------------------------------
    def _generator(self, device: torch.device) -> torch.Generator:
        seed = self.settings.seed
        seed = secrets.randbelow(2**31) if seed is None else seed
        return torch.Generator(device=device).manual_seed(seed)

    def _sample_config(self, max_len: int) -> SampleConfig:
        s = self.settings
        return SampleConfig(
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            max_len=max_len,
            num_samples=s.nbest,
        )

    def stop(self) -> None:
        """End the answer being found at its search's next step, with what it has
        (Ctrl-C on a terminal); no effect between answers."""
        if self._deadline is not None:
            self._deadline.stop()

    def answer(self, text: str) -> str:
        """The model's answer, found within the time limit; one that the limit or
        `stop` ended gets a note (on stderr in plain mode: answers stay one line)."""
        deadline = Deadline(time.monotonic() + self.settings.max_seconds)
        self._deadline = deadline
        try:
            if self.is_lm:
                reply = self._continue(text, deadline)
            elif not text.strip():
                return ""
            elif self.settings.mode == "sample":
                reply = self._sample_translations(text, deadline)
            else:
                reply = self._translate(text, deadline)
        finally:
            self._deadline = None
        if deadline.stopped:
            note = "[stopped]"
        elif time.monotonic() >= float(deadline):
            note = (
                f"(stopped at the {self.settings.max_seconds:g} s time limit: the "
                "best found so far; :time changes the limit)"
            )
        else:
            return reply
        if self.plain:
            print(f"note: {note}", file=sys.stderr)
            return reply
        return f"{reply}\n{note}"

    def _continue(self, prompt: str, deadline: Deadline) -> str:
        s, engine = self.settings, self.engine
        assert isinstance(engine, TextGenerator)
        # reading a prompt is not bounded by the deadline: only its end is read
        context = prompt[-MAX_PROMPT_CHARS:]
        if len(context) < len(prompt):
            print(
                f"note: the answer continues the prompt's last {MAX_PROMPT_CHARS:,} "
                f"of {len(prompt):,} characters",
                file=sys.stderr,
            )
        if s.mode == "sample":
            stream = None if self.plain else self.stream
            if stream is not None:  # the reply starts with the prompt
                stream(prompt)
            found = engine.sample(
                context,
                self._sample_config(s.max_len),
                self._generator(engine.device),
                deadline=deadline,
                on_text=stream,
            )
        else:
            cfg = BeamConfig(beam_size=s.beam, nbest=s.nbest)
            found = engine.beam(context, s.max_len, cfg, deadline=deadline)
        if self.plain:
            return join_fields([flatten(prompt + c.text, escape=True) for c in found])
        blocks = []
        for rank, c in enumerate(found, start=1):
            head = f"[{rank}] log-prob {c.score:.2f}\n" if c.score is not None else ""
            blocks.append(head + prompt + c.text)
        return ("\n" + "-" * 40 + "\n").join(blocks)

    def _beam_config(self) -> BeamConfig:
        """`:len N` sets the target length to N (beyond the model's own limit)."""
        s = self.settings
        lengths = {}
        if s.max_len:
            lengths = dict(max_len_a=0.0, max_len_b=s.max_len, max_len=s.max_len)
        return BeamConfig(beam_size=s.beam, nbest=s.nbest, **lengths)

    def _translate(self, text: str, deadline: Deadline) -> str:
        engine = self.engine
        assert isinstance(engine, Translator)
        prefix = engine.tgt_tok.encode(self.settings.prefix) or None
        hyps = engine.translate(
            [text],
            self._beam_config(),
            prefix,
            offset=None,
            deadline=deadline,
            attention=True,
        )[0]
        ids = engine.encode(text, warn=False)  # `translate` has warned
        self._remember_attention(ids, hyps[0].tokens, hyps[0].attention)
        if self.plain:
            return join_fields([flatten(engine.detokenize(h)) for h in hyps])
        return "\n".join(
            f"[{rank}] {h.score:8.3f}  {flatten(engine.detokenize(h))}"
            for rank, h in enumerate(hyps, start=1)
        )

    def _remember_attention(
        self, ids: Sequence[int], tokens: Sequence[int], attention: Tensor | None
    ) -> None:
        """Keep the attention of the answer shown first (T target `tokens`
        x S source `ids`, attention (T, S) or None), for `:attn`."""
        engine = self.engine
        assert isinstance(engine, Translator)
        self.last_attention = None
        if attention is not None and attention.size(0) == len(tokens):
            src, tgt = engine.labels(ids, tokens)
            self.last_attention = (src, tgt, attention[:, : len(ids)])

    def _sample_translations(self, text: str, deadline: Deadline) -> str:
        engine = self.engine
        assert isinstance(engine, Translator)
        ids = engine.encode(text)
        prefix = engine.tgt_tok.encode(self.settings.prefix)
        first: list[Tensor] = []  # the first sample's attention, (S,) per token

        def keep_first(rows: Tensor, tokens: Tensor, attention: Tensor | None) -> None:
            if attention is not None and rows.numel() and rows[0] == 0:
                first.append(attention[0].float())

        base = BeamConfig()
        max_len = self.settings.max_len or min(
            int(base.max_len_a * len(ids) + base.max_len_b), engine.max_tgt_len
        )
        src = torch.tensor([ids], device=engine.device)  # (1, S)
        lengths = torch.tensor([len(ids)], device=engine.device)  # (1,)
        with inference(*engine.models), autocast(engine.device, engine.precision):
            rows = sample(
                engine.stepper(),  # the fast path where it applies
                (src, lengths),
                self._sample_config(max_len),
                prefix=[prefix] if prefix else None,
                generator=self._generator(engine.device),
                deadline=deadline,
                on_step=keep_first,
            )
        attention = torch.stack(first) if first else None  # (T, S)
        self._remember_attention(ids, prefix + rows[0], attention)
        texts = [flatten(engine.tgt_tok.decode(prefix + row)) for row in rows]
        if self.plain:
            return join_fields(texts)
        return "\n".join(f"[{i}] {t}" for i, t in enumerate(texts, start=1))
