"""Time and memory of each stage on synthetic sites of growing size.

Usage::

    python benchmarks/scale.py [SIZE ...] [--dir FOLDER] [--seed S] [--exact-max N] [--jobs N]

For each size (default 50,000, 200,000 and 1,000,000 pages) it writes a
synthetic site with ``benchmarks/synthetic.py`` under ``--dir`` (or reuses the
one already there), then, in a fresh process per size, times loading,
vectorising (as ``Recommender.fit`` does), the exact similarity search (up to
``--exact-max`` pages; past it, on ``--sample`` pages, its time scaled up to
all pages), the fast one, and a dry run of writing the fast
search's links back (``export_links`` without ``write``).  Each stage's peak
resident memory is sampled in that process (worker processes of the loader
are not counted).  It prints the table, the recall of the fast search against
the exact one, and the growth exponent of each stage between sizes,
``log(t2 / t1) / log(n2 / n1)`` (1 is linear, 2 quadratic).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
K_CANDIDATES, K_LINKS = 40, 5


class PeakMemory:
    """Peak resident memory of this process while the ``with`` block runs, sampled."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval

    @staticmethod
    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    def __enter__(self) -> PeakMemory:
        self.peak = self.resident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.resident())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.resident())


def links_table(urls, indices: np.ndarray, scores: np.ndarray):
    """The first K_LINKS targets of each page other than itself, as a links table."""
    import pandas as pd

    n = len(urls)
    others = (indices >= 0) & (indices != np.arange(n)[:, None])
    rank = np.cumsum(others, axis=1)
    chosen = others & (rank <= K_LINKS)
    rows, columns = np.nonzero(chosen)
    return pd.DataFrame(
        {
            "source_url": np.asarray(urls)[rows],
            "rank": rank[rows, columns],
            "target_url": np.asarray(urls)[indices[rows, columns]],
            "score": scores[rows, columns],
        }
    )


def recall_at(found, expected, k: int = K_LINKS, queries: np.ndarray | None = None) -> float:
    """Share of each page's k best other pages (exact) that the fast search's k best hold.

    ``queries`` are the pages the rows are of (default all, in order).
    """
    queries = np.arange(len(found)) if queries is None else queries

    def best(indices):
        others = np.where(indices == queries[:, None], -1, indices)
        order = np.argsort(others < 0, axis=1, kind="stable")
        return np.take_along_axis(others, order, 1)[:, :k]

    fast, exact = best(found), best(expected)
    hits = (fast[:, :, None] == exact[:, None, :]) & (exact[:, None, :] >= 0)
    return float(hits.any(axis=1).sum() / max((exact >= 0).sum(), 1))


def measure(site: Path, exact: bool, jobs: int, sample: int) -> dict:
    """Each stage's seconds and peak memory on one site (run in its own process).

    Where ``exact`` is false, the exact search runs for ``sample`` pages only:
    its time is scaled to all pages and the recall measured on them.
    """
    sys.path.insert(0, str(HERE.parent))
    from recommender import load_corpus
    from recommender.export import export_links
    from recommender.model import Recommender
    from recommender.neighbors import top_k_cosine, top_k_cosine_fast

    stages: dict[str, dict] = {}
    results: dict[str, object] = {}

    def stage(name, run):
        with PeakMemory() as memory:
            start = time.perf_counter()
            results[name] = run()
            seconds = time.perf_counter() - start
        stages[name] = {"seconds": seconds, "peak_mib": memory.peak / 2**20}
        peak = memory.peak / 2**20
        print(f"  {name}: {seconds:.1f} s, peak {peak:,.0f} MiB", file=sys.stderr, flush=True)

    print(f"{site}:", file=sys.stderr, flush=True)
    stage("load", lambda: load_corpus(site, n_jobs=jobs).pages.sort_index())
    pages = results.pop("load")
    model = Recommender(n_jobs=jobs)  # the model's default features, counted on ``jobs``
    features = model.new_features(*model.check_params())
    stage("vectorise", lambda: features.fit_transform(pages))
    X = results.pop("vectorise")
    n = X.shape[0]
    queries = np.arange(n)
    if not exact:  # the exact search of a sample of pages, its time scaled up
        queries = np.sort(np.random.default_rng(0).choice(n, min(sample, n), replace=False))
    stage("search exact", lambda: top_k_cosine(X[queries], X, k=K_CANDIDATES, n_jobs=jobs))
    if not exact:
        stages["search exact"]["seconds"] *= n / len(queries)
        stages["search exact"]["estimated from"] = len(queries)
        scaled = stages["search exact"]["seconds"]
        print(f"  search exact, scaled to all pages: {scaled:.1f} s", file=sys.stderr, flush=True)
    stage("search fast", lambda: top_k_cosine_fast(X, k=K_CANDIDATES, n_jobs=jobs))
    found, scores = results["search fast"]
    report = {"pages": len(pages), "stages": stages}
    report["recall@5"] = recall_at(found[queries], results.pop("search exact")[0], queries=queries)
    print(f"  recall@5 {report['recall@5']:.4f}", file=sys.stderr, flush=True)
    links = links_table(pages.index, found, scores)
    stage("export (dry run)", lambda: export_links(site, pages, links, write=False))
    return report


def site_for(n: int, args) -> Path:
    """The synthetic site of n pages under ``args.dir``, written first if missing."""
    site = args.dir / f"synthetic-{n}-seed{args.seed}"
    if not site.exists():
        command = [sys.executable, str(HERE / "synthetic.py"), str(site), "--pages", str(n)]
        command += ["--seed", str(args.seed), "--jobs", str(args.jobs)]
        command += ["--stats", str(args.stats)] if args.stats else []
        start = time.perf_counter()
        subprocess.run(command, check=True)
        print(f"generated {site} in {time.perf_counter() - start:.1f} s", flush=True)
    return site


def print_report(reports: list[dict]) -> None:
    """The table of stages by size, recall, and growth exponents between sizes."""
    print(f"\n{'pages':>10}  {'stage':<17}{'seconds':>9}{'peak MiB':>10}")
    for report in reports:
        for name, figures in report["stages"].items():
            print(
                f"{report['pages']:>10,}  {name:<17}{figures['seconds']:>9.1f}"
                f"{figures['peak_mib']:>10,.0f}"
            )
        print(f"{report['pages']:>10,}  {'recall@5 fast':<17}{report['recall@5']:>9.4f}")
    for before, after in itertools.pairwise(reports):
        ratio = math.log(after["pages"] / before["pages"])
        print(f"\ngrowth exponent {before['pages']:,} -> {after['pages']:,} pages:")
        for name, figures in after["stages"].items():
            if name in before["stages"]:
                growth = math.log(figures["seconds"] / before["stages"][name]["seconds"]) / ratio
                print(f"  {name:<17}{growth:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/recommender-synthetic"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", type=Path, help="statistics file for synthetic.py")
    parser.add_argument("--exact-max", type=int, default=200_000, help="largest exact search")
    parser.add_argument("--sample", type=int, default=5000, help="exact pages past --exact-max")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process measuring one site
        print(
            json.dumps(measure(args.one, args.sizes[0] <= args.exact_max, args.jobs, args.sample))
        )
        return
    reports = []
    for n in sorted(args.sizes):
        site = site_for(n, args)
        command = [sys.executable, __file__, str(n), "--one", str(site)]
        command += ["--exact-max", str(args.exact_max), "--sample", str(args.sample)]
        command += ["--jobs", str(args.jobs)]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        reports.append(json.loads(output.splitlines()[-1]))
        print(json.dumps(reports[-1]), flush=True)
    print_report(reports)


if __name__ == "__main__":
    main()
