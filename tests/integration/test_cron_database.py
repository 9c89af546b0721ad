"""Cron on the Database backend, SQLite and PostgreSQL: claims, exactly once, pause, faults."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from taskyard.backends.database import DatabaseBackend
from taskyard.backends.database.worker_ops import QueueOps
from taskyard.cron import Schedule, Scheduler, registry
from taskyard.cron.claims import DatabaseClaimStore
from taskyard.exceptions import BackendUnavailable
from taskyard.worker.operations import status_report
from taskyard.worker.worker import Worker, WorkerConfig
from tests import tasks
from tests.cron_support import (
    START,
    SimClock,
    every_nth,
    race_expected,
    race_schedules,
    record,
    run_three,
)


@pytest.fixture
def cron_db(db: DatabaseBackend) -> Iterator[DatabaseBackend]:
    """The ``db`` backend with empty cron tables."""
    sql(db, "DELETE FROM taskyard_cron_tick")
    sql(db, "DELETE FROM taskyard_cron_state")
    with registry.isolated():
        yield db


def sql(db: DatabaseBackend, query: str) -> list[dict[str, Any]]:
    """Run literal SQL (no parameters) on the backend's connection and return the rows."""
    cursor = db.connector.connection().execute(query)
    return list(cursor.fetchall()) if cursor.description else []


def ticks_of(db: DatabaseBackend, name: str) -> list[dict[str, Any]]:
    rows = sql(db, f"SELECT * FROM taskyard_cron_tick WHERE schedule = '{name}' ORDER BY tick")
    return [{**row, "tick": db.connector.parse_time(row["tick"])} for row in rows]


def tasks_by_label(db: DatabaseBackend) -> dict[str, list[str]]:
    """Task row ids per first argument (each schedule passes its own name)."""
    out: dict[str, list[str]] = {}
    for row in sql(db, "SELECT id, args FROM taskyard_task"):
        label = db.connector.parse_json(row["args"])[0]
        out.setdefault(label, []).append(str(row["id"]))
    return out


def test_the_migration_creates_the_cron_tables(cron_db: DatabaseBackend) -> None:
    have, latest = cron_db.schema_status()
    assert have == latest >= 2
    assert sql(cron_db, "SELECT count(*) AS n FROM taskyard_cron_state")[0]["n"] == 0


def test_a_claim_and_its_task_are_written_together(cron_db: DatabaseBackend) -> None:
    store = DatabaseClaimStore(cron_db)
    schedule = record("once")
    tick = START + timedelta(minutes=1)
    first = store.claim(schedule, tick, "a", START)
    second = store.claim(schedule, tick, "b", START)
    assert first.claimed and first.task_id is not None
    assert not second.claimed and second.task_id is None
    (row,) = ticks_of(cron_db, "once")
    assert str(row["task_id"]) == first.task_id and row["claimed_by"] == "a"
    assert tasks_by_label(cron_db) == {"once": [first.task_id]}
    assert cron_db.get_result(first.task_id).args == ["once"]
    assert store.last_ticks(["once", "other"]) == {"once": tick}
    assert store.recent_task_ids("once", 5, None) == [first.task_id]


