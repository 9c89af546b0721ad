"""Every ``taskyard`` and ``manage.py`` command line of the docs runs, as a subprocess, from the
directory its page runs it in, without PYTHONPATH (issue 12; DESIGN §11).

A page's lines run in order, as a reader following it would, in one directory:

- ``README.md``, ``docs/quickstart.md``: the first-task block runs with bash in an empty folder
  holding the page's ``tasks.py`` and ``enqueue.py``;
- ``docs/settings.md``, ``docs/cron.md``, ``docs/async.md``, the Redis pages: the repository
  root (their examples name this repository's modules), mirrored in a temporary folder so
  databases land there;
- ``docs/workers.md``: a project folder (the README's ``tasks.py``);
- ``docs/deployment.md``: ``/srv/app`` as a temporary folder with an ``app`` package, with the
  unit file's ``TASKYARD_URL``;
- ``docs/django.md`` and the example project's README: ``examples/django_project``.

Placeholders become real: ``postgresql://app@db/app`` and the like the test PostgreSQL,
``redis://127.0.0.1:6379/0`` the test Redis, health ports free ports, task ids (``ID``,
``$ID``, a UUID) the id of a task enqueued first. Long-running commands (a worker, a
scheduler, ``runserver``) are started, must come up (their health port answers or their log
says they started), and must exit 0 on SIGTERM (``runserver``: on Ctrl-C, SIGINT). Interactive ``createsuperuser`` runs with
``--noinput`` and the ``DJANGO_SUPERUSER_*`` variables.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import redis_fixtures
from tests.cli_support import TASKYARD, user_env
from tests.docs_support import ROOT, DocLine, code_blocks, command_lines

redis_url = redis_fixtures.redis_url

PLACES = {
    "README.md": "first-task",
    "docs/quickstart.md": "first-task",
    "docs/settings.md": "repository",
    "docs/cron.md": "repository",
    "docs/async.md": "repository",
    "docs/backends/redis.md": "repository",
    "examples/redis_rq/README.md": "repository",
    "docs/workers.md": "project",
    "docs/deployment.md": "srv-app",
    "docs/django.md": "django",
    "examples/django_project/README.md": "django",
}
PLACEHOLDER_URLS = ("postgresql://app@db/app", "postgresql://app@localhost/app")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STARTED = re.compile(r"(?i)\bstart(ing|ed)\b|listening on|development server")
README_TASKS = """from taskyard import task


@task(retries=3, timeout=60)
def send_email(to: str, subject: str) -> str:
    return f"sent {subject!r} to {to}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(port: int, path: str = "/health/liveness") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_every_command_line_has_a_place() -> None:
    pages = {line.page for line in command_lines()}
    assert pages <= set(PLACES), f"pages without a place in PLACES: {pages - set(PLACES)}"
    assert len(command_lines()) >= 45


# -- one page ------------------------------------------------------------------------------------


