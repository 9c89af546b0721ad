"""``manage.py checktaskprocessorthreadhealth``: exit 0 if workers are heartbeating, else 1
(the Flagsmith task processor's health command)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Exit 0 if taskyard workers are heartbeating against the queue database, 1 if not"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--backend", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.backends.database.backend import database_backend
        from taskyard.contrib.django.settings import ensure_configured
        from taskyard.worker.probes import health_check

        ensure_configured()
        checks = health_check(
            database_backend(options["backend"]),
            require_workers=True,
            probe_queue=None,
            probe_timeout=0,
        )
        for name, ok, detail in checks:
            self.stdout.write(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not all(ok for _, ok, _ in checks):
            raise CommandError("unhealthy", returncode=1)
