"""Fault tests of the Redis backend with real processes and a real Redis: workers killed with
SIGKILL mid-task, a work horse that dies, Redis restarted under a worker, Redis unreachable at
enqueue, and poison payloads. Each prints what it measured (``pytest -s`` shows it)."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest
from rq import Queue

from taskyard import BackendUnavailable, TaskResultStatus
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.keys import RUN_JOB
from taskyard.backends.redis.serializer import JSONSerializer
from tests import redis_fixtures, tasks
from tests.redis_fixtures import (
    RQWorkerProcess,
    ThrowawayRedis,
    configure_redis,
    free_port,
    wait_until,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]
S = TaskResultStatus
redis_url = redis_fixtures.redis_url
throwaway_redis = redis_fixtures.throwaway_redis
rq_processes = redis_fixtures.rq_processes
LEASE = 2.0
REAP = 0.5


@pytest.fixture
def backend(redis_url: str) -> RedisBackend:
    found = configure_redis(redis_url, LEASE=LEASE)
    assert isinstance(found, RedisBackend)
    return found


def running(result: object) -> bool:
    result.refresh()  # type: ignore[attr-defined]
    return result.status is S.RUNNING  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("worker_class", "lease", "reap"),
    [
        ("batch", LEASE, REAP),
        ("simple", LEASE, REAP),
        ("forking", LEASE, REAP),
        ("simple", 10.0, 1.0),
    ],
    ids=["batch-lease2", "simple-lease2", "forking-lease2", "simple-defaults"],
)
def test_a_worker_killed_mid_task_is_retried_within_the_lease_bound(
    worker_class: str,
    lease: float,
    reap: float,
    redis_url: str,
    rq_processes: list[RQWorkerProcess],
    tmp_path: Path,
) -> None:
    configure_redis(redis_url, LEASE=lease)  # the enqueuer's settings carry the lease
    args = ["--worker-class", worker_class, "--reap-interval", str(reap)]
    victim = RQWorkerProcess.rqworker(redis_url, *args, "--name", "victim", log=tmp_path / "v")
    rq_processes.append(victim)
    result = tasks.slow_first_attempt.enqueue(60)
    wait_until(lambda: running(result), what="the first attempt to run")
    rescuer = RQWorkerProcess.rqworker(redis_url, *args, "--name", "rescuer", log=tmp_path / "r")
    rq_processes.append(rescuer)
    rescuer.wait_for_output("Listening on")
    time.sleep(lease / 2)  # the victim has renewed its lease (every lease/3) by now
    killed_at = time.time()
    victim.kill_group()  # SIGKILL to the worker and, when forking, its work horse
    result.wait(lease * 3 + 10)
    took = result.last_attempted_at.timestamp() - killed_at  # type: ignore[union-attr]
    print(
        f"\n[{worker_class}] SIGKILL -> attempt 2 started after {took:.2f}s "
        f"(bound: lease {lease}s + reap interval {reap}s)"
    )
    assert result.status is S.SUCCESSFUL and result.return_value == 2
    assert result.worker_ids == ["victim", "rescuer"]
    assert result.errors[0].exception_class_path == "taskyard.exceptions.WorkerLost"
    assert took <= lease + reap + 1.0


def test_a_work_horse_that_dies_is_an_interruption_rerun_at_once_then_failed_past_the_bound(
    backend: RedisBackend, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    worker = RQWorkerProcess.rqworker(
        redis_url, "--worker-class", "forking", "--reap-interval", str(REAP), log=tmp_path / "w"
    )
    rq_processes.append(worker)
    started = time.monotonic()
    poisoned = tasks.poison.enqueue()  # os._exit(13) in the work horse; retries=1
    after = tasks.add.enqueue(1, 1)
    poisoned.wait(30)
    # interrupted attempts are run again whatever retries says, MAX_INTERRUPTIONS (3) times:
    # the fourth interruption fails it (a task that kills its worker is a poison pill)
    assert poisoned.status is S.FAILED and poisoned.attempts == 4
    assert [e.exception_class_path for e in poisoned.errors] == [
        "taskyard.exceptions.WorkerLost"
    ] * 4
    assert "more than MAX_INTERRUPTIONS (3)" in poisoned.errors[-1].traceback
    assert time.monotonic() - started < LEASE * 3  # handed back at once, not after a lease
    assert after.wait(30).return_value == 2  # the worker survived
    assert worker.proc.poll() is None


def test_poison_payloads_fail_and_the_worker_carries_on(
    backend: RedisBackend, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    queue = Queue("default", connection=backend.connection(), serializer=JSONSerializer)
    system = queue.enqueue_call(RUN_JOB, args=["os.system", [f"touch {marker}"], {}, {}])
    direct = queue.enqueue_call("os.system", args=[f"touch {marker}"])
    broken = queue.enqueue_call(RUN_JOB, args=["tests.tasks.add", [1, 2], {}, {}])
    backend.connection().hset(broken.key, "data", zlib.compress(b"{not json"))
    after = tasks.add.enqueue(2, 2)
    rq_processes.append(RQWorkerProcess.rqworker(redis_url, log=tmp_path / "w"))
    assert after.wait(30).return_value == 4
    assert backend.get_result(system.id).status is S.FAILED
    assert "not a task" in backend.get_result(system.id).errors[-1].traceback
    for job in (direct, broken):
        job.refresh()
        assert job.get_status() == "failed"
    assert not marker.exists()


# -- Redis going away --------------------------------------------------------------------------


def test_redis_restarted_under_a_worker(
    throwaway_redis: ThrowawayRedis, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    backend = configure_redis(throwaway_redis.url, SOCKET_CONNECT_TIMEOUT=0.5)
    worker = RQWorkerProcess.rqworker(
        throwaway_redis.url, "--worker-class", "simple", "--with-scheduler", log=tmp_path / "w"
    )
    rq_processes.append(worker)
    during = tasks.sleepy.enqueue(3, "during")
    wait_until(lambda: running(during), what="the long task to start")
    queued = tasks.add.enqueue(1, 1)  # acknowledged while the worker is busy
    throwaway_redis.stop()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        tasks.add.enqueue(9, 9)  # Redis away at enqueue: an exception, never a silent drop
    time.sleep(1)
    throwaway_redis.start()
    restarted = time.monotonic()
    after = tasks.add.enqueue(2, 2)
    assert after.wait(30).return_value == 4
    print(f"\nworker back to work {time.monotonic() - restarted:.2f}s after Redis restarted")
    assert during.wait(10).return_value == "during"  # its outcome was stored after reconnecting
    assert queued.wait(10).return_value == 2  # nothing acknowledged was lost
    assert worker.proc.poll() is None
    assert isinstance(backend, RedisBackend)


def test_unreachable_redis_at_enqueue_raises(tmp_path: Path) -> None:
    configure_redis(f"redis://127.0.0.1:{free_port()}/0", SOCKET_CONNECT_TIMEOUT=0.5)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        tasks.add.enqueue(1, 1)
