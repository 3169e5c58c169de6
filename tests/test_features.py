import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

import recommender.features as features_module
from recommender.features import (
    TF_WEIGHTS,
    FieldFeatures,
    StemmingTokenizer,
    TagAnalyzer,
    TermWeighting,
)


@pytest.fixture
def pages():
    return pd.DataFrame(
        {
            "title_text": ["cells and membranes", "membranes of cells", "stars and galaxies"],
            "keywords_text": [
                "cell biology, membrane",
                "cell biology, organelle",
                "astronomy, galaxy",
            ],
            "answer_text": [
                "a cell has a membrane",
                "the membrane holds the cell",
                "a galaxy of stars",
            ],
        }
    )


def test_score_is_the_weighted_mean_of_field_cosines(pages):
    weights = {"title": 1.0, "keywords": 1.0, "answer": 2.0}
    model = FieldFeatures(weights, combine="per_field", stem=False)
    features = model.fit_transform(pages)
    combined = (features @ features.T).toarray()
    per_field = {}
    for number, (field, vectorizer) in enumerate(model.vectorizers_.items()):
        counts = vectorizer.transform(pages[f"{field}_text"])
        per_field[field] = cosine_similarity(model.weightings_[number].transform(counts))
    expected = sum(weights[f] * per_field[f] for f in weights) / sum(weights.values())
    np.testing.assert_allclose(combined, expected, rtol=1e-5)
    assert np.allclose(np.diag(combined), 1.0)


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_features_read_back_from_arrays_transform_as_the_fitted_ones(pages, combine):
    weights = {"title": 3.0, "keywords": 2.0, "answer": 1.0}
    fitted = FieldFeatures(weights, combine=combine, min_df=1, max_df=1.0)
    features = fitted.fit_transform(pages)
    back = FieldFeatures(weights, combine=combine, min_df=1, max_df=1.0)
    back.from_arrays(fitted.to_arrays())
    pd.testing.assert_frame_equal(back.feature_names_, fitted.feature_names_)
    again = back.transform(pages)
    assert again.shape == features.shape
    np.testing.assert_array_equal(again.toarray(), fitted.transform(pages).toarray())
    written, read_back = fitted.to_arrays(), back.to_arrays()
    assert read_back.keys() == written.keys()
    for name, array in written.items():
        np.testing.assert_array_equal(read_back[name], array)
    back.fit_transform(pages.iloc[:2])  # fitted anew: its arrays are no longer those read
    refitted = back.to_arrays()
    assert any(refitted[name].shape != array.shape for name, array in written.items())


def test_arrays_read_back_are_written_as_they_were_read_without_joining_them_again(pages):
    weights = {"title": 3.0, "keywords": 2.0, "answer": 1.0}
    fitted = FieldFeatures(weights, min_df=1, max_df=1.0)
    fitted.fit_transform(pages)
    arrays = fitted.to_arrays()
    back = FieldFeatures(weights, min_df=1, max_df=1.0).from_arrays({**arrays, "data": [1]})
    back.vectorizers_ = None  # to_arrays may not need them
    assert back.to_arrays().keys() == arrays.keys()


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_feature_names_follow_the_columns(pages, combine):
    model = FieldFeatures({"title": 1.0, "keywords": 1.0}, combine=combine, stem=False)
    features = model.fit_transform(pages)
    names = model.feature_names_
    assert len(names) == features.shape[1]
    expected = {"title", "keywords"} if combine == "per_field" else {"title+keywords"}
    assert set(names["field"]) == expected
    assert "cell biology" in set(names["term"])


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_a_field_with_no_terms_is_left_out(pages, combine):
    empty = pages.assign(keywords_text="")
    model = FieldFeatures({"title": 1.0, "keywords": 1.0}, combine=combine)
    model.fit_transform(empty)
    assert list(model.vectorizers_) == ["title"]
    with pytest.raises(ValueError, match="no field has any term left"):
        FieldFeatures({"keywords": 1.0}, combine=combine).fit_transform(empty)


