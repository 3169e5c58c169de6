"""Spreading links: in-link caps, filling short rows, orphan rescue, on arrays made by hand."""

import logging

import numpy as np
import pytest

from recommender.coverage import group_ranks, spread_links


def test_spread_links_caps_in_degree_and_keeps_the_most_similar_proposers():
    # pages 1..4 all want page 0 first; page 0 may take only 2 of them
    candidates = np.array([[1, 2, -1], [0, 2, 3], [0, 3, 1], [0, 1, 2], [0, 3, 2]])
    scores = np.array(
        [[0.5, 0.4, 0], [0.9, 0.3, 0.2], [0.8, 0.3, 0.1], [0.7, 0.4, 0.3], [0.6, 0.5, 0.2]],
        dtype=np.float32,
    )
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=2, tolerance=0.0, is_target=np.ones(5, bool)
    )
    picked = candidates[np.arange(5), chosen[:, 0]]
    assert picked.tolist() == [1, 0, 0, 1, 3]  # 1 and 2 are most similar to 0; 3 and 4 move on


def test_spread_links_fills_from_full_pages_when_nothing_else_is_left():
    candidates = np.array([[1, -1], [0, -1], [0, -1]])
    scores = np.array([[0.5, 0], [0.9, 0], [0.8, 0]], dtype=np.float32)
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=1, tolerance=0.0, is_target=np.ones(3, bool)
    )
    assert (chosen[:, 0] == 0).all()  # page 2 still gets its only candidate


def test_spread_links_rescues_an_orphan_at_the_cheapest_place():
    # page 3 is nobody's first choice; page 1 loses least by swapping to it
    candidates = np.array([[1, 3, 2], [0, 3, 2], [0, 3, 1], [0, 1, 2]])
    scores = np.array(
        [[0.9, 0.5, 0.1], [0.9, 0.8, 0.1], [0.9, 0.3, 0.2], [0.9, 0.5, 0.2]], dtype=np.float32
    )
    kwargs = {"n_links": 1, "max_in_links": 10, "is_target": np.ones(4, bool)}
    chosen = spread_links(candidates, scores, tolerance=0.3, **kwargs)
    picked = candidates[np.arange(4), chosen[:, 0]]
    assert picked.tolist() == [1, 3, 0, 0]
    # a tolerance too small for the loss (0.8 < 0.9 * 0.95) leaves the orphan alone
    chosen = spread_links(candidates, scores, tolerance=0.05, **kwargs)
    assert candidates[np.arange(4), chosen[:, 0]].tolist() == [1, 0, 0, 0]


def test_spread_links_never_orphans_the_dropped_page():
    # page 2 is linked only from page 0; swapping it out for orphan 3 is not allowed
    candidates = np.array([[2, 3, -1], [0, 3, -1], [0, 1, -1], [0, 1, -1]])
    scores = np.array(
        [[0.9, 0.85, 0], [0.9, 0.1, 0], [0.9, 0.1, 0], [0.9, 0.1, 0]], dtype=np.float32
    )
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=10, tolerance=0.5, is_target=np.ones(4, bool)
    )
    assert candidates[np.arange(4), chosen[:, 0]].tolist() == [2, 0, 0, 0]


def in_degrees(candidates, chosen):
    rows, ranks = np.nonzero(chosen >= 0)
    targets = candidates[rows, chosen[rows, ranks]]
    return np.bincount(targets, minlength=len(candidates))


def test_orphan_rescue_leaves_no_page_unlinked_where_swaps_are_cheap():
    # every page's first choice is page 0 (page 0's is page 1); each of pages 2..5
    # has an orphan-to-be as its second candidate, nearly as good
    candidates = np.array([[1, 2], [0, 3], [0, 4], [0, 5], [0, 2], [0, 3]])
    scores = np.array(
        [[0.9, 0.8], [0.9, 0.85], [0.9, 0.85], [0.9, 0.85], [0.9, 0.85], [0.9, 0.8]],
        dtype=np.float32,
    )
    kwargs = {"n_links": 1, "max_in_links": 10, "is_target": np.ones(6, bool)}
    chosen = spread_links(candidates, scores, tolerance=0.2, **kwargs)
    degrees = in_degrees(candidates, chosen)
    assert (degrees == 0).sum() == 0  # 4 orphans (2, 3, 4, 5) without the rescue
    assert (chosen[:, 0] >= 0).all()
    # with no tolerance for any loss, nothing can be swapped
    chosen = spread_links(candidates, scores, tolerance=0.0, **kwargs)
    assert in_degrees(candidates, chosen).tolist() == [5, 1, 0, 0, 0, 0]


