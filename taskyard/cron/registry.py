"""Declared schedules: the ``@cron`` decorator and schedules from the settings.

Two layers, kept apart so the order of imports does not matter:

- *code*: ``@cron(...)`` stacked above ``@task`` registers a ``Schedule`` at import time. Two
  different schedules with the same name are an error (``InvalidSchedule``).
- *settings*: a ``CRON`` dict in the settings module (or ``configure_schedules(dict)``). An
  entry named like a code schedule overrides the fields it gives (``"enabled": False`` turns the
  schedule off); other entries declare new schedules and must name their ``task``.

``schedules()`` merges both into the effective list the scheduler runs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, TypeVar

from taskyard.cron.schedule import (
    DEFAULT_MAX_CATCH_UP,
    DEFAULT_MISFIRE_GRACE,
    RUN_ONCE,
    InvalidSchedule,
    Schedule,
    parse_every,
)
from taskyard.tasks.registry import TaskNotFound, as_task, import_task
from taskyard.tasks.task import compute_module_path

T = TypeVar("T")

#: Keys a settings entry may carry.
SETTINGS_KEYS = (
    "task",
    "schedule",
    "every",
    "start",
    "args",
    "kwargs",
    "timezone",
    "misfire",
    "max_catch_up",
    "misfire_grace",
    "pause_after_failures",
    "enabled",
)


@dataclass
class ScheduleRegistry:
    """The schedules declared in this process (code layer and settings layer)."""

    code: dict[str, Schedule] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings_source: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    def add(self, schedule: Schedule) -> None:
        """Register a code schedule; a different one under the same name is an error."""
        with self.lock:
            existing = self.code.get(schedule.name)
            if existing is not None and not _same(existing, schedule):
                raise InvalidSchedule(
                    f"two cron schedules are named {schedule.name!r} "
                    f"({existing.task.module_path}: {existing.describe()} and "
                    f"{schedule.task.module_path}: {schedule.describe()}): give one of them "
                    "another name with @cron(..., name='...')"
                )
            self.code[schedule.name] = schedule

    def configure(self, entries: Mapping[str, Any] | None, source: str = "settings") -> None:
        """Replace the settings layer with ``entries`` (checked now, merged in ``all()``)."""
        if entries is None:
            entries = {}
        if not isinstance(entries, Mapping):
            raise InvalidSchedule(
                f"{source}: CRON must be a dict of schedule name -> entry, got "
                f"{type(entries).__name__}"
            )
        checked: dict[str, dict[str, Any]] = {}
        for name, entry in entries.items():
            fields = _settings_fields(name, entry, source)
            if "task" in fields and fields.get("enabled", True):
                _build(name, fields, None, source)  # fail now, not when the scheduler starts
            checked[name] = fields
        with self.lock:
            self.settings = checked
            self.settings_source = source

    def all(self) -> list[Schedule]:
        """The effective schedules (code merged with settings), sorted by name."""
        with self.lock:
            code = dict(self.code)
            settings = dict(self.settings)
            source = self.settings_source
        out = {name: s for name, s in code.items() if name not in settings}
        for name, fields in settings.items():
            if not fields.get("enabled", True):
                continue
            out[name] = _build(name, fields, code.get(name), source)
        return [out[name] for name in sorted(out)]

    def get(self, name: str) -> Schedule | None:
        return next((s for s in self.all() if s.name == name), None)


def _same(a: Schedule, b: Schedule) -> bool:
    """The same declaration seen twice (a module imported again, or reloaded)."""
    return a.task.module_path == b.task.module_path and replace(a, task=b.task) == b


_registry = ScheduleRegistry()


def current() -> ScheduleRegistry:
    """The registry ``@cron`` declares into."""
    return _registry


@contextmanager
def isolated() -> Iterator[ScheduleRegistry]:
    """An empty registry for the duration of a ``with`` block (tests), then the old one back."""
    global _registry
    saved, _registry = _registry, ScheduleRegistry()
    try:
        yield _registry
    finally:
        _registry = saved


def schedules() -> list[Schedule]:
    """Every effective schedule declared in this process, sorted by name."""
    return _registry.all()


def get_schedule(name: str) -> Schedule | None:
    """The effective schedule called ``name``, if any."""
    return _registry.get(name)


def configure_schedules(entries: Mapping[str, Any] | None, source: str = "configure") -> None:
    """Declare schedules from a settings-style dict (replacing earlier settings entries).

    ``{"name": {"task": "module.function", "schedule": "*/5 * * * *", "args": [...],
    "timezone": "Europe/Paris"}}``; see ``docs/cron.md`` for every key.
    """
    _registry.configure(entries, source)


def load_settings_module(module_name: str | None) -> bool:
    """Load the ``CRON`` dict of an (already imported) settings module, if it has one."""
    if not module_name:
        return False
    module = sys.modules.get(module_name)
    entries = getattr(module, "CRON", None)
    if entries is None:
        return False
    configure_schedules(entries, f"settings module {module_name}")
    return True


# -- the decorator ---------------------------------------------------------------------------------


def cron(
    expression: str | None = None,
    /,
    *,
    every: timedelta | float | str | None = None,
    start: datetime | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    timezone: str | tzinfo = "UTC",
    name: str | None = None,
    misfire: str = RUN_ONCE,
    max_catch_up: int = DEFAULT_MAX_CATCH_UP,
    misfire_grace: timedelta | float = DEFAULT_MISFIRE_GRACE,
    pause_after_failures: int | None = None,
) -> Callable[[T], T]:
    """Run a task periodically. Stack it above ``@task``::

        @cron("*/5 * * * *", timezone="Europe/Paris")
        @task
        def cleanup() -> None: ...

        @cron(every=timedelta(minutes=10), args=["eu"], name="sync-eu")
        @task
        def sync(region: str) -> None: ...

    ``expression`` is five cron fields (names such as ``MON`` and ``JAN`` allowed) or an alias
    (``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``). ``every``
    is an interval counted from ``start`` (an aware datetime; default the Unix epoch, so ticks
    are aligned). The schedule's name defaults to the task's module path. The task object is
    returned unchanged. Mistakes raise ``InvalidSchedule`` naming the schedule.
    """
    tz_name = timezone if isinstance(timezone, str) else getattr(timezone, "key", timezone)

    def register(obj: T) -> T:
        declared = as_task(obj)
        label = name
        if label is None:
            func: Any = getattr(obj, "func", obj)
            try:
                label = compute_module_path(func)
            except AttributeError:
                label = repr(obj)
        if declared is None:
            raise InvalidSchedule(
                f"cron schedule {label!r}: @cron must be stacked above @task; "
                f"{label} is a {type(obj).__name__}, not a task"
            )
        schedule = Schedule(
            name=declared.module_path if name is None else name,
            task=declared,
            expression=expression,
            every=every,  # type: ignore[arg-type]  # checked and converted by Schedule
            start=start,
            args=args,
            kwargs=kwargs or {},
            timezone=tz_name,  # type: ignore[arg-type]
            misfire=misfire,
            max_catch_up=max_catch_up,
            misfire_grace=misfire_grace,  # type: ignore[arg-type]
            pause_after_failures=pause_after_failures,
            source=f"@cron in {declared.module_path}",
        )
        _registry.add(schedule)
        return obj

    return register


# -- settings entries ---------------------------------------------------------------------------


def _settings_fields(name: object, entry: object, source: str) -> dict[str, Any]:
    """Check one settings entry's keys and convert its values to ``Schedule`` fields."""
    if not isinstance(name, str) or not name:
        raise InvalidSchedule(f"{source}: CRON keys are schedule names (strings), got {name!r}")
    where = f"cron schedule {name!r} ({source})"
    if not isinstance(entry, Mapping):
        raise InvalidSchedule(f"{where}: the entry must be a dict, got {entry!r}")
    unknown = sorted(set(entry) - set(SETTINGS_KEYS))
    if unknown:
        raise InvalidSchedule(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys are "
            f"{', '.join(SETTINGS_KEYS)}"
        )
    fields: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "schedule":
            fields["expression"] = value
        elif key == "every":
            fields["every"] = parse_every(value, where)
        elif key == "start":
            fields["start"] = _parse_start(value, where)
        elif key == "enabled":
            if not isinstance(value, bool):
                raise InvalidSchedule(f"{where}: enabled must be True or False, got {value!r}")
            fields["enabled"] = value
        elif key == "task":
            if not isinstance(value, str) or "." not in value:
                raise InvalidSchedule(
                    f"{where}: task must be a module path such as 'app.tasks.cleanup', "
                    f"got {value!r}"
                )
            fields["task"] = value
        elif key == "misfire_grace" and not isinstance(value, timedelta):
            fields["misfire_grace"] = parse_every(value, where)
        else:
            fields[key] = value
    if "expression" in fields and "every" in fields:
        raise InvalidSchedule(f"{where}: give either schedule or every, not both")
    return fields


def _parse_start(value: object, where: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidSchedule(
        f"{where}: start must be an aware datetime or ISO 8601 text with an offset "
        f"('2026-01-01T06:00:00+01:00'), got {value!r}"
    )


def _build(name: str, fields: dict[str, Any], base: Schedule | None, source: str) -> Schedule:
    """The schedule a settings entry declares (over ``base``, the code schedule it overrides)."""
    where = f"cron schedule {name!r} ({source})"
    values = {k: v for k, v in fields.items() if k not in ("enabled", "task")}
    if "task" in fields:
        try:
            task = import_task(fields["task"])
        except TaskNotFound as exc:
            raise InvalidSchedule(f"{where}: {exc}") from None
    elif base is not None:
        task = base.task
    else:
        raise InvalidSchedule(
            f"{where}: no task given, and no schedule of that name is declared in code "
            "(add 'task': 'module.function', or import the module that declares it)"
        )
    values["task"] = task
    values["source"] = source
    if base is not None:
        if "expression" in values:
            values.update(every=None, start=None)
        elif "every" in values:
            values["expression"] = None
        return replace(base, **values)
    values.setdefault("kwargs", {})
    return Schedule(name=name, **values)
