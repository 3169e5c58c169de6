"""recommender: related-content links for static content sites.

Load a site of Markdown pages (:func:`load_corpus`), compute the most related
pages for each (:class:`Recommender`), write them back into each page's front
matter (:func:`export_links`), and measure links tables (:func:`evaluate`,
:func:`compare`, :func:`churn`, :func:`sweep`; plots in :mod:`recommender.plots`).
"""

import logging

__version__ = "0.1.0"

from .corpus import Corpus, load_corpus
from .errors import RecommenderError
from .evaluate import churn, compare, evaluate
from .export import export_links
from .model import Recommender
from .tuning import sweep

# A library configures no logging output of its own; applications (and the CLI) do.
logging.getLogger(__name__).addHandler(logging.NullHandler())

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