def test_max_df_share_never_prunes_below_two_pages(pages):
    model = FieldFeatures({"answer": 1.0}, max_df=0.1)  # 0.3 of a page
    model.fit_transform(pages)
    assert "membran" in set(model.feature_names_["term"])  # in 2 of 3 pages


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_a_min_df_share_counts_pages_like_the_count_it_stands_for(pages, combine):
    weights = {"title": 3.0, "keywords": 2.0, "answer": 1.0}

    def terms(min_df):
        model = FieldFeatures(weights, combine=combine, min_df=min_df, max_df=1.0)
        model.fit_transform(pages)
        return set(model.feature_names_["term"])

    everything = terms(1)
    assert terms(0.6) == terms(2) != everything  # 0.6 of 3 pages: in two pages at least
    assert terms(0.3) == everything


def test_tag_analyzer_keeps_whole_tags_and_their_words():
    words = TfidfVectorizer(stop_words="english").build_analyzer()
    assert TagAnalyzer(words)("Cell Biology, the  Cell,, X-ray") == [
        "cell biology",
        "cell",
        "biology",
        "the cell",
        "cell",
        "x-ray",
        "ray",
    ]


def test_one_space_sums_weighted_counts_before_tfidf(pages):
    weights = {"title": 3.0, "keywords": 2.0, "answer": 1.0}
    model = FieldFeatures(weights, stem=False, tf="log", idf_power=1, stop_words="english")
    features = model.fit_transform(pages)
    # the same as one TfidfVectorizer over the fields' text repeated by weight
    analyzer = TfidfVectorizer(stop_words="english").build_analyzer()
    tags = TagAnalyzer(analyzer)
    documents = [
        analyzer(title) * 3 + tags(keywords) * 2 + analyzer(answer)
        for title, keywords, answer in zip(
            pages["title_text"], pages["keywords_text"], pages["answer_text"], strict=True
        )
    ]
    reference = TfidfVectorizer(analyzer=lambda terms: terms, sublinear_tf=True)
    expected = reference.fit_transform(documents)
    assert list(model.feature_names_["term"]) == list(reference.get_feature_names_out())
    np.testing.assert_allclose(features.toarray(), expected.toarray(), rtol=1e-5)
    # a title word matches the same word in another page's answer
    column = list(model.feature_names_["term"]).index("membranes")
    assert features[1, column] > 0 and features[0, column] > 0


def test_weights_below_one_never_give_negative_values(pages):
    for tf in TF_WEIGHTS:
        model = FieldFeatures({"title": 0.1, "answer": 0.2}, tf=tf)
        assert model.fit_transform(pages).data.min() > 0


def test_bm25_scales_a_long_pages_counts_down_by_b():
    counts = sp.csr_matrix(np.array([[2.0, 0.0, 0.0], [2.0, 3.0, 3.0]]))  # lengths 2 and 8
    for b, shorter_weighs_more in ((0.0, False), (0.75, True)):
        weighting = TermWeighting(bm25_k1=5.0, bm25_b=b, idf_power=0).fit(counts)
        weighted = weighting.transform(counts).toarray()
        assert weighting.mean_length_ == 5.0
        assert bool(weighted[0, 0] > weighted[1, 0] + 1e-9) is shorter_weighs_more
        if b:  # 2 * 6 / (2 + 5 * (0.25 + 0.75 * 2 / 5)), by hand
            assert weighted[0, 0] == pytest.approx(12 / (2 + 5 * 0.55))


def test_idf_power_flattens_rarity():
    counts = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]]))
    full = TermWeighting(tf="raw", idf_power=1).fit(counts).idf_
    root = TermWeighting(tf="raw", idf_power=0.5).fit(counts).idf_
    np.testing.assert_allclose(full, [1.0, 1 + np.log(2)])  # scikit-learn's smoothed idf
    np.testing.assert_allclose(root, np.sqrt(full))
    none = TermWeighting(tf="raw", idf_power=0).fit(counts)
    assert none.transform(counts).toarray().tolist() == counts.toarray().tolist()


