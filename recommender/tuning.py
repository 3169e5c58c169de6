"""Parameter sweeps: fit the model for every combination of settings and measure each.

::

    grid = {"max_df": [0.05, 0.1], "coverage": [True, False]}
    results = sweep(corpus.pages, grid, n_jobs=-1)

One row per combination: the settings, then every metric of
:func:`recommender.evaluate.evaluate` as a column, then the fit time.  The
fits run in parallel processes with joblib.

:func:`stability_trial` measures what ``stability`` buys: churn when pages
come and go, against relevance.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import ParameterGrid

from .evaluate import churn, evaluate
from .model import Recommender, settings_differ

__all__ = ["STABILITY_TRIAL_COLUMNS", "pair_recall", "stability_trial", "sweep"]


def _fit_and_relink(
    pages: pd.DataFrame,
    fixed_params: dict[str, Any],
    combinations: list[dict[str, Any]],
    labels: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    """Measure combinations that share their search settings: one fit, then relinks."""
    rows, model = [], None
    for params in combinations:
        settings = Recommender(**{**fixed_params, **params}).get_params(deep=False)
        start = time.perf_counter()
        if model is None:
            model = Recommender(**settings).fit(pages)
        else:
            model.set_params(**settings).relink(pages)
        seconds = time.perf_counter() - start
        metrics = evaluate(pages, model.related_, k=model.n_links, labels=labels)
        row: dict[str, Any] = dict(params)
        row.update(zip(metrics["metric"], metrics["value"], strict=True))
        row["relinked"] = len(rows) > 0
        row["fit_seconds"] = seconds
        rows.append(row)
    return rows


def _sharing_a_fit(
    combinations: list[dict[str, Any]], fixed_params: dict[str, Any]
) -> list[list[int]]:
    """The combinations' places, grouped by their search settings (first met first)."""
    groups: list[tuple[dict[str, Any], list[int]]] = []
    for place, params in enumerate(combinations):
        settings = Recommender(**{**fixed_params, **params}).search_settings()
        group = next((g for s, g in groups if not settings_differ(settings, s)), None)
        if group is None:
            groups.append((settings, [place]))
        else:
            group.append(place)
    return [places for _, places in groups]


