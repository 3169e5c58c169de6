import numpy as np
import pytest
import scipy.sparse as sp

from recommender.matrices import entries_per_column


@pytest.mark.parametrize("step", [1, 3, 7, 1 << 22])
def test_entries_per_column_counts_each_columns_entries_a_slice_at_a_time(step):
    X = sp.random(20, 9, density=0.4, format="csr", random_state=np.random.default_rng(3))
    counts = entries_per_column(X, step)
    assert counts.dtype == np.int64
    assert counts.tolist() == np.diff(X.tocsc().indptr).tolist()
