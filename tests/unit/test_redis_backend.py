"""The Redis backend's storage: settings, the rq job format, results, limits, cancel, TTLs.

fakeredis stands in for Redis (each test gets a fresh server); nothing here needs a server.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, DeferredJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer as RQJSONSerializer

import taskyard
from taskyard import (
    BackendUnavailable,
    InvalidTask,
    InvalidTaskBackend,
    TaskLimitError,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.keys import F_STATUS, RUN_JOB, level_queue, split_level_queue
from taskyard.backends.redis.record import map_status
from taskyard.config import backends
from tests import redis_fixtures, tasks
from tests.redis_fixtures import burst, configure_redis, new_fake_url

S = TaskResultStatus
fake_redis_url = redis_fixtures.fake_redis_url


@pytest.fixture
def backend(fake_redis_url: str) -> RedisBackend:
    found = configure_redis(fake_redis_url)
    assert isinstance(found, RedisBackend)
    return found


# -- settings -------------------------------------------------------------------------------------


def test_url_shorthand_and_query_options() -> None:
    taskyard.configure(url="redis://cache.internal:6380/3?lease=2.5&result_ttl=60&queues=a,b")
    backend = backends["default"]
    assert isinstance(backend, RedisBackend)
    assert backend.options["URL"] == "redis://cache.internal:6380/3"
    assert backend.options["LEASE"] == 2.5 and backend.options["RESULT_TTL"] == 60
    assert backend.queues == {"a", "b"}
    kwargs = backend.new_client().connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 3)


def test_connection_options_without_url() -> None:
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.redis.RedisBackend",
                "OPTIONS": {"HOST": "10.0.0.5", "PORT": 7000, "DB": 2, "PASSWORD": "s3cret"},
            }
        }
    )
    kwargs = backends["default"].new_client().connection_pool.connection_kwargs  # type: ignore[attr-defined]
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "10.0.0.5",
        7000,
        2,
        "s3cret",
    )


def test_every_client_has_connect_and_reply_timeouts_and_never_retries_a_timeout() -> None:
    """A frozen Redis must give callers BackendUnavailable within the socket timeout (issue 11,
    item 8): before, there was no reply timeout and redis-py retried timed-out commands."""
    from redis.exceptions import ConnectionError, TimeoutError

    taskyard.configure(url="redis://127.0.0.1:6379/0")
    backend = backends["default"]
    assert isinstance(backend, RedisBackend)
    assert backend.options["SOCKET_TIMEOUT"] == 10.0
    assert backend.options["SOCKET_CONNECT_TIMEOUT"] == 5.0
    kwargs = backend.new_client().connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (10.0, 5.0)
    retry = kwargs["retry"]
    assert retry._retries == 1
    assert ConnectionError in retry._supported_errors
    assert TimeoutError not in retry._supported_errors
    with pytest.raises(InvalidTaskBackend, match="SOCKET_TIMEOUT.*finite"):
        configure_redis(new_fake_url(), SOCKET_TIMEOUT=float("inf"))


def test_bad_settings_name_the_culprit() -> None:
    with pytest.raises(InvalidTaskBackend, match="unknown OPTIONS key.*NOPE"):
        taskyard.configure(url="redis://localhost/0?nope=1")
    with pytest.raises(InvalidTaskBackend, match="RESULT_TTL"):
        configure_redis(new_fake_url(), RESULT_TTL=-5)
    with pytest.raises(InvalidTaskBackend, match="priority-level queue"):
        configure_redis(new_fake_url(), queues=["default", "mail:p5"])
        backends["default"]


def test_constructor_does_no_io_and_unreachable_redis_raises_backend_unavailable() -> None:
    taskyard.configure(url="redis://127.0.0.1:1/0?socket_connect_timeout=0.5")
    backend = backends["default"]  # built without touching the network
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"Redis at redis://127.0.0.1:1/0 is unreachable"):
        tasks.add.enqueue(1, 2)
    assert time.monotonic() - started < 10
    with pytest.raises(BackendUnavailable):
        backend.get_result("01a20000-0000-7000-8000-000000000000")
    assert backend.check() and "unreachable" in backend.check()[0]


def test_qualifiers_and_reserved_queue_names_are_refused(backend: RedisBackend) -> None:
    with pytest.raises(InvalidTask, match="qualifiers.*RedisBackend.*does not support qualifiers"):
        tasks.add.using(qualifiers={"region": "eu"}).enqueue(1, 1)
    configure_redis(new_fake_url(), queues=[])
    with pytest.raises(InvalidTask, match="priority-level queue"):
        tasks.add.using(queue_name="x:p3").enqueue(1, 1)


# -- the job format -------------------------------------------------------------------------------


def test_a_task_is_an_ordinary_rq_job_in_json(backend: RedisBackend) -> None:
    result = tasks.echo.using(priority=7, retries=2, timeout=4).enqueue(1, key="v")
    client = backend.connection()
    raw = client.hget(f"rq:job:{result.id}", "data")
    func, instance, args, kwargs = json.loads(zlib.decompress(raw))  # JSON, not pickle
    assert (func, instance, kwargs) == (RUN_JOB, None, {})
    assert args[:3] == ["tests.tasks.echo", [1], {"key": "v"}]
    assert args[3] == {"priority": 7, "retries": 2, "timeout": 4}
    job = Job.fetch(result.id, connection=client, serializer=RQJSONSerializer)  # rq reads it
    assert job.id == result.id
    assert job.origin == "default:p7" and job.get_status() == JobStatus.QUEUED
    assert job.timeout == 4 + 30  # taskyard's timeout plus the grace: rq's hard limit
    assert job.retries_left == 2  # rq may hand a lost attempt back; taskyard decides
    assert job.description == "tests.tasks.echo(1, key='v')"
    assert job.result_ttl == 86_400 and job.failure_ttl == 604_800
    assert client.lrange("rq:queue:default:p7", 0, -1) == [result.id.encode()]
    assert client.smembers("taskyard:levels:default") == {b"7"}


def test_no_timeout_means_no_rq_timeout(backend: RedisBackend) -> None:
    job = Job.fetch(tasks.add.enqueue(1, 2).id, connection=backend.connection())
    assert job.timeout == -1  # rq's default of 180 s would silently cap taskyard tasks


def test_a_plain_rq_worker_with_only_the_json_serializer_runs_taskyard_jobs(
    backend: RedisBackend,
) -> None:
    ok = tasks.add.enqueue(20, 22)
    failed = tasks.fail.enqueue("kaput")
    SimpleWorker(["default"], connection=backend.connection(), serializer=RQJSONSerializer).work(
        burst=True
    )
    assert ok.wait(1).return_value == 42
    assert failed.wait(1).status is S.FAILED
    assert failed.errors[0].exception_class_path == "builtins.ValueError"
    job = Job.fetch(failed.id, connection=backend.connection(), serializer=RQJSONSerializer)
    assert job.get_status() == JobStatus.FAILED  # rq's own tools list it as failed


def test_get_result_from_another_process_maps_everything(fake_redis_url: str) -> None:
    configure_redis(fake_redis_url)
    flaky = tasks.flaky.enqueue(2)
    failed = tasks.always_fails.enqueue()
    burst(backends["default"], rounds=4)
    taskyard.configure({"default": {**_entry(fake_redis_url)}})  # a fresh backend object
    fresh = backends["default"].get_result(flaky.id)
    assert fresh.status is S.SUCCESSFUL and fresh.return_value == 2
    assert fresh.attempts == 2 and len(fresh.worker_ids) == 2
    assert [e.exception_class_path for e in fresh.errors] == ["builtins.ConnectionError"]
    assert "attempt 1 failed" in fresh.errors[0].traceback
    assert fresh.enqueued_at <= fresh.started_at <= fresh.last_attempted_at <= fresh.finished_at  # type: ignore[operator]
    assert fresh.enqueued_by == flaky.enqueued_by
    lost = backends["default"].get_result(failed.id)
    assert lost.status is S.FAILED and lost.attempts == 3 and len(lost.errors) == 3
    with pytest.raises(TaskResultDoesNotExist):
        backends["default"].get_result("01a20000-0000-7000-8000-000000000000")


def test_the_return_value_is_stored_with_the_successful_status(backend: RedisBackend) -> None:
    """A reader that sees SUCCESSFUL sees the value, even before rq writes its result entry
    (the wrapper records the outcome first; rq's result stream follows a moment later)."""
    ok = tasks.add.enqueue(2, 3)
    burst(backend)
    backend.connection().delete(f"rq:results:{ok.id}")  # as if read before rq's own write
    fresh = backend.get_result(ok.id)
    assert fresh.status is S.SUCCESSFUL and fresh.return_value == 5


def _entry(url: str) -> dict[str, Any]:
    from tests.redis_fixtures import redis_entry

    return redis_entry(url)


def test_a_non_taskyard_rq_job_is_not_a_result(backend: RedisBackend) -> None:
    from rq import Queue

    job = Queue("default", connection=backend.connection(), serializer=RQJSONSerializer).enqueue(
        "os.getcwd"
    )
    with pytest.raises(TaskResultDoesNotExist, match="not a taskyard task"):
        backend.get_result(job.id)


@pytest.mark.parametrize(
    ("rq_status", "own", "expected"),
    [
        ("queued", "READY", S.READY),
        ("scheduled", "READY", S.READY),
        ("deferred", "READY", S.READY),
        ("started", "READY", S.READY),  # claimed, the attempt not begun
        ("started", "RUNNING", S.RUNNING),
        ("queued", "RUNNING", S.READY),  # a lost attempt handed back
        ("finished", "SUCCESSFUL", S.SUCCESSFUL),
        ("failed", "FAILED", S.FAILED),
        ("failed", "CANCELLED", S.CANCELLED),
        ("failed", "RUNNING", S.FAILED),  # rq gave up on a lost attempt
        ("stopped", "RUNNING", S.CANCELLED),  # stopped through rq's own tools
        ("canceled", "READY", S.CANCELLED),
        ("scheduled", "SUCCESSFUL", S.SUCCESSFUL),  # taskyard's final record wins
    ],
)
def test_status_mapping(rq_status: str, own: str, expected: S) -> None:
    assert map_status(rq_status, own) is expected


def test_priority_levels_name_rq_queues() -> None:
    assert level_queue("default", 0) == "default"
    assert level_queue("mail", 10) == "mail:p10" and level_queue("mail", -5) == "mail:p-5"
    assert split_level_queue("mail:p-5") == ("mail", -5)
    assert split_level_queue("mail") == ("mail", 0)


# -- scheduling -------------------------------------------------------------------------------


def test_run_after_goes_to_rqs_scheduler_never_early(backend: RedisBackend) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30.2)
    result = tasks.add.using(run_after=when).enqueue(1, 1)
    client = backend.connection()
    score = ScheduledJobRegistry("default", connection=client).connection.zscore(
        "rq:scheduled:default", result.id
    )
    assert score is not None and when.timestamp() <= score < when.timestamp() + 1
    assert Job.fetch(result.id, connection=client).get_status() == JobStatus.SCHEDULED
    assert backend.get_result(result.id).status is S.READY


