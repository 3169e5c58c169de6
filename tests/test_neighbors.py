import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender import neighbors
from recommender.neighbors import brute_force_top_k, top_k_cosine, top_k_cosine_above


def random_rows(n: int, features: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    matrix = sp.random(
        n, features, density=density, format="csr", random_state=rng, dtype=np.float32
    )
    return normalize(matrix).astype(np.float32)


@pytest.mark.parametrize("block_size", [1, 7, 50, 10_000])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_equals_brute_force_for_any_block_size(block_size, k):
    X = random_rows(83, 40, 0.15, seed=1)
    indices, scores = top_k_cosine(X, k=k, block_size=block_size)
    expected_indices, expected_scores = brute_force_top_k(X, X, k=k)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_queries_against_other_targets_and_threads():
    X, Y = random_rows(31, 25, 0.2, seed=2), random_rows(57, 25, 0.2, seed=3)
    indices, scores = top_k_cosine(X, Y, k=6, block_size=7, n_jobs=2)
    expected_indices, expected_scores = brute_force_top_k(X, Y, k=6)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_ties_break_by_index_whatever_the_order_of_computation():
    # rows 1..6 are identical, so every query ties between them
    base = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    rows = np.vstack([base[0], *[base[1]] * 6, base[0]])
    X = sp.csr_matrix(normalize(rows))
    indices, _ = top_k_cosine(X, k=3, block_size=2)
    assert indices[0].tolist() == [0, 7, 1]  # 0 and 7 score 1.0; then the first of the ties
    assert indices[3].tolist() == [1, 2, 3]
    expected, _ = brute_force_top_k(X, X, k=3)
    np.testing.assert_array_equal(indices, expected)


def test_rows_without_positive_scores_are_padded():
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32))
    indices, scores = top_k_cosine(X, k=3)
    assert indices.tolist() == [[0, -1, -1], [1, 2, -1], [1, 2, -1]]
    assert scores[0].tolist() == [1.0, 0.0, 0.0]
    empty = sp.csr_matrix((2, 2), dtype=np.float32)
    assert top_k_cosine(empty, X, k=2)[0].tolist() == [[-1, -1], [-1, -1]]


