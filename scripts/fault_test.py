"""Soak and fault test (issue 21), on a tiny model, bounded in count and time.

    python scripts/fault_test.py [--part 1,2,3] [--kills 20] [--signals 10]
        [--lines 10000] [--ckpt CKPT --ordinary FILE] [--work DIR] [--seed 1]

Every program runs as a subprocess (`python -m nmt.<command>`), so signals, exit
statuses and peak memory (RSS, from wait4) are real. Run it alone on the machine.

1. Interrupted training: SIGKILLs and SIGINT/SIGTERMs at random moments and on
   purpose inside checkpoint writes, right after a validation is logged, in the
   final validation and in the test at the end, resuming each time. Every
   checkpoint loads after each interruption; SIGINT/SIGTERM exit 130/143 with no
   traceback, say how to resume and leave last.pt at the last step done. Each
   run's last.pt/best.pt weights equal an uninterrupted run's (bitwise, fp32), its
   metrics.jsonl steps and test BLEU too, and no temporary file is left.
2. Hostile input lines through `nmt.translate` (beam 1 and 5, nbest 3, batch 1 and
   64): exit 0, one output line per input line (`wc -l`), known sentences at known
   positions translated as when alone, no traceback; time against as many
   ordinary lines (target: at most 3x) and peak RSS.
3. Hostile checkpoints (code-running pickles, truncated, random, empty, a
   directory, edited contents) through translate, evaluate, generate, repl and
   resume: exit 2 with a one-line `error:`, no traceback, the payload never runs.

Prints a table per part and `failures: N`; exits 1 if N > 0.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostile_lines import KINDS  # beside this script

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}
sys.path.insert(0, str(REPO))
from tests.conftest import PAIRS  # noqa: E402  (the tests' tiny corpus)

STEPS, VALID_EVERY = 150, 15  # tiny training: 10 validations, ~10 s on one thread


@dataclass
class Row:
    """One line of a result table; it fails when `problems` is not empty."""

    cells: dict[str, Any]
    problems: list[str] = field(default_factory=list)


@dataclass
class Child:
    """A finished subprocess."""

    rc: int  # negative: killed by that signal
    seconds: float
    rss_mb: float  # peak resident memory
    stderr: str


# -- subprocesses ---------------------------------------------------------------
def start(
    args: list[str], stdin: Path | None, stdout: Path, stderr: Path
) -> subprocess.Popen:
    with open(stdin or os.devnull, "rb") as i, open(stdout, "wb") as o:
        with open(stderr, "wb") as e:
            return subprocess.Popen(args, stdin=i, stdout=o, stderr=e, env=ENV)


def reap(proc: subprocess.Popen, began: float, stderr: Path) -> Child | None:
    """The Child once `proc` has ended (None if not yet)."""
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = stderr.read_text(encoding="utf-8", errors="replace")
    return Child(proc.returncode, time.time() - began, usage.ru_maxrss / 1024, text)


def run(
    args: list[str], out: Path, stdin: Path | None = None, timeout: float = 900.0
) -> Child:
    """Run to the end (killed after `timeout` s); stdout in `out`, stderr beside."""
    began, err = time.time(), out.with_suffix(out.suffix + ".err")
    proc = start(args, stdin, out, err)
    while (child := reap(proc, began, err)) is None:
        if time.time() - began > timeout:
            proc.kill()
        time.sleep(0.01)
    return child


def last_line(text: str) -> str:
    return next((s for s in reversed(text.splitlines()) if s.strip()), "")


def traceback(stderr: str) -> list[str]:
    """["traceback (<the exception line>)"] if `stderr` has a traceback, else []."""
    if "Traceback" not in stderr:
        return []
    found = re.findall(r"^[\w.]+(?:Error|Exception|Interrupt)\b.*$", stderr, re.M)
    return [f"traceback ({found[-1][:90] if found else '?'})"]


# -- the tiny training run ------------------------------------------------------
def write_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, pairs in (("train", PAIRS), ("val", PAIRS[:4]), ("test", PAIRS[4:8])):
        (root / f"{split}.de").write_text("".join(de + "\n" for de, _ in pairs))
        (root / f"{split}.en").write_text("".join(en + "\n" for _, en in pairs))
    return root


def train_args(work: Path, run_dir: Path, seed: int, *, resume: bool) -> list[str]:
    return [PY, "-m", "nmt.train", f"data.root={work / 'corpus'}",
            "data.test_split=test", "data.batch_tokens=40", "data.max_sentences=4",
            "tokenizer.vocab_size=60", "tokenizer.hard_vocab_limit=false",
            "model.hidden_size=32", "model.embed_size=24", f"train.seed={seed}",
            "train.lr=0.01", f"train.max_steps={STEPS}",
            f"train.valid_every={VALID_EVERY}", "train.threads=1",
            "train.precision=fp32", "train.device=cpu", "train.log_every=1",
            f"train.cache_dir={work / 'cache'}", "search.beam_size=1",
            f"hydra.run.dir={run_dir}", f"train.resume={str(resume).lower()}"]  # fmt: skip


def baseline(work: Path, seed: int) -> tuple[Path, float]:
    """The uninterrupted tiny run (trained once per work dir) and its wall time."""
    run_dir = work / "baseline"
    write_corpus(work / "corpus")
    if not (run_dir / "seconds").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        child = run(train_args(work, run_dir, seed, resume=False), run_dir / "stdout")
        if child.rc != 0:
            sys.exit(f"fault_test: the tiny training failed:\n{child.stderr[-2000:]}")
        (run_dir / "seconds").write_text(f"{child.seconds:.2f}")
    return run_dir, float((run_dir / "seconds").read_text())


# -- part 1: interrupted training -------------------------------------------------
# where the kills and stops land: a random delay, or at once when a checkpoint
# write starts (best-write: of best.pt; last-best: of the run's last best.pt), a
# validation is logged, the final validation starts, the test at the end starts
TRIGGERS_KILL = "random ckpt-write metrics last-best random best-write final-val test"
TRIGGERS_KILL = TRIGGERS_KILL.split()
TRIGGERS_STOP = "random ckpt-write final-val test metrics".split()


@dataclass
class Event:
    sig: signal.Signals
    trigger: str
    delay: float  # seconds after the start, for "random"


def plan(kills: int, stops: int, rng: random.Random, span: float) -> list[Event]:
    """`kills` SIGKILLs and `stops` SIGINT/SIGTERMs, shuffled."""
    events = [
        Event(signal.SIGKILL, TRIGGERS_KILL[i % len(TRIGGERS_KILL)], 0.0)
        for i in range(kills)
    ]
    for i in range(stops):
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        events.append(Event(sig, TRIGGERS_STOP[i % len(TRIGGERS_STOP)], 0.0))
    rng.shuffle(events)
    for e in events:
        e.delay = rng.uniform(0.0, 0.9 * span)
    return events


def logged_steps(log: str) -> list[int]:
    return [int(s) for s in re.findall(r"\] - step (\d+) loss", log)]


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def metric_steps(run_dir: Path) -> list[int]:
    return [record["step"] for record in metrics(run_dir)]


def last_best(run_dir: Path) -> int:
    """The step of the last validation that wrote best.pt."""
    best, step = -1.0, 0  # as Progress.best_bleu starts
    for record in metrics(run_dir):
        if record["val_bleu"] > best:
            best, step = record["val_bleu"], record["step"]
    return step


class Watch:
    """What a training process has done so far, read from its files."""

    def __init__(self, run_dir: Path, err: Path, steps: tuple[int, int]) -> None:
        self.ckpts, self.run_dir, self.err = run_dir / "checkpoints", run_dir, err
        self.final, self.last_best = steps  # of the final and last best validation
        self.old_tmp = set(self.tmp_files())  # left by a killed session
        self.low = len(metric_steps(run_dir))

    def tmp_files(self) -> list[str]:
        return (
            [p.name for p in self.ckpts.glob(".*.tmp")] if self.ckpts.is_dir() else []
        )

    def new_tmp(self, prefix: str = ".") -> bool:
        return any(n.startswith(prefix) for n in set(self.tmp_files()) - self.old_tmp)

    def log(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def fired(self, event: Event, seconds: float) -> bool:
        if event.trigger == "random":
            return seconds >= event.delay
        if event.trigger == "ckpt-write":
            return self.new_tmp()
        if event.trigger == "best-write":
            return self.new_tmp(".best.pt")
        if event.trigger == "last-best":
            steps = metric_steps(self.run_dir)
            return self.new_tmp(".best.pt") and steps[-1:] == [self.last_best]
        if event.trigger == "metrics":
            lines = len(metric_steps(self.run_dir))
            self.low = min(self.low, lines)  # resume may drop records first
            return lines > self.low
        if event.trigger == "final-val":
            return f"step {self.final} loss" in self.log()
        return "training stopped (" in self.log()  # "test": the test at the end

    def phase(self) -> str:
        log, steps = self.log(), logged_steps(self.log())
        if self.new_tmp():
            return "ckpt write"
        if "training stopped (" in log:
            return "test at end"
        if not steps:
            return "start-up"
        return "final val" if steps[-1] == self.final else f"after step {steps[-1]}"


def ckpt_step(path: Path) -> int | None:
    from nmt.training.checkpoint import load_checkpoint

    return load_checkpoint(path)["progress"]["step"] if path.exists() else None


def unreadable(ckpts: Path) -> list[str]:
    from nmt.training.checkpoint import CheckpointError, load_checkpoint

    bad = []
    for path in sorted(ckpts.glob("*.pt")):
        try:
            load_checkpoint(path)
        except CheckpointError as error:
            bad.append(f"{path.name} unreadable: {error}")
    return bad


@dataclass
class Session:
    """One training process of a run, perhaps interrupted."""

    child: Child
    sent: dict[str, Any]  # {"at": s, "hit": phase, "offset": in stderr}; {} = none
    before: int | None  # last.pt's step when it began
    steps: list[int]  # the steps it logged


def session(
    work: Path, run_dir: Path, seed: int, event: Event | None, steps: tuple[int, int]
) -> Session:
    """One training process, interrupted by `event` (if given and in time)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(run_dir.glob("session*.err")))  # the first one starts afresh
    err = run_dir / f"session{n}.err"
    before = ckpt_step(run_dir / "checkpoints" / "last.pt")
    watch, began = Watch(run_dir, err, steps), time.time()
    args = train_args(work, run_dir, seed, resume=n > 0)
    proc = start(args, None, err.with_suffix(".out"), err)
    sent: dict[str, Any] = {}
    while (child := reap(proc, began, err)) is None:
        seconds = time.time() - began
        if event and not sent and watch.fired(event, seconds):
            sent = {"at": seconds, "hit": watch.phase(), "offset": len(watch.log())}
            proc.send_signal(event.sig)
        if seconds > 600:
            proc.kill()
        time.sleep(0.002)
    return Session(child, sent, before, logged_steps(child.stderr))


