"""Collects concurrent requests into batches and runs them on one worker thread.

JAX must not be driven from many threads at once, and a batch of 8 costs little more than a batch of
1 on an accelerator, so every HTTP request's GenerationRequests go into one queue. The worker takes
the first job, waits up to `window_s` for more (a batch never exceeds `max_batch` sequences; one
job's requests are never split), and calls `backend.generate` on all of them. Jobs that queue up
while a batch runs are taken together at once, with no further wait. If the backend raises on a
batch of several jobs, each job is run again alone, so one bad request fails only itself; a job that
fails alone gets BatchFailed, and the worker goes on. A job may ask for its text as it grows
(`on_text`); with a backend that `streams_text`, the worker passes each row's text on as the
backend reports it (from the worker thread: the callback hands it to its own event loop).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Sequence

from siamgpt_jax.generate.backend import Backend, Generation, GenerationRequest, TextSoFar

log = logging.getLogger(__name__)


class BatchFailed(RuntimeError):
    """The backend raised while generating the batch this job was in."""


@dataclasses.dataclass
class _Job:
    requests: Sequence[GenerationRequest]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_text: TextSoFar | None = None  # (index within this job, text so far), called on the worker thread


@dataclasses.dataclass
class BatchStats:
    """What the worker has done so far; served as JSON by the server's /stats."""

    jobs: int = 0
    sequences: int = 0
    batches: int = 0
    failed_batches: int = 0
    max_batch_size: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_s: float = 0.0
    batch_sizes: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["batch_sizes"] = {str(k): v for k, v in sorted(self.batch_sizes.items())}
        d["busy_s"] = round(self.busy_s, 3)
        return d


_STOP = object()


class Batcher:
    def __init__(self, backend: Backend, *, max_batch: int = 16, window_s: float = 0.01):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self.backend, self.max_batch, self.window_s = backend, max_batch, window_s
        self.stats = BatchStats()
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()  # guards stats against readers on the event loop
        self._thread = threading.Thread(target=self._work, name="siamgpt-batcher", daemon=True)
        self._thread.start()

    async def submit(self, requests: Sequence[GenerationRequest], on_text: TextSoFar | None = None) -> list[Generation]:
        """Queue one job and wait for its generations; raises BatchFailed if its batch failed.
        `on_text(i, text)` hears request i's text as it grows, where the backend can tell it."""
        if not 1 <= len(requests) <= self.max_batch:
            raise ValueError(f"a job needs 1..{self.max_batch} requests, got {len(requests)}")
        loop = asyncio.get_running_loop()
        job = _Job(list(requests), loop, loop.create_future(), on_text)
        self._queue.put(job)
        return await job.future

    def snapshot(self) -> dict:
        with self._lock:
            return self.stats.as_dict() | {"queued_jobs": self._queue.qsize(), "max_batch": self.max_batch,
                                           "window_s": self.window_s}

    def close(self, timeout: float | None = None) -> None:
        """Finish the batch in flight and the jobs queued before this call, then stop the worker."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # ---- worker thread ----

    def _work(self) -> None:
        carry = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return
            jobs, size = [first], len(first.requests)
            deadline = time.monotonic() + self.window_s
            stop_after = False
            while size < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is _STOP:
                    stop_after = True
                    break
                if size + len(nxt.requests) > self.max_batch:
                    carry = nxt  # starts the next batch
                    break
                jobs.append(nxt)
                size += len(nxt.requests)
            self._run(jobs, size)
            if stop_after:
                if carry is not None:
                    self._run([carry], len(carry.requests))
                return

    def _run(self, jobs: list[_Job], size: int) -> None:
        live = [j for j in jobs if not j.future.cancelled()]  # the client went away: skip its work
        requests = [r for j in live for r in j.requests]
        start = time.perf_counter()
        try:
            if requests and getattr(self.backend, "streams_text", False) and any(j.on_text for j in live):
                owners = [(j, k) for j in live for k in range(len(j.requests))]  # batch row -> (job, its row)

                def route(i: int, text: str) -> None:
                    job, k = owners[i]
                    if job.on_text is not None and not job.future.done():
                        job.on_text(k, text)

                gens = self.backend.generate(requests, on_text=route)
            else:
                gens = self.backend.generate(requests) if requests else []
            if len(gens) != len(requests):
                raise RuntimeError(f"backend returned {len(gens)} generations for {len(requests)} requests")
        except Exception as e:  # one failed batch must not stop the server
            with self._lock:
                self.stats.failed_batches += 1
            if len(live) == 1:
                log.exception("generation failed for a job of %d sequences", size)
                _resolve(live[0], exception=BatchFailed(f"generation failed: {type(e).__name__}: {e}"))
                return
            log.warning("batch of %d jobs failed (%s: %s); running each job alone", len(live), type(e).__name__, e)
            failed = True
        else:
            failed = False
        if failed:  # outside the except block, so each rerun's own error is not chained to this one
            for j in live:
                self._run([j], len(j.requests))
            return
        elapsed = time.perf_counter() - start
        with self._lock:
            s = self.stats
            s.jobs += len(live)
            s.sequences += len(requests)
            s.batches += 1
            s.batch_sizes[len(requests)] += 1
            s.max_batch_size = max(s.max_batch_size, len(requests))
            s.prompt_tokens += sum(g.prompt_tokens for g in gens)
            s.completion_tokens += sum(g.completion_tokens for g in gens)
            s.busy_s += elapsed
        new_tokens = sum(g.completion_tokens for g in gens)
        log.info("batch of %d sequences (%d requests): %d new tokens in %.2fs (%.1f tok/s)", len(requests),
                 len(live), new_tokens, elapsed, new_tokens / max(elapsed, 1e-9))
        at = 0
        for j in live:
            _resolve(j, result=gens[at:at + len(j.requests)])
            at += len(j.requests)


def _resolve(job: _Job, *, result=None, exception: BaseException | None = None) -> None:
    def settle():
        if job.future.done():  # cancelled meanwhile
            return
        if exception is not None:
            job.future.set_exception(exception)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the event loop is closed: nobody is waiting any more
        pass
