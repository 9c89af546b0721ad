"""``taskyard rqworker [queues...]``: rq's worker, set up for taskyard jobs.

The connection and the JSON serializer come from the Redis backend in the settings
(``--backend ALIAS``, default ``default``); the queues default to that backend's ``QUEUES``.
The worker is one of rq's classes (``--worker-class forking|simple|pool``) with taskyard's
priority levels, reaper and job class (see ``taskyard.backends.redis.worker``), so rq's own
tools (``rq info``, rq-dashboard) see ordinary rq workers and jobs.

If Redis goes away under it, rq's loop backs off and reconnects; if rq gives up (a connection
error in the middle of a job), the command starts a fresh worker once Redis answers again.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
from typing import Any

from taskyard.command import Command

logger = logging.getLogger("taskyard.backends.redis")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "queues",
        nargs="*",
        metavar="QUEUE",
        help="queue names, in order of precedence after priority (default: the backend's QUEUES)",
    )
    parser.add_argument(
        "--backend", default="default", metavar="ALIAS", help="alias of the Redis backend"
    )
    parser.add_argument(
        "--worker-class",
        choices=["batch", "forking", "simple", "pool"],
        default="batch",
        help="batch (default: taskyard's batching worker: many jobs per Redis round trip, "
        "--threads and an event loop), rq's Worker (forking: a work horse per job), "
        "SimpleWorker (simple: one job at a time in the worker process) or WorkerPool (pool: "
        "--num-workers forking workers)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="with --worker-class batch: executor threads for sync tasks (default 16)",
    )
    parser.add_argument(
        "--async-concurrency",
        type=_not_negative_int,
        default=None,
        metavar="N",
        help="with --worker-class batch: async tasks run at once on the worker's event loop "
        "(default 100; 0: on the threads)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="with --worker-class batch: most jobs claimed per round trip (default 50)",
    )
    parser.add_argument(
        "--num-workers", type=int, default=2, help="worker processes with --worker-class pool"
    )
    parser.add_argument(
        "--with-scheduler",
        action="store_true",
        help="also run rq's scheduler (run_after, retry backoff); pool workers always do",
    )
    parser.add_argument("--burst", action="store_true", help="run what is due, then exit")
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs")
    parser.add_argument(
        "--name", default=None, help="worker name (default hostname:pid); its taskyard worker id"
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="serve /health/liveness, /health/readiness, /processor/monitoring and /metrics",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=None,
        help="seconds a warm shutdown (SIGTERM) waits for the running task; past it the task is "
        "stopped and handed back to run again (default: wait as long as it takes, as rq does)",
    )
    parser.add_argument(
        "--reap-interval",
        type=_seconds,
        default=1.0,
        help="seconds between passes that hand back attempts whose lease ran out (0: none)",
    )
    parser.add_argument(
        "--maintenance-interval",
        type=int,
        default=600,
        help="seconds between rq's own registry clean-ups (rq's default 600)",
    )
    parser.add_argument(
        "--allow-rq-jobs",
        action="store_true",
        help="also run plain rq jobs found in these queues (default: only taskyard tasks)",
    )
    from taskyard.worker.startup import add_connect_arguments

    add_connect_arguments(parser)


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _not_negative_int(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _positive_int(text)


BATCH_ONLY = ("threads", "async_concurrency", "batch_size")


def _fail(message: str) -> int:
    from taskyard.command import CommandError

    raise CommandError(message)


def _run(args: argparse.Namespace) -> int:
    from taskyard.backends.redis.backend import RedisBackend
    from taskyard.backends.redis.keys import bad_queue_name
    from taskyard.backends.redis.worker import WORKER_CLASSES
    from taskyard.config import backends
    from taskyard.tasks.limits import MAX_ID_LENGTH, name_problem

    backend = backends[args.backend]
    if not isinstance(backend, RedisBackend):
        return _fail(
            f"backend {args.backend!r} is {type(backend).__name__}, not the Redis backend "
            "(use taskyard worker for the Database backend)"
        )
    queues = list(args.queues) or list(backends.settings()[args.backend]["QUEUES"]) or ["default"]
    for queue in queues:
        problem = bad_queue_name(queue)
        if queue.strip() == "*":
            problem = "'*' is not a queue name: rq workers listen to named queues; name them"
        if problem:
            return _fail(problem)
    if args.worker_class == "pool" and args.max_jobs is not None:
        return _fail("--max-jobs cannot be combined with --worker-class pool")
    if args.worker_class != "batch":
        for dest in BATCH_ONLY:
            if getattr(args, dest) is not None:
                flag = "--" + dest.replace("_", "-")
                return _fail(f"{flag} applies to --worker-class batch only")
    elif args.allow_rq_jobs:
        return _fail(
            "--allow-rq-jobs is not supported by the batching worker (it runs taskyard tasks "
            "only): use --worker-class simple or forking to run plain rq jobs"
        )
    if args.name is not None and name_problem(args.name, MAX_ID_LENGTH):
        return _fail(f"--name {args.name!r} {name_problem(args.name, MAX_ID_LENGTH)}")
    job_class = None  # taskyard's worker classes guard rq's own (see backends.redis.policy)
    from taskyard.worker.startup import reach_backend

    reach_backend(backend, args.connect_retries)
    if args.worker_class == "batch":
        return _run_batch(args, backend, queues)
    base = WORKER_CLASSES["simple" if args.worker_class == "simple" else "forking"]
    worker_class: Any = type(
        base.__name__,
        (base,),
        {
            "reap_interval": args.reap_interval,
            "allow_rq_jobs": args.allow_rq_jobs,
            "lease": backend._lease,
            "shutdown_timeout": args.shutdown_timeout,
            "__module__": base.__module__,
        },
    )
    client = backend.new_client()
    logger.info(
        "taskyard rqworker: %s worker on %s, queues %s",
        args.worker_class,
        backend.describe_connection(),
        ", ".join(queues),
    )
    if args.worker_class == "pool":
        return _run_pool(args, client, queues, worker_class, job_class)
    return _Supervisor(args, client, queues, worker_class, job_class).run()


def _health_server(args: argparse.Namespace, source: Any) -> Any:
    if args.health_port is None:
        return None
    from taskyard.worker.health import HealthServer

    return HealthServer(source, args.health_port).start()


def _run_batch(args: argparse.Namespace, backend: Any, queues: list[str]) -> int:
    """The batching worker in a child process watched by ``BatchSupervisor``."""
    from taskyard.backends.redis.batch_supervisor import BatchSupervisor, Heartbeat
    from taskyard.backends.redis.batch_worker import default_name
    from taskyard.backends.redis.counters import WorkerCounters
    from taskyard.backends.redis.health import RQHealth

    client = backend.new_client()
    name = args.name or default_name()

    def run_child(heartbeat: Heartbeat) -> int:
        worker = _batch_worker(args, backend, queues, name, heartbeat.beat)
        return int(worker.run())

    supervisor = BatchSupervisor(client, name, run_child)
    logger.info(
        "taskyard rqworker: batch worker on %s, queues %s",
        backend.describe_connection(),
        ", ".join(queues),
    )
    source = RQHealth(
        client,
        queues,
        alive=supervisor.alive,
        stopping=lambda: supervisor.stopping,
        counters=WorkerCounters(client, lambda: [name]).read,
    )
    server = _health_server(args, source)
    try:
        return supervisor.run()
    finally:
        if server is not None:
            server.stop()


def _batch_worker(
    args: argparse.Namespace, backend: Any, queues: list[str], name: str, beat: Any
) -> Any:
    from taskyard.backends.redis.backend import RedisBackend
    from taskyard.backends.redis.batch_worker import BatchWorker

    return BatchWorker(
        backend.new_client(),
        queues,
        name,
        sender=RedisBackend,
        threads=args.threads if args.threads is not None else 16,
        async_concurrency=args.async_concurrency if args.async_concurrency is not None else 100,
        batch_size=args.batch_size if args.batch_size is not None else 50,
        lease=backend._lease,
        shutdown_timeout=args.shutdown_timeout,
        burst=args.burst,
        max_jobs=args.max_jobs,
        with_scheduler=args.with_scheduler,
        reap_interval=args.reap_interval,
        maintenance_interval=args.maintenance_interval,
        logging_level=args.log_level,
        on_stuck="exit",  # the supervising parent starts a new process
        on_beat=beat,
    )


def _run_pool(
    args: argparse.Namespace, client: Any, queues: list[str], worker_class: Any, job_class: Any
) -> int:
    from rq.worker_pool import WorkerPool

    from taskyard.backends.redis.health import RQHealth
    from taskyard.backends.redis.serializer import JSONSerializer

    pool = WorkerPool(
        queues,
        connection=client,
        num_workers=args.num_workers,
        worker_class=worker_class,
        serializer=JSONSerializer,
        job_class=job_class,
    )
    from taskyard.backends.redis.counters import WorkerCounters

    source = RQHealth(
        client,
        queues,
        alive=lambda: pool.status == WorkerPool.Status.STARTED,
        stopping=lambda: pool.status == WorkerPool.Status.STOPPED,
        processes=lambda: pool.number_of_active_workers,
        counters=WorkerCounters(client, lambda: list(pool.worker_dict)).read,
    )
    server = _health_server(args, source)
    try:
        pool.start(burst=args.burst, logging_level=args.log_level)
    finally:
        if server is not None:
            server.stop()
    return 0


class _Supervisor:
    """Runs one rq worker in this process and starts a new one if rq's loop gives up."""

    def __init__(
        self,
        args: argparse.Namespace,
        client: Any,
        queues: list[str],
        worker_class: Any,
        job_class: Any,
    ) -> None:
        self.args = args
        self.client = client
        self.queues = queues
        self.worker_class = worker_class
        self.job_class = job_class
        self.name = args.name or f"{socket.gethostname()}:{os.getpid()}"
        self.worker: Any = None
        self.running = threading.Event()
        self.done = 0

    def _stop_requested(self) -> bool:
        worker = self.worker
        return worker is not None and (
            worker._stop_requested or worker._shutdown_requested_date is not None
        )

    def run(self) -> int:
        from redis.exceptions import ConnectionError, TimeoutError

        from taskyard.backends.redis.counters import WorkerCounters
        from taskyard.backends.redis.health import RQHealth
        from taskyard.backends.redis.serializer import JSONSerializer

        source = RQHealth(
            self.client,
            self.queues,
            alive=self.running.is_set,
            stopping=self._stop_requested,
            counters=WorkerCounters(self.client, lambda: [self.name]).read,
        )
        server = _health_server(self.args, source)
        backoff = 1.0
        try:
            while True:
                left = None if self.args.max_jobs is None else self.args.max_jobs - self.done
                if left is not None and left <= 0:
                    return 0
                self.worker = self.worker_class(
                    self.queues,
                    name=self.name,
                    connection=self.client,
                    serializer=JSONSerializer,
                    job_class=self.job_class,
                    maintenance_interval=self.args.maintenance_interval,
                )
                self.running.set()
                started = time.monotonic()
                try:
                    self.worker.work(
                        burst=self.args.burst,
                        max_jobs=left,
                        with_scheduler=self.args.with_scheduler,
                        logging_level=self.args.log_level,
                    )
                    failure = None
                except (ConnectionError, TimeoutError) as exc:
                    failure = exc
                finally:
                    self.running.clear()
                    self.done += self.worker.successful_job_count + self.worker.failed_job_count
                if self._stop_requested() or (failure is None and self._finished()):
                    return 0
                logger.warning(
                    "rq's worker loop stopped (%s); starting a new worker once Redis answers",
                    failure or "see rq's log above",
                )
                if time.monotonic() - started < 10:
                    time.sleep(backoff)  # failing fast: do not spin
                    backoff = min(backoff * 2, 30.0)
                else:
                    backoff = 1.0
                self._wait_for_redis()
        finally:
            if server is not None:
                server.stop()

    def _finished(self) -> bool:
        """Did the worker end by design (burst done, --max-jobs reached)?"""
        if self.args.burst:
            return True
        return self.args.max_jobs is not None and self.done >= self.args.max_jobs

    def _wait_for_redis(self) -> None:
        backoff = 1.0
        while True:
            try:
                self.client.ping()
                # The dead worker may not have registered its death: clear its keys.
                self.client.delete(self.worker.key, self.worker.executions_key)
                return
            except Exception as exc:
                logger.warning("Redis unreachable (%s); retrying in %.0fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


COMMANDS = [
    Command(
        "rqworker",
        "run an rq worker for the Redis backend (rq's worker, scheduler and job format)",
        _add_arguments,
        _run,
    )
]