def stop_problems(event: Event, s: Session, last: Path) -> list[str]:
    """SIGINT/SIGTERM: exit 128 + signal, a resume hint, last.pt at the last step."""
    problems = []
    if s.child.rc != 128 + event.sig:
        problems.append(f"exit {s.child.rc}, not {128 + event.sig}")
    if not re.search(r"resum", s.child.stderr[s.sent["offset"] :], re.I):
        problems.append("no resume hint after the signal")
    done = s.steps[-1] if s.steps else s.before
    if done is not None and ckpt_step(last) != done:
        problems.append(f"last.pt at step {ckpt_step(last)}, last step done {done}")
    return problems


def compare_run(run_dir: Path, base: Path) -> list[str]:
    """The interrupted run against the uninterrupted one."""
    import torch

    from nmt.training.checkpoint import load_checkpoint

    problems = []
    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(base / "checkpoints" / name)["model"]
        b = load_checkpoint(run_dir / "checkpoints" / name)["model"]
        differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
        if differ:
            problems.append(f"{name}: {len(differ)} tensors differ ({differ[0]}...)")
    if metric_steps(run_dir) != metric_steps(base):
        problems.append(f"metrics.jsonl steps {metric_steps(run_dir)}")
    bleu = [
        json.loads((d / "result.json").read_text())["test_bleu"]
        for d in (base, run_dir)
    ]
    if bleu[0] != bleu[1]:
        problems.append(f"test BLEU {bleu[1]} != {bleu[0]}")
    if stray := list((run_dir / "checkpoints").glob(".*.tmp")):
        problems.append(f"stray temporary files: {[p.name for p in stray]}")
    return problems


