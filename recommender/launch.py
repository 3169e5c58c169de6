"""The ``recommend`` console script: the command, and a Ctrl-C while it starts.

Importing the command takes about a second (pandas, scikit-learn); a Ctrl-C
then ended in a Python traceback, not the command's own line and exit code 130.
scikit-learn imports SciPy's statistics when it starts (``sklearn.utils.fixes``),
a quarter of that second, and the command never uses them: the script puts
that import off until something uses the module (see :func:`defer_import`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

#: The exit code of an interrupted run (as ``recommender.cli.EXIT_INTERRUPTED``).
EXIT_INTERRUPTED = 130
#: Modules the command's imports import but its work never uses.
DEFERRED_MODULES = ("scipy.stats",)


def main() -> int:
    """Import and run :func:`recommender.cli.main`; 130 when interrupted while importing."""
    try:
        for name in DEFERRED_MODULES:
            defer_import(name)
        from .cli import main as recommend
    except KeyboardInterrupt:
        print("recommend: interrupted while starting; nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    return recommend()


class _DeferredModule(types.ModuleType):
    """Stands in for a module not imported yet; its first missing attribute imports it.

    An ``import`` statement finds it in ``sys.modules``, complete (its
    ``__spec__`` is the module's own), and binds it; using anything of it (an
    attribute, ``from ... import``, a submodule's ``__path__``) imports the
    real module in its place and copies its names here, so that both serve.
    """

    def __init__(self, spec: importlib.machinery.ModuleSpec):
        super().__init__(spec.name)
        self.__spec__ = spec

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def defer_import(name: str) -> bool:
    """Put off importing module ``name`` until something uses it; False when it is imported
    already or cannot be found (then nothing changes)."""
    if name in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # its package is missing
        return False
    if spec is None:
        return False
    sys.modules[name] = _DeferredModule(spec)
    return True


if __name__ == "__main__":  # pragma: no cover - as the console script
    sys.exit(main())
