"""The ``recommend`` console script: the command, and a Ctrl-C while it starts.

Importing the command takes about a second (pandas, scikit-learn); a Ctrl-C
then ended in a Python traceback, not the command's own line and exit code 130.
A quarter of that second is SciPy's statistics, which the command never uses:
the script puts that import off (:mod:`recommender.deferred`).
"""

from __future__ import annotations

import sys

from .deferred import defer_unused

#: The exit code of an interrupted run (as ``recommender.cli.EXIT_INTERRUPTED``).
EXIT_INTERRUPTED = 130


def main() -> int:
    """Import and run :func:`recommender.cli.main`; 130 when interrupted while importing."""
    try:
        defer_unused()
        from .cli import main as recommend
    except KeyboardInterrupt:
        print("recommend: interrupted while starting; nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    return recommend()


if __name__ == "__main__":  # pragma: no cover - as the console script
    sys.exit(main())
