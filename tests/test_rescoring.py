import numpy as np
import pytest

from recommender.rescoring import blend_scores


def test_blend_is_the_weighted_mean_of_both_cosines_and_rows_are_resorted():
    candidates = np.array([[1, 2, -1], [2, 0, -1], [0, 1, -1]])
    scores = np.array([[0.6, 0.2, 0.0], [0.9, 0.6, 0.0], [0.2, 0.9, 0.0]])
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # not normalised
    found, blended = blend_scores(candidates, scores, vectors, 0.25, block_size=2)
    # page 0: to 1 -> 0.75 * 0.6 + 0.25 * 0 = 0.45; to 2 -> 0.75 * 0.2 + 0.25 * 1 = 0.4
    assert found.tolist() == [[1, 2, -1], [2, 0, -1], [1, 0, -1]]
    np.testing.assert_allclose(blended[0], [0.45, 0.4, 0.0], rtol=1e-6)
    np.testing.assert_allclose(blended[1], [0.675, 0.45, 0.0], rtol=1e-6)
    np.testing.assert_allclose(blended[2], [0.675, 0.4, 0.0], rtol=1e-6)


def test_ties_break_by_candidate_index_and_weight_zero_keeps_the_order():
    candidates = np.array([[3, 1, 2], [0, 2, 3], [3, 1, 0], [2, 1, 0]])
    scores = np.array([[0.5, 0.5, 0.4]] * 4)
    vectors = np.ones((4, 2))
    found, _ = blend_scores(candidates, scores, vectors, 0.0)
    assert found[0].tolist() == [1, 3, 2]
    found, _ = blend_scores(candidates, scores, np.zeros((4, 2)), 0.0)  # zero vectors are fine
    assert found[1].tolist() == [0, 2, 3]


def test_weight_out_of_range_is_refused():
    with pytest.raises(ValueError, match="weight must be a number from 0 to 1"):
        blend_scores(np.zeros((1, 1), int), np.zeros((1, 1)), np.ones((1, 2)), 1.5)
