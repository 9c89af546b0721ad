"""Separate Django processes for the worker-process tests: ``manage.py`` commands on
``tests.django.worker_settings``, a private PostgreSQL server, small polling helpers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


class Project:
    """``python -m django ...`` with the worker settings on one database."""

    def __init__(self, db_url: str, email_dir: Path) -> None:
        self.db_url = db_url
        self.email_dir = email_dir
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "TASKYARD"))}
        self.env = {
            **base,
            "DJANGO_SETTINGS_MODULE": "tests.django.worker_settings",
            "TASKYARD_WORKER_DB_URL": db_url,
            "TASKYARD_EMAIL_DIR": str(email_dir),
            "PYTHONPATH": str(ROOT),
        }

    def run(
        self, *args: str, app_name: str = "taskyard-tests-cli"
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env={**self.env, "TASKYARD_APP_NAME": app_name},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self, *args: str, app_name: str, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "django", *args],
                cwd=ROOT,
                env={**self.env, "TASKYARD_APP_NAME": app_name},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def create_incidents(self, prefix: str, n: int) -> None:
        code = (
            "from tests.django.alerting.models import Incident\n"
            f"for i in range({n}): Incident.objects.create(title=f'{prefix}-{{i}}')\n"
        )
        done = self.run("shell", "-c", code)
        assert done.returncode == 0, done.stderr

    def sent_subjects(self) -> list[str]:
        subjects = []
        for path in sorted(self.email_dir.glob("*.log")):
            for line in path.read_text().splitlines():
                if line.startswith("Subject: "):
                    subjects.append(line[len("Subject: ") :])
        return subjects


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return int(process.returncode)


def http_get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


class PrivatePostgres:
    """A PostgreSQL 15 server of this test's own (run as the ``postgres`` user), so that the
    test may stop and restart it without touching the shared one."""

    def __init__(self) -> None:
        # not under pytest's tmp_path: the postgres user must be able to reach it
        self.directory = Path(tempfile.mkdtemp(prefix="taskyard-pg-"))
        self.directory.chmod(0o755)
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> str | None:
        if not (PG_BIN / "initdb").exists():
            return f"no PostgreSQL 15 binaries in {PG_BIN}"
        if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
            return "a private PostgreSQL server is started as the postgres user (needs root)"
        if shutil.which("runuser") is None:
            return "runuser is missing"
        return None

    def _as_postgres(self, *argv: str) -> None:
        command = [str(a) for a in argv]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            self.directory / "log",
            "-w",
            "start",
        )
        return self

    def stop(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)