def test_orphan_rescue_links_only_pages_that_may_be_linked_to():
    candidates = np.array([[1, 2], [0, 2], [0, 1]])
    scores = np.array([[0.9, 0.8], [0.9, 0.8], [0.9, 0.8]], dtype=np.float32)
    kwargs = {"n_links": 1, "max_in_links": 10, "tolerance": 0.5}
    everyone = spread_links(candidates, scores, is_target=np.ones(3, bool), **kwargs)
    assert in_degrees(candidates, everyone).tolist() == [1, 1, 1]
    not_two = spread_links(candidates, scores, is_target=np.array([True, True, False]), **kwargs)
    assert in_degrees(candidates, not_two).tolist() == [2, 1, 0]


def test_orphan_rescue_stops_after_max_rounds_and_says_so(caplog):
    candidates = np.array([[1, 2], [0, 3], [0, 4], [0, 5], [0, 2], [0, 3]])
    scores = np.array(
        [[0.9, 0.8], [0.9, 0.85], [0.9, 0.85], [0.9, 0.85], [0.9, 0.85], [0.9, 0.8]],
        dtype=np.float32,
    )
    kwargs = {"n_links": 1, "max_in_links": 10, "is_target": np.ones(6, bool), "tolerance": 0.2}
    with caplog.at_level(logging.WARNING, logger="recommender.coverage"):
        none = spread_links(candidates, scores, max_rounds=0, **kwargs)
    assert (in_degrees(candidates, none) == 0).sum() == 4
    assert caplog.messages == ["orphan rescue stopped after 0 rounds with 4 pages still unlinked"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recommender.coverage"):
        one = spread_links(candidates, scores, max_rounds=1, **kwargs)
    assert (in_degrees(candidates, one) == 0).sum() == 0  # all four in one round
    assert caplog.messages == []


def picks(candidates, chosen):
    """The chosen targets per row, -1 for none."""
    return np.where(chosen >= 0, np.take_along_axis(candidates, np.maximum(chosen, 0), 1), -1)


def test_capped_proposals_with_two_links_a_page_and_ties_broken_by_the_lower_source():
    candidates = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    scores = np.array(
        [[0.9, 0.8, 0.7], [0.9, 0.5, 0.4], [0.8, 0.6, 0.5], [0.7, 0.6, 0.5]], dtype=np.float32
    )
    chosen = spread_links(
        candidates, scores, n_links=2, max_in_links=2, tolerance=0.0, is_target=np.ones(4, bool)
    )
    # page 0 keeps its two most similar proposers (1, 2); page 1 keeps 0, then 2 over 3
    # (both 0.6); page 3 is refused everywhere, so takes its two best anyway
    assert chosen.tolist() == [[0, 1], [0, 1], [0, 1], [0, 1]]
    assert picks(candidates, chosen).tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]


def test_rescue_takes_the_place_of_the_weakest_link():
    candidates = np.array([[1, 2, 4], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]])
    scores = np.array(
        [[0.9, 0.8, 0.7], [0.9, 0.8, 0.1], [0.9, 0.8, 0.1], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7]],
        dtype=np.float32,
    )
    chosen = spread_links(
        candidates, scores, n_links=2, max_in_links=10, tolerance=0.3, is_target=np.ones(5, bool)
    )
    # orphan 4 replaces page 0's weaker link (2, 0.8), not its stronger (1, 0.9);
    # orphan 3 is offered only at 0.1, too great a loss
    assert chosen.tolist() == [[0, 2], [0, 1], [0, 1], [0, 1], [0, 1]]
    assert picks(candidates, chosen)[0].tolist() == [1, 4]


@pytest.mark.parametrize(("tolerance", "swapped"), [(0.5, True), (0.49, False)])
def test_rescue_accepts_a_loss_of_exactly_the_tolerance(tolerance, swapped):
    # page 1 may swap page 0 (0.8) for orphan 2 (0.4): a loss of exactly half
    candidates = np.array([[1, 2], [0, 2], [0, 1]])
    scores = np.array([[0.8, 0.4], [0.8, 0.4], [0.8, 0.4]], dtype=np.float32)
    chosen = spread_links(
        candidates,
        scores,
        n_links=1,
        max_in_links=10,
        tolerance=tolerance,
        is_target=np.ones(3, bool),
    )
    assert picks(candidates, chosen)[:, 0].tolist() == ([1, 2, 0] if swapped else [1, 0, 0])


