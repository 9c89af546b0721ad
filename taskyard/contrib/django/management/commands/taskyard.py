"""``manage.py taskyard ...``: the full taskyard command line, configured from Django.

Django's own options belong to Django wherever they appear: ``--settings`` and ``--pythonpath``
(``manage.py`` already applied them), ``--traceback``, ``--no-color``, ``--force-color``,
``--skip-checks`` and ``-v``/``--verbosity`` (0: warnings only, 2 and 3: debug) are taken out
of the taskyard arguments. ``worker`` adds the qualifiers the Django settings meet
(``Setting``); ``worker --burst`` inside a transaction (a ``TestCase``) runs the tasks on the
calling thread and connection.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskyard.contrib.django.management.commands import _base

#: Django's options that take a value / that are flags.
DJANGO_VALUE_OPTIONS = ("--settings", "--pythonpath", "--verbosity", "-v")
DJANGO_FLAG_OPTIONS = ("--traceback", "--no-color", "--force-color", "--skip-checks")
_LOG_LEVELS = {"0": "WARNING", "1": "INFO", "2": "DEBUG", "3": "DEBUG"}


def split_django_options(argv: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    """(taskyard's arguments, Django's options found among them)."""
    rest: list[str] = []
    found: dict[str, str | bool] = {}
    items = iter(argv)
    for item in items:
        name, sep, value = item.partition("=")
        if name in DJANGO_VALUE_OPTIONS:
            found[name.lstrip("-")] = value if sep else next(items, "")
        elif item.startswith("-v") and item[2:].isdigit():
            found["v"] = item[2:]
        elif item in DJANGO_FLAG_OPTIONS:
            found[item.lstrip("-")] = True
        else:
            rest.append(item)
    return rest, found


class Command(BaseCommand):
    help = (
        "taskyard's command line (worker, status, health, prune, cron, ...) with Django's settings"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "argv",
            nargs=argparse.REMAINDER,
            help="a taskyard command and its arguments, e.g. worker --threads 8",
        )

    def handle(self, *args: Any, argv: list[str], **options: Any) -> None:
        from taskyard.cli import main
        from taskyard.contrib.django.qualifiers import qualifier_flags
        from taskyard.contrib.django.settings import ensure_configured

        argv, django_options = split_django_options(list(argv))
        verbosity = django_options.get("verbosity", django_options.get("v"))
        if isinstance(verbosity, str) and "--log-level" not in argv:
            if verbosity not in _LOG_LEVELS:
                raise CommandError(f"--verbosity must be 0, 1, 2 or 3, got {verbosity!r}")
            argv += ["--log-level", _LOG_LEVELS[verbosity]]
        ensure_configured()
        _base.autodiscover_tasks()
        if argv and argv[0] == "worker":
            argv += qualifier_flags()
            if self._drained_in_place(argv):
                return
        code = main(argv or ["--help"], configured=True, prog="manage.py taskyard")
        if code:
            raise CommandError(f"exit status {code}", returncode=code)

    def _drained_in_place(self, argv: list[str]) -> bool:
        from taskyard.cli import apply_common_arguments, build_parser

        parsed = build_parser("manage.py taskyard").parse_args(argv)
        if not parsed.burst or parsed.settings or parsed.url:
            return False
        apply_common_arguments(parsed, configured=True)
        try:
            return _base.drain_in_place(parsed)
        except argparse.ArgumentTypeError as exc:
            raise CommandError(str(exc)) from exc
