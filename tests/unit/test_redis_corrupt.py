"""One damaged job never wedges the queue (issue 11, item 7, Redis side): a job whose stored
data cannot be read ends FAILED with a clear error, every other job proceeds, readers still
read it, and readiness reports the condition. fakeredis, in this process."""

from __future__ import annotations

import time
import zlib

import pytest
from rq.job import Job, JobStatus

from taskyard import TaskResultStatus
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.health import RQHealth
from taskyard.backends.redis.keys import F_ATTEMPT, F_RECORD, F_STATUS, LEASES_KEY, QUARANTINE_KEY
from taskyard.backends.redis.recovery import Recovery
from tests import redis_fixtures, tasks
from tests.redis_fixtures import burst, configure_redis

S = TaskResultStatus
fake_redis_url = redis_fixtures.fake_redis_url
CORRUPT = "taskyard.backends.redis.quarantine.CorruptJob"


@pytest.fixture
def backend(fake_redis_url: str) -> RedisBackend:
    found = configure_redis(fake_redis_url)
    assert isinstance(found, RedisBackend)
    return found


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("retries_left", "not a number", "stored data cannot be read"),  # rq cannot load the job
        ("created_at", "yesterday-ish", "stored data cannot be read"),
        ("data", zlib.compress(b"not json{"), "stored data cannot be read"),
        (F_RECORD, "not json{", "the record is not a JSON object"),
        (F_ATTEMPT, "many", "the attempt counter many is not a number"),
    ],
)
def test_a_job_that_cannot_be_read_fails_alone(
    backend: RedisBackend, field: str, value: object, why: str
) -> None:
    damaged = tasks.add.enqueue(1, 1)
    behind = tasks.add.enqueue(2, 2)  # queued after the damaged job: it must still run
    client = backend.connection()
    client.hset(f"rq:job:{damaged.id}", field, value)  # type: ignore[arg-type]
    burst(backend)
    assert behind.wait(1).return_value == 4
    result = backend.get_result(damaged.id)  # readers are not broken by it either
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == CORRUPT
    assert any(why in e.traceback for e in result.errors), result.errors
    assert client.zscore(QUARANTINE_KEY, damaged.id) is not None
    assert client.hget(f"rq:job:{damaged.id}", "status") == b"failed"
    assert client.llen("rq:queue:default:intermediate") == 0


def test_readers_read_a_damaged_result_instead_of_raising(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    burst(backend)
    client = backend.connection()
    client.hset(f"rq:job:{result.id}", mapping={F_RECORD: "not json{", "taskyard_return": "{"})
    read = backend.get_result(result.id)
    assert read.status is S.SUCCESSFUL and read.return_value is None
    assert read.errors[-1].exception_class_path == CORRUPT
    assert "record cannot be read" in read.errors[-1].traceback
    assert "return value cannot be read" in read.errors[-1].traceback


def test_the_reaper_sets_aside_a_damaged_job_instead_of_retrying_it_forever(
    backend: RedisBackend,
) -> None:
    result = tasks.add.enqueue(1, 1)
    client = backend.connection()
    key = f"rq:job:{result.id}"
    client.hset(key, mapping={F_STATUS: "RUNNING", F_ATTEMPT: "x", "status": "started"})
    client.zadd(LEASES_KEY, {result.id: time.time() - 1})
    assert Recovery(client, 0).run() == [result.id]
    assert client.zscore(LEASES_KEY, result.id) is None  # not retried on every pass
    assert backend.get_result(result.id).status is S.FAILED
    assert Job.fetch(result.id, connection=client).get_status() == JobStatus.FAILED


def test_readiness_and_metrics_report_set_aside_jobs(backend: RedisBackend) -> None:
    health = RQHealth(backend.connection(), ["default"], alive=lambda: True, stopping=lambda: False)
    assert health.readiness() == (True, "ok")
    damaged = tasks.add.enqueue(1, 1)
    backend.connection().hset(f"rq:job:{damaged.id}", F_RECORD, "not json{")
    burst(backend)
    ready, reason = health.readiness()
    assert ready and "1 job(s) whose stored data could not be read" in reason
    assert health.metrics()["taskyard_tasks_quarantined"][2] == 1.0
