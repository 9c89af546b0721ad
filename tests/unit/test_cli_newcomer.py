"""Issue 12: the command line as a newcomer and an operator meet it.

Each test reproduces an item of the issue's "What was seen" list; the processes run the
``taskyard`` console script from a project directory, without PYTHONPATH.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from taskyard.cli import build_parser, main
from taskyard.worker.commands import worker_config
from tests.cli_support import ROOT, TASKYARD, one_line_error, python, taskyard, user_env

TASKS_MODULE = """
from taskyard import task

@task
def hello(name: str) -> str:
    return f"hello {name}"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder: a package ``myapp`` with a tasks module, nothing installed."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(TASKS_MODULE)
    return tmp_path


# -- 1. the current directory is first on sys.path -------------------------------------------


def test_worker_imports_the_project_from_the_current_directory(project: Path) -> None:
    assert taskyard("migrate", "--url", "sqlite:///tasks.db", cwd=project).returncode == 0
    enqueue = (
        "import taskyard, myapp.tasks as t\n"
        "taskyard.configure(url='sqlite:///tasks.db')\n"
        "print(t.hello.enqueue('you').id)\n"
    )
    done = python("-c", enqueue, cwd=project)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    done = taskyard(
        "worker", "--url", "sqlite:///tasks.db", "--import", "myapp.tasks", "--burst", cwd=project
    )
    assert done.returncode == 0, done.stderr
    shown = taskyard("show", task_id, "--url", "sqlite:///tasks.db", cwd=project)
    assert "SUCCESSFUL" in shown.stdout and '"hello you"' in shown.stdout


