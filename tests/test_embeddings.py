"""The embedding cache and blend with a fake encoder: no torch needed."""

import builtins

import numpy as np
import pandas as pd
import pytest

from recommender.embeddings import (
    EmbeddingCache,
    embedding_text,
    load_encoder,
    semantic_rescore,
)
from recommender.errors import ConfigError


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
