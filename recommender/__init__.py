"""recommender: related-content links for static content sites.

Load a site of Markdown pages (:func:`load_corpus`), compute the most related
pages for each (:class:`Recommender`), write them back into each page's front
matter (:func:`export_links`), and measure links tables (:func:`evaluate`,
:func:`compare`, :func:`churn`, :func:`sweep`; plots in :mod:`recommender.plots`).

:class:`Recommender` and :func:`sweep` are imported on first use, so that a
worker process that only reads pages does not pay for importing scikit-learn.
"""

import importlib
import logging

__version__ = "0.1.0"

from .corpus import Corpus, load_corpus
from .errors import RecommenderError
from .evaluate import churn, compare, evaluate
from .export import export_links

# A library configures no logging output of its own; applications (and the CLI) do.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {"Recommender": "model", "sweep": "tuning"}

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


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
