import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import recommender.model as model_module
from recommender import Recommender, evaluate, load_corpus
from recommender.errors import ConfigError, ModelFileError
from recommender.model import LINK_COLUMNS, LINKING_PARAMETERS, RUNNING_PARAMETERS, settings_differ
from recommender.rules import EditorialRules, Never

from .conftest import SAMPLE
from .test_coverage import orphan_five


def write_site(root, pages):
    """Write pages (dicts with folder, slug, title, answer, ...) as a site; return its pages frame."""
    for page in pages:
        folder = root / page.get("folder", "topics")
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            "---",
            f"title: {page['title']}",
            f"question: {page.get('question', page['title'])}",
            f"answer: {page['answer']}",
            f"subject: {page.get('subject', 'Topics')}",
            "seo:",
            f"  page_keywords: {page.get('keywords', '')}",
            f"url: /{page.get('folder', 'topics')}/{page['slug']}",
        ]
        if page.get("no_index"):
            lines.append("no_index: true")
        (folder / f"{page['slug']}.md").write_text("\n".join([*lines, "---", ""]), encoding="utf-8")
    corpus = load_corpus(root)
    assert corpus.errors.empty, corpus.errors["message"].tolist()
    return corpus.pages


TOPICS = {
    "cells": "cell membrane nucleus mitochondria organelle",
    "trade": "tariff import export trade quota",
    "stars": "star galaxy telescope nebula orbit",
}


def topic_pages(per_topic=6):
    pages = []
    for topic, words in TOPICS.items():
        vocabulary = words.split()
        for i in range(per_topic):
            picked = " ".join(vocabulary[j % 5] for j in range(i, i + 3))
            pages.append(
                {
                    "slug": f"{topic}-{i}",
                    "title": f"Question {i} about {topic} {vocabulary[i % 5]}",
                    "answer": f"An answer on {picked} and {vocabulary[(i + 1) % 5]} number{i}.",
                    "keywords": f"{topic}, {vocabulary[i % 5]}",
                }
            )
    return pages


@pytest.fixture(scope="module")
def sample_pages():
    return load_corpus(SAMPLE).pages


@pytest.fixture(scope="module")
def sample_model(sample_pages):
    return Recommender(min_df=1, max_df=0.5).fit(sample_pages)


# ---------------------------------------------------------------- estimator conventions


def test_init_is_keyword_only_and_only_stores():
    with pytest.raises(TypeError):
        Recommender(5)
    model = Recommender(n_links=3, field_weights={"title": 2.0}, max_df=0.7)
    assert model.get_params()["n_links"] == 3
    assert model.field_weights == {"title": 2.0}
    assert not hasattr(model, "related_")
    assert model.set_params(n_links=4) is model and model.n_links == 4
    assert clone(model).get_params() == model.get_params()


def test_fit_returns_self_with_documented_links(sample_pages, sample_model):
    model = Recommender(min_df=1, max_df=0.5)
    assert model.fit(sample_pages) is model
    pd.testing.assert_frame_equal(model.related_, sample_model.related_)
    related = sample_model.related_
    assert list(related.columns) == list(LINK_COLUMNS)
    assert related["rank"].between(1, 5).all()
    assert (related.groupby("source_url").size() == 5).all()
    assert set(related["source_url"]) == set(sample_pages.index)
    assert related["score"].between(0, 1.0001).all()
    # within each page, ranks follow score descending
    for _, links in related.groupby("source_url"):
        assert links["rank"].tolist() == list(range(1, len(links) + 1))
        assert links["score"].is_monotonic_decreasing


