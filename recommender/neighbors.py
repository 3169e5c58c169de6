"""Top-k cosine similarity between the rows of two sparse matrices, in row blocks.

:func:`top_k_cosine` is exact; :func:`top_k_cosine_fast` finds candidates
from each row's strongest terms only and re-scores them exactly, for sites
where the exact product, which grows as the square of the pages, is too slow.

Plain functions over scipy sparse matrices and numpy arrays: nothing here
knows about pages.  The product is never formed whole: each block of query
rows is multiplied by the targets with ``sparse_dot_topn``, which keeps only
the best products of each row while it computes (memory: one accumulator as
long as the targets per thread, plus k + 1 results per row of the block) and
spreads the rows of a block over ``n_jobs`` threads.  Blocks run one after
the other: on the real corpus its multi-threaded kernel on 2 threads was 3
times faster than its single-threaded one, and running single-threaded
blocks in joblib threads gained nothing (that kernel holds the GIL).

Results are exact and deterministic: within a row, targets are ordered by
score descending, then by target index ascending; a row whose k-th and
(k+1)-th best scores tie is searched again for twice as many targets, and
again, until every target tied with its k-th is in (after a few doublings,
once for every target scoring at least its k-th), so which of the tied
targets make the cut never depends on the library's internal order.  (The
dense product over every target used before cost the fast search more than
its own candidates on a 200,000-page site, where cross-listed copies tie.)
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul_topn
from tqdm.auto import tqdm

from .matrices import entries_per_column

__all__ = [
    "COMMON_MIN_TARGETS",
    "COMMON_SHARE",
    "DENSE_MARGIN",
    "DENSE_PAIRS",
    "DENSE_TOLERANCE",
    "MAX_HOLDERS",
    "RARITY_POWER",
    "ExactSearch",
    "FastSearch",
    "brute_force_top_k",
    "check_block_size",
    "common_terms",
    "dense_block_top",
    "exact_block",
    "fast_block",
    "heaviest_holders",
    "rescore_pairs",
    "strongest_terms",
    "term_rarity",
    "top_k_cosine",
    "top_k_cosine_above",
    "top_k_cosine_fast",
    "top_k_dense",
]

logger = logging.getLogger(__name__)

#: Default share of the targets above which a strong term finds no candidates
#: (:func:`top_k_cosine_fast`'s ``common_share``): 2 terms of 683,484 on the
#: 1,000,000-page synthetic site (half of the candidate search's work), 2 of
#: 181,776 on the 200,000-page one.
COMMON_SHARE = 0.1

#: Nor is a term common unless it is among the strongest of more targets than
#: this: below it a posting list costs little, and on sites of the labelled
#: sites' size a tenth of the pages is a topic (on crypto's 10,432 pages, such
#: terms cost 4 of 577 labelled pairs).  No term of the real site is common.
COMMON_MIN_TARGETS = 20_000

#: Default number of targets a strong term finds candidates among: the ones it
#: weighs most in (:func:`top_k_cosine_fast`'s ``max_holders``).  The candidate
#: search's work is the sum, over terms, of the queries holding a term times the
#: targets it reaches: capped, it grows with the pages, not with their square.
#: On the 1,000,000-page synthetic site 887 terms were among the strongest of
#: more, and the cap halved that work (a third off the search of its first 32,768
#: pages, a quarter off a full run's); the real site holds 3,904 at most.
MAX_HOLDERS = 2000

#: Default power of a term's idf that its weight is multiplied by when each row's
#: strong terms are picked (:func:`top_k_cosine_fast`'s ``rarity_power``).  The
#: default weights hold the square root of the idf (``idf_power``), so times the
#: idf's other half a term is picked by its classic TF-IDF weight.  Softened, the
#: idf leaves common words strong in many pages, with long posting lists: picked by
#: their weight alone, the real site's strong terms reached 6.8e8 pages squared
#: against 4.7e8, and its search took 5.2 s against 4.2 s (recall of the exact top 6:
#: 0.998 against 0.997).
RARITY_POWER = 0.5


def top_k_cosine(
    X: sp.spmatrix,
    Y: sp.spmatrix | None = None,
    *,
    k: int,
    block_size: int = 4096,
    n_jobs: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of ``Y`` with the largest positive dot product with each row of ``X``.

    With L2-normalised rows the dot product is the cosine similarity.

    Parameters
    ----------
    X : sparse matrix, shape (n_queries, n_features)
    Y : sparse matrix, shape (n_targets, n_features), default X
    k : int
        Results per query row.
    block_size : int, default 4096
        Query rows multiplied at a time; bounds memory.
    n_jobs : int or None, default None
        Threads, as in scikit-learn: None means 1, -1 all cores.
    progress : bool, default False
        Show a progress bar over the blocks.

    Returns
    -------
    indices : ndarray of int64, shape (n_queries, k)
        Target row indices, best first; ``-1`` where a query has fewer than k
        targets with a positive score.
    scores : ndarray of float32, shape (n_queries, k)
        The matching scores; ``0`` in padded places.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> indices, scores = top_k_cosine(X, k=2)
    >>> indices.tolist()
    [[0, 1], [1, 2], [2, 1]]
    """
    check_block_size(block_size)
    search = ExactSearch(X, Y, k=k)
    return _search_blocks(search, block_size, joblib.effective_n_jobs(n_jobs), progress)


