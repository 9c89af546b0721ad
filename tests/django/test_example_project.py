"""The example project runs as its README says (each command line of the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_project"


def manage(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TASKYARD", "DJANGO"))}
    return {**base, "DATABASE_URL": f"sqlite:///{tmp_path}/shop.sqlite3"}


def checkout(env: dict[str, str]) -> dict[str, str]:
    out = manage(
        "shell",
        "-c",
        "from django.test import Client; "
        "print(__import__('json').dumps(Client().get('/checkout?order=7').json()))",
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_development_runs_tasks_inline(env: dict[str, str]) -> None:
    manage("migrate", "-v", "0", env=env)
    assert checkout(env)["status"] == "SUCCESSFUL"


def test_test_environment_uses_the_dummy_backend(env: dict[str, str]) -> None:
    env["APP_ENV"] = "test"
    manage("migrate", "-v", "0", env=env)
    assert checkout(env)["status"] == "READY"


def test_production_commands_from_the_readme(env: dict[str, str]) -> None:
    env["APP_ENV"] = "production"
    manage("migrate", "-v", "0", env=env)
    task_id = checkout(env)["task"]
    status = manage("taskyard", "status", env=env).stdout
    assert "emails" in status and "1" in status
    queued = manage("enqueue_command", "clearsessions", env=env).stdout.split()[0]
    manage("db_worker", "--queue-name", "*", "--threads", "5", "--batch", env=env)
    api = "django.tasks" if __import__("django").VERSION >= (6, 0) else "django_tasks"
    script = f"from {api} import default_task_backend as b\nprint(b.get_result('{task_id}').return_value)"
    result = manage("shell", "-c", script, env=env)
    assert "receipt for order 7 sent" in result.stdout
    assert queued
    assert manage("taskyard", "health", "--no-workers", env=env).returncode == 0
    unhealthy = manage("checktaskprocessorthreadhealth", env=env, check=False)
    assert unhealthy.returncode == 1 and "FAIL workers" in unhealthy.stdout
    listing = manage("crontask", "--list", env=env).stdout
    assert "nightly_report" in listing and "0 3 * * *" in listing
    assert manage("taskyard", "health", env=env, check=False).returncode == 1