def test_k_larger_than_the_targets():
    X = random_rows(5, 8, 0.9, seed=4)
    indices, _ = top_k_cosine(X, k=9)
    expected, _ = brute_force_top_k(X, X, k=9)
    np.testing.assert_array_equal(indices, expected)
    assert (indices[:, 5:] == -1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive integer, got 0"),
        ({"k": 2, "block_size": 0}, "block_size must be a positive integer, got 0"),
        ({"k": 2, "Y": sp.csr_matrix((3, 5))}, "X has 4 features but Y has 5"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        top_k_cosine(sp.csr_matrix((3, 4)), **kwargs)


# ---------------------------------------------------------------- ties, against an independent oracle


def dense_top_k(X, Y, k):
    """The k best targets per row from the dense product, by score desc then index; plain Python."""
    product = (
        np.asarray(X.todense(), dtype=np.float64) @ np.asarray(Y.todense(), dtype=np.float64).T
    )
    indices = np.full((product.shape[0], k), -1, dtype=np.int64)
    scores = np.zeros((product.shape[0], k), dtype=np.float64)
    for row, values in enumerate(product):
        best = sorted((-score, column) for column, score in enumerate(values) if score > 0)[:k]
        for place, (negative, column) in enumerate(best):
            indices[row, place], scores[row, place] = column, -negative
    return indices, scores


def tied_rows(n, seed):
    """Small-integer rows over 4 features: dot products are exact and tie everywhere."""
    rng = np.random.default_rng(seed)
    dense = rng.integers(0, 3, size=(n, 4)).astype(np.float32)
    dense[rng.random(n) < 0.1] = 0  # some rows with no positive score at all
    return sp.csr_matrix(dense)


@pytest.mark.parametrize("block_size", [1, 3, 7, 1000])
@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_ties_at_the_kth_place_match_a_dense_oracle(block_size, k):
    X, Y = tied_rows(41, seed=5), tied_rows(37, seed=6)
    expected_indices, expected_scores = dense_top_k(X, Y, k + 1)
    tied = (expected_indices[:, k] >= 0) & (expected_scores[:, k - 1] == expected_scores[:, k])
    assert tied.sum() >= 5  # the data exercises the tie path
    indices, scores = top_k_cosine(X, Y, k=k, block_size=block_size)
    np.testing.assert_array_equal(indices, expected_indices[:, :k])
    np.testing.assert_array_equal(scores, expected_scores[:, :k])
    brute_indices, brute_scores = brute_force_top_k(X, Y, k=k)
    np.testing.assert_array_equal(brute_indices, expected_indices[:, :k])
    np.testing.assert_array_equal(brute_scores, expected_scores[:, :k])


def above_floors(indices, scores, floors):
    """Each row's entries scoring at least its floor, padded as the search pads."""
    below = scores < floors[:, None]
    return np.where(below, -1, indices), np.where(below, 0, scores).astype(np.float32)


@pytest.mark.parametrize("block_size", [1, 7, 1000])
@pytest.mark.parametrize("data", ["random", "tied"])
def test_a_search_above_floors_is_the_full_search_cut_at_each_rows_floor(block_size, data):
    X, Y = (
        (random_rows(60, 30, 0.2, seed=7), random_rows(45, 30, 0.2, seed=8))
        if data == "random"
        else (tied_rows(60, seed=7), tied_rows(45, seed=8))
    )
    indices, scores = top_k_cosine(X, Y, k=6)
    floors = np.random.default_rng(9).choice(np.r_[0, np.unique(scores)], size=60)
    floors = floors.astype(np.float32)  # some exactly at a score: kept, ties included
    found, found_scores = top_k_cosine_above(X, Y, k=6, floors=floors, block_size=block_size)
    expected, expected_scores = above_floors(indices, scores, floors)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(found_scores, expected_scores)
    assert (found.dtype, found_scores.dtype) == (np.int64, np.float32)
    assert (found == -1).sum() > (indices == -1).sum()  # the floors left some out


def test_the_kernel_drops_what_scores_under_a_blocks_lowest_floor(monkeypatch):
    calls = recorded_searches(monkeypatch, argument="threshold")
    X, Y = random_rows(40, 30, 0.2, seed=10), random_rows(30, 30, 0.2, seed=11)
    floors = np.r_[np.zeros(20), np.full(20, 0.3)].astype(np.float32)
    top_k_cosine_above(X, Y, k=4, floors=floors[::-1].copy(), block_size=20)
    # blocks of similar floors, whatever the rows' order: the second keeps only scores >= 0.3
    assert [rows for rows, _ in calls[:2]] == [20, 20]
    assert calls[0][1] == 0.0
    assert calls[1][1] == float(np.nextafter(np.float32(0.3), np.float32(-1)))


def test_a_search_above_floors_refuses_floors_of_another_length():
    X = random_rows(5, 8, 0.9, seed=4)
    with pytest.raises(ValueError, match=r"floors has shape \(4,\), X has 5 rows"):
        top_k_cosine_above(X, X, k=2, floors=np.zeros(4))


def test_result_types_and_shapes():
    X = random_rows(9, 6, 0.5, seed=7)
    indices, scores = top_k_cosine(X, random_rows(4, 6, 0.5, seed=8), k=3, block_size=2)
    assert (indices.dtype, scores.dtype) == (np.int64, np.float32)
    assert indices.shape == scores.shape == (9, 3)
    brute_indices, brute_scores = brute_force_top_k(X, X, k=3)
    assert (brute_indices.dtype, brute_scores.dtype) == (np.int64, np.float32)


def test_a_progress_bar_only_when_asked(capsys):
    X = random_rows(10, 6, 0.5, seed=9)
    top_k_cosine(X, k=2, block_size=3)
    assert capsys.readouterr().err == ""
    top_k_cosine(X, k=2, block_size=3, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"(^|\r)similarity: ", err) and " 4/4 [" in err
    assert re.search(r"[\d.?]+(block/s|s/block)\]", err), err


def test_scores_are_float32_so_near_equal_float64_scores_tie_and_break_by_index():
    # in float64 target 1 scores a hair more than target 0; in float32 they tie
    X = sp.csr_matrix(np.array([[1.0, 1.0 + 1e-12]]))
    Y = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.0]]))
    assert top_k_cosine(X, Y, k=2)[0].tolist() == [[0, 1]]
    assert brute_force_top_k(X, Y, k=2)[0].tolist() == [[0, 1]]
    X = sp.csr_matrix(np.array([[1.0, 1.0]]))
    Y = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0 + 1e-12], [0.5, 0.0]]))
    assert top_k_cosine(X, Y, k=2)[0].tolist() == [[0, 1]]
    assert brute_force_top_k(X, Y, k=2)[0].tolist() == [[0, 1]]