@pytest.mark.parametrize("shuffled", [False, True], ids=["sorted", "not-sorted-by-url"])
def test_fit_does_not_modify_the_pages(sample_pages, shuffled):
    pages = sample_pages.sample(frac=1, random_state=0) if shuffled else sample_pages.copy()
    assert pages.index.is_monotonic_increasing is not shuffled
    before = pages.copy(deep=True)
    keywords_before = [list(words) for words in pages["keywords"]]
    Recommender(min_df=1).fit(pages)  # the caller's own frame, not a copy
    pd.testing.assert_frame_equal(pages, before)
    assert [list(words) for words in pages["keywords"]] == keywords_before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_links": 0}, r"'n_links' parameter .* int in the range \[1, inf\)\. Got 0"),
        ({"n_links": 2.5}, r"'n_links' parameter .* Got 2\.5"),
        ({"n_links": True}, "n_links must be an integer, not True or False, got True"),
        ({"n_semantic_candidates": True}, "n_semantic_candidates must be an integer, not True"),
        ({"n_semantic_candidates": -1}, r"'n_semantic_candidates' parameter .* Got -1"),
        ({"n_candidates": 3}, r"n_candidates must be at least n_links \(5\), got 3"),
        ({"field_weights": {"title": -1}}, "field_weights must be a mapping"),
        ({"field_weights": {"title": 0}}, "field_weights must be a mapping"),
        ({"field_weights": ["title"]}, r"'field_weights' parameter .* Got \['title'\]"),
        ({"max_df": 1.5}, r"'max_df' parameter .* Got 1\.5"),
        ({"max_df": 1}, r"'max_df' parameter .* int in the range \[2, inf\)\. Got 1 "),
        ({"min_df": 0}, r"'min_df' parameter .* Got 0"),
        ({"ngram_range": (2, 1)}, "ngram_range must be a pair"),
        ({"ngram_range": {"title": (0, 1)}}, "ngram_range must be a pair"),
        ({"duplicate_threshold": 2}, r"'duplicate_threshold' parameter .* Got 2"),
        ({"duplicate_threshold": 0}, r"'duplicate_threshold' parameter .* \(0\.0, 1\.0\]\. Got 0 "),
        ({"coverage_tolerance": -0.1}, r"'coverage_tolerance' parameter .* Got -0\.1"),
        ({"min_score": "high"}, r"'min_score' parameter .* Got 'high'"),
        ({"min_score": 1.0}, r"'min_score' parameter .* \[0\.0, 1\.0\)\. Got 1\.0"),
        ({"stop_words": "french"}, r"'stop_words' parameter .* Got 'french'"),
        ({"stop_words": ["a", 1]}, "stop_words must be 'english', a list of words or None"),
        ({"coverage": "yes"}, r"'coverage' parameter .* Got 'yes'"),
        ({"n_jobs": 0}, "n_jobs must be None, a positive integer or a negative one"),
        ({"max_in_links": 0}, r"'max_in_links' parameter .* Got 0"),
        ({"block_size": -1}, r"'block_size' parameter .* Got -1"),
        ({"semantic_weight": 1.5}, r"'semantic_weight' parameter .* \[0\.0, 1\.0\]\. Got 1\.5"),
        ({"semantic_weight": True}, "semantic_weight must be a number from 0 to 1, got True"),
        ({"embedding_model": 3}, r"'embedding_model' parameter .* Got 3"),
        ({"embedding_cache": 3}, r"'embedding_cache' parameter .* Got 3"),
    ],
)
def test_bad_parameters_raise_value_errors_naming_the_value(sample_pages, params, message):
    with pytest.raises(ConfigError, match=message):
        Recommender(**params).fit(sample_pages)
    with pytest.raises(ValueError, match=message):  # as scikit-learn users expect
        Recommender(**params).check_params()


def test_bad_pages_are_refused(sample_pages):
    with pytest.raises(ConfigError, match="pages must be a DataFrame"):
        Recommender().fit([1, 2])
    with pytest.raises(ConfigError, match=r"lacks the columns \['answer_text'\]"):
        Recommender().fit(sample_pages.drop(columns="answer_text"))
    with pytest.raises(ConfigError, match="at least 2 pages"):
        Recommender().fit(sample_pages.iloc[:1])
    with pytest.raises(ConfigError, match="cannot vectorise"):
        Recommender(min_df=1000).fit(sample_pages)


# ---------------------------------------------------------------- the rules


def test_rules_hold_on_the_sample(sample_pages, sample_model):
    metrics = evaluate(sample_pages, sample_model.related_).set_index("metric")["value"]
    for metric in (
        "self_links",
        "repeated_links",
        "copy_links",
        "no_index_links",
        "unresolved_links",
    ):
        assert metrics[metric] == 0, metric
    assert metrics["pages_with_k_links"] == len(sample_pages)


def test_cross_listed_copies_are_never_recommended(tmp_path):
    pages = topic_pages()
    # the same question under another folder (same slug), and again under a new slug
    pages.append(dict(pages[0], folder="elsewhere", subject="Elsewhere"))
    pages.append(dict(pages[0], slug="cells-renamed", folder="third", subject="Third"))
    frame = write_site(tmp_path, pages)
    related = Recommender(min_df=1, max_df=1.0, n_links=4).fit(frame).related_
    copies = {"/topics/cells-0", "/elsewhere/cells-0", "/third/cells-renamed"}
    for source in copies:
        targets = set(related.loc[related["source_url"] == source, "target_url"])
        assert not targets & copies
    # no page shows two copies of one question
    shown = related[related["target_url"].isin(copies)].groupby("source_url").size()
    assert (shown == 1).all()


def test_the_copy_in_the_readers_subject_is_preferred(tmp_path):
    pages = topic_pages()
    copy = dict(pages[1], folder="other", subject="Other")
    frame = write_site(tmp_path, [*pages, copy])
    related = Recommender(min_df=1, max_df=1.0, coverage=False).fit(frame).related_
    targets = related.loc[related["source_url"] == "/topics/cells-0", "target_url"].tolist()
    assert "/topics/cells-1" in targets and "/other/cells-1" not in targets


def test_near_identical_text_counts_as_a_copy(tmp_path):
    pages = topic_pages()
    twin = dict(
        pages[2], slug="cells-twin", title=pages[2]["title"] + " revisited", question="Other?"
    )
    frame = write_site(tmp_path, [*pages, twin])
    strict = Recommender(min_df=1, max_df=1.0, duplicate_threshold=0.8).fit(frame).related_
    twins = {"/topics/cells-2", "/topics/cells-twin"}
    assert not (strict["source_url"].isin(twins) & strict["target_url"].isin(twins)).any()
    lax = Recommender(min_df=1, max_df=1.0, duplicate_threshold=1.0).fit(frame).related_
    assert (lax["source_url"].isin(twins) & lax["target_url"].isin(twins)).any()


