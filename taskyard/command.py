"""``Command``: how a module describes a ``taskyard`` sub-command (``cli.py`` collects them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A sub-command: its name, one-line help, argument definitions and what it runs.

    ``run(args)`` returns the exit status. The common options (``--settings``, ``--url``,
    ``--log-level``, ``--import``) are added and applied by the command line itself.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