@pytest.mark.parametrize("tf", TF_WEIGHTS)
def test_weights_are_the_formula_times_the_idf_whatever_the_slices(tf, monkeypatch):
    counts = sp.random(40, 9, density=0.4, format="csr", random_state=3) * 7
    counts.data = np.ceil(counts.data)
    weighting = TermWeighting(tf=tf, bm25_k1=2.0, bm25_b=0.5).fit(counts)
    dense = counts.toarray()
    lengths = dense.sum(axis=1, keepdims=True) / weighting.mean_length_
    with np.errstate(divide="ignore"):
        tf_weight = {
            "raw": dense,
            "log": np.where(dense > 0, 1 + np.log(dense), 0),
            "bm25": dense * 3.0 / (dense + 2.0 * (0.5 + 0.5 * lengths)),
        }[tf]
    expected = tf_weight * weighting.idf_
    monkeypatch.setattr(features_module, "_SLICE", 5)  # many slices, one cut mid-row
    before = counts.copy()
    weighted = weighting.transform(counts)
    assert weighted.dtype == np.float64 and weighted.nnz == counts.nnz
    np.testing.assert_allclose(weighted.toarray(), expected, rtol=1e-12)
    assert (counts != before).nnz == 0  # the counts are left as they are


def test_unknown_tf_weight_is_refused():
    with pytest.raises(ValueError, match="tf must be one of"):
        TermWeighting(tf="sublinear")


def test_unknown_combine_is_refused(pages):
    with pytest.raises(ValueError, match="combine must be one of"):
        FieldFeatures({"title": 1.0}, combine="mean").fit_transform(pages)


def test_stemming_tokenizer_drops_stop_words_then_stems_and_pickles():
    tokenize = StemmingTokenizer("english")
    assert tokenize("the cells divided, dividing cell") == ["cell", "divid", "divid", "cell"]
    again = pickle.loads(pickle.dumps(tokenize))
    assert again("membranes") == ["membran"]
    assert StemmingTokenizer(None)("the cells") == ["the", "cell"]


def _random_texts(n, seed):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)] + ["the", "and", "cells", "cell", "running", "runs"]
    lengths = rng.integers(0, 30, n)
    return [" ".join(rng.choice(words, size=k)) for k in lengths]


@pytest.mark.parametrize("stem", [True, False])
@pytest.mark.parametrize("pruning", [{}, {"max_df": 0.05, "min_df": 40}])
def test_fast_counting_gives_scikit_learns_vocabulary_and_counts(stem, pruning, monkeypatch):
    from sklearn.feature_extraction.text import CountVectorizer

    import recommender.features as features_module

    texts = _random_texts(3000, seed=1)
    ours = FieldFeatures({"answer": 1.0}, stem=stem)._field_vectorizer("answer", {})
    ours.set_params(**pruning)  # in one space the fields are pruned together, elsewhere
    monkeypatch.setattr(features_module._FastCounting, "_BLOCK", 700)  # several blocks
    monkeypatch.setattr(features_module, "_SLICE", 999)  # entries pruned a slice at a time
    theirs = CountVectorizer(
        dtype=np.float32, **{k: v for k, v in ours.get_params().items() if k not in ("dtype",)}
    )
    mine, reference = ours.fit_transform(texts), theirs.fit_transform(texts)
    assert ours.vocabulary_ == theirs.vocabulary_
    assert 0 < len(ours.vocabulary_) < (300 if pruning else 400)  # some terms pruned
    for part in ("indptr", "indices", "data"):  # the same arrays, in the same order
        np.testing.assert_array_equal(getattr(mine, part), getattr(reference, part))
        assert getattr(mine, part).dtype == getattr(reference, part).dtype
    np.testing.assert_array_equal(
        ours.transform(texts[:50]).toarray(), theirs.transform(texts[:50]).toarray()
    )


def test_counting_in_worker_processes_gives_the_same_features(monkeypatch):
    import recommender.features as features_module
    import recommender.workers as workers

    pages = pd.DataFrame(
        {
            f"{f}_text": _random_texts(2500, seed=s)
            for s, f in enumerate(["title", "keywords", "answer"])
        }
    )
    weights = {"title": 3.0, "keywords": 2.0, "answer": 1.0}
    one = FieldFeatures(weights, n_jobs=1, max_df=0.5)
    monkeypatch.setattr(features_module, "PARALLEL_MIN_PAGES", 100)
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 100)
    two = FieldFeatures(weights, n_jobs=2, max_df=0.5)
    calls = []
    real = features_module._FastCounting._count_in_workers

    def counted(self, documents):
        vocabulary, blocks = real(self, documents)
        calls.append(len(documents))
        # renumbered in the workers' int32, not int64: half the memory held until stacked
        assert {block.indices.dtype for block in blocks} == {np.dtype(np.int32)}
        return vocabulary, blocks

    monkeypatch.setattr(features_module._FastCounting, "_count_in_workers", counted)
    a, b = one.fit_transform(pages), two.fit_transform(pages)
    assert calls == [2500, 2500, 2500]  # every field counted by the workers
    assert (a != b).nnz == 0
    np.testing.assert_array_equal(a.indices, b.indices)
    pd.testing.assert_frame_equal(one.feature_names_, two.feature_names_)