def test_no_index_pages_are_not_recommended_unless_asked(tmp_path):
    pages = topic_pages()
    pages[3]["no_index"] = True
    frame = write_site(tmp_path, pages)
    hidden = "/topics/cells-3"
    default = Recommender(min_df=1, max_df=1.0).fit(frame).related_
    assert hidden not in set(default["target_url"])
    assert hidden in set(default["source_url"])  # it still gets links of its own
    shown = Recommender(min_df=1, max_df=1.0, exclude_no_index=False).fit(frame).related_
    assert hidden in set(shown["target_url"])


def test_a_site_of_no_index_pages_only_gets_no_links_and_no_error(tmp_path):
    frame = write_site(tmp_path, [dict(page, no_index=True) for page in topic_pages()])
    model = Recommender(min_df=1, max_df=1.0).fit(frame)
    assert model.related_.empty
    model.update(frame.iloc[2:], changed=[frame.index[4]])
    assert model.related_.empty
    assert len(Recommender(min_df=1, max_df=1.0, exclude_no_index=False).fit(frame).related_)


def test_min_score_leaves_places_empty_rather_than_linking_unrelated_pages(tmp_path):
    frame = write_site(tmp_path, topic_pages())
    full = Recommender(min_df=1, max_df=1.0).fit(frame).related_
    assert (full.groupby("source_url").size() == 5).all()
    strict = Recommender(min_df=1, max_df=1.0, min_score=0.2).fit(frame).related_
    assert (strict["score"] > 0.2).all()
    topic = strict["source_url"].str.split("/").str[-1].str.split("-").str[0]
    target_topic = strict["target_url"].str.split("/").str[-1].str.split("-").str[0]
    assert (topic == target_topic).all()


def test_same_input_same_output_byte_for_byte(sample_pages):
    first = Recommender(min_df=1).fit(sample_pages).related_
    shuffled = sample_pages.sample(frac=1, random_state=3)
    second = Recommender(min_df=1).fit(shuffled).related_
    assert first.to_csv() == second.to_csv()


# ---------------------------------------------------------------- coverage


def test_coverage_caps_in_links_on_the_sample(sample_pages):
    plain = Recommender(min_df=1, coverage=False).fit(sample_pages).related_
    spread = Recommender(min_df=1, max_in_links=6).fit(sample_pages).related_
    before = evaluate(sample_pages, plain).set_index("metric")["value"]
    after = evaluate(sample_pages, spread).set_index("metric")["value"]
    assert after["max_in_degree"] <= 6 < before["max_in_degree"]
    # the one page nobody links to is the no_index page, which may not be linked to
    linked = set(spread["target_url"])
    assert set(sample_pages.index[~sample_pages["no_index"]]) <= linked


@pytest.mark.parametrize(("n_links", "most_orphans"), [(5, 0), (1, 3)])
def test_coverage_rescues_pages_plain_neighbours_leave_unlinked(tmp_path, n_links, most_orphans):
    # without the orphan rescue this site keeps 1 orphan with 5 links a page, 6 with 1
    frame = write_site(tmp_path, topic_pages())
    # the rescue alone: the discount of a pair's second way spreads links too
    params = {"min_df": 1, "max_df": 1.0, "n_links": n_links, "mutual_discount": 0.0}
    plain = Recommender(coverage=False, **params).fit(frame).related_
    spread = Recommender(**params).fit(frame).related_
    before = evaluate(frame, plain, k=n_links).set_index("metric")["value"]
    after = evaluate(frame, spread, k=n_links).set_index("metric")["value"]
    assert after["orphan_pages"] <= most_orphans < before["orphan_pages"]
    assert after["pages_with_k_links"] == len(frame)
    # each swap costs at most coverage_tolerance (0.3) of the link it replaces
    assert spread["score"].min() >= 0.7 * plain.groupby("source_url")["score"].min().min()


# ---------------------------------------------------------------- explain, save, load


def test_explain_shows_the_shared_terms_that_make_the_score(sample_model):
    link = sample_model.related_.iloc[0]
    table = sample_model.explain(link["source_url"], link["target_url"], top=1000)
    assert list(table.columns) == [
        "field",
        "term",
        "contribution",
        "source_weight",
        "target_weight",
    ]
    assert table["contribution"].sum() == pytest.approx(link["score"], rel=1e-4)
    # one vector space (the default) names its columns' field "title+keywords+answer"
    assert set(table["field"]) <= {"title", "keywords", "answer", "title+keywords+answer"}
    top = sample_model.explain(link["source_url"], link["target_url"], top=2)
    assert top.groupby("field").size().max() <= 2
    assert top.groupby("field")["contribution"].apply(lambda c: c.is_monotonic_decreasing).all()
    with pytest.raises(KeyError, match="not a page"):
        sample_model.explain("/nowhere", link["target_url"])


