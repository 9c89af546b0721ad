"""The task declaration: decorator forms, immutability, options and bad input."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskyard import InvalidTask, Task, TaskContext, task
from taskyard.tasks import registry
from taskyard.tasks.registry import TaskNotFound, resolve
from tests import tasks


def plain(x: int) -> int:
    return x


def test_bare_and_called_decorator() -> None:
    bare = task(plain)
    called = task(priority=5, queue_name="emails", retries=2, timeout=3)(plain)
    assert isinstance(bare, Task) and isinstance(called, Task)
    assert bare.priority == 0 and bare.queue_name == "default" and bare.backend == "default"
    assert (called.priority, called.queue_name, called.retries, called.timeout) == (
        5,
        "emails",
        2,
        3,
    )
    assert bare.name == "plain"
    assert bare.module_path == "tests.unit.test_task_model.plain"
    assert bare.call(7) == 7


def test_task_is_immutable_and_using_copies() -> None:
    original = tasks.add
    changed = original.using(priority=10, queue_name="other", retries=4, timeout=1.5)
    assert changed is not original
    assert (original.priority, original.queue_name, original.retries) == (0, "default", 0)
    assert (changed.priority, changed.queue_name, changed.retries, changed.timeout) == (
        10,
        "other",
        4,
        1.5,
    )
    assert changed.func is original.func
    with pytest.raises(dataclasses.FrozenInstanceError):
        original.priority = 3  # type: ignore[misc]


def test_using_run_after_timedelta_becomes_aware_datetime() -> None:
    before = datetime.now(UTC)
    deferred = tasks.add.using(run_after=timedelta(minutes=5))
    assert deferred.run_after is not None and deferred.run_after.tzinfo is not None
    assert deferred.run_after - before >= timedelta(minutes=5)


def test_using_depends_on_accepts_result_or_id() -> None:
    class FakeResult:
        id = "abc"

    assert tasks.add.using(depends_on=FakeResult()).depends_on == "abc"
    assert tasks.add.using(depends_on="xyz").depends_on == "xyz"
    with pytest.raises(InvalidTask, match="depends_on"):
        tasks.add.using(depends_on=42)


def test_call_and_acall_run_sync_and_async() -> None:
    import asyncio

    assert tasks.add.call(1, 2) == 3
    assert tasks.async_add.call(1, 2) == 3
    assert asyncio.run(tasks.add.acall(2, 2)) == 4
    assert asyncio.run(tasks.async_add.acall(2, 2)) == 4


def test_context_parameter_is_required_with_takes_context() -> None:
    def no_context(x: int) -> int:
        return x

    globals()["no_context"] = no_context
    no_context.__qualname__ = "no_context"
    with pytest.raises(InvalidTask, match="first parameter must be named 'context'"):
        task(takes_context=True)(no_context)


def test_lambda_is_refused() -> None:
    with pytest.raises(InvalidTask, match="module level"):
        task(lambda: None)


def test_nested_function_is_refused() -> None:
    def nested() -> None:
        return None

    with pytest.raises(InvalidTask, match=r"test_nested_function_is_refused.<locals>.nested"):
        task(nested)


def test_method_and_callable_object_are_refused() -> None:
    class Thing:
        def method(self) -> None:
            return None

        def __call__(self) -> None:
            return None

    with pytest.raises(InvalidTask):
        task(Thing().method)
    with pytest.raises(InvalidTask):
        task(Thing())
    with pytest.raises(InvalidTask):
        task(print)


def test_unknown_option_lists_valid_keys() -> None:
    with pytest.raises(
        InvalidTask, match=r"unknown task option\(s\) 'retires'.*valid options are:.*retries"
    ):
        task(retires=3)(plain)
    with pytest.raises(InvalidTask, match="unknown task option"):
        tasks.add.using(colour="red")


def test_depends_on_in_decorator_points_to_using() -> None:
    with pytest.raises(InvalidTask, match=r"task.using\(depends_on=result\)"):
        task(depends_on="x")(plain)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("priority", 101, "priority"),
        ("priority", -101, "priority"),
        ("priority", 2.5, "whole number"),
        ("priority", "1", "whole number"),
        ("retries", -1, "retries"),
        ("retries", 1.5, "retries"),
        ("retries", "3", "retries"),
        ("retry_backoff", -1, "retry_backoff"),
        ("retry_backoff", "fast", "retry_backoff"),
        ("retry_on", "ValueError", "retry_on"),
        ("retry_on", (ValueError, 3), "retry_on"),
        ("timeout", 0, "timeout"),
        ("timeout", -5, "timeout"),
        ("timeout", "60", "timeout"),
        ("limit", 0, "limit"),
        ("limit", 1.5, "limit"),
        ("limit_key", "", "limit_key"),
        ("qualifiers", "eu", "qualifiers"),
        ("qualifiers", {"region": 3}, "qualifiers"),
        ("queue_name", "", "queue_name"),
        ("queue_name", 5, "queue_name"),
        # what no store can hold (issue 11, item 9)
        ("timeout", float("nan"), "timeout .* finite"),
        ("timeout", float("inf"), "timeout .* finite"),
        ("timeout", 1e10, "timeout .* at most 31536000 seconds"),
        ("timeout", True, "timeout"),
        ("retry_backoff", float("inf"), "retry_backoff .* finite"),
        ("retry_backoff", float("nan"), "retry_backoff .* finite"),
        ("retry_backoff", 1e12, "retry_backoff .* at most"),
        ("retry_backoff_max", float("inf"), "retry_backoff_max .* finite"),
        ("retries", 10**12, "retries .* from 0 to 100000"),
        ("limit", 10**12, "limit .* from 1 to 1000000"),
        ("queue_name", "q" * 101, "queue_name .* 101 characters long; the limit is 100"),
        ("queue_name", "emails\x00", "queue_name .* NUL character"),
        ("queue_name", "\ud800", "queue_name .* lone surrogate"),
        ("backend", "b" * 101, "backend .* 101 characters"),
        ("qualifiers", {"region": "eu\x00"}, "qualifiers .* NUL"),
        ("qualifiers", {"\udc80": "eu"}, "qualifiers .* lone surrogate"),
    ],
)
def test_option_of_the_wrong_type_or_range(option: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        task(**{option: value})(plain)


def test_limit_key_and_depends_on_text_is_checked() -> None:
    with pytest.raises(InvalidTask, match="limit_key .* NUL"):
        task(limit=1, limit_key="tenant\x00")(plain)
    with pytest.raises(InvalidTask, match="depends_on .* lone surrogate"):
        task(plain).using(depends_on="\ud800")


def test_run_after_too_far_ahead_is_invalid_task_not_overflow() -> None:
    with pytest.raises(InvalidTask, match="year 9999"):
        task(plain).using(run_after=timedelta(days=10**7))


def test_enqueued_by_identity_must_fit_the_column() -> None:
    from taskyard.tasks.results import enqueued_by

    with pytest.raises(InvalidTask, match="200"):
        enqueued_by("u" * 201).__enter__()
    with pytest.raises(InvalidTask, match="NUL"):
        enqueued_by("user\x00").__enter__()


def test_limit_key_without_limit() -> None:
    with pytest.raises(InvalidTask, match="limit_key .* but limit is not"):
        task(limit_key="k")(plain)


def test_retry_on_single_class_becomes_tuple_and_qualifiers_normalise() -> None:
    declared = task(retry_on=KeyError, qualifiers={"b": "2", "a": "1"})(plain)
    assert declared.retry_on == (KeyError,)
    assert declared.qualifiers == (("a", "1"), ("b", "2"))


def test_effective_limit_key_defaults_to_module_path() -> None:
    assert tasks.unique_job.effective_limit_key == "tests.tasks.unique_job"
    assert tasks.unique_job.using(limit_key="k").effective_limit_key == "k"
    assert tasks.add.effective_limit_key is None


def test_resolve_finds_tasks_and_refuses_everything_else() -> None:
    assert resolve("tests.tasks.add") is tasks.add
    with pytest.raises(TaskNotFound, match="not a task"):
        resolve("os.system")
    with pytest.raises(TaskNotFound, match="not a task"):
        resolve("tests.tasks.not_a_task")
    with pytest.raises(TaskNotFound, match="may not import on demand"):
        resolve("no_such_module_xyz.task")
    registry.allow_imports(["no_such_module_xyz"])
    with pytest.raises(TaskNotFound, match="cannot import module 'no_such_module_xyz'"):
        resolve("no_such_module_xyz.task")
    with pytest.raises(TaskNotFound, match="has no attribute"):
        resolve("tests.tasks.missing")
    with pytest.raises(TaskNotFound, match="module path"):
        resolve("justaname")


def test_context_type_is_exported() -> None:
    assert TaskContext.__name__ == "TaskContext"