def test_count_blocks_are_stacked_one_at_a_time_as_a_stack_of_them_all():
    from recommender.features import _stacked

    rng = np.random.default_rng(5)
    blocks = [
        sp.random(rows, 40, density=0.2, format="csr", dtype=np.float32, random_state=rng)
        for rows in (7, 0, 12, 3)
    ]
    for block in blocks:  # as counted: unsorted columns, int64 indices, 30 columns in use
        block.indices = (block.indices[::-1] % 30).astype(np.int64)
        block.has_sorted_indices = False
    expected = sp.vstack([b.copy() for b in blocks], format="csr")
    expected.resize(expected.shape[0], 50)
    expected.sort_indices()
    stacked = _stacked(blocks, 50, np.float32)
    assert blocks == []  # each freed once copied
    assert stacked.shape == (22, 50) and stacked.indices.dtype == np.int32
    assert stacked.has_sorted_indices
    assert (stacked != expected).nnz == 0
    assert np.array_equal(stacked.indptr, expected.indptr)
    assert np.array_equal(stacked.indices, expected.indices)


def test_field_columns_name_each_terms_column_and_transform_needs_no_union_again(
    pages, monkeypatch
):
    pruning = FieldFeatures(
        {"title": 3.0, "keywords": 2.0, "answer": 1.0}, stem=False, min_df=1, max_df=1
    )
    features = pruning.fit_transform(pages)
    kept = pruning.feature_names_["term"].tolist()
    pruned = 0
    for field, vectorizer in pruning.vectorizers_.items():
        names = vectorizer.get_feature_names_out()
        for term, column in zip(
            names, pruning.field_columns_[list(pruning.vectorizers_).index(field)], strict=True
        ):
            if column < 0:
                assert term not in kept
                pruned += 1
            else:
                assert kept[column] == term
    assert pruned  # "membrane", "cell biology", ... are in two pages: pruned at max_df 1
    # the fitted rows again, exactly, without the fields' vocabularies listed again
    monkeypatch.setattr(
        type(next(iter(pruning.vectorizers_.values()))),
        "get_feature_names_out",
        lambda self: pytest.fail("transform rebuilt the union vocabulary"),
    )
    again = pruning.transform(pages)
    assert (again != features).nnz == 0
    assert (again.indices == features.indices).all() and (again.data == features.data).all()
    # features fitted before field_columns_ existed (an older model file) still transform
    monkeypatch.undo()
    del pruning.field_columns_
    assert (pruning.transform(pages) != features).nnz == 0
    back = FieldFeatures(pruning.weights, stem=False, min_df=1, max_df=1)
    back.from_arrays(pruning.to_arrays())
    assert len(back.field_columns_) == len(pruning.field_columns_) == 3
    for read_back, fitted in zip(back.field_columns_, pruning.field_columns_, strict=True):
        np.testing.assert_array_equal(read_back, fitted)


def test_counting_that_prunes_nothing_hands_on_the_counts_without_a_copy(monkeypatch):
    import recommender.features as features_module

    stacked = []
    real = features_module._stacked
    monkeypatch.setattr(
        features_module, "_stacked", lambda *args: stacked.append(real(*args)) or stacked[-1]
    )
    vectorizer = FieldFeatures({"answer": 1.0})._field_vectorizer("answer", {})
    counts = vectorizer.fit_transform(_random_texts(500, seed=3))
    # scikit-learn's own pruning selects every column again: a whole copy of the counts
    assert np.shares_memory(counts.data, stacked[0].data)
    assert np.shares_memory(counts.indices, stacked[0].indices)