def test_save_and_load_round_trip(tmp_path, sample_model):
    path = tmp_path / "model.joblib"
    sample_model.save(path)
    loaded = Recommender.load(path)
    pd.testing.assert_frame_equal(loaded.related_, sample_model.related_)
    assert loaded.get_params() == sample_model.get_params()


def test_a_model_saved_before_a_parameter_existed_loads_with_its_default(tmp_path, sample_pages):
    model = Recommender(min_df=1).fit(sample_pages)
    del model.n_semantic_candidates, model.semantic_candidates_  # as a model saved before them
    path = tmp_path / "old.joblib"
    model.save(path)
    loaded = Recommender.load(path)
    assert loaded.n_semantic_candidates == Recommender().n_semantic_candidates
    loaded.update(sample_pages.drop(sample_pages.index[3]), changed=[])
    assert loaded.semantic_candidates_.shape == (len(sample_pages) - 1, 0)
    assert repr(loaded).startswith("Recommender(")


def test_load_names_the_versions_that_differ(tmp_path, sample_model, monkeypatch):
    path = tmp_path / "model.joblib"
    real_versions = model_module._versions()
    monkeypatch.setattr(model_module, "_versions", lambda: dict(real_versions, numpy="0.0.1"))
    sample_model.save(path)
    monkeypatch.setattr(model_module, "_versions", lambda: real_versions)
    with pytest.raises(ModelFileError, match=rf"numpy 0.0.1 \(saved\) != {real_versions['numpy']}"):
        Recommender.load(path)


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ModelFileError, match="cannot read the model"):
        Recommender.load(path)
    with pytest.raises(ModelFileError, match="cannot read"):
        Recommender.load(tmp_path / "missing.joblib")


def test_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        Recommender().explain("/a", "/b")


# ---------------------------------------------------------------- the real corpus


@pytest.mark.real_corpus
def test_real_corpus_figures(real_corpus):
    model = Recommender(n_jobs=-1).fit(real_corpus.pages)
    metrics = evaluate(real_corpus.pages, model.related_).set_index("metric")["value"]
    assert metrics["pages_with_k_links"] == 35_915
    for metric in ("self_links", "repeated_links", "copy_links", "no_index_links"):
        assert metrics[metric] == 0, metric
    assert metrics["keyword_share"] >= 0.86
    assert metrics["orphan_share"] <= 0.02
    assert metrics["max_in_degree"] <= 25
    # a second fit over the links the first wrote keeps nearly all of them: the orphan
    # rescue's swaps are made again (610 pages changed when the rescue chose afresh)
    written = model.related_.groupby("source_url")["target_url"].agg(list)
    pages = real_corpus.pages.assign(related_urls=written.reindex(real_corpus.pages.index))
    again = Recommender(n_jobs=-1).fit(pages).related_.groupby("source_url")["target_url"]
    assert (again.agg(list).reindex(written.index) != written).sum() <= 200


# ---------------------------------------------------------------- candidates


def test_the_page_itself_does_not_take_a_candidate_place(tmp_path):
    frame = write_site(tmp_path, topic_pages())
    model = Recommender(min_df=1, max_df=1.0, n_candidates=5, duplicate_threshold=0.99)
    related = model.set_params(coverage=False).fit(frame).related_
    assert (related.groupby("source_url").size() == 5).all()
    assert len(related) == 5 * len(frame)


def test_pages_left_short_for_want_of_candidates_are_counted_in_one_warning(tmp_path):
    pages = topic_pages()
    # every question cross-listed under a second folder: copies eat candidate places
    pages += [dict(page, folder="again", subject="Again") for page in pages]
    frame = write_site(tmp_path, pages)
    model = Recommender(min_df=1, max_df=1.0, duplicate_threshold=0.99, coverage=False)
    with pytest.warns(
        UserWarning, match=r"^36 pages got fewer than 5 links .* n_candidates"
    ) as seen:
        model.set_params(n_candidates=5).fit(frame)
    assert len(seen) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        related = model.set_params(n_candidates=12).fit(frame).related_
    assert (related.groupby("source_url").size() == 5).all()


# ---------------------------------------------------------------- relink (quick re-runs)

LINK_SETTINGS = [
    {"n_links": 3},
    {"duplicate_threshold": 0.5},
    {"min_score": 0.2},
    {"coverage": False},
    {"max_in_links": 2},
    {"coverage_tolerance": 1.0},
    {"stability": 0.3},
    {"mutual_discount": 0.0},
    {"rules": EditorialRules(nevers=(Never("subject:biology", "/learn/chemistry/*"),))},
    {"max_in_links": 3, "mutual_discount": 0.9, "coverage_tolerance": 0.0},
]


def test_the_link_settings_are_every_setting_that_acts_after_the_search():
    names = set(Recommender().get_params())
    assert names >= LINKING_PARAMETERS | RUNNING_PARAMETERS
    assert {name for settings in LINK_SETTINGS for name in settings} == LINKING_PARAMETERS