def recorded_searches(monkeypatch, argument: str = "top_n") -> list[tuple[int, object]]:
    """(rows, the given keyword argument) of every call of the kernel, as it happens."""
    calls = []
    kernel = neighbors.sp_matmul_topn

    def recording(block, targets, **kwargs):
        calls.append((block.shape[0], kwargs[argument]))
        return kernel(block, targets, **kwargs)

    monkeypatch.setattr(neighbors, "sp_matmul_topn", recording)
    return calls


def test_only_rows_tied_at_the_kth_place_are_searched_again(monkeypatch):
    calls = recorded_searches(monkeypatch)
    # row 0 has one positive score and row 1 two: padding, which is no tie
    X = sp.csr_matrix(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.6, 1.0]]))
    indices, _ = top_k_cosine(X, k=3)
    assert indices.tolist() == [[0, -1, -1], [1, 2, -1], [2, 1, -1]]
    assert calls == [(3, 4)]
    # rows 0, 1 and 2 are equal: each ties at place 2 (of 2) with the third; row 3 does not
    calls.clear()
    X = sp.csr_matrix(np.array([[1.0, 0], [1.0, 0], [1.0, 0], [0, 1.0]]))
    indices, _ = top_k_cosine(X, k=2, block_size=4)
    assert indices.tolist() == [[0, 1], [0, 1], [0, 1], [3, -1]]
    # the tied rows again, for twice as many (here every target): not row 3 of their block
    assert calls == [(4, 3), (3, 4)]


@pytest.mark.parametrize("tied_scores", [1 << 24, 7])
def test_tied_rows_are_searched_wider_until_the_tie_is_inside(monkeypatch, tied_scores):
    # 30 equal targets tie for every query's places: 3, then 6, 12, 24 and 48 kept; at 48
    # the last place holds one of the 100 weaker targets, so the search stops short of all 131
    monkeypatch.setattr(neighbors, "TIED_SCORES", tied_scores)
    calls = recorded_searches(monkeypatch)
    rows = np.vstack([[1.0, 0.2]] * 30 + [[0.0, 1.0]] + [[0.5, 0.0]] * 100)
    X, Y = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.1]])), sp.csr_matrix(rows)
    indices, scores = top_k_cosine(X, Y, k=2)
    assert indices.tolist() == [[0, 1], [0, 1]]
    expected_indices, expected_scores = dense_top_k(X, Y, 2)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    widths = [top_n for _, top_n in calls]
    assert widths[0] == 3 and sorted(set(widths[1:])) == [6, 12, 24, 48]
    # a bound on the places searched at once: one row at a time when it is small
    most_rows = max(rows for rows, top_n in calls[1:])
    assert most_rows == (2 if tied_scores > 96 else 1)


@pytest.mark.parametrize("tied_scores", [1 << 24, 500])
def test_rows_tied_after_the_doublings_keep_every_target_at_or_above_their_kth(
    monkeypatch, tied_scores
):
    # 300 equal targets tie for each query's places, and doubling from 3 to 48 places
    # leaves the tie open: one more search keeps every target scoring at least the k-th
    monkeypatch.setattr(neighbors, "TIED_SCORES", tied_scores)
    calls = recorded_searches(monkeypatch, "threshold")
    rows = np.vstack([[0.5, 0.0]] * 50 + [[1.0, 0.2]] * 300 + [[0.0, 1.0]])
    X = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 0.3], [0.0, 1.0]]))
    Y = sp.csr_matrix(rows)
    indices, scores = top_k_cosine(X, Y, k=2)
    assert indices.tolist()[:3] == [[50, 51]] * 3
    expected_indices, expected_scores = dense_top_k(X, Y, 2)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    assert len(calls) > 5 and all(threshold == 0.0 for _, threshold in calls[:5])
    # the last searches keep what scores just under the tied k-th scores, no lower; rows
    # x targets within TIED_SCORES (one row at a time when it is small), like rows together
    under = np.nextafter(scores[:, 1], np.float32(-np.inf))
    if tied_scores > 4 * 351:
        assert calls[5:] == [(4, under.min())]
    else:
        assert calls[5:] == [(1, floor) for floor in sorted(under, reverse=True)]


