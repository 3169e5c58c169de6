"""The ``recommend`` console script: the command, and a Ctrl-C while it starts.

Importing the command takes about a second (pandas, scikit-learn); a Ctrl-C
then ended in a Python traceback, not the command's own line and exit code 130.
"""

from __future__ import annotations

import sys

#: The exit code of an interrupted run (as ``recommender.cli.EXIT_INTERRUPTED``).
EXIT_INTERRUPTED = 130


def main() -> int:
    """Import and run :func:`recommender.cli.main`; 130 when interrupted while importing."""
    try:
        from .cli import main as recommend
    except KeyboardInterrupt:
        print("recommend: interrupted while starting; nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    return recommend()