@pytest.mark.parametrize("settings", LINK_SETTINGS, ids=lambda s: ",".join(s))
def test_relink_gives_the_links_of_a_fit_with_the_new_settings(sample_pages, settings):
    model = Recommender(min_df=1).fit(sample_pages)
    fresh = Recommender(min_df=1, **settings).fit(sample_pages)
    assert fresh.related_.to_csv() != model.related_.to_csv()  # the setting matters here
    model.set_params(**settings, n_jobs=2, block_size=7).relink(sample_pages)
    assert model.related_.to_csv() == fresh.related_.to_csv()
    assert model.rule_events_.to_csv() == fresh.rule_events_.to_csv()
    model.set_params(**{**Recommender().get_params(deep=False), "min_df": 1}).relink(sample_pages)
    assert model.related_.to_csv() == Recommender(min_df=1).fit(sample_pages).related_.to_csv()


def test_relink_neither_vectorises_nor_searches(sample_pages, monkeypatch):
    model = Recommender(min_df=1).fit(sample_pages)
    for name in ("_search", "_top_k"):
        monkeypatch.setattr(Recommender, name, lambda *a, **k: pytest.fail("searched again"))
    monkeypatch.setattr(
        model.features_model_, "transform", lambda *a: pytest.fail("vectorised again")
    )
    model.set_params(coverage=False).relink(sample_pages.drop(columns="answer_text"))
    assert (model.related_.groupby("source_url").size() == 5).all()


def test_relink_takes_settings_that_shape_nothing_here(sample_pages, tmp_path):
    model = Recommender(min_df=1).fit(sample_pages)
    links = model.related_.to_csv()
    unused = {"embedding_model": "other", "n_semantic_candidates": 3}  # at semantic_weight 0
    running = {"embedding_cache": tmp_path, "block_size": 5, "n_jobs": 1, "progress": True}
    assert model.set_params(**unused, **running).relink(sample_pages).related_.to_csv() == links
    with pytest.raises(ConfigError, match=r"^embedding_model, n_semantic_candidates, semantic_w"):
        model.set_params(semantic_weight=0.5).relink(sample_pages)


@pytest.mark.parametrize(
    "settings",
    [{"max_df": 0.3}, {"n_candidates": 12}, {"exclude_no_index": False}, {"max_df": 1}],
    ids=lambda s: ",".join(s),
)
def test_relink_refuses_a_setting_that_changes_the_features_or_candidates(sample_pages, settings):
    model = Recommender(min_df=1, max_df=1.0).fit(sample_pages)
    before = model.related_.copy()
    with pytest.raises(ConfigError, match=rf"^{next(iter(settings))} changed since the fit"):
        model.set_params(**settings).relink(sample_pages)
    pd.testing.assert_frame_equal(model.related_, before)


@pytest.mark.parametrize("settings", [{"max_df": 0.3}, {"n_candidates": 12}], ids=str)
def test_update_refuses_a_setting_that_changes_the_features_or_candidates(sample_pages, settings):
    model = Recommender(min_df=1, max_df=1.0).fit(sample_pages)
    before = model.related_.copy()
    with pytest.raises(ConfigError, match=rf"^{next(iter(settings))} changed since the fit"):
        model.set_params(**settings).update(sample_pages, changed=sample_pages.index[:2])
    pd.testing.assert_frame_equal(model.related_, before)
    model.set_params(max_df=1.0, n_candidates=Recommender().n_candidates, n_links=3)
    assert model.update(sample_pages, changed=sample_pages.index[:2]).related_["rank"].max() == 3


def test_a_real_setting_written_as_an_integer_is_not_a_change(sample_pages):
    model = Recommender(min_df=1, bm25_b=1.0, idf_power=1.0).fit(sample_pages)
    links = model.related_.copy()
    assert (
        model.set_params(bm25_b=1, idf_power=np.int64(1))
        .relink(sample_pages)
        .related_.equals(links)
    )
    assert settings_differ({"bm25_b": 1, "max_df": 1}, {"bm25_b": 1.0, "max_df": 1.0}) == [
        "max_df"  # its integer counts pages
    ]


def test_relink_needs_a_fitted_model_and_the_pages_of_its_fit(sample_pages):
    with pytest.raises(NotFittedError):
        Recommender().relink(sample_pages)
    model = Recommender(min_df=1).fit(sample_pages)
    with pytest.raises(ConfigError, match="the pages of the fit"):
        model.relink(sample_pages.drop(sample_pages.index[3]))
    shuffled = sample_pages.sample(frac=1, random_state=1)
    assert model.relink(shuffled).related_.to_csv() == model.related_.to_csv()
    hidden = sample_pages.copy()
    hidden.loc[hidden.index[[4, 9]], "no_index"] = True  # no longer targets: a new search
    with pytest.raises(ConfigError, match=r"2 may be linked to or not, unlike then"):
        model.relink(hidden)
    targets = model.targets_.sum()
    assert model.update(hidden, changed=hidden.index[[4, 9]]).targets_.sum() == targets - 2


# ---------------------------------------------------------------- update (the nightly run)


