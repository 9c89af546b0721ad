"""Huey for the benchmark: ``SqliteHuey``, ``RedisHuey`` or ``PostgresHuey`` from
``$BENCH_HUEY_URL`` (``sqlite:///path``, ``redis://…``, ``postgresql://…``), with the no-op and
latency-probe tasks, and start/finish times recorded through Huey's signals."""

from __future__ import annotations

import os
import time

from huey import PostgresHuey, RedisHuey, SqliteHuey, signals

from bench.peers import recorder
from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_HUEY_URL", "sqlite:////tmp/bench-huey.sqlite3")

if URL.startswith("sqlite:///"):
    huey = SqliteHuey("bench", filename=URL.removeprefix("sqlite:///"))
elif URL.startswith("redis://"):
    huey = RedisHuey("bench", url=URL)
else:
    huey = PostgresHuey("bench", dsn=URL)


@huey.task()
def noop() -> None:
    return None


@huey.task()
def stamp(token: int, port: int) -> None:
    send_stamp(token, port)


@huey.task()
def sleep_sync(seconds: float) -> None:
    time.sleep(seconds)


@huey.task()
def noop_id(token: int) -> None:
    recorder.executed(token)


if recorder.install():

    @huey.signal(signals.SIGNAL_EXECUTING)
    def _started(signal: str, task: object, *args: object) -> None:
        recorder.started()

    @huey.signal(signals.SIGNAL_COMPLETE)
    def _finished(signal: str, task: object, *args: object) -> None:
        recorder.finished()
