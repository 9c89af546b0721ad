"""Issue 12, item 11: ``/metrics`` carries processed/succeeded/failed in every worker mode
(``--processes`` sums its children; ``rqworker`` reads rq's worker counters), per-queue gauges
for every queue holding tasks when the worker serves ``*``, and ``--max-tasks-per-process``
without ``--processes`` says it exits for its supervisor to restart it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

import taskyard
from tests import redis_fixtures, tasks
from tests.cli_support import ROOT, TASKYARD, user_env
from tests.cli_support import taskyard as run_taskyard
from tests.integration.conftest import wait_for
from tests.redis_fixtures import configure_redis

redis_url = redis_fixtures.redis_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(text: str, name: str, queue: str | None = None) -> float | None:
    label = f'{{queue="{queue}"}}' if queue is not None else ""
    match = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [TASKYARD, *argv], cwd=ROOT, env=user_env(), stdout=out, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def enqueue_on_two_queues() -> None:
    for i in range(3):
        tasks.add.enqueue(i, i)
    tasks.add.using(queue_name="emails").enqueue(1, 1)
    tasks.fail.using(queue_name="emails").enqueue()


@pytest.mark.slow
def test_process_mode_sums_its_children_and_shows_every_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    assert run_taskyard("migrate", "--url", url, cwd=tmp_path).returncode == 0
    taskyard.configure(url=f"{url}?queues=*")
    enqueue_on_two_queues()
    tasks.add.using(queue_name="later", run_after=timedelta(hours=1)).enqueue(0, 0)
    port = free_port()
    argv = ["worker", "--url", url, "--import", "tests.tasks", "--queues", "*", "--processes",
            "2", "--health-port", str(port)]  # fmt: skip
    proc = start(argv, tmp_path / "worker.log")
    try:
        text = wait_for(
            lambda: (t := scrape(port)) and metric(t, "taskyard_worker_processed_total") == 5 and t,
            timeout=60,
            what="the children to run 5 tasks",
        )
        assert metric(text, "taskyard_worker_succeeded_total") == 4
        assert metric(text, "taskyard_worker_failed_total") == 1
        assert metric(text, "taskyard_tasks_failed", "emails") == 1
        assert metric(text, "taskyard_tasks_scheduled", "later") == 1
        assert metric(text, "taskyard_tasks_waiting", "default") == 0
    finally:
        stop(proc)


@pytest.mark.slow
def test_rqworker_exports_the_counters(redis_url: str, tmp_path: Path) -> None:
    configure_redis(redis_url, queues=["default", "emails"])
    enqueue_on_two_queues()
    port = free_port()
    argv = ["rqworker", "default", "emails", "--url", redis_url, "--import", "tests.tasks",
            "--health-port", str(port), "--worker-class", "simple"]  # fmt: skip
    proc = start(argv, tmp_path / "rq.log")
    try:
        text = wait_for(
            lambda: (t := scrape(port)) and metric(t, "taskyard_worker_processed_total") == 5 and t,
            timeout=60,
            what="rqworker to run 5 tasks",
        )
        assert metric(text, "taskyard_worker_succeeded_total") == 4
        assert metric(text, "taskyard_worker_failed_total") == 1
        assert metric(text, "taskyard_tasks_waiting", "emails") == 0
    finally:
        stop(proc)


def test_max_tasks_per_process_without_processes_exits_for_a_supervisor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    assert run_taskyard("migrate", "--url", url, cwd=tmp_path).returncode == 0
    taskyard.configure(url=url)
    for i in range(4):
        tasks.add.enqueue(i, i)
    done = run_taskyard(
        "worker", "--url", url, "--import", "tests.tasks", "--threads", "1",
        "--max-tasks-per-process", "2", cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exits after 2 tasks" in done.stderr and "supervisor" in done.stderr
    waiting = run_taskyard("list", "--url", url, "--status", "ready", cwd=tmp_path)
    assert "2 task(s)" in waiting.stdout
