"""What taskyard's rq workers agree to run (issue 11, item 2): rq callbacks, webhooks, repeats,
dependencies on plain rq jobs and foreign functions are refused before anything is imported
or called, unless ``allow_rq_jobs``; even then a callback is imported only from a declared task
module. fakeredis; taskyard's SimpleWorker in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rq import Callback, Queue
from rq.job import Job, JobStatus

from taskyard import TaskResultStatus
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.keys import RUN_JOB
from taskyard.backends.redis.policy import JobRefused, PermissiveGuardedJob, may_import_callback
from taskyard.backends.redis.serializer import JSONSerializer
from tests import redis_fixtures, tasks
from tests.redis_fixtures import burst, configure_redis

S = TaskResultStatus
fake_redis_url = redis_fixtures.fake_redis_url
CALLBACK = "tests.tasks.record_callback"  # a plain function in a declared task module


@pytest.fixture
def backend(fake_redis_url: str) -> RedisBackend:
    found = configure_redis(fake_redis_url)
    assert isinstance(found, RedisBackend)
    return found


def enqueue(backend: RedisBackend, func: str, *args: Any, **options: Any) -> Job:
    """An rq job written with rq's own API (as a hostile or foreign producer would)."""
    queue = Queue("default", connection=backend.connection(), serializer=JSONSerializer)
    return queue.enqueue_call(func, args=list(args), timeout=-1, **options)


def ours(backend: RedisBackend, marker: Path, **options: Any) -> Job:
    """A taskyard job (``run_job`` of ``tests.tasks.touch``) carrying rq extras."""
    return enqueue(backend, RUN_JOB, "tests.tasks.touch", [str(marker)], {}, {}, **options)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"on_success": Callback(CALLBACK)}, "carries rq callback(s) tests.tasks.record_callback"),
        ({"on_failure": Callback("builtins.print")}, "carries rq callback(s) builtins.print"),
        ({"on_stopped": Callback("os.system")}, "carries rq callback(s) os.system"),
    ],
)
def test_a_taskyard_job_with_callbacks_is_refused_and_nothing_runs(
    backend: RedisBackend, tmp_path: Path, options: dict[str, Any], why: str
) -> None:
    marker = tmp_path / "ran"
    job = ours(backend, marker, **options)
    after = tasks.add.enqueue(1, 2)
    burst(backend)
    result = backend.get_result(job.id)
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.backends.redis.policy.JobRefused"
    assert why in result.errors[-1].traceback
    assert result.attempts == 0  # refused, never begun
    assert not marker.exists() and tasks.RUN_LOG == []  # neither the task nor the callback ran
    assert Job.fetch(job.id, connection=backend.connection()).get_status() == JobStatus.FAILED
    assert after.wait(1).return_value == 3


def test_a_foreign_job_with_a_failure_callback_is_refused_without_calling_it(
    backend: RedisBackend, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    job = enqueue(backend, "os.system", f"touch {marker}", on_failure=Callback(CALLBACK))
    burst(backend)
    job = Job.fetch(job.id, connection=backend.connection(), serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert "calls 'os.system', which is not a taskyard task" in (
        job.latest_result().exc_string or ""  # type: ignore[union-attr]
    )
    assert not marker.exists() and tasks.RUN_LOG == []


def test_webhooks_repeats_and_foreign_dependencies_are_refused(
    backend: RedisBackend, tmp_path: Path
) -> None:
    from rq.repeat import Repeat

    plain = enqueue(backend, "tests.tasks.not_a_task")
    backend.connection().lrem("rq:queue:default", 0, plain.id)
    backend.connection().hset(plain.key, "status", "finished")  # a plain rq job that ran
    repeated = ours(backend, tmp_path / "a", repeat=Repeat(times=2))
    dependent = ours(backend, tmp_path / "b", depends_on=plain.id)
    burst(backend)
    assert "carries an rq repeat" in backend.get_result(repeated.id).errors[-1].traceback
    assert "not taskyard tasks" in backend.get_result(dependent.id).errors[-1].traceback
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_allowed_rq_jobs_import_callbacks_from_declared_task_modules_only(
    backend: RedisBackend, tmp_path: Path
) -> None:
    declared = enqueue(backend, "tests.tasks.not_a_task", on_success=Callback(CALLBACK))
    undeclared = enqueue(backend, "tests.tasks.not_a_task", on_success=Callback("builtins.print"))
    burst(backend, allow_rq_jobs=True)
    client = backend.connection()
    assert Job.fetch(declared.id, connection=client).get_status() == JobStatus.FINISHED
    assert tasks.RUN_LOG == ["callback"]  # the declared module's callback ran, once
    refused = Job.fetch(undeclared.id, connection=client, serializer=JSONSerializer)
    assert refused.get_status() == JobStatus.FAILED
    assert "builtins.print from module(s) this worker does not declare" in (
        refused.latest_result().exc_string or ""  # type: ignore[union-attr]
    )


def test_the_job_class_never_imports_a_refused_callback(backend: RedisBackend) -> None:
    """rq's registry clean-ups call failure callbacks of abandoned jobs through the job class."""
    job = enqueue(backend, "tests.tasks.not_a_task", on_failure=Callback("os.system"))
    fetched = PermissiveGuardedJob.fetch(job.id, connection=backend.connection())
    with pytest.raises(JobRefused, match="'os.system' refused"):
        _ = fetched.failure_callback
    assert may_import_callback(CALLBACK)
    for path in ("builtins.print", "os.system", "this.x", "tests.redis_fixtures.burst", "x"):
        assert not may_import_callback(path)
