"""The soak test's task: record each execution (task id, attempt, process, start time, and end
time once the function returned) outside the queue, then sleep a random few milliseconds.

Where: with ``$SOAK_RECORD_DIR``, one append-only file per process in that directory (nothing
a store fault can take away: the Redis leg restarts its Redis); otherwise the ``soak_execution``
table of ``$SOAK_STORE_URL`` (PostgreSQL).
"""

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


def _append(line: str) -> None:
    """One ``write`` to this process's file (``O_APPEND``): a line is whole or absent."""
    fd = getattr(_local, "fd", None)
    if fd is None or getattr(_local, "fd_pid", None) != os.getpid():
        path = os.path.join(os.environ["SOAK_RECORD_DIR"], f"{os.getpid()}.log")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _local.fd, _local.fd_pid = fd, os.getpid()
    os.write(fd, line.encode())


@task(takes_context=True)
def record(context: TaskContext, max_ms: int) -> None:
    started = time.time()
    task_id, attempt, pid = context.task_result.id, context.attempt, os.getpid()
    to_files = bool(os.environ.get("SOAK_RECORD_DIR"))
    if to_files:
        _append(f"start {task_id} {attempt} {pid} {started!r}\n")
    else:
        _pg().execute(
            "INSERT INTO soak_execution (task_id, attempt, pid, started) VALUES (%s, %s, %s, %s)",
            [task_id, attempt, pid, started],
        )
    time.sleep(random.random() * max_ms / 1000)
    ended = time.time()
    if to_files:
        _append(f"end {task_id} {attempt} {pid} {ended!r}\n")
    else:
        _pg().execute(
            "UPDATE soak_execution SET ended = %s WHERE task_id = %s AND attempt = %s AND pid = %s",
            [ended, task_id, attempt, pid],
        )


def read_records(directory: str) -> list[tuple[str, int, int, float, float | None]]:
    """``(task id, attempt, pid, started, ended)`` of every execution recorded in files."""
    starts: dict[tuple[str, int, int], float] = {}
    ends: dict[tuple[str, int, int], float] = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as handle:
            for line in handle:
                parts = line.split()
                if len(parts) != 5:
                    continue  # cut short by a SIGKILL
                kind, task_id, attempt, pid, moment = parts
                key = (task_id, int(attempt), int(pid))
                (starts if kind == "start" else ends)[key] = float(moment)
    return [(*key, started, ends.get(key)) for key, started in starts.items()]
