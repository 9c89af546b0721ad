"""taskyard.testing: asserting on and running what code under test enqueued."""

from __future__ import annotations

import pytest

import taskyard
from taskyard import TaskResultStatus, testing
from tests import tasks


def test_assert_enqueued_and_run_enqueued() -> None:
    with testing.dummy_backend() as backend:
        tasks.add.enqueue(1, 2)
        tasks.add.using(priority=5).enqueue(10, 20)
        matches = testing.assert_enqueued(tasks.add, args=[1, 2])
        assert len(matches) == 1 and matches[0].status is TaskResultStatus.READY
        testing.assert_enqueued(tasks.add, count=2)
        testing.assert_not_enqueued(tasks.fail)
        done = testing.run_enqueued()
        assert [r.return_value for r in done] == [30, 3]  # higher priority first
        assert len(backend.results) == 2
        testing.clear()
        assert backend.results == []


def test_failed_assertion_lists_what_was_enqueued() -> None:
    with testing.dummy_backend():
        tasks.add.enqueue(1, 2)
        with pytest.raises(
            AssertionError,
            match=r"(?s)expected tests.tasks.add with args=\[9, 9\].*tests.tasks.add args=\[1, 2\]",
        ):
            testing.assert_enqueued(tasks.add, args=[9, 9])
        with pytest.raises(AssertionError, match="not to be enqueued"):
            testing.assert_not_enqueued(tasks.add)


def test_run_enqueued_runs_tasks_enqueued_while_running_and_filters() -> None:
    with testing.dummy_backend():
        tasks.record.enqueue("a")
        tasks.add.enqueue(1, 1)
        only = testing.run_enqueued(tasks.record)
        assert [r.task.name for r in only] == ["record"]
        deferred = tasks.record.using(run_after=__import__("datetime").timedelta(hours=1)).enqueue(
            "later"
        )
        assert deferred not in testing.run_enqueued()
        assert deferred in testing.run_enqueued(include_deferred=True)


def test_qualifiers_filter_in_run_enqueued() -> None:
    with testing.dummy_backend():
        eu = tasks.record.using(qualifiers={"region": "eu"}).enqueue("eu")
        assert testing.run_enqueued(qualifiers={"region": "us"}) == []
        assert testing.run_enqueued(qualifiers={"region": "eu"}) == [eu]


def test_helpers_refuse_other_backends() -> None:
    taskyard.configure(url="immediate:")
    with pytest.raises(AssertionError, match="not DummyBackend"):
        testing.enqueued()
