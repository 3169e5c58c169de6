"""Links that stay put: a page keeps its current links unless a new one is clearly better.

The current links of a page are the ``related_urls`` it holds today that
resolve to pages.  With ``stability`` ``s`` (a relative margin, 0 = off), a
current link ranks as if it scored ``(1 + s)`` times its similarity, so a new
candidate displaces it only when it beats it by more than that margin.  A
current link that the similarity search did not bring back is added to the
page's candidates with its own similarity, so that the rules (copies,
``no_index``, editorial rules) judge it like any other candidate: only valid,
rule-compliant links are kept.

Like :mod:`recommender.rules`, this works on ``(n_pages, n_places)`` arrays
of target indices (``-1`` padding) and scores, best first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .neighbors import rescore_pairs

__all__ = ["add_candidates", "current_links", "held_now", "rerank"]


def current_links(pages: pd.DataFrame) -> np.ndarray:
    """Each page's current targets as row indices of ``pages``, ``(n, m)``, ``-1`` padded.

    Urls that are no page of ``pages`` are left out.

    Examples
    --------
    >>> pages = pd.DataFrame({"related_urls": [["/b", "/x"], [], ["/a"]]}, index=["/a", "/b", "/c"])
    >>> current_links(pages).tolist()
    [[1], [-1], [0]]
    """
    lists = pages["related_urls"].tolist()
    width = max((len(urls) for urls in lists), default=0)
    current = np.full((len(pages), max(width, 1)), -1, dtype=np.int64)
    rows = np.repeat(np.arange(len(pages)), [len(urls) for urls in lists])
    if len(rows):
        found = pages.index.get_indexer([url for urls in lists for url in urls])
        places = _places_in_row(rows, found >= 0)
        current[rows[found >= 0], places] = found[found >= 0]
    return current[:, : max(1, int((current >= 0).sum(axis=1).max(initial=0)))]


def _places_in_row(rows: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """For the kept entries of a row-sorted list, their place among the row's kept ones."""
    kept_rows = rows[kept]
    starts = np.searchsorted(kept_rows, kept_rows, side="left")
    return np.arange(len(kept_rows)) - starts


def add_candidates(
    candidates: np.ndarray,
    scores: np.ndarray,
    more: np.ndarray,
    features,
    is_target: np.ndarray,
    n_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates with more targets per page added, scored; rows sorted best first.

    ``candidates`` and ``scores`` are rows sorted as the search sorts them
    (score descending, then target index; ``-1`` padding last).

    ``more`` (page rows, -1 for none) holds, say, each page's current links,
    or its nearest pages by embedding.  Those that may not be linked to
    (``is_target`` False, as ``no_index`` pages) are left out, as the search
    leaves them out, and so is one already among its page's candidates (it is
    there with its score: most current links are, and scoring them again took
    0.4 s on the real site).  The others are scored by the cosine of their
    ``features`` rows, as the search scores, on ``n_threads`` threads
    (:func:`~recommender.neighbors.rescore_pairs`).
    """
    more = np.where((more >= 0) & is_target[np.maximum(more, 0)], more, -1)
    more[_among(more, candidates)] = -1
    extra_scores = rescore_pairs(features, features, more, n_threads)
    extra_scores[more < 0] = 0
    candidates = np.hstack([candidates, more])
    scores = np.hstack([scores, extra_scores]).astype(np.float32)
    grown = (more >= 0).any(axis=1)  # the other rows are sorted already, padding last
    candidates[grown], scores[grown] = _sorted_rows(candidates[grown], scores[grown])
    return candidates, scores


def _among(more: np.ndarray, candidates: np.ndarray, rows: int = 1 << 14) -> np.ndarray:
    """Whether each entry of ``more`` is also in its row of ``candidates`` (padding may
    match padding: it stays none).  A block of ``rows`` rows at a time: the comparison
    holds ``rows x more x candidates`` booleans."""
    found = np.zeros(more.shape, dtype=bool)
    for start in range(0, len(more), rows):
        block = slice(start, start + rows)
        found[block] = (more[block, :, None] == candidates[block, None, :]).any(axis=2)
    return found


def rerank(
    candidates: np.ndarray,
    similarity: np.ndarray,
    *,
    current: np.ndarray,
    stability: float,
    target_factor: np.ndarray,
    mutual_discount: float = 0.0,
    n_links: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows re-sorted by ranking score: similarity x ``target_factor`` x (1 + stability) if
    current, x (1 - mutual_discount) where the pair is the other page's (:func:`second_ways`).

    Returns the candidates, their ranking scores and their similarities,
    each row best ranked first (ties: the earlier place first).
    """
    safe = np.maximum(candidates, 0)
    ranking = similarity * target_factor[safe]
    if mutual_discount:
        ranking = np.where(
            second_ways(candidates, similarity, n_links), ranking * (1 - mutual_discount), ranking
        )
    if stability:
        ranking = np.where(held_now(candidates, current), ranking * (1 + stability), ranking)
    ranking = np.where(candidates >= 0, ranking, -np.inf)
    order = np.argsort(-ranking, axis=1, kind="stable")
    ranking = np.take_along_axis(ranking, order, 1)
    return (
        np.take_along_axis(candidates, order, 1),
        np.where(np.isfinite(ranking), ranking, 0).astype(np.float32),
        np.take_along_axis(similarity, order, 1),
    )


