"""Write N hostile input lines (bytes) for timing `nmt.translate` on garbage.

    python scripts/hostile_lines.py --lines 2000 --seed 1 > /tmp/hostile.de

Each line is drawn from one of the kinds below, uniformly: empty and blank lines,
very long lines (up to 100,000 characters) of random text, one very long "word",
invalid UTF-8, NUL and control characters, the separators Python's `splitlines`
breaks on (\\x0b \\x0c \\x1c-\\x1e \\x85 \\u2028 \\u2029), emoji, RTL text, CJK,
URLs. Only b"\\n" ends a line. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from collections.abc import Callable

SEPARATORS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
CONTROL = "".join(map(chr, range(32))).replace("\n", "") + "\x7f"
EMOJI = "😀🤖🚀👍🏽🇩🇪👨‍👩‍👧❤️‍🔥🎉"
RTL = "שלום עולם مرحبا بالعالم"
CJK = "我能吞下玻璃而不伤身体。日本語のテキスト한국어"
GERMAN = "Ein Mann mit einem roten Hut fährt Fahrrad auf der Straße ."


def _text(rng: random.Random, size: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


def _words(rng: random.Random, size: int) -> str:
    """Random 'words' of letters, digits and punctuation, about `size` characters."""
    alphabet = string.ascii_letters + string.digits + string.punctuation + "äöüß"
    out, length = [], 0
    while length < size:
        word = _text(rng, rng.randint(1, 12), alphabet)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def _mixed(rng: random.Random, size: int) -> str:
    """Everything at once: words, emoji, RTL, CJK, separators, control chars."""
    pool = [GERMAN, EMOJI, RTL, CJK, SEPARATORS, CONTROL, "http://x.de/?a=1&b=%20"]
    out, length = [], 0
    while length < size:
        part = rng.choice(pool)
        part = part[rng.randrange(len(part)) :] + " " + _words(rng, 20)
        out.append(part)
        length += len(part)
    return "".join(out)


KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "empty": lambda rng: b"",
    "blank": lambda rng: _text(rng, rng.randint(1, 200), " \t\r\f\v").encode(),
    "long_words": lambda rng: _words(
        rng, rng.choice([2_000, 20_000, 100_000])
    ).encode(),
    "long_mixed": lambda rng: _mixed(
        rng, rng.choice([1_000, 10_000, 100_000])
    ).encode(),
    "long_word": lambda rng: _text(
        rng, rng.choice([300, 5_000, 50_000]), string.ascii_lowercase
    ).encode(),
    "bad_utf8": lambda rng: (
        GERMAN.encode()[:20]
        + bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 400)))
    ),
    "control": lambda rng: (GERMAN + _text(rng, 30, CONTROL) + "\x00").encode(),
    "separators": lambda rng: SEPARATORS.join(GERMAN.split()).encode(),
    "emoji": lambda rng: _text(rng, rng.randint(1, 300), EMOJI).encode(),
    "rtl": lambda rng: ((RTL + " ") * rng.randint(1, 20)).encode(),
    "cjk": lambda rng: (CJK * rng.randint(1, 30)).encode(),
    "url": lambda rng: (
        "https://example.org/"
        + _text(rng, rng.randint(10, 2000), string.printable[:94])
    ).encode(),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    names = sorted(KINDS)
    out = sys.stdout.buffer
    for _ in range(args.lines):
        line = KINDS[rng.choice(names)](rng)
        out.write(line.replace(b"\n", b" ") + b"\n")


if __name__ == "__main__":
    main()
