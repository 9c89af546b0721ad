"""Shared by taskyard's management commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import math
from typing import Any

from taskyard.command import MAX_SECONDS

logger = logging.getLogger("taskyard.contrib.django")

#: The column holding worker ids (``taskyard_task.worker_id``, ``taskyard_worker``) is this long.
MAX_WORKER_ID_LENGTH = 200

#: Worker options with no meaning for an in-place drain (it runs on the calling thread).
_NOT_FOR_IN_PLACE = {
    "threads": None,
    "processes": 0,
    "health_port": None,
    "readiness_probe": None,
    "with_cron": False,
    "lease": None,
}


def autodiscover_tasks() -> list[str]:
    """Import each installed app's ``tasks`` module (where tasks and schedules live)."""
    from django.apps import apps
    from django.utils.module_loading import module_has_submodule

    found = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "tasks"):
            importlib.import_module(f"{config.name}.tasks")
            found.append(f"{config.name}.tasks")
    return found


def setup_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- argument types with django-tasks-db's validation ------------------------------------------


def database_backend_alias(value: str) -> str:
    """``--backend``: a configured taskyard Database backend (an argparse error otherwise)."""
    from taskyard.backends.database.backend import database_backend
    from taskyard.contrib.django.settings import ensure_configured
    from taskyard.exceptions import InvalidTaskBackend

    ensure_configured()
    try:
        database_backend(value)
    except (InvalidTaskBackend, KeyError) as exc:
        message = str(exc.args[0]) if exc.args else str(exc)
        raise argparse.ArgumentTypeError(
            f"Backend {value!r} is not a taskyard database backend: {message}"
        ) from None
    return value


def interval(value: str) -> float:
    """``--interval``: seconds >= 0 (0 polls again at once), finite."""
    number = float(value)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError("Must be a finite floating point value")
    if number < 0:
        raise argparse.ArgumentTypeError("Must be zero or greater")
    if number > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"Must be at most {MAX_SECONDS:g} seconds (a year)")
    return number


def max_tasks(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("Must be greater than zero")
    return number


def worker_id(value: str) -> str:
    if not value:
        raise argparse.ArgumentTypeError("Worker id must not be empty")
    if len(value) > MAX_WORKER_ID_LENGTH:
        raise argparse.ArgumentTypeError(
            f"Worker ids must be at most {MAX_WORKER_ID_LENGTH} characters (got {len(value)})"
        )
    return value


def retype(parser: argparse.ArgumentParser, dest: str, kind: Any) -> None:
    """Give the already defined option ``dest`` another argument type (validation)."""
    for action in parser._actions:
        if action.dest == dest:
            action.type = kind
            return
    raise LookupError(f"no option with dest {dest!r}")


def add_worker_validation(parser: argparse.ArgumentParser) -> None:
    """django-tasks-db's validation on ``taskyard worker``'s flags: ``--backend`` must name a
    Database backend, ``--interval`` may be 0, ``--worker-id`` must fit its column."""
    retype(parser, "backend", database_backend_alias)
    retype(parser, "interval", interval)
    retype(parser, "worker_id", worker_id)


# -- the worker, or an in-place drain inside a transaction ---------------------------------------


def settings_qualifiers(args: argparse.Namespace) -> None:
    """Add the qualifiers this worker's Django settings meet (``Setting`` qualifiers)."""
    from taskyard.contrib.django.qualifiers import worker_qualifiers

    given = dict(args.qualifier or [])
    args.qualifier = [*sorted({**worker_qualifiers(), **given}.items())]


def drain_in_place(args: argparse.Namespace) -> bool:
    """A burst run whose queue connection is inside ``atomic()`` (a ``TestCase``): run the due
    tasks on this thread and connection instead of on worker threads that could not see the
    transaction's rows. True when it did."""
    from taskyard.backends.database.backend import database_backend
    from taskyard.contrib.django.testing import drain, in_transaction
    from taskyard.worker.commands import worker_config

    if not args.burst:
        return False
    backend = database_backend(args.backend)
    if not in_transaction(backend):
        return False
    config = worker_config(args, backend.queues)
    ignored = [
        f"--{name.replace('_', '-')}"
        for name, default in _NOT_FOR_IN_PLACE.items()
        if getattr(args, name, default) not in (default, None, False)
    ]
    if ignored:
        logger.warning(
            "the queue's database connection is inside a transaction: tasks run on this "
            "thread and connection; %s do not apply",
            ", ".join(ignored),
        )
    results = drain(
        backend,
        config.queues,
        config.max_tasks,
        exclude_queues=config.exclude_queues,
        qualifiers=config.qualifiers,
        worker_id=config.worker_id,
        batch_size=config.batch_size,
    )
    logger.info("ran %d task(s) in place (inside the caller's transaction)", len(results))
    return True