def test_update_after_deleting_and_restoring_pages_equals_the_original_fit(sample_pages):
    full = Recommender(min_df=1).fit(sample_pages)
    gone = sample_pages.index[[3, 17, 40]]
    model = clone(full).fit(sample_pages)
    model.update(sample_pages.drop(gone), changed=[])
    assert not model.related_["target_url"].isin(gone).any()
    assert not model.related_["source_url"].isin(gone).any()
    model.update(sample_pages, changed=[])  # the same words as the fit: the same links
    assert model.related_.to_csv() == full.related_.to_csv()
    assert (model.features_ != full.features_).nnz == 0


def test_update_of_a_page_whose_words_stay_equals_a_fresh_fit(sample_pages):
    model = Recommender(min_df=1).fit(sample_pages)
    hidden = sample_pages.index[5]
    edited = sample_pages.copy()
    edited.loc[hidden, "no_index"] = True  # no longer a target: its words are the same
    model.update(edited, changed=[hidden])
    fresh = Recommender(min_df=1).fit(edited)
    assert model.related_.to_csv() == fresh.related_.to_csv()
    assert hidden not in set(model.related_["target_url"])


def test_update_searches_again_only_the_pages_a_change_can_reach(sample_pages, caplog):
    model = Recommender(min_df=1).fit(sample_pages)
    edited = sample_pages.copy()
    url = edited.index[0]
    edited.loc[url, "answer_text"] = "zymurgy quasar " * 5  # words no other page has
    with caplog.at_level("INFO", logger="recommender.model"):
        model.update(edited, changed=[url])
    searched = next(r.getMessage() for r in caplog.records if "searched again" in r.getMessage())
    assert int(searched.split()[0]) < len(edited) // 2
    assert model.related_.to_csv() == _fit_with(model, edited).related_.to_csv()


@pytest.mark.parametrize("seed", range(4))
def test_update_after_small_edits_gives_a_full_searchs_candidates(sample_pages, seed, caplog):
    model = Recommender(min_df=1, n_candidates=12).fit(sample_pages)
    rng = np.random.default_rng(seed)
    edited = sample_pages.copy()
    changed = edited.index[rng.choice(len(edited), 4, replace=False)]
    for url in changed:  # a few more words the site knows: scores move a little
        words = edited.at[edited.index[rng.integers(len(edited))], "answer_text"].split()[:8]
        edited.loc[url, "answer_text"] += " " + " ".join(words)
    with caplog.at_level("INFO", logger="recommender.model"):
        model.update(edited, changed=changed)
    reference = _fit_with(model, edited)
    np.testing.assert_array_equal(model.candidates_, reference.candidates_)
    np.testing.assert_array_equal(model.candidate_scores_, reference.candidate_scores_)
    assert model.related_.to_csv() == reference.related_.to_csv()
    searched = next(r.getMessage() for r in caplog.records if "searched again" in r.getMessage())
    assert int(searched.split()[0]) < len(edited)


def _fit_with(model, pages):
    """A full search and linking over pages with the model's fitted vectorizers."""
    reference = clone(model)
    reference.features_model_ = model.features_model_
    reference.embeddings_ = None
    features = model.features_model_.transform(pages)
    is_target = model_module.target_mask(pages, exclude_no_index=True)
    candidates, scores = reference._search(features, is_target)
    reference.semantic_candidates_, reference.semantic_candidate_scores_ = (
        reference._semantic_search(np.arange(len(pages)), is_target)
    )
    editorial = reference._resolve_rules(pages)
    laps = model_module._Laps()
    return reference._link(pages, features, is_target, candidates, scores, laps, editorial)


@pytest.mark.parametrize(
    ("search", "threshold", "expected"),
    [
        ("exact", 1, "top_k_cosine"),
        ("fast", 10**9, "top_k_cosine_fast"),
        ("auto", 10**9, "top_k_cosine"),
        ("auto", 10, "top_k_cosine_fast"),
    ],
)
def test_search_chooses_the_exact_or_the_fast_kernel(
    sample_pages, monkeypatch, search, threshold, expected
):
    called = []
    for name in ("top_k_cosine", "top_k_cosine_fast"):
        real = getattr(model_module, name)
        monkeypatch.setattr(
            model_module,
            name,
            lambda *a, _real=real, _name=name, **k: called.append(_name) or _real(*a, **k),
        )
    monkeypatch.setattr(model_module, "FAST_SEARCH_MIN_PAGES", threshold)
    related = Recommender(min_df=1, search=search).fit(sample_pages).related_
    assert set(called) == {expected}
    metrics = evaluate(sample_pages, related).set_index("metric")["value"]
    assert metrics["pages_with_k_links"] == len(sample_pages) and metrics["self_links"] == 0


