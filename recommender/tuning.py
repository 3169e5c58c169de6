"""Parameter sweeps: fit the model for every combination of settings and measure each.

::

    grid = {"max_df": [0.05, 0.1], "coverage": [True, False]}
    results = sweep(corpus.pages, grid, n_jobs=-1)

One row per combination: the settings, then every metric of
:func:`recommender.evaluate.evaluate` as a column, then the fit time.  The
fits run in parallel processes with joblib.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import joblib
import pandas as pd
from sklearn.model_selection import ParameterGrid

from .evaluate import evaluate
from .model import Recommender

__all__ = ["sweep"]


def _fit_and_measure(
    pages: pd.DataFrame,
    fixed_params: dict[str, Any],
    params: dict[str, Any],
    labels: pd.DataFrame | None,
) -> dict[str, Any]:
    start = time.perf_counter()
    model = Recommender(**{**fixed_params, **params}).fit(pages)
    seconds = time.perf_counter() - start
    metrics = evaluate(pages, model.related_, k=model.n_links, labels=labels)
    row: dict[str, Any] = dict(params)
    row.update(zip(metrics["metric"], metrics["value"], strict=True))
    row["fit_seconds"] = seconds
    return row


def sweep(
    pages: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]],
    *,
    fixed_params: Mapping[str, Any] | None = None,
    labels: pd.DataFrame | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Fit a :class:`~recommender.model.Recommender` per combination of settings and measure it.

    Parameters
    ----------
    pages : pandas.DataFrame
        ``Corpus.pages``.
    grid : mapping of parameter name to list of values, or a list of such mappings
        As scikit-learn's ``ParameterGrid``: every combination is fitted.
    fixed_params : mapping, optional
        Settings shared by every fit (for example ``{"n_links": 5}``).
    labels : pandas.DataFrame, optional
        Known related pairs, for the label metrics.
    n_jobs : int or None
        Fits run at once, in processes, as in scikit-learn.

    Returns
    -------
    pandas.DataFrame
        One row per combination, in grid order: the swept settings, then one
        column per metric (see :data:`recommender.evaluate.METRICS`), then
        ``fit_seconds``.
    """
    fixed_params = dict(fixed_params or {})
    jobs = (
        joblib.delayed(_fit_and_measure)(pages, fixed_params, params, labels)
        for params in ParameterGrid(grid)
    )
    return pd.DataFrame(joblib.Parallel(n_jobs=n_jobs)(jobs))
