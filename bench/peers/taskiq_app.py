"""taskiq for the benchmark: taskiq-redis's ``ListQueueBroker`` on ``$BENCH_REDIS_URL`` with
its Redis result backend, the tasks (async, and one sync task for the thread pool), start and
finish times recorded by a taskiq middleware."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from bench.peers import recorder
from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

broker = ListQueueBroker(URL, queue_name="bench").with_result_backend(
    RedisAsyncResultBackend(URL, result_ex_time=3600)
)


class Recorder(TaskiqMiddleware):
    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        recorder.started()
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        recorder.finished()


if recorder.install():
    broker.add_middlewares(Recorder())


@broker.task(task_name="noop")
async def noop() -> None:
    return None


@broker.task(task_name="stamp")
async def stamp(token: int, port: int) -> None:
    send_stamp(token, port)


@broker.task(task_name="sleep_async")
async def sleep_async(seconds: float) -> None:
    await asyncio.sleep(seconds)


@broker.task(task_name="sleep_sync")
def sleep_sync(seconds: float) -> None:
    time.sleep(seconds)


@broker.task(task_name="noop_id")
async def noop_id(token: int) -> None:
    recorder.executed(token)


TASKS = {"noop": noop, "stamp": stamp, "sleep_async": sleep_async, "sleep_sync": sleep_sync}
TASKS["noop_id"] = noop_id
