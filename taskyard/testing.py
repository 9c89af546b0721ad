"""Helpers for testing code that enqueues tasks.

Configure the Dummy backend in your tests (``configure(url="dummy:")``, or the
``dummy_backend()`` context manager), call your code, then::

    from taskyard import testing

    results = testing.assert_enqueued(send_email, args=["a@example.com", "hi"])
    testing.run_enqueued()                 # run what was enqueued, in priority order
    assert results[0].status == "SUCCESSFUL"
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from taskyard.backends.dummy import DummyBackend
from taskyard.config import backends, override
from taskyard.tasks.results import TaskResult
from taskyard.tasks.task import Task

_MISSING: Any = object()


def get_dummy(alias: str = "default") -> DummyBackend:
    """The Dummy backend configured under ``alias`` (``AssertionError`` if it is another kind)."""
    backend = backends[alias]
    if not isinstance(backend, DummyBackend):
        raise AssertionError(
            f"backend {alias!r} is {type(backend).__name__}, not DummyBackend; configure "
            "taskyard with url='dummy:' (or use taskyard.testing.dummy_backend()) in tests"
        )
    return backend


@contextmanager
def dummy_backend(
    queues: Sequence[str] | None = None, alias: str = "default"
) -> Iterator[DummyBackend]:
    """Inside the block, ``alias`` (and ``default``) is a fresh Dummy backend."""
    entry: dict[str, Any] = {"BACKEND": "taskyard.backends.dummy.DummyBackend"}
    if queues is not None:
        entry["QUEUES"] = list(queues)
    settings = {"default": entry, alias: entry}
    with override(settings):
        yield get_dummy(alias)


def enqueued(task: Task[Any, Any] | None = None, alias: str = "default") -> list[TaskResult[Any]]:
    """Results enqueued on the Dummy backend, optionally only those of ``task``."""
    results = get_dummy(alias).results
    if task is None:
        return results
    return [r for r in results if r.task.module_path == task.module_path]


def assert_enqueued(
    task: Task[Any, Any],
    *,
    args: Sequence[Any] = _MISSING,
    kwargs: Mapping[str, Any] = _MISSING,
    count: int | None = None,
    alias: str = "default",
) -> list[TaskResult[Any]]:
    """Assert ``task`` was enqueued (with these arguments, ``count`` times); return the matches."""
    candidates = enqueued(task, alias)
    matches = [
        r
        for r in candidates
        if (args is _MISSING or r.args == list(args))
        and (kwargs is _MISSING or r.kwargs == dict(kwargs))
    ]
    wanted = "" if args is _MISSING else f" with args={list(args)!r}"
    wanted += "" if kwargs is _MISSING else f" kwargs={dict(kwargs)!r}"
    if (count is None and not matches) or (count is not None and len(matches) != count):
        seen = (
            "\n".join(
                f"  - {r.task.module_path} args={r.args!r} kwargs={r.kwargs!r} status={r.status}"
                for r in get_dummy(alias).results
            )
            or "  (nothing)"
        )
        expected = "at least once" if count is None else f"{count} time(s)"
        raise AssertionError(
            f"expected {task.module_path}{wanted} enqueued {expected}, found {len(matches)}. "
            f"Enqueued:\n{seen}"
        )
    return matches


def assert_not_enqueued(task: Task[Any, Any], alias: str = "default") -> None:
    """Assert ``task`` was not enqueued at all."""
    found = enqueued(task, alias)
    if found:
        raise AssertionError(
            f"expected {task.module_path} not to be enqueued, but it was {len(found)} time(s): "
            + ", ".join(f"args={r.args!r} kwargs={r.kwargs!r}" for r in found)
        )


def run_enqueued(
    task: Task[Any, Any] | None = None,
    *,
    include_deferred: bool = False,
    qualifiers: Mapping[str, str] | None = None,
    alias: str = "default",
) -> list[TaskResult[Any]]:
    """Run the tasks waiting in the Dummy backend, as a worker would; return those finished.

    Higher priority first; tasks they enqueue run too; retries run back to back. Deferred
    tasks (``run_after`` in the future) wait unless ``include_deferred`` is true.
    """
    return get_dummy(alias).run_pending(
        task=task, include_deferred=include_deferred, qualifiers=qualifiers
    )


def clear(alias: str = "default") -> None:
    """Forget everything the Dummy backend recorded."""
    get_dummy(alias).clear()
