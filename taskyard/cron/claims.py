"""Claim stores: where schedulers agree on who enqueues each ``(schedule, tick)``.

A claim store lives in the store of the backend the schedule's task goes to:

- Database backend: the ``taskyard_cron_tick`` table. The claim row (primary key schedule +
  tick) and the task row are inserted in one transaction, so a tick is enqueued exactly once
  and a crash can neither lose nor double it.
- Redis backend: a claim key per tick, set in the same MULTI/EXEC transaction that stores the
  rq job (``taskyard.cron.redis_claims``).
- Immediate, Dummy, ThreadPool: an in-memory claim set shared by the schedulers of this
  process (those backends have no store another process could see).

Every store also keeps the newest claimed tick per schedule (missed-tick handling starts from
it), the ids of recent runs (for ``pause_after_failures``) and the paused state.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskyard.backends.base import Backend
from taskyard.exceptions import InvalidTaskBackend, TaskLimitError

if TYPE_CHECKING:
    from taskyard.backends.database.backend import DatabaseBackend
    from taskyard.backends.database.connectors import Connector
    from taskyard.cron.schedule import Schedule

ENQUEUED = "enqueued"
LIMITED = "limited"


@dataclass(frozen=True)
class Claim:
    """What ``claim()`` did: ``claimed`` is True for the one caller that took the tick;
    ``task_id`` is the task it enqueued (``None`` if taken elsewhere or not enqueued)."""

    claimed: bool
    task_id: str | None = None
    outcome: str = ENQUEUED
    detail: str = ""


@dataclass(frozen=True)
class ScheduleState:
    """A schedule's shared state: paused (and why), and when it was last resumed."""

    paused: bool = False
    paused_at: datetime | None = None
    reason: str | None = None
    failures: int = 0
    resumed_at: datetime | None = None


class ClaimStore(ABC):
    """The operations a scheduler needs from the store of one backend."""

    backend: Backend

    def describe(self) -> str:
        return f"{type(self).__name__} for backend {self.backend.alias!r}"

    @abstractmethod
    def claim(self, schedule: Schedule, tick: datetime, owner: str, now: datetime) -> Claim:
        """Claim ``(schedule, tick)`` and enqueue the schedule's task if this call got it.

        Idempotent: once a tick is claimed, every later call returns ``claimed=False``. A
        task whose ``limit`` is reached is not enqueued, but the tick still counts as claimed
        (``outcome="limited"``).
        """

    @abstractmethod
    def last_ticks(self, names: Sequence[str]) -> dict[str, datetime]:
        """The newest claimed tick of each named schedule that has one."""

    @abstractmethod
    def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        """The stored state of each named schedule that has one."""

    @abstractmethod
    def recent_task_ids(self, name: str, count: int, since: datetime | None) -> list[str]:
        """Ids of the tasks enqueued for the newest ``count`` ticks after ``since``, newest
        first."""

    @abstractmethod
    def pause(self, name: str, reason: str, failures: int, now: datetime) -> bool:
        """Pause a schedule; True if this call paused it (False if it was paused already)."""

    @abstractmethod
    def resume(self, name: str, now: datetime) -> bool:
        """Resume a paused schedule (ticks before ``now`` are not run); True if it was paused."""

    def prune(self, before: datetime) -> int:
        """Forget claims on ticks before ``before`` (keeping each schedule's newest)."""
        return 0

    def close(self) -> None:
        """Release connections (the backend's own are left alone)."""


# -- in memory -------------------------------------------------------------------------------------


