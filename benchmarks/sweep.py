"""Time a sweep of link settings: one fit and relinks, against a fit per combination.

    python benchmarks/sweep.py [SITE_FOLDER_OR_ARCHIVE]

The grid (the mutual discount at 0, 0.2 and 0.4, coverage on and off) varies
only settings that act after the search, so ``sweep`` fits once and relinks
five times; the baseline fits each of the six combinations, in the same run.
Both use both cores for each fit. Prints both times, their ratio, and
whether every metric of every combination is the same both ways.
"""

from __future__ import annotations

import time

import pandas as pd
from _site import site_from_args

from recommender import Recommender, evaluate, load_corpus, sweep

GRID = {"mutual_discount": [0.0, 0.2, 0.4], "coverage": [True, False]}
FIXED = {"n_jobs": -1}


def fit_each(pages: pd.DataFrame) -> pd.DataFrame:
    """The baseline: every combination fitted from the pages."""
    rows = []
    for coverage in GRID["coverage"]:
        for discount in GRID["mutual_discount"]:
            model = Recommender(**FIXED, coverage=coverage, mutual_discount=discount).fit(pages)
            metrics = evaluate(pages, model.related_, k=model.n_links)
            rows.append(
                {"coverage": coverage, "mutual_discount": discount}
                | dict(zip(metrics["metric"], metrics["value"], strict=True))
            )
    return pd.DataFrame(rows)


def main() -> None:
    site, _ = site_from_args(__doc__.splitlines()[0])
    pages = load_corpus(site, n_jobs=-1).pages
    print(f"{len(pages):,} pages; grid {GRID}")
    start = time.perf_counter()
    swept = sweep(pages, GRID, fixed_params=FIXED)
    relinking = time.perf_counter() - start
    start = time.perf_counter()
    each = fit_each(pages)
    fitting = time.perf_counter() - start
    print(swept[["coverage", "mutual_discount", "relinked", "fit_seconds"]].to_string(index=False))
    print(f"a fit per combination: {fitting:.1f} s (1.00x)")
    print(f"sweep, one fit and relinks: {relinking:.1f} s ({relinking / fitting:.2f}x)")
    metrics = [c for c in each.columns if c not in GRID]
    same = swept[list(each.columns)].sort_values(list(GRID)).reset_index(drop=True)
    other = each.sort_values(list(GRID)).reset_index(drop=True)
    equal = same[metrics].equals(other[metrics]) and same[list(GRID)].equals(other[list(GRID)])
    print(f"every metric the same both ways: {equal}")


if __name__ == "__main__":
    main()