@dataclass
class Page:
    """Runs a page's lines in order in ``cwd`` and remembers what they started."""

    name: str
    cwd: Path
    tmp: Path
    env: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)
    task_id: str = ""
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def lines(self) -> list[DocLine]:
        return [line for line in command_lines() if line.page == self.name]

    # -- turning a doc line into a real one ---------------------------------------------------

    def argv(self, line: DocLine) -> list[str]:
        args = list(line.argv)
        for i, arg in enumerate(args):
            if arg in self.urls:
                args[i] = self.urls[arg]
            elif arg in ("ID", "$ID") or UUID.match(arg):
                assert self.task_id, f"{line.id}: no task id to show"
                args[i] = self.task_id
            elif i and args[i - 1] == "--health-port":
                args[i] = str(free_port())
        if line.kind == "manage.py":
            if args[:1] == ["createsuperuser"]:
                args.append("--noinput")
            if args[:1] == ["runserver"]:
                args += ["--noreload", f"127.0.0.1:{free_port()}"]
            return [sys.executable, "manage.py", *args]
        return [TASKYARD, *args]

    @staticmethod
    def long_running(line: DocLine) -> bool:
        args = line.argv
        if line.kind == "taskyard":
            if args[0] == "worker":
                return "--burst" not in args
            if args[0] == "cron":
                return not {"--list", "--pause", "--resume"} & set(args)
            return args[0] == "rqworker"
        if args[:2] == ("taskyard", "worker"):
            return True
        if args[0] == "db_worker":
            return "--batch" not in args
        if args[0] == "crontask":
            return "--list" not in args
        return args[0] == "runserver"

    # -- running ------------------------------------------------------------------------------

    def run(self, line: DocLine) -> str:
        argv = self.argv(line)
        if self.long_running(line):
            return self._run_long(line, argv)
        done = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=180,
            check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{line.id}: `{line.text}` exited {done.returncode}:\n{output}"
        assert "Traceback" not in done.stderr, f"{line.id}: `{line.text}`:\n{output}"
        return output

    def _run_long(self, line: DocLine, argv: list[str]) -> str:
        log = self.tmp / f"line-{line.number}.log"
        port = int(argv[argv.index("--health-port") + 1]) if "--health-port" in argv else None
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 60
            while not (http_ok(port) if port else STARTED.search(log.read_text())):
                assert proc.poll() is None, f"{line.id}: `{line.text}` ended:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{line.id}: not up:\n{log.read_text()}"
                time.sleep(0.1)
            if "--processes" in argv:  # every child up (a child still starting dies of SIGTERM)
                children = int(argv[argv.index("--processes") + 1])
                while log.read_text().count(" starting: backend") < children:
                    assert time.monotonic() < deadline, f"{line.id}: children not up"
                    time.sleep(0.1)
            time.sleep(0.5)  # a moment of work after it came up
            assert proc.poll() is None, f"{line.id}: `{line.text}` ended:\n{log.read_text()}"
        finally:
            # runserver says "Quit the server with CONTROL-C": it is stopped with SIGINT
            proc.send_signal(signal.SIGINT if "runserver" in argv else signal.SIGTERM)
            try:
                code = proc.wait(45)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(10)
        output = log.read_text()
        assert code == 0, f"{line.id}: `{line.text}` exited {code} on SIGTERM:\n{output}"
        assert "Traceback" not in output, f"{line.id}: `{line.text}`:\n{output}"
        return output

    def start_background(self, *argv: str) -> None:
        log = (self.tmp / f"background-{len(self.background)}.log").open("w")
        self.background.append(
            subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        )
        time.sleep(2)

    def stop_background(self) -> None:
        for proc in self.background:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.background.clear()


def mirror_repository(where: Path) -> Path:
    """A folder laid out as the repository root (its packages are symlinks to the real ones)."""
    where.mkdir()
    for name in ("examples", "tests"):
        (where / name).symlink_to(ROOT / name)
    return where


