"""recommender: related-content links for static content sites.

Load a site of Markdown pages (:func:`load_corpus`), compute the most related
pages for each (:class:`Recommender`), write them back into each page's front
matter (:func:`export_links`), and measure links tables (:func:`evaluate`,
:func:`compare`, :func:`churn`, :func:`sweep`; plots in :mod:`recommender.plots`).

Every name here is imported on first use, so that a worker process that
only reads or rewrites pages pays for importing neither scikit-learn nor
(for :mod:`recommender.rewrite`) pandas.
"""

import importlib
import importlib.util
import logging
import sys
import types

__version__ = "0.1.0"

# A library configures no logging output of its own; applications (and the CLI) do.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "Corpus": "corpus",
    "Recommender": "model",
    "RecommenderError": "errors",
    "churn": "evaluate",
    "compare": "evaluate",
    "evaluate": "evaluate",
    "export_links": "export",
    "load_corpus": "corpus",
    "sweep": "tuning",
}

__all__ = [
    "Corpus",
    "Recommender",
    "RecommenderError",
    "__version__",
    "churn",
    "compare",
    "evaluate",
    "export_links",
    "load_corpus",
    "sweep",
]


class _Package(types.ModuleType):
    """This package, whose lazy names are never rebound to the submodules they come from.

    Importing a submodule binds its name in the package: ``recommender.evaluate``
    would then be the module ``evaluate``, not the function of that name.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # the submodule stays in sys.modules, where imports find it
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    is_module_name = name.isidentifier() and not name.startswith("__")
    if is_module_name and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # a submodule, an attribute as with the eager package before
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
