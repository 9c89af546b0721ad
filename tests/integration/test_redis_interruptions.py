"""What counts as an attempt on Redis, and what a worker runs, with real ``taskyard rqworker``
processes (issue 11, items 2, 5 and 6): a work horse killed, cold and warm shutdowns past
their timeout interrupt an attempt — it runs again whatever ``retries`` says — instead of
failing it; a horse stuck in C code past its timeout is killed and recorded as
``TaskTimeout``; rq callbacks in job data are never imported. Each prints what it measured."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from rq import Callback, Queue

from taskyard import TaskResultStatus
from taskyard.backends.redis.keys import RUN_JOB
from taskyard.backends.redis.serializer import JSONSerializer
from tests import redis_fixtures, tasks
from tests.redis_fixtures import RQWorkerProcess, configure_redis, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]
S = TaskResultStatus
redis_url = redis_fixtures.redis_url
rq_processes = redis_fixtures.rq_processes
LOST = "taskyard.exceptions.WorkerLost"
LONG_LEASE = 60.0  # an interrupted attempt must come back at once, not when its lease ends


def running(result: object) -> bool:
    result.refresh()  # type: ignore[attr-defined]
    return result.status is S.RUNNING  # type: ignore[attr-defined]


def horse_of(worker: RQWorkerProcess) -> int:
    """The work horse of a forking worker started without a scheduler."""
    horses = [pid for pid in worker.session() if pid != worker.proc.pid]
    assert len(horses) == 1, horses
    return horses[0]


def start(url: str, tmp_path: Path, name: str, *args: str) -> RQWorkerProcess:
    worker = RQWorkerProcess.rqworker(url, *args, "--name", name, log=tmp_path / name)
    worker.wait_for_output("Listening on")
    return worker


def test_a_killed_work_horse_interrupts_the_attempt_which_runs_again_with_no_retries(
    redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url, LEASE=LONG_LEASE)
    worker = start(redis_url, tmp_path, "forking", "--worker-class", "forking")
    rq_processes.append(worker)
    result = tasks.slow_first_attempt.using(retries=0).enqueue(60)
    wait_until(lambda: running(result), what="the first attempt to run")
    killed = time.monotonic()
    os.kill(horse_of(worker), signal.SIGKILL)
    result.wait(20)
    print(f"\nhorse SIGKILL -> attempt 2 done after {time.monotonic() - killed:.2f}s")
    assert result.status is S.SUCCESSFUL and result.return_value == 2
    assert result.attempts == 2 and [e.exception_class_path for e in result.errors] == [LOST]
    assert "interruption 1 of at most 3" in result.errors[0].traceback
    assert worker.proc.poll() is None


@pytest.mark.parametrize("worker_class", ["batch", "simple", "forking"])
def test_a_cold_shutdown_hands_the_running_attempt_back(
    worker_class: str, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url, LEASE=LONG_LEASE)
    victim = start(redis_url, tmp_path, "victim", "--worker-class", worker_class)
    rq_processes.append(victim)
    result = tasks.slow_first_attempt.using(retries=0).enqueue(60)
    wait_until(lambda: running(result), what="the first attempt to run")
    rescuer = start(redis_url, tmp_path, "rescuer", "--worker-class", worker_class)
    rq_processes.append(rescuer)
    victim.proc.send_signal(signal.SIGTERM)  # warm: waits for the task...
    time.sleep(1.2)  # (rq ignores a second signal within a second)
    stopped = time.monotonic()
    victim.proc.send_signal(signal.SIGTERM)  # ... cold: stop it now
    assert victim.proc.wait(10) is not None
    result.wait(15)
    print(f"\n[{worker_class}] cold shutdown -> done after {time.monotonic() - stopped:.2f}s")
    assert result.status is S.SUCCESSFUL and result.return_value == 2
    assert result.worker_ids == ["victim", "rescuer"]
    assert [e.exception_class_path for e in result.errors] == [LOST]


@pytest.mark.parametrize("worker_class", ["batch", "simple", "forking"])
def test_a_warm_shutdown_past_its_timeout_hands_the_running_attempt_back(
    worker_class: str, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url, LEASE=LONG_LEASE)
    args = ["--worker-class", worker_class, "--shutdown-timeout", "1"]
    victim = start(redis_url, tmp_path, "victim", *args)
    rq_processes.append(victim)
    result = tasks.slow_first_attempt.using(retries=0).enqueue(20)
    wait_until(lambda: running(result), what="the first attempt to run")
    rescuer = start(redis_url, tmp_path, "rescuer", "--worker-class", worker_class)
    rq_processes.append(rescuer)
    stopped = time.monotonic()
    victim.proc.send_signal(signal.SIGTERM)  # a deploy
    assert victim.proc.wait(10) is not None
    exited = time.monotonic() - stopped
    result.wait(15)
    print(f"\n[{worker_class}] SIGTERM with --shutdown-timeout 1: exited after {exited:.2f}s")
    assert exited < 5
    assert result.status is S.SUCCESSFUL and result.return_value == 2
    assert [e.exception_class_path for e in result.errors] == [LOST]


@pytest.mark.parametrize("worker_class", ["batch", "forking", "pool"])
def test_a_task_stuck_in_c_code_is_killed_within_its_timeout_plus_the_grace(
    worker_class: str, redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    configure_redis(redis_url)
    worker = start(redis_url, tmp_path, "w", "--worker-class", worker_class, "--num-workers", "2")
    rq_processes.append(worker)
    stuck = tasks.holds_the_gil.enqueue(10**11)  # timeout=1; would run for minutes
    bystander = tasks.add.enqueue(1, 2)
    stuck.wait(20)
    assert stuck.last_attempted_at is not None and stuck.finished_at is not None
    took = (stuck.finished_at - stuck.last_attempted_at).total_seconds()
    print(f"\n[{worker_class}] timeout 1 s, C code holding the GIL: stopped after {took:.2f}s")
    assert stuck.status is S.FAILED and took <= 1 + 5
    assert stuck.attempts == 1
    assert stuck.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert bystander.wait(10).return_value == 3
    if worker_class == "batch" and bystander.errors:
        # claimed in the same batch, it was begun in the frozen process: handed back as
        # interrupted (never charged to its retries), then run once more
        assert bystander.attempts == 2
        assert [e.exception_class_path for e in bystander.errors] == [LOST]
        assert "another task could not be stopped" in bystander.errors[0].traceback
    else:
        assert bystander.attempts == 1 and bystander.errors == []  # nothing else charged


def test_rq_callbacks_in_job_data_are_never_imported_by_rqworker(
    redis_url: str, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    backend = configure_redis(redis_url)
    marker = tmp_path / "pwned"
    queue = Queue("default", connection=backend.connection(), serializer=JSONSerializer)
    printing = Callback("builtins.print")
    ours = queue.enqueue_call(
        RUN_JOB, args=["tests.tasks.add", [1, 2], {}, {}], on_success=printing
    )
    system = queue.enqueue_call("os.system", args=[f"touch {marker}"], on_failure=printing)
    after = tasks.add.enqueue(2, 2)
    for worker_class in ("batch", "simple", "forking"):
        worker = start(redis_url, tmp_path, worker_class, "--worker-class", worker_class)
        rq_processes.append(worker)
    assert after.wait(20).return_value == 4
    result = backend.get_result(ours.id)
    assert result.status is S.FAILED and result.attempts == 0
    assert "carries rq callback(s) builtins.print" in result.errors[-1].traceback
    system.refresh()
    assert system.get_status() == "failed"
    assert not marker.exists()
    output = "".join(w.output() for w in rq_processes)
    assert "Redis<ConnectionPool" not in output  # what print(job, connection, ...) writes
