"""Procrastinate on PostgreSQL: one ``procrastinate worker`` process (``-c 4``), async no-op
tasks. Start and finish times come from its own ``procrastinate_events`` table."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from bench.harness import ENV, ROOT, pg, pg_emptied, table_exists
from bench.peers.base import IoMode, Subject, bin_path

#: the fastest of 1, 2 and 4 in a tuning run on this machine ($BENCH_PEER_CONCURRENCY overrides)
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "4"))
HISTORY_TASK = "bench.prefilled_history"


class Procrastinate(Subject):
    key = "procrastinate"
    label = "Procrastinate"
    store = "postgresql"
    burst = True
    history = True
    worker_note = f"procrastinate worker -c {CONCURRENCY} --one-shot, async tasks"

    def _env(self) -> dict[str, str]:
        return {"BENCH_POSTGRES_URL": self.ctx.pg_url}

    def module(self) -> Any:
        import importlib

        os.environ.update(self._env())
        import bench.peers.procrastinate_app as app

        if self.ctx.pg_url != app.URL:
            app = importlib.reload(app)
            self._opened = False
        if not getattr(self, "_opened", False):
            app.app.open()
            self._opened = True
        return app

    def prepare(self) -> None:
        if not table_exists("procrastinate_jobs"):
            subprocess.run(
                [
                    bin_path("procrastinate"),
                    "--app",
                    "bench.peers.procrastinate_app.app",
                    "schema",
                    "--apply",
                ],
                env={**ENV, **self._env()},
                cwd=ROOT,
                check=True,
            )

    def reset(self) -> None:
        pg("DELETE FROM procrastinate_workers")
        pg_emptied(
            f"DELETE FROM procrastinate_jobs WHERE task_name <> '{HISTORY_TASK}'",
            "procrastinate_jobs",
            "procrastinate_events",
        )

    def enqueue_one(self, n: int) -> float:
        defer = self.module().noop.defer
        started = time.perf_counter()
        for _ in range(n):
            defer()
        return time.perf_counter() - started

    def enqueue_bulk(self, n: int) -> float | None:
        batch = self.module().noop.batch_defer
        started = time.perf_counter()
        for start in range(0, n, 5000):
            batch(*({} for _ in range(min(5000, n - start))))
        return time.perf_counter() - started

    def enqueue_stamp(self, token: int, port: int) -> float:
        defer = self.module().stamp.defer
        before = time.time()
        defer(token=token, port=port)
        return before

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        assert kind == "async"
        batch = self.module().sleep_async.batch_defer
        for start in range(0, n, 5000):
            batch(*({"seconds": seconds} for _ in range(min(5000, n - start))))

    def io_modes(self) -> list[IoMode]:
        def note(c: int) -> str:
            return f"procrastinate worker -c {c}"

        return [
            IoMode("async", "-c100", ", -c 100", (100,), self.argv, note),
            IoMode("async", "", ", its best -c", (100, 250, 500, 1000), self.argv, note),
        ]

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(CONCURRENCY, burst)

    def argv(self, concurrency: int, burst: bool = False) -> list[str]:
        argv = [bin_path("procrastinate"), "--app", "bench.peers.procrastinate_app.app"]
        argv += ["worker", "-q", "bench", "-c", str(concurrency)]
        return [*argv, "--one-shot"] if burst else argv

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), **self._env()}

    def done_count(self) -> int:
        return int(
            pg(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded' "
                f"AND task_name NOT IN ('stamp', '{HISTORY_TASK}')"
            )[0][0]
        )

    def span(self) -> tuple[int, float]:
        rows = pg(
            "SELECT count(*) FILTER (WHERE e.type = 'succeeded'), EXTRACT(EPOCH FROM "
            "max(e.at) FILTER (WHERE e.type = 'succeeded') "
            "- min(e.at) FILTER (WHERE e.type = 'started')) "
            "FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
            f"WHERE j.task_name NOT IN ('stamp', '{HISTORY_TASK}')"
        )
        return int(rows[0][0]), float(rows[0][1] or 0)

    def prefill_history(self, rows: int) -> None:
        pg(f"""INSERT INTO procrastinate_jobs (queue_name, task_name, status, args, attempts)
             SELECT 'bench', '{HISTORY_TASK}', 'succeeded', '{{}}', 1
             FROM generate_series(1, {rows})""")
        pg("VACUUM ANALYZE procrastinate_jobs")

    def drop_history(self) -> None:
        pg(f"DELETE FROM procrastinate_jobs WHERE task_name = '{HISTORY_TASK}'")
        pg("VACUUM ANALYZE procrastinate_jobs")

    def close(self) -> None:
        if getattr(self, "_opened", False):
            self.module().app.close()
            self._opened = False

    def versions(self) -> str:
        from importlib.metadata import version

        return f"procrastinate {version('procrastinate')}"