def held_now(candidates: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Where a row's candidate is one of the row's current links (``current`` as
    :func:`current_links`).

    >>> held_now(np.array([[2, 1, -1], [0, 2, 1]]), np.array([[1], [-1]])).tolist()
    [[False, True, False], [False, False, False]]
    """
    held = np.zeros(candidates.shape, dtype=bool)
    for column in current.T:  # one column at a time: a page may hold many links
        held |= candidates == column[:, None]
    return held & (candidates >= 0)


def second_ways(candidates: np.ndarray, similarity: np.ndarray, k: int) -> np.ndarray:
    """Where a row's candidate holds the row among its own first ``k`` by similarity, at an
    earlier place than the row holds it (at the same place, the row is the later one).

    Recall counts a pair of related pages once, whichever page links to the
    other: such a candidate's link would be the pair's second way, and a
    place spent on it could link a page not linked yet.  Similarity alone
    decides (not the current links), so the answer is the same run after run.
    Places are by similarity, ties by candidate; only each row's first ``k``
    are ranked (any later place is later than all of them).
    """
    n, width = candidates.shape
    found = np.zeros(candidates.shape, dtype=bool)
    k = min(k, width)
    if n == 0 or k < 1:
        return found
    key = _best_first_keys(candidates, similarity)
    first = np.argpartition(key, k - 1, axis=1)[:, :k]  # each row's best k, then in order
    first = np.take_along_axis(first, np.argsort(np.take_along_axis(key, first, 1), axis=1), 1)
    place = np.full(candidates.shape, k, dtype=np.int64)  # k: after the first k
    np.put_along_axis(place, first, np.arange(k)[None, :], axis=1)
    held = np.take_along_axis(candidates, first, 1)  # each row's first k, in order
    holders, their_places = np.nonzero(held >= 0)
    rows = held[holders, their_places]  # a holder holds each of these rows
    for start in range(0, len(rows), _ROWS_AT_A_TIME):
        part = slice(start, start + _ROWS_AT_A_TIME)
        hits = candidates[rows[part]] == holders[part, None]
        has = hits.any(axis=1)
        row, column = rows[part][has], np.argmax(hits[has], axis=1)
        holder, theirs = holders[part][has], their_places[part][has]
        ours = place[row, column]
        found[row, column] = (ours > theirs) | ((ours == theirs) & (row > holder))
    return found


#: Rows looked at a time by :func:`second_ways` (a rows x candidates temporary).
_ROWS_AT_A_TIME = 1 << 18


def _best_first_keys(candidates: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """One int64 per place, smaller for a better one: similarity descending, then candidate
    ascending; padding last."""
    bits = (-similarity.astype(np.float32)).view(np.int32).astype(np.int64)
    ordered = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # floats in integer order
    key = (ordered << 32) | np.maximum(candidates, 0)
    return np.where(candidates >= 0, key, np.iinfo(np.int64).max)


def _sorted_rows(candidates: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row by score descending, then target index ascending (url order); padding last."""
    key_score = np.where(candidates >= 0, -scores, np.inf)
    key_target = np.where(candidates >= 0, candidates, np.iinfo(np.int64).max)
    order = np.lexsort((key_target, key_score), axis=1)  # within each row
    return np.take_along_axis(candidates, order, 1), np.take_along_axis(scores, order, 1)