def test_rescue_never_drops_a_pages_last_link_and_drops_the_cheapest_first():
    # pages 1, 2 and 3 link to page 0, and each could swap it for its own orphan
    # (4, 5, 6) at a loss of 0.05, 0.1 and 0.15; page 0 must keep one of them
    candidates = np.array([[1, -1], [0, 4], [0, 5], [0, 6], [1, -1], [1, -1], [1, -1]])
    scores = np.array(
        [[0.9, 0], [0.9, 0.85], [0.9, 0.8], [0.9, 0.75], [0.9, 0], [0.9, 0], [0.9, 0]],
        dtype=np.float32,
    )
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=10, tolerance=0.3, is_target=np.ones(7, bool)
    )
    assert picks(candidates, chosen)[:, 0].tolist() == [1, 4, 5, 0, 1, 1, 1]


def test_rescue_picks_the_least_costly_source_then_one_orphan_per_source():
    # orphan 3 is offered by page 1 (loss 0.2) and page 2 (loss 0.05); page 2 also
    # offers orphan 4 (loss 0.1) but makes one swap, its cheapest: 3 (page 0, whom both
    # would drop, links to page 5)
    candidates = np.array(
        [[5, -1, -1], [0, 3, -1], [0, 3, 4], [0, -1, -1], [0, -1, -1], [0, -1, -1]]
    )
    scores = np.array(
        [[0.9, 0, 0], [0.9, 0.7, 0], [0.9, 0.85, 0.8], [0.9, 0, 0], [0.9, 0, 0], [0.9, 0, 0]],
        dtype=np.float32,
    )
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=10, tolerance=0.3, is_target=np.ones(6, bool)
    )
    assert picks(candidates, chosen)[:, 0].tolist() == [5, 0, 3, 0, 0, 0]


def test_chosen_places_are_ascending_and_padded():
    candidates = np.array([[1, 2, -1], [0, -1, -1], [-1, -1, -1]])
    scores = np.array([[0.9, 0.8, 0], [0.9, 0, 0], [0, 0, 0]], dtype=np.float32)
    chosen = spread_links(
        candidates, scores, n_links=3, max_in_links=10, tolerance=0.3, is_target=np.ones(3, bool)
    )
    assert chosen.tolist() == [[0, 1, -1], [0, -1, -1], [-1, -1, -1]]
    assert chosen.dtype == np.int64


def test_capped_proposals_go_on_to_later_candidates_in_later_rounds():
    candidates = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 4], [0, 1, 2], [0, 1, 2]])
    scores = np.array(
        [[0.9, 0.8, 0.7], [0.9, 0.85, 0.1], [0.5, 0.4, 0.3], [0.2, 0.1, 0.05], [0.15, 0.1, 0.05]],
        dtype=np.float32,
    )
    chosen = spread_links(
        candidates, scores, n_links=2, max_in_links=1, tolerance=0.0, is_target=np.ones(5, bool)
    )
    # page 0 gets 1 but not 2 (page 2 prefers page 1) in the first round, then 3 in the
    # second; page 2 is refused by 0 and 1, then proposes its last candidate, 4
    assert picks(candidates, chosen).tolist() == [[1, 3], [0, 2], [0, 4], [0, 1], [0, 1]]


def test_group_ranks_counts_places_within_runs():
    assert group_ranks(np.array([3, 3, 5, 7, 7, 7])).tolist() == [0, 1, 0, 0, 1, 2]
    assert group_ranks(np.array([1, 2, 2, 2, 9])).tolist() == [0, 0, 1, 2, 0]
    assert group_ranks(np.array([4])).tolist() == [0]
    empty = group_ranks(np.array([], dtype=np.int64))
    assert empty.tolist() == [] and empty.dtype == np.int64


def test_links_added_to_fill_short_rows_count_for_the_rescue():
    # page 0 takes 1 only; pages 2 and 3 are refused by page 0 (full), then take it anyway,
    # so page 0 has three in-links and page 1 may drop it for orphan 3
    candidates = np.array([[1, -1], [0, 3], [0, -1], [0, -1]])
    scores = np.array([[0.9, 0], [0.9, 0.85], [0.8, 0], [0.7, 0]], dtype=np.float32)
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=1, tolerance=0.3, is_target=np.ones(4, bool)
    )
    assert picks(candidates, chosen)[:, 0].tolist() == [1, 3, 0, 0]


