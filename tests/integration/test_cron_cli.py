"""``taskyard cron`` and ``taskyard worker --with-cron`` as real processes (SQLite, real time).

These are the only cron tests that wait on the wall clock: an interval of one second, for a
few seconds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import ROOT, wait_for


def write_settings(tmp_path: Path) -> tuple[str, Path]:
    """A settings module in ``tmp_path``: a SQLite queue and a CRON entry touching a file."""
    db = tmp_path / "queue.sqlite3"
    touched = tmp_path / "touched"
    (tmp_path / "cron_e2e_settings.py").write_text(
        "TASKS = {'default': {'BACKEND': 'taskyard.backends.database.DatabaseBackend',\n"
        f"                     'QUEUES': [], 'OPTIONS': {{'URL': 'sqlite:///{db}',\n"
        "                                               'AUTO_MIGRATE': True}}}\n"
        "IMPORTS = ['tests.tasks']\n"
        f"CRON = {{'touch': {{'task': 'tests.tasks.touch', 'every': 1, 'args': ['{touched}']}}}}\n"
    )
    return "cron_e2e_settings", db


def start(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    env.pop("TASKYARD_SETTINGS", None)
    env.pop("TASKYARD_URL", None)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskyard", *args, "--settings", "cron_e2e_settings"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def claims(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT tick, task_id FROM taskyard_cron_tick ORDER BY tick").fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet
    finally:
        conn.close()


def task_rows(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM taskyard_task")]
    finally:
        conn.close()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_two_cron_processes_enqueue_each_tick_once(tmp_path: Path) -> None:
    _, db = write_settings(tmp_path)
    first, first_log = start(tmp_path, "cron-1", "cron")
    second, second_log = start(tmp_path, "cron-2", "cron", "--scheduler-id", "second")
    try:
        wait_for(lambda: len(claims(db)) >= 4, timeout=30, what="four ticks claimed")
    finally:
        codes = (stop(first), stop(second))
    assert codes == (0, 0), first_log.read_text() + second_log.read_text()
    taken = claims(db)
    ticks = [tick for tick, _ in taken]
    assert len(ticks) == len(set(ticks))
    assert sorted(task_id for _, task_id in taken) == sorted(task_rows(db))  # one task per tick
    output = first_log.read_text() + second_log.read_text()
    assert "cron scheduler" in output and "starting with 1 schedule(s): touch" in output
    assert output.count("enqueued tests.tasks.touch") == len(ticks)


def test_worker_with_cron_enqueues_and_runs(tmp_path: Path) -> None:
    _, db = write_settings(tmp_path)
    touched = tmp_path / "touched"
    worker, log = start(tmp_path, "worker", "worker", "--with-cron", "--queues", "*")
    try:
        wait_for(
            lambda: touched.exists() and touched.read_text().count("ran") >= 2,
            timeout=30,
            what="the scheduled task to run twice",
        )
    finally:
        code = stop(worker)
    assert code == 0, log.read_text()
    assert len(claims(db)) >= 2
    assert "cron scheduler" in log.read_text()
