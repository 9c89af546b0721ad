"""fullctl's ``Setting`` qualifier: a task that only workers with the right Django settings claim.

::

    from taskyard.contrib.django.qualifiers import Setting

    @task(qualifiers=[Setting("IMPORTANT_SETTING", True),
                      Setting("IMPORTANT_LIST", lambda value: "xyz" in value)])
    def sync_region() -> None: ...

A worker claims the task only when its own ``settings.IMPORTANT_SETTING == True`` and
``"xyz" in settings.IMPORTANT_LIST`` (a missing setting never qualifies; a predicate must
return a bool, as in fullctl). How it maps onto the queue's qualifier matching (a task's
qualifiers must all be among the worker's):

* ``Setting(NAME, value)`` is stored as ``{"setting:NAME": <value as canonical JSON>}``; every
  worker adds ``setting:NAME`` = its own value as canonical JSON for every ``Setting`` declared
  in the task modules it imported, so equal values match.
* ``Setting(NAME, predicate)`` is stored as ``{"setting:NAME@<task path>#<n>": "true"}`` (``n``:
  the qualifier's position in the task's list); a worker evaluates each declared predicate once
  at start and adds the key when it holds. Predicates are code: declare them on the task
  (``@task(qualifiers=...)``), where both the enqueuing process and the worker see them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskyard.exceptions import InvalidTask

PREFIX = "setting:"
_MISSING = object()

_lock = threading.Lock()
#: every Setting qualifier bound to a task in this process, by its qualifier key
_declared: dict[str, Setting] = {}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Setting:
    """Requires the worker's Django setting ``name`` to equal ``value`` or, when ``value`` is
    callable, ``value(setting)`` to return True."""

    name: str
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidTask(f"Setting qualifier: {self.name!r} is not a setting name")
        if not callable(self.value):
            try:
                _canonical(self.value)
            except (TypeError, ValueError):
                raise InvalidTask(
                    f"Setting({self.name!r}, ...): the expected value must be JSON "
                    f"(or a predicate), got {type(self.value).__name__}"
                ) from None

    @property
    def is_predicate(self) -> bool:
        return callable(self.value)

    def as_qualifier(self, task_path: str, index: int) -> tuple[str, str]:
        """The (key, value) stored with the task (called when the task is declared)."""
        if self.is_predicate:
            key, expected = f"{PREFIX}{self.name}@{task_path}#{index}", "true"
        else:
            key, expected = f"{PREFIX}{self.name}", _canonical(self.value)
        with _lock:
            known = _declared.get(key)
            if known is None or not known.is_predicate:
                _declared[key] = self
            elif known != self:
                raise InvalidTask(
                    f"qualifier {index} of {task_path} is a Setting({self.name!r}, <predicate>) "
                    "other than the one declared on the task: predicates are matched by their "
                    "place in @task(qualifiers=[...]), so give them there"
                )
        return key, expected

    def check(self, settings: Any) -> bool:
        """Whether ``settings`` (Django's) satisfy this qualifier."""
        current = getattr(settings, self.name, _MISSING)
        if current is _MISSING:
            return False
        if self.is_predicate:
            predicate: Callable[[Any], Any] = self.value
            answer = predicate(current)
            if not isinstance(answer, bool):
                raise TypeError(
                    f"Setting({self.name!r}, predicate): the predicate returned "
                    f"{type(answer).__name__}, not a bool"
                )
            return answer
        try:
            return _canonical(current) == _canonical(self.value)
        except (TypeError, ValueError):
            return False


def worker_qualifiers(settings: Any = None) -> dict[str, str]:
    """The qualifiers a worker with these Django settings meets, for every ``Setting``
    declared on the tasks imported so far (workers compute them after importing task modules).
    """
    if settings is None:
        from django.conf import settings as django_settings

        settings = django_settings
    with _lock:
        declared = dict(_declared)
    own: dict[str, str] = {}
    for key, setting in declared.items():
        if setting.is_predicate:
            if setting.check(settings):
                own[key] = "true"
            continue
        current = getattr(settings, setting.name, _MISSING)
        if current is _MISSING:
            continue
        try:
            own[key] = _canonical(current)
        except (TypeError, ValueError):
            continue
    return own


def qualifier_flags(settings: Any = None) -> list[str]:
    """``--qualifier KEY=VALUE`` arguments for ``worker_qualifiers()``."""
    flags: list[str] = []
    for key, value in sorted(worker_qualifiers(settings).items()):
        flags += ["--qualifier", f"{key}={value}"]
    return flags
