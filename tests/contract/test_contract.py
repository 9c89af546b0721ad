"""Behaviour every backend shares. Each test runs once per backend in ``BACKENDS``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import taskyard
from taskyard import (
    InvalidTask,
    InvalidTaskArguments,
    TaskLimitError,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
)
from tests import tasks
from tests.contract.conftest import Harness

S = TaskResultStatus


def test_enqueue_returns_a_result_with_every_field(harness: Harness) -> None:
    before = datetime.now(UTC)
    result = tasks.echo.enqueue(1, (2, 3), key={"nested": [True, None]})
    assert isinstance(result.id, str) and len(result.id) >= 32
    assert result.task.module_path == "tests.tasks.echo"
    assert result.task.name == "echo"
    assert result.args == [1, [2, 3]]  # tuples become lists
    assert result.kwargs == {"key": {"nested": [True, None]}}
    assert result.backend == "default"
    assert result.enqueued_at is not None and result.enqueued_at >= before
    assert result.enqueued_at.tzinfo is not None
    assert result.enqueued_by and ":" in result.enqueued_by
    if harness.runs_inline:
        assert result.status is S.SUCCESSFUL
    else:
        assert result.status in (S.READY, S.RUNNING, S.SUCCESSFUL)
    harness.wait(result)
    assert result.status is S.SUCCESSFUL
    assert result.return_value == {"args": [1, [2, 3]], "kwargs": {"key": {"nested": [True, None]}}}


def test_successful_run_records_timestamps_and_worker(harness: Harness) -> None:
    result = harness.wait(tasks.add.enqueue(2, 3))
    assert result.status is S.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 5
    assert result.errors == []
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at  # type: ignore[operator]
    assert result.last_attempted_at == result.started_at


def test_return_value_before_finishing_raises(harness: Harness) -> None:
    with harness.hold():
        result = tasks.add.enqueue(1, 1)
        assert not result.is_finished
        with pytest.raises(ValueError, match="not finished"):
            result.return_value  # noqa: B018


def test_failure_records_error_with_traceback(harness: Harness) -> None:
    result = harness.wait(tasks.fail.enqueue("kaput"))
    assert result.status is S.FAILED
    assert result.is_finished
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "kaput" in error.traceback and "def fail" not in error.traceback
    assert "in fail" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


def test_retries_until_success(harness: Harness) -> None:
    result = harness.wait(tasks.flaky.enqueue(3))
    assert result.status is S.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 2


def test_retries_exhausted_fail(harness: Harness) -> None:
    result = harness.wait(tasks.always_fails.enqueue())
    assert result.status is S.FAILED
    assert result.attempts == 3  # first run + retries=2
    assert len(result.errors) == 3


def test_retry_on_limits_which_errors_retry(harness: Harness) -> None:
    result = harness.wait(tasks.fails_with_value_error.enqueue())
    assert result.status is S.FAILED
    assert result.attempts == 1


def test_retry_backoff_delays_the_next_attempt(harness: Harness) -> None:
    if harness.runs_inline or harness.name == "dummy":
        pytest.skip("inline and dummy backends retry back to back by design")
    task = tasks.flaky.using(retry_backoff=0.4)
    result = harness.wait(task.enqueue(2))
    assert result.status is S.SUCCESSFUL
    # jitter scales the 0.4 s base into [0.2, 0.4]
    assert result.finished_at - result.started_at >= timedelta(seconds=0.19)  # type: ignore[operator]


def test_timeout_stops_the_task(harness: Harness) -> None:
    started = time.monotonic()
    result = harness.wait(tasks.too_slow.enqueue(5.0))
    assert time.monotonic() - started < 4
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert "timeout of 0.3s" in result.errors[-1].traceback


def test_timeout_is_not_swallowed_by_except_exception(harness: Harness) -> None:
    started = time.monotonic()
    result = harness.wait(tasks.swallows_exceptions.enqueue(5.0))
    assert time.monotonic() - started < 4
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"


def test_timed_out_task_retries_after_it_stopped(harness: Harness) -> None:
    result = harness.wait(tasks.too_slow.using(retries=1, retry_backoff=0).enqueue(5.0))
    assert result.status is S.FAILED
    assert result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == [
        "taskyard.exceptions.TaskTimeout"
    ] * 2


def test_async_task_runs_and_times_out(harness: Harness) -> None:
    ok = harness.wait(tasks.async_add.enqueue(20, 22))
    assert ok.status is S.SUCCESSFUL and ok.return_value == 42
    slow = harness.wait(tasks.async_too_slow.enqueue())
    assert slow.status is S.FAILED
    assert slow.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"


def test_async_tasks_run_concurrently(harness: Harness) -> None:
    if harness.runs_inline or harness.name == "dummy" or not harness.async_overlap:
        pytest.skip(f"the {harness.name} backend runs async tasks one at a time by design")
    results = [tasks.async_span.enqueue(0.5) for _ in range(20)]
    for result in results:
        harness.wait(result)
    spans = [r.return_value for r in results]
    assert all(r.status is S.SUCCESSFUL for r in results)
    first_end = min(end for _, end in spans)
    overlapping = sum(1 for start, _ in spans if start < first_end)
    assert overlapping >= 10, spans  # one at a time, none would start before the first ended


def test_async_task_retries(harness: Harness) -> None:
    result = harness.wait(tasks.async_flaky.enqueue(3))
    assert result.status is S.SUCCESSFUL and result.return_value == 3
    assert [e.message for e in result.errors] == [
        "RuntimeError: attempt 1 failed",
        "RuntimeError: attempt 2 failed",
    ]


def test_async_task_progress(harness: Harness) -> None:
    result = harness.wait(tasks.async_with_progress.enqueue(3))
    assert result.status is S.SUCCESSFUL
    assert result.progress is not None and (result.progress.current, result.progress.total) == (
        3,
        3,
    )


def test_cancel_running_async_task_at_its_next_await(harness: Harness) -> None:
    if not harness.async_cancel:
        pytest.skip(f"the {harness.name} backend cannot cancel a running coroutine")
    with harness.background():
        result = tasks.async_sleeps.enqueue(30.0)
        deadline = time.monotonic() + 5
        while result.status is not S.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
            result.refresh()
        started = time.monotonic()
        assert result.cancel() is True
        result.wait(10)
        assert time.monotonic() - started < 8
    assert result.status is S.CANCELLED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.TaskCancelled"


def test_higher_priority_runs_first(harness: Harness) -> None:
    with harness.hold():
        for name, priority in [
            ("low", -5),
            ("mid-1", 0),
            ("high-1", 10),
            ("mid-2", 0),
            ("top", 50),
            ("high-2", 10),
        ]:
            tasks.record_priority.using(priority=priority).enqueue(name)
    harness.drain()
    assert tasks.RUN_LOG == ["top", "high-1", "high-2", "mid-1", "mid-2", "low"]


def test_run_after_defers(harness: Harness) -> None:
    later = tasks.record.using(run_after=timedelta(seconds=0.6))
    if not harness.backend.supports_defer:
        with pytest.raises(InvalidTask, match="run_after.*'default'"):
            later.enqueue("deferred")
        return
    deferred = later.enqueue("deferred")
    now = tasks.record.enqueue("now")
    harness.drain()
    now.wait(5)
    deferred.refresh()
    assert deferred.status is S.READY
    assert tasks.RUN_LOG == ["now"]
    time.sleep(0.7)
    harness.wait(deferred)
    assert deferred.status is S.SUCCESSFUL
    assert deferred.started_at >= deferred.task.run_after  # type: ignore[operator]


def test_run_after_accepts_aware_datetime_and_refuses_naive(harness: Harness) -> None:
    with pytest.raises(InvalidTask, match="naive"):
        tasks.record.using(run_after=datetime.now() + timedelta(seconds=1))
    aware = tasks.record.using(run_after=datetime.now(UTC) - timedelta(seconds=1))
    if harness.backend.supports_defer:
        assert harness.wait(aware.enqueue("past")).status is S.SUCCESSFUL


def test_cancel_pending_task(harness: Harness) -> None:
    with harness.hold():
        result = tasks.record.enqueue("cancelled")
        assert result.cancel() is True
        assert result.status is S.CANCELLED
        assert result.is_finished
    harness.drain()
    result.refresh()
    assert result.status is S.CANCELLED
    assert "cancelled" not in tasks.RUN_LOG
    assert result.cancel() is False
    with pytest.raises(ValueError, match="cancelled"):
        result.return_value  # noqa: B018


def test_cancel_running_task_cooperatively(harness: Harness) -> None:
    with harness.background():
        result = tasks.until_cancelled.enqueue(10.0)
        deadline = time.monotonic() + 5
        while result.status is not S.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
            result.refresh()
        assert result.cancel() is True
        result.wait(10)
    assert result.status is S.CANCELLED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.TaskCancelled"


def test_context_progress_and_attempt(harness: Harness) -> None:
    result = harness.wait(tasks.with_context.enqueue(4))
    assert result.status is S.SUCCESSFUL
    assert result.return_value == {"attempt": 1, "id": result.id}
    assert result.progress is not None
    assert (result.progress.current, result.progress.total) == (4, 4)
    assert result.progress.message == "step 4"
    assert result.progress.fraction == 1.0


def test_depends_on_success_and_failure(harness: Harness) -> None:
    if not harness.backend.supports_depends_on:
        pytest.skip("backend refuses depends_on")
    first = tasks.record.enqueue("first")
    second = tasks.record.using(depends_on=first).enqueue("second")
    harness.wait(second)
    assert second.status is S.SUCCESSFUL
    assert tasks.RUN_LOG == ["first", "second"]

    failed = tasks.fail.enqueue()
    blocked = tasks.record.using(depends_on=failed.id).enqueue("never")
    harness.wait(failed)
    harness.wait(blocked)
    assert blocked.status is S.CANCELLED
    assert "never" not in tasks.RUN_LOG
    assert failed.id in blocked.errors[-1].traceback


def test_depends_on_unknown_result_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidTask, match="depends_on"):
        tasks.record.using(depends_on="00000000-0000-7000-8000-000000000000").enqueue("x")


def test_limit_refuses_extra_pending_runs(harness: Harness) -> None:
    if harness.runs_inline:
        # Nothing stays pending when tasks run inline: the limit never binds.
        assert harness.wait(tasks.unique_job.enqueue("a")).status is S.SUCCESSFUL
        assert harness.wait(tasks.unique_job.enqueue("b")).status is S.SUCCESSFUL
        return
    with harness.hold():
        first = tasks.unique_job.enqueue("a")
        with pytest.raises(TaskLimitError, match="limit 1"):
            tasks.unique_job.enqueue("b")
        other_key = tasks.unique_job.using(limit_key="other").enqueue("c")
    harness.wait(first)
    harness.wait(other_key)
    again = harness.wait(tasks.unique_job.enqueue("d"))
    assert again.status is S.SUCCESSFUL


def test_hooks_fire_in_order(harness: Harness) -> None:
    seen: list[tuple[str, str]] = []

    def on(name: str) -> Any:
        def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
            seen.append((name, task_result.status.value))

        return receiver

    receivers = [on("enqueued"), on("started"), on("finished")]
    hooks = [taskyard.task_enqueued, taskyard.task_started, taskyard.task_finished]
    for hook, receiver in zip(hooks, receivers, strict=True):
        hook.connect(receiver)
    try:
        harness.wait(tasks.add.enqueue(1, 2))
        # A result may read as finished a moment before the worker has run the finished hook.
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        for hook, receiver in zip(hooks, receivers, strict=True):
            hook.disconnect(receiver)
    assert seen == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]


def test_get_result_by_id(harness: Harness) -> None:
    result = harness.wait(tasks.add.enqueue(4, 4))
    fetched = tasks.add.get_result(result.id)
    assert fetched.id == result.id and fetched.return_value == 8
    with pytest.raises(TaskResultMismatch):
        tasks.echo.get_result(result.id)
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result("00000000-0000-7000-8000-000000000000")


def test_non_json_return_value_fails_the_task(harness: Harness) -> None:
    result = harness.wait(tasks.returns_non_json.enqueue())
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.InvalidReturnValue"
    assert "returned a value that cannot be stored" in result.errors[-1].traceback
    assert "pass str" not in result.errors[-1].traceback


def test_an_integer_too_long_for_json_is_refused_everywhere(harness: Harness) -> None:
    # Python refuses to write an int of more than 4300 digits as JSON text: as an argument it
    # raised a raw ValueError at enqueue; as a return value it crashed the Database worker
    # while recording the batch (every task finished in that batch stayed RUNNING).
    with pytest.raises(InvalidTaskArguments, match="more than 4000 digits"):
        tasks.add.enqueue(10**5000, 1)
    with pytest.raises(InvalidTaskArguments, match="more than 4000 digits"):
        tasks.echo.enqueue(n={"x": [10**5000]})
    assert harness.wait(tasks.echo.enqueue(10**3999)).status is S.SUCCESSFUL
    result = harness.wait(tasks.returns_huge_int.enqueue())
    assert result.status is S.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.InvalidReturnValue"
    assert "more than 4000 digits" in result.errors[-1].traceback


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
def test_an_error_or_progress_with_unstorable_text_is_recorded_escaped(
    harness: Harness, kind: str
) -> None:
    # An exception message with a NUL character (bytes decoded from a file) made PostgreSQL
    # refuse the Database worker's completion batch: that task and every task finished with it
    # stayed RUNNING while the worker retried the batch forever.
    escaped = {"nul": "\\x00", "surrogate": "\\ud800"}[kind]
    result = harness.wait(tasks.raises_unstorable_text.enqueue(kind))
    assert result.status is S.FAILED
    assert result.errors[-1].message == f"ValueError: bad {escaped} input"


def test_enqueue_many(harness: Harness) -> None:
    results = taskyard.enqueue_many(tasks.add.prepare(i, i) for i in range(5))
    assert [r.args for r in results] == [[i, i] for i in range(5)]
    for r in results:
        harness.wait(r)
    assert [r.return_value for r in results] == [0, 2, 4, 6, 8]


def test_aenqueue_and_aget_result(harness: Harness) -> None:
    import asyncio

    async def main() -> Any:
        result = await tasks.add.aenqueue(3, 4)
        if not harness.runs_inline:
            await asyncio.to_thread(harness.wait, result)
        await result.wait_async(timeout=10)
        fetched = await tasks.add.aget_result(result.id)
        return fetched.return_value

    assert asyncio.run(main()) == 7


# -- bad input, refused at enqueue ------------------------------------------------------------


def test_non_json_argument_names_type_and_position(harness: Harness) -> None:
    with pytest.raises(InvalidTaskArguments, match=r"args\[1\].*datetime") as info:
        tasks.echo.enqueue(1, datetime.now(UTC))
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidTaskArguments, match=r"keyword argument 'when'.*\['at'\].*set"):
        tasks.echo.enqueue(when={"at": {1, 2}})
    with pytest.raises(InvalidTaskArguments, match="NaN"):
        tasks.echo.enqueue(float("nan"))
    with pytest.raises(InvalidTaskArguments, match="keys must be strings"):
        tasks.echo.enqueue({1: "a"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nul\x00"], r"args\[0\] contains a NUL character"),
        ([{"k": "\ud800"}], r"args\[0\]\['k'\] contains a lone surrogate"),
        ([[[[]]] * 2, "\udfff"], r"args\[1\] contains a lone surrogate"),
    ],
)
def test_text_no_store_can_hold_is_refused_at_enqueue(
    harness: Harness, args: list[Any], message: str
) -> None:
    with pytest.raises(InvalidTaskArguments, match=message):
        tasks.echo.enqueue(*args)
    with pytest.raises(InvalidTaskArguments, match="its name contains a NUL"):
        tasks.echo.enqueue(**{"k\x00": 1})
    assert harness.wait(tasks.add.enqueue(1, 2)).return_value == 3  # the backend is fine


def test_deep_nesting_is_refused_at_enqueue_not_a_recursion_error(harness: Harness) -> None:
    deep: list[Any] = []
    for _ in range(600):
        deep = [deep]
    with pytest.raises(InvalidTaskArguments, match="nested more than 100"):
        tasks.echo.enqueue(deep)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("timeout", 1e10),
        ("retry_backoff", float("nan")),
        ("retry_backoff", float("inf")),
        ("retry_backoff_max", float("inf")),
        ("queue_name", "q" * 10_000),
        ("queue_name", "emails\x00"),
        ("queue_name", "\ud800"),
    ],
)
def test_options_no_store_can_hold_are_refused_before_enqueue(
    harness: Harness, option: str, value: Any
) -> None:
    with pytest.raises(InvalidTask, match=option):
        tasks.add.using(**{option: value}).enqueue(1, 2)


def test_unknown_queue_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidTask, match="queue 'nope'.*QUEUES are \\['default', 'other'\\]"):
        tasks.add.using(queue_name="nope").enqueue(1, 2)
    assert harness.wait(tasks.add.using(queue_name="other").enqueue(1, 2)).return_value == 3


@pytest.mark.parametrize("priority", [101, -101, 1.5, "high", True])
def test_bad_priority_is_refused(harness: Harness, priority: Any) -> None:
    with pytest.raises(InvalidTask, match="priority"):
        tasks.add.using(priority=priority)


def test_options_the_backend_cannot_honour_are_refused(harness: Harness) -> None:
    task = tasks.add.using(qualifiers={"region": "eu"})
    if harness.backend.supports_qualifiers:
        assert task.enqueue(1, 1).status in (S.READY, S.SUCCESSFUL)
        return
    with pytest.raises(InvalidTask, match=r"qualifiers.*'default'.*does not support qualifiers"):
        task.enqueue(1, 1)
