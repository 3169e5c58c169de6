"""Plots for tuning in a notebook (matplotlib, from the ``notebooks`` extra).

Each function draws on the given matplotlib ``Axes`` (or a new figure) and
returns the axes, so that plots can be combined and styled as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .evaluate import METRICS, in_degrees

__all__ = ["plot_in_degrees", "plot_scores", "plot_tradeoff"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install 'recommender[notebooks]'") from exc
    return plt.figure().add_subplot()


def plot_tradeoff(
    results: pd.DataFrame,
    *,
    x: str = "orphan_share",
    y: str = "keyword_share",
    label: str | list[str] | None = None,
    hue: str | None = None,
    ax: Any = None,
) -> Any:
    """Scatter two metrics of a :func:`~recommender.tuning.sweep`, one labelled point per fit.

    Parameters
    ----------
    results : pandas.DataFrame
        A sweep's result (or any frame with columns ``x`` and ``y``).
    x, y : str
        The metrics to plot, by default pages never linked against keyword share.
    label : str or list of str, optional
        Columns whose values label each point; by default every column that
        is not a metric (nor ``hue``).
    hue : str, optional
        A column whose values colour the points, with a legend.
    """
    ax = _axes(ax)
    if label is None:
        metrics = {"relinked", "fit_seconds", hue, *(name for _, name in METRICS)}
        label = [c for c in results.columns if c not in metrics]
    columns = [label] if isinstance(label, str) else list(label)
    groups = results.groupby(results[hue].map(_short), sort=False) if hue else [(None, results)]
    for value, group in groups:
        ax.scatter(group[x], group[y], label=None if hue is None else f"{hue}={value}")
    if hue:
        ax.legend()
    for _, row in results.iterrows():
        # a sweep over several grids leaves a setting empty (NaN) where a grid lacks it
        set_here = [c for c in columns if not (isinstance(row[c], float) and np.isnan(row[c]))]
        text = ", ".join(f"{c}={_short(row[c])}" for c in set_here)
        ax.annotate(text, (row[x], row[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(f"{y.replace('_', ' ')} against {x.replace('_', ' ')}")
    return ax


def plot_in_degrees(
    pages: pd.DataFrame, tables: Mapping[str, pd.DataFrame], *, ax: Any = None
) -> Any:
    """How many pages are linked from 0, 1, 2, ... pages, for each links table."""
    ax = _axes(ax)
    for name, links in tables.items():
        counts = in_degrees(pages, links).value_counts().sort_index()
        ax.step(counts.index, counts.to_numpy(), where="mid", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("pages linking to a page (in-degree)")
    ax.set_ylabel("pages")
    ax.set_title("In-degree distribution")
    ax.legend()
    return ax


def plot_scores(links: pd.DataFrame, *, bins: int = 40, ax: Any = None) -> Any:
    """Histogram of link scores, one series per rank."""
    ax = _axes(ax)
    edges = np.linspace(0, max(float(links["score"].max()), 1e-9), bins + 1)
    for rank, group in links.groupby("rank"):
        ax.hist(group["score"], bins=edges, histtype="step", label=f"rank {rank}")
    ax.set_xlabel("score (cosine similarity)")
    ax.set_ylabel("links")
    ax.set_title("Score distribution by rank")
    ax.legend()
    return ax


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return "/".join(f"{v:g}" for v in value.values())
    return f"{value:g}" if isinstance(value, float) else str(value)