@pytest.mark.parametrize("step", [1, 3, 7, 1 << 22])
def test_bm25_saturation_by_slices_of_rows_is_the_whole_formula(monkeypatch, step):
    monkeypatch.setattr(features_module, "_SLICE", step)  # rows longer than a slice too
    rng = np.random.default_rng(3)
    counts = sp.random(40, 30, density=0.3, format="csr", random_state=rng, dtype=np.float64)
    counts.data = np.ceil(counts.data * 5)
    scale = rng.uniform(0.5, 3.0, 40)
    values = counts.data.copy()
    features_module._saturate(values, counts.indptr, scale, 5.0)
    whole = np.repeat(scale, np.diff(counts.indptr)) + counts.data
    np.testing.assert_array_equal(values, counts.data * 6.0 / whole)


def test_new_values_share_sorted_indices_and_copy_unsorted_ones():
    ordered = sp.csr_matrix(np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0]]))
    shared = features_module._with_values(ordered, ordered.data * 2)
    assert np.shares_memory(shared.indices, ordered.indices)
    assert shared.toarray().tolist() == [[0.0, 2.0, 4.0], [6.0, 0.0, 8.0]]
    unsorted = sp.csr_matrix(
        (np.array([2.0, 1.0]), np.array([2, 0]), np.array([0, 2])), shape=(1, 3)
    )
    copied = features_module._with_values(unsorted, unsorted.data * 10)
    assert not np.shares_memory(copied.indices, unsorted.indices)
    copied.sort_indices()
    assert unsorted.indices.tolist() == [2, 0]  # the original's order is untouched
    assert copied.toarray().tolist() == [[10.0, 0.0, 20.0]]
    for matrix in (ordered, unsorted):  # empty last rows and columns keep their place
        padded = sp.csr_matrix((matrix.data, matrix.indices, np.r_[matrix.indptr, matrix.nnz]))
        padded.resize(matrix.shape[0] + 1, matrix.shape[1] + 2)
        assert features_module._with_values(padded, padded.data).shape == padded.shape


def test_a_float_max_df_is_a_share_of_the_pages_and_never_under_two():
    # "common" in 6 of 10 pages, "half" in 5: at 0.5 of 10 pages, at most 5 pages
    pages = pd.DataFrame(
        {"answer_text": [f"common half w{i}" for i in range(5)] + ["common z", "y"] + ["x"] * 3}
    )
    model = FieldFeatures({"answer": 1.0}, stem=False, max_df=0.5)
    model.fit_transform(pages)
    assert model.counting_["max_df"] == 5
    terms = set(model.feature_names_["term"])
    assert "half" in terms and "common" not in terms
    # on 3 pages 0.1 is 2 pages, never fewer: a term in 2 pages stays, one in all 3 goes
    few = pd.DataFrame({"answer_text": ["every pair", "every pair", "every"]})
    small = FieldFeatures({"answer": 1.0}, stem=False, max_df=0.1)
    small.fit_transform(few)
    assert small.counting_["max_df"] == 2
    assert list(small.feature_names_["term"]) == ["pair"]


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_a_field_weighing_zero_is_never_read(pages, combine):
    model = FieldFeatures({"title": 1.0, "answer": 0.0}, combine=combine, stem=False)
    features = model.fit_transform(pages.drop(columns="answer_text"))
    assert list(model.vectorizers_) == ["title"]
    assert "holds" not in set(model.feature_names_["term"])  # an answer's word only
    assert features.shape[1] == len(model.feature_names_)
    assert np.isfinite(features.data).all()


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_an_empty_field_before_others_leaves_only_itself_out(pages, combine):
    empty = pages.assign(keywords_text="")
    model = FieldFeatures({"keywords": 1.0, "title": 1.0, "answer": 1.0}, combine=combine)
    model.fit_transform(empty)
    assert list(model.vectorizers_) == ["title", "answer"]


