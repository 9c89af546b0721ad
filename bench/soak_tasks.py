"""The soak test's task: record each execution (task id, attempt, process, start time) outside
the queue — in ``soak_execution`` on PostgreSQL or the ``soak:exec`` list on Redis, chosen by
``$SOAK_STORE`` / ``$SOAK_STORE_URL`` — then sleep a random few milliseconds."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

from taskyard import TaskContext, task

_local = threading.local()


def _pg() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or getattr(_local, "pid", None) != os.getpid():
        import psycopg

        conn = psycopg.connect(
            os.environ["SOAK_STORE_URL"], autocommit=True, application_name="soak-recorder"
        )
        _local.conn, _local.pid = conn, os.getpid()
    return conn


def _redis() -> Any:
    client = getattr(_local, "redis", None)
    if client is None or getattr(_local, "pid", None) != os.getpid():
        import redis

        client = redis.Redis.from_url(os.environ["SOAK_STORE_URL"])
        _local.redis, _local.pid = client, os.getpid()
    return client


@task(retries=50, takes_context=True)
def record(context: TaskContext, max_ms: int) -> None:
    started = time.time()
    task_id, attempt, pid = context.task_result.id, context.attempt, os.getpid()
    if os.environ.get("SOAK_STORE") == "redis":
        _redis().rpush("soak:exec", f"{task_id} {attempt} {pid} {started!r}")
    else:
        _pg().execute(
            "INSERT INTO soak_execution (task_id, attempt, pid, started) VALUES (%s, %s, %s, %s)",
            [task_id, attempt, pid, started],
        )
    time.sleep(random.random() * max_ms / 1000)
