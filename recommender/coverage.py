"""Spreading links over a site: no page collects a crowd, (nearly) none is left unlinked.

:func:`spread_links` picks ``n_links`` of each page's candidates (the arrays
that :mod:`recommender.rules` leaves: target indices best first, ``-1``
padding, and their scores) in three steps:

1. capped proposals: in rounds, every page with open places proposes its
   next best candidates; a page proposed to keeps the most similar
   proposers up to ``max_in_links`` in all and rejects the rest, who go on
   to their next candidates;
2. a page whose candidates were all full takes its best rejected ones
   anyway: every page gets its ``n_links`` where it has candidates;
3. rescue, in rounds: a page that nobody links to takes the place of the
   weakest link of a candidate-holding page, if the loss is within
   ``tolerance`` and the dropped page stays linked from elsewhere: of a page
   that links it now where one can (so that a run over the links the last
   one wrote makes the same swaps), else of the page that loses least.

Nothing here knows about pages or files: it works on index arrays.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["MAX_RESCUE_ROUNDS", "group_ranks", "spread_links"]

logger = logging.getLogger(__name__)

#: Most rounds of orphan rescue.  Every round links at least one more orphan
#: (or the rescue stops), and costs a pass over all candidates; the real site
#: needs under 10.  The cap keeps a pathological site from running for as
#: many rounds as it has orphans; when it is hit, the orphans left stay
#: unlinked and a warning says how many.
MAX_RESCUE_ROUNDS = 100


def group_ranks(keys: np.ndarray) -> np.ndarray:
    """For a sorted key array, each element's place within its run of equal keys.

    >>> group_ranks(np.array([3, 3, 5, 7, 7, 7])).tolist()
    [0, 1, 0, 0, 1, 2]
    """
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, len(keys)])
    return np.arange(len(keys)) - np.repeat(starts, lengths)


def spread_links(
    candidates: np.ndarray,
    scores: np.ndarray,
    *,
    n_links: int,
    max_in_links: int,
    tolerance: float,
    is_target: np.ndarray,
    max_rounds: int = MAX_RESCUE_ROUNDS,
    rescue_scores: np.ndarray | None = None,
    held_now: np.ndarray | None = None,
) -> np.ndarray:
    """Choose ``n_links`` candidates per row so that links spread over the site.

    Parameters
    ----------
    candidates, scores : ndarray, shape (n, n_places)
        Each row's candidate targets (row indices, ``-1`` padding) best first,
        and their scores.
    n_links : int
        Links per row.
    max_in_links : int
        Most rows that may choose one target, unless a row has nothing else.
    tolerance : float
        Largest relative score loss accepted to link an orphan.
    is_target : ndarray of bool, shape (n,)
        Rows that may be linked to (the orphans worth rescuing).
    max_rounds : int
        Most rounds of orphan rescue (see :data:`MAX_RESCUE_ROUNDS`).
    rescue_scores : ndarray, shape (n, n_places), optional
        The scores the rescue's ``tolerance`` compares, where they differ
        from the ranking ``scores`` (the model ranks a page's current links
        above their similarity, but an orphan's claim is judged on
        similarity alone).  Default: ``scores``.
    held_now : ndarray of bool, shape (n, n_places), optional
        Which candidates each row links to now: an orphan is rescued first by
        a row that links it now, so that the swaps of the last run are made
        again.  Default: none.

    Returns
    -------
    ndarray of int64, shape (n, n_links)
        The places (column indices into ``candidates``) chosen per row,
        ascending, padded with -1.
    """
    accepted, in_links = _capped_proposals(candidates, scores, n_links, max_in_links)
    _fill_short_rows(accepted, in_links, candidates, n_links)
    rescue_scores = scores if rescue_scores is None else rescue_scores
    held_now = np.zeros(candidates.shape, dtype=bool) if held_now is None else held_now
    _rescue_orphans(
        accepted, in_links, candidates, rescue_scores, held_now, tolerance, is_target, max_rounds
    )
    return _chosen_places(accepted, n_links)


def _capped_proposals(
    candidates: np.ndarray, scores: np.ndarray, n_links: int, max_in_links: int
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: the accepted places per row and the in-links per target."""
    n, n_places = candidates.shape
    length = (candidates >= 0).sum(axis=1)
    accepted = np.zeros((n, n_places), dtype=bool)
    pointer = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    in_links = np.zeros(n, dtype=np.int64)
    while True:
        need = np.minimum(n_links - count, length - pointer)
        active = np.flatnonzero(need > 0)
        if len(active) == 0:
            return accepted, in_links
        need = need[active]
        sources = np.repeat(active, need)
        places = pointer[sources] + group_ranks(sources)
        pointer[active] += need
        wanted = candidates[sources, places]
        order = np.lexsort((sources, -scores[sources, places], wanted))
        room = max_in_links - in_links[wanted[order]]
        kept = order[group_ranks(wanted[order]) < room]
        accepted[sources[kept], places[kept]] = True
        np.add.at(in_links, wanted[kept], 1)
        np.add.at(count, sources[kept], 1)


