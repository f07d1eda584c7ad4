"""Peak RSS of a whole `nmt.translate` process, as `/usr/bin/time -f %M` reports it.

    python scripts/bench_memory.py --ckpt RUN/checkpoints/best.pt \
        --input ../shared/data/multi30k/test_2016_flickr.de [--beams 1,5] [--rounds 3]

Each round runs every (setting, beam) once, interleaved, so a busy machine
affects all alike. Settings: `capped` is what nmt does (oneDNN's kernel caches
capped: `nmt.utils.memory.bound_kernel_caches`); `uncapped` gives both caches
oneDNN's default 1,024 entries, as before the cap. The translations of the two
must be byte-identical; the script says so. Run it alone (one CPU job at a time).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {
    "capped": {},
    "uncapped": {
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024",
        "LRU_CACHE_CAPACITY": "1024",
    },
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in text.splitlines())
        if value
    )
    name = fields.get("model name", "unknown CPU")
    family = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    bf16 = "with" if "avx512_bf16" in text else "no"
    return f"{name} ({family}), {bf16} AVX512-BF16"


def run_once(args: argparse.Namespace, beam: int, env: dict[str, str]) -> tuple:
    """(peak RSS MiB, seconds, sha256 of stdout) of one translate process."""
    command = [
        sys.executable,
        "-m",
        "nmt.translate",
        "--ckpt",
        args.ckpt,
        "--input",
        args.input,
        "--beam",
        str(beam),
        "--threads",
        str(args.threads),
    ]
    began = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, **env},
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - began
    if status != 0:
        sys.exit(f"bench_memory: error: {' '.join(command)} failed ({status})")
    return usage.ru_maxrss / 1024, seconds, hashlib.sha256(out).hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--input", required=True, help="one sentence per line")
    p.add_argument("--beams", default="1,5")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    beams = [int(b) for b in args.beams.split(",")]
    runs: dict[tuple[str, int], list[tuple]] = {}
    for _ in range(args.rounds):
        for beam in beams:
            for name, env in SETTINGS.items():
                runs.setdefault((name, beam), []).append(run_once(args, beam, env))
    lines = sum(1 for _ in open(args.input, "rb"))
    print(f"{cpu_name()}; {args.threads} threads; {lines} lines; {args.rounds} rounds")
    print(
        "| kernel caches | beam | peak RSS MiB (median, min-max) | seconds (median) |"
    )
    print("| --- | --- | --- | --- |")
    for (name, beam), found in runs.items():
        rss = [r[0] for r in found]
        print(
            f"| {name} | {beam} | {statistics.median(rss):.0f} "
            f"({min(rss):.0f}-{max(rss):.0f}) | "
            f"{statistics.median(r[1] for r in found):.1f} |"
        )
    for beam in beams:
        digests = {r[2] for name in SETTINGS for r in runs[(name, beam)]}
        same = "identical" if len(digests) == 1 else "DIFFERENT"
        print(f"beam {beam}: translations of all runs {same}")


if __name__ == "__main__":
    main()
