"""Cron on the Redis backend (fakeredis everywhere, and the real server's database 14)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

import taskyard
from taskyard.backends.redis import RedisBackend
from taskyard.config import backends
from taskyard.cron import Schedule, Scheduler, registry
from taskyard.cron.redis_claims import LAST_KEY, RedisClaimStore, claim_key
from tests import tasks
from tests.cron_support import (
    START,
    SimClock,
    race_expected,
    race_schedules,
    record,
    run_three,
)
from tests.redis_fixtures import REDIS_URL, new_fake_url, real_redis, redis_entry

#: The real server's database kept for these tests (flushed before and after each one).
CRON_REDIS_URL = urlsplit(REDIS_URL)._replace(path="/14").geturl()


@pytest.fixture(params=["fakeredis", "real"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "fakeredis":
        yield new_fake_url()
        return
    yield real_redis(CRON_REDIS_URL)
    real_redis(CRON_REDIS_URL)  # flush what the test left


@pytest.fixture
def backend(url: str) -> Iterator[RedisBackend]:
    taskyard.configure({"default": redis_entry(url)})
    built = backends["default"]
    assert isinstance(built, RedisBackend)
    with registry.isolated():
        yield built
    built.close()


def queued(backend: RedisBackend) -> list[str]:
    """Job ids waiting in the rq queue ``default``, oldest first."""
    client = backend.connection()
    return [i.decode() for i in client.lrange(backend.queue("default").key, 0, -1)]


def jobs_by_label(backend: RedisBackend) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job_id in queued(backend):
        out.setdefault(backend.get_result(job_id).args[0], []).append(job_id)
    return out


def claimed_ticks(backend: RedisBackend, name: str) -> dict[str, str]:
    """Claim keys of ``name`` -> the job id each holds."""
    client = backend.connection()
    keys = sorted(k.decode() for k in client.scan_iter(match=f"taskyard:cron:tick:{name}:*"))
    return {key: client.get(key).decode() for key in keys}


def test_a_claim_and_its_job_are_stored_together(backend: RedisBackend) -> None:
    store = RedisClaimStore(backend)
    schedule = record("once")
    tick = START + timedelta(minutes=1)
    first = store.claim(schedule, tick, "a", START)
    second = store.claim(schedule, tick, "b", START)
    assert first.claimed and first.task_id is not None
    assert not second.claimed
    assert queued(backend) == [first.task_id]
    assert claimed_ticks(backend, "once") == {claim_key("once", tick): first.task_id}
    ttl = backend.connection().ttl(claim_key("once", tick))
    assert timedelta(days=6) < timedelta(seconds=ttl) <= timedelta(days=7)
    assert store.last_ticks(["once", "other"]) == {"once": tick}
    assert store.recent_task_ids("once", 5, None) == [first.task_id]
    assert store.recent_task_ids("once", 5, tick) == []
    result = backend.get_result(first.task_id)
    assert result.args == ["once"] and result.status.value == "READY"


def test_the_newest_tick_only_moves_forward(backend: RedisBackend) -> None:
    store = RedisClaimStore(backend)
    store.claim(record("order"), START + timedelta(minutes=5), "a", START)
    store.claim(record("order"), START + timedelta(minutes=2), "b", START)
    assert store.last_ticks(["order"]) == {"order": START + timedelta(minutes=5)}
    assert backend.connection().zscore(LAST_KEY, "order") is not None


def test_a_limited_task_records_the_tick_without_a_job(backend: RedisBackend) -> None:
    store = RedisClaimStore(backend)
    schedule = Schedule(name="unique", task=tasks.unique_job, expression="* * * * *", args=["u"])
    assert store.claim(schedule, START, "a", START).outcome == "enqueued"
    limited = store.claim(schedule, START + timedelta(minutes=1), "a", START)
    assert limited.claimed and limited.outcome == "limited" and limited.task_id is None
    assert len(queued(backend)) == 1
    assert (
        claimed_ticks(backend, "unique")[claim_key("unique", START + timedelta(minutes=1))] == "-"
    )
    assert not store.claim(schedule, START + timedelta(minutes=1), "b", START).claimed


def test_three_schedulers_enqueue_every_tick_exactly_once(backend: RedisBackend, url: str) -> None:
    """Three schedulers, each with its own client, race over 60 simulated minutes."""
    schedules = race_schedules()
    own: list[RedisBackend] = []

    def make_store(index: int) -> RedisClaimStore:
        built = RedisBackend("default", redis_entry(url))
        own.append(built)
        return RedisClaimStore(built)

    clock = SimClock()
    try:
        run_three(schedules, make_store, clock, steps=181, restart_at=90)
    finally:
        for built in own:
            built.close()
    end = START + timedelta(minutes=60)
    expected = race_expected(end)
    assert len(expected["every-minute"]) == 60
    all_jobs = queued(backend)
    assert len(all_jobs) == len(set(all_jobs))  # no job queued twice
    by_label = jobs_by_label(backend)
    for name, ticks in expected.items():
        claims = claimed_ticks(backend, name)
        assert sorted(claims) == sorted(claim_key(name, t) for t in ticks), name
        assert sorted(by_label[name]) == sorted(claims.values()), name  # one job per tick
    assert sum(len(v) for v in by_label.values()) == sum(len(t) for t in expected.values())


class LosingClient:
    """A Redis client whose next transactions are applied but whose replies are "lost"."""

    def __init__(self, real: Any, lose: int) -> None:
        self.real = real
        self.lose = lose

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.real.pipeline(transaction)
        if transaction and self.lose:
            import redis

            execute = pipe.execute

            def lost(*args: Any, **kwargs: Any) -> Any:
                execute(*args, **kwargs)
                self.lose -= 1
                raise redis.exceptions.ConnectionError("Connection reset by peer (simulated)")

            pipe.execute = lost
        return pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_reply_lost_after_exec_does_not_double_the_tick(
    backend: RedisBackend, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SimClock()
    scheduler = Scheduler([record("lossy")], clock=clock)
    scheduler.run_pending()
    store = scheduler.store("default")
    assert isinstance(store, RedisClaimStore)
    losing = LosingClient(backend.connection(), lose=1)
    monkeypatch.setattr(store, "_client", lambda: losing)
    clock.advance(timedelta(minutes=1))
    with caplog.at_level(logging.INFO, "taskyard.cron"):
        assert scheduler.step() == 0.5  # the job was stored, the scheduler does not know it
        assert len(queued(backend)) == 1
        assert scheduler.step() == 60.0  # retried: the claim is found, nothing is added
    assert "backend unavailable" in caplog.text and "Connection reset by peer" in caplog.text
    assert "backend reachable again" in caplog.text
    clock.advance(timedelta(minutes=1))
    scheduler.step()
    assert len(queued(backend)) == 2
    assert sorted(jobs_by_label(backend)["lossy"]) == sorted(
        claimed_ticks(backend, "lossy").values()
    )


def test_an_unreachable_redis_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    taskyard.configure(
        {"default": redis_entry("redis://127.0.0.1:1/0", SOCKET_CONNECT_TIMEOUT=0.5)}
    )
    scheduler = Scheduler([record("nowhere")], clock=SimClock())
    with caplog.at_level(logging.WARNING, "taskyard.cron"):
        assert [scheduler.step() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert "backend unavailable" in caplog.text and "127.0.0.1:1" in caplog.text


def test_pause_and_resume(backend: RedisBackend) -> None:
    store = RedisClaimStore(backend)
    assert store.states(["p"]) == {}
    assert store.pause("p", "broken", 3, START)
    assert not store.pause("p", "again", 4, START)
    state = store.states(["p", "q"])["p"]
    assert state.paused and state.reason == "broken" and state.failures == 3
    assert state.paused_at == START
    assert store.resume("p", START + timedelta(hours=1))
    assert not store.resume("p", START)
    state = store.states(["p"])["p"]
    assert not state.paused and state.resumed_at == START + timedelta(hours=1)
    assert state.failures == 0
