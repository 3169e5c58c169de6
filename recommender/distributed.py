"""The fast similarity search over a Dask cluster, one task per block of query rows.

Needs the optional extra ``dask`` (``pip install recommender[dask]``).  The
blocks are those of :func:`recommender.neighbors.top_k_cosine_fast` and give
the same result wherever they run: the targets are sent to every worker once,
each task takes one block of query rows and returns its indices and scores.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .neighbors import FastSearch, fast_block

__all__ = ["top_k_cosine_fast_dask"]


def top_k_cosine_fast_dask(
    X: sp.spmatrix,
    Y: sp.spmatrix | None = None,
    *,
    k: int,
    client=None,
    n_terms: int = 60,
    n_candidates: int | None = None,
    block_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~recommender.neighbors.top_k_cosine_fast` with its blocks run on Dask workers.

    Parameters
    ----------
    X, Y, k, n_terms, n_candidates, block_size
        As in :func:`~recommender.neighbors.top_k_cosine_fast`.
    client : dask.distributed.Client, optional
        The cluster to use; default the current client.

    Returns
    -------
    indices, scores : ndarray
        Identical to what :func:`~recommender.neighbors.top_k_cosine_fast`
        returns for the same arguments.
    """
    from dask.distributed import default_client

    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    client = client or default_client()
    search = FastSearch(X, Y, k=k, n_terms=n_terms, n_candidates=n_candidates)
    targets = client.scatter(
        [search.Y, search.strong_targets, search.strong_targets_t], broadcast=True
    )
    n = search.X.shape[0]
    futures = [
        client.submit(
            fast_block,
            search.X[start : start + block_size],
            search.strong_queries[start : start + block_size],
            *targets,
            k=k,
            width=search.width,
            n_threads=1,
            pure=False,
        )
        for start in range(0, n, block_size)
    ]
    blocks = client.gather(futures)
    if not blocks:
        return np.full((0, k), -1, dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.vstack([b[0] for b in blocks]), np.vstack([b[1] for b in blocks])
