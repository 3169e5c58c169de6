"""What may link to what, on arrays and pages made by hand."""

import numpy as np
import pandas as pd
import pytest

from recommender.rules import (
    apply_rules,
    connected_labels,
    copy_groups,
    first_links,
    near_duplicate_pairs,
    target_mask,
)

# ---------------------------------------------------------------- target_mask


def test_target_mask_excludes_no_index_pages_only_when_asked():
    pages = pd.DataFrame({"no_index": [False, True, False, True]})
    assert target_mask(pages, exclude_no_index=True).tolist() == [True, False, True, False]
    assert target_mask(pages, exclude_no_index=False).tolist() == [True] * 4
    assert target_mask(pages, exclude_no_index=True).dtype == bool
    # the flag as read from other files: nullable booleans or Python objects
    for dtype in ("boolean", object):
        flags = pages.astype({"no_index": dtype})
        assert target_mask(flags, exclude_no_index=True).tolist() == [True, False, True, False]


# ---------------------------------------------------------------- copy groups


def pages_frame(rows):
    """(slug, question, title) rows as a pages frame."""
    return pd.DataFrame(rows, columns=["slug", "question", "title"])


def test_copy_groups_by_slug_and_by_folded_question():
    pages = pages_frame(
        [
            ("a", "What is a cell?", "Cells"),
            ("b", "What is a star?", "Stars"),
            ("a", "Something else entirely", "A copy by slug"),
            ("c", "  what IS a  cell ", "A copy by question, folded"),
            ("d", "What is a cell, really?", "Not a copy: more words"),
        ]
    )
    assert copy_groups(pages).tolist() == [0, 1, 0, 0, 2]


def test_copy_groups_use_the_title_where_there_is_no_question():
    pages = pages_frame(
        [
            ("a", "", "Why do stars shine?"),
            ("b", "why do stars shine", "Another title"),
            ("c", "", "Why do stars fall?"),
        ]
    )
    assert copy_groups(pages).tolist() == [0, 0, 1]


def test_copies_of_copies_are_copies():
    # 0 and 1 share a slug, 1 and 2 a question, 2 and 3 a slug: one group
    pages = pages_frame(
        [
            ("x", "Q one", "T"),
            ("x", "Q two", "T"),
            ("y", "q two", "T"),
            ("y", "Q three", "T"),
            ("z", "Q four", "T"),
        ]
    )
    assert copy_groups(pages).tolist() == [0, 0, 0, 0, 1]


def reference_labels(n, codes, pairs=()):
    """Union-find in plain Python; labels numbered by each component's first item."""
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    links = [tuple(pair) for pair in pairs]
    for code in codes:
        first = {}
        for item, value in enumerate(code):
            if value >= 0:
                links.append((item, first.setdefault(value, item)))
    for a, b in links:
        parent[find(a)] = find(b)
    labels, numbers = [], {}
    for item in range(n):
        labels.append(numbers.setdefault(find(item), len(numbers)))
    return labels


def test_connected_labels_by_hand():
    codes = [np.array([5, -1, 5, 2, -1, 2]), np.array([-1, 0, -1, -1, 0, 1])]
    assert connected_labels(6, codes).tolist() == [0, 1, 0, 2, 1, 2]
    pairs = np.array([[4, 2]])
    assert connected_labels(6, codes, pairs).tolist() == [0, 0, 0, 1, 0, 1]
    assert connected_labels(3, [np.array([-1, -1, -1])]).tolist() == [0, 1, 2]
    assert connected_labels(3, [np.array([-1, -1, -1])], np.array([[2, 1]])).tolist() == [0, 1, 1]
    no_pairs = np.zeros((0, 2), dtype=np.int64)
    assert connected_labels(3, [np.array([0, -1, 0])], no_pairs).tolist() == [0, 1, 0]
    assert connected_labels(2, [np.array([0, 0])]).dtype == np.int64


