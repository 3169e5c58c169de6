"""Modules a process imports as it starts but never uses, put off until something uses them.

scikit-learn imports SciPy's statistics as it starts (``sklearn.utils.fixes``),
about 0.3 s here, and neither the ``recommend`` command nor its worker
processes use them; each defers them as it starts (:func:`defer_unused`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

__all__ = ["DEFERRED_MODULES", "defer_import", "defer_unused"]

#: Modules the command's imports import but its work never uses.
DEFERRED_MODULES = ("scipy.stats",)


def defer_unused() -> None:
    """Defer every module of :data:`DEFERRED_MODULES` (see :func:`defer_import`)."""
    for name in DEFERRED_MODULES:
        defer_import(name)


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
