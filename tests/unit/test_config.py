"""The settings handler: shapes, URLs, environment variables and every bad entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import taskyard
from taskyard import InvalidTaskBackend
from taskyard.backends.dummy import DummyBackend
from taskyard.backends.immediate import ImmediateBackend
from taskyard.backends.threadpool import ThreadPoolBackend
from taskyard.config import backends, override, parse_url

IMMEDIATE = "taskyard.backends.immediate.ImmediateBackend"
POOL = "taskyard.backends.threadpool.ThreadPoolBackend"
DUMMY = "taskyard.backends.dummy.DummyBackend"


def test_configure_builds_lazily_and_replaces() -> None:
    taskyard.configure({"default": {"BACKEND": IMMEDIATE}, "pool": {"BACKEND": POOL}})
    assert backends._built == {}
    assert isinstance(backends["default"], ImmediateBackend)
    assert set(backends._built) == {"default"}
    pool = backends["pool"]
    assert isinstance(pool, ThreadPoolBackend)
    assert pool._threads == []  # constructing started nothing
    assert backends["pool"] is pool
    taskyard.configure({"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend"}})
    assert isinstance(backends["default"], DummyBackend)
    with pytest.raises(InvalidTaskBackend, match="no task backend with alias 'pool'"):
        backends["pool"]


def test_queues_default_and_any() -> None:
    taskyard.configure(
        {"default": {"BACKEND": IMMEDIATE}, "any": {"BACKEND": IMMEDIATE, "QUEUES": []}}
    )
    assert backends["default"].queues == frozenset({"default"})
    assert backends["any"].queues == frozenset()
    from tests import tasks

    assert tasks.add.using(backend="any", queue_name="whatever").enqueue(1, 1).return_value == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "need a 'default' alias"),
        ({"other": {"BACKEND": IMMEDIATE}}, "need a 'default' alias"),
        ([("default", {})], "must be a dict"),
        ({"default": "immediate:"}, "backend 'default': entry must be a dict"),
        ({"default": {}}, "backend 'default': entry has no BACKEND"),
        (
            {"default": {"BACKEND": "no.such.Backend"}},
            "backend 'default': cannot import 'no.such.Backend'",
        ),
        (
            {"default": {"BACKEND": "taskyard.config.BackendHandler"}},
            "'taskyard.config.BackendHandler' is not a taskyard backend",
        ),
        ({"default": {"BACKEND": "Immediate"}}, "dotted path"),
        (
            {"default": {"BACKEND": IMMEDIATE, "QUEUE": ["a"]}},
            r"unknown key\(s\) QUEUE; valid keys are BACKEND, QUEUES, OPTIONS",
        ),
        ({"default": {"BACKEND": IMMEDIATE, "QUEUES": "emails"}}, "QUEUES must be a list"),
        ({"default": {"BACKEND": IMMEDIATE, "QUEUES": [1]}}, "queue names must be strings"),
        ({"default": {"BACKEND": IMMEDIATE, "OPTIONS": []}}, "OPTIONS must be a dict"),
        (
            {"default": {"BACKEND": POOL, "OPTIONS": {"WORKERS": 3}}},
            r"unknown OPTIONS key\(s\) WORKERS; valid keys are ASYNC_CONCURRENCY, MAX_RESULTS, MAX_WORKERS, SHUTDOWN_TIMEOUT",
        ),
        (
            {"default": {"BACKEND": POOL, "OPTIONS": {"MAX_WORKERS": "3"}}},
            r"OPTIONS\['MAX_WORKERS'\] must be int, got '3' \(str\)",
        ),
        (
            {"default": {"BACKEND": POOL, "OPTIONS": {"MAX_WORKERS": True}}},
            r"OPTIONS\['MAX_WORKERS'\] must be int",
        ),
        (
            {"default": {"BACKEND": POOL, "OPTIONS": {"MAX_WORKERS": 0}}},
            r"OPTIONS\['MAX_WORKERS'\] must be a finite number > 0",
        ),
        (
            {"default": {"BACKEND": POOL, "OPTIONS": {"SHUTDOWN_TIMEOUT": float("inf")}}},
            r"OPTIONS\['SHUTDOWN_TIMEOUT'\] must be a finite number",
        ),
        (
            {"default": {"BACKEND": IMMEDIATE, "QUEUES": ["q" * 101]}},
            "queue name 'q+' is 101 characters long; the limit is 100",
        ),
        ({"default": {"BACKEND": IMMEDIATE, "QUEUES": ["a\x00"]}}, "NUL character"),
        (
            {"default": {"BACKEND": IMMEDIATE}, "x" * 101: {"BACKEND": IMMEDIATE}},
            "the alias is 101 characters long",
        ),
        (
            {"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend", "OPTIONS": {"X": 1}}},
            r"\(none: this backend takes no OPTIONS\)",
        ),
    ],
)
def test_bad_settings_name_alias_and_culprit(settings: Any, message: str) -> None:
    with pytest.raises(InvalidTaskBackend, match=message):
        taskyard.configure(settings)


def test_bad_entry_names_its_alias() -> None:
    with pytest.raises(
        InvalidTaskBackend, match="backend 'emails' .*ThreadPoolBackend.*MAX_WORKERS"
    ):
        taskyard.configure(
            {
                "default": {"BACKEND": IMMEDIATE},
                "emails": {"BACKEND": POOL, "OPTIONS": {"MAX_WORKERS": -1}},
            }
        )


def test_unknown_alias_lists_configured_ones() -> None:
    taskyard.configure({"default": {"BACKEND": IMMEDIATE}})
    from tests import tasks

    with pytest.raises(
        InvalidTaskBackend, match="no task backend with alias 'nope'; configured aliases: default"
    ):
        tasks.add.using(backend="nope").enqueue(1, 2)


def test_url_shorthand() -> None:
    assert parse_url("immediate:") == {"BACKEND": IMMEDIATE, "OPTIONS": {}}
    entry = parse_url("threadpool:?max_workers=3&queues=a,b")
    assert entry == {"BACKEND": POOL, "OPTIONS": {"MAX_WORKERS": 3}, "QUEUES": ["a", "b"]}
    assert parse_url("dummy:?queues=*")["QUEUES"] == []
    taskyard.configure(url="threadpool:?max_workers=3")
    assert backends["default"].options["MAX_WORKERS"] == 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nothing", "has no scheme"),
        ("mysql://localhost/db", "unknown scheme 'mysql'"),
        ("threadpool://host/path", "takes no host or path"),
        ("threadpool:?max_workers=many", r"MAX_WORKERS'\] must be int, got 'many'"),
        ("immediate:?colour=red", r"unknown OPTIONS key\(s\) COLOUR"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidTaskBackend, match=message):
        taskyard.configure(url=url)


def test_environment_url_and_settings_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKYARD_URL", "dummy:")
    backends.reset()
    assert isinstance(backends["default"], DummyBackend)
    monkeypatch.delenv("TASKYARD_URL")
    monkeypatch.setenv("TASKYARD_SETTINGS", "tests.unit.settings_module_for_tests")
    backends.reset()
    assert isinstance(backends["default"], ImmediateBackend)
    assert backends["pool"].options["MAX_WORKERS"] == 2
    assert "settings module tests.unit.settings_module_for_tests" in backends.settings_source
    # both: the URL replaces the module's default alias
    monkeypatch.setenv("TASKYARD_URL", "dummy:")
    backends.reset()
    assert isinstance(backends["default"], DummyBackend)
    assert isinstance(backends["pool"], ThreadPoolBackend)


def test_environment_url_wins_over_configure_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12, item 7: `TASKYARD_URL=immediate: python app.py` runs an app that calls
    configure(...) on the Immediate backend (environment > configure() > default)."""
    monkeypatch.setenv("TASKYARD_URL", "immediate:")
    taskyard.configure(
        {
            "default": {"BACKEND": "taskyard.backends.threadpool.ThreadPoolBackend"},
            "inline": {"BACKEND": DUMMY},
        }
    )
    assert isinstance(backends["default"], ImmediateBackend)
    assert isinstance(backends["inline"], DummyBackend)  # other aliases are the code's
    assert "TASKYARD_URL" in backends.settings_source
    taskyard.configure(url="threadpool:")
    assert isinstance(backends["default"], ImmediateBackend)
    monkeypatch.setenv("TASKYARD_SETTINGS", "tests.unit.settings_module_for_tests")
    monkeypatch.delenv("TASKYARD_URL")
    taskyard.configure({"default": {"BACKEND": DUMMY}})
    assert isinstance(backends["pool"], ThreadPoolBackend)  # the module replaced the dict
    monkeypatch.delenv("TASKYARD_SETTINGS")
    taskyard.configure({"default": {"BACKEND": DUMMY}})
    assert isinstance(backends["default"], DummyBackend)  # nothing in the environment


