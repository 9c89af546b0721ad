"""Celery for the benchmark: Redis broker and Redis result backend (``$BENCH_REDIS_URL``),
the no-op and latency-probe tasks, start/finish times recorded through Celery's signals."""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun

from bench.peers import recorder
from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    task_default_queue="bench",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.stamp")
def stamp(token: int, port: int) -> None:
    send_stamp(token, port)


@app.task(name="bench.sleep_sync")
def sleep_sync(seconds: float) -> None:
    time.sleep(seconds)


@app.task(name="bench.noop_id")
def noop_id(token: int) -> None:
    recorder.executed(token)


if recorder.install():

    @task_prerun.connect
    def _started(**kwargs: object) -> None:
        recorder.started()

    @task_postrun.connect
    def _finished(**kwargs: object) -> None:
        recorder.finished()
