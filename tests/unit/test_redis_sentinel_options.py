"""Sentinel connection options (django-rq's names, and the ``redis+sentinel://`` URL),
``FAILOVER_TIMEOUT``'s retries and ``MIN_REPLICAS`` (issue 14). Building clients does no I/O;
the ``MIN_REPLICAS`` refusal needs the real test Redis (a server without replicas)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError, TimeoutError
from redis.sentinel import SentinelConnectionPool

import taskyard
from taskyard import InvalidTaskBackend, NotReplicated
from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.clients import connection_retry, fresh_client, parse_sentinel_url
from taskyard.config import backends, parse_url
from tests import redis_fixtures, tasks
from tests.redis_fixtures import configure_redis

redis_url = redis_fixtures.redis_url
BACKEND = "taskyard.backends.redis.RedisBackend"


def build(**options: Any) -> RedisBackend:
    taskyard.configure({"default": {"BACKEND": BACKEND, "OPTIONS": options}})
    backend = backends["default"]
    assert isinstance(backend, RedisBackend)
    return backend


def pool_of(backend: RedisBackend) -> SentinelConnectionPool:
    pool = backend.new_client().connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    return pool


def test_the_url_form() -> None:
    assert parse_sentinel_url("redis+sentinel://:s3cret@h1:26380,[::1]:26381,h3/mymaster/2") == {
        "SENTINELS": [("h1", 26380), ("::1", 26381), ("h3", 26379)],
        "MASTER_NAME": "mymaster",
        "DB": 2,
        "USERNAME": None,
        "PASSWORD": "s3cret",
        "SSL": False,
    }
    assert parse_sentinel_url("rediss+sentinel://u:p@h1:1/m")["SSL"] is True
    entry = parse_url("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/3?min_replicas=1")
    assert entry["BACKEND"] == BACKEND and entry["OPTIONS"]["MIN_REPLICAS"] == 1
    taskyard.configure(url="redis+sentinel://:pw@h1:26379,h2:26379/mymaster/3?queues=a")
    backend = backends["default"]
    assert isinstance(backend, RedisBackend)
    pool = pool_of(backend)
    assert pool.service_name == "mymaster"
    assert [
        (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
        for c in pool.sentinel_manager.sentinels
    ] == [("h1", 26379), ("h2", 26379)]
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    assert "pw" not in backend.describe_connection()
    assert backend.describe_connection() == "redis+sentinel://h1:26379,h2:26379/mymaster/3"


def test_django_rq_option_names() -> None:
    backend = build(
        SENTINELS=[("10.0.0.1", 26379), ["10.0.0.2", 26380]],
        MASTER_NAME="queue-master",
        DB=4,
        PASSWORD="master-pw",
        SOCKET_TIMEOUT=2.5,
        SENTINEL_KWARGS={"password": "sentinel-pw"},
    )
    pool = pool_of(backend)
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (4, "master-pw", 2.5)
    assert type(kwargs["retry"]).__name__ == "FailoverRetry"
    sentinel = pool.sentinel_manager.sentinels[1].connection_pool.connection_kwargs
    assert (sentinel["port"], sentinel["password"]) == (26380, "sentinel-pw")
    assert pool.connection_class.__name__.startswith("Following")
    copy = fresh_client(backend.new_client()).connection_pool
    assert isinstance(copy, SentinelConnectionPool) and copy is not pool
    assert copy.service_name == "queue-master" and copy.connection_class is pool.connection_class


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"SENTINELS": [("h", 1)]}, "needs both SENTINELS"),
        ({"MASTER_NAME": "m"}, "needs both SENTINELS"),
        ({"SENTINELS": [("h", 1)], "MASTER_NAME": "m", "URL": "redis://x"}, "cannot be combined"),
        ({"SENTINELS": [("h", 1)], "URL": "redis+sentinel://h:1/m"}, "not both"),
        ({"SENTINEL_KWARGS": {"password": "x"}}, "only used with Sentinel"),
        ({"URL": "redis+sentinel://h:1/"}, "/<master name>"),
        ({"URL": "redis+sentinel://h:port/m"}, "is not host:port"),
        ({"SENTINELS": ["h:1"], "MASTER_NAME": "m"}, r"\(host, port\) pairs"),
        ({"MIN_REPLICAS": 1, "MIN_REPLICAS_TIMEOUT": 10.0}, "shorter than SOCKET_TIMEOUT"),
    ],
)
def test_contradictions_are_refused_when_configured(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskBackend, match=message):
        build(**options)


def test_failover_retries_connection_errors_for_the_window_only() -> None:
    calls: list[int] = []

    def failing(times: int, error: Exception) -> Any:
        def do() -> str:
            calls.append(1)
            if len(calls) <= times:
                raise error
            return "ok"

        return do

    retry = connection_retry(1, failover_window=5.0)
    assert retry.call_with_retry(failing(6, ConnectionError("down")), lambda e: None) == "ok"
    calls.clear()
    with pytest.raises(ConnectionError):
        connection_retry(1, failover_window=0.2).call_with_retry(
            failing(10_000, ConnectionError("down")), lambda e: None
        )
    calls.clear()
    with pytest.raises(TimeoutError):  # a command that timed out may have run: never again
        retry.call_with_retry(failing(1, TimeoutError("slow")), lambda e: None)
    assert len(calls) == 1
    plain = connection_retry(1)  # no Sentinel: one retry, as before
    calls.clear()
    with pytest.raises(ConnectionError):
        plain.call_with_retry(failing(5, ConnectionError("down")), lambda e: None)
    assert len(calls) == 2


def test_min_replicas_raises_not_replicated_without_replicas(redis_url: str) -> None:
    backend = configure_redis(redis_url, MIN_REPLICAS=1, MIN_REPLICAS_TIMEOUT=0.2)
    client = backend.connection()
    if int(client.info("replication").get("connected_slaves", 0)):
        pytest.skip("the test Redis has replicas: WAIT would be answered")
    with pytest.raises(NotReplicated, match="only 0 of the 1 replica") as caught:
        tasks.add.enqueue(1, 2)
    (job_id,) = caught.value.result_ids
    assert caught.value.acknowledged == 0
    assert client.exists(f"rq:job:{job_id}")  # stored on the master, said so
    with pytest.raises(NotReplicated) as many:
        taskyard.enqueue_many([tasks.add.prepare(i, 1) for i in range(3)])
    assert len(many.value.result_ids) == 3
    zero = configure_redis(redis_url, MIN_REPLICAS=0)
    assert tasks.add.enqueue(1, 2).id and zero.options["MIN_REPLICAS"] == 0


def test_redis_cluster_is_refused() -> None:
    backend = build(CONNECTION_CLASS="redis.cluster.RedisCluster")
    with pytest.raises(InvalidTaskBackend, match="Redis Cluster is not supported"):
        backend.new_client()
