"""The ``taskyard`` command line.

Every command:

- puts the current directory first on ``sys.path`` (as ``python -m``, Celery and rq do), so
  ``--import myapp.tasks`` and ``--settings myapp.settings`` find the project you run it from;
- takes ``--settings MODULE`` and ``--url URL``; a flag wins over its environment variable
  (``TASKYARD_SETTINGS``, ``TASKYARD_URL``), which wins over the default (see ``config.py``);
- reports an operational error (a configuration mistake, an unreachable or missing database,
  a module that cannot be imported) as one line on stderr and exits 2 (configuration) or 1
  (anything else); ``--traceback`` shows the traceback instead.

Commands are small modules that register an ``add_arguments(parser)`` and a
``run(args) -> int``; the Django integration reuses the same definitions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

import taskyard
from taskyard.command import EXIT_FAILURE, EXIT_USAGE, Command, CommandError
from taskyard.config import backends
from taskyard.exceptions import InvalidTask, InvalidTaskBackend, TaskyardError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Exit status after stdout was closed early (``taskyard status | head``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


def put_cwd_first() -> None:
    """Put the current directory first on ``sys.path`` (once), as ``python -m`` does."""
    cwd = os.getcwd()
    if sys.path[:1] not in ([cwd], [""]):
        sys.path.insert(0, cwd)


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log level: use {', '.join(n.lower() for n in LOG_LEVELS)}"
        )
    return level


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings``, ``--url``, ``--log-level``, ``--import`` and ``--traceback``, shared by
    every command."""
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
        type=_log_level,
        default=None,
        metavar="LEVEL",
        help="debug, info, warning or error, any case (default: $TASKYARD_LOG_LEVEL, else info)",
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
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show the Python traceback instead of a one-line message",
    )


def resolve_log_level(args: argparse.Namespace) -> str:
    """The flag, else ``TASKYARD_LOG_LEVEL``, else ``INFO``; a bad variable names itself."""
    if args.log_level:
        return str(args.log_level)
    text = os.environ.get("TASKYARD_LOG_LEVEL")
    if not text:
        return "INFO"
    try:
        return _log_level(text)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(f"environment variable TASKYARD_LOG_LEVEL: {exc}") from None


def apply_common_arguments(args: argparse.Namespace, configured: bool = False) -> None:
    """Configure logging and backends from the common arguments, then import ``--import``
    modules and the settings module's ``IMPORTS``.

    Flags win over ``TASKYARD_SETTINGS``/``TASKYARD_URL``, which win over the default.
    ``configured=True`` (the Django integration) keeps the existing configuration unless
    ``--settings`` or ``--url`` is given.
    """
    args.log_level = resolve_log_level(args)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if configured:
        if args.settings or args.url:
            backends.configure(settings_module=args.settings, url=args.url)
    else:
        backends.configure(
            settings_module=args.settings or os.environ.get("TASKYARD_SETTINGS") or None,
            url=args.url or os.environ.get("TASKYARD_URL") or None,
        )
    declare_imports(args.imports, args.allowed_imports)


def import_task_modules(names: Sequence[str]) -> None:
    """Import the modules a command was told to (``--import``, settings ``IMPORTS``).

    A module that is not found is a one-line ``CommandError`` saying where it was looked for;
    an error raised while importing a module that exists is the module's own bug and keeps
    its traceback.
    """
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
            raise CommandError(
                f"cannot import {name!r}: {exc}. The current directory ({os.getcwd()}) is "
                "first on sys.path: run the command from the directory that holds the package, "
                "or install the package into this environment"
            ) from exc


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
    import_task_modules(modules)
    return modules


def _settings_list(name: str) -> list[str]:
    module_name = backends.settings_module
    if not module_name:
        return []
    module = sys.modules.get(module_name)
    values = getattr(module, name, None) or []
    return [str(value) for value in values]


def describe_failure(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status for an operational error, or ``None`` for an
    error that deserves its traceback (a bug)."""
    if isinstance(exc, CommandError):
        return str(exc), exc.code
    if isinstance(exc, InvalidTaskBackend):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, InvalidTask):
        return str(exc), EXIT_USAGE
    if isinstance(exc, TaskyardError):
        return str(exc), EXIT_FAILURE
    if isinstance(exc, ImportError) and "pip install" in str(exc):
        return str(exc), EXIT_USAGE  # a missing extra
    module = type(exc).__module__ or ""
    if isinstance(exc, OSError) or module.split(".")[0] in ("sqlite3", "psycopg", "redis", "rq"):
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else exc!r}", EXIT_FAILURE
    return None


def _stdout_closed() -> int:
    """stdout's reader went away (``| head``): silence the final flush, exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


# -- taskyard check ---------------------------------------------------------------------------


def _add_check(parser: argparse.ArgumentParser) -> None:
    del parser


def _run_check(args: argparse.Namespace) -> int:
    del args
    print(f"settings: {backends.settings_source}")
    problems = 0
    for alias, params in backends.settings().items():
        backend = backends[alias]
        open_existing = getattr(backend, "open_existing", None)
        if open_existing is not None:
            open_existing()  # check creates nothing: it names a missing database
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
    "taskyard.worker.ops_commands",
    "taskyard.inspection",
    "taskyard.backends.redis.command",
    "taskyard.cron.commands",
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in getattr(module, "COMMANDS", []):
            register(command)


def build_parser(prog: str = "taskyard") -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="taskyard: background tasks, workers and operations. Every command runs "
        "with the current directory first on sys.path.",
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
    put_cwd_first()
    try:
        parser = build_parser(prog)  # imports every command's module: Ctrl-C may land here
    except KeyboardInterrupt:
        return 130
    args = parser.parse_args(argv)
    command: Command = args._command
    try:
        apply_common_arguments(args, configured)
        code = command.run(args)
        sys.stdout.flush()  # here, not at exit: a reader gone away (`| head`) is handled below
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except Exception as exc:
        failure = describe_failure(exc)
        if failure is None or args.traceback:
            raise
        message, code = failure
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _stdout_closed()
        print(f"{prog} {command.name}: {message}", file=sys.stderr)
        return code