def interrupted_run(
    work: Path, number: int, events: list[Event], seed: int, steps: tuple[int, int]
) -> list[Row]:
    """Run `number` from scratch, interrupted by events taken from `events` until
    it completes; rows for its interruptions and its end."""
    run_dir, base = work / "part1" / f"run{number}", work / "baseline"
    shutil.rmtree(run_dir, ignore_errors=True)
    rows = []
    while True:
        event = events[0] if events else None
        s = session(work, run_dir, seed, event, steps)
        problems = traceback(s.child.stderr)
        if not s.sent:  # completed
            problems += [f"exit {s.child.rc}"] if s.child.rc else []
            try:
                problems = problems or compare_run(run_dir, base)
            except Exception as error:  # a missing file, a key: still a finding
                problems.append(f"cannot compare: {type(error).__name__}: {error}")
            if event and not rows and event.trigger == "random":
                event.delay /= 2  # later than this run took: try again sooner
            elif event and not rows:  # it never fires, even in a whole run
                problems.append(f"trigger {events.pop(0).trigger} never fired")
            cells = {"run": number, "hit": "completed", "exit": s.child.rc}
            return rows + [Row(cells, problems)]
        events.pop(0)
        problems += unreadable(run_dir / "checkpoints")
        if event.sig != signal.SIGKILL:
            problems += stop_problems(event, s, run_dir / "checkpoints" / "last.pt")
        cells = {"run": number, "signal": event.sig.name, "trigger": event.trigger}
        cells |= {"at s": f"{s.sent['at']:.2f}", "hit": s.sent["hit"]}
        rows.append(Row({**cells, "exit": s.child.rc}, problems))


