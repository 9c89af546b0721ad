"""Every ``taskyard ...`` command line shown in the docs parses with the real parser.

(``tests/integration/test_docs_run.py`` runs each of them; this fast check catches a doc that
shows a flag or a command that does not exist.)
"""

from __future__ import annotations

import pytest

from taskyard.cli import build_parser
from tests.docs_support import command_lines

LINES = command_lines("taskyard")


def test_the_docs_show_commands() -> None:
    assert len(LINES) >= 30


@pytest.mark.parametrize("line", LINES, ids=[line.id for line in LINES])
def test_command_line_parses(line: object) -> None:
    from tests.docs_support import DocLine

    assert isinstance(line, DocLine)
    try:
        build_parser().parse_args(list(line.argv))
    except SystemExit as exc:
        if exc.code:
            raise AssertionError(f"{line.id}: `{line.text}` does not parse") from exc
