"""The command lines shown in the docs: where each page's code blocks are, and which lines are
``taskyard`` or ``manage.py`` commands (for ``tests/unit/test_docs_commands.py``, which parses
them, and ``tests/integration/test_docs_run.py``, which runs them)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "examples").rglob("README.md")),
]

#: What may stand before the command: a prompt, variables, a unit file's key, a path.
_PREFIX = re.compile(
    r"^\s*(?:\$\s*)?(?:[A-Z_]+=\S+\s+)*(?:(?:ExecStart|ExecStartPre|command)=)?(?P<path>\S*/)?"
)


@dataclass(frozen=True)
class DocLine:
    """One command line of a page: ``kind`` is ``taskyard`` or ``manage.py``."""

    page: str
    number: int
    block: int
    text: str
    kind: str
    argv: tuple[str, ...]  # the arguments after ``taskyard`` / ``manage.py``

    @property
    def id(self) -> str:
        return f"{self.page}:{self.number}"


def code_blocks(path: Path) -> list[tuple[int, list[tuple[int, str]]]]:
    """``(block index, [(line number, text)])`` of every fenced code block of a page."""
    blocks: list[tuple[int, list[tuple[int, str]]]] = []
    current: list[tuple[int, str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append((len(blocks), current))
                current = None
            continue
        if current is not None:
            current.append((number, line))
    return blocks


def parse(line: str) -> tuple[str, tuple[str, ...]] | None:
    """``("taskyard", args)`` or ``("manage.py", args)`` for a command line, else ``None``."""
    text = line.split(" #", 1)[0].strip()
    match = _PREFIX.match(text)
    rest = text[match.end() :] if match else text
    try:
        words = shlex.split(rest)
    except ValueError:
        return None
    if words[:1] == ["taskyard"]:
        return "taskyard", tuple(words[1:])
    if words[:2] in (["python", "manage.py"],) or (words[1:2] == ["manage.py"]):
        return "manage.py", tuple(words[2:])
    return None


def command_lines(kind: str | None = None) -> list[DocLine]:
    """Every ``taskyard`` and ``manage.py`` command line in the docs' code blocks."""
    found = []
    for path in PAGES:
        for index, block in code_blocks(path):
            for number, text in block:
                parsed = parse(text)
                if parsed is None or (kind is not None and parsed[0] != kind):
                    continue
                found.append(
                    DocLine(str(path.relative_to(ROOT)), number, index, text.strip(), *parsed)
                )
    return found
