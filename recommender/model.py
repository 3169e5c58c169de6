"""The similarity model: the most related pages for every page.

:class:`Recommender` turns the pages DataFrame of :func:`recommender.load_corpus`
into a links table.  It

1. vectorises each page (:mod:`recommender.features`: field-weighted TF-IDF);
2. finds each page's best candidates by exact cosine similarity
   (:mod:`recommender.neighbors`), among the pages that may be recommended;
3. applies the rules a reader expects: never the page itself, never one of its
   cross-listed copies, never the same question twice, no ``no_index`` pages,
   nothing under ``min_score``;
4. with ``coverage`` on, spreads the links so that (nearly) every page is
   linked from somewhere and no page collects a crowd of links, while each
   page keeps links that are nearly as relevant as its plain nearest
   neighbours.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from . import __version__
from .corpus import connected_labels, copy_groups
from .errors import ConfigError, ModelFileError
from .features import FieldFeatures, text_column
from .neighbors import top_k_cosine

__all__ = ["LINK_COLUMNS", "Recommender"]

logger = logging.getLogger(__name__)

#: Columns of :attr:`Recommender.related_`, one row per link.
LINK_COLUMNS: dict[str, str] = {
    "source_url": "url of the page that shows the link",
    "rank": "1 for the most related, up to n_links",
    "target_url": "url of the recommended page",
    "score": "cosine similarity of the two pages' feature vectors (0..1)",
}

#: Field weights used when ``field_weights`` is None (chosen on the real corpus; see README).
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {"title": 1.0, "keywords": 1.0, "answer": 2.0}
#: Word n-grams per field used when ``ngram_range`` is None; (1, 1) for other fields.
DEFAULT_NGRAM_RANGES: dict[str, tuple[int, int]] = {"title": (1, 2)}

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
    max_df : float or int, default 0.1
        Ignore terms in more than this share (float) or number (int) of pages:
        corpus-wide boilerplate says nothing about how two pages relate.
    min_df : float or int, default 1
        Ignore terms in fewer pages than this.  1 keeps every word: a word
        found in one page never adds to a score, but pruning it would leave
        the page's other words weighing more.
    ngram_range : (min_n, max_n) or mapping of field to (min_n, max_n), optional
        Word n-grams, for every field or per field ((1, 1) for fields not
        named).  Default: :data:`DEFAULT_NGRAM_RANGES`, word pairs in titles
        only (in answers they would multiply the vocabulary and the time).
    sublinear_tf : bool, default True
        Use ``1 + log(tf)`` instead of raw term counts.
    stop_words : "english", list of str or None, default "english"
        Words to ignore.
    duplicate_threshold : float, default 0.9
        Pages at least this similar are treated as copies of each other (as
        well as pages with the same slug or question), so are never
        recommended for each other, nor both on one page.
    exclude_no_index : bool, default True
        Never recommend pages marked ``no_index: true``.
    min_score : float, default 0.0
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
        Candidates examined per page before the rules; more finds links for
        more unlinked pages at some cost in time.
    block_size : int, default 4096
        Pages whose similarities are computed at a time; bounds memory.
    n_jobs : int or None, default None
        Threads for the similarity search, as in scikit-learn: None means 1,
        -1 all cores.
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
        max_df: float | int = 0.1,
        min_df: float | int = 1,
        ngram_range: tuple[int, int] | Mapping[str, tuple[int, int]] | None = None,
        sublinear_tf: bool = True,
        stop_words: str | list[str] | None = "english",
        duplicate_threshold: float = 0.9,
        exclude_no_index: bool = True,
        min_score: float = 0.0,
        coverage: bool = True,
        max_in_links: int = 20,
        coverage_tolerance: float = 0.3,
        n_candidates: int = 40,
        block_size: int = 4096,
        n_jobs: int | None = None,
        progress: bool = False,
    ):
        self.n_links = n_links
        self.field_weights = field_weights
        self.max_df = max_df
        self.min_df = min_df
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.stop_words = stop_words
        self.duplicate_threshold = duplicate_threshold
        self.exclude_no_index = exclude_no_index
        self.min_score = min_score
        self.coverage = coverage
        self.max_in_links = max_in_links
        self.coverage_tolerance = coverage_tolerance
        self.n_candidates = n_candidates
        self.block_size = block_size
        self.n_jobs = n_jobs
        self.progress = progress

    # ------------------------------------------------------------------ checks

    def _validate_params(self) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
        def fail(name: str, expected: str) -> None:
            raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        def is_number(value: Any) -> bool:
            return isinstance(value, int | float | np.number) and not isinstance(value, bool)

        for name in ("n_links", "n_candidates", "block_size", "max_in_links"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        if self.n_candidates < self.n_links:
            fail("n_candidates", f"at least n_links ({self.n_links})")
        weights = DEFAULT_FIELD_WEIGHTS if self.field_weights is None else self.field_weights
        if (
            not isinstance(weights, Mapping)
            or not weights
            or not all(isinstance(k, str) and is_number(v) and v >= 0 for k, v in weights.items())
            or not any(v > 0 for v in weights.values())
        ):
            fail("field_weights", "a mapping of field names to weights >= 0, one of them > 0")
        for name, low, high in (
            ("duplicate_threshold", 0.0, 1.0),
            ("coverage_tolerance", 0.0, 1.0),
            ("min_score", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not is_number(value) or not low <= value <= high:
                fail(name, f"a number from {low} to {high}")
        for name in ("max_df", "min_df"):
            value = getattr(self, name)
            if is_int(value):
                if value < 1:
                    fail(name, "a positive integer (a number of pages) or a float in (0, 1]")
            elif not is_number(value) or not 0 < value <= 1:
                fail(name, "a positive integer (a number of pages) or a float in (0, 1]")

        def is_range(value: Any) -> bool:
            return (
                isinstance(value, tuple | list)
                and len(value) == 2
                and all(is_int(n) and n >= 1 for n in value)
                and value[0] <= value[1]
            )

        ngrams = DEFAULT_NGRAM_RANGES if self.ngram_range is None else self.ngram_range
        if is_range(ngrams):
            ngrams = {field: tuple(ngrams) for field in weights}
        elif not isinstance(ngrams, Mapping) or not all(is_range(r) for r in ngrams.values()):
            fail(
                "ngram_range",
                "a pair (min_n, max_n) with 1 <= min_n <= max_n, or a mapping of them",
            )
        if self.stop_words is not None and not (
            self.stop_words == "english"
            or (
                isinstance(self.stop_words, list | tuple)
                and all(isinstance(w, str) for w in self.stop_words)
            )
        ):
            fail("stop_words", "'english', a list of words or None")
        for name in ("sublinear_tf", "exclude_no_index", "coverage", "progress"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                fail(name, "True or False")
        if self.n_jobs is not None and (not is_int(self.n_jobs) or self.n_jobs == 0):
            fail("n_jobs", "None, a positive integer or a negative one (-1: all cores)")
        return dict(weights), {field: tuple(r) for field, r in ngrams.items()}

    def _validate_pages(self, pages: pd.DataFrame, weights: Mapping[str, float]) -> None:
        if not isinstance(pages, pd.DataFrame):
            raise ConfigError(
                f"pages must be a DataFrame from load_corpus, got {type(pages).__name__}"
            )
        needed = [*_REQUIRED_COLUMNS, *(text_column(f) for f, w in weights.items() if w > 0)]
        missing = [column for column in needed if column not in pages.columns]
        if missing:
            raise ConfigError(f"pages lacks the columns {missing}; load it with load_corpus")
        if not pages.index.is_unique:
            raise ConfigError("pages must be indexed by unique url")
        if len(pages) < 2:
            raise ConfigError(f"pages must hold at least 2 pages, got {len(pages)}")

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
        weights, ngram_ranges = self._validate_params()
        self._validate_pages(pages, weights)
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[step] = now - clock
            clock = now

        if not pages.index.is_monotonic_increasing:
            pages = pages.sort_index()
        n = len(pages)
        features_model = FieldFeatures(
            weights,
            ngram_ranges,
            max_df=self.max_df,
            min_df=self.min_df,
            sublinear_tf=self.sublinear_tf,
            stop_words=self.stop_words,
        )
        try:
            features = features_model.fit_transform(pages, progress=self.progress)
        except ValueError as exc:
            raise ConfigError(f"cannot vectorise the pages: {exc}") from None
        lap("vectorise")

        allowed = np.ones(n, dtype=bool)
        if self.exclude_no_index:
            allowed &= ~pages["no_index"].to_numpy(dtype=bool)
        targets = np.flatnonzero(allowed)
        # Ask for enough candidates to survive removing the page and its copies.
        width = min(self.n_candidates, len(targets))
        found, scores = top_k_cosine(
            features,
            features[targets],
            k=width,
            block_size=self.block_size,
            n_jobs=self.n_jobs,
            progress=self.progress,
        )
        candidates = np.where(found >= 0, targets[np.maximum(found, 0)], -1)
        lap("similarity")

        near = (candidates >= 0) & (scores >= self.duplicate_threshold)
        pairs = np.column_stack([np.nonzero(near)[0], candidates[near]])
        base = copy_groups(pages)
        groups = connected_labels(n, [base], pairs)
        subjects = pd.factorize(pages["subject_key"])[0]
        candidates, scores = _apply_rules(candidates, scores, groups, subjects, self.min_score)
        lap("rules")

        if self.coverage:
            chosen = _spread_links(
                candidates,
                scores,
                n_links=self.n_links,
                max_in_links=self.max_in_links,
                tolerance=self.coverage_tolerance,
                is_target=allowed,
            )
        else:
            chosen = _first_links(candidates, self.n_links)
        lap("coverage")

        self.urls_ = pages.index.copy()
        self.features_ = features
        self.features_model_ = features_model
        self.copy_group_ = groups
        self.related_ = _links_frame(self.urls_, candidates, scores, chosen)
        self.timings_ = timings
        logger.info(
            "%d links for %d pages; %s",
            len(self.related_),
            n,
            ", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items()),
        )
        return self

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
            ``target_weight`` (the term's value in each page's vector).
        """
        self._check_fitted()
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
        self._check_fitted()
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

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Save the fitted model with joblib, with the library versions it was made with.

        Model files are pickles: loading one can run arbitrary code, so load
        only files you made yourself.
        """
        self._check_fitted()
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

    def _check_fitted(self) -> None:
        if not hasattr(self, "related_"):
            raise ConfigError("this Recommender is not fitted yet: call fit(pages) first")


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


# ---------------------------------------------------------------------- the rules


def _apply_rules(
    candidates: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove forbidden candidates; keep each row's order (score desc, url asc).

    Removed: padding, anything at or under min_score, the page itself and its
    copies (same group), and all but one page of any group in a row: the copy
    in the source's own subject if there is one, else the best scored.
    """
    n, width = candidates.shape
    valid = (candidates >= 0) & (scores > min_score)
    safe = np.maximum(candidates, 0)
    target_group = np.where(valid, groups[safe], -1)
    valid &= target_group != groups[:, None]
    # Among copies of one question in a row, prefer the source's subject, then the best place.
    other_subject = subjects[safe] != subjects[:, None]
    row = np.repeat(np.arange(n), width)
    place = np.tile(np.arange(width), n)
    flat_valid = valid.ravel()
    order = np.lexsort((place, other_subject.ravel(), target_group.ravel(), row))
    order = order[flat_valid[order]]
    same_as_previous = np.zeros(len(order), dtype=bool)
    same_as_previous[1:] = (row[order][1:] == row[order][:-1]) & (
        target_group.ravel()[order][1:] == target_group.ravel()[order][:-1]
    )
    flat_valid[order[same_as_previous]] = False
    valid = flat_valid.reshape(n, width)
    # Compact each row, keeping its order.
    compact = np.argsort(~valid, axis=1, kind="stable")
    candidates = np.where(
        np.take_along_axis(valid, compact, 1), np.take_along_axis(candidates, compact, 1), -1
    )
    scores = np.where(candidates >= 0, np.take_along_axis(scores, compact, 1), 0).astype(np.float32)
    return candidates, scores


