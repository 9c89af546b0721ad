"""Issue 12 under Django: ``manage.py taskyard show/list``, the monitoring URL with a trailing
slash, and ``prune_db_task_results`` keeping django-tasks-db's ``--min-age-days``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from taskyard.contrib.django.testing import run_until_empty
from tests.django.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])


def test_manage_py_taskyard_show_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    failing = tasks.django_fails.enqueue()
    ok = tasks.django_add.enqueue(2, 3)
    run_until_empty()
    capsys.readouterr()
    call_command("taskyard", "show", failing.id)
    out = capsys.readouterr().out
    assert f"task {failing.id}  FAILED" in out
    assert "ValueError: broken on purpose" in out and "Traceback (most recent call last)" in out
    call_command("taskyard", "show", ok.id, "--json")
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "SUCCESSFUL" and shown["return_value"] == 5
    assert shown["attempts"][0]["outcome"] == "succeeded"
    call_command("taskyard", "list", "--status", "failed")
    listing = capsys.readouterr().out
    assert failing.id in listing and ok.id not in listing
    call_command("taskyard", "list", "--json", "--limit", "1")
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [ok.id]


def test_monitoring_answers_with_a_trailing_slash(client: Client, staff: Any) -> None:
    client.force_login(staff)
    for path in ("/processor/monitoring", "/processor/monitoring/"):
        assert client.get(path).status_code == 200, path
    for path in ("/health/liveness/", "/health/readiness/", "/metrics/"):
        assert client.get(path).status_code == 200, path


def test_prune_db_task_results_keeps_min_age_days(capsys: pytest.CaptureFixture[str]) -> None:
    tasks.django_add.enqueue(1, 1)
    run_until_empty()
    capsys.readouterr()
    call_command("prune_db_task_results", "--min-age-days", "7", "--dry-run")
    assert "older than 7 day(s)" in capsys.readouterr().out
    call_command("prune_db_task_results", "--min-age-days", "0")
    assert "Deleted 1 SUCCESSFUL/CANCELLED" in capsys.readouterr().out