@pytest.mark.parametrize(
    ("idf_power", "rarity_power"), [(0.5, 0.5), (0.2, 0.8), (1.0, 0.0), (1.5, 0.0)]
)
def test_the_fast_search_picks_strong_terms_by_their_classic_tf_idf(
    sample_pages, monkeypatch, idf_power, rarity_power
):
    """The weights hold the idf to ``idf_power``: the rest of it ranks the strong terms."""
    asked = []
    real = model_module.top_k_cosine_fast
    monkeypatch.setattr(
        model_module, "top_k_cosine_fast", lambda *a, **kw: asked.append(kw) or real(*a, **kw)
    )
    Recommender(min_df=1, search="fast", idf_power=idf_power).fit(sample_pages)
    assert [kw["rarity_power"] for kw in asked] == pytest.approx([rarity_power])


# ---------------------------------------------------------------- vectorizer parameters


def crafted_pages(titles, answers=None):
    """A pages frame made by hand: one page per title, the answer text optional."""
    n = len(titles)
    urls = [f"/p/{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "slug": [f"p{i}" for i in range(n)],
            "question": [f"Question {i}?" for i in range(n)],
            "title": titles,
            "subject_key": ["topics"] * n,
            "no_index": [False] * n,
            "title_text": titles,
            "keywords_text": [""] * n,
            "answer_text": answers if answers is not None else [""] * n,
            "date": pd.to_datetime([None] * n),
            "related_urls": [[] for _ in range(n)],
        },
        index=pd.Index(urls, name="url"),
    )


def pair_score(model, a, b):
    features = model.features_
    return float((features[a] @ features[b].T).toarray()[0, 0])


def title_terms(model):
    names = model.features_model_.feature_names_
    return set(names.loc[names["field"] == "title", "term"])


TITLE_ONLY = {
    "field_weights": {"title": 1.0},
    "max_df": 1.0,
    "coverage": False,
    "n_links": 1,
    "combine": "per_field",  # one vectorizer per field: its settings can be read back
    "stem": False,
}


def test_ngram_range_reaches_the_vectorizer_and_changes_scores():
    # 0 and 2 share the word pair "machine learning"; 0 and 1 share the words only
    pages = crafted_pages(
        ["machine learning basics", "learning machine repair", "machine learning history"]
    )
    words = Recommender(ngram_range=(1, 1), **TITLE_ONLY).fit(pages)
    pairs = Recommender(ngram_range=(1, 2), **TITLE_ONLY).fit(pages)
    default = Recommender(**TITLE_ONLY).fit(pages)  # single words by default
    assert "machine learning" not in title_terms(words)
    assert "machine learning" in title_terms(pairs) and "machine learning" not in title_terms(
        default
    )
    assert words.features_model_.vectorizers_["title"].ngram_range == (1, 1)
    assert pair_score(words, 0, 1) == pytest.approx(pair_score(words, 0, 2))
    assert pair_score(pairs, 0, 2) > pair_score(pairs, 0, 1) + 0.1
    assert pair_score(default, 0, 2) == pytest.approx(pair_score(words, 0, 2))
    # a mapping sets ranges per field; fields it does not name get single words
    per_field = Recommender(ngram_range={"answer": (1, 2)}, **TITLE_ONLY).fit(pages)
    assert "machine learning" not in title_terms(per_field)


def test_stop_words_reach_the_vectorizer_and_change_scores():
    # 0 and 1 share only "the"; 0 and 2 share only "zebra"
    pages = crafted_pages(["the cat", "the dog", "zebra cat stripes", "zebra dog fish"])
    english = Recommender(stop_words="english", **TITLE_ONLY).fit(pages)
    none = Recommender(stop_words=None, **TITLE_ONLY).fit(pages)
    own = Recommender(stop_words=["zebra"], **TITLE_ONLY).fit(pages)
    assert "the" not in title_terms(english) and "zebra" in title_terms(english)
    assert "the" in title_terms(none) and "zebra" in title_terms(none)
    assert "the" in title_terms(own) and "zebra" not in title_terms(own)
    assert pair_score(english, 0, 1) == pytest.approx(pair_score(english, 0, 3), abs=1e-7)
    assert pair_score(none, 0, 1) > pair_score(none, 0, 3) + 0.1
    assert pair_score(own, 2, 3) == pytest.approx(0.0, abs=1e-7)
    assert pair_score(english, 2, 3) > 0.1


# page 0's length is 5 against a mean of 7/3: BM25 scales its counts by
# 5 * (0.25 + 0.75 * 5 / (7 / 3)); a weight is tf * 6 / (tf + that scale)
BM25_SCALE = 5 * (0.25 + 0.75 * 15 / 7)


@pytest.mark.parametrize(
    ("tf", "expected"),
    [
        ("log", 1 + np.log(4)),
        ("raw", 4.0),
        ("bm25", (4 * 6 / (4 + BM25_SCALE)) / (6 / (1 + BM25_SCALE))),
    ],
)
def test_the_tf_weight_reaches_the_features_and_changes_scores(tf, expected):
    # page 0 says "cell" four times and "membrane" once; "cell" and "membrane" are
    # in two pages each, so they have the same idf and the cosine of page 0 with
    # page 1 ("cell") is r / sqrt(r ** 2 + 1), r being the weight of "cell" over
    # that of "membrane" in page 0
    pages = crafted_pages(["cell cell cell cell membrane", "cell", "membrane"])
    model = Recommender(tf=tf, ngram_range=(1, 1), **TITLE_ONLY).fit(pages)
    assert model.features_model_.weightings_[0].tf == tf
    assert pair_score(model, 0, 1) == pytest.approx(expected / np.sqrt(expected**2 + 1), rel=1e-5)
    assert pair_score(model, 0, 2) == pytest.approx(1 / np.sqrt(expected**2 + 1), rel=1e-5)


