"""recommender: related-content links for static content sites.

Load a site of Markdown pages (:func:`load_corpus`), compute the most related
pages for each (:class:`Recommender`), and write them back into each page's
front matter (:mod:`recommender.export`).
"""

import logging

__version__ = "0.1.0"

from .corpus import Corpus, load_corpus
from .errors import RecommenderError
from .evaluate import churn, compare, evaluate
from .model import Recommender

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
    "load_corpus",
]
