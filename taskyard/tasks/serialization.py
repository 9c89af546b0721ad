"""JSON-only payloads: checking and normalising arguments and return values.

Tuples become lists (as in Django); everything else must already be JSON: ``str``, ``int``,
finite ``float``, ``bool``, ``None``, lists/tuples and dicts with string keys. Anything else is
refused with an error that names the value's type and where it sits (``args[1]['when']``), and
so is what no store can hold (``taskyard.tasks.limits``): text with a NUL character or a lone
surrogate, in a value or a key, and nesting deeper than ``MAX_NESTING`` lists/dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.exceptions import InvalidReturnValue, InvalidTaskArguments
from taskyard.tasks.limits import _INT_BITS_SURELY_OK, MAX_NESTING, int_problem, text_problem

_SCALARS = (bool, type(None))


def _plain(value: Any) -> bool:
    """``value`` is JSON as it is: ``None``, a ``bool`` or an ``int`` of a storable size."""
    kind = type(value)
    return kind in _SCALARS or (kind is int and value.bit_length() <= _INT_BITS_SURELY_OK)


def _text(value: str, where: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise InvalidTaskArguments(f"{where} {problem}")
    return value


def _normalize(value: Any, where: str, depth: int = 0) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value, where)
    if kind in _SCALARS:
        return value
    if kind is int:
        problem = int_problem(value)
        if problem is not None:
            raise InvalidTaskArguments(f"{where} {problem}")
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        raise InvalidTaskArguments(f"{where} is {value!r}: NaN and infinity are not valid JSON")
    if kind is list or kind is tuple or kind is dict:
        if depth >= MAX_NESTING:
            shown = where if len(where) <= 80 else f"{where[:60]}...{where[-16:]}"
            raise InvalidTaskArguments(
                f"{shown} is nested more than {MAX_NESTING} lists/dicts deep, the limit "
                "(a structure that contains itself never ends)"
            )
        if kind is dict:
            out = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise InvalidTaskArguments(
                        f"{where} has a key {key!r} of type {type(key).__name__}: "
                        "JSON object keys must be strings"
                    )
                _text(key, f"{where} has a key {key!r} that")
                out[key] = _normalize(item, f"{where}[{key!r}]", depth + 1)
            return out
        return [_normalize(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    # Subclasses of the JSON types (IntEnum, OrderedDict, named tuples) are accepted as
    # their base type; other types are refused.
    if isinstance(value, int):
        return _normalize(int(value), where, depth)
    if isinstance(value, str):
        return _text(str(value), where)
    if isinstance(value, float):
        return _normalize(float(value), where, depth)
    if isinstance(value, Mapping):
        return _normalize(dict(value), where, depth)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return _normalize(list(value), where, depth)
    raise InvalidTaskArguments(
        f"{where} is of type {type(value).__module__}.{type(value).__qualname__}, which is "
        "not JSON: pass str, int, float, bool, None, lists and dicts with str keys"
    )


def normalize_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any], task_name: str
) -> tuple[list[Any], dict[str, Any]]:
    """Return JSON-normalised copies of ``args`` and ``kwargs`` or raise ``InvalidTaskArguments``.

    The copies are independent of the caller's objects, so later mutation does not leak into a
    queued task.
    """
    try:
        out_args = [
            a if _plain(a) else _normalize(a, f"argument {i}: args[{i}]")
            for i, a in enumerate(args)
        ]
        out_kwargs = {}
        for key, value in kwargs.items():
            if type(key) is str and text_problem(key):
                _text(key, f"keyword argument {key!r}: its name")
            out_kwargs[key] = (
                value
                if _plain(value)
                else _normalize(value, f"keyword argument {key!r}: kwargs[{key!r}]")
            )
    except InvalidTaskArguments as exc:
        raise InvalidTaskArguments(f"{task_name}: {exc}") from None
    return out_args, out_kwargs


def normalize_return_value(value: Any, task_name: str) -> Any:
    """Normalise a task's return value; raise ``InvalidReturnValue`` if it is not JSON."""
    if _plain(value):
        return value
    try:
        return _normalize(value, "the return value")
    except InvalidTaskArguments as exc:
        problem = str(exc).split(": pass ", 1)[0]
        raise InvalidReturnValue(
            f"{task_name} returned a value that cannot be stored: {problem}; a task must "
            "return JSON (str, int, float, bool, None, lists and dicts with str keys): "
            "convert the value before returning it (e.g. a datetime with .isoformat())"
        ) from None


def dumps(value: Any) -> str:
    """Serialise an already-normalised value compactly."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    """Parse JSON text."""
    return json.loads(text)
