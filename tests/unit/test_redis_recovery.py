"""Jobs stranded where rq leaves them when a worker dies or Redis restarts (issue 11, item 3),
and what counts as an attempt (item 5): each place is put in the state a lost reply or a dead
process leaves, then one reaper pass must move the job on. fakeredis, in this process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ReadyJobRegistry, StartedJobRegistry

from taskyard import TaskResultStatus
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.dequeue import TaskyardQueue
from taskyard.backends.redis.keys import F_STATUS, LEASES_KEY, MAX_HANDBACKS
from taskyard.backends.redis.recovery import Recovery
from taskyard.backends.redis.serializer import JSONSerializer
from tests import redis_fixtures, tasks
from tests.redis_fixtures import burst, configure_redis

S = TaskResultStatus
fake_redis_url = redis_fixtures.fake_redis_url
QUEUE = "rq:queue:default"
INTERMEDIATE = "rq:queue:default:intermediate"


@pytest.fixture
def backend(fake_redis_url: str) -> RedisBackend:
    found = configure_redis(fake_redis_url)
    assert isinstance(found, RedisBackend)
    return found


def take(backend: RedisBackend, job_id: str) -> None:
    """What a worker's BLMOVE does before the worker is lost: queue -> intermediate list."""
    client = backend.connection()
    assert client.lrem(QUEUE, 0, job_id) == 1
    client.rpush(INTERMEDIATE, job_id)


def prepare(backend: RedisBackend, job_id: str) -> None:
    """What rq does next: the job ``started`` and in the started registry, no attempt begun."""
    client = backend.connection()
    client.lrem(INTERMEDIATE, 0, job_id)
    client.hset(f"rq:job:{job_id}", "status", "started")
    registry = StartedJobRegistry("default", connection=client)
    client.zadd(registry.key, {f"{job_id}:exec-1": time.time() + 600})


def recover(backend: RedisBackend, grace: float = 0.0) -> list[str]:
    return Recovery(backend.connection(), grace).run()


def test_a_job_stranded_in_rqs_intermediate_list_is_handed_back_uncounted(
    backend: RedisBackend,
) -> None:
    """A Redis restart strands a job: its BLMOVE ran, the worker never heard of it. It showed
    READY forever; rq's own clean-up failed it ten minutes later with 0 attempts."""
    result = tasks.add.enqueue(1, 2)
    take(backend, result.id)
    burst(backend)  # a worker finds nothing in the queue itself
    assert backend.get_result(result.id).status is S.READY
    assert recover(backend) == [result.id]
    assert backend.connection().lrange(INTERMEDIATE, 0, -1) == []
    burst(backend)
    result.refresh()
    assert result.status is S.SUCCESSFUL and result.return_value == 3
    assert result.attempts == 1 and result.errors == []  # uncounted: it had never begun