def part_training(work: Path, args: argparse.Namespace, deadline: float) -> list[Row]:
    base, span = baseline(work, args.seed)
    events = plan(args.kills, args.signals, random.Random(args.seed), span)
    steps = metric_steps(base)[-1], last_best(base)  # the final and last best
    rows: list[Row] = []
    number = 0
    while events and time.time() < deadline:
        number += 1
        rows += interrupted_run(work, number, events, args.seed, steps)
    rows += [Row({"signal": e.sig.name}, ["not run: time limit"]) for e in events]
    count = itertools.count(1)
    for row in rows:  # number the interruptions
        mark = "" if row.cells.get("hit") == "completed" else next(count)
        row.cells = {"#": mark, **row.cells}
    return rows


# -- part 2: hostile input lines ----------------------------------------------------
HOSTILE = sorted(KINDS)  # scripts/hostile_lines.py: one line of each in turn
KNOWN_EVERY = 10  # line i is a known sentence when i % KNOWN_EVERY == KNOWN_AT
KNOWN_AT = 3


def write_inputs(
    work: Path, lines: int, known: list[str], seed: int
) -> tuple[Path, Path, Path]:
    """hostile.txt (known sentences at known positions), ordinary.txt, known.txt."""
    rng = random.Random(seed)
    hostile = [
        known[(i // KNOWN_EVERY) % len(known)].encode()
        if i % KNOWN_EVERY == KNOWN_AT
        else KINDS[HOSTILE[i % len(HOSTILE)]](rng).replace(b"\n", b" ")
        for i in range(lines)
    ]
    assert not any(b"\n" in line for line in hostile)
    paths = work / "hostile.txt", work / "ordinary.txt", work / "known.txt"
    paths[0].write_bytes(b"".join(line + b"\n" for line in hostile))
    ordinary = (known * (lines // len(known) + 1))[:lines]
    paths[1].write_text("".join(s + "\n" for s in ordinary), encoding="utf-8")
    paths[2].write_text("".join(s + "\n" for s in known), encoding="utf-8")
    return paths


def outputs(path: Path, nbest: int) -> list[list[str]] | None:
    """Per input line, its output lines without ids (None: ids out of order)."""
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")[:-1]
    if not nbest:
        return [[line] for line in lines]
    groups: list[list[str]] = []
    for line in lines:
        number, _, rest = line.partition(" ||| ")
        if number == str(len(groups)):
            groups.append([])
        elif number != str(len(groups) - 1):
            return None
        groups[-1].append(rest)
    return groups


def translate_args(ckpt: Path, beam: int, batch: int, nbest: int) -> list[str]:
    return [PY, "-m", "nmt.translate", "--ckpt", str(ckpt), "--beam", str(beam),
            "--batch-size", str(batch), "--nbest", str(nbest), "--threads", "1",
            "--precision", "fp32"]  # fmt: skip


SETTINGS = [(1, 1, 0), (1, 64, 0), (5, 64, 0), (5, 64, 3)]  # beam, batch, nbest


def check_setting(
    folder: Path, ckpt: Path, setting: tuple[int, int, int], known: int, startup: float
) -> Row:
    """Translate ordinary.txt, hostile.txt and known.txt (at batch 1) with one
    (beam, batch, nbest) setting; compare the known sentences and the times."""
    beam, batch, nbest = setting
    name, cmd = f"b{beam}_n{batch}_k{nbest}", translate_args(ckpt, *setting)
    alone = run(
        translate_args(ckpt, beam, 1, nbest),
        folder / f"{name}.alone",
        folder / "known.txt",
    )
    ordinary = run(cmd, folder / f"{name}.ordinary", folder / "ordinary.txt")
    hostile = run(cmd, folder / f"{name}.hostile", folder / "hostile.txt")
    runs = {"alone": alone, "ordinary": ordinary, "hostile": hostile}
    problems = [f"{k} exit {c.rc}" for k, c in runs.items() if c.rc]
    problems += [f"{k} {t}" for k, c in runs.items() for t in traceback(c.stderr)]
    lines = (folder / "ordinary.txt").read_bytes().count(b"\n")
    got = outputs(folder / f"{name}.hostile", nbest)
    want = outputs(folder / f"{name}.alone", nbest) or []
    positions = range(KNOWN_AT, lines, KNOWN_EVERY)
    wrong = len(positions)
    if got is None or len(got) != lines:
        count = "ids out of order in" if got is None else f"{len(got)} lines for"
        problems.append(f"output: {count} {lines} input lines")
    elif len(want) == known:
        wrong = sum(got[i] != want[(i // KNOWN_EVERY) % known] for i in positions)
    if wrong:
        problems.append(f"{wrong} known sentences not as when alone")
    net = ordinary.seconds - startup
    ratio = (hostile.seconds - startup) / net if net >= 1.0 else None
    if ratio is not None and ratio > 3:
        problems.append(f"hostile/ordinary time {ratio:.1f} > 3")
    cells = {"beam": beam, "batch": batch, "nbest": nbest, "lines": lines}
    cells |= {
        "exit": hostile.rc,
        "known ok": f"{len(positions) - wrong}/{len(positions)}",
    }
    cells |= {
        "ordinary s": f"{ordinary.seconds:.1f}",
        "hostile s": f"{hostile.seconds:.1f}",
    }
    cells |= {
        "ratio": "too short" if ratio is None else f"{ratio:.2f}",
        "RSS MB": f"{hostile.rss_mb:.0f}/{ordinary.rss_mb:.0f}",
    }
    return Row(cells, problems)


def part_lines(work: Path, args: argparse.Namespace, deadline: float) -> list[Row]:
    if args.ckpt:
        ckpt = Path(args.ckpt).resolve()
        text = Path(args.ordinary).read_text(encoding="utf-8").split("\n")
        known = list(dict.fromkeys(s for s in text if s.strip()))[:50]
    else:
        ckpt = baseline(work, args.seed)[0] / "checkpoints" / "best.pt"
        known = [de for de, _ in PAIRS]
    folder = work / "part2"
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs(folder, args.lines, known, args.seed)
    startup = min(  # of a run without input: taken off the times of the ratio
        run(translate_args(ckpt, 1, 64, 0), folder / f"empty{i}.out").seconds
        for i in range(2)
    )
    print(f"(translate start-up {startup:.1f} s is taken off both times of the ratio)")
    rows = []
    for setting in SETTINGS:
        if time.time() > deadline:
            rows.append(
                Row(
                    dict(zip(("beam", "batch", "nbest"), setting)),
                    ["not run: time limit"],
                )
            )
            continue
        rows.append(check_setting(folder, ckpt, setting, len(known), startup))
    return rows


# -- part 3: hostile checkpoints ------------------------------------------------------
class Payload:
    """Pickles as a call that creates `marker`: loading it must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
        return os.system, (f"touch {self.marker}",)


def edited(real: dict[str, Any], edit: str) -> dict[str, Any]:
    """A copy of the checkpoint `real` with one `edit`."""
    import copy

    import torch

    c = copy.deepcopy(real)
    if edit == "hidden_size changed":
        c["config"]["model"]["hidden_size"] *= 2
    elif edit == "config key removed":
        del c["config"]["model"]["hidden_size"]
    elif edit == "model removed":
        del c["model"]
    elif edit == "progress a string":
        c["progress"] = "step 3"
    elif edit == "config a string":
        c["config"] = "model: gru"
    elif edit == "kind lm":
        c["kind"] = "lm"
    elif edit == "format_version 99":
        c["format_version"] = 99
    elif edit == "tokenizer garbage":
        c["tokenizers"]["src"] = b"not a sentencepiece model"
    elif edit == "weight wrong shape":
        name = next(iter(c["model"]))
        c["model"][name] = torch.zeros(3, 3)
    return c


EDITS = [
    "hidden_size changed",
    "config key removed",
    "model removed",
    "progress a string",
    "config a string",
    "kind lm",
    "format_version 99",
    "tokenizer garbage",
    "weight wrong shape",
]
HARMLESS = {"progress a string": ("translate", "evaluate", "repl")}  # may work: exit 0


def hostile_checkpoints(
    folder: Path, real_path: Path, marker: Path, seed: int
) -> dict[str, Path]:
    import torch

    real_bytes, real = real_path.read_bytes(), torch.load(real_path, weights_only=True)
    files = {
        "pickle runs code": pickle.dumps(Payload(marker)),
        "torch.save runs code": lambda f: torch.save(
            {"format": "nmt", "x": Payload(marker)}, f
        ),
        "code inside ckpt": lambda f: torch.save(
            {**real, "config": Payload(marker)}, f
        ),
        "truncated half": real_bytes[: len(real_bytes) // 2],
        "truncated 100 B": real_bytes[:100],
        "random bytes": random.Random(seed).randbytes(4096),
        "empty": b"",
    }
    for edit in EDITS:
        files[edit] = lambda f, e=edit: torch.save(edited(real, e), f)
    paths = {"control (real)": real_path}
    for i, (name, data) in enumerate(files.items()):
        path = folder / f"case{i}.pt"
        with open(path, "wb") as f:
            f.write(data) if isinstance(data, bytes) else data(f)
        paths[name] = path
    (folder / "a_directory.pt").mkdir(exist_ok=True)
    paths["directory"] = folder / "a_directory.pt"
    return paths


def program_args(prog: str, ckpt: Path, work: Path, out: Path, seed: int) -> list[str]:
    """The command that hands `ckpt` to `prog` (resume: as last.pt of a run)."""
    if prog == "resume":
        target = out / "checkpoints" / "last.pt"
        target.parent.mkdir(parents=True)
        (shutil.copytree if ckpt.is_dir() else shutil.copy)(ckpt, target)
        return train_args(work, out, seed, resume=True)
    if prog == "evaluate":
        data = f"data.root={work / 'corpus'}"
        return [PY, "-m", "nmt.evaluate", f"ckpt={ckpt}", "split=test", data,
                "threads=1", f"hydra.run.dir={out}"]  # fmt: skip
    extra = {"generate": ["--prompt", "ROMEO:", "--max-chars", "20", "--seed", "1"]}
    extra["repl"] = ["--history", ""]
    flags = ["--ckpt", str(ckpt), "--threads", "1", *extra.get(prog, [])]
    return [PY, "-m", f"nmt.{prog}", *flags]


PROGRAMS = ["translate", "evaluate", "generate", "repl", "resume"]


def expected(case: str, prog: str) -> set[int]:
    if case == "control (real)":
        return {2} if prog == "generate" else {0}  # generate: not an LM checkpoint
    return {0, 2} if prog in HARMLESS.get(case, ()) else {2}


def check_program(
    prog: str, case: str, ckpt: Path, work: Path, out: Path, seed: int
) -> tuple[int, list[str]]:
    """Exit status of `prog` on `ckpt` and what is wrong with how it failed."""
    stdin = work / "part3" / "line.txt"  # for translate and repl
    child = run(program_args(prog, ckpt, work, out, seed), out / "stdout", stdin)
    line, want = last_line(child.stderr), expected(case, prog)
    name = "nmt.train" if prog == "resume" else f"nmt.{prog}"
    problems = []
    if child.rc not in want:
        problems.append(f"{prog}: exit {child.rc}, want {sorted(want)}")
    elif child.rc == 2 and not line.startswith(f"{name}: error:"):
        problems.append(f"{prog}: last stderr line {line[:80]!r}")
    return child.rc, problems + [f"{prog}: {t}" for t in traceback(child.stderr)]


def part_checkpoints(
    work: Path, args: argparse.Namespace, deadline: float
) -> list[Row]:
    folder = work / "part3"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "line.txt").write_text(PAIRS[0][0] + "\n")
    marker = folder / "PAYLOAD_RAN"
    real = baseline(work, args.seed)[0] / "checkpoints" / "best.pt"
    rows = []
    cases = hostile_checkpoints(folder, real, marker, args.seed)
    for number, (case, ckpt) in enumerate(cases.items()):
        cells: dict[str, Any] = {"checkpoint": case}
        problems = []
        for prog in PROGRAMS:
            if time.time() > deadline:
                problems.append(f"{prog} not run: time limit")
                continue
            out = folder / f"run{number}_{prog}"
            out.mkdir()
            cells[prog], found = check_program(prog, case, ckpt, work, out, args.seed)
            problems += found
            if marker.exists():
                problems.append(f"{prog}: THE PAYLOAD RAN")
                marker.unlink()
        rows.append(Row(cells, problems))
    return rows


# -- the report -----------------------------------------------------------------
def print_table(title: str, rows: list[Row]) -> int:
    """Print `rows` with a result column; returns how many failed."""
    print(f"\n## {title}\n")
    columns = list(dict.fromkeys(k for r in rows for k in r.cells)) + ["result"]
    table = [
        [str(r.cells.get(c, "")) for c in columns[:-1]]
        + ["ok" if not r.problems else "FAIL: " + "; ".join(r.problems)]
        for r in rows
    ]
    widths = [
        max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(columns[:-1])
    ]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths + [0])))
    for t in table:
        print(" | ".join(v.ljust(w) for v, w in zip(t, widths + [0])))
    failed = sum(bool(r.problems) for r in rows)
    print(f"\n{title}: {failed} of {len(rows)} failed")
    return failed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="1,2,3", help="parts to run, e.g. 1,3")
    p.add_argument("--kills", type=int, default=20, help="part 1: SIGKILLs")
    p.add_argument("--signals", type=int, default=10, help="part 1: SIGINT/SIGTERMs")
    p.add_argument("--lines", type=int, default=10_000, help="part 2: hostile lines")
    p.add_argument("--ckpt", help="part 2: a translation checkpoint (default: tiny)")
    p.add_argument("--ordinary", help="part 2 with --ckpt: ordinary source lines")
    p.add_argument("--work", help="work directory (default: a temporary one)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=60, help="time limit")
    args = p.parse_args()
    if args.ckpt and not args.ordinary:
        p.error("--ckpt needs --ordinary (source sentences of its language)")
    sys.path.insert(0, str(REPO))  # checkpoints are read with nmt's own loader
    work = Path(args.work or tempfile.mkdtemp(prefix="nmt_fault_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60 * args.minutes
    print(f"work dir {work}; python {PY}")
    parts = {
        "1": ("part 1: interrupted training", part_training),
        "2": ("part 2: hostile lines", part_lines),
        "3": ("part 3: hostile checkpoints", part_checkpoints),
    }
    failures = 0
    for key in args.part.split(","):
        title, function = parts[key.strip()]
        began = time.time()
        rows = function(work, args, deadline)
        failures += print_table(f"{title} ({time.time() - began:.0f} s)", rows)
    print(f"\nfailures: {failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