def test_the_handler_takes_settings_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Integrations (the Django settings, a worker's child processes) pass settings already
    resolved: the handler's own configure() does not read the environment over them."""
    monkeypatch.setenv("TASKYARD_URL", "dummy:")
    backends.configure({"default": {"BACKEND": IMMEDIATE}})
    assert isinstance(backends["default"], ImmediateBackend)


def test_the_app_example_of_the_readme_follows_taskyard_url(tmp_path: Path) -> None:
    """The README's "switch backends per environment without touching code", as a user runs it:
    a script calling configure(ThreadPool) run with TASKYARD_URL=immediate:."""
    app = tmp_path / "app.py"
    app.write_text(
        "import taskyard\n"
        "taskyard.configure({'default': {'BACKEND': "
        "'taskyard.backends.threadpool.ThreadPoolBackend'}})\n"
        "print(type(taskyard.task_backends['default']).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, str(app)],
        env={**env, "TASKYARD_URL": "immediate:"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "ImmediateBackend"


def test_bad_settings_module(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        InvalidTaskBackend, match="cannot import settings module 'no_such_settings'"
    ):
        taskyard.configure(settings_module="no_such_settings")
    with pytest.raises(InvalidTaskBackend, match="does not define a TASKS dict"):
        taskyard.configure(settings_module="tests.tasks")


def test_default_is_the_sqlite_database_backend() -> None:
    from taskyard.config import DEFAULT_SQLITE_URL

    assert DEFAULT_SQLITE_URL == "sqlite:///taskyard.sqlite3"
    assert parse_url.__module__ == "taskyard.config"


def test_override_restores_previous_configuration() -> None:
    taskyard.configure({"default": {"BACKEND": IMMEDIATE}})
    outer = backends["default"]
    with override(url="dummy:"):
        assert isinstance(backends["default"], DummyBackend)
    assert backends["default"] is outer


def test_configure_closes_replaced_backends() -> None:
    taskyard.configure(url="threadpool:")
    from tests import tasks

    pool = backends["default"]
    assert tasks.add.enqueue(1, 1).wait(5).return_value == 2
    taskyard.configure(url="immediate:")
    assert pool._threads == []  # type: ignore[attr-defined]
