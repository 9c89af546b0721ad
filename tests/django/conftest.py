"""Django tests: run with ``pytest tests/django --ds=tests.django.settings``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.django.testapp import tasks


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from taskyard.contrib.django.settings import reset

    monkeypatch.delenv("TASKYARD_URL", raising=False)
    reset(setting="TASKS")
    tasks.RAN.clear()
    yield
    reset(setting="TASKS")


@pytest.fixture
def staff(django_user_model: object) -> object:
    return django_user_model.objects.create_superuser(  # type: ignore[attr-defined]
        "admin", "admin@example.com", "pw"
    )


@pytest.fixture(autouse=True)
def _empty_queue_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Transactional tests do not roll back and Django's flush skips unmanaged tables."""
    yield
    if "transactional_db" not in request.fixturenames and not any(
        m.kwargs.get("transaction") for m in request.node.iter_markers("django_db")
    ):
        return
    blocker = request.getfixturevalue("django_db_blocker")
    from django.db import connections

    with blocker.unblock():
        for alias in connections:
            with connections[alias].cursor() as cursor:
                for table in ("taskyard_task", "taskyard_worker"):
                    if table in connections[alias].introspection.table_names(cursor):
                        cursor.execute(f"DELETE FROM {table}")
