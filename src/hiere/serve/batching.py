"""A micro-batcher: jobs submitted by concurrent requests within a short window run as one batch.

The event loop only queues jobs and awaits futures; the batch function runs in the given executor
(``hiere serve`` uses one worker thread, so the model is never used by two threads at once and the loop
never waits on it). A batch starts when ``window`` seconds have passed since its first job or when it holds
``max_batch`` jobs; while one batch runs, the next one fills up, so under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class QueueFull(Exception):
    """More jobs are waiting than the batcher accepts (the server answers 503)."""


class MicroBatcher(Generic[Job, Result]):
    """``await batcher.submit(job)`` -> that job's result from ``run_batch(jobs)``.

    ``run_batch`` returns one result per job, in order; a result that is an exception is raised to that
    job's caller only (one bad text does not fail the others). If ``run_batch`` itself raises, every
    job of the batch gets the exception.
    """

    def __init__(self, run_batch: Callable[[list[Job]], Sequence[Result | BaseException]], executor: Executor,
                 window: float = 0.01, max_batch: int = 32, max_pending: int = 512):
        self.run_batch, self.executor = run_batch, executor
        self.window, self.max_batch, self.max_pending = window, max_batch, max_pending
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # sizes of the latest batches
        self.batches = self.batched_jobs = 0  # totals since start (``/health``)

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._serve(), name="hiere-micro-batcher")

    async def submit_many(self, jobs: Sequence[Job]) -> list[Result | BaseException]:
        """Queue several jobs at once (all or none, for the ``max_pending`` limit) -> their results or
        exceptions, in order."""
        self._ensure_running()
        assert self._queue is not None
        if self._queue.qsize() + len(jobs) > self.max_pending:
            raise QueueFull(f"{self._queue.qsize()} texts are waiting for the model; try again shortly")
        futures = []
        for job in jobs:
            future = self._loop.create_future()
            self._queue.put_nowait((job, future))
            futures.append(future)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _serve(self) -> None:
        assert self._queue is not None and self._loop is not None
        queue, loop = self._queue, self._loop
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.window
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            batch = [(job, future) for job, future in batch if not future.cancelled()]  # callers gone
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            self.batches += 1
            self.batched_jobs += len(batch)
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [job for job, _ in batch])
            except Exception as error:  # a bug in run_batch: every caller hears of it
                results = [error] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
