"""How far the nightly run's incremental links drift from a full rebuild as a site grows.

    python benchmarks/drift.py [--real DIR_OR_ARCHIVE] [--labelled DIR_OR_ARCHIVE]

An incremental run (:meth:`Recommender.update`) keeps the vocabularies and
document frequencies of the last full fit.  For each site, the pages are
shuffled (seeded); the first 80% are fitted, then the rest arrive in 20
batches of 1% of the site each, every batch through ``update``.  After 1, 5
and 20 batches the links are compared with a full ``fit`` of the same pages:
the share of links that differ, and on the labelled sites the recall@5 of
the people's pairs (a pair is found when either page lists the other among
its five) of both.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _site import ARCHIVE, extract

from recommender import Recommender, load_corpus

LABELLED = ARCHIVE.with_name("labelled-qa.tar.xz")
BATCHES, BATCH_SHARE, CHECKPOINTS, SEED = 20, 0.01, (1, 5, 20), 0


def differing_share(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Share of the links of ``a`` (source, target) that ``b`` does not hold."""
    pairs = set(zip(b["source_url"], b["target_url"], strict=True))
    return float(
        np.mean([p not in pairs for p in zip(a["source_url"], a["target_url"], strict=True)])
    )


def pair_recall(links: pd.DataFrame, truth: pd.DataFrame, urls: pd.Index) -> float:
    """Share of the labelled pairs within the site found by either page's five links."""
    listed = set(zip(links["source_url"], links["target_url"], strict=True))
    pairs = truth[truth["url_a"].isin(urls) & truth["url_b"].isin(urls)]
    found = [
        (a, b) in listed or (b, a) in listed
        for a, b in zip(pairs["url_a"], pairs["url_b"], strict=True)
    ]
    return float(np.mean(found)) if found else float("nan")


def drift(name: str, pages: pd.DataFrame, truth: pd.DataFrame | None) -> None:
    order = np.random.default_rng(SEED).permutation(len(pages))
    batch = max(1, int(BATCH_SHARE * len(pages)))
    start = len(pages) - BATCHES * batch
    model = Recommender(n_jobs=-1).fit(pages.iloc[order[:start]])
    for done in range(1, BATCHES + 1):
        now = pages.iloc[order[: start + done * batch]]
        new = pages.index[order[start + (done - 1) * batch : start + done * batch]]
        model.update(now, changed=new)
        if done not in CHECKPOINTS:
            continue
        full = Recommender(n_jobs=-1).fit(now)
        row = f"{name:10s} {done:3d} batches ({done * batch:,} pages): links differing " + (
            f"{differing_share(model.related_, full.related_):.3f}"
        )
        if truth is not None:
            row += (
                f"; recall@5 incremental {pair_recall(model.related_, truth, now.index):.3f}"
                f", full {pair_recall(full.related_, truth, now.index):.3f}"
            )
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", type=Path, default=ARCHIVE)
    parser.add_argument("--labelled", type=Path, default=LABELLED)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recommender-drift-"))
    try:
        real = args.real if args.real.is_dir() else extract(args.real, work / "real")
        drift("real", load_corpus(real, n_jobs=-1).pages, None)
        labelled = args.labelled if args.labelled.is_dir() else extract(args.labelled, work / "lqa")
        for site in sorted(p.parent for p in labelled.rglob("truth.tsv")):
            truth = pd.read_csv(site / "truth.tsv", sep="\t")
            drift(site.name, load_corpus(site / "pages", n_jobs=-1).pages, truth)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