def sweep(
    pages: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]],
    *,
    fixed_params: Mapping[str, Any] | None = None,
    labels: pd.DataFrame | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Measure the model's links for every combination of settings.

    Combinations that differ only in settings of
    :data:`~recommender.model.LINKING_PARAMETERS` (rules, coverage,
    stability, the mutual discount...) share one fit: the first is fitted,
    the others :meth:`~recommender.model.Recommender.relink` it, which gives
    the links of their own fit in the time of the rules and coverage steps.

    Parameters
    ----------
    pages : pandas.DataFrame
        ``Corpus.pages``.
    grid : mapping of parameter name to list of values, or a list of such mappings
        As scikit-learn's ``ParameterGrid``: every combination is measured.
    fixed_params : mapping, optional
        Settings shared by every fit (for example ``{"n_links": 5}``).
    labels : pandas.DataFrame, optional
        Known related pairs, for the label metrics.
    n_jobs : int or None
        Fits (each with its relinks) run at once, in processes, as in scikit-learn.

    Returns
    -------
    pandas.DataFrame
        One row per combination, in grid order: the swept settings, then one
        column per metric (see :data:`recommender.evaluate.METRICS`), then
        ``relinked`` (True: the links came from an earlier row's fit) and
        ``fit_seconds`` (the fit's seconds, or the relink's).
    """
    fixed_params = dict(fixed_params or {})
    combinations = list(ParameterGrid(grid))
    groups = _sharing_a_fit(combinations, fixed_params)
    jobs = (
        joblib.delayed(_fit_and_relink)(pages, fixed_params, [combinations[p] for p in g], labels)
        for g in groups
    )
    rows: list[dict[str, Any]] = [{} for _ in combinations]
    for places, measured in zip(groups, joblib.Parallel(n_jobs=n_jobs)(jobs), strict=True):
        for place, row in zip(places, measured, strict=True):
            rows[place] = row
    return pd.DataFrame(rows)


#: Columns of :func:`stability_trial`, one row per ``stability`` value.
STABILITY_TRIAL_COLUMNS: dict[str, str] = {
    "stability": "the value tried",
    "pages_changed": "pages whose ordered list of links changed from run A to run B",
    "links_added": "links in B and not in A (the new pages' own links included)",
    "links_dropped": "links in A and not in B",
    "mean_score": "mean similarity of B's links",
    "recall_at_k": "labelled pairs with either page listing the other in its first k links (B)",
    "new_pages_short": "pages put back with fewer than n_links links in B",
    "new_pages_orphaned": "pages put back that no page links to in B",
}


def pair_recall(links: pd.DataFrame, pairs: pd.DataFrame, k: int = 5) -> float:
    """Share of pairs (``url_a``, ``url_b``) where either page lists the other in its first k.

    >>> links = pd.DataFrame({"source_url": ["/a"], "rank": [1], "target_url": ["/b"]})
    >>> pair_recall(links, pd.DataFrame({"url_a": ["/b", "/c"], "url_b": ["/a", "/a"]}))
    0.5
    """
    top = links[links["rank"] <= k]
    listed = set(zip(top["source_url"], top["target_url"], strict=True))
    found = [
        (a, b) in listed or (b, a) in listed
        for a, b in zip(pairs["url_a"], pairs["url_b"], strict=True)
    ]
    return float(np.mean(found)) if found else float("nan")


def stability_trial(
    pages: pd.DataFrame,
    stability_values: Sequence[float],
    *,
    n_removed: int = 500,
    seed: int = 0,
    pairs: pd.DataFrame | None = None,
    fixed_params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Churn against relevance when pages come and go, for each ``stability`` value.

    ``n_removed`` pages (drawn with ``seed``) are taken out and the links of
    the rest computed (run A); they become the pages' current links, as if
    written back.  The pages are put back, with the blocks they held, and
    the links computed again (run B).

    Parameters
    ----------
    pages : pandas.DataFrame
        ``Corpus.pages``.
    stability_values : sequence of float
        The values to try.
    n_removed : int, default 500
        Pages taken out and put back.
    seed : int, default 0
        Which pages.
    pairs : pandas.DataFrame, optional
        Known related pairs (``url_a``, ``url_b``) for ``recall_at_k``.
    fixed_params : mapping, optional
        Other :class:`~recommender.model.Recommender` settings.

    Returns
    -------
    pandas.DataFrame
        One row per value; columns as in :data:`STABILITY_TRIAL_COLUMNS`.
    """
    removed = pd.Index(pages.sample(n=n_removed, random_state=seed).index)
    rows = []
    for stability in stability_values:
        model = Recommender(**{**dict(fixed_params or {}), "stability": stability})
        first = model.fit(pages.drop(index=removed)).related_
        written = first.groupby("source_url")["target_url"].agg(list)
        current = [  # as written by run A; the pages put back hold their own blocks
            held if url in removed else written.get(url, [])
            for url, held in zip(pages.index, pages["related_urls"], strict=True)
        ]
        second = model.fit(pages.assign(related_urls=current)).related_
        changes = churn(first, second).set_index("metric")["value"]
        new_links = second.groupby("source_url").size().reindex(removed, fill_value=0)
        rows.append(
            {
                "stability": stability,
                "pages_changed": int(changes["pages_changed"]),
                "links_added": int(changes["links_added"]),
                "links_dropped": int(changes["links_dropped"]),
                "mean_score": float(second["score"].mean()),
                "recall_at_k": np.nan
                if pairs is None
                else pair_recall(second, pairs, model.n_links),
                "new_pages_short": int((new_links < model.n_links).sum()),
                "new_pages_orphaned": int((~removed.isin(second["target_url"])).sum()),
            }
        )
    return pd.DataFrame(rows, columns=list(STABILITY_TRIAL_COLUMNS))