def test_a_job_prepared_but_never_begun_is_handed_back_uncounted(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(2, 2)
    take(backend, result.id)
    prepare(backend, result.id)
    assert recover(backend) == [result.id]
    burst(backend)
    result.refresh()
    assert result.status is S.SUCCESSFUL and result.attempts == 1 and result.errors == []
    registry = StartedJobRegistry("default", connection=backend.connection())
    assert backend.connection().zcard(registry.key) == 0


def test_a_job_just_taken_by_a_live_worker_is_left_alone(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    take(backend, result.id)
    assert recover(backend, grace=60) == []  # seen once: a live worker moves it on in ms
    assert backend.connection().lrange(INTERMEDIATE, 0, -1) == [result.id.encode()]


def test_an_outcome_recorded_before_rqs_own_bookkeeping_releases_dependents(
    backend: RedisBackend,
) -> None:
    """The attempt stored SUCCESSFUL, then its worker (or Redis) went away before rq marked the
    job finished: rq never released the dependents."""
    parent = tasks.add.enqueue(1, 1)
    child = tasks.add.using(depends_on=parent).enqueue(2, 2)
    take(backend, parent.id)
    prepare(backend, parent.id)
    client = backend.connection()
    client.hset(f"rq:job:{parent.id}", mapping={F_STATUS: "SUCCESSFUL", "taskyard_return": "2"})
    assert recover(backend) == [parent.id]
    job = Job.fetch(parent.id, connection=client, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED
    burst(backend)
    assert child.wait(1).return_value == 4


def test_dependents_rq_released_but_never_queued_are_queued(backend: RedisBackend) -> None:
    result = tasks.add.enqueue(5, 5)
    client = backend.connection()
    client.lrem(QUEUE, 0, result.id)  # moved to rq's ready registry, its enqueuer then died
    client.hset(f"rq:job:{result.id}", "status", JobStatus.READY_TO_ENQUEUE.value)
    client.zadd(ReadyJobRegistry("default", connection=client).key, {result.id: time.time()})
    assert recover(backend) == [result.id]
    burst(backend)
    assert result.wait(1).return_value == 10


def test_leases_are_not_judged_until_redis_has_been_up_for_the_grace(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart (or an outage seen by the reaper) live workers need a moment to renew
    their leases: the reaper must not take their running attempts."""
    result = tasks.add.enqueue(1, 1)
    client = backend.connection()
    client.hset(f"rq:job:{result.id}", mapping={F_STATUS: "RUNNING", "taskyard_attempt": 1})
    client.zadd(LEASES_KEY, {result.id: time.time() - 5})  # expired while Redis was down
    recovery = Recovery(client, grace=30)
    monkeypatch.setattr(recovery, "_uptime", lambda: 2.0)  # Redis restarted two seconds ago
    assert recovery.run() == []
    assert client.zscore(LEASES_KEY, result.id) is not None
    monkeypatch.setattr(recovery, "_uptime", lambda: 3600.0)
    assert recovery.run() == [result.id]  # a lease past its end on a settled Redis: interrupted


def test_a_job_whose_worker_keeps_dying_before_it_begins_fails_at_last(
    backend: RedisBackend,
) -> None:
    result = tasks.add.enqueue(1, 1)
    for _ in range(MAX_HANDBACKS + 1):
        take(backend, result.id)
        recover(backend)
    result.refresh()
    assert result.status is S.FAILED and result.attempts == 0
    assert f"more than {MAX_HANDBACKS} times" in result.errors[-1].traceback


def test_taking_a_job_from_several_queues_keeps_it_listed_until_rq_starts_it(
    backend: RedisBackend,
) -> None:
    """rq takes with BLPOP when a worker listens to several queues: a job popped by a worker
    that then dies is in no list at all. taskyard's queue class takes it atomically into its
    queue's intermediate list, in priority order."""
    low = tasks.add.enqueue(1, 1)
    high = tasks.add.using(priority=10).enqueue(2, 2)
    client = backend.connection()
    queues = [
        Queue(name, connection=client, serializer=JSONSerializer)
        for name in ("default:p10", "default")
    ]
    found: Any = TaskyardQueue.dequeue_any(queues, None, connection=client)
    job, queue = found
    assert (job.id, queue.name) == (high.id, "default:p10")
    assert client.lrange("rq:queue:default:p10:intermediate", 0, -1) == [high.id.encode()]
    assert client.lrange(QUEUE, 0, -1) == [low.id.encode()]
    assert TaskyardQueue.dequeue_any(queues, None, connection=client)[0].id == low.id  # type: ignore[index]
    assert TaskyardQueue.dequeue_any(queues, None, connection=client) is None


def test_a_stop_request_while_reading_a_job_does_not_make_it_corrupt(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rq's signal handler raises StopRequested wherever the worker is: inside the read of a
    job it used to be taken for unreadable data and the job was set aside as corrupt."""
    from rq.exceptions import StopRequested

    from taskyard.backends.redis import settle

    result = tasks.add.enqueue(1, 2)

    def stop(*args: Any, **kwargs: Any) -> Job:
        raise StopRequested()

    monkeypatch.setattr(Job, "fetch", stop)
    client = backend.connection()
    with pytest.raises(StopRequested):
        settle._read(client, client, result.id)
    monkeypatch.undo()
    assert settle._read(client, client, result.id) is not None
    assert client.zcard("taskyard:quarantined") == 0


def test_an_execution_whose_hash_is_gone_is_not_taken_for_corrupt_data(
    backend: RedisBackend,
) -> None:
    """rq's ``get_executions`` raises ValueError for an execution listed without its hash (it
    expired, or its worker removed it a moment before): the reaper took that for unreadable job
    data and set a healthy job aside (seen in the soak after a work horse was killed)."""
    from rq.executions import ExecutionRegistry

    from taskyard.backends.redis import settle

    result = tasks.add.enqueue(1, 2)
    client = backend.connection()
    job = Job.fetch(result.id, connection=client, serializer=JSONSerializer)
    registry = ExecutionRegistry(job_id=job.id, connection=client)
    client.zadd(registry.key, {"gone-1": time.time() + 600})
    with pytest.raises(ValueError):
        job.get_executions()
    assert settle._executions(job) == []
