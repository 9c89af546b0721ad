"""``python -m taskyard`` runs the command line."""

import sys

from taskyard.cli import main

if __name__ == "__main__":
    sys.exit(main())
