"""The SQLite inbox's database thread: calls run one at a time, in order, off the loop's thread,
and every result or exception comes back to its caller on the loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from functools import partial
from typing import Any

import pytest

from appservice.server.db_thread import DBThread


async def test_calls_run_in_order_on_one_thread_that_is_not_the_loops() -> None:
    thread = DBThread("test-db")
    thread.start()
    try:
        seen: list[tuple[int, int]] = []

        def job(n: int) -> int:
            time.sleep(0.001 * (5 - n))  # earlier jobs take longer: order must not change
            seen.append((n, threading.get_ident()))
            return n * 10

        results = await asyncio.gather(*(thread.run(job, n) for n in range(5)))
        assert results == [0, 10, 20, 30, 40]
        assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
        idents = {ident for _, ident in seen}
        assert len(idents) == 1
        assert idents != {threading.get_ident()}
    finally:
        await thread.stop()


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    thread = DBThread("test-db")
    thread.start()
    try:

        def fails() -> None:
            raise ValueError("bad row 7")

        with pytest.raises(ValueError, match="bad row 7"):
            await thread.run(fails)
        assert await thread.run(lambda: "still here") == "still here"
    finally:
        await thread.stop()


async def test_submit_answers_through_the_done_callback_on_the_loop() -> None:
    thread = DBThread("test-db")
    thread.start()
    loop_thread = threading.get_ident()
    answers: list[tuple[Any, BaseException | None, int]] = []
    got = asyncio.Event()

    def done(result: Any, error: BaseException | None) -> None:
        answers.append((result, error, threading.get_ident()))
        if len(answers) == 2:
            got.set()

    try:
        thread.submit(lambda: 41 + 1, done)
        thread.submit(lambda: 1 / 0, done)
        async with asyncio.timeout(5):
            await got.wait()
    finally:
        await thread.stop()
    (first, no_error, t1), (none, error, t2) = answers
    assert (first, no_error) == (42, None)
    assert none is None
    assert isinstance(error, ZeroDivisionError)
    assert t1 == t2 == loop_thread


async def test_stop_lets_queued_calls_finish_first() -> None:
    thread = DBThread("test-db")
    thread.start()
    finished: list[int] = []

    def slow(n: int) -> None:
        time.sleep(0.01)
        finished.append(n)

    for n in range(3):
        thread.submit(partial(slow, n), lambda _r, _e: None)
    await thread.stop()
    assert finished == [0, 1, 2]
    assert not thread.running


async def test_use_outside_start_and_stop_is_a_clear_error() -> None:
    thread = DBThread("test-db")
    with pytest.raises(RuntimeError, match="test-db is not running"):
        thread.submit(lambda: None, lambda _r, _e: None)
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="test-db is already running"):
            thread.start()
    finally:
        await thread.stop()
    with pytest.raises(RuntimeError, match="not running"):
        await thread.run(lambda: None)
    await thread.stop()  # a second stop does nothing


async def test_a_caller_cancelled_while_its_call_runs_does_not_break_the_thread() -> None:
    thread = DBThread("test-db")
    thread.start()
    release = threading.Event()
    try:
        task = asyncio.ensure_future(thread.run(release.wait, 5))
        await asyncio.sleep(0.01)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await thread.run(lambda: "next") == "next"
    finally:
        await thread.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux only")
async def test_the_thread_asks_linux_for_batch_scheduling() -> None:
    thread = DBThread("test-db")
    thread.start()
    try:
        policy = await thread.run(os.sched_getscheduler, 0)
    finally:
        await thread.stop()
    assert policy == os.SCHED_BATCH
    assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the loop's thread keeps its policy
