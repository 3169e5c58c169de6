"""Re-scoring the candidates of a neighbour search with a second similarity.

Plain functions over arrays: ``candidates`` (n_pages, width) of target row
indices (-1 for none) and ``scores`` (n_pages, width), as returned by
:func:`recommender.neighbors.top_k_cosine`.  A dense second representation
(LSA components, sentence embeddings) is compared only on these candidates,
never all pairs, so that it costs ``n_pages * width`` dot products.

In :meth:`Recommender.fit <recommender.model.Recommender.fit>` it plugs in
after the neighbour search and before the rules: the rules and coverage then
see the blended scores.
"""

from __future__ import annotations

import numpy as np

__all__ = ["blend_scores"]


def blend_scores(
    candidates: np.ndarray,
    scores: np.ndarray,
    vectors: np.ndarray,
    weight: float,
    *,
    block_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend each candidate's score with the cosine of dense vectors, and re-sort each row.

    ``blended = weight * cos(vectors[i], vectors[j]) + (1 - weight) * score``

    Parameters
    ----------
    candidates : ndarray of int, shape (n, width)
        Candidate row indices per page, -1 for none.
    scores : ndarray of float, shape (n, width)
        Their first scores (the TF-IDF cosine).
    vectors : ndarray of float, shape (n, d)
        One row per page; rows are L2-normalised here (zero rows stay zero).
    weight : float
        Share of the dense cosine, from 0 to 1.
    block_size : int, default 1024
        Pages compared at a time; bounds memory to ``block_size * width * d`` floats.

    Returns
    -------
    candidates, scores : ndarrays of the same shapes
        Each row sorted by blended score descending, then by candidate index
        ascending (deterministic); -1 candidates last with score 0.

    Examples
    --------
    >>> candidates = np.array([[1, 2], [0, 2], [0, 1]])
    >>> scores = np.array([[0.5, 0.4], [0.5, 0.1], [0.4, 0.1]])
    >>> vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> blend_scores(candidates, scores, vectors, 0.5)[0].tolist()
    [[2, 1], [0, 2], [0, 1]]
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be a number from 0 to 1, got {weight!r}")
    vectors = np.asarray(vectors, dtype=np.float32)
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, lengths, out=np.zeros_like(vectors), where=lengths > 0)
    present = candidates >= 0
    safe = np.maximum(candidates, 0)
    dense = np.empty(candidates.shape, dtype=np.float32)
    for start in range(0, len(candidates), block_size):  # bounds memory: block x width x d
        rows = slice(start, start + block_size)
        dense[rows] = np.einsum("id,iwd->iw", unit[rows], unit[safe[rows]])
    blended = np.where(present, weight * dense + (1 - weight) * scores, -np.inf)
    order = np.lexsort((np.where(present, candidates, np.iinfo(np.int64).max), -blended), axis=1)
    candidates = np.take_along_axis(candidates, order, 1)
    blended = np.take_along_axis(blended, order, 1)
    return candidates, np.where(candidates >= 0, blended, 0).astype(np.float32)