def test_retry_backoff_reschedules_the_same_job_never_early(backend: RedisBackend) -> None:
    result = tasks.flaky.using(retry_backoff=20).enqueue(2)
    burst(backend)
    result.refresh()
    assert result.status is S.READY and result.attempts == 1
    score = backend.connection().zscore("rq:scheduled:default", result.id)  # same id
    # jitter scales the 20 s base into [10, 20]; rq's whole seconds round up, never down
    assert score is not None
    assert result.last_attempted_at.timestamp() + 10 <= score  # type: ignore[union-attr]
    assert score <= time.time() + 21


def test_depends_on_uses_rqs_dependencies(backend: RedisBackend) -> None:
    parent = tasks.add.enqueue(1, 1)
    child = tasks.add.using(depends_on=parent).enqueue(2, 2)
    client = backend.connection()
    assert child.id in DeferredJobRegistry("default", connection=client).get_job_ids()
    burst(backend)
    assert child.wait(1).return_value == 4


def test_dependency_failed_before_enqueue_cancels_at_once(backend: RedisBackend) -> None:
    failed = tasks.fail.enqueue()
    burst(backend)
    blocked = tasks.add.using(depends_on=failed).enqueue(1, 1)
    assert blocked.status is S.CANCELLED and failed.id in blocked.errors[-1].traceback
    assert blocked.id in CanceledJobRegistry("default", connection=backend.connection())
    assert backend.get_result(blocked.id).status is S.CANCELLED


