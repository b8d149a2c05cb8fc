"""One bounded job queue and one worker thread: the model runs one job at a time, off the event loop.

A request becomes a :class:`Job` (a function of a progress callback). :meth:`JobQueue.submit` refuses it
with :class:`QueueFull` when ``max_queue`` jobs are already waiting or running, so the server answers 429
at once instead of piling up work. The worker thread runs jobs in order; the event loop awaits a job's
future and keeps answering ``/health`` meanwhile. A job cancelled while it waits never runs; one cancelled
while it runs stops at its next denoising step (its progress callback raises :class:`Cancelled`).

Finished jobs are kept for ``/v1/jobs/{id}`` (bounded: the oldest finished ones are forgotten first).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import threading
import time
from typing import Any, Callable

__all__ = ["Cancelled", "Job", "JobQueue", "QueueFull"]

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs; ``retry_after`` is a guess in whole seconds."""

    def __init__(self, max_queue: int, retry_after: int):
        super().__init__(f"the server is busy: {max_queue} jobs are queued or running (max_queue); retry later")
        self.retry_after = retry_after


class Cancelled(Exception):
    """Raised inside a running job's progress callback once the job is cancelled."""


class Job:
    """One unit of work and what is known about it: state, queue position, denoising step, result."""

    def __init__(self, kind: str, fn: Callable[["Job"], Any]):
        self.id = secrets.token_urlsafe(12)  # unguessable: a job id is a capability to read the result
        self.kind = kind
        self.fn = fn
        self.state = QUEUED
        self.step = 0
        self.total = 0
        self.result: Any = None
        self.error: BaseException | None = None
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._lock = threading.Lock()

    # called by the worker thread (through the SDK's progress callback)
    def progress(self, step: int, total: int) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self.step, self.total = int(step), int(total)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def future(self) -> asyncio.Future:
        """A future of the running event loop that completes when the job finishes."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if self._done.is_set():
                fut.set_result(None)
            else:
                self._futures.append((loop, fut))
        return fut

    def wait(self, timeout: float | None = None) -> bool:
        """Block (a thread, not the event loop) until the job finishes."""
        return self._done.wait(timeout)

    def _finish(self, state: str, result: Any = None, error: BaseException | None = None) -> None:
        self.state, self.result, self.error = state, result, error
        self.finished = time.time()
        with self._lock:
            self._done.set()
            futures, self._futures = self._futures, []
        for loop, fut in futures:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class JobQueue:
    """At most ``max_queue`` jobs waiting or running; one worker thread runs them in order.

    Args:
        max_queue: how many jobs may be waiting or running at once; one more is refused (:class:`QueueFull`).
        keep_finished: how many finished jobs stay readable through :meth:`get`.
    """

    def __init__(self, max_queue: int = 16, keep_finished: int = 64):
        self.max_queue = max_queue
        self.keep_finished = keep_finished
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._jobs: dict[str, Job] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._durations: collections.deque[float] = collections.deque(maxlen=16)
        self.answered = 0
        self.refused = 0

    # ---- the worker ------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="prefpaint-serve-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every waiting job, let the running one stop at its next step, and end the worker."""
        with self._cond:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            if self._running is not None:
                self._running._cancel.set()
            self._cond.notify_all()
            thread = self._thread
        for job in waiting:
            job._cancel.set()
            self._retire(job, CANCELLED)
        if thread is not None:
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                self._running = job
                job.state, job.started = RUNNING, time.time()
            try:
                result = job.fn(job)
            except Cancelled:
                self._retire(job, CANCELLED)
            except BaseException as exc:  # noqa: BLE001 - a job's error is its answer; the worker goes on
                self._retire(job, FAILED, error=exc)
            else:
                self._durations.append(time.time() - job.started)
                self._retire(job, DONE, result=result)
            finally:
                with self._cond:
                    self._running = None

    def _retire(self, job: Job, state: str, result: Any = None, error: BaseException | None = None) -> None:
        job._finish(state, result, error)
        with self._cond:
            self._finished.append(job.id)
            while len(self._finished) > self.keep_finished:
                self._jobs.pop(self._finished.popleft(), None)

    # ---- the event loop's side -------------------------------------------------------------
    def submit(self, kind: str, fn: Callable[[Job], Any]) -> Job:
        """Queue ``fn(job)``; raises :class:`QueueFull` (nothing queued) when ``max_queue`` jobs are in."""
        job = Job(kind, fn)
        with self._cond:
            if len(self._waiting) + (self._running is not None) >= self.max_queue:
                self.refused += 1
                raise QueueFull(self.max_queue, self.retry_after())
            self._waiting.append(job)
            self._jobs[job.id] = job
            self._cond.notify()
        self.start()
        return job

    def cancel(self, job: Job) -> bool:
        """Cancel ``job``: a waiting job is dropped now; a running one stops at its next step.

        Returns whether the job was still unfinished."""
        with self._cond:
            if job.state in FINISHED:
                return False
            job._cancel.set()
            try:
                self._waiting.remove(job)
            except ValueError:
                return True  # running: its progress callback raises Cancelled
        self._retire(job, CANCELLED)
        return True

    def forget(self, job: Job) -> None:
        """Drop a finished job from the registry (its caller has its answer)."""
        with self._cond:
            if job.state in FINISHED:
                self._jobs.pop(job.id, None)

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """0 for the running job, k for the k-th waiting one (1-based), None once finished."""
        with self._cond:
            if job is self._running:
                return 0
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return None

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the mean job time (1 s before any job ran), at least 1."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 1.0
        return max(1, int(round(mean)))

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._waiting) + (self._running is not None)

    def snapshot(self, job: Job) -> dict[str, Any]:
        """The JSON-able state of ``job`` (without its result)."""
        d: dict[str, Any] = {"id": job.id, "object": "job", "kind": job.kind, "status": job.state,
                             "created": int(job.created)}
        pos = self.position(job)
        if job.state == QUEUED:
            d["position"] = pos
        if job.state in (RUNNING,) + FINISHED:
            d["step"], d["total"] = job.step, job.total
        return d