class MemoryClaimStore(ClaimStore):
    """Claims in this process, for backends without a shared store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._claims: dict[tuple[str, datetime], str | None] = {}
        self._last: dict[str, datetime] = {}
        self._runs: dict[str, list[tuple[datetime, str]]] = {}
        self._states: dict[str, ScheduleState] = {}

    def claim(self, schedule: Schedule, tick: datetime, owner: str, now: datetime) -> Claim:
        key = (schedule.name, tick)
        with self._lock:
            if key in self._claims:
                return Claim(False, detail="claimed already")
            self._claims[key] = None
        try:
            # Outside the lock: the Immediate backend runs the task inside enqueue().
            result = self.backend.enqueue(schedule.task, schedule.args, schedule.kwargs)
        except TaskLimitError as exc:
            self._record(schedule.name, tick, None)
            return Claim(True, None, LIMITED, str(exc))
        except BaseException:
            with self._lock:
                self._claims.pop(key, None)
            raise
        self._record(schedule.name, tick, result.id)
        return Claim(True, result.id)

    def _record(self, name: str, tick: datetime, task_id: str | None) -> None:
        with self._lock:
            self._claims[(name, tick)] = task_id
            if name not in self._last or self._last[name] < tick:
                self._last[name] = tick
            if task_id is not None:
                runs = self._runs.setdefault(name, [])
                runs.append((tick, task_id))
                runs.sort()
                del runs[:-100]

    def last_ticks(self, names: Sequence[str]) -> dict[str, datetime]:
        with self._lock:
            return {n: self._last[n] for n in names if n in self._last}

    def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        with self._lock:
            return {n: self._states[n] for n in names if n in self._states}

    def recent_task_ids(self, name: str, count: int, since: datetime | None) -> list[str]:
        with self._lock:
            runs = [r for r in self._runs.get(name, []) if since is None or r[0] > since]
        return [task_id for _, task_id in reversed(runs[-count:])]

    def pause(self, name: str, reason: str, failures: int, now: datetime) -> bool:
        with self._lock:
            state = self._states.get(name, ScheduleState())
            if state.paused:
                return False
            self._states[name] = ScheduleState(True, now, reason, failures, state.resumed_at)
            return True

    def resume(self, name: str, now: datetime) -> bool:
        with self._lock:
            state = self._states.get(name)
            if state is None or not state.paused:
                return False
            self._states[name] = ScheduleState(resumed_at=now)
            return True

    def prune(self, before: datetime) -> int:
        with self._lock:
            old = [k for k in self._claims if k[1] < before and self._last.get(k[0]) != k[1]]
            for key in old:
                del self._claims[key]
            return len(old)


_memory_stores: weakref.WeakKeyDictionary[Backend, MemoryClaimStore] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def memory_store(backend: Backend) -> MemoryClaimStore:
    """The in-memory store shared by every scheduler of this process for ``backend``."""
    with _memory_lock:
        store = _memory_stores.get(backend)
        if store is None:
            store = _memory_stores[backend] = MemoryClaimStore(backend)
        return store


# -- database --------------------------------------------------------------------------------------


class DatabaseClaimStore(ClaimStore):
    """Claims in the ``taskyard_cron_*`` tables of a Database backend (schema version 2)."""

    def __init__(self, backend: DatabaseBackend) -> None:
        self.backend = backend
        self.db = backend

    @property
    def c(self) -> Connector:
        return self.db.connector

    def claim(self, schedule: Schedule, tick: datetime, owner: str, now: datetime) -> Claim:
        c = self.c
        params = {
            "schedule": schedule.name,
            "tick": c.time(tick),
            "owner": owner,
            "now": c.time(now),
        }

        def take(connector: Connector, task_id: str) -> bool:
            rows = connector.run("cron_claim", {**params, "task_id": task_id, "outcome": ENQUEUED})
            return bool(rows)

        try:
            result = self.db.enqueue_claimed(schedule.task, schedule.args, schedule.kwargs, take)
        except TaskLimitError as exc:
            with c.transaction():
                rows = c.run("cron_claim", {**params, "task_id": None, "outcome": LIMITED})
            if not rows:
                return Claim(False, detail="claimed already")
            return Claim(True, None, LIMITED, str(exc))
        if result is None:
            return Claim(False, detail="claimed already")
        return Claim(True, result.id)

    def last_ticks(self, names: Sequence[str]) -> dict[str, datetime]:
        c = self.c
        rows = c.run_retrying("cron_last_ticks", {"names": c.text_list(list(names))})
        out: dict[str, datetime] = {}
        for row in rows:
            tick = c.parse_time(row["tick"])
            if tick is not None:
                out[row["schedule"]] = tick
        return out

    def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        c = self.c
        rows = c.run_retrying("cron_states", {"names": c.text_list(list(names))})
        return {row["schedule"]: self._state(row) for row in rows}

    def paused(self) -> dict[str, ScheduleState]:
        """Every paused schedule recorded in this database (for ``taskyard status``)."""
        return {row["schedule"]: self._state(row) for row in self.c.run_retrying("cron_paused", {})}

    def _state(self, row: dict[str, Any]) -> ScheduleState:
        c = self.c
        return ScheduleState(
            paused=bool(row["paused"]),
            paused_at=c.parse_time(row["paused_at"]),
            reason=row["reason"],
            failures=int(row["failures"]),
            resumed_at=c.parse_time(row["resumed_at"]),
        )

    def recent_task_ids(self, name: str, count: int, since: datetime | None) -> list[str]:
        c = self.c
        rows = c.run_retrying(
            "cron_recent", {"schedule": name, "since": c.time(since), "limit": count}
        )
        return [str(row["task_id"]) for row in rows]

    def pause(self, name: str, reason: str, failures: int, now: datetime) -> bool:
        c = self.c
        params = {"schedule": name, "reason": reason, "failures": failures, "now": c.time(now)}
        with c.transaction():
            return bool(c.run("cron_pause", params))

    def resume(self, name: str, now: datetime) -> bool:
        c = self.c
        with c.transaction():
            return bool(c.run("cron_resume", {"schedule": name, "now": c.time(now)}))

    def prune(self, before: datetime) -> int:
        c = self.c
        with c.transaction():
            rows = c.run("cron_prune", {"before": c.time(before)})
        return len(rows)


def store_for(backend: Backend) -> ClaimStore:
    """The claim store that goes with ``backend`` (see the module docstring)."""
    from taskyard.backends.database.backend import DatabaseBackend

    if isinstance(backend, DatabaseBackend):
        return DatabaseClaimStore(backend)
    from taskyard.backends.memory import InMemoryBackend

    if isinstance(backend, InMemoryBackend):
        return memory_store(backend)
    from taskyard.backends.redis.backend import RedisBackend

    if isinstance(backend, RedisBackend):
        from taskyard.cron.redis_claims import RedisClaimStore

        return RedisClaimStore(backend)
    raise InvalidTaskBackend(
        f"backend {backend.alias!r} ({type(backend).__name__}) has no cron claim store: "
        "schedules can enqueue to the Database, Redis, Immediate, Dummy and ThreadPool backends"
    )
