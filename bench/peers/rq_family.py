"""rq-based subjects: taskyard's Redis backend with ``taskyard rqworker``, plain rq with
``rq worker``, and django-tasks-rq with django-rq's ``rqworker`` — each with rq's
SimpleWorker and with its forking Worker. Start and end times are rq's own (job hashes)."""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar

from bench.peers.base import Agent, IoMode, Subject, bin_path
from bench.peers.taskyard_db import TaskyardClient, activate

WORKER_CLASS = {"simple": "rq.SimpleWorker", "forking": "rq.Worker"}
IO_TITLE = "taskyard Redis, taskyard rqworker (default class)"


class RQBase(Subject):
    store = "redis"
    burst = True
    cls: ClassVar[str] = "simple"

    def client(self) -> Any:
        import redis

        if not hasattr(self, "_client"):
            self._client = redis.Redis.from_url(self.ctx.redis_url)
        return self._client

    def reset(self) -> None:
        self.client().flushdb()

    def done_count(self) -> int:
        return self.span()[0]

    def span(self) -> tuple[int, float]:
        from rq.utils import utcparse

        client = self.client()
        keys = [k for k in client.scan_iter("rq:job:*", count=5000) if k.count(b":") == 2]
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "started_at", "ended_at", "status")
            rows = pipe.execute()
        done = [(s, e) for s, e, status in rows if e and status == b"finished"]
        if not done:
            return 0, 0.0
        starts = [utcparse(s.decode()).timestamp() for s, _ in done if s]
        ends = [utcparse(e.decode()).timestamp() for _, e in done]
        return len(done), max(ends) - min(starts)

    def versions(self) -> str:
        import redis
        import rq

        return f"rq {rq.VERSION}, redis-py {redis.__version__}"


class TaskyardRedis(TaskyardClient, RQBase):
    key = "taskyard-redis"
    label = "taskyard Redis, taskyard rqworker (SimpleWorker)"
    ours = True
    drain_n = 2000
    worker_note = "taskyard rqworker --worker-class simple"

    def backend(self) -> Any:
        return activate(self.ctx.redis_url)

    def worker_argv(self, burst: bool) -> list[str]:
        argv = [sys.executable, "-m", "taskyard", "rqworker", "--url", self.ctx.redis_url]
        argv += ["--import", "bench.core_tasks", "--log-level", "WARNING"]
        argv += ["--worker-class", self.cls]
        return [*argv, "--burst"] if burst else argv

    # The I/O-bound and scale-out scenarios run ``taskyard rqworker`` with its default worker
    # class, and pass it ``--async-concurrency`` / ``--threads`` where it has them.
    def _rqworker_flags(self) -> str:
        if not hasattr(self, "_help"):
            import subprocess

            from bench.harness import ENV, ROOT

            done = subprocess.run(
                [sys.executable, "-m", "taskyard", "rqworker", "--help"],
                capture_output=True,
                text=True,
                env=ENV,
                cwd=ROOT,
                check=False,
            )
            self._help = done.stdout
        return self._help

    def default_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "taskyard", "rqworker", "--url", self.ctx.redis_url]
        return [*argv, "--import", "bench.core_tasks", "--log-level", "WARNING"]

    def io_modes(self) -> list[IoMode]:
        if self.cls != "default":
            return []  # measured under taskyard-redis-default
        flags = self._rqworker_flags()
        base = self.default_argv()
        modes = []
        for kind, flag, sweep in (
            ("async", "--async-concurrency", (250, 500, 1000)),
            ("sync", "--threads", (100,)),
        ):
            if flag in flags:
                modes.append(
                    IoMode(
                        kind,
                        "",
                        ", rqworker (default class)",
                        sweep,
                        lambda c, flag=flag: [*base, flag, str(c)],
                        lambda c, flag=flag: f"taskyard rqworker {flag} {c} (default class)",
                        title=IO_TITLE,
                    )
                )
            else:
                modes.append(
                    IoMode(
                        kind,
                        "",
                        ", rqworker (default class)",
                        (1,),
                        lambda c: base,
                        lambda c, flag=flag: (
                            "taskyard rqworker, default worker class: it has "
                            f"no {flag}, one task at a time"
                        ),
                        rss=False,
                        title=IO_TITLE,
                    )
                )
        return modes

    def fill_ids(self, n: int) -> None:
        from bench.peers.taskyard_db import fill_ids

        self.backend()
        fill_ids(n)

    @property
    def scaleout(self) -> bool:  # type: ignore[override]
        return self.cls == "default"

    def scaleout_argv(self) -> list[str]:
        return self.default_argv()

    @property
    def scaleout_label(self) -> str:
        return IO_TITLE


