"""The ``taskyard`` command line.

Every command takes ``--settings MODULE`` (or ``TASKYARD_SETTINGS``) and ``--url URL`` (or
``TASKYARD_URL``). Commands are small modules that register an ``add_arguments(parser)`` and a
``run(args) -> int``; the Django integration reuses the same definitions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import taskyard
from taskyard.command import Command
from taskyard.config import backends, configure


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings``, ``--url``, ``--log-level`` and ``--import``, shared by every command."""
    parser.add_argument(
        "--settings",
        metavar="MODULE",
        default=None,
        help="importable module defining a TASKS dict (default: $TASKYARD_SETTINGS)",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        default=None,
        help="backend URL for the default alias, e.g. sqlite:///taskyard.sqlite3, "
        "postgresql://..., redis://..., threadpool: (default: $TASKYARD_URL)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("TASKYARD_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO, or $TASKYARD_LOG_LEVEL)",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first (repeatable): task and schedule modules",
    )
    parser.add_argument(
        "--allow-import",
        dest="allowed_imports",
        action="append",
        default=[],
        metavar="PREFIX",
        help="let stored tasks name modules under this package, imported on demand "
        "(repeatable; also $TASKYARD_ALLOWED_IMPORTS and the settings' ALLOWED_IMPORTS)",
    )


def apply_common_arguments(args: argparse.Namespace, configured: bool = False) -> None:
    """Configure logging and backends from the common arguments.

    ``configured=True`` (the Django integration) keeps the existing configuration unless
    ``--settings`` or ``--url`` is given.
    """
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.settings or args.url:
        configure(settings_module=args.settings, url=args.url)
    elif not configured:
        configure()
    declare_imports(args.imports, args.allowed_imports)


def declare_imports(imports: Sequence[str], allowed: Sequence[str] = ()) -> list[str]:
    """Import the task modules the deployment declares (``--import`` plus the settings'
    ``IMPORTS``) and allow on-demand imports under ``--allow-import``, the settings'
    ``ALLOWED_IMPORTS`` (and ``$TASKYARD_ALLOWED_IMPORTS``, read by the registry itself);
    return the modules imported.

    Only these decide what a worker imports: stored task data never does (see
    ``taskyard.tasks.registry``)."""
    from taskyard.tasks import registry

    registry.allow_imports([*allowed, *_settings_list("ALLOWED_IMPORTS")])
    modules = list(dict.fromkeys([*imports, *_settings_list("IMPORTS")]))
    for module in modules:
        registry.import_declared(module)
    return modules


def _settings_list(name: str) -> list[str]:
    module_name = backends.settings_module
    if not module_name:
        return []
    module = sys.modules.get(module_name)
    values = getattr(module, name, None) or []
    return [str(value) for value in values]


# -- taskyard check ---------------------------------------------------------------------------


def _add_check(parser: argparse.ArgumentParser) -> None:
    del parser


def _run_check(args: argparse.Namespace) -> int:
    del args
    print(f"settings: {backends.settings_source}")
    problems = 0
    for alias, params in backends.settings().items():
        backend = backends[alias]
        queues = ", ".join(sorted(backend.queues)) or "(any)"
        print(f"  {alias}: {type(backend).__name__}  queues: {queues}")
        for key, value in sorted(params["OPTIONS"].items()):
            print(f"      {key} = {value!r}")
        for problem in backend.check():
            problems += 1
            print(f"    problem: {problem}")
    print("ok" if not problems else f"{problems} problem(s)")
    return 0 if not problems else 1


COMMANDS: dict[str, Command] = {}


def register(command: Command) -> None:
    COMMANDS[command.name] = command


register(
    Command("check", "show the configured backends and report problems", _add_check, _run_check)
)


#: Modules whose ``COMMANDS`` lists add sub-commands.
COMMAND_MODULES: tuple[str, ...] = (
    "taskyard.worker.commands",
    "taskyard.backends.redis.command",
    "taskyard.cron.commands",
)


def _load_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in getattr(module, "COMMANDS", []):
            register(command)


def build_parser(prog: str = "taskyard") -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog=prog, description="taskyard: background tasks, workers and operations"
    )
    parser.add_argument("--version", action="version", version=f"taskyard {taskyard.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS.values():
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        add_common_arguments(child)
        command.add_arguments(child)
        child.set_defaults(_command=command)
    return parser


def main(
    argv: Sequence[str] | None = None, configured: bool = False, prog: str = "taskyard"
) -> int:
    """Run a ``taskyard`` command; return its exit status.

    ``configured=True`` runs with the configuration already in place (Django's settings).
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        try:
            apply_common_arguments(args, configured)
        except taskyard.InvalidTask as exc:  # a bad --import or --allow-import
            raise taskyard.InvalidTaskBackend(str(exc)) from exc
        command: Command = args._command
        return command.run(args)
    except taskyard.InvalidTaskBackend as exc:
        print(f"taskyard: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