def _fill_short_rows(
    accepted: np.ndarray, in_links: np.ndarray, candidates: np.ndarray, n_links: int
) -> None:
    """Step 2, in place: rows left short take their best rejected candidates."""
    valid = candidates >= 0
    count = accepted.sum(axis=1)
    short = np.flatnonzero(count < np.minimum(n_links, valid.sum(axis=1)))
    if len(short) == 0:
        return
    rejected = valid[short] & ~accepted[short]
    rank = np.cumsum(rejected, axis=1)
    take = rejected & (rank <= (n_links - count[short])[:, None])
    rows, places = np.nonzero(take)
    accepted[short[rows], places] = True
    np.add.at(in_links, candidates[short[rows], places], 1)


def _rescue_orphans(
    accepted: np.ndarray,
    in_links: np.ndarray,
    candidates: np.ndarray,
    scores: np.ndarray,
    held_now: np.ndarray,
    tolerance: float,
    is_target: np.ndarray,
    max_rounds: int,
) -> None:
    """Step 3, in place: swap orphans in for weak links, in rounds (``scores`` and
    ``held_now`` as :func:`spread_links`'s ``rescue_scores`` and ``held_now``)."""
    for _ in range(max_rounds):
        orphan = is_target & (in_links == 0)
        if not orphan.any():
            return
        swaps = _rescue_swaps(accepted, in_links, candidates, scores, held_now, tolerance, orphan)
        if swaps is None:
            return
        sources, places, weakest, dropped, orphans = swaps
        accepted[sources, weakest] = False
        accepted[sources, places] = True
        np.add.at(in_links, dropped, -1)
        np.add.at(in_links, orphans, 1)
    left = int((is_target & (in_links == 0)).sum())
    if left:
        logger.warning(
            "orphan rescue stopped after %d rounds with %d pages still unlinked", max_rounds, left
        )


def _rescue_swaps(
    accepted: np.ndarray,
    in_links: np.ndarray,
    candidates: np.ndarray,
    scores: np.ndarray,
    held_now: np.ndarray,
    tolerance: float,
    orphan: np.ndarray,
) -> tuple[np.ndarray, ...] | None:
    """One round's swaps: (sources, places, weakest places, dropped, orphans), or None."""
    n_places = candidates.shape[1]
    weakest = n_places - 1 - np.argmax(accepted[:, ::-1], axis=1)
    has_links = accepted.any(axis=1)
    offer = (candidates >= 0) & ~accepted & orphan[np.maximum(candidates, 0)] & has_links[:, None]
    sources, places = np.nonzero(offer)
    dropped = candidates[sources, weakest[sources]]
    dropped_score = scores[sources, weakest[sources]]
    offered_score = scores[sources, places]
    ok = (in_links[dropped] >= 2) & (offered_score >= (1 - tolerance) * dropped_score)
    sources, places, dropped = sources[ok], places[ok], dropped[ok]
    loss = (dropped_score - offered_score)[ok]
    new = ~held_now[sources, places]  # False, so first: the source links the orphan now
    orphans = candidates[sources, places]
    # for each orphan a source linking it now, else the least costly; then one swap per source
    for group_key, other_key in (("orphans", "sources"), ("sources", "orphans")):
        arrays = {"sources": sources, "orphans": orphans}
        order = np.lexsort((arrays[other_key], loss, new, arrays[group_key]))
        first = order[group_ranks(arrays[group_key][order]) == 0]
        sources, places, dropped, loss, orphans, new = (
            a[first] for a in (sources, places, dropped, loss, orphans, new)
        )
    # never drop a page's last link: at most in_links - 1 drops per dropped page
    order = np.lexsort((sources, loss, new, dropped))
    order = order[group_ranks(dropped[order]) < in_links[dropped[order]] - 1]
    if len(order) == 0:
        return None
    sources, places, dropped, orphans = (a[order] for a in (sources, places, dropped, orphans))
    return sources, places, weakest[sources], dropped, orphans


def _chosen_places(accepted: np.ndarray, n_links: int) -> np.ndarray:
    """The accepted places of each row, ascending, padded with -1 to ``n_links``."""
    rank = np.cumsum(accepted, axis=1)
    chosen = np.full((accepted.shape[0], n_links), -1, dtype=np.int64)
    rows, places = np.nonzero(accepted)
    chosen[rows, rank[rows, places] - 1] = places
    return chosen
