"""``Schedule``: one periodic enqueue of a task, and the ticks it is due at.

A schedule is a cron expression (five fields, or an alias such as ``@daily``) evaluated in a
``zoneinfo`` time zone, or a fixed interval (``every``) counted from an anchor. Its *ticks* are
the instants (aware, UTC) it is due at; they are a pure function of the schedule, so every
scheduler process computes the same ticks and the claim on ``(schedule name, tick)`` decides
which of them enqueues the task. Cron expressions are parsed and iterated by ``cronsim``
(``pip install 'taskyard[cron]'``); DST rules are described in ``docs/cron.md``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskyard.exceptions import InvalidTask
from taskyard.tasks.serialization import normalize_arguments
from taskyard.tasks.task import Task

#: Missed-tick policies (see ``docs/cron.md``).
RUN_ONCE = "run_once"
CATCH_UP = "catch_up"
SKIP = "skip"
MISFIRE_POLICIES = (RUN_ONCE, CATCH_UP, SKIP)

DEFAULT_MAX_CATCH_UP = 100
DEFAULT_MISFIRE_GRACE = timedelta(seconds=60)
MAX_NAME_LENGTH = 200
#: Interval schedules without ``start`` count from here, so every process agrees on the ticks.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# How far back ``latest_ticks`` looks before it walks all the way from ``after``.
_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=366))


class InvalidSchedule(InvalidTask):
    """A schedule cannot be declared as written; the message names the schedule."""


def _cronsim(where: str) -> Any:
    try:
        import cronsim
    except ImportError as exc:
        raise InvalidSchedule(
            f"{where}: cron expressions need cronsim: pip install 'taskyard[cron]'"
        ) from exc
    return cronsim


def zone(name: str, where: str) -> tzinfo:
    """The time zone called ``name`` (``datetime.UTC`` for UTC), or ``InvalidSchedule``."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(
            f"{where}: unknown timezone {name!r} (use an IANA name such as 'Europe/Paris')"
        ) from exc