class TaskyardRedisForking(TaskyardRedis):
    key = "taskyard-redis-fork"
    label = "taskyard Redis, taskyard rqworker (forking Worker)"
    cls = "forking"
    drain_n = 300
    worker_note = "taskyard rqworker --worker-class forking"


class TaskyardRedisDefault(TaskyardRedis):
    """``taskyard rqworker`` with no ``--worker-class``: whatever the command's default is (the
    batching worker of the Redis issue once it lands; rq's forking Worker before that)."""

    key = "taskyard-redis-default"
    label = IO_TITLE
    cls = "default"
    worker_note = "taskyard rqworker (its default worker class)"

    @property
    def drain_n(self) -> int | None:  # type: ignore[override]
        # rq's forking Worker (the default before the batching class) forks once per job
        return 300 if "default forking" in self._rqworker_flags() else None

    def worker_argv(self, burst: bool) -> list[str]:
        argv = self.default_argv()
        return [*argv, "--burst"] if burst else argv


class PlainRQ(RQBase):
    key = "rq"
    label = "rq SimpleWorker"
    drain_n = 2000
    worker_note = "rq worker -w rq.SimpleWorker, JSON serializer"

    def queue(self) -> Any:
        from rq import Queue
        from rq.serializers import JSONSerializer

        return Queue("plain", connection=self.client(), serializer=JSONSerializer)

    def enqueue_one(self, n: int) -> float:
        enqueue = self.queue().enqueue
        started = time.perf_counter()
        for _ in range(n):
            enqueue("bench.peers.probe.noop_function")
        return time.perf_counter() - started

    def enqueue_bulk(self, n: int) -> float | None:
        from rq import Queue

        queue = self.queue()
        started = time.perf_counter()
        for start in range(0, n, 5000):
            data = [
                Queue.prepare_data("bench.peers.probe.noop_function")
                for _ in range(min(5000, n - start))
            ]
            queue.enqueue_many(data)
        return time.perf_counter() - started

    def enqueue_stamp(self, token: int, port: int) -> float:
        queue = self.queue()
        before = time.time()
        queue.enqueue("bench.peers.probe.send_stamp", token, port)
        return before

    def worker_argv(self, burst: bool) -> list[str]:
        argv = [bin_path("rq"), "worker", "--url", self.ctx.redis_url, "--serializer", "json"]
        argv += ["--quiet", "--worker-class", WORKER_CLASS[self.cls]]
        argv += ["-c", "bench.redis_rq_preload"]
        return [*argv, "--burst", "plain"] if burst else [*argv, "plain"]


class PlainRQForking(PlainRQ):
    key = "rq-fork"
    label = "rq forking Worker"
    cls = "forking"
    drain_n = 300
    worker_note = "rq worker -w rq.Worker, JSON serializer"


class DjangoTasksRQ(RQBase):
    key = "django-tasks-rq"
    label = "django-tasks-rq, rqworker (SimpleWorker)"
    drain_n = 2000
    worker_note = "django-rq rqworker --job-class django_tasks_rq.Job"

    def agent(self) -> Agent:
        if not hasattr(self, "_agent"):
            self._agent = Agent(self._env())
        return self._agent

    def _env(self) -> dict[str, str]:
        return {
            "BENCH_REDIS_URL": self.ctx.redis_url,
            "DJANGO_SETTINGS_MODULE": "bench.redis_django_settings",
            "BENCH_TASKS_MODULE": "bench.redis_django_tasks",
        }

    def enqueue_one(self, n: int) -> float:
        return float(self.agent().call(op="enqueue_one", n=n))

    def enqueue_stamp(self, token: int, port: int) -> float:
        return float(self.agent().call(op="enqueue_stamp", token=token, port=port))

    def worker_argv(self, burst: bool) -> list[str]:
        argv = [sys.executable, "-m", "django", "rqworker", "dj", "-v", "0"]
        argv += ["--job-class", "django_tasks_rq.Job", "--worker-class", WORKER_CLASS[self.cls]]
        return [*argv, "--burst"] if burst else argv

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), **self._env()}

    def close(self) -> None:
        if hasattr(self, "_agent"):
            self._agent.close()

    def versions(self) -> str:
        from importlib.metadata import version

        return f"django-tasks-rq {version('django-tasks-rq')}, django-rq {version('django-rq')}"


class DjangoTasksRQForking(DjangoTasksRQ):
    key = "django-tasks-rq-fork"
    label = "django-tasks-rq, rqworker (forking Worker)"
    cls = "forking"
    drain_n = 300
