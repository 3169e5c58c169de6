import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender import neighbors
from recommender.neighbors import (
    heaviest_holders,
    rescore_pairs,
    strongest_terms,
    top_k_cosine,
    top_k_cosine_fast,
)


def random_rows(n: int, features: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    matrix = sp.random(
        n, features, density=density, format="csr", random_state=rng, dtype=np.float32
    )
    return normalize(matrix).astype(np.float32)


def topical_rows(n: int, seed: int) -> sp.csr_matrix:
    """Rows drawn from 20 topics of 30 words each, plus background words, in columns
    shuffled (so that no tie to the lower column favours the topics' words)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 20, n)
    words = np.concatenate(
        [topic[:, None] * 30 + rng.integers(0, 30, (n, 12)), 600 + rng.integers(0, 2000, (n, 40))],
        axis=1,
    )
    rows = np.repeat(np.arange(n), words.shape[1])
    counts = sp.csr_matrix((np.ones(rows.size), (rows, words.ravel())), shape=(n, 2600))
    counts.data = 1 + np.log(counts.data)
    counts = counts[:, rng.permutation(counts.shape[1])].tocsr()
    counts.sort_indices()
    return normalize(counts).astype(np.float32)


def recall(found: np.ndarray, expected: np.ndarray) -> float:
    hits = sum(np.isin(e[e >= 0], f).sum() for f, e in zip(found, expected, strict=True))
    return hits / (expected >= 0).sum()


@pytest.mark.parametrize("block_size", [1, 7, 10_000])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_equals_exact_when_every_term_and_target_is_a_candidate(block_size, k):
    X = random_rows(83, 40, 0.15, seed=1)
    indices, scores = top_k_cosine_fast(X, k=k, n_terms=40, n_candidates=83, block_size=block_size)
    expected_indices, expected_scores = top_k_cosine(X, k=k)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_queries_against_other_targets_and_threads():
    X, Y = random_rows(31, 25, 0.2, seed=2), random_rows(57, 25, 0.2, seed=3)
    indices, scores = top_k_cosine_fast(X, Y, k=6, n_terms=25, n_candidates=57, n_jobs=2)
    expected_indices, expected_scores = top_k_cosine(X, Y, k=6)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_high_recall_and_true_scores_with_few_terms_and_candidates():
    X = topical_rows(2000, seed=4)
    indices, scores = top_k_cosine_fast(X, k=5, n_terms=25, n_candidates=40, block_size=300)
    expected, _ = top_k_cosine(X, k=5)
    assert recall(indices, expected) >= 0.95
    # A topic's words are a little rarer than the background's, and weigh the same:
    # picked by weight alone, the strong terms are any of them.
    by_weight, _ = top_k_cosine_fast(X, k=5, n_terms=25, n_candidates=40, rarity_power=0)
    assert recall(by_weight, expected) <= recall(indices, expected) - 0.04
    dense = (X @ X.T).toarray()
    rows = np.repeat(np.arange(2000), 5)
    np.testing.assert_allclose(scores.ravel(), dense[rows, indices.ravel()], rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_same_result_whatever_the_blocks_and_threads():
    X = topical_rows(700, seed=5)
    first = top_k_cosine_fast(X, k=8, n_terms=10, n_candidates=20, block_size=64)
    second = top_k_cosine_fast(X, k=8, n_terms=10, n_candidates=20, block_size=700, n_jobs=2)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_ties_break_by_index_even_among_candidates_cut_short():
    # rows 1..6 are identical, so every query ties between them
    base = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    rows = np.vstack([base[0], *[base[1]] * 6, base[0]])
    X = sp.csr_matrix(normalize(rows))
    indices, _ = top_k_cosine_fast(X, k=3, n_candidates=3, block_size=2)
    assert indices[0].tolist() == [0, 7, 1]
    assert indices[3].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(indices, top_k_cosine(X, k=3)[0])


def test_rows_without_positive_scores_are_padded():
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32))
    indices, scores = top_k_cosine_fast(X, k=3)
    assert indices.tolist() == [[0, -1, -1], [1, 2, -1], [1, 2, -1]]
    assert scores[0].tolist() == [1.0, 0.0, 0.0]
    empty = sp.csr_matrix((2, 2), dtype=np.float32)
    assert top_k_cosine_fast(empty, X, k=2)[0].tolist() == [[-1, -1], [-1, -1]]


def test_strongest_terms_keeps_the_largest_and_the_lower_column_on_ties():
    X = sp.csr_matrix(np.array([[0.1, 0.5, 0.5, 0.3], [0.0, 0.2, 0.0, 0.0]], dtype=np.float32))
    kept = strongest_terms(X, 2).toarray()
    np.testing.assert_allclose(kept, [[0.0, 0.5, 0.5, 0.0], [0.0, 0.2, 0.0, 0.0]])
    np.testing.assert_array_equal(strongest_terms(X, 1).toarray()[0], [0.0, 0.5, 0.0, 0.0])


@pytest.mark.parametrize("signs", ["positive", "with zeros and negatives"])
def test_strongest_terms_are_each_rows_largest_values_ties_to_the_lower_column(signs):
    rng = np.random.default_rng(19)
    values = rng.integers(1, 5, size=(30, 12)).astype(np.float32) / 4  # many ties
    values[rng.random(values.shape) < 0.4] = 0
    X = sp.csr_matrix(values)
    if signs != "positive":  # stored zeros and negative entries: the general way
        X.data[::5] *= -1
        X.data[::7] = 0
    for n in (1, 3, 5, 12):
        kept = strongest_terms(X, n)
        for row in range(X.shape[0]):
            start, stop = X.indptr[row], X.indptr[row + 1]
            order = sorted(range(start, stop), key=lambda i: (-X.data[i], X.indices[i]))[:n]
            expected = sorted(X.indices[order].tolist())
            assert kept[row].indices.tolist() == expected
            assert kept[row].data.tolist() == X[row, expected].toarray().ravel().tolist()
        assert kept.indptr.dtype == X.indptr.dtype


def test_strongest_terms_in_blocks_of_rows_are_those_of_all_rows_at_once(monkeypatch):
    X = random_rows(50, 30, 0.5, seed=12)
    X = sp.csr_matrix(sp.diags(np.float32(np.arange(50) != 7)) @ X)  # row 7 empty
    X.eliminate_zeros()
    kept = strongest_terms(X, 4)
    assert (np.diff(kept.indptr) == np.minimum(np.diff(X.indptr), 4)).all()
    dense = X.toarray()
    for row, found in zip(dense, kept.toarray(), strict=True):
        largest = np.sort(row)[::-1][:4]
        np.testing.assert_array_equal(np.sort(found[found > 0])[::-1], largest[largest > 0])
    calls = []
    block = neighbors._strongest_in
    monkeypatch.setattr(neighbors, "STRONG_ROWS", 16)
    monkeypatch.setattr(
        neighbors,
        "_strongest_in",
        lambda rows, *more: calls.append(rows.shape[0]) or block(rows, *more),
    )
    blocked = strongest_terms(X, 4)
    assert calls == [16, 16, 16, 2]
    assert blocked.shape == kept.shape and blocked.indptr.tolist() == kept.indptr.tolist()
    np.testing.assert_array_equal(blocked.indices, kept.indices)
    np.testing.assert_array_equal(blocked.data, kept.data)


def test_rescore_pairs_gives_the_dot_products_and_minus_inf_for_none():
    X, Y = random_rows(9, 12, 0.4, seed=6), random_rows(11, 12, 0.4, seed=7)
    found = np.array([[3, -1, 10]] * 9)
    exact = rescore_pairs(X, Y, found)
    dense = (X @ Y.T).toarray()
    np.testing.assert_allclose(exact[:, [0, 2]], dense[:, [3, 10]], rtol=1e-6)
    assert np.isneginf(exact[:, 1]).all()


@pytest.mark.parametrize("rows_at_a_time", [1, 2, 8, "wide: 3 rows"])
def test_rescored_pairs_do_not_depend_on_the_rows_around_them_or_the_threads(
    monkeypatch, rows_at_a_time
):
    if rows_at_a_time == "wide: 3 rows":  # a feature space too wide for 8 rows' buffer
        monkeypatch.setattr(neighbors, "RESCORE_BUFFER", 3 * 30 + 29)
        rows_at_a_time = 8
    X, Y = random_rows(40, 30, 0.3, seed=16), random_rows(25, 30, 0.3, seed=17)
    Y = sp.csr_matrix(sp.diags(np.float32(np.arange(25) != 4)) @ Y)  # row 4 empty
    Y.eliminate_zeros()
    found = np.random.default_rng(18).integers(-1, 25, size=(40, 7))
    monkeypatch.setattr(neighbors, "RESCORE_ROWS", 1)
    alone = rescore_pairs(X, Y, found)
    monkeypatch.setattr(neighbors, "RESCORE_ROWS", rows_at_a_time)
    for threads in (1, 2):
        np.testing.assert_array_equal(rescore_pairs(X, Y, found, threads), alone)
    dense = (X @ Y.T).toarray()
    valid = found >= 0
    expected = dense[np.nonzero(valid)[0], found[valid]]
    np.testing.assert_allclose(alone[valid], expected, rtol=1e-5, atol=1e-7)
    assert (alone[found == 4] == 0).all()  # an empty row scores 0, not "none"
    assert np.isneginf(alone[~valid]).all()


@pytest.mark.parametrize("wide", [False, True])
def test_rescore_pairs_reads_only_the_rows_that_have_pairs(monkeypatch, wide):
    if wide:
        monkeypatch.setattr(neighbors, "RESCORE_BUFFER", 1)
    X, Y = random_rows(50, 20, 0.3, seed=21), random_rows(30, 20, 0.3, seed=22)
    found = np.full((50, 4), -1)
    found[[3, 17, 40], :2] = [[5, 9], [0, 29], [12, -1]]
    spread = []
    step = neighbors._rescore_rows
    monkeypatch.setattr(
        neighbors, "_rescore_rows", lambda X, *more: spread.append(X.shape[0]) or step(X, *more)
    )
    exact = rescore_pairs(X, Y, found, 2)
    assert sum(spread) == 3  # the night's 35,915 rows with 951 pairs: 0.32 s, now 0.01 s
    dense = (X @ Y.T).toarray()
    valid = found >= 0
    np.testing.assert_allclose(exact[valid], dense[np.nonzero(valid)[0], found[valid]], rtol=1e-5)
    assert np.isneginf(exact[~valid]).all()
    assert np.isneginf(rescore_pairs(X, Y, np.full((50, 4), -1))).all()


def test_rescore_pairs_sums_a_query_row_given_with_repeated_columns():
    X = sp.csr_matrix((np.float32([0.5, 0.25, 1.0]), [2, 2, 0], [0, 3]), shape=(1, 3))
    Y = sp.csr_matrix(np.float32([[1.0, 0.0, 2.0]]))
    assert rescore_pairs(X, Y, np.array([[0]])).tolist() == [[2.5]]


def pairs_over_a_common_term(n: int) -> sp.csr_matrix:
    """Rows 2i and 2i + 1 share a rare term; every row holds term 0, a little more lightly."""
    rows = np.repeat(np.arange(n), 2)
    columns = np.stack([np.zeros(n, dtype=np.int64), 1 + np.arange(n) // 2], axis=1).ravel()
    weights = np.tile(np.float32([0.6, 0.8]), n)
    return sp.csr_matrix((weights, (rows, columns)), shape=(n, 1 + n // 2))


def test_a_term_strong_in_too_many_targets_finds_no_candidates_but_counts_in_scores(monkeypatch):
    monkeypatch.setattr(neighbors, "COMMON_MIN_TARGETS", 10)
    X = pairs_over_a_common_term(40)
    indices, scores = top_k_cosine_fast(X, k=3, common_share=0.5)
    # the rare term alone finds each row and its partner; term 0 would have found every row
    assert indices[:, 2].tolist() == [-1] * 40
    assert indices[:, :2].tolist() == [[i & ~1, i | 1] for i in range(40)]  # ties by index
    np.testing.assert_allclose(scores[:, :2], 1.0, rtol=1e-6)  # 0.6 * 0.6 + 0.8 * 0.8
    every_term = top_k_cosine_fast(X, k=3, common_share=1.0)
    assert (every_term[0] >= 0).all()
    np.testing.assert_allclose(every_term[1][:, 2], 0.36, rtol=1e-6)


def test_a_term_is_common_past_both_the_share_and_the_least_number_of_targets(monkeypatch):
    X = pairs_over_a_common_term(40)  # term 0 in all 40 rows, each other term in 2
    monkeypatch.setattr(neighbors, "COMMON_MIN_TARGETS", 39)
    assert neighbors.common_terms(X, 0.5).tolist() == [True] + [False] * 20
    assert not neighbors.common_terms(X, 1.0).any()
    wider = sp.hstack([X, sp.csr_matrix((40, 3), dtype=np.float32)], format="csr")
    assert neighbors.common_terms(wider, 0.5).tolist() == [True] + [False] * 23  # one per column
    monkeypatch.setattr(neighbors, "COMMON_MIN_TARGETS", 40)
    assert not neighbors.common_terms(X, 0.01).any()
    np.testing.assert_array_equal(top_k_cosine_fast(X, k=3)[0], top_k_cosine(X, k=3)[0])


def test_common_terms_are_counted_among_the_targets_only(monkeypatch):
    monkeypatch.setattr(neighbors, "COMMON_MIN_TARGETS", 10)
    Y = pairs_over_a_common_term(40)
    X = sp.csr_matrix(np.float32([[1.0] + [0.0] * 20]))  # term 0 alone: common among Y
    indices, _ = top_k_cosine_fast(X, Y, k=2, common_share=0.5)
    assert indices.tolist() == [[-1, -1]]
    assert (top_k_cosine_fast(Y, X, k=1, common_share=0.5)[0] == 0).all()  # one target: rare


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 0},
        {"n_terms": 0},
        {"block_size": 0},
        {"k": 5, "n_candidates": 4},
        {"common_share": 0},
        {"common_share": 1.5},
        {"max_holders": 0},
        {"rarity_power": -0.5},
        {"rarity_power": float("nan")},
        {"rarity_power": float("inf")},
    ],
)
def test_bad_parameters_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        top_k_cosine_fast(random_rows(5, 5, 0.5, seed=8), **{"k": 2, **bad})


# 40 rows in 4 parts of 10 (one thread), each spread in blocks of as many rows as fit,
# at most RESCORE_ROWS (4 here)
@pytest.mark.parametrize(
    ("buffer", "blocks"), [(10**6, [4, 4, 2] * 4), (3 * 20, [3, 3, 3, 1] * 4), (1, [1] * 40)]
)
def test_rescore_pairs_spreads_as_many_rows_as_the_buffer_holds(monkeypatch, buffer, blocks):
    monkeypatch.setattr(neighbors, "RESCORE_BUFFER", buffer)
    monkeypatch.setattr(neighbors, "RESCORE_ROWS", 4)
    X, Y = random_rows(40, 20, 0.3, seed=23), random_rows(30, 20, 0.3, seed=24)
    found = np.random.default_rng(25).integers(0, 30, size=(40, 3))
    spread = []
    step = neighbors._rescore_rows
    monkeypatch.setattr(
        neighbors, "_rescore_rows", lambda X, *more: spread.append(X.shape[0]) or step(X, *more)
    )
    exact = rescore_pairs(X, Y, found)
    assert spread == blocks
    assert exact.dtype == np.float32
    dense = (X @ Y.T).toarray()
    np.testing.assert_allclose(exact, np.take_along_axis(dense, found, 1), rtol=1e-5)


def test_rescore_pairs_sums_repeated_columns_without_changing_the_callers_matrix():
    X = sp.csr_matrix(
        (np.float32([0.5, 0.25, 1.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 3)
    )
    Y = sp.csr_matrix(np.float32([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]]))
    exact = rescore_pairs(X, Y, np.array([[0, 1], [1, -1]]))
    assert exact.tolist() == [[1.5, 0.0], [3.0, -np.inf]]
    assert X.nnz == 3 and X.indices.tolist() == [1, 1, 0]  # still the caller's entries


def test_heaviest_holders_keeps_each_long_terms_largest_entries_ties_to_the_lower_target():
    terms = sp.csr_matrix(
        np.float32(
            [
                [0.5, 0.9, 0.5, 0.0, 0.7],  # 4 holders: 0.9, 0.7, then 0.5 of the lower target
                [0.0, 0.3, 0.0, 0.2, 0.0],  # within the limit: as it is
                [0.1, 0.1, 0.1, 0.1, 0.1],  # all tied: the lower targets
            ]
        )
    )
    kept = heaviest_holders(terms, 3)
    assert (
        kept.toarray().tolist()
        == np.float32(
            [[0.5, 0.9, 0.0, 0.0, 0.7], [0.0, 0.3, 0.0, 0.2, 0.0], [0.1, 0.1, 0.1, 0.0, 0.0]]
        ).tolist()
    )
    assert heaviest_holders(terms, 5) is terms


def test_a_term_finds_candidates_only_among_the_targets_it_weighs_most_in():
    """Term 0 is held by six pages; capped at three holders, it leads the first page only to
    the pages it weighs most in (the page's other terms are its own)."""
    weights = [0.9, 0.8, 0.7, 0.6, 0.5, 0.1]
    X = sp.hstack(
        [sp.csr_matrix(np.float32(weights)[:, None]), sp.identity(6, np.float32, "csr")], "csr"
    )
    capped, scores = top_k_cosine_fast(X, k=5, max_holders=3)
    assert capped[0].tolist() == [0, 1, 2, -1, -1]
    np.testing.assert_allclose(scores[0, :3], [1.81, 0.72, 0.63], rtol=1e-6)
    assert capped[5].tolist() == [5, 0, 1, 2, -1]  # term 0 leads every query to those three
    whole, _ = top_k_cosine_fast(X, k=5, max_holders=None)
    assert whole[0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(whole, top_k_cosine(X, k=5)[0])


def test_by_default_a_term_reaches_at_most_max_holders_targets():
    n = neighbors.MAX_HOLDERS + 100
    weights = np.linspace(1.0, 0.1, n, dtype=np.float32)[:, None]
    X = sp.hstack([sp.csr_matrix(weights), sp.identity(n, np.float32, "csr")], "csr")
    reach = np.diff(neighbors.FastSearch(X, k=1).strong_targets_t.indptr)
    assert reach[0] == neighbors.MAX_HOLDERS == 2000
    assert (reach[1:] == 1).all()


def test_strong_terms_are_picked_by_weight_times_the_idf_to_the_rarity_power():
    """Row 0 holds a term of all 20 rows (weight 0.8) and one it shares with row 19 only
    (0.6).  By weight alone its one strong term is the common one, whose candidates tie
    and go to the lower rows; times the square root of the idf (1 against 1.72), the
    rare one, which finds row 19."""
    n = 20
    common = sp.csr_matrix(np.full((n, 1), 0.8, dtype=np.float32))
    rare = sp.csr_matrix(([0.6, 0.6], ([0, n - 1], [0, 0])), shape=(n, 1), dtype=np.float32)
    X = sp.hstack([common, rare, sp.identity(n, np.float32, "csr") * 0.1], "csr")
    found, scores = top_k_cosine_fast(X, k=2, n_terms=1, n_candidates=2)
    assert found[0].tolist() == [0, n - 1]
    np.testing.assert_allclose(scores[0], [1.01, 1.0], rtol=1e-6)  # true dot products
    by_weight, _ = top_k_cosine_fast(X, k=2, n_terms=1, n_candidates=2, rarity_power=0)
    assert by_weight[0].tolist() == [0, 1]


def test_term_rarity_is_the_idf_of_the_term_weights_over_the_targets():
    from recommender.features import TermWeighting

    counts = sp.csr_matrix(np.float32([[1, 0, 2, 0], [3, 1, 0, 0], [1, 0, 0, 4]]))
    idf = TermWeighting(idf_power=1).fit(counts).idf_
    np.testing.assert_allclose(neighbors.term_rarity(counts, 1.0), idf, rtol=1e-6)
    np.testing.assert_allclose(neighbors.term_rarity(counts, 0.5), np.sqrt(idf), rtol=1e-6)
    assert neighbors.term_rarity(counts, 0) is None
    wider = sp.hstack([counts, sp.csr_matrix((3, 1), dtype=np.float32)], "csr")
    assert neighbors.term_rarity(wider, 0.5)[-1] == np.float32(1e-6)  # held by no target
    with pytest.raises(ValueError, match="overflows"):
        neighbors.term_rarity(counts, 200.0)
    # one row holding a column five times: counted as five rows, it would be below 1 (NaN)
    repeated = sp.csr_matrix((np.ones(5, np.float32), np.zeros(5, int), [0, 5]), shape=(1, 1))
    assert neighbors.term_rarity(repeated, 0.5).tolist() == [1.0]


def test_a_query_term_no_target_holds_is_picked_last():
    """The query's rarest term is one no target holds: it cannot find candidates, so the
    one strong term is the one shared with target 1."""
    X = sp.csr_matrix(np.float32([[0.5, 0.6, 0.0]]))
    Y = sp.csr_matrix(np.float32([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    found, _ = top_k_cosine_fast(X, Y, k=1, n_terms=1, n_candidates=1)
    assert found.tolist() == [[1]]


def test_strongest_terms_ranked_by_column_weights_keep_their_own_values():
    X = sp.csr_matrix(np.float32([[0.9, 0.5, 0.4, 0.0], [0.2, 0.0, 0.1, 0.3]]))
    weights = np.float32([1.0, 1.0, 3.0, 2.0])
    kept = strongest_terms(X, 2, weights).toarray()
    np.testing.assert_array_equal(kept, np.float32([[0.9, 0.0, 0.4, 0.0], [0.0, 0.0, 0.1, 0.3]]))
    kept64 = strongest_terms(X, 2, weights.astype(np.float64)).toarray()
    np.testing.assert_array_equal(kept64, kept)
    X.data[-1] = -0.3  # a negative entry: the general way ranks by the products too
    kept = strongest_terms(X, 2, weights).toarray()
    np.testing.assert_array_equal(kept, np.float32([[0.9, 0.0, 0.4, 0.0], [0.2, 0.0, 0.1, 0.0]]))


def test_fast_search_by_default_keeps_40_terms_a_row_and_max_2k_80_candidates():
    X = sp.csr_matrix(np.float32(np.arange(1, 61).reshape(1, 60) % 7 + 1))  # 60 terms
    X = normalize(sp.vstack([X, random_rows(9, 60, 0.5, seed=30)], format="csr"))
    assert neighbors.FastSearch(X, k=5).width == 80
    assert neighbors.FastSearch(X, k=50).width == 100
    assert neighbors.FastSearch(X, k=5, n_candidates=7).width == 7
    assert np.diff(neighbors.FastSearch(X, k=1).strong_queries.indptr)[0] == 40


def test_fast_search_takes_more_than_80_results_a_query():
    X = random_rows(120, 30, 0.3, seed=31)
    indices, _ = top_k_cosine_fast(X, k=100)
    np.testing.assert_array_equal(indices, top_k_cosine(X, k=100)[0])


@pytest.mark.parametrize("name", ["k", "n_terms", "max_holders"])
def test_a_count_below_one_is_refused_by_its_name(name):
    X = random_rows(5, 5, 0.5, seed=8)
    with pytest.raises(ValueError, match=f"^{name} must be a positive integer, got 0$"):
        neighbors.FastSearch(X, **{"k": 2, name: 0})


def test_other_targets_strong_terms_are_picked_by_weight_times_rarity_too():
    """As for one matrix: row 0's one strong term is the rare term it shares with row 19,
    among the targets too, though the targets are another matrix of the same rows."""
    n = 20
    common = sp.csr_matrix(np.full((n, 1), 0.8, dtype=np.float32))
    rare = sp.csr_matrix(([0.6, 0.6], ([0, n - 1], [0, 0])), shape=(n, 1), dtype=np.float32)
    X = sp.hstack([common, rare, sp.identity(n, np.float32, "csr") * 0.1], "csr")
    found, _ = top_k_cosine_fast(X, X.copy(), k=2, n_terms=1, n_candidates=2)
    assert found[0].tolist() == [0, n - 1]
    same, _ = top_k_cosine_fast(X, k=2, n_terms=1, n_candidates=2)
    np.testing.assert_array_equal(found, same)


def test_common_terms_leave_other_targets_strong_terms_their_own(monkeypatch):
    monkeypatch.setattr(neighbors, "COMMON_MIN_TARGETS", 10)
    Y = pairs_over_a_common_term(40)
    X = Y[[10, 20, 30]]  # three queries: their partners are targets 11, 21 and 31
    indices, scores = top_k_cosine_fast(X, Y, k=2, common_share=0.5)
    assert indices.tolist() == [[10, 11], [20, 21], [30, 31]]
    np.testing.assert_allclose(scores, 1.0, rtol=1e-6)
