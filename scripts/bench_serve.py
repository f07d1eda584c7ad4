"""Load test of `nmt.serve` on 127.0.0.1, against offline decoding in the same run.

    python scripts/bench_serve.py --ckpt runs/x/checkpoints/best.pt \
        [--data ../shared/data/multi30k] [--clients 1 8 32 64] [--rounds 3] \
        [--block 320] [--soak-minutes 5] [--server-args --workers 2 ...]

Starts the server (--port 0) and, in this process, the same checkpoint for
offline decoding, with the same threads. Offline and served decoding take turns
on the same sentences, so a slow spell of a shared machine hits both alike:
- C = 1: the first --alone sentences, 10 at a time, are decoded offline at batch
  1, then sent to the server one by one; the p50 latencies are compared.
- C > 1: --rounds times, a block of --block sentences is decoded offline as
  `nmt.translate --beam B --batch-size 64` does (its `translate_stream`), then sent
  by C closed-loop clients, each on its own keep-alive connection, one sentence
  per request; the sentences/s are compared.
Prints per C: sentences/s (served and offline), p50/p95/p99 latency, errors, lost
(no answer) and mismatched (another sentence's translation) answers, answers that
differ from offline decoding (batch rounding), the server's peak RSS, its mean
batch and busy share; then the targets. --soak-minutes keeps C = max(--clients)
running that long and prints the server's RSS each minute. Bounded in requests
(each sentence sent once per round) and time (a request times out after 60 s);
loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
TIMEOUT = 60.0  # seconds one request may take before it counts as lost
# C = 1 takes turns in blocks of this many sentences: turn by turn, each process
# would start every sentence with the other's weights in the CPU caches
ALONE_BLOCK = 10


@dataclass
class Phase:
    clients: int
    latencies: list[float] = field(default_factory=list)
    offline_ms: list[float] = field(default_factory=list)  # C = 1: batch-1 times
    sentences: int = 0
    seconds: float = 0.0
    offline_sentences: int = 0
    offline_seconds: float = 0.0
    errors: int = 0
    lost: int = 0
    mismatched: int = 0
    differs: int = 0
    peak_rss_mb: float = 0.0
    batches: int = 0
    batched: int = 0  # sentences the server decoded in those batches
    busy: float = 0.0  # the server's decoding seconds

    @property
    def rate(self) -> float:
        return self.sentences / max(self.seconds, 1e-9)

    @property
    def offline_rate(self) -> float:
        return self.offline_sentences / max(self.offline_seconds, 1e-9)


class Offline:
    """The checkpoint in this process: the reference translations and timings."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from nmt.inference.loading import load_translator
        from nmt.search import BeamConfig
        from nmt.utils.runtime import set_threads

        set_threads(args.threads)
        self.translator, _ = load_translator(args.ckpt, device=torch.device("cpu"))
        self.batch = BeamConfig(beam_size=args.beam, batch_size=64)
        self.alone = BeamConfig(beam_size=args.beam, batch_size=1)

    def stream(self, lines: list[str]) -> tuple[list[str], float]:
        """`nmt.translate`'s translations of `lines` and its seconds."""
        from nmt.translate import translate_stream

        source = io.BytesIO("".join(line + "\n" for line in lines).encode())
        sink = io.StringIO()
        began = time.perf_counter()
        translate_stream(
            self.translator, source, sink, self.batch, nbest=0, scores=False
        )
        return sink.getvalue().splitlines(), time.perf_counter() - began

    def one(self, line: str) -> float:
        """Milliseconds to decode `line` alone."""
        began = time.perf_counter()
        self.translator.translate([line], self.alone, offset=None)
        return (time.perf_counter() - began) * 1000


class References(list):
    """Offline translations; `stolen(i, text)`: text is another sentence's."""

    def __init__(self, refs: list[str]) -> None:
        super().__init__(refs)
        self.owners: dict[str, set[int]] = {}
        for i, r in enumerate(refs):
            self.owners.setdefault(r, set()).add(i)

    def stolen(self, i: int, text: str) -> bool:
        return bool(self.owners.get(text, set()) - {i})


