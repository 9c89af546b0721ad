from __future__ import annotations

import enum
from collections import OrderedDict, namedtuple
from decimal import Decimal

import pytest

from taskyard import InvalidTaskArguments
from taskyard.exceptions import InvalidReturnValue
from taskyard.tasks.serialization import normalize_arguments, normalize_return_value


def test_scalars_lists_and_dicts_pass_through_as_copies() -> None:
    nested = {"a": [1, 2.5, None, True, "x"]}
    args, kwargs = normalize_arguments([1, nested], {"k": (1, 2)}, "t")
    assert args == [1, {"a": [1, 2.5, None, True, "x"]}]
    assert kwargs == {"k": [1, 2]}
    assert args[1] is not nested and args[1]["a"] is not nested["a"]


def test_subclasses_of_json_types_become_their_base() -> None:
    class Colour(enum.IntEnum):
        RED = 1

    Point = namedtuple("Point", "x y")
    args, _ = normalize_arguments([Colour.RED, OrderedDict(a=1), Point(1, 2)], {}, "t")
    assert args == [1, {"a": 1}, [1, 2]]
    assert type(args[0]) is int


@pytest.mark.parametrize(
    ("value", "where", "kind"),
    [
        (b"bytes", r"args\[0\]", "bytes"),
        ({1, 2}, r"args\[0\]", "set"),
        (Decimal("1.5"), r"args\[0\]", "Decimal"),
        ([1, object()], r"args\[0\]\[1\]", "object"),
        ({"a": {"b": 1j}}, r"args\[0\]\['a'\]\['b'\]", "complex"),
    ],
)
def test_non_json_values_name_type_and_position(value: object, where: str, kind: str) -> None:
    with pytest.raises(
        InvalidTaskArguments, match=f"mod.task: argument 0: {where} is of type .*{kind}"
    ):
        normalize_arguments([value], {}, "mod.task")


def test_infinite_floats_and_non_string_keys_are_refused() -> None:
    with pytest.raises(InvalidTaskArguments, match="infinity"):
        normalize_arguments([float("inf")], {}, "t")
    with pytest.raises(InvalidTaskArguments, match="key 1 of type int"):
        normalize_arguments([], {"k": {1: "a"}}, "t")


def test_return_value_error_names_the_task() -> None:
    with pytest.raises(
        InvalidReturnValue,
        match="mod.task returned a value that cannot be stored: the return value is of type "
        "builtins.set",
    ) as caught:
        normalize_return_value({1}, "mod.task")
    # Not reported as a bad argument ("pass str, int..."): the task must return JSON.
    assert not isinstance(caught.value, InvalidTaskArguments)
    assert "pass str" not in str(caught.value) and "a task must return JSON" in str(caught.value)