def test_a_failed_insert_leaves_no_claim_behind(
    cron_db: DatabaseBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DatabaseClaimStore(cron_db)
    connector = cron_db.connector
    real_run = connector.run

    def broken(name: str, params: Any = None) -> Any:
        if name == "insert":
            raise BackendUnavailable("the connection dropped mid-transaction (simulated)")
        return real_run(name, params)

    monkeypatch.setattr(connector, "run", broken)
    with pytest.raises(BackendUnavailable):
        store.claim(record("atomic"), START, "a", START)
    monkeypatch.setattr(connector, "run", real_run)
    assert ticks_of(cron_db, "atomic") == []  # the claim was rolled back with the insert
    assert store.claim(record("atomic"), START, "a", START).claimed
    assert len(tasks_by_label(cron_db)["atomic"]) == 1


def test_a_limited_task_records_the_tick_without_a_task(cron_db: DatabaseBackend) -> None:
    store = DatabaseClaimStore(cron_db)
    schedule = Schedule(name="unique", task=tasks.unique_job, expression="* * * * *", args=["u"])
    assert store.claim(schedule, START, "a", START).outcome == "enqueued"
    limited = store.claim(schedule, START + timedelta(minutes=1), "a", START)
    assert limited.claimed and limited.outcome == "limited" and limited.task_id is None
    assert "limit 1 reached" in limited.detail
    assert [r["outcome"] for r in ticks_of(cron_db, "unique")] == ["enqueued", "limited"]
    assert not store.claim(schedule, START + timedelta(minutes=1), "b", START).claimed


def test_three_schedulers_enqueue_every_tick_exactly_once(
    cron_db: DatabaseBackend, db_url: str
) -> None:
    """Three schedulers, each with its own connection, race over 60 simulated minutes."""
    schedules = [
        *race_schedules(),
        record(
            "seven-from-start",
            expression=None,
            every=timedelta(minutes=7),
            start=START + timedelta(seconds=30),
        ),
    ]
    own: list[DatabaseBackend] = []

    def make_store(index: int) -> DatabaseClaimStore:
        backend = DatabaseBackend("default", {"QUEUES": [], "OPTIONS": {"URL": db_url}})
        own.append(backend)
        return DatabaseClaimStore(backend)

    clock = SimClock()
    try:
        run_three(schedules, make_store, clock, steps=181, restart_at=90)
    finally:
        for backend in own:
            backend.close()
    end = START + timedelta(minutes=60)
    expected = {
        **race_expected(end),
        "seven-from-start": every_nth(
            START, end, timedelta(minutes=7), START + timedelta(seconds=30)
        ),
    }
    assert len(expected["every-minute"]) == 60
    by_label = tasks_by_label(cron_db)
    for name, ticks in expected.items():
        claims = ticks_of(cron_db, name)
        assert [c["tick"] for c in claims] == ticks, name
        task_ids = [str(c["task_id"]) for c in claims]
        assert sorted(by_label[name]) == sorted(task_ids), name  # one task per tick, no more
    claimed_by = Counter(c["claimed_by"] for n in expected for c in ticks_of(cron_db, n))
    assert set(claimed_by) <= {"sched-0", "sched-1", "sched-2"}


def burst(db: DatabaseBackend) -> None:
    Worker(
        db, WorkerConfig(queues=None, threads=1, burst=True, interval=0.05, handle_signals=False)
    ).run()


def test_pause_after_failures_shows_in_status(cron_db: DatabaseBackend) -> None:
    clock = SimClock()
    schedule = Schedule(
        name="failing", task=tasks.fail, expression="* * * * *", pause_after_failures=2
    )
    scheduler = Scheduler([schedule], clock=clock)
    scheduler.run_pending()
    for _ in range(4):
        clock.advance(timedelta(minutes=1))
        scheduler.run_pending()
        burst(cron_db)
    assert len(ticks_of(cron_db, "failing")) == 2  # the third tick found two failures: paused
    store = scheduler.store("default")
    state = store.states(["failing"])["failing"]
    assert state.paused and state.failures == 2
    report = status_report(QueueOps(cron_db))
    assert "cron: 1 schedule(s) paused" in report
    assert "failing" in report and "its last 2 runs failed" in report

    assert store.resume("failing", clock())
    clock.advance(timedelta(minutes=1))
    assert [h.claim.claimed for h in scheduler.run_pending()] == [True]
    assert "paused" not in status_report(QueueOps(cron_db))


def test_old_claims_are_pruned_but_the_newest_is_kept(cron_db: DatabaseBackend) -> None:
    store = DatabaseClaimStore(cron_db)
    for day in range(10):
        store.claim(record("daily"), START + timedelta(days=day), "a", START)
    store.claim(record("rare"), START, "a", START)
    assert store.prune(START + timedelta(days=5)) == 5
    assert len(ticks_of(cron_db, "daily")) == 5
    assert len(ticks_of(cron_db, "rare")) == 1  # its only (newest) claim anchors missed ticks


def test_a_restarted_scheduler_continues_from_the_stored_tick(cron_db: DatabaseBackend) -> None:
    clock = SimClock()
    first = Scheduler([record("resume-me")], clock=clock)
    first.run_pending()
    clock.advance(timedelta(minutes=1))
    first.run_pending()
    clock.advance(timedelta(minutes=30))  # no scheduler runs for half an hour
    handled = Scheduler([record("resume-me")], clock=clock).run_pending()
    assert [h.tick for h in handled] == [START + timedelta(minutes=31)]  # run once, the latest
    assert len(ticks_of(cron_db, "resume-me")) == 2


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_connection_killed_under_the_scheduler(
    cron_db: DatabaseBackend, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server terminates the scheduler's connection in the middle of a pass (after its
    reads, before its claim): it logs, backs off, reconnects, and enqueues each tick once."""
    import psycopg

    clock = SimClock()
    scheduler = Scheduler([record("survivor")], clock=clock)
    scheduler.run_pending()
    store = scheduler.store("default")
    real_states = store.states
    kills = [cron_db.connector.connection().info.backend_pid]

    def states_then_kill(names: Any) -> Any:
        states = real_states(names)
        if kills:
            with psycopg.connect(cron_db.url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [kills.pop()])
        return states

    monkeypatch.setattr(store, "states", states_then_kill)
    clock.advance(timedelta(minutes=1))
    with caplog.at_level(logging.INFO, "taskyard.cron"):
        assert scheduler.step() == 0.5  # the claim hit the dead connection: logged, backing off
        assert ticks_of(cron_db, "survivor") == []
        assert scheduler.step() == 60.0  # reconnected: the 12:01 tick claimed, next in 60 s
    assert "backend unavailable" in caplog.text and "backend reachable again" in caplog.text
    clock.advance(timedelta(minutes=1))
    scheduler.step()
    assert [c["tick"] for c in ticks_of(cron_db, "survivor")] == [
        START + timedelta(minutes=1),
        START + timedelta(minutes=2),
    ]
    assert len(tasks_by_label(cron_db)["survivor"]) == 2


def test_ticks_are_stored_as_instants(cron_db: DatabaseBackend) -> None:
    store = DatabaseClaimStore(cron_db)
    tick = datetime(2026, 11, 1, 5, 30, tzinfo=START.tzinfo)
    store.claim(record("instant"), tick, "a", START)
    assert store.last_ticks(["instant"])["instant"] == tick
