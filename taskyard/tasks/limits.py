"""What every store can hold: the limits on task values, checked once, before any backend.

Every backend refuses the same values at declaration or enqueue (``InvalidTask``, or
``InvalidTaskArguments`` for arguments), with the value and where it sits, so that nothing a
store cannot hold ever reaches a driver (PostgreSQL refuses NUL characters and lone surrogates
in text and JSON, its ``queue_name`` column holds 100 characters, Redis and the timers refuse
non-finite seconds):

* text anywhere — arguments, keyword names, queue names, limit keys, qualifiers, ids — must
  not contain a NUL character (``"\\x00"``) or a lone surrogate (``"\\ud800"``);
* queue names and backend aliases: at most ``MAX_NAME_LENGTH`` (100) characters (the
  ``queue_name`` and ``backend`` columns); an enqueuer id at most ``MAX_ID_LENGTH`` (200);
* seconds (``timeout``, ``retry_backoff``, ``retry_backoff_max``): finite, at most
  ``MAX_SECONDS`` (one year); ``timeout`` also > 0;
* ``retries`` at most ``MAX_RETRIES``, ``limit`` at most ``MAX_LIMIT``;
* arguments and return values nested at most ``MAX_NESTING`` (100) lists/dicts deep;
* integers in arguments and return values at most ``MAX_INT_DIGITS`` (4000) digits: Python
  refuses to turn longer ones into JSON text (``sys.int_info.default_max_str_digits``, 4300),
  which used to crash a worker recording such a return value.

``docs/tasks.md`` lists the same limits.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_NAME_LENGTH = 100
"""Longest queue name or backend alias (the ``varchar(100)`` columns)."""
MAX_ID_LENGTH = 200
"""Longest enqueuer or worker id (the ``varchar(200)`` columns)."""
MAX_SECONDS = 365 * 24 * 3600.0
"""Longest ``timeout``, ``retry_backoff`` and ``retry_backoff_max``: one year."""
MAX_RETRIES = 100_000
"""Most ``retries`` a task may ask for."""
MAX_LIMIT = 1_000_000
"""Largest ``limit`` of pending runs."""
MAX_NESTING = 100
"""Deepest nesting of lists and dicts in arguments and return values."""

MAX_INT_DIGITS = 4000
"""Most decimal digits of an integer in arguments and return values."""
_INT_BITS_SURELY_OK = 13_000  # 2**13000 has 3914 digits: no need to count below this

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or ``None`` when it can."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found is not None:
            return (
                f"contains a lone surrogate ({found.group()!a}), which is not valid Unicode "
                "text and cannot be stored"
            )
    return None


def storable_text(value: str) -> str:
    """``value`` with what no store can hold written out as escapes: a NUL character becomes
    the four characters ``\\x00``, a lone surrogate ``\\ud800``. For text taskyard records
    itself rather than refuses (tracebacks, exception class paths, progress messages)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    if not value.isascii() and _SURROGATE.search(value):
        value = _SURROGATE.sub(lambda m: m.group().encode("unicode_escape").decode(), value)
    return value


def int_problem(value: int) -> str | None:
    """Why the integer ``value`` cannot be stored as JSON text, or ``None`` when it can."""
    if value.bit_length() <= _INT_BITS_SURELY_OK or abs(value) < 10**MAX_INT_DIGITS:
        return None
    return f"is an integer of more than {MAX_INT_DIGITS} digits, the limit"


def name_problem(value: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    """Why ``value`` cannot be a queue name or alias (text rules plus a length limit)."""
    if len(value) > limit:
        return f"is {len(value)} characters long; the limit is {limit}"
    return text_problem(value)


def seconds_problem(value: Any, *, allow_zero: bool) -> str | None:
    """Why ``value`` is not a usable number of seconds, or ``None``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "must be a number of seconds"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number of seconds (NaN and infinity are refused)"
    if value < 0 or (value == 0 and not allow_zero):
        return "must be seconds >= 0" if allow_zero else "must be seconds > 0"
    if value > MAX_SECONDS:
        return f"must be at most {MAX_SECONDS:.0f} seconds (one year)"
    return None


__all__ = [
    "MAX_ID_LENGTH",
    "MAX_INT_DIGITS",
    "MAX_LIMIT",
    "MAX_NAME_LENGTH",
    "MAX_NESTING",
    "MAX_RETRIES",
    "MAX_SECONDS",
    "int_problem",
    "name_problem",
    "seconds_problem",
    "storable_text",
    "text_problem",
]
