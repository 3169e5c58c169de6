"""stability: a page keeps its current links unless a new candidate beats them by the margin."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender import Recommender, churn
from recommender.rules import EditorialRules, Never
from recommender.stability import add_candidates, current_links, held_now, rerank, second_ways

from .test_model import topic_pages, write_site

SOURCE = "/topics/cells-0"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    site = topic_pages()
    site[10]["no_index"] = True  # /topics/trade-4
    return write_site(tmp_path_factory.mktemp("site"), site)


def fit(pages, **params):
    # stability alone: without the discount of a pair's second way (see test_mutual_*)
    params = {"min_df": 1, "max_df": 1.0, "n_links": 4, "coverage": False, **params}
    params.setdefault("mutual_discount", 0.0)
    return Recommender(**params).fit(pages).related_


def holding(pages, urls, source=SOURCE):
    """The pages with ``source`` holding ``urls`` as its current links."""
    related = [urls if url == source else [] for url in pages.index]
    return pages.assign(related_urls=related)


def links_of(related, source=SOURCE):
    return related.loc[related["source_url"] == source, "target_url"].tolist()


def test_current_links_keep_the_pages_that_resolve_in_order(pages):
    held = holding(pages, ["/topics/stars-1", "/gone", "/topics/cells-2"])
    current = current_links(held)
    assert [held.index[i] for i in current[held.index.get_loc(SOURCE)] if i >= 0] == [
        "/topics/stars-1",
        "/topics/cells-2",
    ]
    assert (current[held.index != SOURCE] < 0).all()


def test_current_links_are_as_wide_as_the_most_links_a_page_holds_page_zero_too():
    pages = pd.DataFrame(
        {"related_urls": [[], ["/a", "/gone", "/c"], ["/a"]]}, index=["/a", "/b", "/c"]
    )
    assert current_links(pages).tolist() == [[-1, -1], [0, 2], [0, -1]]


@pytest.fixture(scope="module")
def ladder(pages):
    """The source's six best links, best first, with their scores."""
    best = fit(pages, n_links=6)
    best = best[best["source_url"] == SOURCE]
    return best["target_url"].tolist(), best["score"].tolist()


def test_a_current_link_stays_unless_beaten_by_the_margin(pages, ladder):
    targets, scores = ladder
    held = holding(pages, [*targets[:3], targets[4]])  # the fifth best instead of the fourth
    margin = scores[3] / scores[4] - 1
    assert links_of(fit(held)) == targets[:4]
    assert targets[4] in links_of(fit(held, stability=margin * 1.1))
    assert targets[3] not in links_of(fit(held, stability=margin * 1.1))
    assert links_of(fit(held, stability=margin * 0.9)) == targets[:4]


@pytest.mark.filterwarnings("ignore:.*raise n_candidates")
def test_a_current_link_beyond_the_candidates_is_still_weighed(pages, ladder):
    targets, scores = ladder
    held = holding(pages, [targets[5]])
    assert targets[5] in links_of(fit(held, n_candidates=4, stability=scores[0] / scores[5]))


@pytest.mark.parametrize(
    ("current", "params"),
    [
        ("/topics/cells-0", {}),  # itself
        ("/topics/trade-4", {}),  # no_index
        ("/topics/stars-1", {"rules": EditorialRules(nevers=(Never(SOURCE, "/topics/stars-*"),))}),
    ],
)
def test_a_current_link_the_rules_forbid_is_dropped(pages, current, params):
    related = fit(holding(pages, [current]), stability=100.0, **params)
    assert current not in links_of(related)
    assert len(links_of(related)) == 4


def test_stability_lowers_churn_when_pages_come_and_go(pages):
    removed = pages.index[[1, 8, 14]]

    def churn_after_put_back(stability):
        first = fit(pages.drop(index=removed), stability=stability, coverage=True)
        written = first.groupby("source_url")["target_url"].agg(list)
        current = written.reindex(pages.index).map(lambda u: u if isinstance(u, list) else [])
        second = fit(pages.assign(related_urls=current), stability=stability, coverage=True)
        assert set(removed) <= set(second["source_url"])
        return churn(first, second).set_index("metric")["value"]

    still, stable = churn_after_put_back(0.0), churn_after_put_back(0.5)
    assert stable["links_dropped"] < still["links_dropped"]
    assert stable["links_kept"] > still["links_kept"]
    assert stable["pages_changed"] <= still["pages_changed"]  # reorders count too


