"""``taskyard rqworker`` and plain rq workers against a real Redis (``TASKYARD_TEST_REDIS_URL``,
default ``redis://127.0.0.1:6379/15``): every worker class, health endpoints, rq's own tools,
cancellation across processes, real timeouts and limits under concurrent enqueuers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from taskyard import TaskLimitError, TaskResultStatus
from taskyard.backends.redis import RedisBackend
from tests import redis_fixtures, tasks
from tests.redis_fixtures import (
    ROOT,
    RQWorkerProcess,
    configure_redis,
    wait_until,
)

pytestmark = pytest.mark.redis
S = TaskResultStatus
redis_url = redis_fixtures.redis_url
rq_processes = redis_fixtures.rq_processes


@pytest.fixture
def backend(redis_url: str) -> RedisBackend:
    found = configure_redis(redis_url)
    assert isinstance(found, RedisBackend)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("worker_class", ["batch", "forking", "simple", "pool"])
def test_rqworker_runs_taskyard_tasks(
    worker_class: str,
    backend: RedisBackend,
    redis_url: str,
    rq_processes: list[RQWorkerProcess],
    tmp_path: Path,
) -> None:
    args = ["--worker-class", worker_class, "--with-scheduler", "--num-workers", "2"]
    worker = RQWorkerProcess.rqworker(
        f"{redis_url}?queues=default,other", *args, log=tmp_path / "w"
    )
    rq_processes.append(worker)
    results = {
        "add": tasks.add.enqueue(2, 3),
        "priority": tasks.add.using(priority=20, queue_name="other").enqueue(1, 1),
        "retried": tasks.flaky.enqueue(3),
        "async": tasks.async_add.enqueue(20, 22),
        "context": tasks.with_context.enqueue(3),
        "later": tasks.add.using(run_after=timedelta(seconds=1)).enqueue(7, 7),
        "failed": tasks.fail.enqueue("kaput"),
    }
    started = time.monotonic()
    timed_out = tasks.blocks_in_c.enqueue(30)  # one blocking C call, timeout 0.5 s
    for result in results.values():
        result.wait(30)
    timed_out.wait(30)
    assert results["add"].return_value == 5 and results["priority"].return_value == 2
    assert results["retried"].return_value == 3 and results["retried"].attempts == 3
    assert results["async"].return_value == 42
    assert results["context"].progress is not None and results["context"].progress.current == 3
    assert results["later"].started_at >= results["later"].task.run_after  # type: ignore[operator]
    assert results["failed"].status is S.FAILED
    assert results["failed"].errors[0].exception_class_path == "builtins.ValueError"
    assert timed_out.status is S.FAILED
    assert timed_out.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert time.monotonic() - started < 25  # the 30 s sleep was interrupted
    assert all(r.worker_ids for r in results.values())


def test_health_endpoints(
    redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url)
    port = free_port()
    worker = RQWorkerProcess.rqworker(
        f"{redis_url}?queues=default,other", "--health-port", str(port), log=tmp_path / "w"
    )
    rq_processes.append(worker)
    worker.wait_for_output("health server listening")
    tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert get("/health/liveness")[0] == 200
    status, body = wait_until(lambda: (r := get("/health/readiness"))[0] == 200 and r, what="ready")
    assert json.loads(body)["ready"] is True
    status, body = get("/processor/monitoring")
    data = json.loads(body)
    assert status == 200 and next(iter(data)) == "waiting" and data["scheduled"] == 1
    status, body = get("/metrics")
    assert status == 200 and 'taskyard_tasks_scheduled{queue="default"} 1' in body


def test_plain_rq_tooling_sees_ordinary_jobs_and_plain_rq_workers_run_them(
    backend: RedisBackend, redis_url: str, tmp_path: Path
) -> None:
    plain = tasks.add.enqueue(1, 2)
    levelled = tasks.add.using(priority=5).enqueue(3, 4)
    info = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "info", "--url", redis_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "default " in info and "default:p5" in info
    env = {
        "PYTHONPATH": ROOT,
        "PATH": str(Path(sys.executable).parent),
        "TASKYARD_ALLOWED_IMPORTS": "tests",
    }
    rq = str(Path(sys.executable).parent / "rq")
    # rq's own worker, configured with nothing but rq's JSON serializer (and the environment
    # variable that lets it import the task modules jobs name):
    subprocess.run(
        [rq, "worker", "--url", redis_url, "--serializer", "json", "--burst", "default"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert plain.wait(5).return_value == 3
    levelled.refresh()
    assert levelled.status is S.READY  # a plain worker listens to the names it is given
    # ... and with taskyard's worker class it finds every priority level:
    subprocess.run(
        [
            *(rq, "worker", "--url", redis_url, "--serializer", "json", "--burst", "default"),
            *("--worker-class", "taskyard.backends.redis.worker.TaskyardWorker"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert levelled.wait(5).return_value == 7


def test_cancel_a_running_task_from_another_process(
    backend: RedisBackend, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    rq_processes.append(RQWorkerProcess.rqworker(redis_url, log=tmp_path / "w"))
    result = tasks.until_cancelled.enqueue(20.0)
    wait_until(lambda: result.refresh() or result.status is S.RUNNING, what="RUNNING")
    started = time.monotonic()
    assert result.cancel() is True
    result.wait(10)
    assert result.status is S.CANCELLED and time.monotonic() - started < 5
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.TaskCancelled"


def test_limit_is_atomic_under_concurrent_enqueuers(backend: RedisBackend) -> None:
    task = tasks.add.using(limit=4, limit_key="tenant-9")
    accepted, refused = [], []
    barrier = threading.Barrier(16)

    def enqueue(i: int) -> None:
        barrier.wait()
        try:
            accepted.append(task.enqueue(i, i))
        except TaskLimitError:
            refused.append(i)

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(accepted), len(refused)) == (4, 12)
