import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommender.frames import is_in, sources_with_new_lists

missing = st.sampled_from([None, np.nan, pd.NA])
texts = st.lists(st.one_of(missing, st.sampled_from(["a", "b", "é", "", "/x/y"])), max_size=8)


@given(values=texts, among=texts, dtype=st.sampled_from(["str", "string", object]))
def test_is_in_answers_as_pandas_isin_does(values, among, dtype):
    column = pd.Series(values, dtype=dtype)
    expected = column.isin(among).to_numpy()
    assert is_in(column, among).tolist() == expected.tolist()
    assert is_in(pd.Index(column), set(among)).tolist() == expected.tolist()
    assert is_in(column, pd.Index(among, dtype=dtype)).tolist() == expected.tolist()


def test_is_in_refuses_a_text_to_look_for_as_pandas_does():
    with pytest.raises(TypeError, match="a collection of values, not str"):
        is_in(pd.Series(["a"]), "abc")


def test_is_in_looks_texts_up_in_pyarrow_not_in_pandas(monkeypatch):
    def slow(*args):
        raise AssertionError("pandas' isin was used")

    monkeypatch.setattr(pd.Series, "isin", slow)
    monkeypatch.setattr(pd.Index, "isin", slow)
    column = pd.Series(["/a", None, "/c"], dtype="str")
    assert is_in(column, {"/c", "/d"}).tolist() == [False, False, True]
    assert is_in(pd.Index(column), pd.Index(["/a", None], dtype="str")).tolist() == [
        True,
        True,
        False,
    ]
    assert is_in(column, pd.Series(["/a"], dtype=object)).tolist() == [True, False, False]
    assert is_in(column, ["/c", np.nan]).tolist() == [False, True, True]  # NaN: missing
    assert is_in(column, (url for url in ["/a"])).tolist() == [True, False, False]


def test_is_in_never_takes_a_number_for_its_text():
    assert is_in(pd.Series(["1", "2"], dtype="str"), [1, "2"]).tolist() == [False, True]
    assert is_in(pd.Series(["1"], dtype="str"), [1]).tolist() == [False]


def test_is_in_of_anything_but_text_is_pandas_own():
    assert is_in(pd.Series([1, 2, 3]), [2, 5]).tolist() == [False, True, False]
    assert is_in(pd.Series(["a", 1], dtype=object), ["a", 1]).tolist() == [True, True]
    assert is_in(pd.Index(["a"]), []).dtype == np.bool_


def test_pages_with_new_lists_are_those_whose_targets_in_rank_order_differ():
    def links(lists):
        rows = [(s, r, t) for s, targets in lists.items() for r, t in enumerate(targets, 1)]
        return pd.DataFrame(rows, columns=["source_url", "rank", "target_url"]).astype(
            {"source_url": "str", "target_url": "str"}
        )

    old = links(
        {
            "/same": ["/a", "/b"],
            "/swapped": ["/a", "/b"],
            "/replaced": ["/a", "/b"],
            "/emptied": ["/a"],
            "/gone": ["/a"],
            "/longer": ["/a"],
            "/lost": ["/a", "/deleted"],
            "/to-first": ["/same", "/a"],
        }
    )
    new = links(
        {
            "/same": ["/a", "/b"],
            "/swapped": ["/b", "/a"],
            "/replaced": ["/a", "/c"],
            "/longer": ["/a", "/b"],
            "/new": ["/a"],
            "/lost": ["/a", "/deleted"],  # as it was, but "/deleted" is no page now
            "/to-first": ["/same", "/a"],
        }
    )
    pages = pd.Index(
        "/same /a /b /c /swapped /replaced /emptied /longer /new /lost /to-first".split()
    )
    assert sources_with_new_lists(old, new, pages) == {
        "/swapped",
        "/replaced",
        "/emptied",
        "/longer",
        "/new",
        "/lost",
    }  # "/gone" is no page now; "/same", the first page, keeps its list, as does a list
    # that links to it
    none = links({})
    assert sources_with_new_lists(none, new, pages) == set(new["source_url"])
    assert sources_with_new_lists(old, none, pages) == set(old["source_url"]) - {"/gone"}
    assert sources_with_new_lists(none, none, pages) == set()
