"""Bulk enqueue on Redis (``enqueue_many``: a Lua script per chunk, one transaction): the jobs
are the very jobs a one-by-one enqueue stores, in order, and rq's own tools read and run them.

fakeredis stands in for Redis; nothing here needs a server.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer as RQJSONSerializer

import taskyard
from taskyard import TaskResultStatus
from taskyard.backends.redis import RedisBackend, bulk
from tests import redis_fixtures, tasks
from tests.redis_fixtures import configure_redis

fake_redis_url = redis_fixtures.fake_redis_url
TIMES = {b"created_at", b"enqueued_at"}


@pytest.fixture
def backend(fake_redis_url: str) -> RedisBackend:
    found = configure_redis(fake_redis_url)
    assert isinstance(found, RedisBackend)
    return found


def _fields(backend: RedisBackend, job_id: str) -> dict[bytes, bytes]:
    fields: dict[bytes, bytes] = backend.connection().hgetall(f"rq:job:{job_id}")
    record = json.loads(fields.pop(b"taskyard"))
    assert set(record) == {"enqueued_at", "enqueued_by"} and record["enqueued_at"]
    return {k: v for k, v in fields.items() if k not in TIMES}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"priority": 7, "retries": 2, "timeout": 5},
        {"queue_name": "other", "run_after": timedelta(seconds=-5)},
    ],
)
def test_a_bulk_job_is_the_job_a_single_enqueue_stores(
    backend: RedisBackend, options: dict[str, object]
) -> None:
    task = tasks.echo.using(**options)
    single = task.enqueue("x", n=[1, {"a": None}])
    many = taskyard.enqueue_many([task.prepare("x", n=[1, {"a": None}]) for _ in range(3)])
    expected = _fields(backend, single.id)
    for result in many:
        assert _fields(backend, result.id) == expected
        assert backend.connection().hget(f"rq:job:{result.id}", "enqueued_at")


def test_order_is_kept_across_tasks_and_chunks(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 7)
    calls = [(tasks.add if i % 3 else tasks.echo).prepare(i, 1) for i in range(40)]
    results = taskyard.enqueue_many(calls)
    queued = [x.decode() for x in backend.connection().lrange("rq:queue:default", 0, -1)]
    assert queued == [r.id for r in results]


def test_scheduled_and_priority_levels(backend: RedisBackend) -> None:
    later = tasks.add.using(run_after=timedelta(hours=1))
    urgent = tasks.add.using(priority=10)
    results = taskyard.enqueue_many([later.prepare(1, 1), urgent.prepare(2, 2)])
    client = backend.connection()
    due = client.zscore("rq:scheduled:default", results[0].id)
    assert due is not None and due >= results[0].task.run_after.timestamp()  # type: ignore[union-attr]
    assert client.lrange("rq:queue:default:p10", 0, -1) == [results[1].id.encode()]
    assert client.smembers("taskyard:levels:default") == {b"10"}
    assert b"rq:queue:default:p10" in client.smembers("rq:queues")
    job = Job.fetch(results[0].id, connection=client, serializer=RQJSONSerializer)
    assert job.get_status() == JobStatus.SCHEDULED and job.enqueued_at is None


def test_rq_reads_and_a_plain_rq_worker_runs_bulk_jobs(backend: RedisBackend) -> None:
    results = taskyard.enqueue_many([tasks.add.prepare(i, 1) for i in range(5)])
    client = backend.connection()
    job = Job.fetch(results[2].id, connection=client, serializer=RQJSONSerializer)
    assert job.get_status() == JobStatus.QUEUED and job.args[:3] == ["tests.tasks.add", [2, 1], {}]
    assert job.description == "tests.tasks.add(2, 1)"
    SimpleWorker(["default"], connection=client, serializer=RQJSONSerializer).work(burst=True)
    assert [r.wait(1).return_value for r in results] == [1, 2, 3, 4, 5]
    assert all(r.status is TaskResultStatus.SUCCESSFUL for r in results)