def _first_links(candidates: np.ndarray, n_links: int) -> np.ndarray:
    """Places of each row's chosen candidates (-1 for none): simply its first n_links."""
    n, width = candidates.shape
    head = min(n_links, width)
    places = np.full((n, n_links), -1, dtype=np.int64)
    places[:, :head] = np.where(candidates[:, :head] >= 0, np.arange(head), -1)
    return places


def _group_ranks(keys: np.ndarray) -> np.ndarray:
    """For a sorted key array, each element's place within its run of equal keys."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, len(keys)])
    return np.arange(len(keys)) - np.repeat(starts, lengths)


def _spread_links(
    candidates: np.ndarray,
    scores: np.ndarray,
    *,
    n_links: int,
    max_in_links: int,
    tolerance: float,
    is_target: np.ndarray,
) -> np.ndarray:
    """Choose n_links candidates per row so that links spread over the site.

    1. Capped proposals: in rounds, every page with open places proposes its
       next best candidates; a page proposed to keeps the most similar
       proposers up to ``max_in_links`` in all and rejects the rest, who go on
       to their next candidates.
    2. A page whose candidates were all full takes its best rejected ones
       anyway: every page gets its n_links where it has candidates.
    3. Rescue, in rounds: a page that nobody links to takes the place of the
       weakest link of the candidate-holding page that loses least by it,
       if the loss is within ``tolerance`` and the dropped page stays linked
       from elsewhere.

    Returns the places (column indices into ``candidates``) chosen per row,
    ascending, padded with -1.
    """
    n, width = candidates.shape
    valid = candidates >= 0
    length = valid.sum(axis=1)
    accepted = np.zeros((n, width), dtype=bool)
    pointer = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    in_links = np.zeros(n, dtype=np.int64)

    while True:
        need = np.minimum(n_links - count, length - pointer)
        active = np.flatnonzero(need > 0)
        if len(active) == 0:
            break
        need = need[active]
        sources = np.repeat(active, need)
        places = pointer[sources] + _group_ranks(sources)
        pointer[active] += need
        wanted = candidates[sources, places]
        order = np.lexsort((sources, -scores[sources, places], wanted))
        room = max_in_links - in_links[wanted[order]]
        kept = order[_group_ranks(wanted[order]) < room]
        accepted[sources[kept], places[kept]] = True
        np.add.at(in_links, wanted[kept], 1)
        np.add.at(count, sources[kept], 1)

    short = np.flatnonzero(count < np.minimum(n_links, length))
    if len(short):
        rejected = valid[short] & ~accepted[short]
        rank = np.cumsum(rejected, axis=1)
        take = rejected & (rank <= (n_links - count[short])[:, None])
        rows, places = np.nonzero(take)
        accepted[short[rows], places] = True
        np.add.at(in_links, candidates[short[rows], places], 1)
        np.add.at(count, short[rows], 1)

    for _ in range(100):
        orphan = is_target & (in_links == 0)
        if not orphan.any():
            break
        weakest = width - 1 - np.argmax(accepted[:, ::-1], axis=1)
        has_links = accepted.any(axis=1)
        offer = valid & ~accepted & orphan[np.maximum(candidates, 0)] & has_links[:, None]
        sources, places = np.nonzero(offer)
        dropped = candidates[sources, weakest[sources]]
        dropped_score = scores[sources, weakest[sources]]
        offered_score = scores[sources, places]
        ok = (in_links[dropped] >= 2) & (offered_score >= (1 - tolerance) * dropped_score)
        sources, places, dropped = sources[ok], places[ok], dropped[ok]
        loss = (dropped_score - offered_score)[ok]
        orphans = candidates[sources, places]
        # the least costly source for each orphan, then one swap per source
        for group_key, other_key in (("orphans", "sources"), ("sources", "orphans")):
            arrays = {"sources": sources, "orphans": orphans}
            order = np.lexsort((arrays[other_key], loss, arrays[group_key]))
            first = order[_group_ranks(arrays[group_key][order]) == 0]
            sources, places, dropped, loss, orphans = (
                a[first] for a in (sources, places, dropped, loss, orphans)
            )
        # never drop a page's last link: at most in_links - 1 drops per dropped page
        order = np.lexsort((sources, loss, dropped))
        order = order[_group_ranks(dropped[order]) < in_links[dropped[order]] - 1]
        if len(order) == 0:
            break
        sources, places, dropped, orphans = (a[order] for a in (sources, places, dropped, orphans))
        accepted[sources, weakest[sources]] = False
        accepted[sources, places] = True
        np.add.at(in_links, dropped, -1)
        np.add.at(in_links, orphans, 1)

    rank = np.cumsum(accepted, axis=1)
    chosen = np.full((n, n_links), -1, dtype=np.int64)
    rows, places = np.nonzero(accepted)
    chosen[rows, rank[rows, places] - 1] = places
    return chosen


def _links_frame(
    urls: pd.Index, candidates: np.ndarray, scores: np.ndarray, chosen: np.ndarray
) -> pd.DataFrame:
    rows, ranks = np.nonzero(chosen >= 0)
    places = chosen[rows, ranks]
    return pd.DataFrame(
        {
            "source_url": urls[rows],
            "rank": (ranks + 1).astype(np.int64),
            "target_url": urls[candidates[rows, places]],
            "score": scores[rows, places].astype(np.float64),
        },
        columns=list(LINK_COLUMNS),
    )
