"""``Command``: how a module describes a ``taskyard`` sub-command (``cli.py`` collects them);
``CommandError``, the one-line failure a command reports without a traceback; the argparse
types the commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

#: Exit status of a configuration or usage mistake (as argparse uses for a bad flag).
EXIT_USAGE = 2
#: Exit status of an operational failure (a backend unreachable, a task not found...).
EXIT_FAILURE = 1


@dataclass(frozen=True)
class Command:
    """A sub-command: its name, one-line help, argument definitions and what it runs.

    ``run(args)`` returns the exit status. The common options (``--settings``, ``--url``,
    ``--log-level``, ``--import``, ``--traceback``) are added and applied by the command line
    itself.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A command cannot go on: ``message`` is printed as one line, ``code`` is the exit status
    (``EXIT_USAGE`` for a configuration mistake, ``EXIT_FAILURE`` otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- argparse types ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def not_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value
