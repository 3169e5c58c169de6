"""Loading and the similarity search on a Dask cluster of 1 worker, then 2: times, speed-up, links.

Usage::

    python benchmarks/cluster.py SITE [--workers 1 2] [--search auto|exact|fast] [--local]

SITE is a site folder, say one written by ``benchmarks/synthetic.py OUT --pages
200000 --seed 0``.  For each number of workers it starts a ``LocalCluster`` on
this machine (worker processes, one thread each) and, under joblib's dask
backend as ``recommend --scheduler`` runs, loads the site (the workers read
the pages) and fits a ``Recommender`` with the default settings (the candidate
search's blocks run on the workers; vectorising, the rules and coverage run in
this process).  Starting the cluster is not timed; the pages are read once
before, so that every run reads from the file cache.  It prints each run's
wall times by stage, the speed-up of the last run over the first, and checks
that every run gave the same links (exit 1 if not).  ``--local`` adds a run
without a cluster (one process, one thread) to the comparison.  Needs
``pip install ".[dask]"``; machines here are noisy: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import joblib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# worker processes import recommender too: this checkout's, not another installed one
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from recommender import Recommender, load_corpus  # noqa: E402

STAGES = ("load", "vectorise", "search", "rest")


def fit(site: Path, settings: dict, n_jobs: int = -1) -> tuple[dict[str, float], object]:
    """Seconds of each stage of loading and fitting the site, and the links."""
    start = time.perf_counter()
    corpus = load_corpus(site, n_jobs=n_jobs)
    seconds = {"load": time.perf_counter() - start}
    model = Recommender(**settings, n_jobs=n_jobs).fit(corpus.pages)
    laps = dict(model.timings_)
    seconds["vectorise"] = laps.pop("vectorise")
    seconds["search"] = laps.pop("similarity")
    seconds["rest"] = sum(laps.values())  # rules and coverage
    seconds["total"] = sum(seconds.values())
    return seconds, model.related_


def fit_on_cluster(site: Path, workers: int, settings: dict) -> tuple[dict[str, float], object]:
    """:func:`fit` under joblib's dask backend, on a fresh cluster of ``workers`` processes."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},
        ) as cluster,
        Client(cluster) as client,
        joblib.parallel_config(backend="dask", client=client),
    ):
        return fit(site, settings)


def warm(site: Path) -> int:
    """Read every page once, so that each run reads from the file cache; the page count."""
    pages = 0
    for path in site.rglob("*.md"):
        path.read_bytes()
        pages += 1
    return pages


def print_table(runs: dict[str, dict[str, float]], slow: str, fast: str) -> None:
    """Seconds by stage and run, and the speed-up of run ``fast`` over run ``slow``."""
    names = list(runs)
    print(f"\n{'stage':<10}" + "".join(f"{name:>13}" for name in names) + f"{'speed-up':>10}")
    for stage in (*STAGES, "total"):
        cells = "".join(f"{runs[name][stage]:>11.1f} s" for name in names)
        print(f"{stage:<10}{cells}{runs[slow][stage] / runs[fast][stage]:>9.2f}x")
    print(f"(speed-up: the time with {slow} over the time with {fast}; on a cluster, load and")
    print(" search run on its workers, vectorise and the rest (rules, coverage) in this process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path, help="a site folder")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--search", choices=["auto", "exact", "fast"], default="auto")
    parser.add_argument("--local", action="store_true", help="also fit without a cluster")
    args = parser.parse_args()
    if not args.site.is_dir():
        sys.exit(f"no site folder at {args.site}")
    settings = {"search": args.search}
    print(f"site: {args.site} ({warm(args.site):,} pages), search={args.search}", flush=True)
    runs, links = {}, {}
    if args.local:
        runs["1 process"], links["1 process"] = fit(args.site, settings, n_jobs=1)
        print(f"  1 process, no cluster: {runs['1 process']['total']:.1f} s", flush=True)
    names = []
    for workers in args.workers:
        name = f"{workers} worker{'s' if workers > 1 else ''}"
        runs[name], links[name] = fit_on_cluster(args.site, workers, settings)
        print(f"  {name}: {runs[name]['total']:.1f} s", flush=True)
        names.append(name)
    print_table(runs, names[0], names[-1])
    first, *others = links.values()
    same = all(table.equals(first) for table in others)
    print(f"links identical in every run: {'yes' if same else 'NO'} ({len(first):,} links)")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