@pytest.mark.parametrize("seed", range(8))
def test_connected_labels_match_union_find(seed):
    rng = np.random.default_rng(seed)
    n = 30
    codes = [rng.integers(-1, 12, size=n) for _ in range(2)]
    pairs = rng.integers(0, n, size=(4, 2))
    assert connected_labels(n, codes, pairs).tolist() == reference_labels(n, codes, pairs)


def test_near_duplicate_pairs_at_or_above_the_threshold():
    candidates = np.array([[1, 2, -1], [0, 2, -1], [1, -1, -1]])
    scores = np.array([[0.95, 0.9, 0.99], [0.95, 0.1, 0], [0.89999, 0, 0.97]], dtype=np.float32)
    pairs = near_duplicate_pairs(candidates, scores, 0.9)
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 0]]
    assert near_duplicate_pairs(candidates, scores, 1.0).shape == (0, 2)


# ---------------------------------------------------------------- apply_rules


def reference_rules(candidates, scores, groups, subjects, min_score):
    """The rules, one entry at a time, in plain Python."""
    out_candidates = np.full_like(candidates, -1)
    out_scores = np.zeros(scores.shape, dtype=np.float32)
    for row in range(len(candidates)):
        entries = [
            (place, c, s)
            for place, (c, s) in enumerate(zip(candidates[row], scores[row], strict=True))
            if c >= 0 and s > min_score and groups[c] != groups[row]
        ]
        keep = {}  # group -> place: the first in the reader's subject, else the first
        for place, c, _ in entries:
            kept_place = keep.get(groups[c])
            if kept_place is None or (
                subjects[c] == subjects[row]
                and subjects[candidates[row, kept_place]] != subjects[row]
            ):
                keep[groups[c]] = place
        kept = [(c, s) for place, c, s in entries if keep[groups[c]] == place]
        for place, (c, s) in enumerate(kept):
            out_candidates[row, place], out_scores[row, place] = c, s
    return out_candidates, out_scores


def test_apply_rules_drops_self_copies_low_scores_and_padding_keeping_order():
    groups = np.array([0, 1, 2, 0, 3, 3])  # page 3 is a copy of 0; 4 and 5 copies of each other
    subjects = np.array([0, 0, 0, 1, 1, 0])
    candidates = np.array(
        [
            [0, 3, 2, 1, -1],  # itself and its copy go; 2 and 1 stay, in order
            [4, 2, 5, 0, 3],  # of 4 and 5, 5 is in the reader's subject; of 0 and 3, 0 is
            [1, 4, 5, -1, -1],  # of 4 and 5, 5 is in the reader's subject although placed later
            [4, 5, 1, 2, -1],  # of 4 and 5, 4 is in the reader's subject
            [2, 1, 0, -1, -1],  # 1 scores exactly min_score and 0 under it: both go
            [0, 4, -1, -1, -1],  # 4 is its copy
        ]
    )
    scores = np.array(
        [
            [1.0, 0.95, 0.5, 0.4, 0.0],
            [0.8, 0.7, 0.6, 0.5, 0.4],
            [0.8, 0.7, 0.6, 0.0, 0.0],
            [0.9, 0.8, 0.7, 0.6, 0.0],
            [0.5, 0.1, 0.05, 0.0, 0.0],
            [0.6, 0.5, 0.0, 0.0, 0.0],
        ],
        dtype=np.float32,
    )
    found, found_scores = apply_rules(candidates, scores, groups, subjects, 0.1)
    assert found.tolist() == [
        [2, 1, -1, -1, -1],
        [2, 5, 0, -1, -1],
        [1, 5, -1, -1, -1],
        [4, 1, 2, -1, -1],
        [2, -1, -1, -1, -1],
        [0, -1, -1, -1, -1],
    ]
    np.testing.assert_array_equal(
        found_scores,
        np.array(
            [
                [0.5, 0.4, 0, 0, 0],
                [0.7, 0.6, 0.5, 0, 0],
                [0.8, 0.6, 0, 0, 0],
                [0.9, 0.7, 0.6, 0, 0],
                [0.5, 0, 0, 0, 0],
                [0.6, 0, 0, 0, 0],
            ],
            dtype=np.float32,
        ),
    )
    assert found_scores.dtype == np.float32
    assert found.shape == candidates.shape


