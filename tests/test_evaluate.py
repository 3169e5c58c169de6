"""Metrics against small link graphs computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from recommender import churn, compare, evaluate, load_corpus
from recommender.evaluate import (
    METRICS,
    _gini,
    in_degrees,
    labelled_pairs,
    read_labels,
    valid_links,
)

from .conftest import SAMPLE


@pytest.fixture
def pages():
    rows = [
        # url, slug, question, keywords, subject_key, no_index, id, title, subject
        ("/a", "a", "A?", ["x", "Y"], "math", False, 1, "A", "Math"),
        ("/b", "b", "B?", ["y"], "math", False, 2, "B", "math"),
        ("/c", "c", "C?", ["z"], "art", False, 3, "C", "Art"),
        ("/d/c", "c", "C?", ["z"], "art", False, 3, "C", "Art"),  # a copy of /c
        ("/e", "e", "E?", [], "math", True, 5, "E", "Math"),
        ("/f", "f", "F?", [], "art", False, 6, "F", "Art"),
    ]
    columns = [
        "url",
        "slug",
        "question",
        "keywords",
        "subject_key",
        "no_index",
        "id",
        "title",
        "subject",
    ]
    frame = pd.DataFrame(rows, columns=columns).set_index("url")
    frame["id"] = frame["id"].astype("Int64")
    return frame


@pytest.fixture
def links():
    rows = [
        ("/a", 1, "/b", "B"),
        ("/a", 2, "/c", "C"),
        ("/a", 3, "/a", "A"),  # self
        ("/a", 4, "/b", "B"),  # repeated
        ("/a", 5, "/z", "Z"),  # unresolved
        ("/b", 1, "/a", "Old title"),  # stale
        ("/b", 2, "/e", "E"),  # no_index
        ("/c", 1, "/a", "A"),
        ("/c", 2, "/d/c", "C"),  # a copy
    ]
    return pd.DataFrame(rows, columns=["source_url", "rank", "target_url", "target_title"])


def values(table):
    return table.set_index("metric")["value"]


def test_metrics_of_a_hand_computed_graph(pages, links):
    m = values(evaluate(pages, links, k=2))
    assert m["pages"] == 6
    assert (m["pages_with_k_links"], m["pages_with_fewer_links"], m["pages_with_no_links"]) == (
        3,
        0,
        3,
    )
    assert m["links"] == 9
    assert (m["unresolved_links"], m["self_links"], m["repeated_links"]) == (1, 1, 1)
    assert m["pages_repeating_a_target"] == 1
    assert (m["copy_links"], m["no_index_links"], m["stale_blocks"]) == (1, 1, 1)
    # valid links: a>b a>c b>a b>e c>a c>d
    assert m["keyword_share"] == pytest.approx(3 / 6)  # a>b, b>a (y, case-folded), c>d
    assert m["keyword_jaccard"] == pytest.approx((1 / 2 + 0 + 1 / 2 + 0 + 0 + 1) / 6)
    assert m["same_subject_share"] == pytest.approx(4 / 6)
    assert (m["orphan_pages"], m["max_in_degree"]) == (1, 2)  # only /f; /a from b and c
    assert m["orphan_share"] == pytest.approx(1 / 6)
    assert m["in_degree_gini"] == pytest.approx(10 / 36)  # in-degrees 2,1,1,1,1,0
    assert m["reciprocity"] == pytest.approx(4 / 6)
    assert "recall_at_k" not in m


def test_label_metrics(pages, links):
    # valid links with k=2: a>[b, c]  b>[a, e]  c>[a, d/c]
    labels = pd.DataFrame(
        {
            "source_url": ["/a", "/a", "/b", "/c", "/f", "/f"],
            "target_url": ["/d/c", "/c", "/c", "/b", "/a", "/nowhere"],
        }
    )
    m = values(evaluate(pages, links, k=2, labels=labels))
    # pairs {a,c} (a lists c at 2, c lists a at 1: found at 1, both directions),
    # {a,d/c} (d/c lists nothing, a does not list it: missed), {b,c} twice as one pair
    # (neither lists the other: missed), {a,f} (missed); {f,nowhere} is unknown
    assert (m["labelled_pairs"], m["unknown_pairs"]) == (4, 1)
    assert m["labelled_pages"] == 5  # a, b, c, d/c, f
    assert m["recall_at_k"] == pytest.approx(1 / 4)
    assert m["mrr_at_k"] == pytest.approx((1 + 0 + 1 + 0 + 0) / 5)  # a and c: {a,c} at 1
    assert m["success_at_k"] == pytest.approx(2 / 5)


def test_a_pair_counts_when_either_page_lists_the_other(pages, links):
    # b lists a (place 1) but a lists b too (place 1); c lists d/c (place 2), d/c lists nothing;
    # e lists nothing while b lists e (place 2)
    labels = pd.DataFrame({"source_url": ["/d/c", "/e", "/b"], "target_url": ["/c", "/b", "/a"]})
    m = values(evaluate(pages, links, k=2, labels=labels))
    assert m["recall_at_k"] == 1
    # pages: a (1), b ({a,b} at 1), c (2), d/c (2), e (2)
    assert m["mrr_at_k"] == pytest.approx((1 + 1 + 1 / 2 + 1 / 2 + 1 / 2) / 5)
    assert m["success_at_k"] == 1
    # with k=1 only {a,b} is found: a and b at 1
    m = values(evaluate(pages, links, k=1, labels=labels))
    assert m["recall_at_k"] == pytest.approx(1 / 3)
    assert m["mrr_at_k"] == pytest.approx(2 / 5)
    assert m["success_at_k"] == pytest.approx(2 / 5)


def test_invalid_links_never_find_a_pair(pages, links):
    # a's self link and its repeat of /b are not valid: with k=3 a's links are b, c only
    labels = pd.DataFrame({"url_a": ["/a"], "url_b": ["/z"]})  # /z is no page: unknown
    m = values(evaluate(pages, links, k=3, labels=labels))
    assert (m["labelled_pairs"], m["unknown_pairs"], m["labelled_pages"]) == (0, 1, 0)
    assert math.isnan(m["recall_at_k"])


def test_labelled_pairs_are_unordered_and_unique():
    labels = pd.DataFrame(
        {"source_url": ["/b", "/a", "/a", "/c"], "target_url": ["/a", "/b", "/a", "/a"]}
    )
    assert labelled_pairs(labels).to_dict("list") == {
        "url_a": ["/a", "/a"],
        "url_b": ["/b", "/c"],
    }
    with pytest.raises(ValueError, match="needs 'source_url' and 'target_url'"):
        labelled_pairs(pd.DataFrame({"source_url": ["/a"]}))


def test_read_labels(tmp_path):
    path = tmp_path / "truth.tsv"
    path.write_text("url_a\turl_b\tlink_type\n/a\t/b\tlinked\n/c\t/a\tduplicate\n")
    table = read_labels(path)
    assert table.to_dict("list") == {
        "source_url": ["/a", "/c"],
        "target_url": ["/b", "/a"],
        "link_type": ["linked", "duplicate"],
    }
    (tmp_path / "two.tsv").write_text("url_a\turl_b\n/a\t/b\n")
    assert read_labels(tmp_path / "two.tsv")["link_type"].tolist() == ["linked"]
    (tmp_path / "bad.tsv").write_text("a\tb\n/a\t/b\n")
    with pytest.raises(ValueError, match="needs the columns url_a and url_b"):
        read_labels(tmp_path / "bad.tsv")


def test_rank_is_optional_and_order_counts(pages, links):
    without_rank = links.drop(columns="rank")
    pd.testing.assert_frame_equal(evaluate(pages, without_rank, k=2), evaluate(pages, links, k=2))


def test_every_metric_has_a_definition(pages, links):
    labels = pd.DataFrame({"source_url": ["/a"], "target_url": ["/b"]})
    table = evaluate(pages, links, labels=labels)
    assert list(table.columns) == ["group", "metric", "value", "definition"]
    assert all(
        METRICS[g, m] == d
        for g, m, d in zip(table["group"], table["metric"], table["definition"], strict=True)
    )


def test_empty_links(pages):
    m = values(evaluate(pages, pd.DataFrame(columns=["source_url", "target_url"])))
    assert m["pages_with_no_links"] == 6 and m["orphan_pages"] == 6
    assert math.isnan(m["keyword_share"])


def test_bad_tables_are_refused(pages):
    with pytest.raises(ValueError, match="needs a 'target_url' column"):
        evaluate(pages, pd.DataFrame({"source_url": ["/a"]}))
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        evaluate(pages, pd.DataFrame(columns=["source_url", "target_url"]), k=0)


def test_churn_between_two_days():
    old = pd.DataFrame(
        {"source_url": ["/a", "/a", "/b"], "rank": [1, 2, 1], "target_url": ["/b", "/c", "/a"]}
    )
    new = pd.DataFrame(
        {
            "source_url": ["/a", "/a", "/b", "/c"],
            "rank": [1, 2, 1, 1],
            "target_url": ["/c", "/b", "/a", "/a"],
        }
    )
    m = values(churn(old, new))
    assert (m["pages"], m["pages_changed"]) == (3, 2)  # /a reordered, /c new
    assert m["changed_share"] == pytest.approx(2 / 3)
    assert (m["links_added"], m["links_dropped"], m["links_kept"]) == (1, 0, 3)
    assert m["mean_rank_displacement"] == pytest.approx(2 / 3)
    same = values(churn(old, old))
    assert (same["pages_changed"], same["links_added"], same["mean_rank_displacement"]) == (0, 0, 0)


def test_compare_puts_tables_side_by_side(pages, links):
    fewer = links[links["source_url"] == "/a"]  # a table other than the first
    labels = pd.DataFrame({"source_url": ["/a", "/c"], "target_url": ["/c", "/a"]})
    table = compare(pages, {"given": links, "fewer": fewer}, k=2, labels=labels)
    assert list(table.columns) == ["given", "fewer", "definition"]
    for name, own in (("given", links), ("fewer", fewer)):
        expected = evaluate(pages, own, k=2, labels=labels).set_index(["group", "metric"])
        assert table.index.equals(expected.index)
        pd.testing.assert_series_equal(
            table[name], expected["value"].rename(name), check_dtype=False
        )
    assert table["definition"].tolist() == expected["definition"].tolist()
    # the two tables differ, so their columns must too
    assert table.loc[("validity", "links"), "given"] == 9
    assert table.loc[("validity", "links"), "fewer"] == 5
    # a pair counts when either page lists the other: /a listing /c serves /c too
    assert table.loc[("labels", "success_at_k"), "fewer"] == pytest.approx(1.0)
    assert table.loc[("labels", "success_at_k"), "given"] == pytest.approx(1.0)


def test_compare_on_the_sample_site():
    corpus = load_corpus(SAMPLE)
    table = compare(corpus.pages, {"site": corpus.links})
    assert table.loc[("validity", "self_links"), "site"] == 4
    assert table.loc[("validity", "stale_blocks"), "site"] == 1  # the sample's stale id


def test_valid_links_and_in_degrees(pages, links):
    valid = valid_links(pages, links.drop(columns="rank").iloc[::-1])  # the table's order
    # reversed without ranks: /a's links are /z (unresolved), /b, /a (self), /c, /b (repeat)
    assert list(zip(valid["source_url"], valid["target_url"], strict=True)) == [
        ("/a", "/b"),
        ("/a", "/c"),
        ("/b", "/e"),
        ("/b", "/a"),
        ("/c", "/d/c"),
        ("/c", "/a"),
    ]
    assert valid["rank"].tolist() == [2, 4, 1, 2, 1, 2]
    degrees = in_degrees(pages, links)
    assert degrees.name == "in_degree" and degrees.index.equals(pages.index)
    assert degrees.tolist() == [2, 1, 1, 1, 1, 0]


def test_pages_with_more_than_k_links_count_as_full(pages, links):
    m = values(evaluate(pages, links, k=1))
    assert (m["pages_with_k_links"], m["pages_with_fewer_links"], m["pages_with_no_links"]) == (
        3,
        0,
        3,
    )
    m = values(evaluate(pages, links, k=3))
    assert (m["pages_with_k_links"], m["pages_with_fewer_links"]) == (0, 3)


def test_stale_blocks_compare_id_title_and_subject_treating_missing_alike(pages):
    pages = pages.copy()
    pages.loc["/f", "id"] = pd.NA
    links = pd.DataFrame(
        {
            "source_url": ["/a"] * 7,
            "target_url": ["/b", "/c", "/f", "/f", "/e", "/z", "/c"],
            # 99 stale; /f has no id, so 6 is stale; /c has one, so None is stale
            "target_id": [2, 99, None, 6, 5, 1, None],
            "target_title": ["B", "C", "F", "F", "Old E", "Z", "C"],  # "Old E" stale
            "target_subject": ["Math", "Art", "Art", "Art", "Math", "Z", "Art"],  # /b: "math"
        }
    )
    m = values(evaluate(pages, links))
    assert m["stale_blocks"] == 5  # /b, /c twice, the second /f, /e; /z does not resolve


def test_an_empty_site_and_empty_tables():
    empty_pages = pd.DataFrame(
        columns=["slug", "question", "title", "keywords", "subject_key", "no_index", "id"],
        index=pd.Index([], name="url"),
    )
    m = values(evaluate(empty_pages, pd.DataFrame(columns=["source_url", "target_url"])))
    assert (m["pages"], m["orphan_pages"], m["max_in_degree"]) == (0, 0, 0)
    assert (m["orphan_share"], m["in_degree_gini"]) == (0.0, 0.0)
    assert math.isnan(m["reciprocity"])
    nothing = values(churn(*[pd.DataFrame(columns=["source_url", "target_url"])] * 2))
    assert (nothing["pages"], nothing["changed_share"]) == (0, 0.0)
    assert math.isnan(nothing["mean_rank_displacement"])


def test_gini_of_in_degrees():
    assert _gini(np.array([0, 0, 0])) == 0.0
    assert _gini(np.array([3, 3, 3])) == 0.0
    assert _gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert _gini(np.array([4, 0, 0, 0])) == pytest.approx(0.75)  # order does not matter
    assert _gini(np.array([1, 3])) == pytest.approx(0.25)


def test_churn_counts_a_repeated_pair_once_and_pages_only_in_the_old_table():
    old = pd.DataFrame({"source_url": ["/a", "/a", "/b"], "target_url": ["/b", "/b", "/c"]})
    new = pd.DataFrame({"source_url": ["/a"], "rank": [1], "target_url": ["/b"]})
    m = values(churn(old, new))
    assert (m["pages"], m["pages_changed"]) == (2, 2)  # /a lost its repeat, /b its links
    assert (m["links_added"], m["links_dropped"], m["links_kept"]) == (0, 1, 1)
    assert m["mean_rank_displacement"] == 0


def test_pages_without_keywords_share_none(pages):
    links = pd.DataFrame({"source_url": ["/e", "/f", "/a"], "target_url": ["/f", "/e", "/b"]})
    m = values(evaluate(pages, links))
    assert m["keyword_share"] == pytest.approx(1 / 3)
    assert m["keyword_jaccard"] == pytest.approx((0 + 0 + 1 / 2) / 3)


def test_rank_orders_the_links_whatever_the_rows_order(pages, links):
    labels = pd.DataFrame({"source_url": ["/a", "/c"], "target_url": ["/c", "/d/c"]})
    shuffled = links.iloc[[8, 3, 0, 5, 2, 7, 1, 6, 4]]
    pd.testing.assert_frame_equal(
        evaluate(pages, shuffled, k=2, labels=labels), evaluate(pages, links, k=2, labels=labels)
    )
    pd.testing.assert_frame_equal(churn(shuffled, links), churn(links, links))
