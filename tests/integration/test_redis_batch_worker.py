"""The batching worker (``taskyard rqworker --worker-class batch``, the default) against a real
Redis (``TASKYARD_TEST_REDIS_URL``): what rq's own tools and workers see, idle pickup without
polling, a killed worker process, rq callbacks refused. The contract suite runs it too
(``redis_batch``, ``redis_batch_real``); the fault tests of the other worker classes are
parametrized with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rq import Callback, Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.worker import Worker

from taskyard import TaskResultStatus
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.batch_worker import BatchWorker
from taskyard.backends.redis.keys import RUN_JOB
from taskyard.backends.redis.serializer import JSONSerializer
from tests import redis_fixtures, tasks
from tests.redis_fixtures import RQWorkerProcess, configure_redis, wait_until

pytestmark = pytest.mark.redis
S = TaskResultStatus
redis_url = redis_fixtures.redis_url
rq_processes = redis_fixtures.rq_processes
LOST = "taskyard.exceptions.WorkerLost"


@pytest.fixture
def backend(redis_url: str) -> RedisBackend:
    found = configure_redis(redis_url, queues=["default"])
    assert isinstance(found, RedisBackend)
    return found


def batch_worker(backend: RedisBackend, name: str = "batch-test", **options: Any) -> BatchWorker:
    settings: dict[str, Any] = {
        "sender": RedisBackend,
        "handle_signals": False,
        "reap_interval": 0,
        "logging_level": "WARNING",
        "lease": backend._lease,
        **options,
    }
    return BatchWorker(backend.connection(), ["default"], name, **settings)


@pytest.fixture
def background(backend: RedisBackend) -> Iterator[BatchWorker]:
    worker = batch_worker(backend, "batch-background")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_until(worker.alive, what="the worker to start")
    yield worker
    worker.stop()
    thread.join(15)
    assert not thread.is_alive()


def test_rqs_tools_see_what_rqs_own_worker_leaves(
    backend: RedisBackend, background: BatchWorker
) -> None:
    client = backend.connection()
    name = f"gate-{time.monotonic()}"
    tasks.GATES[name] = gate = threading.Event()
    running = tasks.gate.enqueue(name)
    wait_until(lambda: running.refresh() or running.status is S.RUNNING, what="RUNNING")
    # while it runs: rq's started registry, job status and worker registration
    job = Job.fetch(running.id, connection=client, serializer=JSONSerializer)
    assert job.get_status() == "started" and job.worker_name == "batch-background"
    assert job.started_at is not None
    started = StartedJobRegistry("default", connection=client)
    assert started.get_job_ids() == [running.id]
    [(entry, lease_end)] = client.zrange(started.key, 0, -1, withscores=True)
    assert entry.decode().startswith(f"{running.id}:")  # rq's job:execution entry
    assert time.time() < lease_end < time.time() + backend._lease + 1  # the lease end
    workers = Worker.all(connection=client)
    assert [w.name for w in workers] == ["batch-background"]
    gate.set()
    ok = tasks.add.enqueue(2, 3)
    failed = tasks.fail.enqueue("kaput")
    assert ok.wait(10).return_value == 5
    failed.wait(10)
    running.wait(10)
    # after: finished / failed, rq's result stream, registries, counters
    job = Job.fetch(ok.id, connection=client, serializer=JSONSerializer)
    assert job.get_status() == "finished" and job.return_value() == 5
    assert job.ended_at is not None and job.ended_at >= job.started_at  # type: ignore[operator]
    latest = job.latest_result()
    assert latest is not None and latest.type is Result.Type.SUCCESSFUL
    bad = Job.fetch(failed.id, connection=client, serializer=JSONSerializer)
    assert bad.get_status() == "failed"
    bad_result = bad.latest_result()
    assert bad_result is not None and bad_result.type is Result.Type.FAILED
    assert "kaput" in (bad_result.exc_string or "")
    assert "kaput" in (bad.exc_info or "")
    finished = FinishedJobRegistry("default", connection=client)
    assert set(finished.get_job_ids()) == {ok.id, running.id}
    assert FailedJobRegistry("default", connection=client).get_job_ids() == [failed.id]
    assert started.get_job_ids() == []
    assert client.keys("rq:execution:*") == []
    worker = Worker.find_by_key("rq:worker:batch-background", connection=client)
    assert worker is not None
    assert (worker.successful_job_count, worker.failed_job_count) == (2, 1)


def test_rq_info_counts_the_registries(backend: RedisBackend, redis_url: str) -> None:
    for i in range(3):
        tasks.add.enqueue(i, i)
    tasks.fail.enqueue("x")
    batch_worker(backend, burst=True).run()
    info = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "info", "--url", redis_url, "--only-queues"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "default" in info
    client = backend.connection()
    queue = Queue("default", connection=client)
    assert queue.count == 0
    assert queue.finished_job_registry.count == 3
    assert queue.failed_job_registry.count == 1
    assert queue.started_job_registry.count == 0


def test_plain_rq_workers_and_the_batch_worker_share_the_queues(backend: RedisBackend) -> None:
    client = backend.connection()

    def rq_burst() -> None:
        SimpleWorker(["default"], connection=client, serializer=JSONSerializer).work(
            burst=True, logging_level="WARNING"
        )

    by_rq = tasks.add.enqueue(1, 1)
    rq_burst()  # the batch worker is absent: rq's own worker runs taskyard's job
    assert by_rq.wait(5).return_value == 2 and by_rq.attempts == 1
    by_batch = tasks.add.enqueue(2, 2)
    retried = tasks.flaky.enqueue(2)  # fails once, retried at once (backoff 0)
    batch_worker(backend, burst=True).run()
    assert by_batch.wait(5).return_value == 4
    assert retried.wait(5).return_value == 2 and retried.attempts == 2
    after = tasks.add.enqueue(3, 3)
    rq_burst()  # what the batch worker left behind does not confuse rq's worker
    assert after.wait(5).return_value == 6
    for result in (by_rq, by_batch, after):
        job = Job.fetch(result.id, connection=client, serializer=JSONSerializer)
        assert job.get_status() == "finished" and job.return_value() == result.return_value


def test_rq_callbacks_are_refused_and_never_called(backend: RedisBackend) -> None:
    queue = Queue("default", connection=backend.connection(), serializer=JSONSerializer)
    declared = Callback("tests.tasks.record_callback")  # importable, from a task module
    hostile = queue.enqueue_call(
        RUN_JOB, args=["tests.tasks.add", [1, 2], {}, {}], on_success=Callback("builtins.print")
    )
    friendly = queue.enqueue_call(
        RUN_JOB, args=["tests.tasks.add", [1, 2], {}, {}], on_failure=declared
    )
    plain = queue.enqueue_call("os.getpid")
    after = tasks.add.enqueue(2, 2)
    tasks.RUN_LOG.clear()
    batch_worker(backend, burst=True).run()
    assert after.wait(5).return_value == 4
    for job in (hostile, friendly):
        result = backend.get_result(job.id)
        assert result.status is S.FAILED and result.attempts == 0
        assert "carries rq callback(s)" in result.errors[-1].traceback
    plain.refresh()
    assert plain.get_status() == "failed"
    assert tasks.RUN_LOG == []  # no callback ran


def test_an_idle_worker_starts_a_new_task_without_polling(
    backend: RedisBackend, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    worker = RQWorkerProcess.rqworker(f"{redis_url}?queues=default", log=tmp_path / "w")
    rq_processes.append(worker)
    worker.wait_for_output("Listening on")
    tasks.add.enqueue(0, 0).wait(10)
    delays = []
    for i in range(7):
        time.sleep(0.3)  # idle: blocked on Redis, not polling
        before = time.time()
        result = tasks.add.enqueue(i, i).wait(10)
        assert result.started_at is not None
        delays.append(result.started_at.timestamp() - before)
    delays.sort()
    print(f"\nidle pickup: median {delays[3] * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms")
    # a worker that polled once a second (its longest block) would start them 0.5 s late on
    # average; woken by Redis, it starts them in about a millisecond
    assert delays[3] < 0.1


def test_a_killed_worker_process_is_replaced_and_its_attempt_handed_back_at_once(
    redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url, LEASE=60.0)  # a lease that would make the reaper far too slow
    worker = RQWorkerProcess.rqworker(redis_url, "--name", "victim", log=tmp_path / "w")
    rq_processes.append(worker)
    worker.wait_for_output("Listening on")
    result = tasks.slow_first_attempt.using(retries=0).enqueue(60)
    wait_until(lambda: result.refresh() or result.status is S.RUNNING, what="RUNNING")
    child = [pid for pid in worker.session() if pid != worker.proc.pid]
    assert len(child) == 1, child
    killed = time.monotonic()
    os.kill(child[0], signal.SIGKILL)  # the batch worker process (its supervisor survives)
    result.wait(20)
    took = time.monotonic() - killed
    print(f"\nbatch worker process SIGKILL -> attempt 2 done after {took:.2f}s")
    assert result.status is S.SUCCESSFUL and result.return_value == 2
    assert result.attempts == 2 and [e.exception_class_path for e in result.errors] == [LOST]
    assert took < 15  # not after the 60 s lease
    assert worker.proc.poll() is None
    assert tasks.add.enqueue(1, 1).wait(10).return_value == 2  # the new process works


def test_a_task_that_kills_its_process_fails_past_the_interruption_bound(
    redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url, LEASE=60.0)
    worker = RQWorkerProcess.rqworker(redis_url, log=tmp_path / "w")
    rq_processes.append(worker)
    poisoned = tasks.poison.enqueue()  # os._exit(13); retries=1
    poisoned.wait(40)
    assert poisoned.status is S.FAILED and poisoned.attempts == 4
    assert [e.exception_class_path for e in poisoned.errors] == [LOST] * 4
    assert tasks.add.enqueue(1, 1).wait(15).return_value == 2
    assert worker.proc.poll() is None


def test_a_thread_stuck_past_its_timeout_replaces_the_process(
    redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url)
    worker = RQWorkerProcess.rqworker(redis_url, log=tmp_path / "w")
    rq_processes.append(worker)
    worker.wait_for_output("Listening on")
    stuck = tasks.ignores_alarm.enqueue(60)  # timeout 0.5 s; a blocking call nothing stops
    stuck.wait(20)
    assert stuck.last_attempted_at is not None and stuck.finished_at is not None
    took = (stuck.finished_at - stuck.last_attempted_at).total_seconds()
    print(f"\nthread stuck in a C call past timeout 0.5 s: recorded after {took:.2f}s")
    assert stuck.status is S.FAILED and stuck.attempts == 1 and took <= 0.5 + 5
    assert stuck.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert tasks.add.enqueue(1, 1).wait(15).return_value == 2  # the replacement works
    assert worker.proc.poll() is None
