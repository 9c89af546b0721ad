"""The worker's event loop (``AsyncRunner``) around its stop: a maintenance tick that comes
after the loop stopped must not fail (it used to raise ``Event loop is closed``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from taskyard import task
from taskyard.tasks.loop import AsyncRunner, Start


class _Result:
    id = "r1"


async def _forever() -> Any:
    await asyncio.sleep(3600)


def test_cancel_after_stop_is_a_no_op() -> None:
    runner = AsyncRunner().start()
    ended = threading.Event()
    given_up: list[object] = []

    def done(result: Any, outcome: Any, error: BaseException | None) -> None:
        given_up.append(outcome)
        ended.set()

    start = Start(task_id="t1", task=sleeper, result=_Result(), run=_forever, done=done)  # type: ignore[arg-type]
    runner.submit([start])
    for _ in range(100):
        if runner.in_flight():
            break
        threading.Event().wait(0.01)
    assert runner.in_flight() == 1
    runner.stop(timeout=1.0)
    assert ended.wait(2.0) and given_up == [None]
    runner.cancel(["t1"], stopping=False)  # a late maintenance tick
    runner.cancel([], stopping=True)


@task()
async def sleeper() -> None:
    await asyncio.sleep(3600)
