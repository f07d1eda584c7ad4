"""The batcher on a recording `run`: own results in order, one key per batch,
batch limits, the waiting rule, a full queue, cancellation, failures, closing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from nmt.serving.batching import Batcher, QueueFull, ShuttingDown


class Recorder:
    """run(key, units) -> ["key:unit", ...]; remembers each batch; can be held
    (blocks until released) or made to fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[object, list]] = []
        self.release = threading.Event()
        self.release.set()
        self.running = threading.Semaphore(0)
        self.fail_on: object = None

    def __call__(self, key, units):
        self.batches.append((key, list(units)))
        self.running.release()
        assert self.release.wait(10)
        if key == self.fail_on:
            raise RuntimeError("decoder broke")
        return [f"{key}:{u}" for u in units]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def started(recorder: Recorder, **kw) -> Batcher:
    options = dict(max_batch=64, max_wait=0.05, max_queue=1000)
    batcher = Batcher(recorder, **(options | kw))
    await batcher.start()
    return batcher


async def hold_first_batch(batcher: Batcher, recorder: Recorder) -> asyncio.Task:
    """A request whose batch is decoding (held) while the test queues others."""
    recorder.release.clear()
    first = asyncio.ensure_future(batcher.submit("hold", ["x"]))
    await asyncio.to_thread(recorder.running.acquire)
    return first


def test_each_request_gets_its_own_results_in_order():
    async def main():
        rec = Recorder()
        batcher = await started(rec)
        first = await hold_first_batch(batcher, rec)
        jobs = [
            batcher.submit("k", [f"r{r}s{s}" for s in range(r % 4 + 1)])
            for r in range(20)
        ]
        tasks = [asyncio.ensure_future(j) for j in jobs]
        await asyncio.sleep(0.01)
        rec.release.set()
        results = await asyncio.gather(first, *tasks)
        await batcher.close()
        return rec, results

    rec, results = run(main())
    assert results[0] == ["hold:x"]
    for r, got in enumerate(results[1:]):
        assert got == [f"k:r{r}s{s}" for s in range(r % 4 + 1)]
    # the 20 requests (50 sentences) queued during the first batch: one batch
    assert [len(units) for _, units in rec.batches] == [1, 50]


def test_a_batch_holds_one_key_and_large_requests_are_split():
    async def main():
        rec = Recorder()
        batcher = await started(rec, max_batch=8)
        first = await hold_first_batch(batcher, rec)
        a = asyncio.ensure_future(batcher.submit("a", list(range(20))))
        b = asyncio.ensure_future(batcher.submit("b", ["x", "y"]))
        c = asyncio.ensure_future(batcher.submit("a", ["z"]))
        await asyncio.sleep(0.01)
        rec.release.set()
        got = await asyncio.gather(first, a, b, c)
        await batcher.close()
        return rec, got

    rec, (_, a, b, c) = run(main())
    assert a == [f"a:{i}" for i in range(20)] and b == ["b:x", "b:y"] and c == ["a:z"]
    batches = rec.batches[1:]
    assert all(len(units) <= 8 for _, units in batches)
    assert sorted(key for key, _ in batches) == ["a", "a", "a", "b"]
    assert [units for key, units in batches if key == "a"][-1] == [16, 17, 18, 19, "z"]


def test_a_lone_request_does_not_wait_but_a_smaller_load_waits_max_wait():
    async def main():
        batcher = await started(Recorder(), max_wait=0.5)
        began = time.perf_counter()
        await batcher.submit("k", ["a"])  # nothing decoded before: no wait
        alone = time.perf_counter() - began
        await asyncio.gather(*(batcher.submit("k", [i]) for i in range(4)))
        began = time.perf_counter()
        await batcher.submit("k", ["b"])  # the last batch had more: wait for them
        after_load = time.perf_counter() - began
        await batcher.close()
        return alone, after_load

    alone, after_load = run(main())
    assert alone < 0.4
    assert after_load >= 0.45


def test_a_full_queue_raises_queue_full_and_recovers():
    async def main():
        rec = Recorder()
        batcher = await started(rec, max_queue=3)
        first = await hold_first_batch(batcher, rec)
        queued = asyncio.ensure_future(batcher.submit("k", [1, 2, 3]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as full:
            await batcher.submit("k", [4])
        rec.release.set()
        got = await asyncio.gather(first, queued)
        after = await batcher.submit("k", [5])
        await batcher.close()
        return full.value, got, after

    full, got, after = run(main())
    assert full.retry_after >= 1 and "busy" in str(full)
    assert got[1] == ["k:1", "k:2", "k:3"] and after == ["k:5"]


def test_a_cancelled_request_leaves_the_queue_undecoded():
    async def main():
        rec = Recorder()
        batcher = await started(rec)
        first = await hold_first_batch(batcher, rec)
        gone = asyncio.ensure_future(batcher.submit("k", ["gone"]))
        kept = asyncio.ensure_future(batcher.submit("k", ["kept"]))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        queued = batcher.stats()["queued"]
        rec.release.set()
        got = await asyncio.gather(first, kept)
        await batcher.close()
        return rec, queued, got

    rec, queued, got = run(main())
    assert queued == 1 and got == [["hold:x"], ["k:kept"]]
    assert all("gone" not in units for _, units in rec.batches)


def test_a_failing_batch_fails_its_requests_only():
    async def main():
        rec = Recorder()
        rec.fail_on = "bad"
        batcher = await started(rec)
        with pytest.raises(RuntimeError, match="decoder broke"):
            await batcher.submit("bad", ["a"])
        good = await batcher.submit("good", ["b"])
        await batcher.close()
        return good

    assert run(main()) == ["good:b"]


def test_closing_fails_waiting_requests_with_shutting_down():
    async def main():
        rec = Recorder()
        batcher = await started(rec)
        first = await hold_first_batch(batcher, rec)
        waiting = asyncio.ensure_future(batcher.submit("k", ["w"]))
        await asyncio.sleep(0)
        await batcher.close()
        rec.release.set()
        outcomes = await asyncio.gather(first, waiting, return_exceptions=True)
        with pytest.raises(ShuttingDown):
            await batcher.submit("k", ["late"])
        return outcomes

    outcomes = run(main())
    assert all(isinstance(o, ShuttingDown) for o in outcomes)


def test_workers_decode_batches_at_once_and_limit_one_is_one_per_batch():
    async def main():
        both = threading.Barrier(2, timeout=10)

        def run_two(key, units):
            both.wait()  # passes only if two batches decode at the same time
            return units

        batcher = Batcher(run_two, max_batch=64, max_wait=0.0, max_queue=10, workers=2)
        await batcher.start()
        got = await asyncio.gather(
            batcher.submit("g", ["a"], limit=1), batcher.submit("g", ["b"], limit=1)
        )
        await batcher.close()
        return got, batcher.stats()

    got, stats = run(main())
    assert got == [["a"], ["b"]] and stats["batches"] == 2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Batcher(lambda k, u: u, max_batch=0, max_wait=0.01, max_queue=1)
    with pytest.raises(ValueError):
        Batcher(lambda k, u: u, max_batch=1, max_wait=-1, max_queue=1)
