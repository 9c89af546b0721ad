"""``Scheduler``: the loop that enqueues each due tick of each schedule, exactly once.

Each pass (``run_pending()``) looks at the schedules whose next tick has come, reads from the
claim store the newest tick any scheduler claimed and the paused state, picks the ticks to run
by the schedule's misfire policy and claims each one; the store enqueues the task for the one
claim that wins. The clock is injectable (``clock=``), so tests drive simulated time.

``run()`` repeats passes until ``stop()``; a backend that becomes unreachable
(``BackendUnavailable``) is logged and retried with backoff. Nothing is remembered between
passes that the store does not also know, so a retried pass cannot enqueue a tick twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskyard.backends.base import Backend
from taskyard.cron.claims import Claim, ClaimStore, ScheduleState, store_for
from taskyard.cron.schedule import InvalidSchedule, Schedule
from taskyard.exceptions import (
    BackendUnavailable,
    InvalidTask,
    InvalidTaskBackend,
    TaskResultDoesNotExist,
)
from taskyard.tasks.execution import utcnow
from taskyard.tasks.results import TaskResultStatus, enqueued_by

logger = logging.getLogger("taskyard.cron")

#: Claims on ticks older than this are pruned (each schedule's newest is always kept).
RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)
#: The loop never sleeps longer than this, so a clock jump is noticed soon.
MAX_SLEEP = 60.0


def default_scheduler_id() -> str:
    return f"cron:{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Handled:
    """One tick a pass handled: the claim's result for ``(schedule, tick)``."""

    schedule: str
    tick: datetime
    claim: Claim