def test_a_tie_left_open_is_searched_from_the_kth_score_not_a_better_place(monkeypatch):
    # three targets above a tie of 300 at places 4 and 5: the last search keeps what
    # scores at least the 5th (the tie), not the 3rd, so the lowest tied indices win
    calls = recorded_searches(monkeypatch, "threshold")
    leaders = [[4.0, 0.0], [3.0, 0.0], [2.0, 0.0]]
    Y = sp.csr_matrix(np.vstack([[1.0, 0.2]] * 300 + leaders + [[0.0, 1.0]]))
    X = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.1]]))
    indices, scores = top_k_cosine(X, Y, k=5)
    assert indices.tolist() == [[300, 301, 302, 0, 1]] * 2
    expected_indices, expected_scores = dense_top_k(X, Y, 5)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    assert calls[-1] == (2, np.nextafter(scores[:, 4], np.float32(-np.inf)).min())


def test_blocks_bound_the_rows_multiplied_at_once_and_threads_reach_the_kernel(monkeypatch):
    calls = recorded_searches(monkeypatch, "n_threads")
    X = random_rows(23, 10, 0.4, seed=10)
    indices, _ = top_k_cosine(X, k=4, block_size=7, n_jobs=2)
    assert calls == [(7, 2), (7, 2), (7, 2), (2, 2)]
    np.testing.assert_array_equal(indices, dense_top_k(X, X, 4)[0])
    calls.clear()
    top_k_cosine(X, k=4, block_size=50)
    assert calls == [(23, 1)]  # n_jobs=None: one thread


def test_negative_products_are_no_results():
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    Y = sp.csr_matrix(np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, -1.0]], dtype=np.float32))
    indices, scores = top_k_cosine(X, Y, k=2)
    assert indices.tolist() == [[0, 2], [-1, -1]]
    assert scores.tolist() == [[1.0, 0.5], [0.0, 0.0]]
    np.testing.assert_array_equal(brute_force_top_k(X, Y, k=2)[0], indices)


# ---------------------------------------------------------------- dense vectors


@pytest.mark.parametrize("block_size", [1, 3, 64])
@pytest.mark.parametrize("k", [1, 4, 30])
def test_dense_search_is_the_brute_force_order_with_ties_zeros_and_negatives(block_size, k):
    rng = np.random.default_rng(10 * k + block_size)
    X = rng.integers(-2, 3, size=(25, 4)).astype(float)  # small integers: many exact ties
    Y = rng.integers(-2, 3, size=(20, 4)).astype(float)
    found, scores = neighbors.top_k_dense(X, Y, k=k, block_size=block_size)
    expected, expected_scores = brute_force_top_k(sp.csr_matrix(X), sp.csr_matrix(Y), k=k)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(scores, expected_scores)
    assert found.dtype == np.int64 and scores.dtype == np.float32


def test_dense_search_of_a_matrix_against_itself_finds_each_row_first():
    X = normalize(np.random.default_rng(0).normal(size=(40, 8)))
    found, scores = neighbors.top_k_dense(X, k=3, block_size=16)
    np.testing.assert_array_equal(found[:, 0], np.arange(40))
    np.testing.assert_allclose(scores[:, 0], 1, rtol=1e-6)
    # the same pairs score the same in any block
    again, again_scores = neighbors.top_k_dense(X[::-1], X, k=3, block_size=7)
    np.testing.assert_array_equal(again[::-1], found)
    np.testing.assert_array_equal(again_scores[::-1], scores)


@pytest.mark.parametrize(
    ("Y", "k", "block_size", "problem"),
    [
        (np.ones((3, 3)), 2, 10, "as many columns"),
        (None, 0, 10, "k must be a positive integer"),
        (None, 2, 0, "block_size must be a positive integer"),
    ],
)
def test_dense_search_refuses_bad_arguments(Y, k, block_size, problem):
    with pytest.raises(ValueError, match=problem):
        neighbors.top_k_dense(np.ones((3, 2)), Y, k=k, block_size=block_size)
    with pytest.raises(ValueError, match="must be 2-d"):
        neighbors.top_k_dense(np.ones(2), np.ones((3, 2)), k=1)  # one vector, not a matrix


def test_dense_search_among_no_targets_finds_nothing():
    found, scores = neighbors.top_k_dense(np.ones((3, 2)), np.ones((0, 2)), k=2)
    assert (found == -1).all() and (scores == 0).all() and found.shape == (3, 2)


