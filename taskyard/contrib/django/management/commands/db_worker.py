"""``manage.py db_worker``: django-tasks-db's command, running taskyard's worker.

Accepts django-tasks-db 0.13's flags with its validation (``--queue-name``, ``--exclude-queues``
only with ``--queue-name '*'``, ``--interval`` >= 0, ``--batch``, ``--reload``, ``--backend``
naming a Database backend, ``--no-startup-delay``, ``--max-tasks`` > 0, ``--worker-id``) and all
of ``taskyard worker``'s (threads, processes, lease, health port, ...). Inside a transaction (a
``TestCase``), ``--batch`` runs the tasks on the calling thread and connection.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskyard.contrib.django.management.commands import _base


class Command(BaseCommand):
    help = "Run a database background worker (taskyard)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from django.conf import settings

        from taskyard.worker.commands import add_worker_arguments

        add_worker_arguments(parser)
        _base.add_worker_validation(parser)
        parser.add_argument(
            "--exclude-queues",
            default="",
            help="queues not to process, comma-separated (with --queue-name '*')",
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="process everything due, then exit (taskyard's --burst)",
        )
        parser.add_argument(
            "--max-tasks",
            type=_base.max_tasks,
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
            default=settings.DEBUG,
            help="restart the worker when code changes (default: DEBUG); not with --batch "
            "or --processes; not for production",
        )
        parser.add_argument("--import", dest="imports", action="append", default=[])

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.contrib.django.settings import ensure_configured

        _base.setup_logging(options["verbosity"])
        ensure_configured()
        _base.autodiscover_tasks()
        namespace = argparse.Namespace(**options)
        namespace.burst = options["burst"] or options["batch"]
        if options["max_tasks"] is not None:
            if options["max_tasks_per_process"] is not None:
                raise CommandError("give --max-tasks or --max-tasks-per-process, not both")
            namespace.max_tasks_per_process = options["max_tasks"]
        excluded = sorted({q.strip() for q in options["exclude_queues"].split(",") if q.strip()})
        if excluded and (options["queues"] or "").strip() != "*":
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        namespace.exclude_queues = excluded
        _base.settings_qualifiers(namespace)
        reload = options["reload"]
        if reload and namespace.burst:
            _base.logger.warning("--reload and --batch cannot be given together: not reloading")
            reload = False
        from taskyard.command import CommandError as TaskyardCommandError

        try:
            if _base.drain_in_place(namespace):
                return
        except argparse.ArgumentTypeError as exc:
            raise CommandError(str(exc)) from exc
        except TaskyardCommandError as exc:
            raise CommandError(str(exc), returncode=exc.code) from None
        if reload:
            if options["processes"]:
                raise CommandError("--reload cannot be used with --processes")
            from django.utils import autoreload

            autoreload.run_with_reloader(self._run, namespace=namespace)
            return
        self._run(namespace)

    def _run(self, namespace: argparse.Namespace) -> None:
        from taskyard.command import CommandError as TaskyardCommandError
        from taskyard.worker.commands import run_worker

        try:
            code = run_worker(namespace)
        except TaskyardCommandError as exc:
            raise CommandError(str(exc), returncode=exc.code) from None
        if code:
            raise CommandError(f"worker exited with status {code}", returncode=code)
