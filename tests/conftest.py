"""Fixtures shared by every test: a clean configuration and clean task logs per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import taskyard
from taskyard.config import backends
from taskyard.tasks import registry
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
    allowed = registry.allowed_imports()
    yield
    for event in tasks.GATES.values():
        event.set()
    backends.reset()
    registry.reset_allowed_imports()
    registry.allow_imports(allowed)


@pytest.fixture
def configure() -> Iterator[object]:
    yield taskyard.configure


POSTGRES_URL = os.environ.get(
    "TASKYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def _postgres_server() -> str:
    try:
        import psycopg
    except ImportError:
        skip_or_fail("psycopg is not installed (pip install 'taskyard[postgres]')")
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        skip_or_fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(_postgres_server: str) -> str:
    """A PostgreSQL URL whose taskyard tables exist and are empty."""
    import psycopg

    from taskyard.backends.database.connectors import make_connector
    from taskyard.backends.database.migrate import migrate

    connector = make_connector(_postgres_server, {})
    migrate(connector)
    connector.close()
    with psycopg.connect(_postgres_server, autocommit=True) as conn:
        conn.execute("TRUNCATE taskyard_task, taskyard_worker")
        conn.execute("DELETE FROM taskyard_meta WHERE key <> 'schema_version'")
    return _postgres_server
