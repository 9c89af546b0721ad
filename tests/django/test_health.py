"""Health endpoints answer anonymous callers with statuses and counts only (issue 11, item 10):
details are for staff (Django views) or for the token holder (a worker's health port)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from django.test import Client, override_settings

from taskyard.worker.health import HealthServer
from tests.django.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])

BROKEN_QUEUE = {
    "default": {
        "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
        "OPTIONS": {"DATABASE": "queue2"},
    }
}


def _old_schema_in_queue2() -> None:
    from django.db import connections

    with connections["queue2"].cursor() as cursor:
        cursor.execute("UPDATE taskyard_meta SET value = '1' WHERE key = 'schema_version'")


def test_readiness_problems_are_for_staff_only(client: Client, staff: Any) -> None:
    _old_schema_in_queue2()
    with override_settings(TASKS=BROKEN_QUEUE):
        anonymous = client.get("/health/readiness")
        assert anonymous.status_code == 503 and anonymous.json() == {"ready": False}
        client.force_login(staff)
        detailed = client.get("/health/readiness/")
        assert detailed.status_code == 503 and "migrate" in json.dumps(detailed.json())


def test_trailing_slashes_work_as_on_the_worker_port(client: Client, staff: Any) -> None:
    tasks.django_add.enqueue(1, 1)
    client.force_login(staff)
    for path in ("/processor/monitoring/", "/processor/monitoring"):
        response = client.get(path)
        assert response.status_code == 200 and response.json()["waiting"] == 1
    assert client.get("/health/liveness/").status_code == 200
    assert client.get("/metrics/").status_code == 200


class _Source:
    def is_alive(self) -> bool:
        return True

    def readiness(self) -> tuple[bool, str]:
        return False, "database postgresql://app@db.internal:5432 unreachable"

    def monitoring(self) -> dict[str, Any]:
        return {
            "waiting": 2,
            "running": 1,
            "queues": {"default": {"waiting": 2, "host": "db.internal"}},
            "worker": {"id": "host-7:1234", "state": "running"},
        }

    def metrics(self) -> Mapping[str, tuple[str, str, float | Mapping[str, float]]]:
        raise RuntimeError("redis://:secret@cache.internal:6379 refused")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HealthServer]:
    monkeypatch.setenv("TASKYARD_HEALTH_TOKEN", "s3cret")
    running = HealthServer(_Source(), 0, host="127.0.0.1").start()
    yield running
    running.stop()


def _get(server: HealthServer, path: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_worker_port_gives_details_only_with_the_token(server: HealthServer) -> None:
    assert _get(server, "/health/readiness") == (503, {"ready": False})
    assert _get(server, "/health/readiness", token="wrong") == (503, {"ready": False})
    status, body = _get(server, "/health/readiness", token="s3cret")
    assert status == 503 and "db.internal" in body["reason"]
    status, body = _get(server, "/processor/monitoring/")
    assert body == {"waiting": 2, "running": 1, "queues": {"default": {"waiting": 2}}}
    assert _get(server, "/processor/monitoring", token="s3cret")[1]["worker"]["id"] == "host-7:1234"
    assert _get(server, "/metrics") == (503, {"error": "unavailable"})
    assert "cache.internal" in _get(server, "/metrics", token="s3cret")[1]["error"]
