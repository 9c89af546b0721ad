"""The Redis claim store: one key per ``(schedule, tick)``, set with the rq job in one MULTI.

Keys (in the Redis database of the schedule's ``RedisBackend``):

- ``taskyard:cron:tick:<schedule>:<tick>``: the claim; its value is the job id (``-`` when the
  tick was claimed but the task's limit was reached). It expires after ``CLAIM_TTL``.
- ``taskyard:cron:last``: sorted set, schedule -> newest claimed tick (epoch seconds).
- ``taskyard:cron:runs:<schedule>``: list of ``<epoch>|<job id>``, newest first (100 kept).
- ``taskyard:cron:state:<schedule>``: hash with the paused state.

The claim is taken under ``WATCH`` of its key: the transaction that sets it also stores the rq
job (through the backend's own job-building code), so either both exist or neither does, and a
scheduler that lost its connection during ``EXEC`` finds the claim (or not) when it retries.
There is no crash window in which a tick is claimed but its job missing, or the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from taskyard.backends.redis.keys import as_str, limit_key
from taskyard.cron.claims import LIMITED, Claim, ClaimStore, ScheduleState
from taskyard.exceptions import BackendUnavailable, TaskLimitError

if TYPE_CHECKING:
    from taskyard.backends.redis.backend import RedisBackend
    from taskyard.cron.schedule import Schedule

T = TypeVar("T")

PREFIX = "taskyard:cron:"
LAST_KEY = f"{PREFIX}last"
#: How long a claim key lives. Schedulers re-read the newest claimed tick (kept without expiry)
#: before claiming, so a claim only has to outlive the moment between that read and the claim.
CLAIM_TTL = timedelta(days=7)
RUNS_KEPT = 100
_ATTEMPTS = 50


def claim_key(name: str, tick: datetime) -> str:
    return f"{PREFIX}tick:{name}:{tick.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"


def runs_key(name: str) -> str:
    return f"{PREFIX}runs:{name}"


def state_key(name: str) -> str:
    return f"{PREFIX}state:{name}"


def _time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def _parse(value: Any) -> datetime | None:
    text = as_str(value)
    return datetime.fromisoformat(text) if text else None


class RedisClaimStore(ClaimStore):
    """Claims in the Redis database of a ``RedisBackend``."""

    def __init__(self, backend: RedisBackend, ttl: timedelta = CLAIM_TTL) -> None:
        self.backend = backend
        self.redis_backend = backend
        self.ttl = ttl

    def _client(self) -> Any:
        return self.redis_backend.connection()

    def _guard(self, call: Callable[..., T], *args: Any) -> T:
        """Redis being unreachable becomes ``BackendUnavailable`` (the backend's own rule)."""
        return self.redis_backend._guard(call, *args)

    # -- claiming ---------------------------------------------------------------------------------

    def claim(self, schedule: Schedule, tick: datetime, owner: str, now: datetime) -> Claim:
        return self._guard(self._claim, schedule, tick)

    def _claim(self, schedule: Schedule, tick: datetime) -> Claim:
        from redis.exceptions import WatchError

        backend = self.redis_backend
        task = schedule.task
        backend.validate_task(task)
        result = backend.new_result(task, schedule.args, schedule.kwargs, normalized=True)
        key = claim_key(schedule.name, tick)
        limit = task.effective_limit_key
        watched = [key] if limit is None else [key, limit_key(limit)]
        for _ in range(_ATTEMPTS):
            with self._client().pipeline() as pipe:
                try:
                    pipe.watch(*watched)
                    if pipe.exists(key):
                        return Claim(False, detail="claimed already")
                    stale: list[str] = []
                    if limit is not None:
                        try:
                            stale = backend.check_limit(pipe, task, limit)
                        except TaskLimitError as exc:
                            pipe.multi()
                            self._mark(pipe, schedule.name, tick, "-", None)
                            pipe.execute()
                            return Claim(True, None, LIMITED, str(exc))
                    job = backend.build_job(result)
                    pipe.multi()
                    self._mark(pipe, schedule.name, tick, result.id, result.id)
                    backend.queue_job_commands(pipe, job, result)
                    if limit is not None:
                        if stale:
                            pipe.srem(limit_key(limit), *stale)
                        pipe.sadd(limit_key(limit), result.id)
                    pipe.execute()
                except WatchError:
                    continue
            backend.announce_enqueued_results([result])
            return Claim(True, result.id)
        raise BackendUnavailable(
            f"could not claim {schedule.name!r} at {tick.isoformat()}: Redis kept changing"
        )

    def _mark(self, pipe: Any, name: str, tick: datetime, value: str, task_id: str | None) -> None:
        pipe.set(claim_key(name, tick), value, ex=int(self.ttl.total_seconds()))
        pipe.zadd(LAST_KEY, {name: tick.timestamp()}, gt=True)
        if task_id is not None:
            pipe.lpush(runs_key(name), f"{tick.timestamp()}|{task_id}")
            pipe.ltrim(runs_key(name), 0, RUNS_KEPT - 1)

    # -- reading ----------------------------------------------------------------------------------

    def last_ticks(self, names: Sequence[str]) -> dict[str, datetime]:
        def read() -> list[Any]:
            with self._client().pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zscore(LAST_KEY, name)
                return list(pipe.execute())

        scores = self._guard(read)
        return {
            name: datetime.fromtimestamp(score, UTC)
            for name, score in zip(names, scores, strict=True)
            if score is not None
        }

    def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        def read() -> list[Any]:
            with self._client().pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(state_key(name))
                return list(pipe.execute())

        replies = self._guard(read)
        return {name: _state(fields) for name, fields in zip(names, replies, strict=True) if fields}

    def recent_task_ids(self, name: str, count: int, since: datetime | None) -> list[str]:
        entries = self._guard(self._client().lrange, runs_key(name), 0, RUNS_KEPT - 1)
        out: list[str] = []
        for entry in entries:
            stamp, _, task_id = (as_str(entry) or "").partition("|")
            if since is not None and float(stamp) <= since.timestamp():
                continue
            out.append(task_id)
            if len(out) >= count:
                break
        return out

    # -- pause and resume -------------------------------------------------------------------------

    def pause(self, name: str, reason: str, failures: int, now: datetime) -> bool:
        fields = {"paused": "1", "paused_at": _time(now), "reason": reason, "failures": failures}
        return self._guard(self._switch, name, True, fields)

    def resume(self, name: str, now: datetime) -> bool:
        fields = {"paused": "0", "resumed_at": _time(now), "failures": 0}
        return self._guard(self._switch, name, False, fields)

    def _switch(self, name: str, pause: bool, fields: dict[str, Any]) -> bool:
        """Set ``fields`` if the schedule is not already in the wanted state (atomically)."""
        from redis.exceptions import WatchError

        key = state_key(name)
        for _ in range(_ATTEMPTS):
            with self._client().pipeline() as pipe:
                try:
                    pipe.watch(key)
                    paused = as_str(pipe.hget(key, "paused")) == "1"
                    if paused == pause:
                        return False
                    pipe.multi()
                    pipe.hset(key, mapping=fields)
                    pipe.execute()
                    return True
                except WatchError:
                    continue
        raise BackendUnavailable(f"could not update the state of {name!r}: Redis kept changing")


def _state(fields: dict[bytes, bytes]) -> ScheduleState:
    def get(name: str) -> str | None:
        return as_str(fields.get(name.encode()))

    return ScheduleState(
        paused=get("paused") == "1",
        paused_at=_parse(get("paused_at")),
        reason=get("reason") or None,
        failures=int(get("failures") or 0),
        resumed_at=_parse(get("resumed_at")),
    )
