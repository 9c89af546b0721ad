"""The scheduler loop on the in-process backends: exactly once, misfires, pause, reconnects."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import taskyard
from taskyard.backends.dummy import DummyBackend
from taskyard.config import backends
from taskyard.cron import (
    CATCH_UP,
    SKIP,
    Claim,
    ClaimStore,
    InvalidSchedule,
    Schedule,
    Scheduler,
    registry,
)
from taskyard.cron.claims import MemoryClaimStore, ScheduleState, memory_store
from taskyard.cron.schedule import EPOCH
from taskyard.exceptions import BackendUnavailable
from taskyard.tasks.results import TaskResultStatus
from tests import tasks
from tests.cron_support import START, SimClock, every_nth, minute_ticks, run_three


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with registry.isolated():
        yield


@pytest.fixture
def dummy() -> DummyBackend:
    taskyard.configure({"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend"}})
    backend = backends["default"]
    assert isinstance(backend, DummyBackend)
    return backend


def minutely(name: str = "m", **options: Any) -> Schedule:
    return Schedule(name=name, task=tasks.record, expression="* * * * *", args=[name], **options)


def run_for(scheduler: Scheduler, clock: SimClock, minutes: int, step: int = 20) -> None:
    end = clock() + timedelta(minutes=minutes)
    while clock() < end:
        scheduler.run_pending()
        clock.advance(timedelta(seconds=step))


def test_three_schedulers_in_one_process_enqueue_each_tick_once(dummy: DummyBackend) -> None:
    schedules = [
        minutely("every-minute"),
        Schedule(name="five", task=tasks.record, expression="*/5 * * * *", args=["five"]),
        Schedule(name="ninety", task=tasks.record, every=timedelta(seconds=90), args=["ninety"]),
    ]
    clock = SimClock()
    run_three(schedules, lambda i: memory_store(dummy), clock, steps=180, restart_at=90)
    end = clock() - timedelta(seconds=20)  # the last pass ran before the final advance
    counts = Counter(r.args[0] for r in dummy.results)
    assert counts == {
        "every-minute": len(minute_ticks(START, end, 1)),
        "five": len(minute_ticks(START, end, 5)),
        "ninety": len(every_nth(START, end, timedelta(seconds=90), EPOCH)),
    }
    assert counts["every-minute"] == 59


def test_first_start_does_not_run_past_ticks(dummy: DummyBackend) -> None:
    clock = SimClock(START + timedelta(seconds=30))
    scheduler = Scheduler([minutely()], clock=clock)
    assert scheduler.run_pending() == []
    clock.advance(timedelta(seconds=30))
    (handled,) = scheduler.run_pending()
    assert handled.tick == START + timedelta(minutes=1)
    assert handled.claim.claimed and handled.claim.task_id == dummy.results[0].id


def down_for(dummy: DummyBackend, minutes: int, **options: Any) -> list[datetime]:
    """Run a scheduler, stop it for ``minutes``, start another: the ticks enqueued after."""
    clock = SimClock()
    schedule = minutely(**options)
    run_for(Scheduler([schedule], clock=clock), clock, 3)
    dummy.clear()
    clock.advance(timedelta(minutes=minutes, seconds=40))
    handled = Scheduler([schedule], clock=clock).run_pending()
    return [h.tick for h in handled if h.claim.task_id]


def test_missed_ticks_run_once_by_default(
    dummy: DummyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "taskyard.cron"):
        ran = down_for(dummy, 10)
    assert ran == [datetime(2026, 5, 4, 12, 13, tzinfo=UTC)]  # only the latest missed tick
    assert len(dummy.results) == 1
    assert "were missed; policy run_once runs 1" in caplog.text


def test_missed_ticks_catch_up(dummy: DummyBackend) -> None:
    ran = down_for(dummy, 10, misfire=CATCH_UP)
    assert ran == [datetime(2026, 5, 4, 12, m, tzinfo=UTC) for m in range(3, 14)]
    capped = down_for(dummy, 10, misfire=CATCH_UP, max_catch_up=3, name="capped")
    assert capped == [datetime(2026, 5, 4, 12, m, tzinfo=UTC) for m in (11, 12, 13)]


def test_missed_ticks_skip(dummy: DummyBackend) -> None:
    assert down_for(dummy, 10, misfire=SKIP, misfire_grace=30) == []  # 12:13 is 40 s old
    assert dummy.results == []
    assert down_for(dummy, 10, misfire=SKIP, misfire_grace=60, name="g") == [
        datetime(2026, 5, 4, 12, 13, tzinfo=UTC)  # younger than the grace: on time
    ]


def test_immediate_backend_runs_ticks_inline() -> None:
    taskyard.configure(url="immediate:")
    clock = SimClock()
    scheduler = Scheduler([minutely("inline")], clock=clock)
    run_for(scheduler, clock, 3)
    assert tasks.RUN_LOG == ["inline", "inline"]  # 12:01 and 12:02; the loop stops at 12:02:40


def test_threadpool_backend() -> None:
    taskyard.configure(url="threadpool:?max_workers=2")
    clock = SimClock()
    scheduler = Scheduler([minutely("pool")], clock=clock)
    run_for(scheduler, clock, 2)  # passes from 12:00:00 to 12:01:40: the 12:01 tick
    backend = backends["default"]
    (task_id,) = memory_store(backend).recent_task_ids("pool", 9, None)
    result = backend.get_result(task_id).wait(timeout=10)
    assert result.status is TaskResultStatus.SUCCESSFUL
    assert result.return_value == "pool"


def test_a_limited_task_skips_the_tick_while_its_previous_run_is_pending(
    dummy: DummyBackend,
) -> None:
    clock = SimClock()
    schedule = Schedule(name="unique", task=tasks.unique_job, expression="* * * * *", args=["u"])
    scheduler = Scheduler([schedule], clock=clock)
    handled = []
    for _ in range(7):
        handled += scheduler.run_pending()
        clock.advance(timedelta(seconds=20))
    assert [(h.claim.claimed, h.claim.outcome) for h in handled] == [
        (True, "enqueued"),
        (True, "limited"),
    ]
    assert len(dummy.results) == 1


# -- pausing -------------------------------------------------------------------------------------------


def test_pause_after_failures_and_resume(dummy: DummyBackend) -> None:
    clock = SimClock()
    schedule = Schedule(
        name="flaky", task=tasks.fail, expression="* * * * *", pause_after_failures=2
    )
    scheduler = Scheduler([schedule], clock=clock)
    store = scheduler.store("default")

    def minute() -> list[Any]:
        clock.advance(timedelta(minutes=1))
        handled = scheduler.run_pending()
        dummy.run_pending()  # the "worker": every run fails
        return handled

    assert scheduler.run_pending() == []  # the first pass: nothing due yet
    assert len(minute()) == 1
    assert scheduler.failure_streak(schedule, store, None) == 1
    assert len(minute()) == 1
    assert scheduler.failure_streak(schedule, store, None) == 2
    assert minute() == []  # two failures in a row: paused instead of enqueueing
    state = store.states(["flaky"])["flaky"]
    assert state.paused and state.failures == 2
    assert "last 2 runs failed" in (state.reason or "")
    assert minute() == [] and minute() == []
    assert len(dummy.results) == 2

    assert store.resume("flaky", clock())
    assert not store.states(["flaky"])["flaky"].paused
    assert len(minute()) == 1  # resumed: old failures no longer count, missed ticks not run
    assert len(dummy.results) == 3


@pytest.mark.parametrize(
    ("runs", "streak"),
    [
        (["fail", "fail", "fail"], 3),
        (["fail", "fail", "ok"], 0),  # oldest first: the newest run succeeded
        (["ok", "fail", "fail"], 2),
        (["fail", "ok", "fail"], 1),
        (["fail", "fail", "pending"], 2),  # a run not finished yet is passed over
    ],
)
def test_failure_streak(dummy: DummyBackend, runs: list[str], streak: int) -> None:
    schedule = Schedule(name="s", task=tasks.noop, expression="* * * * *", pause_after_failures=5)
    store = MemoryClaimStore(dummy)
    for minute, kind in enumerate(runs):
        task = {"fail": tasks.fail, "ok": tasks.noop, "pending": tasks.noop}[kind]
        result = task.enqueue()
        if kind != "pending":
            dummy.run_pending()
        store._record("s", START + timedelta(minutes=minute), result.id)
    scheduler = Scheduler([schedule], stores={"default": store})
    assert scheduler.failure_streak(schedule, store, None) == streak
    if runs == ["fail", "fail", "fail"]:
        # After a resume only the runs enqueued since count.
        assert scheduler.failure_streak(schedule, store, START + timedelta(minutes=1)) == 1


# -- losing the backend --------------------------------------------------------------------------------


class FlakyStore(ClaimStore):
    """Wraps a store; fails the next ``down`` calls, and can lose a claim's reply after it was
    applied (the worst case: the claim happened but the scheduler does not know)."""

    def __init__(self, inner: ClaimStore) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.down = 0
        self.lose_reply = 0
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise BackendUnavailable("connection refused (simulated)")

    def claim(self, schedule: Schedule, tick: datetime, owner: str, now: datetime) -> Claim:
        self._maybe_fail()
        claim = self.inner.claim(schedule, tick, owner, now)
        if self.lose_reply:
            self.lose_reply -= 1
            raise BackendUnavailable("connection reset while reading the reply (simulated)")
        return claim

    def last_ticks(self, names: Sequence[str]) -> dict[str, datetime]:
        self._maybe_fail()
        return self.inner.last_ticks(names)

    def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        self._maybe_fail()
        return self.inner.states(names)

    def recent_task_ids(self, name: str, count: int, since: datetime | None) -> list[str]:
        return self.inner.recent_task_ids(name, count, since)

    def pause(self, name: str, reason: str, failures: int, now: datetime) -> bool:
        return self.inner.pause(name, reason, failures, now)

    def resume(self, name: str, now: datetime) -> bool:
        return self.inner.resume(name, now)


def test_losing_the_backend_logs_backs_off_and_never_doubles_a_tick(
    dummy: DummyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(MemoryClaimStore(dummy))
    other = Scheduler([minutely()], clock=(clock := SimClock()), stores={"default": flaky.inner})
    scheduler = Scheduler([minutely()], clock=clock, stores={"default": flaky})
    delays = []
    with caplog.at_level(logging.INFO, "taskyard.cron"):
        assert scheduler.step() > 0  # first pass: nothing due yet
        clock.advance(timedelta(minutes=1))
        flaky.down = 3
        for _ in range(3):
            delays.append(scheduler.step())
        assert dummy.results == []
        flaky.lose_reply = 1
        delays.append(scheduler.step())  # claimed and enqueued, but the reply was "lost"
        assert len(dummy.results) == 1
        other.run_pending()  # another scheduler meanwhile: finds the tick taken
        scheduler.step()  # reconnected: retries the tick, finds it claimed
        clock.advance(timedelta(minutes=1))
        scheduler.step()
    assert delays == [0.5, 1.0, 2.0, 4.0]  # exponential backoff
    assert "backend unavailable (connection refused (simulated)); retrying in 0.5s" in caplog.text
    assert "backend reachable again" in caplog.text
    assert Counter(r.args[0] for r in dummy.results) == {"m": 2}  # 12:01 and 12:02, once each
    assert scheduler.failures == 0


def test_backoff_is_capped(dummy: DummyBackend) -> None:
    flaky = FlakyStore(MemoryClaimStore(dummy))
    scheduler = Scheduler([minutely()], clock=SimClock(), stores={"default": flaky}, max_backoff=5)
    flaky.down = 10
    assert [scheduler.step() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5, 5]


def test_step_sleeps_until_the_next_tick(dummy: DummyBackend) -> None:
    clock = SimClock(START + timedelta(seconds=15))
    scheduler = Scheduler([minutely()], clock=clock)
    assert scheduler.step() == 45.0
    assert Scheduler([], clock=clock).step() == 60.0  # nothing declared: idle


def test_a_failing_enqueue_is_logged_and_does_not_stop_the_others(
    dummy: DummyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    bad = Schedule(name="bad", task=tasks.record, expression="* * * * *", args=["bad"])
    good = minutely("good")

    class Refusing(MemoryClaimStore):
        def claim(self, schedule: Schedule, tick: datetime, owner: str, now: datetime) -> Claim:
            if schedule.name == "bad":
                raise RuntimeError("refused")
            return super().claim(schedule, tick, owner, now)

    clock = SimClock()
    scheduler = Scheduler([bad, good], clock=clock, stores={"default": Refusing(dummy)})
    run_for(scheduler, clock, 2)
    assert [r.args[0] for r in dummy.results] == ["good"]
    assert "cron schedule 'bad': enqueueing tests.tasks.record for tick" in caplog.text


def test_check_names_the_schedule_whose_task_cannot_go_to_its_backend(
    dummy: DummyBackend,
) -> None:
    elsewhere = Schedule(
        name="elsewhere", task=tasks.noop.using(backend="missing"), expression="@daily"
    )
    with pytest.raises(InvalidSchedule, match=r"'elsewhere'.*no task backend with alias 'missing'"):
        Scheduler([elsewhere]).check()
    taskyard.configure(
        {"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend", "QUEUES": ["default"]}}
    )
    wrong_queue = Schedule(
        name="wrong-queue", task=tasks.noop.using(queue_name="emails"), expression="@daily"
    )
    with pytest.raises(InvalidSchedule, match=r"'wrong-queue'.*queue 'emails'"):
        Scheduler([wrong_queue]).check()
    Scheduler([minutely()]).check()