def parse_every(value: object, where: str) -> timedelta:
    """An interval from a ``timedelta``, seconds, or text such as ``"90s"``, ``"5m"``, ``"1d"``."""
    if isinstance(value, timedelta):
        every = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        every = timedelta(seconds=value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)
        if not match:
            raise InvalidSchedule(
                f"{where}: every={value!r} is not an interval: use a timedelta, seconds, or "
                "text such as '90s', '5m', '2h', '1d', '1w'"
            )
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2) or "s"]
        every = timedelta(seconds=float(match.group(1)) * unit)
    else:
        raise InvalidSchedule(
            f"{where}: every must be a timedelta or a number of seconds, got {value!r}"
        )
    if every < timedelta(seconds=1):
        raise InvalidSchedule(f"{where}: every must be at least 1 second, got {every}")
    return every


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """When to enqueue ``task``, with which arguments.

    Exactly one of ``expression`` (cron, evaluated in ``timezone``) and ``every`` (an interval
    counted from ``start``, or from the Unix epoch) is set. ``misfire`` says what happens to
    ticks missed while no scheduler ran: ``"run_once"`` (default: one run for all of them),
    ``"catch_up"`` (each of them, at most ``max_catch_up``) or ``"skip"`` (none; a tick counts
    as missed once it is older than ``misfire_grace``). ``pause_after_failures=N`` pauses the
    schedule once its last N finished runs all FAILED. Invalid values raise
    ``InvalidSchedule`` naming the schedule.
    """

    name: str
    task: Task[Any, Any]
    expression: str | None = None
    every: timedelta | None = None
    start: datetime | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    misfire: str = RUN_ONCE
    max_catch_up: int = DEFAULT_MAX_CATCH_UP
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE
    pause_after_failures: int | None = None
    source: str = "code"
    # derived
    _cron: str | None = field(init=False, compare=False, repr=False, default=None)
    _tz: tzinfo = field(init=False, compare=False, repr=False, default=UTC)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidSchedule(f"a schedule name must be a non-empty string, got {self.name!r}")
        if len(self.name) > MAX_NAME_LENGTH or any(c.isspace() for c in self.name):
            raise InvalidSchedule(
                f"schedule name {self.name!r} must be at most {MAX_NAME_LENGTH} characters "
                "without spaces"
            )
        where = f"cron schedule {self.name!r}"
        if not isinstance(self.task, Task):
            raise InvalidSchedule(f"{where}: {self.task!r} is not a task")
        if self.task.run_after is not None or self.task.depends_on is not None:
            raise InvalidSchedule(
                f"{where}: the task {self.task.module_path} carries run_after or depends_on, "
                "which a periodic run cannot use"
            )
        if not isinstance(self.timezone, str):
            key = getattr(self.timezone, "key", None)
            if not isinstance(key, str):
                raise InvalidSchedule(
                    f"{where}: timezone must be an IANA name or a ZoneInfo, got {self.timezone!r}"
                )
            set_(self, "timezone", key)
        set_(self, "_tz", zone(self.timezone, where))
        if (self.expression is None) == (self.every is None):
            raise InvalidSchedule(
                f"{where}: give either a cron expression or every=timedelta(...), not "
                + ("both" if self.expression is not None else "neither")
            )
        if self.expression is not None:
            set_(self, "_cron", _check_expression(self.expression, where))
            if self.start is not None:
                raise InvalidSchedule(f"{where}: start only applies to every=... schedules")
        else:
            set_(self, "every", parse_every(self.every, where))
            if self.start is not None:
                if not isinstance(self.start, datetime):
                    raise InvalidSchedule(f"{where}: start must be an aware datetime")
                if self.start.tzinfo is None or self.start.utcoffset() is None:
                    raise InvalidSchedule(
                        f"{where}: start={self.start.isoformat()} is a naive datetime; pass an "
                        "aware one (datetime(..., tzinfo=ZoneInfo('Europe/Paris')))"
                    )
                set_(self, "start", self.start.astimezone(UTC))
        if isinstance(self.args, str | bytes) or not isinstance(self.args, Sequence):
            raise InvalidSchedule(f"{where}: args must be a list or tuple, got {self.args!r}")
        if not isinstance(self.kwargs, Mapping):
            raise InvalidSchedule(f"{where}: kwargs must be a dict, got {self.kwargs!r}")
        try:
            args, kwargs = normalize_arguments(self.args, self.kwargs, where)
        except InvalidTask as exc:
            raise InvalidSchedule(str(exc)) from None
        set_(self, "args", tuple(args))
        set_(self, "kwargs", kwargs)
        if self.misfire not in MISFIRE_POLICIES:
            raise InvalidSchedule(
                f"{where}: misfire must be one of {', '.join(MISFIRE_POLICIES)}, "
                f"got {self.misfire!r}"
            )
        if not _whole(self.max_catch_up) or self.max_catch_up < 1:
            raise InvalidSchedule(
                f"{where}: max_catch_up must be a whole number >= 1, got {self.max_catch_up!r}"
            )
        grace = self.misfire_grace
        if isinstance(grace, int | float) and not isinstance(grace, bool):
            grace = timedelta(seconds=grace)
        if not isinstance(grace, timedelta) or grace <= timedelta(0):
            raise InvalidSchedule(
                f"{where}: misfire_grace must be a positive timedelta or seconds, got {grace!r}"
            )
        set_(self, "misfire_grace", grace)
        n = self.pause_after_failures
        if n is not None and (not _whole(n) or n < 1):
            raise InvalidSchedule(
                f"{where}: pause_after_failures must be a whole number >= 1 or None, got {n!r}"
            )

    # -- describing ---------------------------------------------------------------------------

    @property
    def tz(self) -> tzinfo:
        """The schedule's time zone."""
        return self._tz

    def describe(self) -> str:
        """``"*/5 * * * * (Europe/Paris)"`` or ``"every 0:05:00 from 1970-01-01 00:00 UTC"``."""
        if self.expression is not None:
            shown = self.expression
            if self._cron != self.expression:
                shown += f" = {self._cron}"
            return f"{shown} ({self.timezone})"
        anchor = self.start or EPOCH
        return f"every {self.every} from {anchor.astimezone(self._tz):%Y-%m-%d %H:%M:%S %Z}"

    # -- ticks --------------------------------------------------------------------------------

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        """The ticks strictly after ``after``, ascending, as aware UTC datetimes."""
        after = after.astimezone(UTC)
        if self.every is not None:
            anchor = self.start or EPOCH
            k = 0 if after < anchor else (after - anchor) // self.every + 1
            while True:
                yield anchor + k * self.every
                k += 1
        assert self._cron is not None
        cronsim = _cronsim(f"cron schedule {self.name!r}")
        # cronsim works in the schedule's zone; fixed-time expressions are evaluated on the
        # wall clock (which may map a tick before ``after`` in a repeated hour): drop those.
        for local in cronsim.CronSim(self._cron, after.astimezone(self._tz)):
            tick = local.astimezone(UTC)
            if tick > after:
                yield tick

    def next_tick(self, after: datetime) -> datetime | None:
        """The first tick after ``after`` (``None`` if the expression never matches again)."""
        return next(self.ticks_after(after), None)

    def next_ticks(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` ticks after ``after``."""
        out: list[datetime] = []
        for tick in self.ticks_after(after):
            if len(out) >= count:
                break
            out.append(tick)
        return out

    def latest_ticks(self, after: datetime, until: datetime, count: int) -> list[datetime]:
        """The (at most ``count``) most recent ticks in ``(after, until]``, ascending."""
        if until <= after:
            return []
        if self.every is not None:
            anchor = self.start or EPOCH
            if until < anchor:
                return []
            last = anchor + ((until - anchor) // self.every) * self.every
            out: list[datetime] = []
            tick = last
            while tick > after and tick >= anchor and len(out) < count:
                out.append(tick)
                tick -= self.every
            return out[::-1]
        for window in (*_WINDOWS, None):
            start = after if window is None else max(after, until - window)
            found: deque[datetime] = deque(maxlen=count)
            for tick in self.ticks_after(start):
                if tick > until:
                    break
                found.append(tick)
            if len(found) >= count or start == after:
                return list(found)
        return []  # pragma: no cover - the last window always returns

    def due_ticks(self, after: datetime, now: datetime) -> list[datetime]:
        """The ticks in ``(after, now]`` to enqueue now, after the misfire policy.

        ``run_once``: the latest of them (missed ticks collapse into one run); ``catch_up``: each
        of them, the most recent ``max_catch_up``; ``skip``: only those younger than
        ``misfire_grace``.
        """
        if self.misfire == RUN_ONCE:
            return self.latest_ticks(after, now, 1)
        if self.misfire == SKIP:
            after = max(after, now - self.misfire_grace)
        return self.latest_ticks(after, now, self.max_catch_up)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_expression(expression: object, where: str) -> str:
    """The five-field form of ``expression`` (aliases expanded), checked by cronsim."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule(f"{where}: the cron expression must be a string, got {expression!r}")
    text = " ".join(expression.split())
    lowered = text.lower()
    if lowered.startswith("@"):
        if lowered not in ALIASES:
            raise InvalidSchedule(
                f"{where}: unknown cron alias {expression!r}; known aliases are "
                f"{', '.join(sorted(ALIASES))}"
            )
        text = ALIASES[lowered]
    fields = text.split()
    if len(fields) != 5:
        raise InvalidSchedule(
            f"{where}: invalid cron expression {expression!r}: it has {len(fields)} field(s), "
            "expected 5 (minute hour day-of-month month day-of-week)"
        )
    cronsim = _cronsim(where)
    try:
        first = next(cronsim.CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)), None)
    except cronsim.CronSimError as exc:
        raise InvalidSchedule(f"{where}: invalid cron expression {expression!r}: {exc}") from None
    if first is None:
        raise InvalidSchedule(f"{where}: cron expression {expression!r} never matches")
    return text