def test_the_error_for_no_terms_at_all_names_each_field_and_its_problem(pages):
    empty = pages.assign(keywords_text="", answer_text="the and of")
    model = FieldFeatures({"keywords": 1.0, "answer": 1.0}, stop_words="english")
    with pytest.raises(ValueError) as raised:
        model.fit_transform(empty)
    message = str(raised.value)
    assert message.startswith("no field has any term left: keywords: empty vocabulary")
    assert "; answer: empty vocabulary" in message
    per_field = FieldFeatures({"title": 1.0}, combine="per_field", min_df=3)  # no word in all
    with pytest.raises(ValueError) as raised:
        per_field.fit_transform(pages)
    assert str(raised.value) == (
        "no field has any term left: title: "
        "After pruning, no terms remain. Try a lower min_df or a higher max_df."
    )


def test_one_space_refuses_a_min_df_that_prunes_every_term(pages):
    model = FieldFeatures({"title": 1.0, "answer": 1.0}, min_df=4)  # of 3 pages
    with pytest.raises(ValueError) as raised:
        model.fit_transform(pages)
    assert str(raised.value) == "no field has any term left: every term pruned by min_df/max_df"


def test_one_space_counts_the_pages_of_a_term_over_all_fields_for_min_df():
    # "apple" is in one page's title and another page's answer: in 2 pages in all
    pages = pd.DataFrame(
        {"title_text": ["apple pie", "pear tart", "plum jam"], "answer_text": ["", "apple", ""]}
    )
    model = FieldFeatures({"title": 1.0, "answer": 1.0}, stem=False, min_df=2)
    model.fit_transform(pages)
    assert list(model.feature_names_["term"]) == ["apple"]


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_term_weight_settings_reach_the_term_weighting(pages, combine):
    settings = {"tf": "bm25", "bm25_k1": 1.2, "bm25_b": 0.3, "idf_power": 1.0}
    model = FieldFeatures({"answer": 1.0}, combine=combine, stem=False, **settings)
    features = model.fit_transform(pages)
    counts = model.vectorizers_["answer"].transform(pages["answer_text"])
    weighted = TermWeighting(**settings).fit(counts).transform(counts)
    expected = weighted.toarray() / np.linalg.norm(weighted.toarray(), axis=1, keepdims=True)
    np.testing.assert_allclose(features.toarray(), expected, rtol=1e-6)


def test_by_default_features_weigh_terms_by_bm25_k1_5_b_075_and_the_root_of_the_idf(pages):
    model = FieldFeatures({"answer": 1.0}, stem=False)
    features = model.fit_transform(pages)
    counts = model.vectorizers_["answer"].transform(pages["answer_text"])
    explicit = TermWeighting(tf="bm25", bm25_k1=5.0, bm25_b=0.75, idf_power=0.5)
    weighted = explicit.fit(counts).transform(counts).toarray()
    expected = weighted / np.linalg.norm(weighted, axis=1, keepdims=True)
    np.testing.assert_allclose(features.toarray(), expected, rtol=1e-6)


def test_term_weighting_defaults_to_bm25_k1_5_b_075_and_the_root_of_the_idf():
    counts = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [1.0, 3.0, 0.0], [0.0, 0.0, 4.0]]))
    weighting = TermWeighting().fit(counts)
    dense = counts.toarray()
    lengths = dense.sum(axis=1, keepdims=True) / 11 * 3  # mean length 11 / 3
    idf = np.log(4 / np.array([3.0, 2.0, 3.0])) + 1  # in 2, 1 and 2 of 3 pages
    expected = dense * 6 / (dense + 5 * (0.25 + 0.75 * lengths)) * np.sqrt(idf)
    np.testing.assert_allclose(weighting.transform(counts).toarray(), expected, rtol=1e-12)


def test_term_weighting_fitted_on_no_counts_takes_the_mean_page_length_as_one():
    none = TermWeighting(idf_power=0).fit(sp.csr_matrix((0, 2)))
    assert none.mean_length_ == 1.0
    blank = TermWeighting(idf_power=0).fit(sp.csr_matrix((2, 2)))  # pages without a term
    assert blank.mean_length_ == 0.0
    counts = sp.csr_matrix(np.array([[2.0, 0.0]]))  # length 2, twice the mean taken as 1
    expected = 2 * 6 / (2 + 5 * (0.25 + 0.75 * 2))
    for weighting in (none, blank):
        assert weighting.transform(counts).toarray()[0, 0] == pytest.approx(expected)


