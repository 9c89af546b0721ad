"""``Command``: how a module describes a ``taskyard`` sub-command (``cli.py`` collects them);
``CommandError``, the one-line failure a command reports without a traceback; the argparse
types the commands share."""

from __future__ import annotations

import argparse
import math
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


#: The largest number of seconds a duration option accepts (a year): beyond it, waits and
#: lease times overflow the platform's clocks (``inf`` or ``1e300`` used to crash a worker).
MAX_SECONDS = 365 * 86400.0
#: The longest age accepted by ``prune`` (``--older-than``, ``--min-age-days``): 100 years;
#: "now" minus more overflows the date.
MAX_DURATION_DAYS = 36500


def check_seconds(value: float, what: str, minimum: float = 0.0, strict: bool = True) -> float:
    """``value`` if it is a finite number of seconds above ``minimum`` (or equal to it, when
    not ``strict``) and at most ``MAX_SECONDS``; ``ValueError`` naming ``what`` otherwise."""
    low_ok = value > minimum if strict else value >= minimum
    if not math.isfinite(value) or not low_ok or value > MAX_SECONDS:
        bound = ">" if strict else ">="
        raise ValueError(
            f"{what} must be a finite number of seconds {bound} {minimum:g} and at most "
            f"{MAX_SECONDS:g} (a year), got {value!r}"
        )
    return value


def _number_type(
    parse: Callable[[str], _N],
    noun: str,
    bound: _N,
    *,
    strict: bool,
    maximum: _N | None = None,
    maximum_noun: str = "",
) -> Callable[[str], _N]:
    """An argparse type: ``parse(text)``, refused unless above ``bound`` (or at it, unless
    ``strict``) and finite (at most ``maximum`` if given), with a message naming what is
    accepted."""

    def convert(text: str) -> _N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value < bound or (strict and value == bound):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if strict else '>='} {bound:g}, got {value:g}"
            )
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"must be at most {maximum:g}{maximum_noun}, got {value:g}"
            )
        return value

    convert.__name__ = parse.__name__
    return convert


positive_int = _number_type(int, "a whole number", 1, strict=False)
"""argparse type: a whole number >= 1."""
positive_float = _number_type(
    float, "a number", 0.0, strict=True, maximum=MAX_SECONDS, maximum_noun=" (a year)"
)
"""argparse type: a finite number of seconds > 0, at most ``MAX_SECONDS``."""
not_negative_int = _number_type(int, "a whole number", 0, strict=False)
"""argparse type: a whole number >= 0."""


port_number = _number_type(int, "a port number", 0, strict=False, maximum=65535)
"""argparse type: a TCP port, 0..65535 (0: any free port)."""
