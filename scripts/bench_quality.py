"""Quality in a training budget: the numbers of docs/quality.md.

    python scripts/bench_quality.py translation --root runs/quality --minutes 60 \
        [--pairs de-en,en-de,fr-en,en-fr,cs-en,en-cs] [--average 2,4] [--beam 5] \
        [--set KEY=VALUE ...]
    python scripts/bench_quality.py lm --root runs/quality --minutes 60 [--set ...]

`translation` trains the shipped `multi30k_<src>_<tgt>` recipe of each pair for
`--minutes` into ROOT/multi30k_<src>_<tgt> (keeping the last checkpoints,
`train.keep_last`), then scores on val and test (beam `--beam`): best.pt alone,
the average of the last K checkpoints (`nmt.average --last K`) and the ensemble
of those K (`--ckpt` once per model), each against best.pt. All come from one
run, so every row of a pair has the same training time. Choose on val only.

`lm` trains the shipped `shakespeare_char` config for `--minutes` into
ROOT/shakespeare_char and reports its best val loss in nats/char, beside the
best of the trained (not averaged) weights when the config averages them
(`train.ema`).

A run dir that holds a finished run is scored, not trained again, and finished
evaluations are read back. Pairs run one after the other: run the script alone
on the machine (one CPU-heavy job at a time). It prints a markdown table and
writes it to ROOT/<task>.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "scripts"))
from bench_memory import cpu_name  # noqa: E402


def run(command: list[str]) -> None:
    print("$", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=REPO, stdout=sys.stderr)


def module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", name, *args]


def finished(run_dir: Path) -> dict | None:
    """result.json of a run that ended on a limit (not stopped), else None."""
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return None if result.get("status") == "stopped" else result


def train(experiment: str, run_dir: Path, args: argparse.Namespace, *extra: str):
    """result.json of `experiment` trained for args.minutes in `run_dir`."""
    if finished(run_dir) is None:
        run(
            module(
                "nmt.train",
                f"experiment={experiment}",
                f"train.max_minutes={args.minutes}",
                f"hydra.run.dir={run_dir}",
                *extra,
                *args.set,
            )
        )
    if (result := finished(run_dir)) is None:
        sys.exit(f"bench_quality: the training in {run_dir} did not finish")
    return result


def score(ckpts: list[Path], split: str, out: Path, args: argparse.Namespace) -> dict:
    """result.json of `nmt.evaluate` of `ckpts` (an ensemble if several)."""
    if not (out / "result.json").is_file():
        flags = [f for c in ckpts for f in ("--ckpt", str(c))]
        run(
            module(
                "nmt.evaluate",
                *flags,
                f"split={split}",
                f"data.root={args.data / 'multi30k'}",
                f"search.beam_size={args.beam}",
                f"hydra.run.dir={out}",
            )
        )
    return json.loads((out / "result.json").read_text())


def candidates(run_dir: Path, ks: list[int]) -> dict[str, list[Path]]:
    """best.pt, and per K the average and the ensemble of the last K kept."""
    ckpts = run_dir / "checkpoints"
    kept = sorted(
        (int(p.stem.removeprefix("step_")), p) for p in ckpts.glob("step_*.pt")
    )
    rows = {"best.pt": [ckpts / "best.pt"]}
    for k in ks:
        if k > len(kept):
            print(f"{run_dir}: {len(kept)} kept, not {k}: no K={k}", file=sys.stderr)
            continue
        avg = run_dir / f"avg_last{k}.pt"
        if not avg.is_file():
            run(
                module("nmt.average", str(run_dir), "--last", str(k), "--out", str(avg))
            )
        rows[f"average of last {k}"] = [avg]
        rows[f"ensemble of last {k}"] = [p for _, p in kept[-k:]]
    return rows


def translation(args: argparse.Namespace) -> list[str]:
    ks = [int(k) for k in args.average.split(",")]
    table = [
        f"{cpu_name()}; {args.minutes} min of training per direction "
        f"(every row of a direction comes from its one run); beam {args.beam}",
        "",
        "| direction | model | val BLEU (vs best.pt) | val chrF | test BLEU (vs best.pt) "
        "| test chrF | steps | target tokens/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for pair in args.pairs.split(","):
        src, tgt = pair.split("-")
        run_dir = args.root / f"multi30k_{src}_{tgt}"
        result = train(
            f"multi30k_{src}_{tgt}",
            run_dir,
            args,
            f"data.root={args.data / 'multi30k'}",
            f"train.keep_last={max(ks)}",
        )
        base: tuple[float, float] | None = None
        for name, paths in candidates(run_dir, ks).items():
            slug = name.replace(" ", "_").replace(".pt", "")
            val, test = (
                score(paths, s, run_dir / "quality" / f"{slug}.{s}", args)
                for s in ("val", "test")
            )
            base = base or (val["bleu"], test["bleu"])
            dv, dt = val["bleu"] - base[0], test["bleu"] - base[1]
            table.append(
                f"| {src}→{tgt} | {name} | {val['bleu']:.2f} ({dv:+.2f}) | "
                f"{val['chrf']:.2f} | {test['bleu']:.2f} ({dt:+.2f}) | "
                f"{test['chrf']:.2f} | {result['steps']} | {result['tokens_per_s']} |"
            )
    return table


def lm(args: argparse.Namespace) -> list[str]:
    run_dir = args.root / "shakespeare_char"
    text = args.data / "tinyshakespeare" / "input.txt"
    result = train("shakespeare_char", run_dir, args, f"data.path={text}")
    records = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    best = min(records, key=lambda r: r["val_loss"])
    trained = min(r.get("val_loss_trained", r["val_loss"]) for r in records)
    return [
        f"{cpu_name()}; shakespeare_char, {args.minutes} min budget: "
        f"{result['steps']} steps, stopped by {result['stop_reason']}",
        "",
        "| best val loss (nats/char) | bits/char | step | minutes | best of the trained "
        "weights (no average) | characters/s |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {best['val_loss']:.4f} | {best['val_bpc']:.3f} | {best['step']} | "
        f"{best['elapsed_s'] / 60:.1f} | {trained:.4f} | {result['tokens_per_s']} |",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", choices=["translation", "lm"])
    p.add_argument("--root", type=Path, required=True, help="where the runs go")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--pairs", default="de-en", help="translation: SRC-TGT,...")
    p.add_argument("--average", default="2,4", help="translation: the K to average")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--data", type=Path, default=DATA, help="../shared/data")
    p.add_argument("--set", action="append", default=[], help="a training override")
    args = p.parse_args()
    args.root = args.root.resolve()
    args.root.mkdir(parents=True, exist_ok=True)
    table = translation(args) if args.task == "translation" else lm(args)
    text = "\n".join(table) + "\n"
    (args.root / f"{args.task}.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