def test_stability_trial_reports_churn_and_the_pages_put_back(pages):
    from recommender.tuning import STABILITY_TRIAL_COLUMNS, stability_trial

    pairs = pd.DataFrame({"url_a": ["/topics/cells-0"], "url_b": ["/topics/cells-1"]})
    table = stability_trial(
        pages,
        [0.0, 0.5],
        n_removed=3,
        pairs=pairs,
        fixed_params={"min_df": 1, "max_df": 1.0, "n_links": 4, "mutual_discount": 0.0},
    )
    assert list(table.columns) == list(STABILITY_TRIAL_COLUMNS)
    assert table["stability"].tolist() == [0.0, 0.5]
    assert (table["new_pages_short"] == 0).all()
    assert table["links_dropped"].iloc[1] < table["links_dropped"].iloc[0]
    assert table["recall_at_k"].between(0, 1).all()


def test_orphan_rescue_weighs_similarity_not_the_stability_preference():
    import numpy as np

    from recommender.coverage import spread_links

    # page 0 links to 1 (its current link, ranked up by stability) and could link to 2,
    # which no page links to; page 1 links to 0 and 2 links to 1 and 0
    candidates = np.array([[1, 2], [0, -1], [1, 0]])
    similarity = np.array([[0.5, 0.45], [0.5, 0.0], [0.5, 0.4]], dtype=np.float32)
    ranking = similarity * np.array([[1.5, 1.0], [1.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    params = {"n_links": 1, "max_in_links": 5, "tolerance": 0.3, "is_target": np.ones(3, bool)}
    assert spread_links(candidates, ranking, **params)[0].tolist() == [0]  # 2 left orphaned
    rescued = spread_links(candidates, ranking, rescue_scores=similarity, **params)
    assert rescued[0].tolist() == [1]


def test_added_targets_are_scored_once_and_each_row_stays_sorted():
    features = sp.csr_matrix(np.eye(4, dtype=np.float32) + 0.5)  # every pair shares a term
    features = sp.csr_matrix(features / np.linalg.norm(features.toarray(), axis=1)[:, None])
    true = (features @ features.T).toarray()
    candidates = np.array([[1, -1], [0, 2], [-1, -1], [0, -1]])
    given = np.array([[0.9, 0], [0.6, 0.5], [0, 0], [0.1, 0]], dtype=np.float32)
    more = np.array([[1, 2], [3, -1], [3, -1], [-1, -1]])
    is_target = np.array([True, True, True, True])
    found, scores = add_candidates(candidates, given, more, features, is_target)
    # row 0: target 1 is a candidate already: kept once, with the search's score, not scored
    # again; target 2 is scored and placed after it
    assert found[0].tolist() == [1, 2, -1, -1]
    assert scores[0].tolist() == pytest.approx([0.9, true[0, 2], 0, 0])
    # row 1: target 3 scores above the given 0.6 and 0.5, so it comes first
    assert true[1, 3] > 0.6
    assert found[1].tolist() == [3, 0, 2, -1]
    assert scores[1].tolist() == pytest.approx([true[1, 3], 0.6, 0.5, 0])
    assert found[2].tolist() == [3, -1, -1, -1]  # an empty row takes its addition
    assert found[3].tolist() == [0, -1, -1, -1] and scores[3][0] == np.float32(0.1)


def test_added_targets_leave_out_non_targets_and_take_page_zero():
    from recommender.stability import _among

    features = sp.csr_matrix(np.eye(4, dtype=np.float32) + 0.5)
    candidates = np.array([[2, -1], [0, -1], [-1, -1], [1, -1]])
    given = np.array([[0.1, 0], [0.1, 0], [0, 0], [0.9, 0]], dtype=np.float32)
    more = np.array([[1, 3], [2, 0], [0, -1], [-1, -1]])
    is_target = np.array([True, True, True, False])  # page 3 may not be linked to
    found, scores = add_candidates(candidates, given, more, features, is_target)
    assert found.tolist() == [[1, 2, -1, -1], [2, 0, -1, -1], [0, -1, -1, -1], [1, -1, -1, -1]]
    true = (features @ features.T).toarray()  # page 0 added is scored like any other
    assert scores[2, 0] == pytest.approx(true[2, 0]) and scores[2, 0] > 0
    in_blocks = _among(more, candidates, rows=1)  # a row at a time: the same answer
    np.testing.assert_array_equal(in_blocks, _among(more, candidates))
    assert in_blocks.tolist() == [[False, False], [False, True], [False, True], [True, True]]


def test_second_ways_are_the_later_side_of_pairs_each_holding_the_other_first():
    candidates = np.array([[1, 2, -1], [2, 0, 3], [0, 1, -1], [2, -1, -1]])
    similarity = np.array([[0.9, 0.8, 0], [0.7, 0.9, 0.1], [0.9, 0.8, 0], [0.9, 0, 0]])
    # 0 and 1 hold each other first (1's best is 0, by similarity): 1 is the later row;
    # 2 holds 0 first and 0 holds 2 second: 0's link to 2 is the second way; 1 and 2
    # hold each other second: 2 is the later row; 3 is held by none
    assert second_ways(candidates, similarity, 2).tolist() == [
        [False, True, False],
        [False, True, False],
        [False, True, False],
        [False, False, False],
    ]
    # with k 1 only a page's first counts: 2 still holds 0 first, 1 no longer holds 2
    assert second_ways(candidates, similarity, 1).tolist() == [
        [False, True, False],
        [False, True, False],
        [False, False, False],
        [False, False, False],
    ]
    none = second_ways(np.full((2, 2), -1), np.zeros((2, 2)), 2)
    assert none.dtype == bool and not none.any()


@pytest.mark.parametrize(("discount", "order"), [(0.0, [0, 2]), (0.05, [0, 2]), (0.1, [2, 0])])
def test_mutual_discount_ranks_a_pairs_second_way_lower(discount, order):
    candidates = np.array([[1, 2], [0, 2], [0, 1]])
    similarity = np.array([[0.9, 0.8], [0.9, 0.85], [0.9, 0.8]])
    ranked, _, scores = rerank(
        candidates,
        similarity,
        current=np.full((3, 1), -1),
        stability=0.0,
        target_factor=np.ones(3),
        mutual_discount=discount,
        n_links=1,
    )
    assert ranked[1].tolist() == order  # 0.9 x 0.95 > 0.85 > 0.9 x 0.9
    assert ranked[0].tolist() == [1, 2]  # the earlier row keeps its link
    assert sorted(scores[1].tolist()) == [0.85, 0.9]  # similarities are not discounted


def test_second_ways_rank_places_by_similarity_whatever_the_columns_order():
    # each row's first k are found by similarity, not taken from its first columns
    rng = np.random.default_rng(3)
    candidates = np.array([[1, 2, 3, 4], [0, 2, 3, 4], [0, 1, 3, 4], [0, 1, 2, 4], [0, 1, 2, 3]])
    similarity = rng.permutation(20).reshape(5, 4) / 20.0
    order = np.argsort(-similarity, axis=1)  # best first
    found = second_ways(
        np.take_along_axis(candidates, order, 1), np.take_along_axis(similarity, order, 1), 2
    )
    expected = np.empty_like(found)
    np.put_along_axis(expected, order, found, axis=1)  # back in the columns' order
    assert expected.any()
    for _ in range(5):
        shuffled = np.argsort(rng.random(candidates.shape), axis=1)
        found = second_ways(
            np.take_along_axis(candidates, shuffled, 1),
            np.take_along_axis(similarity, shuffled, 1),
            2,
        )
        back = np.empty_like(found)
        np.put_along_axis(back, shuffled, found, axis=1)
        np.testing.assert_array_equal(back, expected)


def test_mutual_discount_links_more_distinct_pairs_and_is_checked(pages):
    def distinct_pairs(related):
        return len(
            {frozenset(p) for p in zip(related["source_url"], related["target_url"], strict=True)}
        )

    plain, discounted = fit(pages, n_links=2), fit(pages, n_links=2, mutual_discount=0.4)
    assert len(plain) == len(discounted)
    assert distinct_pairs(discounted) > distinct_pairs(plain)
    with pytest.raises(ValueError, match="mutual_discount"):
        fit(pages, mutual_discount=1.0)


def test_second_ways_order_negative_similarities_too():
    # a blended score can be negative: page 0's first is page 2 (-0.1 beats -0.2)
    candidates = np.array([[1, 2], [0, -1], [0, -1]])
    similarity = np.array([[-0.2, -0.1], [0.5, 0.0], [0.5, 0.0]], dtype=np.float32)
    assert second_ways(candidates, similarity, 1).tolist() == [
        [True, False],  # 1 holds 0 first; 0 holds 1 after its first
        [False, False],
        [True, False],  # 0 and 2 hold each other first: 2 is the later row
    ]


def test_held_now_marks_every_current_link_and_never_padding():
    candidates = np.array([[0, 3, 2, -1], [1, -1, 0, 2], [4, 3, -1, -1]])
    current = np.array([[2, 0], [-1, -1], [3, 4]])  # page 1 holds no links: -1 padding
    assert held_now(candidates, current).tolist() == [
        [True, False, True, False],
        [False, False, False, False],
        [True, True, False, False],
    ]
