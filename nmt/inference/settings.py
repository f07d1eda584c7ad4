"""The REPL's settings (what `:beam 5`, `:temp 0.8`... change) and the checks of
their values. The commands themselves and the answers are in `session.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# the longest answers `:len` allows (models are trained on far shorter ones, and
# longer answers take minutes): an LM's in characters, a translation's in tokens
MAX_LM_CHARS = 10_000
MAX_TGT_TOKENS = 1_000
MAX_SECONDS = 3600.0  # the most `:time` and --max-seconds allow


class CommandError(ValueError):
    """A bad command or argument; the message is shown and the session goes on."""


@dataclass
class Settings:
    """What the next answer uses; changed live by `:commands`."""

    mode: str = "beam"  # beam | sample
    beam: int = 5  # beam width B
    nbest: int = 3  # answers per line: n-best (<= beam) or samples
    temperature: float = 0.8
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    max_len: int = 0  # LM: characters; translation: target tokens, 0 = a*|src|+b
    seed: int | None = None  # None = a fresh random seed per answer
    prefix: str = ""  # translation: forced start of the target
    max_seconds: float = 20.0  # an answer stops at this time with what it has

    def describe(self) -> str:
        length = self.max_len or "auto"
        seed = "random" if self.seed is None else self.seed
        return (
            f"mode={self.mode} beam={self.beam} nbest={self.nbest} "
            f"temp={self.temperature:g} topk={self.top_k} topp={self.top_p:g} "
            f"len={length} seed={seed} time={self.max_seconds:g}s "
            f"prefix={self.prefix!r}"
        )


def check_seconds(seconds: float, name: str) -> float:
    """`seconds` if it is a time limit the REPL allows, else ValueError."""
    if not (math.isfinite(seconds) and 0.1 <= seconds <= MAX_SECONDS):
        raise ValueError(
            f"{name} must be between 0.1 and {MAX_SECONDS:g} seconds, got {seconds:g}"
        )
    return seconds


def default_settings(is_lm: bool, plain: bool = False) -> Settings:
    """An LM samples 300 characters; a translation beam-searches, with 3 answers
    on a terminal and 1 in plain (pipe) mode, whose output would otherwise change
    from one field per line to three."""
    if is_lm:
        return Settings(mode="sample", nbest=1, max_len=300)
    return Settings(nbest=1 if plain else 3)


def number(
    arg: str,
    name: str,
    kind: type,
    low: float,
    high: float | None = None,
    why: str = "",
) -> float:
    """`kind(arg)` if it is a finite number in [low, high], else CommandError
    (saying `why` there is a maximum)."""
    try:
        value = kind(arg)
        finite = math.isfinite(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float
        value, finite = math.nan, False
    if not (finite and low <= value and (high is None or value <= high)):
        bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise CommandError(f":{name} needs a number {bound}{why}, got {arg!r}")
    return value
