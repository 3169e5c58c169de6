import json

import matplotlib
import pytest

from recommender import Recommender, load_corpus, sweep
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
    assert (results["fit_seconds"] > 0).all()


def test_sweep_matches_single_fits(corpus, results):
    row = results[(results["max_df"] == 0.5) & ~results["coverage"]].iloc[0]
    model = Recommender(n_links=4, max_df=0.5, coverage=False).fit(corpus.pages)
    assert row["orphan_pages"] == (len(corpus.pages) - model.related_["target_url"].nunique())


def test_plots_draw_what_they_say(corpus, results):
    ax = plot_tradeoff(results, hue="coverage")
    assert ax.get_xlabel() == "orphan share" and ax.get_ylabel() == "keyword share"
    assert len(ax.collections) == 2  # one scatter per coverage value
    assert len(ax.texts) == 4 and ax.texts[0].get_text().startswith("max_df=")
    model = Recommender().fit(corpus.pages)
    ax = plot_in_degrees(corpus.pages, {"site": corpus.links, "model": model.related_})
    assert [line.get_label() for line in ax.get_lines()] == ["site", "model"]
    ax = plot_scores(model.related_)
    assert len(ax.patches) == 5  # one step histogram per rank


def test_notebook_is_stored_without_outputs():
    notebook = json.loads((ROOT / "notebooks" / "tuning.ipynb").read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)
    source = "".join("".join(cell["source"]) for cell in code)
    assert "def " not in source and "class " not in source  # no logic of its own
