"""The embedding cache and blend with a fake encoder: no torch needed.

The tests of the real model (last) skip where the ``embeddings`` extra is not
installed, or the model cannot be loaded offline.
"""

import builtins
import re
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from recommender import Recommender, load_corpus
from recommender.embeddings import (
    EmbeddingCache,
    default_cache_folder,
    embedding_text,
    load_encoder,
    semantic_rescore,
)
from recommender.errors import ConfigError

from .conftest import SAMPLE
from .test_model import topic_pages, write_site


class FakeEncoder:
    """Vectors from text length and vowel count; records what it was asked."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), sum(c in "aeiou" for c in t)] for t in texts], dtype=float)


def test_cache_encodes_each_distinct_text_once(tmp_path):
    encoder = FakeEncoder()
    cache = EmbeddingCache(tmp_path / "emb", encoder, model="fake")
    first = cache.embed(["cell", "stars", "cell"])
    assert encoder.calls == [["cell", "stars"]]
    np.testing.assert_array_equal(first, [[4, 1], [5, 1], [4, 1]])
    again = EmbeddingCache(tmp_path / "emb", encoder, model="fake").embed(["stars", "orbit"])
    assert encoder.calls[1:] == [["orbit"]]  # "stars" came from the folder
    np.testing.assert_array_equal(again, [[5, 1], [5, 2]])
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 3
    assert not list((tmp_path / "emb").glob(".*"))  # no temporary file left


def test_a_damaged_cache_file_is_encoded_again(tmp_path):
    encoder = FakeEncoder()
    cache = EmbeddingCache(tmp_path, encoder, model="fake")
    cache.embed(["cell", "stars"])
    (tmp_path / f"{cache.key('cell')}.npy").write_bytes(b"\x93NUMPY garbage")
    again = EmbeddingCache(tmp_path, encoder, model="fake").embed(["stars", "cell", "stars"])
    assert encoder.calls[1:] == [["cell"]]
    np.testing.assert_array_equal(again, [[5, 1], [4, 1], [5, 1]])
    assert again.dtype == np.float32


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([[1.0, 0.0], [np.nan, 1.0]], "NaN or infinite numbers for the text 'stars'"),
        ([[1.0, 0.0], [np.inf, 1.0]], "NaN or infinite numbers for the text 'stars'"),
        ([[1.0, 0.0]], r"shape \(1, 2\) for 2 texts"),
        ([1.0, 0.0], r"shape \(2,\) for 2 texts"),
    ],
)
def test_bad_vectors_from_the_encoder_are_a_config_error_and_never_cached(
    tmp_path, vectors, message
):
    cache = EmbeddingCache(tmp_path, lambda texts: np.array(vectors), model="odd")
    with pytest.raises(ConfigError, match="the embedding model 'odd' gave .*" + message):
        cache.embed(["cell", "stars"])
    assert not list(tmp_path.iterdir())


def test_vectors_of_two_sizes_under_one_model_name_are_a_config_error(tmp_path):
    EmbeddingCache(tmp_path, FakeEncoder(), model="fake").embed(["cell"])
    longer = EmbeddingCache(tmp_path, lambda texts: np.ones((len(texts), 3)), model="fake")
    with pytest.raises(ConfigError, match=r"vectors of \[2, 3\] numbers in the cache at"):
        longer.embed(["cell", "stars"])


def test_an_encoder_giving_nan_stops_the_fit_with_a_config_error(sample_pages, tmp_path):
    def nan_encoder(texts):
        return np.full((len(texts), 4), np.nan)

    model = Recommender(semantic_weight=0.5, embedding_model=nan_encoder, embedding_cache=tmp_path)
    with pytest.raises(ConfigError, match="nan_encoder' gave a vector with NaN"):
        model.fit(sample_pages)


def test_cache_keys_differ_by_model_and_text(tmp_path):
    a = EmbeddingCache(tmp_path, FakeEncoder(), model="a")
    b = EmbeddingCache(tmp_path, FakeEncoder(), model="b")
    assert a.key("cell") != b.key("cell") != b.key("cells")
    assert a.key("cell") == EmbeddingCache(tmp_path, FakeEncoder(), model="a").key("cell")


def test_blend_with_weight_zero_changes_nothing_and_needs_no_vectors():
    candidates, scores = np.array([[1], [0]]), np.array([[0.3], [0.3]])
    assert semantic_rescore(candidates, scores, None, 0.0) == (candidates, scores)
    with pytest.raises(ConfigError, match=r'pip install "recommender\[embeddings\]"'):
        semantic_rescore(candidates, scores, None, 0.5)


def test_blend_mixes_both_cosines():
    candidates = np.array([[1, 2], [0, 2], [0, 1]])
    scores = np.array([[0.5, 0.4], [0.5, 0.1], [0.4, 0.1]])
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    found, blended = semantic_rescore(candidates, scores, vectors, 0.5)
    assert found[0].tolist() == [2, 1]
    np.testing.assert_allclose(blended[0], [0.5 * 1 + 0.5 * 0.4, 0.5 * 0 + 0.5 * 0.5])


def test_missing_extra_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_sentence_transformers(name, *args, **kwargs):
        if name.startswith("sentence_transformers"):
            raise ImportError("No module named 'sentence_transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sentence_transformers)
    with pytest.raises(ConfigError, match=r'pip install "recommender\[embeddings\]"'):
        load_encoder()


def test_embedding_text_is_title_then_answer_start():
    pages = pd.DataFrame({"title_text": ["Cells"], "answer_text": ["a" * 50]})
    assert embedding_text(pages, max_chars=3).tolist() == ["Cells. aaa"]


def test_default_cache_is_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_folder() == tmp_path / "recommender" / "embeddings"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert str(default_cache_folder()).endswith(".cache/recommender/embeddings")


def test_cache_logs_how_many_pages_need_encoding(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path, FakeEncoder(), model="fake")
    cache.embed(["cell"])
    with caplog.at_level("INFO", logger="recommender.embeddings"):
        cache.embed(["cell", "stars", "orbit", "stars"])
    assert "3 of 4 pages need encoding" in caplog.text


# ---------------------------------------------------------------- through the Recommender


class NumberEncoder(FakeEncoder):
    """Pages of topic_pages with the same number{i} mean the same thing, whatever their topic."""

    def __call__(self, texts):
        self.calls.append(list(texts))
        numbers = [int(re.search(r"number(\d+)", t).group(1)) for t in texts]
        return np.eye(8)[numbers] + 0.01  # not unit length: the model normalises


@pytest.fixture(scope="module")
def topic_site(tmp_path_factory):
    return write_site(tmp_path_factory.mktemp("topics"), topic_pages())


@pytest.fixture(scope="module")
def sample_pages():
    return load_corpus(SAMPLE).pages


PLAIN = {"coverage": False, "stability": 0.0, "min_df": 1}


def semantic(tmp_path, encoder, weight=0.5, **params):
    return Recommender(
        semantic_weight=weight, embedding_model=encoder, embedding_cache=tmp_path / "emb", **params
    )


def test_weight_zero_is_the_plain_model_and_embeds_nothing(sample_pages, tmp_path):
    encoder = FakeEncoder()
    model = semantic(tmp_path, encoder, weight=0.0).fit(sample_pages)
    plain = Recommender().fit(sample_pages)
    assert model.related_.to_csv() == plain.related_.to_csv()
    assert model.embeddings_ is None and encoder.calls == []
    assert not (tmp_path / "emb").exists()
    assert "embeddings" not in model.timings_


def test_blend_puts_the_pages_the_embeddings_favour_first(topic_site, tmp_path):
    tfidf = Recommender(**PLAIN).fit(topic_site).related_
    blended = semantic(tmp_path, NumberEncoder(), weight=0.9, **PLAIN).fit(topic_site).related_
    first = "/topics/cells-2"
    by_tfidf = tfidf[tfidf["source_url"] == first]["target_url"]
    by_blend = blended[blended["source_url"] == first]["target_url"]
    assert by_tfidf.iloc[0].startswith("/topics/cells-")  # same topic: shared words
    # the other topics' number2 pages: the same meaning, found among the TF-IDF candidates
    assert set(by_blend.iloc[:2]) == {"/topics/trade-2", "/topics/stars-2"}


def test_the_nearest_pages_by_embedding_join_the_candidates(topic_site, tmp_path):
    few = {**PLAIN, "n_candidates": 4, "n_links": 2}
    first = "/topics/cells-2"
    twins = {"/topics/trade-2", "/topics/stars-2"}  # number2: the same meaning, other words
    tfidf_only = semantic(tmp_path, NumberEncoder(), 0.9, n_semantic_candidates=0, **few)
    tfidf_only.fit(topic_site)
    row = tfidf_only.urls_.get_loc(first)
    assert not twins & set(tfidf_only.urls_[tfidf_only.candidates_[row]])  # TF-IDF misses them
    assert tfidf_only.semantic_candidates_.shape == (len(topic_site), 0)
    links = tfidf_only.related_
    assert not twins & set(links[links["source_url"] == first]["target_url"])
    joined = semantic(tmp_path, NumberEncoder(), 0.9, n_semantic_candidates=2, **few)
    links = joined.fit(topic_site).related_
    assert set(links[links["source_url"] == first]["target_url"]) == twins
    nearest = set(joined.urls_[joined.semantic_candidates_[row]])
    assert joined.semantic_candidates_.shape == (len(topic_site), 3) and nearest == {first, *twins}
    # their scores are blended as any candidate's: weight x cosine + rest x TF-IDF cosine
    chosen = links[links["source_url"] == first]
    cols = joined.urls_.get_indexer(chosen["target_url"])
    tfidf = joined.features_[[row]].dot(joined.features_[cols].T).toarray().ravel()
    dense = joined.embeddings_[cols] @ joined.embeddings_[row]
    np.testing.assert_allclose(chosen["score"], 0.9 * dense + 0.1 * tfidf, atol=1e-6)


def test_update_keeps_the_nearest_pages_by_embedding_of_a_fit(sample_pages, tmp_path):
    model = semantic(tmp_path, FakeEncoder(), n_semantic_candidates=3).fit(sample_pages)
    edited = sample_pages.drop(sample_pages.index[[4, 30]])
    url = edited.index[7]
    edited.loc[url, "answer_text"] = "Entirely new words about quasars and pulsars."
    model.update(edited, changed=[url])
    fresh = semantic(tmp_path, FakeEncoder(), n_semantic_candidates=3).fit(edited)
    np.testing.assert_array_equal(model.semantic_candidates_, fresh.semantic_candidates_)
    np.testing.assert_array_equal(
        model.semantic_candidate_scores_, fresh.semantic_candidate_scores_
    )


@pytest.mark.parametrize("weight", [0.3, 1.0])
def test_link_scores_blend_both_cosines_and_rank_the_links(topic_site, tmp_path, weight):
    model = semantic(tmp_path, NumberEncoder(), weight=weight, **PLAIN).fit(topic_site)
    links = model.related_
    rows = model.urls_.get_indexer(links["source_url"])
    cols = model.urls_.get_indexer(links["target_url"])
    tfidf = np.asarray(model.features_[rows].multiply(model.features_[cols]).sum(axis=1)).ravel()
    dense = (model.embeddings_[rows] * model.embeddings_[cols]).sum(axis=1)
    np.testing.assert_allclose(links["score"], weight * dense + (1 - weight) * tfidf, atol=1e-6)
    for _, page in links.groupby("source_url"):
        assert page["score"].is_monotonic_decreasing
    np.testing.assert_allclose(np.linalg.norm(model.embeddings_, axis=1), 1, atol=1e-6)


def test_a_second_fit_encodes_only_new_and_changed_texts(sample_pages, tmp_path):
    first = FakeEncoder()
    model = semantic(tmp_path, first).fit(sample_pages)
    distinct = len(set(embedding_text(sample_pages)))
    assert sum(map(len, first.calls)) == distinct
    again = FakeEncoder()  # another instance of the same class: the same cache keys
    same = semantic(tmp_path, again).fit(sample_pages)
    assert again.calls == [] and same.related_.to_csv() == model.related_.to_csv()
    edited = sample_pages.copy()
    edited.loc[edited.index[0], "answer_text"] = "A new answer about nebulae."
    semantic(tmp_path, again).fit(edited)
    assert again.calls == [[embedding_text(edited.iloc[:1]).iloc[0]]]


def test_update_encodes_only_new_and_changed_pages(sample_pages, tmp_path):
    encoder = FakeEncoder()
    full = semantic(tmp_path, encoder).fit(sample_pages)
    gone = sample_pages.index[[3, 17, 40]]
    model = clone(full).fit(sample_pages)
    encoder = model.embedding_model  # clone copied it
    encoder.calls.clear()
    model.update(sample_pages.drop(gone), changed=[])
    assert not model.related_["target_url"].isin(gone).any()
    model.update(sample_pages, changed=[])  # the deleted pages come back: from the cache
    assert encoder.calls == []
    assert model.related_.to_csv() == full.related_.to_csv()
    np.testing.assert_array_equal(model.embeddings_, full.embeddings_)
    edited = sample_pages.copy()
    url = edited.index[5]
    edited.loc[url, "answer_text"] = "Entirely new words about quasars."
    model.update(edited, changed=[url])
    assert encoder.calls == [[embedding_text(edited.loc[[url]]).iloc[0]]]
    fresh = semantic(tmp_path, encoder).fit(edited).embeddings_
    np.testing.assert_allclose(model.embeddings_, fresh, atol=1e-6)


def test_update_of_a_model_fitted_without_embeddings_embeds_every_page(sample_pages, tmp_path):
    model = Recommender().fit(sample_pages)
    encoder = FakeEncoder()
    model.set_params(semantic_weight=0.5, embedding_model=encoder, embedding_cache=tmp_path)
    model.update(sample_pages, changed=[])
    assert model.embeddings_.shape[0] == len(sample_pages)
    assert sum(map(len, encoder.calls)) == len(set(embedding_text(sample_pages)))
    assert model.search_params_["semantic_weight"] == 0.5  # the settings it was updated with
    links = model.related_.copy()
    assert model.set_params(n_links=5).relink(sample_pages).related_.equals(links)
    with pytest.raises(ConfigError, match=r"^semantic_weight changed since the fit"):
        model.set_params(semantic_weight=0.3).update(sample_pages, changed=[])


def without_sentence_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails, find_spec None


def test_missing_extra_is_a_config_error_before_any_work(sample_pages, monkeypatch):
    without_sentence_transformers(monkeypatch)
    model = Recommender(semantic_weight=0.5)
    with pytest.raises(
        ConfigError, match=r'needs sentence embeddings: pip install "recommender\[embeddings\]"'
    ):
        model.fit(sample_pages)
    assert not hasattr(model, "related_")
    Recommender(semantic_weight=0.0).check_params()  # off: nothing needed
    Recommender(semantic_weight=0.5, embedding_model=FakeEncoder()).check_params()  # own encoder


# ---------------------------------------------------------------- the real model (the extra)


@pytest.fixture(scope="module")
def real_encoder():
    pytest.importorskip("sentence_transformers")
    try:
        return load_encoder(n_threads=1)
    except ConfigError as exc:  # installed, but the model cannot be loaded offline here
        pytest.skip(str(exc))


def test_real_model_gives_unit_vectors_that_know_related_questions(real_encoder):
    vectors = real_encoder(
        [
            "How do I keep bread from going stale?",
            "What is the best way to store a loaf so it stays fresh?",
            "Why do stars twinkle at night?",
        ]
    )
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated


def test_a_model_that_cannot_be_loaded_is_a_config_error_naming_it(real_encoder, tmp_path):
    with pytest.raises(ConfigError, match=r"cannot load the embedding model .*no-model-here"):
        load_encoder(str(tmp_path / "no-model-here"))


def test_real_model_through_the_recommender(real_encoder, sample_pages, tmp_path):
    params = {"semantic_weight": 0.5, "embedding_cache": tmp_path, "n_jobs": 1}
    model = Recommender(**params).fit(sample_pages)
    assert model.embeddings_.shape == (len(sample_pages), 384)
    assert len(list(tmp_path.glob("*.npy"))) == len(set(embedding_text(sample_pages)))
    assert (model.related_.groupby("source_url").size() == 5).all()
    again = Recommender(**params).fit(sample_pages)  # from the cache
    assert again.related_.to_csv() == model.related_.to_csv()