def test_a_rescued_page_is_not_swapped_out_again_for_another_orphan():
    # page 0 may swap page 1 (linked from 0 and 4) for orphan 2 or orphan 3; it takes 2,
    # the cheaper, and must then keep it: 2 is linked from nowhere else
    candidates = np.array([[1, 2, 3], [0, -1, -1], [0, -1, -1], [0, -1, -1], [1, -1, -1]])
    scores = np.array(
        [[0.9, 0.85, 0.8], [0.9, 0, 0], [0.9, 0, 0], [0.9, 0, 0], [0.9, 0, 0]], dtype=np.float32
    )
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=10, tolerance=0.3, is_target=np.ones(5, bool)
    )
    assert picks(candidates, chosen)[:, 0].tolist() == [2, 0, 0, 0, 1]


def test_the_first_page_can_be_rescued():
    # page 0 is the orphan; page 1 drops its link to 2 (still linked from 3) for it
    candidates = np.array([[1, -1], [2, 0], [1, -1], [2, -1]])
    scores = np.array([[0.9, 0], [0.9, 0.8], [0.9, 0], [0.9, 0]], dtype=np.float32)
    chosen = spread_links(
        candidates, scores, n_links=1, max_in_links=10, tolerance=0.3, is_target=np.ones(4, bool)
    )
    assert picks(candidates, chosen)[:, 0].tolist() == [1, 0, 1, 2]


def orphan_five():
    """Page 5 is nobody's first choice; page 1 loses least (0.1) by giving it its link,
    page 0 more (0.4); every other page keeps one in-link.  Candidates, scores."""
    candidates = np.array([[1, 5], [0, 5], [3, 0], [2, 1], [1, 0], [4, 0], [0, 1]])
    scores = np.array([[0.9, 0.5], [0.9, 0.8]] + [[0.9, 0.1]] * 5, dtype=np.float32)
    return candidates, scores


def test_an_orphan_is_rescued_again_by_the_page_that_links_it_now():
    # page 0 links page 5 now (a rescue of the last run): page 0 makes the swap again
    candidates, scores = orphan_five()
    kwargs = {"n_links": 1, "max_in_links": 10, "is_target": np.ones(7, bool)}

    def picked(tolerance, held=None):
        chosen = spread_links(candidates, scores, tolerance=tolerance, held_now=held, **kwargs)
        return candidates[np.arange(7), chosen[:, 0]].tolist()

    assert picked(0.5) == [1, 5, 3, 2, 1, 4, 0]
    held = np.zeros(candidates.shape, dtype=bool)
    held[0, 1] = True
    assert picked(0.5, held) == [5, 0, 3, 2, 1, 4, 0]
    # a page that links the orphan now but would lose too much by the swap does not make it
    assert picked(0.3, held) == [1, 5, 3, 2, 1, 4, 0]


def test_the_rescue_weighs_its_own_scores_where_they_are_given():
    # by the ranking, page 1 loses least by giving orphan 5 its link; by the rescue's
    # scores (similarity, where the ranking favoured page 1's current link), page 0
    candidates, ranking = orphan_five()
    similarity = ranking.copy()
    similarity[0, 1], similarity[1, 1] = 0.8, 0.1
    kwargs = {"n_links": 1, "max_in_links": 10, "is_target": np.ones(7, bool), "tolerance": 0.3}
    by_ranking = spread_links(candidates, ranking, **kwargs)
    assert candidates[np.arange(7), by_ranking[:, 0]].tolist()[:2] == [1, 5]
    chosen = spread_links(candidates, ranking, rescue_scores=similarity, **kwargs)
    assert candidates[np.arange(7), chosen[:, 0]].tolist()[:2] == [5, 0]


def test_an_orphan_left_by_one_round_is_rescued_in_the_next():
    # orphans 3 and 4 both cost page 1 least; page 1 makes one swap, to 3 (the cheaper);
    # 4 is left for the second round, where page 2 (dropping page 0, linked from four
    # pages) takes it: each round counts the in-links the swaps before it left
    candidates = np.array(
        [[5, -1, -1], [0, 3, 4], [0, 4, -1], [0, -1, -1], [0, -1, -1], [0, -1, -1]]
    )
    scores = np.array(
        [[0.9, 0, 0], [0.9, 0.85, 0.8], [0.9, 0.7, 0], [0.9, 0, 0], [0.9, 0, 0], [0.9, 0, 0]],
        dtype=np.float32,
    )
    kwargs = {"n_links": 1, "max_in_links": 10, "tolerance": 0.3, "is_target": np.ones(6, bool)}
    one_round = spread_links(candidates, scores, max_rounds=1, **kwargs)
    assert picks(candidates, one_round)[:, 0].tolist() == [5, 3, 0, 0, 0, 0]
    chosen = spread_links(candidates, scores, **kwargs)
    assert picks(candidates, chosen)[:, 0].tolist() == [5, 3, 4, 0, 0, 0]