class ExactSearch:
    """What :func:`top_k_cosine` prepares once, and its search of one block of queries.

    Blocks are independent and their results do not depend on the threads
    used, so blocks may run anywhere (see :mod:`recommender.distributed`).
    Parameters as in :func:`top_k_cosine`.
    """

    def __init__(self, X, Y=None, *, k: int):
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k
        self.X, self.Y = _queries_and_targets(X, Y)
        self.targets_t = self.Y.T.tocsr()

    def block(self, start: int, stop: int, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of query rows ``start`` to ``stop - 1``."""
        return exact_block(self.X[start:stop], self.targets_t, self.k, n_threads)


def top_k_cosine_above(
    X: sp.spmatrix,
    Y: sp.spmatrix,
    *,
    k: int,
    floors: np.ndarray,
    block_size: int = 4096,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_cosine` of each row of ``X`` among the rows of ``Y`` scoring at least its floor.

    ``floors`` holds one score per row of ``X``; a row's result is its exact
    top k (in :func:`top_k_cosine`'s order) of the targets scoring at least
    its floor, padded with ``-1`` and ``0`` where fewer reach it.  The rows
    are searched in blocks of similar floors and the kernel keeps only what
    scores above the block's lowest, which spares most of its selection
    where the floors are high: an incremental update asks which of a few
    changed pages enter lists whose last place already scores well.
    """
    check_block_size(block_size)
    search = ExactSearch(X, Y, k=k)
    floors = np.asarray(floors, dtype=np.float32)
    if floors.shape != (search.X.shape[0],):
        raise ValueError(f"floors has shape {floors.shape}, X has {search.X.shape[0]} rows")
    n_threads = joblib.effective_n_jobs(n_jobs)
    indices = np.full((search.X.shape[0], k), -1, dtype=np.int64)
    scores = np.zeros(indices.shape, dtype=np.float32)
    by_floor = np.argsort(floors, kind="stable")
    for start in range(0, len(by_floor), block_size):
        rows = by_floor[start : start + block_size]
        indices[rows], scores[rows] = exact_block(
            search.X[rows], search.targets_t, k, n_threads, floor=float(floors[rows].min())
        )
    below = scores < floors[:, None]  # the kernel's ties, wider searches: at each row's end
    indices[below], scores[below] = -1, 0.0
    return indices, scores


def check_block_size(block_size: int) -> None:
    """Refuse a block size that is not a positive integer."""
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")


def _queries_and_targets(X, Y) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``X`` and ``Y`` (default: ``X`` itself) as float32 CSR, with as many features."""
    X = sp.csr_matrix(X, dtype=np.float32)
    Y = X if Y is None else sp.csr_matrix(Y, dtype=np.float32)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but Y has {Y.shape[1]}")
    return X, Y


def _search_blocks(
    search: ExactSearch | FastSearch, block_size: int, n_threads: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Every block of a search, one after the other, into one pair of arrays."""
    n, k = search.X.shape[0], search.k
    indices = np.full((n, k), -1, dtype=np.int64)
    scores = np.zeros((n, k), dtype=np.float32)
    starts = range(0, n, block_size)
    for start in tqdm(starts, desc="similarity", unit="block", disable=not progress):
        stop = min(start + block_size, n)
        indices[start:stop], scores[start:stop] = search.block(start, stop, n_threads)
    return indices, scores


#: Places searched at a time for rows tied at the k-th place (rows x places): bounds
#: their memory, about 60 bytes a place while they are sorted.
TIED_SCORES = 1 << 24


def exact_block(
    block: sp.csr_matrix, targets_t: sp.csr_matrix, k: int, n_threads: int, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """One block of :func:`top_k_cosine`: the exact top k of some query rows.

    ``targets_t`` is the targets ``Y`` transposed, as CSR.  With a ``floor``
    above 0, only targets scoring at least that much are sure to be kept
    (a row may hold fewer than k; see :func:`top_k_cosine_above`).
    """
    threshold = float(np.nextafter(np.float32(floor), np.float32(-np.inf))) if floor > 0 else 0.0
    # one more than asked, to see whether the k-th place is tied
    product = sp_matmul_topn(
        block, targets_t, top_n=k + 1, threshold=threshold, sort=False, n_threads=n_threads
    )
    rows_indices, rows_scores = _sorted_rows(product, k + 1)
    tied = np.flatnonzero((rows_indices[:, k] >= 0) & (rows_scores[:, k - 1] == rows_scores[:, k]))
    if len(tied) and k + 1 < targets_t.shape[1]:  # else every target is in already
        logger.debug("%d rows tied at place %d, searched wider", len(tied), k)
        rows_indices[tied], rows_scores[tied] = _untied(block[tied], targets_t, k, n_threads)
    return rows_indices[:, :k], rows_scores[:, :k]


def _untied(
    block: sp.csr_matrix, targets_t: sp.csr_matrix, k: int, n_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top k + 1 of rows whose k-th place is tied, ties broken by index.

    The kernel keeps any of the targets tied at its last place, so each row
    is searched again for twice as many, and again, until its last place
    scores below its k-th (then every target tied with the k-th was kept)
    or every target with a positive score is in.  Rows still tied after
    :data:`WIDENINGS` doublings (thousands of identical pages) are searched
    once more for every target scoring at least their k-th
    (:func:`_at_or_above_kth`).  Each row's scores are the same in every
    search (the kernel sums a row alone, in one order).
    """
    n_targets = targets_t.shape[1]
    indices = np.full((block.shape[0], k + 1), -1, dtype=np.int64)
    scores = np.zeros(indices.shape, dtype=np.float32)
    pending, width = np.arange(block.shape[0]), k + 1
    for _ in range(WIDENINGS):
        if not len(pending):
            break
        width = min(2 * width, n_targets)
        unsure = []
        step = max(1, TIED_SCORES // width)
        for first in range(0, len(pending), step):
            rows = pending[first : first + step]
            product = sp_matmul_topn(
                block[rows], targets_t, top_n=width, threshold=0.0, sort=False, n_threads=n_threads
            )
            wide_indices, wide_scores = _sorted_rows(product, width)
            indices[rows], scores[rows] = wide_indices[:, : k + 1], wide_scores[:, : k + 1]
            last_tied = (wide_indices[:, -1] >= 0) & (wide_scores[:, -1] == wide_scores[:, k - 1])
            unsure.append(rows[last_tied] if width < n_targets else rows[:0])
        pending = np.concatenate(unsure)
    if len(pending):
        _at_or_above_kth(block, targets_t, pending, indices, scores, n_threads)
    return indices, scores


#: Times :func:`_untied` doubles its search before it searches above a threshold instead.
WIDENINGS = 4


def _at_or_above_kth(
    block: sp.csr_matrix,
    targets_t: sp.csr_matrix,
    rows: np.ndarray,
    indices: np.ndarray,
    scores: np.ndarray,
    n_threads: int,
) -> None:
    """Fill ``rows`` of ``indices`` and ``scores`` from every target scoring >= their k-th.

    ``scores[rows, -2]`` holds each row's k-th score (right, whichever tied
    target holds it).  Rows are searched in chunks of similar k-th scores,
    keeping every target above the chunk's lowest; rows x targets stays
    within :data:`TIED_SCORES`, but a chunk holds one row at least.  The
    kernel's cost for a row then grows with the targets (as the dense
    product's did), whatever few of them score that high.
    """
    width = indices.shape[1]
    n_targets = targets_t.shape[1]
    rows = rows[np.argsort(-scores[rows, -2], kind="stable")]
    step = max(1, TIED_SCORES // n_targets)
    for first in range(0, len(rows), step):
        chunk = rows[first : first + step]
        floor = np.nextafter(scores[chunk, -2].min(), np.float32(-np.inf))
        product = sp_matmul_topn(
            block[chunk],
            targets_t,
            top_n=n_targets,
            threshold=float(floor),
            sort=False,
            n_threads=n_threads,
        )
        counts = np.diff(product.indptr)
        row_of = np.repeat(np.arange(len(chunk)), counts)
        found, found_scores = product.indices[: product.nnz], product.data[: product.nnz]
        # by row, then score descending, then target index
        order = np.lexsort((found, -found_scores, row_of))
        place = np.arange(product.nnz) - np.repeat(product.indptr[:-1], counts)
        kept = place < width
        indices[chunk[row_of[kept]], place[kept]] = found[order[kept]]
        scores[chunk[row_of[kept]], place[kept]] = found_scores[order[kept]]


def _sorted_rows(product: sp.csr_matrix, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each CSR row's entries as a fixed-width row, by score descending then index."""
    n = product.shape[0]
    counts = np.diff(product.indptr)
    rows = np.repeat(np.arange(n), counts)
    columns = np.arange(product.nnz) - np.repeat(product.indptr[:-1], counts)
    indices = np.full((n, width), np.iinfo(np.int64).max, dtype=np.int64)
    scores = np.full((n, width), -np.inf, dtype=np.float32)
    indices[rows, columns] = product.indices
    scores[rows, columns] = product.data
    order = np.argsort(indices, axis=1, kind="stable")
    indices, scores = np.take_along_axis(indices, order, 1), np.take_along_axis(scores, order, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    indices, scores = np.take_along_axis(indices, order, 1), np.take_along_axis(scores, order, 1)
    empty = ~np.isfinite(scores)
    indices[empty], scores[empty] = -1, 0.0
    return indices, scores


def brute_force_top_k(X: sp.spmatrix, Y: sp.spmatrix, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same result as :func:`top_k_cosine`, from the whole dense product.

    The oracle for tests.  Memory grows as
    ``X.shape[0] * Y.shape[0]``: use it on a few rows only.
    """
    dense = np.asarray(
        (sp.csr_matrix(X, dtype=np.float32) @ sp.csr_matrix(Y, dtype=np.float32).T).todense()
    )
    n, m = dense.shape
    # lexsort's last key is the primary one: score descending, then index ascending
    order = np.lexsort((np.broadcast_to(np.arange(m), (n, m)), -dense), axis=1)[:, :k]
    scores = np.take_along_axis(dense, order, 1).astype(np.float32)
    indices = order.astype(np.int64)
    if k > m:
        indices = np.pad(indices, ((0, 0), (0, k - m)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, k - m)))
    empty = scores <= 0
    indices[empty], scores[empty] = -1, 0.0
    return indices, scores


#: Places beyond k that :func:`top_k_dense` takes from its float32 product, then scores exactly.
DENSE_MARGIN = 8
#: Bound on the error of a float32 dot product of unit vectors (a few hundred numbers).
DENSE_TOLERANCE = 1e-4
#: Pairs :func:`top_k_dense` scores exactly at a time; bounds its memory.
DENSE_PAIRS = 8192


def top_k_dense(
    X: np.ndarray,
    Y: np.ndarray | None = None,
    *,
    k: int,
    block_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_cosine` for dense vectors (sentence embeddings): the same contract and order.

    Each block of query rows is multiplied by the targets in float32 (BLAS);
    the best ``k + DENSE_MARGIN`` of each row are then scored again pair by
    pair in float64, rounded to float32, and ranked by that score, then
    target index.  So a pair's score does not depend on the block it was
    computed in.  A row whose float32 product leaves any doubt (a target
    outside those places within :data:`DENSE_TOLERANCE` of its k-th score,
    or of 0 in a row with fewer than k positive scores), or where more than
    a few targets tie at the edge of those places, has every such target
    scored exactly, :data:`DENSE_PAIRS` at a time.  Memory: ``block_size``
    times the targets in float32, plus ``DENSE_PAIRS`` pairs.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> top_k_dense(X, k=2)[0].tolist()
    [[0, 1], [1, 2], [2, 1]]
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    check_block_size(block_size)
    X = np.asarray(X, dtype=np.float32)
    Y = X if Y is None else np.asarray(Y, dtype=np.float32)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"X {X.shape} and Y {Y.shape} must be 2-d with as many columns")
    indices = np.full((len(X), k), -1, dtype=np.int64)
    scores = np.zeros((len(X), k), dtype=np.float32)
    width = min(k, len(Y))
    for start in range(0, len(X) if width else 0, block_size):
        queries = X[start : start + block_size]
        found, best = dense_block_top(queries, Y, width, queries @ Y.T)
        indices[start : start + len(found), :width] = found
        scores[start : start + len(found), :width] = best
    empty = scores <= 0
    indices[empty], scores[empty] = -1, 0.0
    return indices, scores


def dense_block_top(
    queries: np.ndarray, Y: np.ndarray, width: int, product: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``width`` best rows of ``Y`` by exact score (float32 of float64), then index.

    ``product`` is ``queries @ Y.T`` as computed in float32: off by at most
    :data:`DENSE_TOLERANCE`, it only chooses which targets are scored
    exactly.  Places without a target hold -1 (scores of 0 and below are
    the caller's to drop).
    """
    pool = min(width + DENSE_MARGIN, len(Y))
    # every target at or above each row's pool-th float32 score (more where they tie)
    edge = np.partition(product, len(Y) - pool, axis=1)[:, len(Y) - pool]
    chosen = product >= edge[:, None]
    few = chosen.sum(axis=1) <= 4 * pool  # many ties at the edge: row by row below
    rows, columns = np.nonzero(chosen[few])
    rows = np.flatnonzero(few)[rows]
    exact = _pair_dots(queries, Y, rows, columns)
    order = np.lexsort((columns, -exact, rows))
    rows, columns, exact = rows[order], columns[order], exact[order]
    first = np.arange(len(rows)) - np.searchsorted(rows, rows) < width
    found = np.full((len(queries), width), -1, dtype=np.int64)
    best = np.zeros((len(queries), width), dtype=np.float32)
    found[few], best[few] = columns[first].reshape(-1, width), exact[first].reshape(-1, width)
    # a target below the edge may still reach the k-th exact score (or, in a row
    # short of positive scores, 0) within the tolerance
    reach = np.maximum(best[:, -1], 0) - DENSE_TOLERANCE
    doubt = ~few | ((edge >= reach) & (pool < len(Y)))
    for row in np.flatnonzero(doubt):
        limit = reach[row] if few[row] else edge[row] - DENSE_TOLERANCE
        candidates = np.flatnonzero(product[row] >= limit)
        row_scores = _pair_dots(queries, Y, np.full(len(candidates), row), candidates)
        pick = np.lexsort((candidates, -row_scores))[:width]
        found[row], best[row] = -1, 0
        found[row, : len(pick)], best[row, : len(pick)] = candidates[pick], row_scores[pick]
    return found, best


def _pair_dots(
    queries: np.ndarray, Y: np.ndarray, rows: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """``queries[rows[i]] . Y[columns[i]]`` in float64, rounded to float32.

    Each pair on its own (:data:`DENSE_PAIRS` at a time), so that a pair
    scores the same in any block and in any row's second look.
    """
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), DENSE_PAIRS):
        part = slice(start, start + DENSE_PAIRS)
        left = queries[rows[part]].astype(np.float64)
        out[part] = np.einsum("id,id->i", left, Y[columns[part]].astype(np.float64))
    return out


#: Most rows of :func:`rescore_pairs` spread into its dense buffer at a time (rows x
#: features float32).  The 82 candidates of every real page (35,915) took 1.2 s with
#: 16 rows, 1.8 s with 8 and 1.3 s with 32; of 32,768 pages of a 200,000-page
#: synthetic site, 1.8 to 2.0 s for 8 to 32 rows (2 threads, 2026-12-05).
RESCORE_ROWS = 16
#: The most floats of one thread's buffer (64 MiB): in a wider feature space fewer rows
#: are spread at a time.  With that site's rows spread over 683,484 features (the
#: 1,000,000-page site's width), 32,768 pages took 2.0 s with 8 or 16 rows, 3.0 s with
#: 4 and 3.8 s by copying each pair's rows and multiplying them, as before.
RESCORE_BUFFER = 16 * 1_048_576


def top_k_cosine_fast(
    X: sp.spmatrix,
    Y: sp.spmatrix | None = None,
    *,
    k: int,
    n_terms: int = 40,
    n_candidates: int | None = None,
    common_share: float = COMMON_SHARE,
    max_holders: int | None = MAX_HOLDERS,
    rarity_power: float = RARITY_POWER,
    block_size: int = 4096,
    n_jobs: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximately the k rows of ``Y`` with the largest dot product with each row of ``X``.

    Candidates come from each row's ``n_terms`` strongest terms: the
    ``n_candidates`` targets with the largest dot product over those terms
    only (the query's and the target's; ties by index, as in
    :func:`top_k_cosine`), which is cheap because a row's heavy terms are
    mostly rare ones, with short posting lists.  The
    candidates are then scored exactly against the whole rows, so every
    returned score is a true dot product; what can be missed is a target that
    was not a candidate.  Same input, same result: targets are ordered by score
    descending, then by index ascending.

    Parameters
    ----------
    X : sparse matrix, shape (n_queries, n_features)
    Y : sparse matrix, shape (n_targets, n_features), default X
    k : int
        Results per query row.
    n_terms : int, default 40
        Terms kept per row to find candidates; rows with at most this many
        terms are used whole.
    n_candidates : int, optional
        Candidates re-scored per query; default ``max(2 * k, 80)``.
    common_share : float, default 0.1
        A term among the ``n_terms`` strongest of more than this share of the
        targets (and of more than :data:`COMMON_MIN_TARGETS`, 20,000, of them) finds
        no candidates; it still counts in the exact scores.  Such a term
        says little about which pages are related, and its posting list is
        the search's longest (at 1,000,000 synthetic pages, two such terms
        were half of the work).  1 keeps every term.
    max_holders : int or None, default 2000
        A term finds candidates only among the ``max_holders`` targets it
        weighs most in, of those holding it among their ``n_terms`` strongest
        (ties: the lower index); a target it weighs less in can still be found
        through its other terms.  This keeps the candidate search linear in
        the targets (:data:`MAX_HOLDERS`).  None: no limit.
    rarity_power : float, default 0.5
        A row's strongest terms are those with the largest weight times the
        term's idf over the targets to this power: ``log((1 + n) / (1 + df))
        + 1``, with n the targets and df the targets holding the term.  Rarer
        terms, with shorter posting lists, are preferred (:data:`RARITY_POWER`;
        :class:`~recommender.Recommender` passes ``max(0, 1 - idf_power)``).
        0: by weight alone.
    block_size : int, default 4096
        Query rows searched at a time; bounds memory.
    n_jobs : int or None, default None
        Threads for the candidate search, as in scikit-learn.
    progress : bool, default False
        Show a progress bar over the blocks.

    Returns
    -------
    indices, scores : ndarray
        As :func:`top_k_cosine`: int64 target indices and float32 scores,
        shape (n_queries, k), best first, ``-1`` and ``0`` where a query has
        fewer than k candidates with a positive score.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> indices, scores = top_k_cosine_fast(X, k=2)
    >>> indices.tolist()
    [[0, 1], [1, 2], [2, 1]]
    """
    check_block_size(block_size)
    search = FastSearch(
        X,
        Y,
        k=k,
        n_terms=n_terms,
        n_candidates=n_candidates,
        common_share=common_share,
        max_holders=max_holders,
        rarity_power=rarity_power,
    )
    return _search_blocks(search, block_size, joblib.effective_n_jobs(n_jobs), progress)


class FastSearch:
    """What :func:`top_k_cosine_fast` prepares once, and its search of one block of queries.

    Blocks are independent and their results do not depend on the threads
    used, so blocks may run anywhere (see :mod:`recommender.distributed`).
    Parameters as in :func:`top_k_cosine_fast`.
    """

    def __init__(
        self,
        X,
        Y=None,
        *,
        k: int,
        n_terms: int = 40,
        n_candidates: int | None = None,
        common_share: float = COMMON_SHARE,
        max_holders: int | None = MAX_HOLDERS,
        rarity_power: float = RARITY_POWER,
    ):
        holders = 1 if max_holders is None else max_holders
        for name, value in (("k", k), ("n_terms", n_terms), ("max_holders", holders)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < common_share <= 1:
            raise ValueError(f"common_share must be in (0, 1], got {common_share!r}")
        if not rarity_power >= 0:  # too large a power: term_rarity says it overflows
            raise ValueError(f"rarity_power must be at least 0, got {rarity_power!r}")
        self.k = k
        self.width = max(2 * k, 80) if n_candidates is None else n_candidates
        if self.width < k:
            raise ValueError(f"n_candidates must be at least k ({k}), got {n_candidates!r}")
        self.X, self.Y = _queries_and_targets(X, Y)
        self.X.sort_indices()
        self.Y.sort_indices()
        rarity = term_rarity(self.Y, rarity_power)
        self.strong_queries = strongest_terms(self.X, n_terms, rarity)
        same = self.Y is self.X
        strong_targets = self.strong_queries if same else strongest_terms(self.Y, n_terms, rarity)
        common = common_terms(strong_targets, common_share)
        if common.any():
            logger.debug("%d common terms find no candidates", common.sum())
            self.strong_queries = _without_terms(self.strong_queries, common)
            strong_targets = self.strong_queries if same else _without_terms(strong_targets, common)
        self.strong_targets_t = strong_targets.T.tocsr()
        if max_holders is not None:
            self.strong_targets_t = heaviest_holders(self.strong_targets_t, max_holders)

    def block(self, start: int, stop: int, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of query rows ``start`` to ``stop - 1``."""
        return fast_block(
            self.X[start:stop],
            self.strong_queries[start:stop],
            self.Y,
            self.strong_targets_t,
            k=self.k,
            width=self.width,
            n_threads=n_threads,
        )


def fast_block(queries, strong_queries, Y, strong_targets_t, *, k, width, n_threads):
    """One block of :func:`top_k_cosine_fast`: candidates by strong terms, re-scored exactly."""
    found, _ = exact_block(strong_queries, strong_targets_t, width, n_threads)
    return _best_of(found, rescore_pairs(queries, Y, found, n_threads), k)


def common_terms(strong_targets: sp.csr_matrix, share: float) -> np.ndarray:
    """Whether each column is among the strongest terms of too many targets (see
    :func:`top_k_cosine_fast`'s ``common_share``)."""
    holders = entries_per_column(strong_targets)
    return holders > max(share * strong_targets.shape[0], COMMON_MIN_TARGETS)


def heaviest_holders(strong_targets_t: sp.csr_matrix, limit: int) -> sp.csr_matrix:
    """Each term's (row's) ``limit`` largest entries, ties by the lower target (column);
    the rows within the limit as they are."""
    indptr = strong_targets_t.indptr
    long_terms = np.flatnonzero(np.diff(indptr) > limit)
    if not len(long_terms):
        return strong_targets_t
    keep = np.ones(strong_targets_t.nnz, dtype=bool)
    for term in long_terms:
        start, stop = indptr[term], indptr[term + 1]
        ranked = np.lexsort(
            (strong_targets_t.indices[start:stop], -strong_targets_t.data[start:stop])
        )
        keep[start + ranked[limit:]] = False
    return _kept_entries(strong_targets_t, keep)


def _without_terms(X: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """``X`` less its entries in the marked ``columns`` (a boolean per column)."""
    return _kept_entries(X, ~columns[X.indices])


def _kept_entries(X: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``X`` with only the entries marked in ``keep`` (a boolean per stored entry)."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[keep]
    indptr = np.zeros(X.shape[0] + 1, dtype=X.indptr.dtype)
    np.cumsum(np.bincount(rows, minlength=X.shape[0]), out=indptr[1:])
    return sp.csr_matrix((X.data[keep], X.indices[keep], indptr), shape=X.shape)


#: Rows of :func:`strongest_terms` sorted at a time.  Small blocks keep the sort's
#: temporaries in memory the process already has: at 35,915 pages, blocks of 16,384
#: rows took 0.38 s in a fresh process, mostly faulting in new pages, and 0.15 s in
#: blocks of 1,024 (at 200,000 pages, all rows at once took 2 GiB of keys).
STRONG_ROWS = 1 << 10


def term_rarity(Y: sp.csr_matrix, power: float) -> np.ndarray | None:
    """Each column's smoothed idf over the rows of ``Y``, to ``power``, as float32
    (None for a power of 0): see :func:`top_k_cosine_fast`'s ``rarity_power``.

    A column no row of ``Y`` holds can find no candidates: it gets 1e-6, so that
    it is picked last (the others' are at least 1).
    """
    if power == 0:
        return None
    df = entries_per_column(Y)
    idf = np.log((1.0 + Y.shape[0]) / (1.0 + df)) + 1.0
    rarity = np.maximum(idf, 1.0) ** power  # the idf is below 1 only with repeated entries
    rarity[df == 0] = 1e-6
    if (rarity > np.finfo(np.float32).max).any():  # an infinite power too
        raise ValueError(f"rarity_power {power!r} overflows the weights")
    return rarity.astype(np.float32)


def strongest_terms(
    X: sp.csr_matrix, n_terms: int, column_weights: np.ndarray | None = None
) -> sp.csr_matrix:
    """Each row's ``n_terms`` largest entries (ties: the lower column), others dropped.

    With ``column_weights`` (one positive number a column), the entries
    ranked largest are those of the largest value times their column's
    weight; the kept entries keep their own values.
    """
    if X.shape[0] <= STRONG_ROWS:
        return _strongest_in(X, n_terms, column_weights)
    blocks = range(0, X.shape[0], STRONG_ROWS)
    return sp.vstack(
        [_strongest_in(X[i : i + STRONG_ROWS], n_terms, column_weights) for i in blocks], "csr"
    )


def _strongest_in(
    X: sp.csr_matrix, n_terms: int, column_weights: np.ndarray | None
) -> sp.csr_matrix:
    """:func:`strongest_terms` of one block of rows."""
    counts = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int64), counts)
    values = np.ascontiguousarray(X.data, dtype=np.float32)
    if column_weights is not None:
        values = values * column_weights.astype(np.float32, copy=False)[X.indices]
    if values.size and not (values > 0).all():
        order = np.lexsort((-values, rows))  # zeros or negative entries: the general way
        rank = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)
        keep = np.sort(order[rank < n_terms])  # back to row-major, columns ascending
    else:
        keep = _strongest_positive(rows, values, X.indptr, n_terms)
    kept = np.minimum(counts, n_terms)
    indptr = np.concatenate([[0], np.cumsum(kept)]).astype(X.indptr.dtype)
    return sp.csr_matrix((X.data[keep], X.indices[keep], indptr), shape=X.shape)


def _strongest_positive(
    rows: np.ndarray, values: np.ndarray, indptr: np.ndarray, n_terms: int
) -> np.ndarray:
    """Where the kept entries are, for positive float32 values: each row's n largest.

    The bits of a positive float32 order as its value does, so one int64 per
    entry (the row, then the value descending) sorts every row at once; only
    each row's n-th largest value (its cut) is read from the sort, which need
    not be stable.  Entries above the cut are kept, and those equal to it in
    column order until the row holds n.
    """
    n_rows = len(indptr) - 1
    descending = 0x7FFFFFFF - values.view(np.int32).astype(np.int64)
    ranked = np.sort((rows << 31) | descending)
    cut = np.full(n_rows, 1 << 31, dtype=np.int64)  # rows of at most n entries keep all
    long = np.flatnonzero(np.diff(indptr) > n_terms)
    cut[long] = ranked[indptr[long] + n_terms - 1] & 0x7FFFFFFF
    above = descending < cut[rows]
    tied = descending == cut[rows]
    room = n_terms - np.bincount(rows, weights=above, minlength=n_rows).astype(np.int64)
    tied_before = np.cumsum(tied) - tied
    tied_rank = tied_before - tied_before[indptr[rows]]  # among the row's tied entries
    return np.flatnonzero(above | (tied & (tied_rank < room[rows])))


def rescore_pairs(
    X: sp.csr_matrix, Y: sp.csr_matrix, found: np.ndarray, n_threads: int = 1
) -> np.ndarray:
    """Exact dot products of each row of ``X`` with the rows of ``Y`` named in ``found``.

    A few rows of ``X`` at a time are spread into a dense buffer, and the
    entries of the rows of ``Y`` they are paired with are looked up in it and
    summed in one sparse product, each pair in its row's order: a pair's
    score does not depend on the rows around it or the threads.  Fewer rows
    are spread at a time in a feature space too wide for
    :data:`RESCORE_ROWS` of them (:data:`RESCORE_BUFFER`).

    Parameters
    ----------
    X : csr_matrix, shape (n, n_features)
    Y : csr_matrix, shape (m, n_features)
    found : ndarray of int64, shape (n, width)
        Row indices into ``Y``; ``-1`` for none.
    n_threads : int, default 1
        Threads that score parts of the rows (scipy's and numpy's kernels release the GIL).

    Returns
    -------
    ndarray of float32, shape (n, width)
        ``X[i] . Y[found[i, j]]``; ``-inf`` where ``found`` is ``-1``.
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    Y = sp.csr_matrix(Y, dtype=np.float32)
    paired = (found >= 0).any(axis=1)
    if not paired.all():  # a night pairs a few rows of the site's: only those are read
        exact = np.full(found.shape, -np.inf, dtype=np.float32)
        rows = np.flatnonzero(paired)
        if len(rows):
            exact[rows] = rescore_pairs(X[rows], Y, found[rows], n_threads)
        return exact
    if not X.has_canonical_format:  # a repeated column would overwrite in the buffer
        X = X.copy()  # not the caller's matrix
        X.sum_duplicates()
    exact = np.full(found.shape, -np.inf, dtype=np.float32)
    parts = np.linspace(0, X.shape[0], n_threads * 4 + 1, dtype=np.int64)
    step = int(np.clip(RESCORE_BUFFER // max(X.shape[1], 1), 1, RESCORE_ROWS))

    def score(part: int) -> None:  # each part fills its own rows of ``exact``
        dense = np.zeros((step, X.shape[1]), dtype=np.float32)
        for start in range(parts[part], parts[part + 1], step):
            stop = min(start + step, parts[part + 1])
            _rescore_rows(X[start:stop], Y, found[start:stop], dense, exact[start:stop])

    if n_threads > 1 and X.shape[0] > step:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(score, range(len(parts) - 1)))
    else:
        for part in range(len(parts) - 1):
            score(part)
    return exact


def _rescore_rows(
    queries: sp.csr_matrix, Y: sp.csr_matrix, found: np.ndarray, dense: np.ndarray, out
) -> None:
    """:func:`rescore_pairs` of a few rows into ``out`` (-inf where none), through
    ``dense`` (zeros, left as zeros).

    The paired rows of ``Y`` are copied (scipy's row indexing) and their columns
    moved to their query's row of the flattened buffer, so that one sparse
    matrix-vector product scores every pair, each row summed in its own order.
    """
    rows = np.repeat(np.arange(queries.shape[0]), np.diff(queries.indptr))
    dense[rows, queries.indices] = queries.data
    pair_rows, places = np.nonzero(found >= 0)
    paired = Y[found[pair_rows, places]]
    offsets = pair_rows.astype(paired.indices.dtype) * dense.shape[1]
    columns = paired.indices + np.repeat(offsets, np.diff(paired.indptr))
    spread = sp.csr_matrix(
        (paired.data, columns, paired.indptr), shape=(len(pair_rows), dense.size)
    )
    out[pair_rows, places] = spread @ dense.ravel()
    dense[rows, queries.indices] = 0


def _best_of(found: np.ndarray, exact: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best candidates per row by score descending, then index ascending.

    ``found`` holds at least k candidates a row (-1 padded), as many as the fast
    search's ``width``.
    """
    order = np.lexsort((found, -exact), axis=1)[:, :k]
    indices = np.take_along_axis(found, order, 1)
    scores = np.take_along_axis(exact, order, 1)
    empty = ~(scores > 0)
    indices[empty], scores[empty] = -1, 0.0
    return indices, scores