def test_apply_rules_keeps_the_best_placed_copy_when_none_is_in_the_subject():
    groups = np.array([0, 1, 1, 1])
    subjects = np.array([0, 1, 2, 1])
    candidates = np.array([[3, 2, 1], [0, -1, -1], [0, -1, -1], [0, -1, -1]])
    scores = np.full((4, 3), 0.5, dtype=np.float32)
    found, _ = apply_rules(candidates, scores, groups, subjects, 0.0)
    assert found[0].tolist() == [3, -1, -1]


def test_apply_rules_prefers_the_subject_copy_only_if_it_is_allowed():
    # the copy in the reader's subject scores under min_score: the other copy stays
    groups = np.array([0, 1, 1])
    subjects = np.array([0, 1, 0])
    candidates = np.array([[1, 2], [0, -1], [0, -1]])
    scores = np.array([[0.5, 0.05], [0.5, 0], [0.5, 0]], dtype=np.float32)
    found, found_scores = apply_rules(candidates, scores, groups, subjects, 0.1)
    assert found[0].tolist() == [1, -1] and found_scores[0].tolist() == [0.5, 0.0]
    found, _ = apply_rules(candidates, scores, groups, subjects, 0.0)
    assert found[0].tolist() == [2, -1]


def test_apply_rules_ignores_the_score_of_padding():
    groups, subjects = np.arange(3), np.zeros(3, dtype=np.int64)
    candidates = np.array([[-1, 1], [2, -1], [-1, -1]])
    scores = np.array([[0.9, 0.5], [0.5, 0.9], [0.9, 0.9]], dtype=np.float32)
    found, found_scores = apply_rules(candidates, scores, groups, subjects, 0.0)
    assert found.tolist() == [[1, -1], [2, -1], [-1, -1]]
    assert found_scores.tolist() == [[0.5, 0.0], [0.5, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("n_places", [8, 60])  # wide rows: numpy's default sort is not stable
@pytest.mark.parametrize("seed", range(12))
def test_apply_rules_match_a_plain_python_reference(seed, n_places):
    rng = np.random.default_rng(seed)
    n = 25
    groups = connected_labels(n, [rng.integers(-1, 10, size=n)])
    subjects = rng.integers(0, 3, size=n)
    candidates = rng.integers(-1, n, size=(n, n_places))
    scores = np.sort(rng.choice([0.0, 0.1, 0.2, 0.5, 0.7, 0.9], size=(n, n_places)), axis=1)
    scores = scores[:, ::-1].astype(np.float32)
    min_score = [0.0, 0.1, 0.5][seed % 3]
    found, found_scores = apply_rules(candidates, scores, groups, subjects, min_score)
    expected, expected_scores = reference_rules(candidates, scores, groups, subjects, min_score)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(found_scores, expected_scores)


# ---------------------------------------------------------------- first_links


def test_first_links_takes_each_rows_first_places():
    candidates = np.array([[4, 2, 7, -1], [0, -1, -1, -1], [-1, -1, -1, -1], [1, 0, 3, 2]])
    assert first_links(candidates, 2).tolist() == [[0, 1], [0, -1], [-1, -1], [0, 1]]
    assert first_links(candidates, 3).tolist() == [[0, 1, 2], [0, -1, -1], [-1, -1, -1], [0, 1, 2]]
    # more links asked than places: padded
    assert first_links(candidates[:, :2], 3).tolist() == [
        [0, 1, -1],
        [0, -1, -1],
        [-1, -1, -1],
        [0, 1, -1],
    ]
    assert first_links(candidates, 1).dtype == np.int64
