"""The exact search where many pages are identical: time and peak memory.

    python benchmarks/ties.py [--copies 3000 30000] [--queries 2000]

Each case is 100,000 random sparse pages plus COPIES copies of one page (a
site full of one boilerplate page); the queries are copies, so each ties at
its k-th place with every other copy.  The tie search is what is measured:
after a few doublings of the places it keeps, it keeps every target scoring
at least the k-th.  A plain case (no copies) is the baseline of the same run.
Each case runs in its own process, so that its peak memory is its own.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.neighbors import top_k_cosine


def case(copies: int, queries: int) -> None:
    rng = np.random.default_rng(0)
    pages = sp.random(100_000, 20_000, density=0.002, random_state=rng, format="csr")
    pages = normalize(pages).astype(np.float32)
    targets = sp.vstack([pages, pages[np.zeros(copies, dtype=int)]], format="csr")
    asked = targets[-queries:]
    start = time.perf_counter()
    indices, _ = top_k_cosine(asked, targets, k=10, n_jobs=2)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{copies:>7,} copies  {queries:,} queries  {seconds:6.2f} s  peak {peak:6.0f} MiB"
        f"  (checksum {int(indices.sum())})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="*", default=[3000, 30000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        return case(args.one, args.queries)
    for copies in [0, *args.copies]:
        one = [sys.executable, __file__, "--one", str(copies), "--queries", str(args.queries)]
        subprocess.run(one, check=True)


if __name__ == "__main__":
    main()
