"""The similarity model: the most related pages for every page.

:class:`Recommender` turns the pages DataFrame of :func:`recommender.load_corpus`
into a links table.  It

1. vectorises each page (:mod:`recommender.features`: field-weighted TF-IDF);
2. finds each page's best candidates by exact cosine similarity
   (:mod:`recommender.neighbors`), among the pages that may be recommended;
   with ``semantic_weight``, blends their scores with the cosine of the
   pages' sentence embeddings (:mod:`recommender.embeddings`), so that the
   steps below see the blended scores;
3. applies the rules a reader expects: never the page itself, never one of its
   cross-listed copies, never the same question twice, no ``no_index`` pages,
   nothing under ``min_score``;
4. applies an editor's rules (``rules``: never, dates, subjects) and, with
   ``stability``, favours the links each page already holds;
5. with ``coverage`` on, spreads the links so that (nearly) every page is
   linked from somewhere and no page collects a crowd of links, while each
   page keeps links that are nearly as relevant as its plain nearest
   neighbours;
6. places the editor's pins.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    RealNotInt,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted

from . import __version__
from .corpus import CLEANED_TEXT_COLUMNS, release_free_memory
from .coverage import spread_links
from .distributed import cluster_client, top_k_cosine_dask, top_k_cosine_fast_dask
from .embeddings import (
    DEFAULT_MODEL,
    EMBEDDED_FIELDS,
    EmbeddingCache,
    default_cache_folder,
    embedding_text,
    encoder_name,
    lazy_encoder,
    require_embeddings,
    semantic_rescore,
)
from .errors import ConfigError, ModelFileError
from .features import TF_WEIGHTS, FieldFeatures, text_column
from .frames import is_in
from .neighbors import top_k_cosine, top_k_cosine_above, top_k_cosine_fast, top_k_dense
from .rules import (
    EditorialRules,
    ResolvedRules,
    apply_rules,
    connected_labels,
    copy_groups,
    first_links,
    near_duplicate_pairs,
    target_mask,
)
from .stability import add_candidates, current_links, held_now, rerank

__all__ = [
    "EMBEDDING_PARAMETERS",
    "LINKING_PARAMETERS",
    "LINK_COLUMNS",
    "REAL_SETTINGS",
    "RUNNING_PARAMETERS",
    "Recommender",
    "as_real",
    "settings_differ",
    "unsearched_settings",
]

logger = logging.getLogger(__name__)

#: Columns of :attr:`Recommender.related_`, one row per link.
LINK_COLUMNS: dict[str, str] = {
    "source_url": "url of the page that shows the link",
    "rank": "1 for the most related, up to n_links",
    "target_url": "url of the recommended page",
    "score": "cosine similarity of the two pages' feature vectors (0..1); "
    "with semantic_weight, blended with their embeddings' cosine",
}

#: Settings that only choose each page's links among its candidates (the rules,
#: coverage, stability): :meth:`Recommender.relink` applies new values of these
#: without vectorising or searching again.
LINKING_PARAMETERS = frozenset(
    {
        "n_links",
        "duplicate_threshold",
        "min_score",
        "coverage",
        "max_in_links",
        "coverage_tolerance",
        "rules",
        "stability",
        "mutual_discount",
    }
)
#: Settings that change how the work runs, never its result.
RUNNING_PARAMETERS = frozenset({"n_jobs", "block_size", "progress", "embedding_cache"})
#: Settings that shape nothing while ``semantic_weight`` is 0.
EMBEDDING_PARAMETERS = ("semantic_weight", "n_semantic_candidates", "embedding_model")

#: With ``search="auto"``, sites of at least this many pages use the fast search.
FAST_SEARCH_MIN_PAGES = 20_000

#: Field weights used when ``field_weights`` is None (link_places on the real corpus; see README).
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {"title": 3.0, "keywords": 2.0, "answer": 1.0}
#: Word n-grams per field used when ``ngram_range`` is None; (1, 1) for other fields.
DEFAULT_NGRAM_RANGES: dict[str, tuple[int, int]] = {}

_REQUIRED_COLUMNS = ("slug", "question", "title", "subject_key", "no_index")


class Recommender(BaseEstimator):
    """Recommend the most related pages of a site for each of its pages.

    Parameters
    ----------
    n_links : int, default 5
        Links per page.
    field_weights : mapping of str to float, optional
        Weight of each text field in the similarity; a field ``f`` is read
        from the pages column ``f_text``.  Default: :data:`DEFAULT_FIELD_WEIGHTS`.
    max_df : float or int, default 0.5
        Ignore terms in more than this share (float in (0, 1]) or number (int,
        at least 2) of pages: corpus-wide boilerplate says nothing about how
        two pages relate.  ``1`` (one page) is refused: write ``1.0`` for all.
    min_df : float or int, default 1
        Ignore terms in fewer pages than this.  1 keeps every word: a word
        found in one page never adds to a score, but pruning it would leave
        the page's other words weighing more.
    ngram_range : (min_n, max_n) or mapping of field to (min_n, max_n), optional
        Word n-grams, for every field or per field ((1, 1) for fields not
        named).  Default: :data:`DEFAULT_NGRAM_RANGES`, single words
        everywhere (title word pairs did not raise labelled recall).
    tf : {"bm25", "log", "raw"}, default "bm25"
        How a term's count in a page becomes its weight: BM25's saturating,
        length-normalised count, ``1 + log(tf)``, or the count itself (see
        :class:`~recommender.features.TermWeighting`).
    bm25_k1 : float, default 5.0
        BM25's saturation: higher lets repeated terms count for longer.
    bm25_b : float in [0, 1], default 0.75
        BM25's length normalisation: 0 ignores a page's length.
    idf_power : float, default 0.5
        The idf is raised to this power (0 to 16): 1 is classic TF-IDF.  The
        square root beat it by 4-7% in labelled recall@5 (see README).
    stop_words : "english", list of str or None, default "english"
        Words to ignore.
    combine : {"concatenate", "per_field"}, default "concatenate"
        ``"concatenate"``: one vector space, a term's count being the
        weighted sum of its counts in the fields (one IDF over the site);
        ``"per_field"``: one TF-IDF per field, each normalised, then weighted.
        Chosen by labelled recall (see README).
    stem : bool, default True
        Reduce words to their Snowball English stem after dropping stop words.
    duplicate_threshold : float in (0, 1], default 0.9
        Pages at least this similar are treated as copies of each other (as
        well as pages with the same slug or question), so are never
        recommended for each other, nor both on one page.
    exclude_no_index : bool, default True
        Never recommend pages marked ``no_index: true``.
    min_score : float in [0, 1), default 0.0
        Never recommend a page scoring this or less; with 0 every page gets
        ``n_links`` links wherever the site has that many candidates.
    coverage : bool, default True
        Spread links over the site: cap how many pages link to one page
        (``max_in_links``) and give pages nobody links to a link from a page
        they are related to, in place of that page's weakest link, where the
        swap costs little relevance (``coverage_tolerance``).
    max_in_links : int, default 20
        With ``coverage``, most pages that may link to one page, unless some
        page has no other candidates left.
    coverage_tolerance : float, default 0.3
        With ``coverage``, the largest relative score loss accepted to link an
        unlinked page: it replaces a link scoring ``s`` only if it scores at
        least ``(1 - coverage_tolerance) * s``.
    n_candidates : int, default 40
        Candidates examined per page before the rules, not counting the page
        itself (the search asks for one more and drops it); at least
        ``n_links``.  More finds links for more unlinked pages at some cost in
        time.
    search : {"auto", "exact", "fast"}, default "auto"
        How candidates are found: ``"exact"`` compares every pair of pages
        (time grows as the square of the pages); ``"fast"`` takes candidates
        from each page's strongest terms and scores them exactly (recall@5
        against exact: 0.998 on the real site, 1.000 on a 200k synthetic
        one); ``"auto"`` is fast from :data:`FAST_SEARCH_MIN_PAGES` pages on.
    block_size : int, default 4096
        Pages whose similarities are computed at a time; bounds memory.
    n_jobs : int or None, default None
        Threads for the similarity search, and worker processes that count
        the terms, as in scikit-learn: None means 1, -1 all cores; the links
        are the same for any number.  Under joblib's dask backend (``with
        joblib.parallel_config(backend="dask"):``, see
        :mod:`recommender.distributed`) the search's blocks run on the Dask
        workers instead, one thread each, with the same results; ``n_jobs=1``
        keeps it in this process.
    rules : EditorialRules, optional
        An editor's rules (pins, nevers, keeps, dates, subjects), as read by
        :func:`recommender.config.load_rules`; checked against the pages in
        :meth:`fit`, which raises :class:`~recommender.errors.ConfigError`
        naming the rule and its line when one cannot be applied.
    stability : float, default 0.1
        Keep a page's current links (its ``related_urls`` that are valid
        under the rules) unless a new candidate beats one by this relative
        margin: a current link ranks as if it scored ``(1 + stability)``
        times its similarity, and with ``coverage`` a page nobody else links
        to is rescued first by a page that links it now.  0 turns it off.
        The default was chosen by ``benchmarks/stability.py`` (see README):
        when pages come and go it drops 42% (real corpus) to 47-51%
        (labelled sites) fewer links, for 0.1-0.2% of mean link score,
        labelled recall within 0.01.
    mutual_discount : float in [0, 1), default 0.4
        A page ranks a candidate that holds the page among its own first
        ``n_links`` candidates by similarity, at an earlier place, this
        share lower: that candidate's link to the page already links the
        pair, and the place can link a page not linked yet.  Chosen by
        labelled recall on the public sites (see README); 0 turns it off.
    semantic_weight : float in [0, 1], default 0.0
        Share of the sentence-embedding cosine in each candidate's score:
        ``w * embedding_cosine + (1 - w) * tfidf_cosine``, computed on the
        ``n_candidates`` of the TF-IDF search and the
        ``n_semantic_candidates`` nearest by embedding, before the rules and coverage
        (``min_score`` and the link scores are then blended too; copies are
        still found by TF-IDF, ``duplicate_threshold``).  0 turns it off and
        needs nothing more; above 0 it needs ``pip install
        "recommender[embeddings]"`` unless ``embedding_model`` is a callable.
        The first fit of a large site encodes every page (about 30 pages a
        second on 2 cores); after that only new and changed texts are.
    n_semantic_candidates : int, default 10
        With ``semantic_weight``, each page's nearest pages by embedding
        cosine (not counting itself) join its TF-IDF candidates, scored and
        blended like them, so that a page on the same subject in other words
        can be found: 0 takes candidates from the TF-IDF search alone.
    embedding_model : str or callable, default "all-MiniLM-L6-v2"
        A sentence-transformers model name or folder, loaded offline the
        first time a text is not in the cache; or a function from a list of
        texts to an array of vectors, one row per text.
    embedding_cache : path, optional
        Folder of cached page embeddings (one file per distinct text and
        model); default :func:`~recommender.embeddings.default_cache_folder`
        (``~/.cache/recommender/embeddings``).
    progress : bool, default False
        Show progress bars.

    Attributes
    ----------
    related_ : pandas.DataFrame
        The links, one row per link, sorted by ``source_url`` and ``rank``;
        columns as in :data:`LINK_COLUMNS`.
    urls_ : pandas.Index
        The fitted pages' urls, sorted; row ``i`` of ``features_`` is ``urls_[i]``.
    features_ : scipy.sparse.csr_matrix
        One L2-normalised row per page.
    features_model_ : FieldFeatures
        The fitted vectorizers, one per field.
    copy_group_ : numpy.ndarray
        Per page, the label of its group of cross-listed copies.
    timings_ : dict of str to float
        Seconds spent in each step of the last fit.
    kept_urls_ : pandas.Index
        The pages a keep rule leaves as they are (their links in ``related_``
        are their current blocks that resolve to pages).
    rule_events_ : pandas.DataFrame
        Every link an editorial rule placed or removed: ``source_url``,
        ``target_url``, ``action`` ("placed" or "removed"), ``rule``
        (``FILE:LINE: [[kind]]``); see :meth:`explain_rules`.
    embeddings_ : numpy.ndarray or None
        With ``semantic_weight``, one L2-normalised embedding per page (rows
        as ``urls_``); None without.
    semantic_candidates_ : numpy.ndarray
        Per page, the rows of its ``n_semantic_candidates + 1`` nearest
        pages by embedding cosine, itself among them, best first (-1 for
        none); no columns without ``semantic_weight``.
    semantic_candidate_scores_ : numpy.ndarray
        Their embedding cosines.
    search_params_ : dict
        The settings the features and candidates were made with (all but
        :data:`LINKING_PARAMETERS` and :data:`RUNNING_PARAMETERS`), which
        :meth:`relink` keeps.
    targets_ : numpy.ndarray
        Per page (rows as ``urls_``), whether it may be linked to (with
        ``exclude_no_index``, the pages not ``no_index``).

    Examples
    --------
    ::

        from recommender import Recommender, load_corpus

        corpus = load_corpus("data/sample")
        model = Recommender(n_jobs=-1).fit(corpus.pages)
        model.related_.head()
    """

    def __init__(
        self,
        *,
        n_links: int = 5,
        field_weights: Mapping[str, float] | None = None,
        max_df: float | int = 0.5,
        min_df: float | int = 1,
        ngram_range: tuple[int, int] | Mapping[str, tuple[int, int]] | None = None,
        tf: str = "bm25",
        bm25_k1: float = 5.0,
        bm25_b: float = 0.75,
        idf_power: float = 0.5,
        stop_words: str | list[str] | None = "english",
        combine: str = "concatenate",
        stem: bool = True,
        duplicate_threshold: float = 0.9,
        exclude_no_index: bool = True,
        min_score: float = 0.0,
        coverage: bool = True,
        max_in_links: int = 20,
        coverage_tolerance: float = 0.3,
        n_candidates: int = 40,
        search: str = "auto",
        block_size: int = 4096,
        n_jobs: int | None = None,
        rules: EditorialRules | None = None,
        stability: float = 0.1,
        mutual_discount: float = 0.4,
        semantic_weight: float = 0.0,
        n_semantic_candidates: int = 10,
        embedding_model: str | Callable[[list[str]], np.ndarray] = DEFAULT_MODEL,
        embedding_cache: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ):
        self.n_links = n_links
        self.field_weights = field_weights
        self.max_df = max_df
        self.min_df = min_df
        self.ngram_range = ngram_range
        self.tf = tf
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.idf_power = idf_power
        self.stop_words = stop_words
        self.combine = combine
        self.stem = stem
        self.duplicate_threshold = duplicate_threshold
        self.exclude_no_index = exclude_no_index
        self.min_score = min_score
        self.coverage = coverage
        self.max_in_links = max_in_links
        self.coverage_tolerance = coverage_tolerance
        self.n_candidates = n_candidates
        self.search = search
        self.block_size = block_size
        self.n_jobs = n_jobs
        self.rules = rules
        self.stability = stability
        self.mutual_discount = mutual_discount
        self.semantic_weight = semantic_weight
        self.n_semantic_candidates = n_semantic_candidates
        self.embedding_model = embedding_model
        self.embedding_cache = embedding_cache
        self.progress = progress

    _parameter_constraints: ClassVar[dict] = {
        "n_links": [Interval(Integral, 1, None, closed="left")],
        "field_weights": [Mapping, None],
        "max_df": [
            Interval(RealNotInt, 0, 1, closed="right"),
            Interval(Integral, 2, None, closed="left"),
        ],
        "min_df": [
            Interval(RealNotInt, 0, 1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "ngram_range": [tuple, list, Mapping, None],
        "tf": [StrOptions(set(TF_WEIGHTS))],
        "bm25_k1": [Interval(Real, 0, None, closed="neither")],
        "bm25_b": [Interval(Real, 0, 1, closed="both")],
        "idf_power": [Interval(Real, 0, 16, closed="both")],  # 16: float32 holds idf**16
        "stop_words": [StrOptions({"english"}), list, tuple, None],
        "combine": [StrOptions({"concatenate", "per_field"})],
        "stem": ["boolean"],
        "duplicate_threshold": [Interval(Real, 0, 1, closed="right")],
        "exclude_no_index": ["boolean"],
        "min_score": [Interval(Real, 0, 1, closed="left")],
        "coverage": ["boolean"],
        "max_in_links": [Interval(Integral, 1, None, closed="left")],
        "coverage_tolerance": [Interval(Real, 0, 1, closed="both")],
        "n_candidates": [Interval(Integral, 1, None, closed="left")],
        "search": [StrOptions({"auto", "exact", "fast"})],
        "block_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "rules": [EditorialRules, None],
        "stability": [Interval(Real, 0, None, closed="left")],
        "mutual_discount": [Interval(Real, 0, 1, closed="left")],
        "semantic_weight": [Interval(Real, 0, 1, closed="both")],
        "n_semantic_candidates": [Interval(Integral, 0, None, closed="left")],
        "embedding_model": [str, callable],
        "embedding_cache": [str, os.PathLike, None],
        "progress": ["boolean"],
    }

    def __setstate__(self, state: dict) -> None:
        """A model pickled before a parameter existed takes that parameter's default."""
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY:
                state.setdefault(name, parameter.default)
        super().__setstate__(state)

    # ------------------------------------------------------------------ checks

    def check_params(self) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
        """Check every parameter; return the field weights and n-gram ranges in effect.

        Raises
        ------
        ConfigError
            A :class:`ValueError` naming the parameter, the value and what
            was expected.
        """
        try:
            self._validate_params()  # scikit-learn's, from _parameter_constraints
        except InvalidParameterError as exc:
            raise ConfigError(str(exc)) from None
        integers = ("n_links", "n_candidates", "max_in_links", "block_size", "n_jobs")
        for name in (*integers, "n_semantic_candidates"):
            if isinstance(getattr(self, name), bool):
                _refuse(name, getattr(self, name), "an integer, not True or False")
        if self.n_candidates < self.n_links:
            _refuse("n_candidates", self.n_candidates, f"at least n_links ({self.n_links})")
        if self.n_jobs == 0:
            _refuse("n_jobs", 0, "None, a positive integer or a negative one (-1: all cores)")
        if isinstance(self.semantic_weight, bool):
            _refuse("semantic_weight", self.semantic_weight, "a number from 0 to 1")
        if self.semantic_weight > 0 and isinstance(self.embedding_model, str):
            require_embeddings()  # the missing extra, before any long step
        if isinstance(self.stop_words, list | tuple) and not all(
            isinstance(word, str) for word in self.stop_words
        ):
            _refuse("stop_words", self.stop_words, "'english', a list of words or None")
        weights = self._field_weights()
        return weights, self._ngram_ranges(weights)

    def _field_weights(self) -> dict[str, float]:
        weights = DEFAULT_FIELD_WEIGHTS if self.field_weights is None else self.field_weights
        fields = sorted(column.removesuffix("_text") for column in CLEANED_TEXT_COLUMNS)
        if (
            not weights
            or not all(
                k in fields and _is_number(v) and math.isfinite(v) and v >= 0
                for k, v in weights.items()
            )
            or not any(v > 0 for v in weights.values())
        ):
            _refuse(
                "field_weights",
                self.field_weights,
                f"a mapping of fields ({', '.join(fields)}) to finite weights >= 0, one > 0",
            )
        return dict(weights)

    def _ngram_ranges(self, weights: Mapping[str, float]) -> dict[str, tuple[int, int]]:
        ngrams = DEFAULT_NGRAM_RANGES if self.ngram_range is None else self.ngram_range
        if _is_ngram_range(ngrams):
            return {field: tuple(ngrams) for field in weights}
        if isinstance(ngrams, Mapping) and all(_is_ngram_range(r) for r in ngrams.values()):
            return {field: tuple(r) for field, r in ngrams.items()}
        return _refuse(
            "ngram_range",
            self.ngram_range,
            "a pair (min_n, max_n) with 1 <= min_n <= max_n, or a mapping of them",
        )

    def _check_pages(self, pages: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
        """The pages, checked and sorted by url (a sorted copy; the caller's frame is kept)."""
        if not isinstance(pages, pd.DataFrame):
            raise ConfigError(
                f"pages must be a DataFrame from load_corpus, got {type(pages).__name__}"
            )
        fields = [f for f, w in weights.items() if w > 0]
        if self.semantic_weight and weights:  # fit: every page is embedded
            fields += [f for f in EMBEDDED_FIELDS if f not in fields]
        needed = [*_REQUIRED_COLUMNS, *(text_column(f) for f in fields)]
        missing = [column for column in needed if column not in pages.columns]
        if missing:
            raise ConfigError(f"pages lacks the columns {missing}; load it with load_corpus")
        if not pages.index.is_unique:
            raise ConfigError("pages must be indexed by unique url")
        if len(pages) < 2:
            raise ConfigError(f"pages must hold at least 2 pages, got {len(pages)}")
        return pages if pages.index.is_monotonic_increasing else pages.sort_index()

    # ------------------------------------------------------------------ fit

    def fit(self, pages: pd.DataFrame, y: None = None) -> Recommender:
        """Compute the links for every page.

        Parameters
        ----------
        pages : pandas.DataFrame
            As returned in :attr:`Corpus.pages <recommender.corpus.Corpus>`;
            not modified.
        y : ignored

        Returns
        -------
        self
        """
        weights, ngram_ranges = self.check_params()
        pages = self._check_pages(pages, weights)
        editorial = self._resolve_rules(pages)  # a bad rule fails before the long steps
        laps = _Laps()
        self.embeddings_ = self._embeddings(pages)
        if self.semantic_weight:
            laps.end("embeddings")
        self.features_model_ = self.new_features(weights, ngram_ranges)
        counts = _vectorising(self.features_model_.fit_counts, pages, progress=self.progress)
        # The texts are read no more.  A caller that handed over its only reference to
        # them (the nightly job does) has them freed here, before the weights and the
        # search take their memory.
        pages = pages.drop(columns=[c for c in CLEANED_TEXT_COLUMNS if c in pages.columns])
        release_free_memory()
        features = _vectorising(self.features_model_.fit_weights, counts)
        laps.end("vectorise")
        is_target = target_mask(pages, exclude_no_index=self.exclude_no_index)
        candidates, scores = self._search(features, is_target)
        self.semantic_candidates_, self.semantic_candidate_scores_ = self._semantic_search(
            np.arange(len(pages)), is_target
        )
        laps.end("similarity")
        self._link(pages, features, is_target, candidates, scores, laps, editorial)
        self.search_params_ = self.search_settings()  # the settings it is now made with
        return self

    def update(self, pages: pd.DataFrame, changed: Iterable[str]) -> Recommender:
        """Recompute the links after some pages were added, changed or deleted.

        The fitted vocabularies and document frequencies are kept (a nightly
        run's :meth:`fit` of yesterday): only the pages in ``changed`` and
        the pages new since the fit are vectorised, and only the pages whose
        candidates they enter or leave are searched again.  The rules and
        coverage then run over the whole site, so the links are exactly those
        of a fit whose vectorizers saw the same words as this one's, with the
        exact search (with the fast one, nearly: a changed page can shift the
        pool a page's candidates come from, and which terms are its strongest;
        see README).  With
        ``semantic_weight``, only the new and changed pages are embedded (the
        others keep their row of ``embeddings_``).  As a
        site grows the frozen document frequencies drift from a fresh fit's:
        refit now and then (``recommend`` does past ``--full-after``).

        Parameters
        ----------
        pages : pandas.DataFrame
            The whole site now (``Corpus.pages``); pages missing from it are
            deleted.  Only new and changed pages need their ``*_text`` columns
            (every page, with ``semantic_weight`` and no ``embeddings_`` kept).
        changed : iterable of str
            Urls of the pages whose text or fields changed since the fit.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            A setting that shapes the features or candidates changed since the
            fit (it is named: fit again).  Only the embedding settings may
            change, from a fit without them: every page is embedded then.
        """
        check_is_fitted(self, "candidates_")
        self.check_params()
        fitted = getattr(self, "search_params_", None)
        if fitted is not None:  # embeddings may be turned on after a fit without them
            self._check_search_unchanged(
                "update", EMBEDDING_PARAMETERS if not fitted.get("semantic_weight") else ()
            )
        pages = self._check_pages(pages, {})
        editorial = self._resolve_rules(pages)
        laps = _Laps()
        old_rows = self.urls_.get_indexer(pages.index)
        is_changed = (old_rows < 0) | is_in(pages.index, changed)
        features = self._updated_features(pages, old_rows, is_changed)
        laps.end("vectorise")
        is_target = target_mask(pages, exclude_no_index=self.exclude_no_index)
        candidates, scores = self._updated_candidates(features, is_target, old_rows, is_changed)
        laps.end("similarity")
        self.embeddings_ = self._updated_embeddings(pages, old_rows, is_changed)
        if self.semantic_weight:
            laps.end("embeddings")
        self.semantic_candidates_, self.semantic_candidate_scores_ = (
            self._updated_semantic_candidates(is_target, old_rows, is_changed)
        )
        self._link(pages, features, is_target, candidates, scores, laps, editorial)
        self.search_params_ = self.search_settings()  # the settings it is now made with
        return self

    def relink(self, pages: pd.DataFrame) -> Recommender:
        """Choose the links again from the fitted candidates, with the settings now in effect.

        For quick re-runs while tuning: after :meth:`set_params` of settings
        in :data:`LINKING_PARAMETERS` (the rules, coverage, stability, the
        mutual discount...), the links are those a :meth:`fit` with these
        settings gives, and in the time of the rules and coverage steps
        alone: the pages are not vectorised or searched again.

        Parameters
        ----------
        pages : pandas.DataFrame
            The pages of the fit (the same urls, each ``no_index`` as it
            was).  Their other fields and their links are read again (by the
            rules, and ``stability``); their texts are not.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            A setting outside :data:`LINKING_PARAMETERS` and
            :data:`RUNNING_PARAMETERS` changed since the fit (it is named:
            fit again), or the pages are not those of the fit (other urls,
            or a page whose ``no_index`` changed: :meth:`update` takes it
            as a changed page).
        """
        check_is_fitted(self, "search_params_")
        self._check_search_unchanged("relink")
        pages = self._check_pages(pages, {})  # update checks the settings
        if not pages.index.equals(self.urls_):
            raise ConfigError(
                "relink needs the pages of the fit (the same urls); "
                "update() takes pages added, changed or deleted"
            )
        moved = pages.index[
            target_mask(pages, exclude_no_index=self.exclude_no_index) != self.targets_
        ]
        if len(moved):
            raise ConfigError(
                f"relink needs the pages of the fit: {len(moved)} may be linked to or not, "
                f"unlike then (no_index changed: {', '.join(moved[:3])}); update() takes "
                "them as changed pages"
            )
        return self.update(pages, changed=())

    def _check_search_unchanged(self, verb: str, free: Iterable[str] = ()) -> None:
        """Refuse, by name, a setting that shapes the features or candidates and has
        changed since the fit (``free``: those the caller can change)."""
        changed = settings_differ(self.search_settings(), self.search_params_)
        changed = [name for name in changed if name not in set(free)]
        if changed:
            raise ConfigError(
                f"{', '.join(changed)} changed since the fit, and {verb} applies only "
                f"{', '.join(sorted(LINKING_PARAMETERS))}: fit again"
            )

    def search_settings(self) -> dict[str, Any]:
        """The settings that make the features and candidates: all but
        :data:`LINKING_PARAMETERS` and :data:`RUNNING_PARAMETERS` (and
        :data:`EMBEDDING_PARAMETERS` at a ``semantic_weight`` of 0).  Two
        models whose search settings do not differ (:func:`settings_differ`)
        find the same candidates, so one may :meth:`relink` to the other's links."""
        ignored = unsearched_settings(self.semantic_weight)
        return {k: v for k, v in self.get_params(deep=False).items() if k not in ignored}

    def _link(
        self,
        pages: pd.DataFrame,
        features: sp.csr_matrix,
        is_target: np.ndarray,
        candidates: np.ndarray,
        scores: np.ndarray,
        laps: _Laps,
        editorial: ResolvedRules,
    ) -> Recommender:
        """From each page's raw candidates to its links: rules, coverage; set the attributes."""
        self.urls_ = pages.index.copy()
        self.targets_ = is_target
        self.features_ = features
        self.candidates_, self.candidate_scores_ = candidates, scores
        search_was_full = scores[:, -1] > self.min_score  # more candidates may lie beyond
        groups = connected_labels(
            len(pages),
            [copy_groups(pages)],
            near_duplicate_pairs(candidates, scores, self.duplicate_threshold),
        )
        current = current_links(pages)
        candidates, ranking, scores = self._apply_rules(
            pages, features, candidates, scores, groups, is_target, current, editorial
        )
        laps.end("rules")
        link_places = self._choose(candidates, ranking, is_target, scores, current)
        laps.end("coverage")
        _warn_short_pages(
            link_places, search_was_full & ~editorial.narrowed(), groups, is_target, self.n_links
        )
        targets, link_scores = _chosen_links(candidates, scores, link_places)
        pair_scores = functools.partial(
            _pair_scores, features, vectors=self.embeddings_, weight=self.semantic_weight
        )
        targets, link_scores = editorial.place_pins(
            targets, link_scores, groups, pair_scores(editorial.pins)
        )
        self.copy_group_ = groups
        self.related_ = _links_frame(
            self.urls_, targets, link_scores, editorial, current, pair_scores
        )
        self.kept_urls_ = self.urls_[editorial.kept()]
        self.rule_events_ = _events_frame(self.urls_, editorial)
        self.timings_ = laps.seconds
        logger.info("%d links for %d pages; %s", len(self.related_), len(pages), laps)
        return self

    def _updated_features(
        self, pages: pd.DataFrame, old_rows: np.ndarray, is_changed: np.ndarray
    ) -> sp.csr_matrix:
        """Yesterday's rows for unchanged pages, fresh rows (same vocabulary) for the others."""
        if not is_changed.any():
            return self.features_[old_rows]
        fresh = self.features_model_.transform(pages[is_changed])
        # each page's row taken once from yesterday's rows and the fresh ones below them
        source = old_rows.copy()
        source[is_changed] = self.features_.shape[0] + np.arange(int(is_changed.sum()))
        return sp.vstack([self.features_, fresh], format="csr")[source]

    def _embeddings(self, pages: pd.DataFrame) -> np.ndarray | None:
        """Each page's L2-normalised embedding, cached or encoded; None at weight 0."""
        if not self.semantic_weight:
            return None
        if callable(self.embedding_model):
            encode = self.embedding_model
        else:
            encode = lazy_encoder(
                self.embedding_model, n_threads=joblib.effective_n_jobs(self.n_jobs)
            )
        folder = default_cache_folder() if self.embedding_cache is None else self.embedding_cache
        cache = EmbeddingCache(folder, encode, model=encoder_name(self.embedding_model))
        vectors = cache.embed(embedding_text(pages).tolist(), progress=self.progress)
        return normalize(vectors.astype(np.float32, copy=False))

    def _updated_embeddings(
        self, pages: pd.DataFrame, old_rows: np.ndarray, is_changed: np.ndarray
    ) -> np.ndarray | None:
        """Yesterday's rows for unchanged pages; the new and changed pages embedded."""
        stored = getattr(self, "embeddings_", None)
        if not self.semantic_weight or stored is None:  # none kept: every page embedded
            return self._embeddings(pages)
        vectors = np.empty((len(pages), stored.shape[1]), dtype=stored.dtype)
        vectors[~is_changed] = stored[old_rows[~is_changed]]
        if is_changed.any():
            vectors[is_changed] = self._embeddings(pages[is_changed])
        return vectors

    def _updated_candidates(
        self,
        features: sp.csr_matrix,
        is_target: np.ndarray,
        old_rows: np.ndarray,
        is_changed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Yesterday's candidates merged with the changed pages' scores; a new search
        only for the rows where the merge cannot be sure (see :func:`_updated_lists`)."""
        if min(self.n_candidates + 1, int(is_target.sum())) != self.candidates_.shape[1]:
            return self._search(features, is_target)  # the width changed: search all
        candidates, scores, searched = _updated_lists(
            self.candidates_,
            self.candidate_scores_,
            old_rows,
            is_changed,
            is_target,
            among=lambda kept, entering, k, floors: top_k_cosine_above(
                features[kept],
                features[entering],
                k=k,
                floors=floors,
                block_size=self.block_size,
                n_jobs=self.n_jobs,
            ),
            search=lambda rows: self._search(features[rows], is_target, features),
        )
        logger.info("%d of %d pages searched again", searched, len(old_rows))
        return candidates, scores

    def _semantic_search(
        self, rows: np.ndarray, is_target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The targets nearest to these pages by embedding cosine: page rows and cosines.

        ``n_semantic_candidates + 1`` per page (a page finds itself); no
        columns without ``semantic_weight`` or with ``n_semantic_candidates`` 0.
        """
        targets = np.flatnonzero(is_target)
        width = self._semantic_width(len(targets))
        if not width:
            return np.full((len(rows), 0), -1, dtype=np.int64), np.zeros((len(rows), 0), np.float32)
        vectors = self.embeddings_
        found, scores = top_k_dense(vectors[rows], vectors[targets], k=width)
        return np.where(found >= 0, targets[np.maximum(found, 0)], -1), scores

    def _semantic_width(self, n_targets: int) -> int:
        if not self.semantic_weight or self.embeddings_ is None or not self.n_semantic_candidates:
            return 0
        return min(self.n_semantic_candidates + 1, n_targets)

    def _updated_semantic_candidates(
        self, is_target: np.ndarray, old_rows: np.ndarray, is_changed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Yesterday's nearest pages by embedding, merged as :meth:`_updated_candidates` does."""
        stored = getattr(self, "semantic_candidates_", None)
        width = self._semantic_width(int(is_target.sum()))
        if not width or stored is None or stored.shape[1] != width:
            return self._semantic_search(np.arange(len(old_rows)), is_target)
        vectors = self.embeddings_
        candidates, scores, _ = _updated_lists(
            stored,
            self.semantic_candidate_scores_,
            old_rows,
            is_changed,
            is_target,
            among=lambda kept, entering, k, _: top_k_dense(vectors[kept], vectors[entering], k=k),
            search=lambda rows: self._semantic_search(rows, is_target),
        )
        return candidates, scores

    def _apply_rules(
        self,
        pages: pd.DataFrame,
        features,
        candidates: np.ndarray,
        scores: np.ndarray,
        groups: np.ndarray,
        is_target: np.ndarray,
        current: np.ndarray,
        editorial: ResolvedRules,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The candidates each page may link to, best ranked first; their ranking and similarity.

        With ``semantic_weight``, the scores are first blended with the
        embeddings' cosine.  The automatic rules and the editor's never,
        dates and subjects rules remove candidates; recency and ``stability``
        set the ranking score; the rows of kept pages are emptied (their
        blocks stay as they are).
        """
        threads = joblib.effective_n_jobs(self.n_jobs)
        if self.stability:  # current links the search did not bring back compete too
            candidates, scores = add_candidates(
                candidates, scores, current, features, is_target, threads
            )
        if self.semantic_candidates_.shape[1]:  # the same meaning in other words competes too
            candidates, scores = add_candidates(
                candidates, scores, self.semantic_candidates_, features, is_target, threads
            )
        candidates, scores = semantic_rescore(
            candidates, scores, self.embeddings_, self.semantic_weight
        )
        subjects = pd.factorize(pages["subject_key"])[0]
        candidates, scores = apply_rules(candidates, scores, groups, subjects, self.min_score)
        candidates, scores = editorial.remove_forbidden(candidates, scores)
        candidates, ranking, scores = rerank(
            candidates,
            scores,
            current=current,
            stability=self.stability,
            target_factor=editorial.recency(),
            mutual_discount=self.mutual_discount,
            n_links=self.n_links,
        )
        candidates, ranking, scores = editorial.limit_cross_subject(
            candidates, ranking, scores, self.n_links
        )
        candidates[editorial.kept()] = -1
        return candidates, ranking, scores

    def _resolve_rules(self, pages: pd.DataFrame) -> ResolvedRules:
        rules = EditorialRules() if self.rules is None else self.rules
        return rules.resolve(pages, n_links=self.n_links, exclude_no_index=self.exclude_no_index)

    def new_features(
        self, weights: Mapping[str, float], ngram_ranges: Mapping[str, tuple[int, int]]
    ) -> FieldFeatures:
        """Unfitted field features with this model's TF-IDF settings."""
        return FieldFeatures(
            weights,
            ngram_ranges,
            combine=self.combine,
            stem=self.stem,
            max_df=self.max_df,
            min_df=self.min_df,
            tf=self.tf,
            bm25_k1=self.bm25_k1,
            bm25_b=self.bm25_b,
            idf_power=self.idf_power,
            stop_words=self.stop_words,
            n_jobs=self.n_jobs,
        )

    def _search(
        self, queries: sp.csr_matrix, is_target: np.ndarray, features: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best candidates (page rows) of each query among the targets: one more than asked.

        One more, because a page finds itself among its own candidates.
        ``features`` are all the pages' rows (default: the queries).
        """
        features = queries if features is None else features
        targets = np.flatnonzero(is_target)
        if not len(targets):  # nothing may be linked to (every page no_index): no candidates
            shape = (queries.shape[0], 1)
            return np.full(shape, -1, dtype=np.int64), np.zeros(shape, dtype=np.float32)
        fast = self.search == "fast" or (
            self.search == "auto" and features.shape[0] >= FAST_SEARCH_MIN_PAGES
        )
        every = len(targets) == features.shape[0]
        found, scores = self._top_k(
            queries,
            None if every and queries is features else features[targets],  # None: the queries
            k=min(self.n_candidates + 1, len(targets)),
            fast=fast,
        )
        return np.where(found >= 0, targets[np.maximum(found, 0)], -1), scores

    def _top_k(
        self, queries: sp.csr_matrix, targets: sp.csr_matrix | None, *, k: int, fast: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact or fast search, its blocks on the Dask cluster when one is in use."""
        options = {"k": k, "block_size": self.block_size, "progress": self.progress}
        if fast:  # strong terms picked by their classic TF-IDF weight (see neighbors)
            options["rarity_power"] = max(0.0, 1.0 - self.idf_power)
        client = cluster_client(self.n_jobs)
        if client is not None:
            search = top_k_cosine_fast_dask if fast else top_k_cosine_dask
            return search(queries, targets, client=client, **options)
        search = top_k_cosine_fast if fast else top_k_cosine
        return search(queries, targets, n_jobs=self.n_jobs, **options)

    def _choose(
        self,
        candidates: np.ndarray,
        scores: np.ndarray,
        is_target: np.ndarray,
        similarity: np.ndarray | None = None,
        current: np.ndarray | None = None,
    ) -> np.ndarray:
        if not self.coverage:
            return first_links(candidates, self.n_links)
        # with stability, a rescue the last run made is made again where it still may be
        keep_rescues = self.stability and current is not None
        return spread_links(
            candidates,
            scores,
            n_links=self.n_links,
            max_in_links=self.max_in_links,
            tolerance=self.coverage_tolerance,
            is_target=is_target,
            rescue_scores=similarity,  # an orphan's claim is judged on similarity alone
            held_now=held_now(candidates, current) if keep_rescues else None,
        )

    # ------------------------------------------------------------------ explain

    def explain(self, source_url: str, target_url: str, *, top: int = 10) -> pd.DataFrame:
        """The shared terms that contribute most to the score of a pair of pages.

        Parameters
        ----------
        source_url, target_url : str
            Two fitted pages.
        top : int, default 10
            Terms to show per field.

        Returns
        -------
        pandas.DataFrame
            One row per shared term, best first within each field: ``field``,
            ``term``, ``contribution`` (its share of the score; all shared
            terms together sum to the score), ``source_weight`` and
            ``target_weight`` (the term's value in each page's vector).  With
            ``semantic_weight``, they sum to the TF-IDF cosine, the part of a
            link's score that words explain.
        """
        check_is_fitted(self, "related_")
        for url in (source_url, target_url):
            if url not in self.urls_:
                raise KeyError(f"{url!r} is not a page of the fitted site")
        source, target = (
            self.features_[self.urls_.get_loc(url)] for url in (source_url, target_url)
        )
        shared, source_pos, target_pos = np.intersect1d(
            source.indices, target.indices, assume_unique=True, return_indices=True
        )
        a, b = source.data[source_pos], target.data[target_pos]
        names = self.features_model_.feature_names_
        table = pd.DataFrame(
            {
                "field": names["field"].to_numpy()[shared],
                "term": names["term"].to_numpy()[shared],
                "contribution": a * b,
                "source_weight": a,
                "target_weight": b,
            }
        )
        table = table.sort_values(["field", "contribution", "term"], ascending=[True, False, True])
        return table.groupby("field", sort=False).head(top).reset_index(drop=True)

    def explain_links(self, source_url: str, *, top: int = 5) -> pd.DataFrame:
        """:meth:`explain` for each link of one page, in rank order.

        Returns
        -------
        pandas.DataFrame
            ``rank``, ``target_url``, ``score``, then the columns of :meth:`explain`.
        """
        check_is_fitted(self, "related_")
        links = self.related_[self.related_["source_url"] == source_url]
        if links.empty and source_url not in self.urls_:
            raise KeyError(f"{source_url!r} is not a page of the fitted site")
        parts = [
            self.explain(source_url, link.target_url, top=top).assign(
                rank=link.rank, target_url=link.target_url, score=link.score
            )
            for link in links.itertuples()
        ]
        columns = ["rank", "target_url", "score", "field", "term", "contribution"]
        if not parts:
            return pd.DataFrame(columns=[*columns, "source_weight", "target_weight"])
        table = pd.concat(parts, ignore_index=True)
        return table[[*columns, "source_weight", "target_weight"]]

    def explain_rules(self, source_url: str, target_url: str | None = None) -> pd.DataFrame:
        """Which editorial rules placed or removed the links of a page (or of one pair).

        Returns
        -------
        pandas.DataFrame
            The rows of :attr:`rule_events_` for this source (and target):
            ``source_url``, ``target_url``, ``action`` ("placed" by a pin or
            a keep rule, "removed" by a never rule, ``[dates]``,
            ``[subjects]`` or to make room for a pin) and ``rule``
            (``FILE:LINE: [[kind]]`` or ``FILE: [section] key``).  Empty when
            no rule touched the page.
        """
        check_is_fitted(self, "related_")
        if source_url not in self.urls_:
            raise KeyError(f"{source_url!r} is not a page of the fitted site")
        events = self.rule_events_
        chosen = events["source_url"] == source_url
        if target_url is not None:
            chosen &= events["target_url"] == target_url
        return events[chosen].reset_index(drop=True)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Save the fitted model with joblib, with the library versions it was made with.

        Model files are pickles: loading one can run arbitrary code, so load
        only files you made yourself.
        """
        check_is_fitted(self, "related_")
        with open(path, "wb") as stream:
            pickle.dump(_versions(), stream)
            joblib.dump(self, stream)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved by :meth:`save`.

        Raises :class:`~recommender.errors.ModelFileError` when the file is
        not a model, or was saved with other versions of recommender or its
        libraries (naming each difference): refit rather than trust it.
        Model files are pickles: load only files you made yourself.
        """
        try:
            with open(path, "rb") as stream:
                saved = pickle.load(stream)
                if not isinstance(saved, dict) or "recommender" not in saved:
                    raise ModelFileError(f"{path}: not a recommender model file")
                differences = [
                    f"{name} {saved.get(name)} (saved) != {version} (here)"
                    for name, version in _versions().items()
                    if saved.get(name) != version
                ]
                if differences:
                    raise ModelFileError(
                        f"{path}: saved with other library versions: {'; '.join(differences)}; "
                        "fit the model again"
                    )
                model = joblib.load(stream)
        except (
            OSError,
            EOFError,
            ValueError,
            ImportError,
            AttributeError,
            pickle.UnpicklingError,
        ) as exc:
            raise ModelFileError(f"{path}: cannot read the model: {exc}") from None
        if not isinstance(model, cls):
            raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def _versions() -> dict[str, str]:
    import scipy
    import sklearn
    import sparse_dot_topn

    return {
        "recommender": __version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
        "sparse_dot_topn": sparse_dot_topn.__version__,
    }


class _Laps:
    """Seconds spent in each named step, one after another."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def end(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = now - self._clock
        self._clock = now

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.1f}s" for step, seconds in self.seconds.items())


def _refuse(name: str, value: Any, expected: str) -> Any:
    raise ConfigError(f"{name} must be {expected}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _is_ngram_range(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1 for n in value
        )
        and value[0] <= value[1]
    )


def unsearched_settings(semantic_weight: float | None) -> frozenset[str]:
    """The settings that shape neither the features nor the candidates: the linking and
    running ones, and the embedding ones at a ``semantic_weight`` of 0 (or None)."""
    ignored = LINKING_PARAMETERS | RUNNING_PARAMETERS
    return ignored if semantic_weight else ignored | set(EMBEDDING_PARAMETERS)


def as_real(value: Any) -> Any:
    """An integer as its float (not a bool); any other value as it is."""
    is_integer = isinstance(value, int | np.integer) and not isinstance(value, bool)
    return float(value) if is_integer else value


#: The settings that are real numbers only, whose integer means the same as its float
#: (not ``max_df`` or ``min_df``, whose integers count pages).
REAL_SETTINGS = frozenset(
    name
    for name, constraints in Recommender._parameter_constraints.items()
    if constraints and all(getattr(rule, "type", None) is Real for rule in constraints)
)


def settings_differ(settings: Mapping[str, Any], others: Mapping[str, Any]) -> list[str]:
    """The names of the settings whose values differ: not the same object, nor equal values
    of one type (``max_df`` 1 and 1.0 differ; in :data:`REAL_SETTINGS`, an integer is its
    float); a setting only one side holds differs."""

    def same(a: Any, b: Any) -> bool:
        return a is b or (type(a) is type(b) and bool(a == b))

    def said(values: Mapping[str, Any], name: str) -> Any:
        value = values.get(name, missing)
        return as_real(value) if name in REAL_SETTINGS else value

    names = [*settings, *(name for name in others if name not in settings)]
    missing = object()
    return [name for name in names if not same(said(settings, name), said(others, name))]


def _updated_lists(
    stored: np.ndarray,
    stored_scores: np.ndarray,
    old_rows: np.ndarray,
    is_changed: np.ndarray,
    is_target: np.ndarray,
    *,
    among: Callable[[np.ndarray, np.ndarray, int, np.ndarray], tuple[np.ndarray, np.ndarray]],
    search: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Each page's best targets after some pages changed, from yesterday's exact lists.

    ``stored`` holds yesterday's lists (rows of yesterday's pages, best
    first) and ``old_rows`` each page's row yesterday (-1 if new).  The
    unchanged pages' lists are merged with their best among the new and
    changed pages (``among(kept, entering, k, floors)``: indices into
    ``entering`` and scores, of at least those scoring ``floors`` or more:
    a full row's stored last score, else 0, below which no page can enter
    it); the rows where the merge cannot be sure, and the changed pages, are
    searched again (``search(rows)``: page rows and scores).
    Returns the lists, their scores, and how many rows were searched again.
    """
    width = stored.shape[1]
    new_row_of_old = np.full(len(stored), -1, dtype=np.int64)
    new_row_of_old[old_rows[old_rows >= 0]] = np.flatnonzero(old_rows >= 0)
    kept = np.flatnonzero(~is_changed)
    kept_lists = stored[old_rows[kept]]
    remapped = np.where(kept_lists >= 0, new_row_of_old[np.maximum(kept_lists, 0)], -1)
    entering = np.flatnonzero(is_changed & is_target)
    lists = np.full((len(old_rows), width), -1, dtype=np.int64)
    scores = np.zeros(lists.shape, dtype=np.float32)
    if len(entering):  # at most `width` of them can enter a row: its best `width`
        full = kept_lists[:, -1] >= 0
        floors = np.where(full, stored_scores[old_rows[kept], -1], 0).astype(np.float32)
        found, found_scores = among(kept, entering, min(width, len(entering)), floors)
        reach = int((found >= 0).sum(axis=1).max(initial=0))  # padding on the right
        found, found_scores = found[:, :reach], found_scores[:, :reach]
        fresh = np.where(found >= 0, entering[np.maximum(found, 0)], -1)
    else:
        fresh = np.full((len(kept), 0), -1, dtype=np.int64)
        found_scores = np.zeros(fresh.shape, dtype=np.float32)
    lists[kept], scores[kept], unsure = _merge_candidates(
        kept_lists, remapped, stored_scores[old_rows[kept]], is_changed, fresh, found_scores
    )
    rows = np.r_[kept[unsure], np.flatnonzero(is_changed)]
    if len(rows):
        lists[rows], scores[rows] = search(rows)
    return lists, scores, len(rows)


def _merge_candidates(
    stored: np.ndarray,
    remapped: np.ndarray,
    stored_scores: np.ndarray,
    is_changed: np.ndarray,
    fresh: np.ndarray,
    fresh_scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each kept row's new best candidates, and whether the merge can be trusted.

    A row's stored list is the exact top of the old pages.  Its entries that
    were deleted or changed are dropped; the rest are still the top of the
    unchanged pages, as far as they go.  The changed and new pages' best
    (``fresh``, page rows, with their scores) are merged in, ordered by
    score, then page index, as the search orders them.  An unchanged page the
    row never listed ranks after the stored last entry; so the merged top is
    exact when the row lost nothing, or when its last place scores above the
    stored last one or is that same entry, kept.  The other rows (``unsure``)
    must be searched again.  (With the fast search the stored list is the top
    of a candidate pool, which a changed page can shift: there the merge is
    nearly, not always, what a new search would give.)
    A row whose list was not full knew every page with a positive score: it
    is always sure.
    """
    width = stored.shape[1]
    lost = ((stored >= 0) & (remapped < 0)) | (
        (remapped >= 0) & is_changed[np.maximum(remapped, 0)]
    )
    was_full = stored[:, -1] >= 0
    # Rows that lost nothing and where no fresh page reaches the last place keep their
    # list.  A found page scores above 0, an empty last place 0: any reaches a short list.
    reaching = (fresh >= 0) & ~(fresh_scores < stored_scores[:, -1:])
    touched = lost.any(axis=1) | reaching.any(axis=1)
    candidates = remapped.copy()
    scores = np.where(remapped >= 0, stored_scores, 0).astype(np.float32)
    candidates[touched], scores[touched] = _merged_rows(
        np.where(lost, -1, remapped)[touched],
        stored_scores[touched],
        fresh[touched],
        fresh_scores[touched],
        width,
    )
    # An unknown page ranks after the stored last entry (score, then page index); so
    # does the merged last entry when it scores more, or is that entry itself, kept.
    ahead_of_the_unknown = (scores[:, -1] > stored_scores[:, -1]) | (
        (candidates[:, -1] == remapped[:, -1]) & ~lost[:, -1]
    )
    unsure = was_full & lost.any(axis=1) & ~ahead_of_the_unknown
    return candidates, scores, unsure


def _merged_rows(
    kept: np.ndarray,
    kept_scores: np.ndarray,
    fresh: np.ndarray,
    fresh_scores: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best ``width`` of its kept and fresh candidates: by score, then page index."""
    pooled = np.hstack([kept, fresh])
    pooled_scores = np.hstack([kept_scores, fresh_scores]).astype(np.float32)
    ranked = np.where(pooled >= 0, -pooled_scores, np.inf)  # empty places last
    order = np.lexsort((np.where(pooled >= 0, pooled, np.iinfo(np.int64).max), ranked), axis=1)
    order = order[:, :width]
    candidates = np.take_along_axis(pooled, order, 1)
    scores = np.where(candidates >= 0, np.take_along_axis(pooled_scores, order, 1), 0)
    return candidates, scores.astype(np.float32)


def _warn_short_pages(
    link_places: np.ndarray,
    search_was_full: np.ndarray,
    groups: np.ndarray,
    is_target: np.ndarray,
    n_links: int,
) -> None:
    """Warn once, with a count, about pages left with fewer links than the site could give.

    A page could have as many links as there are questions (copy groups)
    among the pages that may be linked to, less its own; it is short for
    want of candidates when its search came back full (every place above
    ``min_score``), so that more candidates may lie beyond ``n_candidates``.
    """
    target_groups = np.unique(groups[is_target])
    own_group_is_target = np.isin(groups, target_groups)
    possible = np.minimum(n_links, len(target_groups) - own_group_is_target)
    short = int((((link_places >= 0).sum(axis=1) < possible) & search_was_full).sum())
    if short:
        warnings.warn(
            f"{short:,} pages got fewer than {n_links} links although the site has more "
            "pages they may link to; raise n_candidates to find them",
            stacklevel=3,
        )


def _vectorising(step: Callable, *args, **kwargs):
    """A step of the features' fit; its ValueError (no term left) as a ConfigError."""
    try:
        return step(*args, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"cannot vectorise the pages: {exc}") from None


def _chosen_links(
    candidates: np.ndarray, scores: np.ndarray, link_places: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The chosen targets and their similarities, ``(n, n_links)``, most similar first."""
    safe = np.maximum(link_places, 0)
    rows = np.arange(len(candidates))[:, None]
    targets = np.where(link_places >= 0, candidates[rows, safe], -1)
    similarity = np.where(link_places >= 0, scores[rows, safe], -np.inf)
    order = np.argsort(-similarity, axis=1, kind="stable")
    similarity = np.take_along_axis(similarity, order, 1)
    return np.take_along_axis(targets, order, 1), np.where(targets[rows, order] >= 0, similarity, 0)


def _pair_scores(
    features, pairs: pd.DataFrame, *, vectors: np.ndarray | None = None, weight: float = 0.0
) -> np.ndarray:
    """Cosine similarity of each (``source``, ``target``) row of ``pairs``.

    With a ``weight``, blended with the cosine of the (L2-normalised) ``vectors``.
    """
    if pairs.empty:
        return np.zeros(0)
    sources, targets = pairs["source"].to_numpy(), pairs["target"].to_numpy()
    scores = np.asarray(features[sources].multiply(features[targets]).sum(axis=1)).ravel()
    if not weight:
        return scores
    dense = np.einsum("id,id->i", vectors[sources], vectors[targets])
    return weight * dense + (1 - weight) * scores


def _links_frame(
    urls: pd.Index,
    targets: np.ndarray,
    scores: np.ndarray,
    editorial: ResolvedRules,
    current: np.ndarray,
    pair_scores: Callable[[pd.DataFrame], np.ndarray],
) -> pd.DataFrame:
    """One row per link; a kept page's rows are its current links that resolve to pages."""
    kept = editorial.kept()
    targets = np.where(kept[:, None], -1, targets)
    rows, ranks = np.nonzero(targets >= 0)
    kept_rows, kept_ranks = np.nonzero(kept[:, None] & (current >= 0))
    kept_pairs = pd.DataFrame({"source": kept_rows, "target": current[kept_rows, kept_ranks]})
    editorial.log_kept(kept_pairs)
    frame = pd.DataFrame(
        {
            "source_url": urls[np.r_[rows, kept_rows]],
            "rank": (np.r_[ranks, kept_ranks] + 1).astype(np.int64),
            "target_url": urls[np.r_[targets[rows, ranks], kept_pairs["target"]]],
            "score": np.r_[scores[rows, ranks], pair_scores(kept_pairs)].astype(np.float64),
        },
        columns=list(LINK_COLUMNS),
    )
    if len(kept_rows):
        frame = frame.sort_values(["source_url", "rank"], ignore_index=True)
    return frame


def _events_frame(urls: pd.Index, editorial: ResolvedRules) -> pd.DataFrame:
    """The rules' events as a table of urls (see :attr:`Recommender.rule_events_`)."""
    columns = ["source_url", "target_url", "action", "rule"]
    if not editorial.events:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    sources, targets, actions, rules = zip(*editorial.events, strict=True)
    sizes = [len(s) for s in sources]
    return pd.DataFrame(
        {
            "source_url": urls[np.concatenate(sources)],
            "target_url": urls[np.concatenate(targets)],
            "action": pd.Categorical(np.repeat(actions, sizes)),
            "rule": pd.Categorical(np.repeat(rules, sizes)),
        }
    )