def test_stemming_drops_the_stop_words_asked_for(pages):
    model = FieldFeatures({"title": 1.0}, stop_words="english")
    model.fit_transform(pages)
    assert list(model.feature_names_["term"]) == ["cell", "galaxi", "membran", "star"]
    assert StemmingTokenizer()("the cells and a membrane") == ["cell", "membran"]


def test_ngram_ranges_apply_to_their_field_only(pages):
    model = FieldFeatures({"title": 1.0, "answer": 1.0}, {"title": (1, 2)}, stem=False)
    model.fit_transform(pages)
    terms = set(model.feature_names_["term"])
    assert {"cells and", "membranes of", "stars and"} <= terms
    assert "a cell" not in terms and "cell has" not in terms  # the answer's words alone


def test_fitting_and_transforming_warn_about_no_unused_counting_setting(pages):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stem in (True, False):
            model = FieldFeatures(
                {"title": 1.0, "keywords": 1.0},
                {"title": (1, 2), "keywords": (1, 2)},
                stem=stem,
                stop_words="english",
            )
            model.fit_transform(pages)
            model.transform(pages)


@pytest.mark.parametrize("combine", ["per_field", "concatenate"])
def test_features_are_float32_when_fitted_and_when_transformed(pages, combine):
    model = FieldFeatures({"title": 3.0, "answer": 1.0}, combine=combine)
    assert model.fit_transform(pages).dtype == np.float32
    assert model.transform(pages).dtype == np.float32


def test_a_fitted_vectorizer_counts_no_pages_as_an_empty_matrix(pages):
    model = FieldFeatures({"title": 1.0}, stem=False)
    model.fit_transform(pages)
    none = model.vectorizers_["title"].transform(pages["title_text"].iloc[:0])
    assert none.shape == (0, len(model.feature_names_))


def test_features_without_arrays_read_still_write_their_arrays(pages):
    # fitted by a version before arrays_read_ (an older model file)
    model = FieldFeatures({"title": 1.0, "answer": 1.0})
    model.fit_transform(pages)
    written = model.to_arrays()
    del model.arrays_read_
    again = model.to_arrays()
    assert again.keys() == written.keys()
    for name, array in written.items():
        np.testing.assert_array_equal(again[name], array)


@pytest.mark.parametrize("pruning", [{}, {"max_df": 16, "min_df": 13}])
def test_fast_counting_keeps_scikit_learns_max_features(pruning):
    from sklearn.feature_extraction.text import CountVectorizer

    texts = _random_texts(300, seed=7)
    ours = FieldFeatures({"answer": 1.0}, stem=False)._field_vectorizer("answer", {})
    ours.set_params(max_features=25, **pruning)
    theirs = CountVectorizer(**ours.get_params())
    mine, reference = ours.fit_transform(texts), theirs.fit_transform(texts)
    assert len(ours.vocabulary_) == 25
    if pruning:  # max_df and min_df prune before the 25 most frequent are kept
        frequency = np.diff(mine.tocsc().indptr)
        assert frequency.min() >= 13 and frequency.max() <= 16
    assert ours.vocabulary_ == theirs.vocabulary_
    assert (mine != reference).nnz == 0


def test_a_progress_bar_over_the_fields_only_when_asked(pages, capsys):
    FieldFeatures({"title": 1.0, "answer": 1.0}).fit_transform(pages)
    FieldFeatures({"title": 1.0, "answer": 1.0}).fit_counts(pages)
    assert capsys.readouterr().err == ""
    FieldFeatures({"title": 1.0, "answer": 1.0}).fit_transform(pages, progress=True)
    assert "vectorising: 100%" in capsys.readouterr().err


def test_one_space_prunes_max_df_over_the_combined_counts_only():
    # every title word is in all 3 pages: pruned from the one space, yet the title is fitted
    pages = pd.DataFrame(
        {"title_text": ["same", "same", "same"], "answer_text": ["apple", "apple pear", "plum"]}
    )
    model = FieldFeatures({"title": 1.0, "answer": 1.0}, stem=False, max_df=2)
    model.fit_transform(pages)
    assert list(model.vectorizers_) == ["title", "answer"]
    assert list(model.feature_names_["field"].unique()) == ["title+answer"]
    assert list(model.feature_names_["term"]) == ["apple", "pear", "plum"]
