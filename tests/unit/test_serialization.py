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


# -- what no store can hold (issue 11, item 9) --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (["a\x00b"], {}, r"argument 0: args\[0\] contains a NUL character"),
        ([["ok", "\ud800"]], {}, r"args\[0\]\[1\] contains a lone surrogate"),
        ([{"k\x00": 1}], {}, r"args\[0\] has a key 'k\\x00' that contains a NUL"),
        ([], {"name": {"x": "\udfff"}}, r"kwargs\['name'\]\['x'\] contains a lone surrogate"),
        ([], {"bad\x00name": 1}, r"keyword argument 'bad\\x00name': its name contains a NUL"),
    ],
)
def test_text_a_store_cannot_hold_is_refused_with_its_position(
    args: list[object], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidTaskArguments, match=f"mod.task: .*{message}"):
        normalize_arguments(args, kwargs, "mod.task")


def test_text_that_is_unusual_but_valid_passes() -> None:
    args, _ = normalize_arguments(["é ✓ 𝄞 \U0010ffff", "tab\tnew\nline"], {}, "t")
    assert args == ["é ✓ 𝄞 \U0010ffff", "tab\tnew\nline"]


MAX_NESTING = 100  # the documented limit (docs/tasks.md; taskyard.tasks.limits.MAX_NESTING)


def nested(depth: int) -> list[object]:
    root: list[object] = []
    inner = root
    for _ in range(depth - 1):
        child: list[object] = []
        inner.append(child)
        inner = child
    return root


def test_nesting_deeper_than_the_limit_is_refused_not_a_recursion_error() -> None:
    normalize_arguments([nested(MAX_NESTING)], {}, "t")  # the limit itself is fine
    with pytest.raises(InvalidTaskArguments, match=f"nested more than {MAX_NESTING}"):
        normalize_arguments([nested(MAX_NESTING + 1)], {}, "t")
    with pytest.raises(InvalidTaskArguments, match="nested more than"):
        normalize_arguments([nested(600)], {}, "t")  # was a bare RecursionError
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(InvalidTaskArguments, match="contains itself"):
        normalize_arguments([], {"loop": loop}, "t")


def test_return_values_obey_the_same_limits() -> None:
    with pytest.raises(InvalidReturnValue, match="the return value contains a NUL"):
        normalize_return_value("\x00", "t")
    with pytest.raises(InvalidReturnValue, match="nested more than"):
        normalize_return_value(nested(200), "t")
