"""Counting over a sparse matrix's entries without a copy of them all.

Shared by :mod:`recommender.features` (document frequencies when pruning and
weighing terms) and :mod:`recommender.neighbors` (the targets' document
frequencies when picking strong terms).  ``np.bincount`` of every column index
of a large matrix first makes an int64 copy of them: at 150,000,000 entries
(a 1,000,000-page site) 1.15 GiB more and 3.0 s, against 0.55 s a slice at a
time.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ENTRIES_AT_A_TIME", "entries_per_column"]

#: Entries counted at a time by :func:`entries_per_column`.
ENTRIES_AT_A_TIME = 1 << 22


def entries_per_column(X: sp.csr_matrix, step: int = ENTRIES_AT_A_TIME) -> np.ndarray:
    """Each column's number of stored entries (a term's document frequency in counts),
    counted ``step`` entries at a time."""
    counts = np.zeros(X.shape[1], dtype=np.int64)
    for start in range(0, X.nnz, step):
        counts += np.bincount(X.indices[start : start + step], minlength=X.shape[1])
    return counts
