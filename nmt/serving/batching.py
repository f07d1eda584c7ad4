"""Dynamic batching: requests that arrive close together are decoded together.

Requests wait in groups by key (their search settings; one batch decodes one
key). A group is decoded when it holds `max_batch` units (sentences), or as many
as its last batch had (the clients that were there are likely still there, and
a lone client is not kept waiting), or when `max_wait` has passed since its
oldest request arrived or a worker last became free, whichever is later. Up to
`workers` batches decode at once, each in its own thread, so the event loop
keeps answering. Not for HTTP (`app.py`) or for what a unit is (`engines.py`).
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# run(key, units) -> one output per unit, in order; called in the worker thread
Run = Callable[[Hashable, list[Any]], list[Any]]
KEYS_REMEMBERED = 256  # groups whose last batch size is kept (bounded memory)


class QueueFull(Exception):
    """The queue holds max_queue units; try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The batcher was closed before the request was decoded."""


@dataclass(eq=False)
class _Job:
    """One request: its units, how many a batch has taken, their results."""

    key: Hashable
    units: list[Any]
    limit: int  # units per batch for this key
    arrived: float  # loop time
    future: asyncio.Future
    results: list[Any] = field(init=False)
    taken: int = 0
    done: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * len(self.units)

    @property
    def waiting(self) -> int:
        return len(self.units) - self.taken


# a batch: (job, start, stop) slices of its jobs' units
Part = tuple[_Job, int, int]


class Batcher:
    """Queues requests by key and decodes them in batches through `run`."""

    def __init__(
        self,
        run: Run,
        *,
        max_batch: int,
        max_wait: float,
        max_queue: int,
        workers: int = 1,
    ) -> None:
        """max_batch: units per batch; max_wait: seconds a request may wait for
        others; max_queue: units queued at most (then `submit` raises QueueFull);
        workers: batches decoded at once, each in its own thread."""
        if min(max_batch, max_queue, workers) < 1 or not 0 <= max_wait < math.inf:
            raise ValueError(
                "max_batch, max_queue and workers must be >= 1, max_wait >= 0"
            )
        self._run, self.max_batch, self.workers = run, max_batch, workers
        self.max_wait, self.max_queue = max_wait, max_queue
        self._groups: dict[Hashable, collections.deque[_Job]] = {}
        self._last_size: collections.OrderedDict[Hashable, int] = (
            collections.OrderedDict()
        )
        self._pending = 0  # units queued and not yet in a batch
        self._running: dict[asyncio.Task, list[Part]] = {}  # batches decoding
        self._free_since = 0.0  # when a worker last became free
        self._rate = 0.0  # units decoded per second of decoding (moving average)
        self.batches = self.units = 0
        self.busy = 0.0  # seconds spent decoding, summed over workers
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._wakeup: asyncio.Event | None = None
        self._closed = False

    async def start(self) -> None:
        """Start decoding (call in the event loop that will submit)."""
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="nmt-decode"
        )
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop; requests still queued or decoding fail with ShuttingDown."""
        self._closed = True
        decoding = [job for parts in self._running.values() for job, _, _ in parts]
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop = ShuttingDown("the server is shutting down")
        for job in decoding + [job for jobs in self._groups.values() for job in jobs]:
            self._fail(job, stop)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(
        self, key: Hashable, units: list[Any], *, limit: int | None = None
    ) -> list[Any]:
        """The outputs of `units`, decoded in batches of up to `limit` (default
        max_batch) units of requests with the same `key`. Cancelling the caller
        (a client gone) takes its units off the queue.

        Raises:
            QueueFull: the queue has no room for len(units) more.
            ShuttingDown: the batcher is closed.
        """
        if self._closed or self._wakeup is None:
            raise ShuttingDown("the server is shutting down")
        if not units:
            return []
        if self._pending + len(units) > self.max_queue:
            raise QueueFull(self.retry_after())
        loop = asyncio.get_running_loop()
        job = _Job(
            key, units, limit or self.max_batch, loop.time(), loop.create_future()
        )
        self._groups.setdefault(key, collections.deque()).append(job)
        self._pending += len(units)
        self._wakeup.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            self._forget(job)
            raise

    def _decoding(self) -> int:
        return sum(b - a for parts in self._running.values() for _, a, b in parts)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1 to 60)."""
        if self._rate <= 0:
            return 1
        rate = self._rate * self.workers
        return max(1, min(60, math.ceil((self._pending + self._decoding()) / rate)))

    def stats(self) -> dict[str, Any]:
        return {
            "queued": self._pending,
            "decoding": self._decoding(),
            "batches": self.batches,
            "sentences": self.units,
            "mean_batch": round(self.units / self.batches, 2) if self.batches else 0,
            "decoding_seconds": round(self.busy, 3),
        }

    async def _loop(self) -> None:
        """Start a batch whenever a worker is free and a group is due."""
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            now, wake = loop.time(), None
            if len(self._running) < self.workers:
                key, wake = self._choose(now)
                if key is not None:
                    parts = self._take(key)
                    task = loop.create_task(self._decode(key, parts))
                    self._running[task] = parts
                    continue
            self._wakeup.clear()
            timeout = None if wake is None else max(0.0, wake - now)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _decode(self, key: Hashable, parts: list[Part]) -> None:
        """Decode one batch in a worker thread and answer its requests."""
        loop = asyncio.get_running_loop()
        units = [u for job, start, stop in parts for u in job.units[start:stop]]
        began = loop.time()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, key, units)
            if len(outputs) != len(units):
                raise RuntimeError(f"{len(outputs)} outputs for {len(units)} units")
        except Exception as error:  # the batch's requests fail, the server lives
            for job, _, _ in parts:
                self._fail(job, error)
        else:
            self._deliver(parts, outputs)
            seconds = max(loop.time() - began, 1e-6)
            rate = len(units) / seconds
            self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate
            self.batches += 1
            self.units += len(units)
            self.busy += seconds
        finally:
            self._running.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._free_since = loop.time()
            if self._wakeup is not None:
                self._wakeup.set()

    def _choose(self, now: float) -> tuple[Hashable | None, float | None]:
        """The due group with the oldest request (None if none is), and when the
        next group falls due (None if no request waits)."""
        chosen, chosen_age, wake = None, math.inf, None
        for key, jobs in list(self._groups.items()):
            while jobs and jobs[0].waiting == 0:
                jobs.popleft()
            if not jobs:
                del self._groups[key]
                continue
            waiting = sum(job.waiting for job in jobs)
            oldest = jobs[0].arrived
            target = min(jobs[0].limit, self._last_size.get(key, 1))
            due = max(oldest, self._free_since) + self.max_wait
            if waiting >= target or now >= due:
                if oldest < chosen_age:
                    chosen, chosen_age = key, oldest
            else:
                wake = due if wake is None else min(wake, due)
        return chosen, wake

    def _take(self, key: Hashable) -> list[Part]:
        jobs = self._groups[key]
        limit = jobs[0].limit
        parts: list[Part] = []
        size = 0
        for job in jobs:
            if size >= limit:
                break
            count = min(job.waiting, limit - size)
            if count:
                parts.append((job, job.taken, job.taken + count))
                job.taken += count
                size += count
        self._pending -= size
        self._last_size[key] = size
        self._last_size.move_to_end(key)
        if len(self._last_size) > KEYS_REMEMBERED:
            self._last_size.popitem(last=False)
        return parts

    def _deliver(self, parts: list[Part], outputs: list[Any]) -> None:
        offset = 0
        for job, start, stop in parts:
            job.results[start:stop] = outputs[offset : offset + stop - start]
            offset += stop - start
            job.done += stop - start
            if job.done == len(job.units) and not job.future.done():
                job.future.set_result(job.results)

    def _forget(self, job: _Job) -> None:
        """Take a job's units that no batch has taken off the queue."""
        self._pending -= job.waiting
        job.taken = len(job.units)
        jobs = self._groups.get(job.key)
        if jobs is not None and job in jobs:
            jobs.remove(job)

    def _fail(self, job: _Job, error: Exception) -> None:
        self._forget(job)
        if not job.future.done():
            job.future.set_exception(error)