def test_an_update_asks_the_changed_pages_only_for_what_can_enter_a_full_list():
    stored = np.array([[1, 2], [0, -1], [0, 1]])  # page 1's list is not full
    stored_scores = np.array([[0.9, 0.4], [0.7, 0], [0.8, 0.6]], dtype=np.float32)
    asked = []

    def among(kept, entering, k, floors):
        asked.append((kept.tolist(), entering.tolist(), k, floors.tolist()))
        return np.full((len(kept), k), -1), np.zeros((len(kept), k), dtype=np.float32)

    old_rows, is_changed = np.array([0, 1, 2, -1]), np.array([False, False, False, True])
    lists, _, searched = model_module._updated_lists(
        stored,
        stored_scores,
        old_rows,
        is_changed,
        np.ones(4, dtype=bool),
        among=among,
        search=lambda rows: (np.full((len(rows), 2), -1), np.zeros((len(rows), 2), np.float32)),
    )
    floors = np.array([0.4, 0, 0.6], dtype=np.float32).tolist()  # a short list takes anything
    assert asked == [([0, 1, 2], [3], 1, floors)]
    assert lists[:3].tolist() == stored.tolist() and searched == 1


@pytest.mark.parametrize("seed", range(5))
def test_merged_candidates_are_those_of_merging_every_row(seed):
    """Rows that lose nothing and gain nothing keep their list without a merge; the
    result is that of merging every row (ties of score included)."""
    rng = np.random.default_rng(seed)
    n_rows, width, n_pages = 400, 6, 60
    stored = np.full((n_rows, width), -1, dtype=np.int64)
    stored_scores = np.zeros((n_rows, width), dtype=np.float32)
    for row in range(n_rows):
        full = rng.random() < 0.8
        size = width if full else rng.integers(0, width)
        pages = rng.choice(n_pages, size=size, replace=False)
        values = np.round(rng.random(size), 1).astype(np.float32) + 0.1  # ties
        order = np.lexsort((pages, -values))
        stored[row, :size], stored_scores[row, :size] = pages[order], values[order]
    is_changed = np.zeros(n_pages, dtype=bool)
    is_changed[rng.choice(n_pages, size=3, replace=False)] = True
    deleted = rng.choice(n_pages, size=2, replace=False)  # their places now empty
    remapped = np.where(np.isin(stored, deleted), -1, stored)
    fresh = np.where(rng.random((n_rows, 3)) < 0.3, np.flatnonzero(is_changed), -1)
    fresh_scores = np.where(fresh >= 0, np.round(rng.random(fresh.shape), 1) + 0.1, 0)
    candidates, scores, unsure = model_module._merge_candidates(
        stored, remapped, stored_scores, is_changed, fresh, fresh_scores.astype(np.float32)
    )
    lost = ((stored >= 0) & (remapped < 0)) | (
        (remapped >= 0) & is_changed[np.maximum(remapped, 0)]
    )
    assert lost.any(axis=1).mean() < 0.5  # most rows keep their list
    expected, expected_scores = model_module._merged_rows(
        np.where(lost, -1, remapped), stored_scores, fresh, fresh_scores, width
    )
    np.testing.assert_array_equal(candidates, expected)
    np.testing.assert_array_equal(scores, expected_scores)
    assert unsure.dtype == bool and not unsure[~lost.any(axis=1)].any()


@pytest.mark.parametrize(("stability", "first_row"), [(0.1, 5), (0.0, 1)])
def test_with_stability_an_orphan_is_rescued_by_the_page_that_links_it_now(stability, first_row):
    # page 1 would lose least by giving orphan 5 its link, but page 0 links page 5 now:
    # with stability, page 0 gives it its link again
    candidates, scores = orphan_five()
    current = np.array([[5], [-1], [-1], [-1], [-1], [-1], [-1]])
    model = Recommender(n_links=1, coverage_tolerance=0.5, stability=stability)
    places = model._choose(candidates, scores, np.ones(7, bool), scores, current)
    picked = candidates[np.arange(7), places[:, 0]]
    assert picked[0] == first_row and picked[1] == (0 if first_row == 5 else 5)


@pytest.mark.parametrize(
    "params",
    [
        {"field_weights": {"title": float("inf")}},
        {"field_weights": {"titel": 1.0}},
        {"field_weights": {"title": float("nan"), "answer": 1.0}},
        {"idf_power": 1e300},
    ],
)
def test_settings_that_would_fail_only_while_vectorising_are_refused_first(params):
    # they failed inside the fit, naming neither the setting nor the file (hostile pass)
    name = next(iter(params))
    with pytest.raises(ConfigError, match=name):
        Recommender(**params).check_params()
