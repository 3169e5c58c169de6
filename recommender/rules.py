"""What may link to what: the rules every list of related pages obeys.

- never the page itself;
- never one of its cross-listed copies (the same question under another
  subject folder: same slug, same question, or a near-duplicate text);
- never two copies of one question on one page (the copy in the reader's
  subject wins, else the best scored);
- no ``no_index`` pages as targets (optional);
- nothing scoring at or under ``min_score``.

Candidates arrive as two aligned ``(n_pages, n_places)`` arrays, target row
indices (``-1`` for none) and scores, each row best first; the rules remove
forbidden entries and keep the order of the rest.  This room knows the pages
DataFrame (slugs, questions, subjects, flags) but not files or vectors.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = [
    "apply_rules",
    "connected_labels",
    "copy_groups",
    "first_links",
    "near_duplicate_pairs",
    "target_mask",
]

_NOT_WORD = re.compile(r"\W+")


def target_mask(pages: pd.DataFrame, *, exclude_no_index: bool) -> np.ndarray:
    """Per page, whether other pages may link to it."""
    allowed = np.ones(len(pages), dtype=bool)
    if exclude_no_index:
        allowed &= ~pages["no_index"].to_numpy(dtype=bool)
    return allowed


def copy_groups(pages: pd.DataFrame) -> np.ndarray:
    """Label cross-listed copies: pages that are the same question under other folders.

    Two pages are copies when they share a slug (file name) or the same
    question once case, punctuation and spacing are folded (the title where
    there is no question).  Copies of copies are copies: the labels are the
    connected components of that relation.

    Returns
    -------
    ndarray of int64, one label per row of ``pages``; equal labels are copies.
    """
    questions = pages["question"].where(pages["question"] != "", pages["title"])
    keys = [
        pages["slug"],
        questions.map(lambda q: _NOT_WORD.sub(" ", q.casefold()).strip()),
    ]
    return connected_labels(len(pages), [pd.factorize(key)[0] for key in keys])


def connected_labels(
    n: int, codes: list[np.ndarray], pairs: np.ndarray | None = None
) -> np.ndarray:
    """Connected components of n items linked when they share a code (or are a pair).

    ``codes`` are integer arrays (one code per item, -1 for none); ``pairs``
    an optional (m, 2) array of item indices.  Labels are numbered by each
    component's first item, so they are deterministic.
    """
    rows, cols = [], []
    items = np.arange(n)
    for code in codes:
        code = np.asarray(code)
        has = code >= 0
        first = np.full(code.max() + 1 if has.any() else 0, -1, dtype=np.int64)
        # the first item with each code (scanning backwards so the smallest index wins)
        first[code[has][::-1]] = items[has][::-1]
        rows.append(items[has])
        cols.append(first[code[has]])
    if pairs is not None and len(pairs):
        rows.append(pairs[:, 0])
        cols.append(pairs[:, 1])
    graph = sp.coo_matrix(
        (np.ones(sum(map(len, rows)), dtype=np.int8), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    # renumber by first occurrence, independent of the graph library's numbering
    _, first_index, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first_index))
    return order[inverse].astype(np.int64)


def near_duplicate_pairs(
    candidates: np.ndarray, scores: np.ndarray, threshold: float
) -> np.ndarray:
    """``(m, 2)`` pairs of (page, candidate) scoring at least ``threshold``: copies by text."""
    near = (candidates >= 0) & (scores >= threshold)
    return np.column_stack([np.nonzero(near)[0], candidates[near]])


def apply_rules(
    candidates: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove forbidden candidates; keep each row's order (score desc, url asc).

    Removed: padding, anything at or under ``min_score``, the page itself and
    its copies (same label in ``groups``), and all but one page of any group
    in a row: the copy in the source's own subject (``subjects``: one code per
    page) if there is one, else the best placed.

    Returns the candidates and scores with each row compacted to the left and
    padded with ``-1`` and ``0``.
    """
    valid = (candidates >= 0) & (scores > min_score)
    safe = np.maximum(candidates, 0)
    target_group = np.where(valid, groups[safe], -1)
    valid &= target_group != groups[:, None]
    valid &= ~_later_copies(valid, target_group, subjects[safe] != subjects[:, None])
    return _compact_rows(valid, candidates, scores)


def _later_copies(
    valid: np.ndarray, target_group: np.ndarray, other_subject: np.ndarray
) -> np.ndarray:
    """Entries that repeat a group already in their row: all but the one to keep.

    Within a row's entries of one group, the one kept is in the source's
    subject if any is, then the first placed.
    """
    n, n_places = valid.shape
    row = np.repeat(np.arange(n), n_places)
    place = np.tile(np.arange(n_places), n)
    order = np.lexsort((place, other_subject.ravel(), target_group.ravel(), row))
    order = order[valid.ravel()[order]]
    group_in_order = target_group.ravel()[order]
    repeats = np.zeros(len(order), dtype=bool)
    repeats[1:] = (row[order][1:] == row[order][:-1]) & (group_in_order[1:] == group_in_order[:-1])
    later = np.zeros(n * n_places, dtype=bool)
    later[order[repeats]] = True
    return later.reshape(n, n_places)


def _compact_rows(
    valid: np.ndarray, candidates: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The valid entries of each row moved to its start, in order; -1 and 0 after them."""
    compact = np.argsort(~valid, axis=1, kind="stable")
    kept = np.take_along_axis(valid, compact, 1)
    candidates = np.where(kept, np.take_along_axis(candidates, compact, 1), -1)
    scores = np.where(kept, np.take_along_axis(scores, compact, 1), 0).astype(np.float32)
    return candidates, scores


def first_links(candidates: np.ndarray, n_links: int) -> np.ndarray:
    """Places of each row's chosen candidates (-1 for none): simply its first ``n_links``."""
    n, n_places = candidates.shape
    head = min(n_links, n_places)
    places = np.full((n, n_links), -1, dtype=np.int64)
    places[:, :head] = np.where(candidates[:, :head] >= 0, np.arange(head), -1)
    return places