def test_dense_search_breaks_ties_by_index_beyond_the_places_it_scores_exactly():
    rng = np.random.default_rng(3)
    Y = normalize(rng.normal(size=(2000, 16)))
    copies = np.sort(rng.choice(2000, 500, replace=False))
    Y[copies] = Y[copies[0]]  # far more copies than the places scored exactly
    found, scores = neighbors.top_k_dense(Y[copies[:1]], Y, k=3)
    np.testing.assert_array_equal(found[0], copies[:3])
    np.testing.assert_allclose(scores[0], 1, rtol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_dense_block_is_exact_whatever_the_float32_errors_within_the_tolerance(seed):
    rng = np.random.default_rng(seed)
    Y = normalize(rng.normal(size=(300, 8)))
    Y[100:160] = Y[5]  # copies: exact ties
    queries = Y[[5, 7, 200]]
    exact = queries @ Y.T
    noise = rng.uniform(-1, 1, size=exact.shape) * neighbors.DENSE_TOLERANCE  # any error within
    found, best = neighbors.dense_block_top(queries, Y, 4, (exact + noise).astype(np.float32))
    expected, expected_scores = brute_force_top_k(sp.csr_matrix(queries), sp.csr_matrix(Y), k=4)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(best, expected_scores, rtol=1e-6)


def float32_twins(seed: int = 0):
    """A query and two unit vectors whose float64 scores differ but round to one float32."""
    rng = np.random.default_rng(seed)
    while True:
        q, a = normalize(rng.normal(size=(2, 16))).astype(np.float32)
        b = normalize(a[None] + rng.normal(scale=1e-7, size=(1, 16)))[0].astype(np.float32)
        high, low = (q.astype(float) @ a.astype(float)), (q.astype(float) @ b.astype(float))
        if high > 0.3 and high != low and np.float32(high) == np.float32(low):
            return q, (a, b) if high > low else (b, a)


def test_dense_scores_tied_in_float32_rank_by_index_as_the_other_searches_do():
    q, (higher, lower) = float32_twins()
    Y = np.vstack([lower, higher])  # the lower float64 score has the lower index
    found, scores = neighbors.top_k_dense(q[None], Y, k=1)
    assert found.tolist() == [[0]] and scores[0, 0] == np.float32(q.astype(float) @ higher)


def test_dense_search_finds_a_tiny_positive_score_the_float32_product_made_negative():
    rng = np.random.default_rng(1)
    query = normalize(rng.random(size=(1, 8)))
    Y = -normalize(rng.random(size=(40, 8)))  # all negative against a positive query

    def scoring(exact: float) -> np.ndarray:  # a unit vector with this exact score
        other = normalize(rng.normal(size=(1, 8)))[0]
        other -= (other @ query[0]) * query[0]
        return exact * query[0] + np.sqrt(1 - exact**2) * other / np.linalg.norm(other)

    Y[25] = scoring(1e-9)
    Y[:15] = [scoring(-1e-6) for _ in range(15)]  # more than the places scored exactly
    product = (query @ Y.T).astype(np.float32)
    product[0, :15] = -1e-9  # float32 errors within the tolerance put these first ...
    product[0, 25] = -5e-9  # ... and the one positive score below them, out of those places
    found, best = neighbors.dense_block_top(query, Y, 3, product)
    assert found[0, 0] == 25 and 0 < best[0, 0] < 1e-6
    assert (best[0, 1:] < 0).all()  # the others score below 0: top_k_dense drops them


def test_dense_search_with_zero_vectors_and_many_copies_in_small_chunks(monkeypatch):
    monkeypatch.setattr(neighbors, "DENSE_PAIRS", 7)  # pairs scored exactly at a time
    rng = np.random.default_rng(2)
    Y = normalize(rng.normal(size=(300, 8)))
    Y[50:250] = Y[10]  # 200 copies of one page: ties far beyond the places scored exactly
    Y[7] = 0
    queries = Y[[10, 7, 3]]
    found, scores = neighbors.top_k_dense(queries, Y, k=5, block_size=2)
    expected, expected_scores = brute_force_top_k(sp.csr_matrix(queries), sp.csr_matrix(Y), k=5)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    assert found[0].tolist() == [10, 50, 51, 52, 53] and (found[1] == -1).all()