def test_dependents_of_a_cancelled_task_are_cancelled_transitively(backend: RedisBackend) -> None:
    first = tasks.add.enqueue(1, 1)
    second = tasks.add.using(depends_on=first).enqueue(2, 2)
    third = tasks.add.using(depends_on=second).enqueue(3, 3)
    assert first.cancel()
    for result in (second, third):
        result.refresh()
        assert result.status is S.CANCELLED
    burst(backend)
    assert backend.get_result(third.id).status is S.CANCELLED


# -- cancel, progress, retention -----------------------------------------------------------------


def test_cancel_pending_uses_rqs_cancel(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    assert result.cancel() is True and result.status is S.CANCELLED
    client = backend.connection()
    assert Job.fetch(result.id, connection=client).get_status() == JobStatus.CANCELED
    assert client.llen("rq:queue:default") == 0
    assert 0 < client.ttl(f"rq:job:{result.id}") <= 604_800  # kept like a failure
    assert result.cancel() is False


def test_cancel_of_a_claimed_job_sets_the_flag(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    client = backend.connection()
    client.hset(f"rq:job:{result.id}", "status", "started")  # a worker popped it
    assert result.cancel() is True
    assert client.hget(f"rq:job:{result.id}", "taskyard_cancel") == b"1"
    client.hset(f"rq:job:{result.id}", "status", "queued")
    client.rpush("rq:queue:default", result.id)
    burst(backend)
    result.refresh()
    assert result.status is S.CANCELLED and "before it started" in result.errors[-1].traceback


def test_progress_is_stored_in_the_jobs_meta(backend: RedisBackend) -> None:
    result = tasks.with_context.enqueue(3)
    burst(backend)
    job = Job.fetch(result.id, connection=backend.connection(), serializer=RQJSONSerializer)
    assert job.meta["progress"] == {"current": 3, "total": 3, "message": "step 3"}


def test_result_and_failure_retention(fake_redis_url: str) -> None:
    backend = configure_redis(fake_redis_url, RESULT_TTL=120, FAILURE_TTL=3600)
    ok, bad = tasks.add.enqueue(1, 1), tasks.fail.enqueue()
    burst(backend)
    client = backend.connection()
    assert 0 < client.ttl(f"rq:job:{ok.id}") <= 120
    assert 120 < client.ttl(f"rq:job:{bad.id}") <= 3600
    assert 0 < client.ttl(f"rq:results:{ok.id}") <= 120


# -- limits and bulk enqueue ----------------------------------------------------------------------


def test_limit_counts_pending_runs_and_frees_on_finish(backend: RedisBackend) -> None:
    task = tasks.add.using(limit=2, limit_key="acct-1")
    first, _second = task.enqueue(1, 1), task.enqueue(2, 2)
    with pytest.raises(TaskLimitError, match="limit 2 reached for key 'acct-1'"):
        task.enqueue(3, 3)
    assert first.cancel()
    third = task.enqueue(3, 3)  # a cancelled run no longer counts
    burst(backend)
    assert third.wait(1).return_value == 6
    task.enqueue(4, 4)
    task.enqueue(5, 5)


def test_limit_is_atomic_under_concurrent_enqueuers(backend: RedisBackend) -> None:
    task = tasks.add.using(limit=3, limit_key="burst")
    accepted: list[str] = []
    refused: list[Exception] = []
    barrier = threading.Barrier(12)

    def enqueue(i: int) -> None:
        barrier.wait()
        try:
            accepted.append(task.enqueue(i, i).id)
        except TaskLimitError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 3 and len(refused) == 9
    assert backend.connection().scard("taskyard:limit:burst") == 3


def test_enqueue_many_is_one_pipeline(backend: RedisBackend) -> None:
    tasks.add.enqueue(0, 0)  # rq asks the server's version once per queue (INFO); not counted
    client = backend.connection()
    executed: list[int] = []
    original = client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        inner = pipe.execute

        def execute(*a: Any, **k: Any) -> Any:
            executed.append(len(pipe.command_stack))
            return inner(*a, **k)

        pipe.execute = execute
        return pipe

    client.pipeline = counting_pipeline
    direct = []
    client_execute = client.execute_command
    client.execute_command = lambda *a, **k: direct.append(a[0]) or client_execute(*a, **k)
    results = taskyard.enqueue_many(tasks.add.prepare(i, 1) for i in range(50))
    assert len(executed) == 1 and not direct
    assert len({r.id for r in results}) == 50
    assert client.llen("rq:queue:default") == 51
    assert all(client.hget(f"rq:job:{r.id}", F_STATUS) == b"READY" for r in results)
