import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from recommender.features import FieldFeatures, TagAnalyzer


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
    model = FieldFeatures(weights, sublinear_tf=True)
    features = model.fit_transform(pages)
    combined = (features @ features.T).toarray()
    per_field = {}
    for field, vectorizer in model.vectorizers_.items():
        per_field[field] = cosine_similarity(vectorizer.transform(pages[f"{field}_text"]))
    expected = sum(weights[f] * per_field[f] for f in weights) / sum(weights.values())
    np.testing.assert_allclose(combined, expected, rtol=1e-5)
    assert np.allclose(np.diag(combined), 1.0)


def test_feature_names_follow_the_columns(pages):
    model = FieldFeatures({"title": 1.0, "keywords": 1.0})
    features = model.fit_transform(pages)
    names = model.feature_names_
    assert len(names) == features.shape[1]
    assert set(names["field"]) == {"title", "keywords"}
    assert "cell biology" in set(names.loc[names["field"] == "keywords", "term"])


def test_a_field_with_no_terms_is_left_out(pages):
    empty = pages.assign(keywords_text="")
    model = FieldFeatures({"title": 1.0, "keywords": 1.0})
    model.fit_transform(empty)
    assert list(model.vectorizers_) == ["title"]
    with pytest.raises(ValueError, match="no field has any term left"):
        FieldFeatures({"keywords": 1.0}).fit_transform(empty)


def test_max_df_share_never_prunes_below_two_pages(pages):
    model = FieldFeatures({"answer": 1.0}, max_df=0.1)  # 0.3 of a page
    model.fit_transform(pages)
    assert "membrane" in model.vectorizers_["answer"].vocabulary_  # in 2 of 3 pages


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
