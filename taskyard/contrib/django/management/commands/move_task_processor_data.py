"""``manage.py move_task_processor_data --source-db A --target-db B [--no-destroy]``."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Move taskyard's task rows from one database alias to another"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--source-db", required=True, help="database alias holding the tasks")
        parser.add_argument("--target-db", required=True, help="database alias to move them to")
        parser.add_argument("--no-destroy", action="store_true", help="copy, keep the source")
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.backends.database.migrate import migrate
        from taskyard.contrib.django.database import django_connector
        from taskyard.exceptions import InvalidTaskBackend
        from taskyard.worker.operations import MoveRefused, move_data

        if options["source_db"] == options["target_db"]:
            raise CommandError("--source-db and --target-db are the same database")
        try:
            source = django_connector(options["source_db"])
            target = django_connector(options["target_db"])
        except InvalidTaskBackend as exc:
            raise CommandError(str(exc)) from exc
        migrate(target)
        try:
            moved = move_data(
                source, target, destroy=not options["no_destroy"], batch_size=options["batch_size"]
            )
        except MoveRefused as exc:
            raise CommandError(f"refused: {exc}") from exc
        self.stdout.write(
            f"Moved {moved} task(s) from {options['source_db']!r} to "
            f"{options['target_db']!r}" + (" (source kept)" if options["no_destroy"] else "")
        )
