"""``manage.py db_worker``: django-tasks-db's command, running taskyard's worker.

Accepts django-tasks-db's flags (``--queue-name``, ``--exclude-queues``, ``--interval``,
``--batch``, ``--backend``, ``--no-startup-delay``, ``--max-tasks``, ``--worker-id``) and all of
``taskyard worker``'s (threads, processes, lease, health port, ...).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskyard.contrib.django.management.commands._base import autodiscover_tasks, setup_logging


class Command(BaseCommand):
    help = "Run a database background worker (taskyard)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from taskyard.worker.commands import add_worker_arguments

        add_worker_arguments(parser)
        parser.add_argument(
            "--exclude-queues", default="", help="queues not to process, comma-separated"
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="process everything due, then exit (taskyard's --burst)",
        )
        parser.add_argument(
            "--max-tasks",
            type=int,
            default=None,
            dest="max_tasks",
            help="exit after running this many tasks",
        )
        parser.add_argument(
            "--no-startup-delay",
            action="store_true",
            help="accepted for django-tasks-db compatibility: taskyard starts without a delay",
        )
        parser.add_argument(
            "--reload",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="not supported: run the worker under a process manager",
        )
        parser.add_argument("--import", dest="imports", action="append", default=[])

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.contrib.django.settings import ensure_configured
        from taskyard.worker.commands import run_worker

        if options["reload"]:
            raise CommandError(
                "--reload is not supported by taskyard's db_worker; restart the "
                "worker from your process manager (systemd, supervisord, k8s)"
            )
        setup_logging(options["verbosity"])
        ensure_configured()
        autodiscover_tasks()
        namespace = argparse.Namespace(**options)
        namespace.burst = options["burst"] or options["batch"]
        if options["max_tasks"] is not None:
            if options["max_tasks_per_process"] is not None:
                raise CommandError("give --max-tasks or --max-tasks-per-process, not both")
            namespace.max_tasks_per_process = options["max_tasks"]
        excluded = {q.strip() for q in options["exclude_queues"].split(",") if q.strip()}
        namespace.exclude_queues = sorted(excluded)
        from taskyard.command import CommandError as TaskyardCommandError

        try:
            code = run_worker(namespace)
        except TaskyardCommandError as exc:
            raise CommandError(str(exc), returncode=exc.code) from None
        if code:
            raise CommandError(f"worker exited with status {code}", returncode=code)