def start_server(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, int]:
    """The server, its stderr into `log` (a pipe nobody reads would stall it)."""
    command = [sys.executable, "-m", "nmt.serve", "--ckpt", args.ckpt, "--port", "0"]
    command += ["--threads", str(args.threads), "--beam", str(args.beam)]
    command += ["--max-queue", "4096", *args.server_args]
    server = subprocess.Popen(command, stderr=log.open("w"))
    for _ in range(1200):
        found = re.search(r"at http://[\d.]+:(\d+)/", log.read_text())
        if found:
            return server, int(found.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the server did not start; its log:\n{log.read_text()}")


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=30) as r:
        return json.load(r)


def rss_mb(pid: int, name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def post(reader, writer, text: str) -> tuple[int, bytes]:
    body = json.dumps({"text": text}).encode()
    writer.write(
        b"POST /translate HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    first = await reader.readline()
    if not first:  # the server closed an idle keep-alive connection
        raise ConnectionResetError("connection closed")
    status = int(first.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


class Client:
    """One keep-alive connection; `send` records the answer in a Phase."""

    def __init__(self, port: int, lines: list[str], refs: References) -> None:
        self.port, self.lines, self.refs = port, lines, refs
        self.reader = self.writer = None

    async def send(self, i: int, phase: Phase) -> None:
        began = time.perf_counter()
        for attempt in range(2):  # a reused connection may have been closed idle
            reused = self.writer is not None
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(
                        HOST, self.port
                    )
                status, answer = await asyncio.wait_for(
                    post(self.reader, self.writer, self.lines[i]), TIMEOUT
                )
                break
            except ConnectionResetError:
                self.close()
                if reused and attempt == 0:
                    began = time.perf_counter()
                    continue
                phase.lost += 1
                return
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                phase.lost += 1
                self.close()
                return
        phase.latencies.append((time.perf_counter() - began) * 1000)
        if status != 200:
            phase.errors += 1
            return
        got = json.loads(answer)["results"][0]["translation"]
        phase.sentences += 1
        if got != self.refs[i]:
            phase.differs += 1
            phase.mismatched += self.refs.stolen(i, got)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def serve_block(port, clients: int, todo, stop: float, lines, refs, phase):
    """C clients send the sentences of `todo` (shared) until it ends or `stop`."""

    async def one_client() -> None:
        client = Client(port, lines, refs)
        for i in todo:
            if time.perf_counter() > stop:
                break
            await client.send(i, phase)
        client.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    phase.seconds += time.perf_counter() - began


async def watch_rss(pid: int, phase: Phase) -> None:
    while True:
        phase.peak_rss_mb = max(phase.peak_rss_mb, rss_mb(pid))
        await asyncio.sleep(0.5)


async def run_phase(args, server, port, clients, lines, refs, offline) -> Phase:
    phase = Phase(clients)
    before = health(port)
    watcher = asyncio.ensure_future(watch_rss(server.pid, phase))
    if clients == 1:  # blocks of 10 sentences offline at batch 1, then served alone
        client = Client(port, lines, refs)
        for start in range(0, args.alone, ALONE_BLOCK):
            block = range(start, min(start + ALONE_BLOCK, args.alone))
            phase.offline_ms += [offline.one(lines[i]) for i in block]
            for i in block:
                began = time.perf_counter()
                await client.send(i, phase)
                phase.seconds += time.perf_counter() - began
        client.close()
        phase.offline_sentences = len(phase.offline_ms)
        phase.offline_seconds = sum(phase.offline_ms) / 1000
    for r in range(args.rounds if clients > 1 else 0):
        block = list(range(r * args.block, (r + 1) * args.block))
        _, seconds = offline.stream([lines[i] for i in block])
        phase.offline_sentences += len(block)
        phase.offline_seconds += seconds
        stop = time.perf_counter() + 10 * 60
        await serve_block(port, clients, iter(block), stop, lines, refs, phase)
    watcher.cancel()
    after = health(port)
    phase.batches = after["batches"] - before["batches"]
    phase.batched = after["sentences"] - before["sentences"]
    phase.busy = after["decoding_seconds"] - before["decoding_seconds"]
    phase.peak_rss_mb = max(phase.peak_rss_mb, rss_mb(server.pid))
    return phase


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


HEAD = (
    "clients  requests  sent/s  offline  ratio   p50 ms   p95 ms   p99 ms  errors  "
    "lost  mismatched  differs  peak RSS MB  mean batch  busy %"
)


def row(p: Phase) -> str:
    lat = [percentile(p.latencies, q) for q in (50, 95, 99)]
    return (
        f"{p.clients:>7}  {len(p.latencies) + p.lost:>8}  {p.rate:>6.1f}  "
        f"{p.offline_rate:>7.1f}  {p.rate / p.offline_rate:>5.2f}  "
        + "  ".join(f"{v:>7.1f}" for v in lat)
        + f"  {p.errors:>6}  {p.lost:>4}  {p.mismatched:>10}  {p.differs:>7}  "
        f"{p.peak_rss_mb:>11.0f}  {p.batched / max(p.batches, 1):>10.1f}  "
        f"{100 * p.busy / max(p.seconds, 1e-9):>6.0f}"
    )


async def soak(args, server, port, lines, refs) -> list[Phase]:
    """C = max(--clients) for --soak-minutes, cycling the sentences; one Phase
    (and one printed line with the server's RSS) per minute."""
    clients, phases = max(args.clients), []
    todo = (i % len(lines) for i in itertools.count())
    for minute in range(1, args.soak_minutes + 1):
        phase = Phase(clients)
        watcher = asyncio.ensure_future(watch_rss(server.pid, phase))
        stop = time.perf_counter() + 60
        await serve_block(port, clients, todo, stop, lines, refs, phase)
        watcher.cancel()
        phases.append(phase)
        print(
            f"soak minute {minute}: {phase.rate:.1f} sentences/s, RSS "
            f"{rss_mb(server.pid):.0f} MB (peak {phase.peak_rss_mb:.0f}), errors "
            f"{phase.errors}, lost {phase.lost}, mismatched {phase.mismatched}",
            flush=True,
        )
    return phases


def report(phases: list[Phase], soaked: list[Phase]) -> None:
    bad = sum(p.errors + p.lost + p.mismatched for p in phases + soaked)
    print(
        f"target 0 errors, lost or mismatched: {bad} -> {'met' if not bad else 'MISSED'}"
    )
    for p in phases:
        if p.clients == 64:
            ratio = p.rate / p.offline_rate
            verdict = "met" if ratio >= 0.7 else "MISSED"
            print(f"target C=64 >= 70 % of offline batch 64: {ratio:.0%} -> {verdict}")
        if p.clients == 1:
            served, alone = percentile(p.latencies, 50), percentile(p.offline_ms, 50)
            verdict = "met" if served <= 1.2 * alone else "MISSED"
            print(
                f"target C=1 p50 within 20 % of offline batch 1: {served:.1f} ms vs "
                f"{alone:.1f} ms = {served / alone:.2f}x -> {verdict}"
            )
    if len(soaked) >= 2:
        first, last = soaked[0].peak_rss_mb, soaked[-1].peak_rss_mb
        print(f"soak: peak RSS first minute {first:.0f} MB, last minute {last:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", default="../shared/data/multi30k")
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--lang", default="de", help="source language (file suffix)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--alone", type=int, default=100, help="sentences sent at C = 1")
    p.add_argument("--rounds", type=int, default=3, help="offline/served turns, C > 1")
    p.add_argument("--block", type=int, default=320, help="sentences per turn")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--soak-minutes", type=int, default=0)
    p.add_argument(
        "--server-args", nargs=argparse.REMAINDER, default=[], help="to nmt.serve"
    )
    args = p.parse_args()
    path = Path(args.data) / f"{args.split}.{args.lang}"
    lines = [" ".join(line.split()) for line in path.read_text().splitlines()]
    if args.rounds * args.block > len(lines) or args.alone > len(lines):
        raise SystemExit(
            f"{path} has {len(lines)} lines: fewer rounds or a smaller block"
        )
    offline = Offline(args)
    refs, seconds = offline.stream(lines)  # also the warm-up
    print(f"offline: {len(lines) / seconds:.1f} sentences/s at batch 64 (warm-up)")
    log = Path(tempfile.mkdtemp(prefix="bench_serve_")) / "server.log"
    server, port = start_server(args, log)
    print(f"server: port {port}, log {log}", flush=True)
    try:
        phases = []
        for clients in args.clients:
            phase = asyncio.run(
                run_phase(args, server, port, clients, lines, References(refs), offline)
            )
            phases.append(phase)
            print(row(phase), flush=True)
        print("\n" + HEAD + "\n" + "\n".join(row(p) for p in phases))
        soaked = []
        if args.soak_minutes:
            soaked = asyncio.run(soak(args, server, port, lines, References(refs)))
        report(phases, soaked)
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
