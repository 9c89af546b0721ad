"""Every ``taskyard ...`` command line shown in the docs parses with the real parser.

(The behaviour behind each is exercised by the tests of that command; this catches a doc
that shows a flag or a command that does not exist.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from taskyard.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "examples").rglob("README.md")),
]


def command_lines() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        in_block = False
        for line in path.read_text().splitlines():
            if line.strip().startswith("```"):
                in_block = not in_block
                continue
            text = re.sub(r"^\s*\$\s*", "", line).strip()
            text = re.sub(r"^[A-Z_]+=\S+\s+", "", text)  # VAR=value taskyard ...
            if in_block and re.match(r"^(\S*/)?taskyard\s", text):
                text = text.split("#", 1)[0].strip()
                found.append(
                    (f"{path.relative_to(ROOT)}", re.sub(r"^\S*/taskyard", "taskyard", text))
                )
    return found


LINES = command_lines()


def test_the_docs_show_commands() -> None:
    assert len(LINES) >= 15


@pytest.mark.parametrize(("where", "line"), LINES, ids=[f"{where}:{line}" for where, line in LINES])
def test_command_line_parses(where: str, line: str) -> None:
    argv = shlex.split(line)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code:
            raise AssertionError(f"{where}: `{line}` does not parse") from exc