class Scheduler:
    """Enqueue the ticks of ``schedules`` (default: every declared schedule) when due.

    ``clock()`` returns the current aware datetime; ``stores`` maps backend aliases to claim
    stores (default: the store of each alias's configured backend). Several schedulers, in
    this or other processes, may run over the same store: each tick is enqueued once.
    """

    def __init__(
        self,
        schedules: Iterable[Schedule] | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        stores: Mapping[str, ClaimStore] | None = None,
        scheduler_id: str | None = None,
        max_backoff: float = 30.0,
        retention: timedelta = RETENTION,
    ) -> None:
        if schedules is None:
            from taskyard.cron.registry import schedules as declared

            schedules = declared()
        self.schedules = sorted(schedules, key=lambda s: s.name)
        names = [s.name for s in self.schedules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidSchedule(f"two cron schedules are named {duplicates[0]!r}")
        self.clock = clock
        self.scheduler_id = scheduler_id or default_scheduler_id()
        self.max_backoff = max_backoff
        self.retention = retention
        self._stores: dict[str, ClaimStore] = dict(stores or {})
        self._cursor: dict[str, datetime] = {}
        self._next: dict[str, datetime | None] = {}
        self._last_prune: datetime | None = None
        self._stop = threading.Event()
        self.failures = 0  # consecutive passes that hit BackendUnavailable

    # -- setup ----------------------------------------------------------------------------------

    def store(self, alias: str) -> ClaimStore:
        """The claim store for the backend alias ``alias``."""
        store = self._stores.get(alias)
        if store is None:
            from taskyard.config import backends

            store = self._stores[alias] = store_for(backends[alias])
        return store

    def backend(self, schedule: Schedule) -> Backend:
        return self.store(schedule.task.backend).backend

    def check(self) -> None:
        """Fail now (``InvalidSchedule``) if a schedule's task cannot go to its backend."""
        for schedule in self.schedules:
            try:
                self.backend(schedule).validate_task(schedule.task)
            except (InvalidTask, InvalidTaskBackend) as exc:
                raise InvalidSchedule(f"cron schedule {schedule.name!r}: {exc}") from exc

    # -- one pass --------------------------------------------------------------------------------

    def run_pending(self) -> list[Handled]:
        """Claim (and so enqueue) every tick due now; return what was handled."""
        now = self.clock()
        due = [s for s in self.schedules if self._is_due(s, now)]
        handled: list[Handled] = []
        by_alias: dict[str, list[Schedule]] = {}
        for schedule in due:
            by_alias.setdefault(schedule.task.backend, []).append(schedule)
        for alias, group in by_alias.items():
            store = self.store(alias)
            names = [s.name for s in group]
            last = store.last_ticks(names)
            states = store.states(names)
            for schedule in group:
                state = states.get(schedule.name, ScheduleState())
                handled.extend(self._run(schedule, store, last.get(schedule.name), state, now))
        self._prune(now)
        return handled

    def _is_due(self, schedule: Schedule, now: datetime) -> bool:
        if schedule.name not in self._cursor:
            return True  # not synchronised with the store yet
        upcoming = self._next.get(schedule.name)
        return upcoming is not None and upcoming <= now

    def _run(
        self,
        schedule: Schedule,
        store: ClaimStore,
        last: datetime | None,
        state: ScheduleState,
        now: datetime,
    ) -> list[Handled]:
        name = schedule.name
        known = [t for t in (self._cursor.get(name), last, state.resumed_at) if t is not None]
        after = max(known) if known else now  # nothing known: start from now, not the past
        if state.paused:
            self._advance(schedule, max(after, now))
            return []
        ticks = schedule.due_ticks(after, now)
        if ticks:
            self._log_misfire(schedule, after, ticks)
            if schedule.pause_after_failures and self._should_pause(schedule, store, state, now):
                self._advance(schedule, max(after, now))
                return []
        handled = []
        for tick in ticks:
            try:
                with enqueued_by(self.scheduler_id):
                    claim = store.claim(schedule, tick, self.scheduler_id, now)
            except BackendUnavailable:
                raise  # retried by the caller; nothing is recorded as done
            except Exception:
                logger.exception(
                    "cron schedule %r: enqueueing %s for tick %s failed; tick dropped",
                    name,
                    schedule.task.module_path,
                    tick.isoformat(),
                )
                continue
            handled.append(Handled(name, tick, claim))
            if claim.claimed and claim.task_id is not None:
                logger.info(
                    "cron schedule %r: enqueued %s for %s as %s",
                    name,
                    schedule.task.module_path,
                    tick.astimezone(schedule.tz).isoformat(),
                    claim.task_id,
                )
            elif claim.claimed:
                logger.warning(
                    "cron schedule %r: tick %s not enqueued: %s",
                    name,
                    tick.isoformat(),
                    claim.detail,
                )
            else:
                logger.debug("cron schedule %r: tick %s taken by another scheduler", name, tick)
        self._advance(schedule, max(after, now))
        return handled

    def _advance(self, schedule: Schedule, cursor: datetime) -> None:
        self._cursor[schedule.name] = cursor
        self._next[schedule.name] = schedule.next_tick(cursor)

    def _log_misfire(self, schedule: Schedule, after: datetime, ticks: list[datetime]) -> None:
        first = schedule.next_tick(after)
        if first is not None and first < ticks[0]:
            logger.warning(
                "cron schedule %r: ticks from %s to before %s were missed; policy %s runs %d",
                schedule.name,
                first.isoformat(),
                ticks[0].isoformat(),
                schedule.misfire,
                len(ticks),
            )

    # -- pausing ---------------------------------------------------------------------------------

    def failure_streak(self, schedule: Schedule, store: ClaimStore, since: datetime | None) -> int:
        """How many of the schedule's newest finished runs FAILED in a row (since ``since``)."""
        wanted = schedule.pause_after_failures or 1
        backend = self.backend(schedule)
        streak = 0
        for task_id in store.recent_task_ids(schedule.name, wanted + 5, since):
            try:
                result = backend.get_result(task_id)
            except (TaskResultDoesNotExist, NotImplementedError):
                break
            if not result.is_finished:
                continue  # still running: look at older runs
            if result.status is not TaskResultStatus.FAILED:
                break
            streak += 1
            if streak >= wanted:
                break
        return streak

    def _should_pause(
        self, schedule: Schedule, store: ClaimStore, state: ScheduleState, now: datetime
    ) -> bool:
        wanted = schedule.pause_after_failures or 0
        streak = self.failure_streak(schedule, store, state.resumed_at)
        if streak < wanted:
            return False
        reason = f"its last {streak} runs failed (pause_after_failures={wanted})"
        if store.pause(schedule.name, reason, streak, now):
            logger.error(
                "cron schedule %r paused: %s; resume it with `taskyard cron --resume %s`",
                schedule.name,
                reason,
                schedule.name,
            )
        return True

    # -- housekeeping ----------------------------------------------------------------------------

    def _prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        for store in list(self._stores.values()):
            try:
                store.prune(now - self.retention)
            except BackendUnavailable:
                raise
            except Exception:  # pragma: no cover - pruning never stops the scheduler
                logger.exception("cron: pruning old claims in %s failed", store.describe())

    def next_due(self) -> datetime | None:
        """The earliest next tick over every schedule (``None``: nothing ever due)."""
        upcoming = [t for t in self._next.values() if t is not None]
        if any(s.name not in self._cursor for s in self.schedules):
            return self.clock()
        return min(upcoming) if upcoming else None

    # -- the loop --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to return after the current pass."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Run passes until ``stop()``; back off and retry while the backend is unreachable."""
        logger.info(
            "cron scheduler %s starting with %d schedule(s): %s",
            self.scheduler_id,
            len(self.schedules),
            ", ".join(s.name for s in self.schedules) or "(none)",
        )
        while not self._stop.is_set():
            delay = self.step()
            self._stop.wait(delay)
        logger.info("cron scheduler %s stopped", self.scheduler_id)

    def step(self) -> float:
        """One pass with error handling; return the seconds to wait before the next one."""
        try:
            self.run_pending()
        except BackendUnavailable as exc:
            self.failures += 1
            delay = min(self.max_backoff, 0.5 * 2.0 ** min(self.failures - 1, 16))
            logger.warning(
                "cron scheduler %s: backend unavailable (%s); retrying in %.1fs",
                self.scheduler_id,
                exc,
                delay,
            )
            return delay
        if self.failures:
            logger.info("cron scheduler %s: backend reachable again", self.scheduler_id)
            self.failures = 0
        upcoming = self.next_due()
        if upcoming is None:
            return MAX_SLEEP
        wait = (upcoming - self.clock()).total_seconds()
        return float(min(MAX_SLEEP, max(0.0, wait)))

    def close(self) -> None:
        for store in self._stores.values():
            store.close()


__all__ = ["Handled", "Scheduler", "default_scheduler_id"]
