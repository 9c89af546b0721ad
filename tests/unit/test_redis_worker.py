"""The Redis backend's worker side: the job wrapper, bad payloads, lost attempts and the reaper,
priority levels, rq's scheduler over them, the ``rqworker`` command and its health source.

fakeredis stands in for Redis; workers run in this process (taskyard's SimpleWorker, burst).
"""

from __future__ import annotations

import json
import signal
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from rq.job import Job, JobStatus

from taskyard import TaskResultStatus
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.job import _own_alarm, run_job
from taskyard.backends.redis.keys import F_ATTEMPT, F_STATUS, LEASES_KEY, RUN_JOB
from taskyard.backends.redis.recovery import reap_leases as reap
from taskyard.backends.redis.scripts import script
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.backends.redis.worker import TaskyardJob, expand_levels
from taskyard.cli import main
from tests import redis_fixtures, tasks
from tests.redis_fixtures import HarnessWorker, burst, configure_redis

S = TaskResultStatus
fake_redis_url = redis_fixtures.fake_redis_url


@pytest.fixture
def backend(fake_redis_url: str) -> RedisBackend:
    found = configure_redis(fake_redis_url)
    assert isinstance(found, RedisBackend)
    return found


def raw_job(backend: RedisBackend, *args: Any, func: str = RUN_JOB) -> Job:
    """An rq job written without taskyard's enqueue (as a hostile or broken producer would)."""
    queue = Queue("default", connection=backend.connection(), serializer=JSONSerializer)
    return queue.enqueue_call(func, args=list(args), timeout=-1)


# -- bad payloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_xyz.task", "may not import on demand"),
        ("os.system", "'os.system' is a builtin_function_or_method, not a task"),
        ("tests.tasks.not_a_task", "'tests.tasks.not_a_task' is a function, not a task"),
        ("tests.tasks.missing", "module 'tests.tasks' has no attribute 'missing'"),
    ],
)
def test_a_payload_naming_no_task_fails_without_running(
    backend: RedisBackend, tmp_path: Path, path: str, message: str
) -> None:
    marker = tmp_path / "ran"
    job = raw_job(backend, path, [f"touch {marker}"], {}, {})
    after = tasks.add.enqueue(1, 2)
    burst(backend)
    result = backend.get_result(job.id)
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.tasks.registry.TaskNotFound"
    assert message in result.errors[-1].traceback
    assert not marker.exists()  # nothing was executed
    assert Job.fetch(job.id, connection=backend.connection()).get_status() == JobStatus.FAILED
    assert after.wait(1).return_value == 3  # the worker carried on


