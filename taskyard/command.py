"""``Command``: how a module describes a ``taskyard`` sub-command (``cli.py`` collects them);
``CommandError``, the one-line failure a command reports without a traceback; the argparse
types the commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

#: Exit status of a configuration or usage mistake (as argparse uses for a bad flag).
EXIT_USAGE = 2
#: Exit status of an operational failure (a backend unreachable, a task not found...).
EXIT_FAILURE = 1

_N = TypeVar("_N", int, float)


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


def _number_type(
    parse: Callable[[str], _N], noun: str, bound: _N, *, strict: bool
) -> Callable[[str], _N]:
    """An argparse type: ``parse(text)``, refused unless above ``bound`` (or at it, unless
    ``strict``), with a message naming what is accepted."""

    def convert(text: str) -> _N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < bound or (strict and value == bound):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if strict else '>='} {bound:g}, got {value:g}"
            )
        return value

    convert.__name__ = parse.__name__
    return convert


positive_int = _number_type(int, "a whole number", 1, strict=False)
"""argparse type: a whole number >= 1."""
positive_float = _number_type(float, "a number", 0.0, strict=True)
"""argparse type: a number of seconds > 0."""
not_negative_int = _number_type(int, "a whole number", 0, strict=False)
"""argparse type: a whole number >= 0."""
