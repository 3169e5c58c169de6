import numpy as np
import pytest

from recommender.neighbors import top_k_cosine_fast

from .test_neighbors_fast import random_rows, topical_rows

distributed = pytest.importorskip("dask.distributed")

from recommender.distributed import top_k_cosine_fast_dask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_same_result_as_one_process(client):
    X = topical_rows(1500, seed=11)
    expected = top_k_cosine_fast(X, k=7, n_terms=12, n_candidates=30, block_size=200)
    found = top_k_cosine_fast_dask(
        X, k=7, n_terms=12, n_candidates=30, block_size=170, client=client
    )
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


def test_queries_against_other_targets(client):
    X, Y = random_rows(40, 30, 0.2, seed=12), random_rows(90, 30, 0.2, seed=13)
    expected = top_k_cosine_fast(X, Y, k=5)
    found = top_k_cosine_fast_dask(X, Y, k=5, block_size=9, client=client)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])
