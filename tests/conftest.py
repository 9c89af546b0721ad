"""Fixtures shared by every test: a clean configuration and clean task logs per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import taskyard
from taskyard.config import backends
from tests import tasks

IN_CI = bool(os.environ.get("CI"))


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs a missing service; under CI, fail instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TASKYARD_URL", raising=False)
    monkeypatch.delenv("TASKYARD_SETTINGS", raising=False)
    tasks.RUN_LOG.clear()
    tasks.GATES.clear()
    yield
    for event in tasks.GATES.values():
        event.set()
    backends.reset()


@pytest.fixture
def configure() -> Iterator[object]:
    yield taskyard.configure
