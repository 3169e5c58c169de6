"""Fit the model on a site (by default the real corpus) and print its figures beside today's links.

    python benchmarks/quality.py [SITE_FOLDER_OR_ARCHIVE] [--jobs N]

Prints, for the links the site has today, for plain nearest neighbours (the
model with coverage off) and for the model as configured by default: pages
with 5 links; self, repeated and copy links; keyword share; pages never
linked; the largest in-degree; and the time and peak memory of ``fit``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
from _site import site_from_args

from recommender import Recommender, compare, load_corpus


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(function):
    """Run function(); return its result, seconds, and peak RSS above the start, in MiB."""
    start_rss, peak, done = rss_mib(), [rss_mib()], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return result, seconds, max(peak[0], rss_mib()) - start_rss


SHOWN = [
    ("coverage", "pages_with_k_links"),
    ("validity", "self_links"),
    ("validity", "repeated_links"),
    ("validity", "copy_links"),
    ("validity", "no_index_links"),
    ("topicality", "keyword_share"),
    ("topicality", "same_subject_share"),
    ("graph", "orphan_share"),
    ("graph", "max_in_degree"),
    ("graph", "in_degree_gini"),
]


def main() -> None:
    root, _ = site_from_args(__doc__)
    corpus = load_corpus(root, n_jobs=-1)
    pages = corpus.pages
    print(f"site: {root}: {len(pages):,} pages, {len(corpus.errors):,} errors")

    plain, plain_seconds, plain_memory = measure(
        lambda: Recommender(coverage=False, n_jobs=-1).fit(pages)
    )
    model, seconds, memory = measure(lambda: Recommender(n_jobs=-1).fit(pages))
    table = compare(
        pages,
        {
            "site today": corpus.links,
            "nearest (no coverage)": plain.related_,
            "model": model.related_,
        },
    ).loc[SHOWN]
    table = table.drop(columns="definition")
    with pd.option_context("display.width", 120, "display.float_format", "{:,.3f}".format):
        print(table)

    # What coverage costs the readers: link scores against the plain nearest neighbours.
    merged = model.related_.merge(
        plain.related_, on=["source_url", "rank"], suffixes=("", "_plain")
    )
    changed = (merged["target_url"] != merged["target_url_plain"]).mean()
    spread, nearest = model.related_["score"].mean(), plain.related_["score"].mean()
    print(
        f"\ncoverage changed {changed:.1%} of links; mean link score {spread:.4f}"
        f" vs {nearest:.4f} without it ({spread / nearest:.3f}x)"
    )
    print(
        f"fit, no coverage: {plain_seconds:5.1f} s, peak +{plain_memory:,.0f} MiB\n"
        f"fit, model:       {seconds:5.1f} s, peak +{memory:,.0f} MiB"
        f"   steps: {', '.join(f'{k} {v:.1f} s' for k, v in model.timings_.items())}"
    )


if __name__ == "__main__":
    main()
