"""``manage.py enqueue_command NAME [ARGS...]``: run any management command as a task."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Queue another management command to run in a worker; prints the task id"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("command_name")
        parser.add_argument("command_args", nargs=argparse.REMAINDER)
        parser.add_argument("--queue", default=None, help="queue to use (default: the task's)")
        parser.add_argument("--priority", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.contrib.django.settings import ensure_configured
        from taskyard.contrib.django.tasks import run_management_command

        name = options["command_name"]
        if name not in get_commands():
            raise CommandError(f"unknown management command {name!r}")
        ensure_configured()
        task = run_management_command.using(
            queue_name=options["queue"], priority=options["priority"]
        )
        result = task.enqueue(name, list(options["command_args"]))
        self.stdout.write(f"{result.id} {result.status}")
