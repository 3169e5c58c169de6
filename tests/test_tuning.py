import json
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

from recommender import Recommender, evaluate, load_corpus, sweep, tuning
from recommender.evaluate import METRICS
from recommender.plots import plot_in_degrees, plot_scores, plot_tradeoff

from .conftest import ROOT, SAMPLE

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(SAMPLE)


@pytest.fixture(scope="module")
def results(corpus):
    grid = {"max_df": [0.1, 0.5], "coverage": [True, False]}
    return sweep(corpus.pages, grid, fixed_params={"n_links": 4}, n_jobs=2)


def test_sweep_fits_every_combination(results):
    assert len(results) == 4
    assert list(results.columns[:2]) == ["coverage", "max_df"]
    measured = {name for group, name in METRICS if group not in ("labels", "churn")}
    assert measured <= set(results.columns)
    assert (results["pages_with_k_links"] == 64).all()  # n_links=4 from base, k=4
    assert results.columns[-1] == "fit_seconds"
    assert results["fit_seconds"].dtype == float and results["fit_seconds"].notna().all()


def test_fit_seconds_is_the_time_the_fit_or_the_relink_took(corpus, monkeypatch):
    # a clock that says the fit took 2.5 s, then the relink 0.25 s
    clock = iter([100.0, 102.5, 200.0, 200.25])
    monkeypatch.setattr(tuning, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    combinations = [{"coverage": True}, {"coverage": False}]
    rows = tuning._fit_and_relink(corpus.pages, {"n_links": 3}, combinations, None)
    assert [(row["relinked"], row["fit_seconds"]) for row in rows] == [(False, 2.5), (True, 0.25)]
    assert next(clock, "done") == "done"  # read before and after each


def test_combinations_share_a_fit_when_only_their_link_settings_differ(
    corpus, results, monkeypatch
):
    # the fixture's grid order: (coverage, max_df) = (T, 0.1), (T, 0.5), (F, 0.1), (F, 0.5)
    assert results["relinked"].tolist() == [False, False, True, True]
    calls = []

    def record(kind):
        def call(self, pages):
            calls.append((kind, self.max_df, self.mutual_discount, self.stability))
            self.related_ = pd.DataFrame(columns=["source_url", "rank", "target_url", "score"])
            return self

        return call

    monkeypatch.setattr(tuning.Recommender, "fit", record("fit"))
    monkeypatch.setattr(tuning.Recommender, "relink", record("relink"))
    monkeypatch.setattr(
        tuning, "evaluate", lambda *a, **k: pd.DataFrame(columns=["metric", "value"])
    )
    grid = [
        {"max_df": [0.5, 1.0], "mutual_discount": [0.0, 0.2], "rules": [None]},
        {"stability": [0.2], "n_links": [3], "max_df": [0.5], "block_size": [8]},
        {"max_df": [1]},  # an int: a number of pages, not a share
    ]
    rows = sweep(corpus.pages, grid, fixed_params={"min_df": 1})
    assert rows["relinked"].tolist() == [False, True, False, True, True, False]
    assert calls == [  # each relink with every setting of its own row, the others' defaults
        ("fit", 0.5, 0.0, 0.1),
        ("relink", 0.5, 0.2, 0.1),
        ("relink", 0.5, 0.4, 0.2),
        ("fit", 1.0, 0.0, 0.1),
        ("relink", 1.0, 0.2, 0.1),
        ("fit", 1, 0.4, 0.1),
    ]


@pytest.mark.parametrize("max_df", [0.1, 0.5])
@pytest.mark.parametrize("coverage", [True, False])
def test_sweep_matches_single_fits(corpus, results, max_df, coverage):
    row = results[(results["max_df"] == max_df) & (results["coverage"] == coverage)]
    assert len(row) == 1
    model = Recommender(n_links=4, max_df=max_df, coverage=coverage).fit(corpus.pages)
    metrics = evaluate(corpus.pages, model.related_, k=4)
    for metric, value in zip(metrics["metric"], metrics["value"], strict=True):
        assert row[metric].iloc[0] == pytest.approx(value, nan_ok=True), metric
    assert row["orphan_pages"].iloc[0] == (
        len(corpus.pages) - model.related_["target_url"].nunique()
    )


def test_sweep_passes_labels_to_the_metrics(corpus):
    labels = corpus.links[["source_url", "target_url"]]
    results = sweep(corpus.pages, {"n_links": [2]}, labels=labels)
    assert {"recall_at_k", "mrr_at_k", "success_at_k"} <= set(results.columns)
    model = Recommender(n_links=2).fit(corpus.pages)
    expected = evaluate(corpus.pages, model.related_, k=2, labels=labels).set_index("metric")
    assert results.loc[0, "recall_at_k"] == pytest.approx(expected.at["recall_at_k", "value"])


def test_plots_draw_what_they_say(corpus, results):
    ax = plot_tradeoff(results, hue="coverage")
    assert ax.get_xlabel() == "orphan share" and ax.get_ylabel() == "keyword share"
    assert len(ax.collections) == 2  # one scatter per coverage value
    assert sorted(text.get_text() for text in ax.texts) == ["max_df=0.1"] * 2 + ["max_df=0.5"] * 2
    model = Recommender().fit(corpus.pages)
    ax = plot_in_degrees(corpus.pages, {"site": corpus.links, "model": model.related_})
    assert [line.get_label() for line in ax.get_lines()] == ["site", "model"]
    ax = plot_scores(model.related_)
    assert len(ax.patches) == 5  # one step histogram per rank


def test_a_point_is_labelled_only_with_the_settings_its_grid_had():
    two_grids = pd.DataFrame(
        {"tf": ["log", np.nan], "max_df": [np.nan, 0.1], "recall_at_k": [0.5, 0.6]}
    )
    ax = plot_tradeoff(two_grids, x="max_df", y="recall_at_k")
    assert [text.get_text() for text in ax.texts] == ["tf=log", "max_df=0.1"]


def test_notebook_is_stored_without_outputs():
    notebook = json.loads((ROOT / "notebooks" / "tuning.ipynb").read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)
    source = "".join("".join(cell["source"]) for cell in code)
    assert "def " not in source and "class " not in source  # no logic of its own