# -- the pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["README.md", "docs/quickstart.md"])
def test_first_task_pages(name: str, tmp_path: Path) -> None:
    text = (ROOT / name).read_text()
    for file_name, body in re.findall(r"```python\n# (\w+\.py)\n(.*?)```", text, re.DOTALL):
        (tmp_path / file_name).write_text(body)
    script = next(
        b for b in re.findall(r"```console\n(.*?)```", text, re.DOTALL) if "enqueue.py" in b
    )
    env = user_env(PATH=f"{Path(TASKYARD).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESSFUL" in done.stdout and "0 task(s)" in done.stdout
    lines = {line.text.split("#")[0].strip() for line in command_lines() if line.page == name}
    assert all(line in script for line in lines)


def test_repository_pages(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cwd = mirror_repository(tmp_path / "repo")
    for name in ("docs/settings.md", "docs/cron.md", "docs/async.md"):
        page = Page(name, cwd, tmp_path, user_env())
        outputs = [page.run(line) for line in page.lines()]
        assert outputs, name
    redis = request.getfixturevalue("redis_url")
    env = user_env(TASKYARD_URL=f"{redis}?queues=default,emails")
    for name in ("docs/backends/redis.md", "examples/redis_rq/README.md"):
        page = Page(name, cwd, tmp_path, env, urls={"redis://127.0.0.1:6379/0": redis})
        for line in page.lines():
            page.run(line)


def test_workers_page(tmp_path: Path, postgres_url: str) -> None:
    cwd = tmp_path / "project"
    cwd.mkdir()
    (cwd / "tasks.py").write_text(README_TASKS)
    page = Page(
        "docs/workers.md",
        cwd,
        tmp_path,
        user_env(),
        urls=dict.fromkeys(PLACEHOLDER_URLS, postgres_url),
    )
    enqueue = "from tasks import send_email\nprint(send_email.enqueue('a@b.c', 'hi').id)\n"
    page.task_id = subprocess.run(
        [sys.executable, "-c", enqueue], cwd=cwd, env=page.env, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    # move-data's source must exist: an (empty) queue
    subprocess.run([TASKYARD, "migrate", "--url", "sqlite:///old.db"], cwd=cwd, env=page.env,
                   check=True)  # fmt: skip
    for line in page.lines():
        if line.argv[0] == "health":
            page.start_background(TASKYARD, "worker", "--import", "tasks")
        try:
            output = page.run(line)
        finally:
            page.stop_background()
        if line.argv[0] == "show":
            assert page.task_id in output and "SUCCESSFUL" in output


def test_deployment_page(tmp_path: Path, postgres_url: str) -> None:
    text = (ROOT / "docs/deployment.md").read_text()
    shown = set(re.findall(r"TASKYARD_URL=\"?(postgresql://[^\"\s]+)", text))
    assert shown <= set(PLACEHOLDER_URLS), shown
    assert "WorkingDirectory=/srv/app" in text and "directory=/srv/app" in text
    cwd = tmp_path / "srv" / "app"
    (cwd / "app").mkdir(parents=True)
    (cwd / "app" / "__init__.py").write_text("")
    (cwd / "app" / "tasks.py").write_text(README_TASKS)
    page = Page("docs/deployment.md", cwd, tmp_path, user_env(TASKYARD_URL=postgres_url))
    for line in page.lines():
        page.run(line)


def test_django_pages(tmp_path: Path) -> None:
    cwd = ROOT / "examples" / "django_project"
    base = user_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/shop.sqlite3",
        TASKS_DATABASE_URL=f"sqlite:///{tmp_path}/tasks.sqlite3",
        DJANGO_SUPERUSER_USERNAME="admin",
        DJANGO_SUPERUSER_EMAIL="admin@example.com",
        DJANGO_SUPERUSER_PASSWORD="pw",
    )
    for name in ("examples/django_project/README.md", "docs/django.md"):
        exports: dict[int, dict[str, str]] = {}
        for index, block in code_blocks(ROOT / name):
            found = dict(re.findall(r"^export (\w+)=(\S+)$", "\n".join(t for _, t in block), re.M))
            exports[index] = {**exports.get(index - 1, {}), **found}
        page = Page(name, cwd, tmp_path, dict(base))
        for line in page.lines():
            page.env = {**base, **exports.get(line.block, {})}
            if name == "docs/django.md":
                page.env["APP_ENV"] = "production"
            if line.argv[:1] != ("migrate",):
                _ensure_migrated(page)
            if line.argv[-1:] == ("ID",) or line.argv[:1] == ("move_task_processor_data",):
                page.task_id = _checkout(page)
                (tmp_path / "tasks.sqlite3").unlink(missing_ok=True)
            if line.argv[:2] == ("taskyard", "health") or line.argv[0].startswith("checktask"):
                page.start_background(sys.executable, "manage.py", "db_worker", "--queue-name", "*")
            try:
                page.run(line)
            finally:
                page.stop_background()


def _ensure_migrated(page: Page) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=page.cwd, env=page.env, check=True
    )


def _checkout(page: Page) -> str:
    script = (
        "from django.test import Client; print(Client().get('/checkout?order=7').json()['task'])"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=page.cwd, env=page.env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


# -- the examples the pages name ---------------------------------------------------------------


def test_make_demo_runs(tmp_path: Path) -> None:
    """`make demo` is `python -m examples.demo` from the repository root."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo", "--dir", str(tmp_path / "demo")], cwd=ROOT,
        env=user_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "demo finished: all as expected" in out
    assert re.search(
        r"urgent_alert \(priority 50\), enqueued last in a batch of 8, finished #", out
    )
    assert "did not succeed" in out  # long outcomes wrap, they are not cut
    table = out[out.index("task ") : out.index("priority: urgent_alert")]
    assert all(len(row) <= 120 for row in table.splitlines())


@pytest.mark.parametrize("url", [None, "immediate:"])
def test_the_quickstart_example_runs(url: str | None) -> None:
    env = user_env(**({"TASKYARD_URL": url} if url else {}))
    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "all as expected" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_make_django_example_installs_and_serves(tmp_path: Path) -> None:
    """The example project's one command: `make django-example` (it installs into .venv)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = free_port()
    env = user_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/shop.sqlite3",
        TASKS_DATABASE_URL=f"sqlite:///{tmp_path}/tasks.sqlite3",
    )
    log = tmp_path / "make.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["make", "django-example", f"DJANGO_EXAMPLE_ADDR=127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not http_ok(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        assert http_ok(port, "/checkout?order=3")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
