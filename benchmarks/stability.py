"""Churn against relevance for several ``stability`` values.

    python benchmarks/stability.py [SITE_FOLDER_OR_ARCHIVE] [--labelled FOLDER_OR_ARCHIVE]
        [--stability 0 0.05 0.1 0.2 0.3] [--removed 500] [--seed 0] [--jobs N]

For each site and each value: remove ``--removed`` pages (seeded), compute
the links of the rest (run A) and take them as the pages' current links, as
if ``recommend --rewrite`` had written a copy of the site; put the removed
pages back (with the blocks they held) and compute again (run B).  Prints,
from A to B, the pages whose lists changed and the links added and dropped,
beside relevance: the mean link score of run B on the real corpus, recall@5
on each labelled site (a labelled pair is found when either page lists the
other in its first five links), and, for the pages put back, how many got
fewer than five links and how many no page links to (orphans).
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _site import ARCHIVE

from recommender import Recommender, churn, load_corpus

LABELLED = ARCHIVE.parent / "labelled-qa.tar.xz"
SITES = ("cooking", "biology", "crypto")


def folder(source: Path, scratch: Path) -> Path:
    """``source`` itself if a folder, else the archive extracted under ``scratch``."""
    if source.is_dir():
        return source
    target = Path(tempfile.mkdtemp(prefix="stability-", dir=scratch))
    with tarfile.open(source, "r:xz") as archive:
        archive.extractall(target, filter="data")
    return target


def remove_and_put_back(pages: pd.DataFrame, removed: pd.Index, stability: float, jobs: int):
    """Run A without ``removed``, run B with them back and A's links as the current ones."""
    model = Recommender(stability=stability, n_jobs=jobs)
    first = model.fit(pages.drop(index=removed)).related_
    written = first.groupby("source_url")["target_url"].agg(list)
    current = pages["related_urls"].copy()
    kept_pages = pages.index.difference(removed)
    current.loc[kept_pages] = written.reindex(kept_pages).map(
        lambda urls: urls if isinstance(urls, list) else []
    )
    second = model.fit(pages.assign(related_urls=current)).related_
    return first, second


def pair_recall(links: pd.DataFrame, truth: pd.DataFrame, k: int = 5) -> float:
    """Share of labelled pairs where either page lists the other in its first k links."""
    top = links[links["rank"] <= k]
    listed = set(zip(top["source_url"], top["target_url"], strict=True))
    found = [
        (a, b) in listed or (b, a) in listed
        for a, b in zip(truth["url_a"], truth["url_b"], strict=True)
    ]
    return float(np.mean(found))


def measure(name, pages, truth, values, n_removed, seed, jobs) -> list[dict]:
    removed = pages.sample(n=n_removed, random_state=seed).index
    rows = []
    for stability in values:
        started = time.perf_counter()
        first, second = remove_and_put_back(pages, removed, stability, jobs)
        changes = churn(first, second).set_index("metric")["value"]
        new_links = second[second["source_url"].isin(removed)].groupby("source_url").size()
        linked = set(second["target_url"])
        row = {
            "site": name,
            "stability": stability,
            "pages_changed": int(changes["pages_changed"]),
            "links_added": int(changes["links_added"]),
            "links_dropped": int(changes["links_dropped"]),
            "mean_score": second["score"].mean(),
            "recall@5": pair_recall(second, truth) if truth is not None else np.nan,
            "new_short": int((new_links.reindex(removed, fill_value=0) < 5).sum()),
            "new_orphans": int(sum(url not in linked for url in removed)),
            "seconds": time.perf_counter() - started,
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site", nargs="?", type=Path, default=ARCHIVE)
    parser.add_argument("--labelled", type=Path, default=LABELLED)
    parser.add_argument("--stability", type=float, nargs="+", default=[0, 0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--removed", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=-1)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    try:
        rows = []
        labelled = folder(args.labelled, scratch) if args.labelled.exists() else None
        for name in SITES if labelled is not None else ():
            root = (
                labelled / name if (labelled / name).is_dir() else labelled / "labelled-qa" / name
            )
            pages = load_corpus(root / "pages", n_jobs=args.jobs).pages
            truth = pd.read_csv(root / "truth.tsv", sep="\t")
            rows += measure(name, pages, truth, args.stability, args.removed, args.seed, args.jobs)
        pages = load_corpus(folder(args.site, scratch), n_jobs=args.jobs).pages
        rows += measure("real", pages, None, args.stability, args.removed, args.seed, args.jobs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = pd.DataFrame(rows).set_index(["site", "stability"])
    with pd.option_context("display.width", 160, "display.float_format", "{:,.4f}".format):
        print(table)


if __name__ == "__main__":
    main()
