"""Churn against relevance for several ``stability`` values.

    python benchmarks/stability.py [SITE_FOLDER_OR_ARCHIVE] [--labelled FOLDER_OR_ARCHIVE]
        [--stability 0 0.05 0.1 0.2 0.3] [--removed 500] [--seed 0] [--jobs N]

For each site and each value (:func:`recommender.tuning.stability_trial`):
remove ``--removed`` pages (seeded), compute the links of the rest (run A)
and take them as the pages' current links, as if ``recommend --rewrite`` had
written a copy of the site; put the removed pages back (with the blocks they
held) and compute again (run B).  Prints, from A to B, the pages whose lists
changed and the links added and dropped, beside relevance: the mean link
score of run B, recall@5 on each labelled site (a labelled pair is found when
either page lists the other in its first five links), and, for the pages put
back, how many got fewer than five links and how many no page links to.
Sites are folders or ``.tar.xz`` archives (by default the real corpus and the
labelled sites beside the checkout, in ``../shared/corpora``).
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
from pathlib import Path

import pandas as pd
from _site import ARCHIVE

from recommender import load_corpus
from recommender.tuning import stability_trial

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


def labelled_sites(root: Path):
    """(name, pages folder, truth file) of each labelled site under root."""
    for name in SITES:
        site = root / name if (root / name).is_dir() else root / "labelled-qa" / name
        yield name, site / "pages", site / "truth.tsv"


def trial_rows(name: str, pages: pd.DataFrame, values, **trial) -> pd.DataFrame:
    """:func:`stability_trial` one value at a time (the same pages taken out), printing each row."""
    rows = []
    for value in values:
        rows.append(stability_trial(pages, [value], **trial))
        print(name, rows[-1].to_dict("records")[0], flush=True)
    return pd.concat(rows, ignore_index=True)


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
    trial = {"n_removed": args.removed, "seed": args.seed, "fixed_params": {"n_jobs": args.jobs}}
    tables = {}
    try:
        if args.labelled.exists():
            for name, pages, truth in labelled_sites(folder(args.labelled, scratch)):
                pages = load_corpus(pages, n_jobs=args.jobs).pages
                pairs = pd.read_csv(truth, sep="\t")
                tables[name] = trial_rows(name, pages, args.stability, pairs=pairs, **trial)
        pages = load_corpus(folder(args.site, scratch), n_jobs=args.jobs).pages
        tables["real"] = trial_rows("real", pages, args.stability, **trial)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = pd.concat(tables, names=["site"]).droplevel(1).set_index("stability", append=True)
    print(table.to_string(float_format="{:,.4f}".format))


if __name__ == "__main__":
    main()
