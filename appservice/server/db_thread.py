"""One thread that runs blocking database calls in order, for the SQLite inbox.

Lighter than ``loop.run_in_executor``: a job is a plain call queued on a ``SimpleQueue``, and its
result comes back through one ``call_soon_threadsafe`` straight to a callback, with no
``concurrent.futures.Future`` chained to an asyncio one in between. Intake makes one such round
trip per delivery, so this is on its hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Done = Callable[[Any, BaseException | None], None]
"""Called on the event loop with a job's result, or ``None`` and the exception it raised."""


class DBThread:
    """Runs submitted calls one at a time, in submission order, on its own thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Done] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread; results are delivered on the running event loop."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], done: Done) -> None:
        """Queue ``fn``; ``done(result, error)`` runs on the loop once it has returned or raised."""
        if self._thread is None:
            raise RuntimeError(f"{self._name} is not running")
        self._jobs.put((fn, done))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the thread and return its result (or raise its exception)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.submit(lambda: fn(*args), lambda result, error: _settle(future, result, error))
        return await future

    async def stop(self) -> None:
        """Let the queued calls finish, then end the thread."""
        thread = self._thread
        if thread is None:
            return
        await self.run(lambda: None)  # every job queued before has run and been answered
        self._jobs.put(None)
        thread.join()
        self._thread = None

    def _main(self) -> None:
        loop = self._loop
        assert loop is not None
        jobs = self._jobs
        _batch_scheduling()
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, done = job
            try:
                answer: tuple[Any, BaseException | None] = (fn(), None)
            except BaseException as exc:  # handed to the caller, on the loop
                answer = (None, exc)
            try:
                loop.call_soon_threadsafe(done, *answer)
            except RuntimeError:  # the loop is closed: nobody is left to answer
                return


def _batch_scheduling() -> None:
    """Mark the calling thread SCHED_BATCH (Linux; elsewhere nothing): woken by a submit, it
    then waits for the loop's thread to block instead of preempting it only to find the GIL
    taken, which cost two context switches per job."""
    setscheduler = getattr(os, "sched_setscheduler", None)
    policy = getattr(os, "SCHED_BATCH", None)
    if setscheduler is None or policy is None:
        return
    with contextlib.suppress(OSError):
        setscheduler(0, policy, os.sched_param(0))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
