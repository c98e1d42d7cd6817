"""The worker pool: analysis runs in worker processes so the server stays responsive, and admission
is bounded so an overload gets a fast 503 + Retry-After instead of an ever-growing queue.

Processes, not threads: dlib's calls and the explainer's Python hold the GIL for tens of
milliseconds, which with worker threads delayed even /healthz by ~120 ms behind one busy worker
(measured: 8 ms idle, 127 ms busy). Processes are started with "spawn" (forking a process that
runs an event loop and native thread pools is unsafe), load their models once in their
initializer, and are replaced if one dies.
"""
from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from ..workers import process_pool
from . import engine
from .errors import APIError

# uvicorn configures this logger, so start-up messages appear beside its own.
log = logging.getLogger("uvicorn.error")


class WorkerPool:
    """`workers` processes plus an admission counter bounded by `queue` (running + waiting)."""

    def __init__(self, workers: int, queue: int, *, model: str | None = None, warm: bool = True):
        self.workers = workers
        self.queue = queue
        self._initargs = (model, warm)
        self._executor = self._new_executor()
        self.admitted = 0          # touched only on the event loop's thread: no lock needed
        self.rejected = 0
        self.completed = 0
        self.restarts = 0
        self.ready = False
        self.info: dict[str, Any] = {}   # worker_info() of the first worker: model names
        self._job_seconds = 1.0    # moving average of a job's run time, for Retry-After

    def _new_executor(self) -> ProcessPoolExecutor:
        return process_pool(self.workers, mp_context=multiprocessing.get_context("spawn"),
                            initializer=engine.init_worker, initargs=self._initargs)

    async def start(self) -> None:
        """Start every worker process and wait until each has loaded (and warmed) its models."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        # One submission per worker: the executor starts a new process for each while none is idle.
        infos = await asyncio.gather(*(loop.run_in_executor(self._executor, engine.worker_info)
                                       for _ in range(self.workers)))
        self.info = infos[0]
        self.ready = True
        log.info("facelm serve: %d worker process(es) ready in %.1f s", len({i["pid"] for i in infos}),
                 time.perf_counter() - t0)

    def close(self) -> None:
        self.ready = False
        self._executor.shutdown(wait=True, cancel_futures=True)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, drained by all workers."""
        return max(1, math.ceil(self.admitted * self._job_seconds / self.workers))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Admit one request for its whole handling, or raise 503 with Retry-After when full."""
        if not self.ready:
            raise APIError(503, "the server is still loading its models", type="server_busy",
                           hint="retry in a few seconds", headers={"Retry-After": "2"})
        if self.admitted >= self.queue:
            self.rejected += 1
            wait = self.retry_after()
            raise APIError(503, f"the server is busy ({self.admitted} requests in progress, "
                                f"limit {self.queue})", type="server_busy",
                           hint=f"retry after {wait} s", headers={"Retry-After": str(wait)})
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in a worker process (fn and args must pickle); call inside `slot()`."""
        loop = asyncio.get_running_loop()
        try:
            for _ in range(2):
                executor = self._executor
                try:
                    # submit() raises at once if a worker died while idle: the job never ran, so
                    # it is safe to replace the pool and submit again.
                    future = loop.run_in_executor(executor, engine.timed, fn, *args)
                    break
                except BrokenProcessPool:
                    self._replace(executor)
            result, seconds = await future
        except BrokenProcessPool:
            self._replace(executor)
            raise APIError(500, "a worker process stopped while handling this request; the "
                                "workers have been restarted", type="server_error",
                           hint="retry; if the same photo stops a worker again, please report it") from None
        finally:
            self.completed += 1
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * seconds
        return result

    def pids(self) -> list[int]:
        """Process ids of the current workers (for monitoring and tests)."""
        return list(getattr(self._executor, "_processes", None) or {})

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Swap in a new pool once, however many requests saw the old one break."""
        if self._executor is not broken:
            return
        log.error("facelm serve: a worker process died; starting new workers")
        self.restarts += 1
        self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        return {"ready": self.ready, "workers": self.workers, "queue_limit": self.queue,
                "in_progress": self.admitted, "completed": self.completed,
                "rejected_busy": self.rejected, "worker_restarts": self.restarts}
