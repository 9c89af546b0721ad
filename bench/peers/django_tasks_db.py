"""django-tasks-db's ``DatabaseBackend`` with its ``db_worker`` on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

from bench.harness import ENV, ROOT, pg, pg_emptied
from bench.peers.base import Agent, Subject

TABLE = "django_tasks_database_dbtaskresult"
PREFILLED = "bench.prefilled_history"


class DjangoTasksDB(Subject):
    key = "django-tasks-db"
    label = "django-tasks-db db_worker, PostgreSQL"
    store = "postgresql"
    burst = True
    history = True
    drain_n = 1000
    worker_note = "db_worker --batch"

    def _env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "bench.peers.dtdb_settings",
            "BENCH_POSTGRES_URL": self.ctx.pg_url,
            "BENCH_TASKS_MODULE": "bench.peers.dtdb_tasks",
        }

    def agent(self) -> Agent:
        if not hasattr(self, "_agent"):
            self._agent = Agent(self._env())
        return self._agent

    def prepare(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            env={**ENV, **self._env()},
            cwd=ROOT,
            check=True,
        )

    def reset(self) -> None:
        pg_emptied(f"DELETE FROM {TABLE} WHERE task_path <> '{PREFILLED}'", TABLE)

    def enqueue_one(self, n: int) -> float:
        return float(self.agent().call(op="enqueue_one", n=n))

    def enqueue_stamp(self, token: int, port: int) -> float:
        return float(self.agent().call(op="enqueue_stamp", token=token, port=port))

    def worker_argv(self, burst: bool) -> list[str]:
        argv = [sys.executable, "-m", "django", "db_worker", "--no-startup-delay"]
        argv += ["--queue-name", "default", "-v", "0"]
        return [*argv, "--batch"] if burst else argv

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), **self._env()}

    def done_count(self) -> int:
        return int(
            pg(
                f"SELECT count(*) FROM {TABLE} WHERE status = 'SUCCESSFUL' "
                f"AND task_path <> '{PREFILLED}'"
            )[0][0]
        )

    def span(self) -> tuple[int, float]:
        rows = pg(
            "SELECT count(*), EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) "
            f"FROM {TABLE} WHERE status = 'SUCCESSFUL' AND task_path <> '{PREFILLED}'"
        )
        return int(rows[0][0]), float(rows[0][1] or 0)

    def prefill_history(self, rows: int) -> None:
        pg(f"""INSERT INTO {TABLE} (id, status, enqueued_at, started_at, finished_at,
                args_kwargs, priority, task_path, worker_ids, queue_name, backend_name,
                run_after, return_value, exception_class_path, traceback)
             SELECT gen_random_uuid(), 'SUCCESSFUL', now() - interval '1 day',
                now() - interval '1 day', now() - interval '1 day', '{{}}', 0, '{PREFILLED}',
                '[]', 'default', 'default', now() - interval '1 day', 'null', '', ''
             FROM generate_series(1, {rows})""")
        pg(f"VACUUM ANALYZE {TABLE}")

    def drop_history(self) -> None:
        pg(f"DELETE FROM {TABLE} WHERE task_path = '{PREFILLED}'")
        pg(f"VACUUM ANALYZE {TABLE}")

    def close(self) -> None:
        if hasattr(self, "_agent"):
            self._agent.close()

    def versions(self) -> str:
        from importlib.metadata import version

        return f"django-tasks-db {version('django-tasks-db')}, Django {version('django')}"