def test_taskyards_job_class_refuses_plain_rq_jobs(backend: RedisBackend, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job = raw_job(backend, f"touch {marker}", func="os.system")
    burst(backend, job_class=TaskyardJob)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert "not a taskyard task" in (job.latest_result().exc_string or "")
    assert not marker.exists()


def test_a_payload_that_is_not_json_fails_and_the_worker_survives(backend: RedisBackend) -> None:
    job = raw_job(backend, "tests.tasks.add", [1, 2], {}, {})
    client = backend.connection()
    client.hset(job.key, "data", zlib.compress(b"\x80\x04 not json {"))
    after = tasks.add.enqueue(2, 2)
    burst(backend)
    assert Job(job.id, connection=client).get_status() == JobStatus.FAILED
    assert after.wait(1).return_value == 4


def test_malformed_arguments_fail_cleanly(backend: RedisBackend) -> None:
    job = raw_job(backend, "tests.tasks.add", "not a list", {}, {})
    burst(backend)
    result = backend.get_result(job.id)
    assert result.status is S.FAILED and "not a JSON list" in result.errors[-1].traceback


def test_run_job_outside_a_worker_refuses() -> None:
    with pytest.raises(RuntimeError, match="inside an rq worker"):
        run_job("tests.tasks.add", [1, 2], {}, {})


# -- lost attempts -------------------------------------------------------------------------------


def lose_attempt(backend: RedisBackend, result_id: str, worker: str = "dead-worker:1") -> None:
    """Put ``result_id`` in the state a SIGKILLed worker leaves: started, RUNNING, lease over."""
    client = backend.connection()
    key = f"rq:job:{result_id}"
    attempt = int(client.hget(key, F_ATTEMPT) or 0)
    client.lrem("rq:queue:default", 0, result_id)
    client.hset(key, "status", "started")
    stored = json.loads(client.hget(key, "taskyard") or "{}")
    stored["worker_ids"] = [*(stored.get("worker_ids") or []), worker]
    record = json.dumps(stored)
    code, _, _, _ = script(client, "begin")(
        keys=[key, LEASES_KEY],
        args=[
            str(attempt),
            record,
            worker,
            "2026-01-01T00:00:00+00:00",
            time.time() - 1,
            result_id,
            f"token-{attempt}",
            time.time(),
        ],
    )
    assert code == 1


def test_an_interrupted_attempt_runs_again_whatever_retries_says(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(2, 3)  # retries=0: an interruption is not a failure
    lose_attempt(backend, result.id)
    assert backend.get_result(result.id).status is S.RUNNING  # nobody knows yet
    assert reap(backend.connection()) == [result.id]
    interrupted = backend.get_result(result.id)
    assert interrupted.status is S.READY  # back in its queue, the interruption in its history
    assert interrupted.attempts == 1 and len(interrupted.errors) == 1
    burst(backend)
    result.refresh()
    assert result.status is S.SUCCESSFUL and result.return_value == 5
    assert result.attempts == 2 and result.worker_ids[0] == "dead-worker:1"
    assert [e.exception_class_path for e in result.errors] == ["taskyard.exceptions.WorkerLost"]
    assert "attempt 1 on worker dead-worker:1 was interrupted" in result.errors[0].traceback
    assert "interruption 1 of at most 3" in result.errors[0].traceback
    assert backend.connection().zcard(LEASES_KEY) == 0


def test_interruptions_do_not_use_up_retries(backend: RedisBackend) -> None:
    result = tasks.flaky.using(retries=1, retry_backoff=0).enqueue(3)  # fails on attempt 2
    lose_attempt(backend, result.id)
    reap(backend.connection())
    burst(backend, rounds=3)
    result.refresh()
    assert result.status is S.SUCCESSFUL, result.errors
    assert [e.exception_class_path.rsplit(".", 1)[1] for e in result.errors] == [
        "WorkerLost",
        "ConnectionError",
    ]


def test_a_task_interrupted_more_than_the_bound_fails(fake_redis_url: str) -> None:
    backend = configure_redis(fake_redis_url, MAX_INTERRUPTIONS=1)
    result = tasks.add.enqueue(2, 3)
    dependent = tasks.add.using(depends_on=result).enqueue(1, 1)
    lose_attempt(backend, result.id)
    assert reap(backend.connection()) == [result.id]
    assert backend.get_result(result.id).status is S.READY
    lose_attempt(backend, result.id, worker="dead-worker:2")
    assert reap(backend.connection()) == [result.id]
    result.refresh()
    assert result.status is S.FAILED and result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == ["taskyard.exceptions.WorkerLost"] * 2
    assert "more than MAX_INTERRUPTIONS (1)" in result.errors[-1].traceback
    job = Job.fetch(result.id, connection=backend.connection())
    assert job.get_status() == JobStatus.FAILED
    assert dependent.wait(1).status is S.CANCELLED


def test_a_live_lease_is_not_reaped(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    lose_attempt(backend, result.id)
    backend.connection().zadd(LEASES_KEY, {result.id: time.time() + 60})
    assert reap(backend.connection()) == []
    assert backend.get_result(result.id).status is S.RUNNING


def test_an_interruption_read_late_spares_a_newer_attempt(backend: RedisBackend) -> None:
    """A reaper reads an expired lease, a fast worker begins the next attempt, then the reaper
    acts: the live attempt must be left alone (and a forking worker settling its dead horse
    must not interrupt another worker's attempt)."""
    from taskyard.backends.redis.settle import interrupt

    result = tasks.add.enqueue(1, 1)
    lose_attempt(backend, result.id)
    client = backend.connection()
    read_at = time.time()
    client.zadd(LEASES_KEY, {result.id: time.time() + 60})  # the newer attempt's lease
    assert interrupt(client, result.id, 1, "its lease ran out", lease_ended_by=read_at) is None
    assert interrupt(client, result.id, 1, "its horse died", worker="forking:1") is None
    assert backend.get_result(result.id).status is S.RUNNING
    assert interrupt(client, result.id, 1, "x", worker="dead-worker:1") == "requeued"


def test_a_superseded_attempt_cannot_record_its_outcome(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    client = backend.connection()
    key = f"rq:job:{result.id}"
    begin, finish = script(client, "begin"), script(client, "finish")
    args = ["", "", "w1", "2026-01-01T00:00:00+00:00", time.time() + 9, result.id, "t1", 0]
    assert begin(keys=[key, LEASES_KEY], args=args)[0] == 1
    assert begin(keys=[key, LEASES_KEY], args=args)[:2] == [1, b"1"]  # a retried call: a no-op
    other = ["0", "{}", *args[2:6], "t2", 0]
    assert begin(keys=[key, LEASES_KEY], args=other)[0] == 0  # CAS lost
    assert begin(keys=[key, LEASES_KEY], args=["", "", *args[2:6], "t2", 0])[0] == 0  # live lease
    client.hset(key, F_ATTEMPT, 2)  # the reaper handed it on and attempt 2 began
    assert (
        finish(keys=[key, LEASES_KEY, key], args=[1, "SUCCESSFUL", "{}", result.id, "", "0"]) == 0
    )
    assert client.hget(key, F_STATUS) == b"RUNNING"


# -- priority levels and the scheduler ----------------------------------------------------------------


def test_workers_listen_to_every_level_highest_first(backend: RedisBackend) -> None:
    for queue, priority in [("default", 5), ("other", 50), ("default", -3), ("other", 5)]:
        tasks.add.using(queue_name=queue, priority=priority).enqueue(1, 1)
    assert expand_levels(backend.connection(), ["default", "other"]) == [
        "other:p50",
        "default:p5",
        "other:p5",
        "default",
        "other",
        "default:p-3",
    ]


def test_a_new_level_is_picked_up_by_a_running_worker(backend: RedisBackend) -> None:
    worker = HarnessWorker(["default"], connection=backend.connection())
    assert [q.name for q in worker._ordered_queues] == ["default"]
    result = tasks.add.using(priority=9).enqueue(4, 4)
    assert [q.name for q in worker._ordered_queues] == ["default:p9", "default"]
    worker.work(burst=True, logging_level="WARNING")
    assert result.wait(1).return_value == 8


def test_rqs_scheduler_moves_deferred_jobs_of_every_level(backend: RedisBackend) -> None:
    from datetime import timedelta

    result = tasks.add.using(priority=4, run_after=timedelta(seconds=0.2)).enqueue(1, 2)
    time.sleep(1.3)
    burst(backend)
    assert result.wait(1).return_value == 3


# -- timeouts ------------------------------------------------------------------------------------


def test_taskyard_takes_sigalrm_from_rq_while_the_task_runs() -> None:
    def rq_handler(signum: int, frame: Any) -> None:
        raise AssertionError("rq's alarm")

    previous = signal.signal(signal.SIGALRM, rq_handler)
    signal.alarm(100)
    try:
        with _own_alarm(5.0):
            assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
            assert signal.alarm(0) == 0
        assert signal.getsignal(signal.SIGALRM) == rq_handler
        assert 98 <= signal.alarm(0) <= 100  # rq's hard limit re-armed with its time left
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def keep_signals() -> Any:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_rqworker_command_runs_burst(
    fake_redis_url: str, keep_signals: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{fake_redis_url}?connection_class=fakeredis.FakeRedis&queues=default,other"
    backend = configure_redis(fake_redis_url)
    results = [tasks.add.using(priority=p).enqueue(p, 1) for p in (0, 3)]
    results.append(tasks.add.using(queue_name="other").enqueue(5, 5))
    args = ["rqworker", "--url", url, "--burst", "--with-scheduler", "--worker-class", "simple"]
    assert main([*args, "--import", "tests.tasks", "--reap-interval", "0"]) == 0
    assert [r.wait(1).return_value for r in results] == [1, 4, 10]
    assert backend.pending_count(["default", "other"]) == 0


def test_rqworker_refuses_what_it_cannot_do(
    fake_redis_url: str, keep_signals: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rqworker", "--url", "threadpool:"]) == 2
    assert "not the Redis backend" in capsys.readouterr().err
    url = f"{fake_redis_url}?connection_class=fakeredis.FakeRedis"
    assert main(["rqworker", "--url", url, "--worker-class", "pool", "--max-jobs", "3"]) == 2
    assert "--max-jobs cannot be combined" in capsys.readouterr().err
    assert main(["rqworker", "--url", url, "mail:p4"]) == 2
    assert "priority-level queue" in capsys.readouterr().err
    assert main(["rqworker", "--url", url, "*"]) == 2
    assert "'*' is not a queue name" in capsys.readouterr().err
    # the batching worker's options are its own; it runs taskyard tasks only
    assert main(["rqworker", "--url", url, "--worker-class", "simple", "--threads", "4"]) == 2
    assert "--threads applies to --worker-class batch only" in capsys.readouterr().err
    assert main(["rqworker", "--url", url, "--worker-class", "forking", "--batch-size", "9"]) == 2
    assert "--batch-size applies to --worker-class batch only" in capsys.readouterr().err
    assert main(["rqworker", "--url", url, "--allow-rq-jobs"]) == 2
    assert "not supported by the batching worker" in capsys.readouterr().err


def test_health_source_counts(backend: RedisBackend) -> None:
    from taskyard.backends.redis.health import RQHealth
    from taskyard.worker.health import render_metrics

    tasks.add.enqueue(1, 1)
    tasks.add.using(priority=2).enqueue(1, 1)
    tasks.add.using(queue_name="other").enqueue(1, 1)
    failed = tasks.fail.enqueue()
    source = RQHealth(backend.connection(), ["default", "other"], lambda: True, lambda: False)
    data = source.monitoring()
    assert next(iter(data)) == "waiting" and data["waiting"] == 4
    assert data["queues"]["default"]["waiting"] == 3 and data["queues"]["other"]["waiting"] == 1
    assert data["oldest_waiting_seconds"] is not None
    assert source.readiness() == (True, "ok") and source.is_alive()
    failed.cancel()
    text = render_metrics(source.metrics())
    assert 'taskyard_tasks_waiting{queue="default"} 2' in text
    assert "taskyard_tasks_running" in text


def test_the_sweep_cancels_orphaned_dependents_and_leaves_plain_rq_jobs_alone(
    backend: RedisBackend,
) -> None:
    from taskyard.backends.redis.maintenance import sweep_orphaned_dependents

    client = backend.connection()
    parent = tasks.add.enqueue(1, 1)
    child = tasks.add.using(depends_on=parent).enqueue(2, 2)  # deferred by rq
    plain_parent = raw_job(backend, "tests.tasks.add", [1, 1], {}, {})
    queue = Queue("default", connection=client, serializer=JSONSerializer)
    plain_child = queue.enqueue_call("os.getcwd", depends_on=plain_parent.id)
    for job_id in (parent.id, plain_parent.id):  # both fail behind taskyard's back
        client.hset(f"rq:job:{job_id}", "status", "failed")
    assert sweep_orphaned_dependents(client) == [child.id]
    assert backend.get_result(child.id).status is S.CANCELLED
    assert Job.fetch(plain_child.id, connection=client).get_status() == JobStatus.DEFERRED


def test_the_lease_keeper_renews_running_attempts() -> None:
    import fakeredis

    from taskyard.backends.redis.control import LeaseKeeper

    client = fakeredis.FakeRedis()
    client.zadd(LEASES_KEY, {"job-1": time.time() + 0.3})
    keeper = LeaseKeeper()
    keeper.hold(client, "job-1", 0.3)
    deadline = time.time() + 0.6
    time.sleep(0.6)
    assert client.zscore(LEASES_KEY, "job-1") > deadline - 0.3  # renewed since
    keeper.release("job-1")
    assert keeper.held() == []


def test_the_client_library_version_is_resolved_once_for_every_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forking worker's work horse opens a connection per job: redis-py must not look its
    own version up in the package metadata each time (see bench/ and docs/benchmarks.md)."""
    import redis
    import redis.utils

    from taskyard.backends.redis.worker import pin_driver_info

    client = redis.Redis(host="127.0.0.1", port=1)
    pin_driver_info(client)
    lookups: list[int] = []
    real = redis.utils.get_lib_version
    monkeypatch.setattr(redis.utils, "get_lib_version", lambda: lookups.append(1) or real())
    connection = client.connection_pool.make_connection()
    pin_driver_info(client)  # idempotent
    assert lookups == []
    info = getattr(connection, "driver_info", None)
    version = info.lib_version if info is not None else getattr(connection, "lib_version", None)
    assert version == real()


def test_lua_scripts_share_their_functions() -> None:
    """rq-class workers and the batching worker start and record attempts with the same Lua."""
    from taskyard.backends.redis.scripts import NAMES, source

    begin, claim, cycle = source("begin"), source("batch_claim"), source("batch_cycle")
    shared = source("lib_begin")
    assert shared in begin and shared in claim and shared in cycle
    assert source("lib_finish") in source("finish") and source("lib_finish") in cycle
    assert all("--#include" not in source(name) for name in NAMES)
