"""arq (async-native, Redis): one ``arq`` worker process, async tasks. arq pins a redis-py
older than rq's, so its worker and its client (``bench.peers.arq_agent``) run under the
Python of ``.venv-bench-aio`` (``--aio-python``); without one, arq is left out. Start and
finish times come from its hooks (``bench.peers.recorder``)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.peers.base import Agent, IoMode, RecordedSubject

#: jobs at once for no-op tasks: the fastest of 10, 50 and 100 in a tuning run on this machine
#: ($BENCH_PEER_CONCURRENCY overrides)
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "50"))


class Arq(RecordedSubject):
    key = "arq"
    label = "arq"
    store = "redis"
    burst = True
    worker_note = f"arq worker, max_jobs {CONCURRENCY}, poll_delay 0.01 s, async tasks"

    def available(self) -> bool:
        return bool(self.ctx.aio_python) and Path(self.ctx.aio_python).exists()

    def agent(self) -> Agent:
        if not hasattr(self, "_agent"):
            env = {"BENCH_REDIS_URL": self.ctx.redis_url}
            self._agent = Agent(env, "bench.peers.arq_agent", self.ctx.aio_python)
        return self._agent

    def reset(self) -> None:
        import redis

        redis.Redis.from_url(self.ctx.redis_url).flushdb()
        self.clear_records()

    def enqueue_one(self, n: int) -> float:
        return float(self.agent().call(op="enqueue", name="noop", n=n, kwargs={}))

    def enqueue_stamp(self, token: int, port: int) -> float:
        return float(self.agent().call(op="enqueue_stamp", token=token, port=port))

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        assert kind == "async"
        self.agent().call(op="enqueue", name="sleep_async", n=n, kwargs={"seconds": seconds})

    def fill_ids(self, n: int) -> None:
        self.agent().call(op="fill_ids", n=n)

    def argv(self, concurrency: int, burst: bool = False) -> list[str]:
        argv = [str(Path(self.ctx.aio_python).parent / "arq"), "bench.peers.arq_app.WorkerSettings"]
        return [*argv, "--burst"] if burst else argv

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(CONCURRENCY, burst)

    def worker_env(self) -> dict[str, str]:
        return self.env(CONCURRENCY)

    def env(self, concurrency: int) -> dict[str, str]:
        return {
            **super().worker_env(),
            "BENCH_REDIS_URL": self.ctx.redis_url,
            "BENCH_CONCURRENCY": str(concurrency),
        }

    def io_modes(self) -> list[IoMode]:
        return [
            IoMode(
                "async",
                "",
                "",
                (50, 100, 500, 1000),
                self.argv,
                lambda c: f"arq worker, max_jobs {c}",
                env=self.env,
            )
        ]

    def close(self) -> None:
        if hasattr(self, "_agent"):
            self._agent.close()
            del self._agent

    def versions(self) -> str:
        return str(self.agent().call(op="version"))