def test_the_docs_settings_modules_import_from_the_repository_root() -> None:
    done = taskyard("check", "--settings", "tests.unit.settings_module_for_tests", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "pool: ThreadPoolBackend" in done.stdout


def test_a_module_that_is_not_there_is_one_line(project: Path) -> None:
    done = taskyard("check", "--url", "dummy:", "--import", "nosuchapp.tasks", cwd=project)
    line = one_line_error(done)
    assert "cannot import 'nosuchapp.tasks'" in line and str(project) in line
    assert done.returncode == 2


# -- 2. SQLite files: only migrate, --create or the embedded default create one ----------------


def test_read_only_commands_create_nothing_and_name_the_path(tmp_path: Path) -> None:
    for command in ("status", "list", "health", "check"):
        done = taskyard(command, "--url", "sqlite:///typo/dir/tasks.db", cwd=tmp_path)
        if command in ("health", "check"):  # they report their checks on stdout, exit 1
            assert done.returncode == 1 and "Traceback" not in done.stderr, done
            line = done.stdout
        else:
            line = one_line_error(done)
        assert f"{tmp_path}/typo/dir does not exist" in line, command
    done = taskyard("show", "0190a000-0000-7000-8000-000000000000", "--url", "sqlite:///t.db",
                    cwd=tmp_path)  # fmt: skip
    assert f"{tmp_path}/t.db does not exist" in one_line_error(done)
    for command in ("status", "list"):  # not even the embedded default
        assert "taskyard.sqlite3 does not exist" in one_line_error(taskyard(command, cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_worker_on_a_missing_file_or_directory_stops(tmp_path: Path) -> None:
    missing_dir = tmp_path / "nonexistent" / "dir"
    done = taskyard("worker", "--url", f"sqlite:///{missing_dir}/t.db", "--burst", cwd=tmp_path)
    assert f"the directory {missing_dir} does not exist" in one_line_error(done)
    done = taskyard("worker", "--url", "sqlite:///t.db", "--burst", cwd=tmp_path)
    line = one_line_error(done)
    assert "t.db does not exist" in line and "taskyard migrate --url sqlite:///t.db" in line
    assert list(tmp_path.iterdir()) == []
    done = taskyard("worker", "--url", "sqlite:///t.db", "--burst", "--create", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.db").exists()


def test_migrate_creates_the_file_never_the_directory(tmp_path: Path) -> None:
    done = taskyard("migrate", "--url", "sqlite:///sub/q.db", cwd=tmp_path)
    assert "the directory" in one_line_error(done) and not (tmp_path / "sub").exists()
    done = taskyard("migrate", "--url", "sqlite:///q.db", cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "q.db").exists()
    # each schema file is reported once (item 13)
    assert done.stdout.count("0001_initial.sql") == 1 and done.stderr.count("0001_initial") == 0


def test_the_embedded_default_is_created_in_the_current_directory(tmp_path: Path) -> None:
    done = taskyard("worker", "--burst", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "taskyard.sqlite3").exists()


# -- 4. durations need a unit --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("7", "'7' has no unit"), ("1x", "'1x' is not")])
def test_prune_refuses_a_duration_without_a_unit(
    value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["prune", "--older-than", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "45s, 30m, 12h, 7d or 2w" in err
    assert "invalid parse_duration value" not in err


@pytest.mark.parametrize("value", ["99999999999d", "36501d", "1e400d"])
def test_prune_refuses_a_duration_too_long_for_a_date(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # "now - 99999999999d" used to end in an OverflowError traceback
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["prune", "--older-than", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --older-than" in err


@pytest.mark.parametrize("flag", ["--lease", "--interval", "--shutdown-timeout"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e300"])
def test_worker_seconds_must_be_finite_and_bounded(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --lease inf crashed the worker's loop with OverflowError and left it hanging; --interval
    # 1e300 crashed it when idle; --shutdown-timeout nan was accepted
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["worker", flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_a_worker_with_an_infinite_lease_stops_at_once_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    done = taskyard("worker", "--url", url, "--create", "--burst", "--lease", "inf", cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --lease" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["99999", "-1", "http"])
def test_a_health_port_out_of_range_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--health-port 99999` ended in an OverflowError traceback from socketserver (exit 1)
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["worker", "--health-port", value])
    assert exited.value.code == 2
    assert "argument --health-port" in capsys.readouterr().err
    assert build_parser().parse_args(["worker", "--health-port", "0"]).health_port == 0


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_queues_naming_no_queue_are_refused(value: str, tmp_path: Path) -> None:
    # `--queues ''` started a worker serving no queue at all, idle forever
    url = f"sqlite:///{tmp_path / 't.db'}"
    done = taskyard("worker", "--url", url, "--create", "--burst", "--queues", value, cwd=tmp_path)
    assert done.returncode == 2
    assert "names no queue" in one_line_error(done)


def test_ctrl_c_while_the_commands_load_is_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C right after `taskyard worker` was typed (while the command modules import)
    # printed a 25-line KeyboardInterrupt traceback
    import taskyard.cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(taskyard.cli, "_load_commands", interrupted)
    assert main(["status"]) == 130


def test_worker_config_refuses_seconds_that_overflow() -> None:
    from taskyard.worker.worker import WorkerConfig

    for field in ("lease", "interval", "shutdown_timeout"):
        for bad in (float("inf"), float("nan"), 1e300):
            with pytest.raises(ValueError, match=field):
                WorkerConfig(**{field: bad})  # type: ignore[arg-type]
    WorkerConfig(interval=0, lease=0.5, shutdown_timeout=0)


# -- 6. flag > environment > default -----------------------------------------------------------


def parse_worker(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["worker", *argv])


def test_a_flag_wins_over_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_PROCESSOR_NUM_THREADS", "3")
    assert worker_config(parse_worker("--threads", "4"), frozenset()).threads == 4
    assert worker_config(parse_worker("--numthreads", "4"), frozenset()).threads == 4
    assert worker_config(parse_worker(), frozenset()).threads == 3
    monkeypatch.setenv("TASK_PROCESSOR_SLEEP_INTERVAL_MS", "2000")
    assert worker_config(parse_worker("--interval", "0.1"), frozenset()).interval == 0.1


def test_a_flag_wins_end_to_end(tmp_path: Path) -> None:
    done = taskyard(
        "worker", "--create", "--burst", "--threads", "4", cwd=tmp_path,
        TASK_PROCESSOR_NUM_THREADS="3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASK_PROCESSOR_NUM_THREADS", "abc"),
        ("TASK_PROCESSOR_QUEUE_POP_SIZE", "0"),
        ("TASKYARD_LOG_LEVEL", "verbose"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    variable: str, value: str, tmp_path: Path
) -> None:
    done = taskyard("worker", "--burst", "--create", cwd=tmp_path, **{variable: value})
    line = one_line_error(done)
    assert variable in line and value in line
    assert done.returncode == 2


# -- 5. a task defined in __main__ is refused by the durable backends --------------------------


SCRIPT = """
import sys
import taskyard
from taskyard import task

taskyard.configure(url=sys.argv[1])

@task
def hello() -> str:
    return "hi"

try:
    hello.enqueue()
except taskyard.InvalidTask as exc:
    print(exc)
    raise SystemExit(3)
print("accepted")
"""


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///q.db",
        "redis://127.0.0.1:6379/0?connection_class=fakeredis.FakeRedis",
    ],
)
def test_a_task_in_the_script_being_run_is_refused(url: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SCRIPT)
    assert taskyard("migrate", "--url", "sqlite:///q.db", cwd=tmp_path).returncode == 0
    done = python("app.py", url, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "__main__.hello" in done.stdout and "a worker cannot import" in done.stdout
    assert "Move the task into a module" in done.stdout and "python -m app" in done.stdout


def test_the_in_process_backends_still_run_script_tasks(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SCRIPT)
    for url in ("immediate:", "threadpool:"):
        done = python("app.py", url, cwd=tmp_path)
        assert done.stdout.strip() == "accepted", done.stderr


# -- 12. no public name shadows a subpackage ---------------------------------------------------


def test_every_backend_module_imports_as_a_name() -> None:
    code = (
        "import taskyard.backends.database as db\n"
        "import taskyard.backends.redis as r\n"
        "import taskyard.backends.immediate, taskyard.backends.dummy\n"
        "import taskyard.backends.threadpool, taskyard.backends.base\n"
        "import taskyard\n"
        "from taskyard import task_backends\n"
        "assert db.DatabaseBackend and r.RedisBackend\n"
        "assert task_backends is taskyard.task_backends\n"
        "import taskyard.config\n"
        "assert taskyard.config.backends is task_backends\n"
    )
    done = python("-c", code, cwd=ROOT)
    assert done.returncode == 0, done.stderr


# -- 13. small ones ------------------------------------------------------------------------------


def test_log_level_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", "dummy:", "--log-level", "debug"]) == 0
    assert main(["check", "--url", "dummy:", "--log-level", "Warning"]) == 0
    with pytest.raises(SystemExit):
        main(["check", "--url", "dummy:", "--log-level", "loud"])
    assert "'loud' is not a log level" in capsys.readouterr().err


def test_every_option_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, child in sub.choices.items()
        for action in child._actions
        if not action.help
    ]
    assert missing == []


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--url", "sqlite:///q.db"],
        ["cron", "--list", "--settings", "examples.cron_settings", "--count", "50"],
    ],
)
def test_a_reader_that_goes_away_is_no_traceback(argv: list[str], tmp_path: Path) -> None:
    """`taskyard status | head`: the pipe closes early; no BrokenPipeError traceback."""
    cwd = ROOT if argv[0] == "cron" else tmp_path
    if argv[0] == "status":
        assert taskyard("migrate", "--url", "sqlite:///q.db", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [TASKYARD, *argv, "--log-level", "error"],
        cwd=cwd,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


def test_gitignore_covers_build_outputs() -> None:
    for path in ("build/lib/taskyard/__init__.py", "dist/taskyard-0.1.0.tar.gz"):
        done = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True, check=False
        )
        assert done.returncode == 0, f"{path} is not ignored by .gitignore"
