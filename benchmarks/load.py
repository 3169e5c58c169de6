"""Time load_corpus against a naive single-process python-frontmatter loop.

    python benchmarks/load.py [SITE_FOLDER_OR_ARCHIVE]

Prints wall times and ratios against the baseline measured in the same run
(machines here are noisy: compare ratios, not seconds, between runs).
"""

from __future__ import annotations

import time

import frontmatter
from _site import site_from_args

from recommender import load_corpus


def naive_load(root):
    """The baseline: one process, frontmatter.load on every file, nothing checked or cleaned."""
    return [frontmatter.load(path).metadata for path in sorted(root.rglob("*.md"))]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    root, _ = site_from_args(__doc__)
    naive_load(root)  # warm the file cache so that every contender reads from memory
    pages, baseline = timed(naive_load, root)
    print(f"site: {root} ({len(pages):,} pages)")
    print(f"{'naive frontmatter.load loop':<36} {baseline:7.2f} s   1.00x")
    for label, n_jobs in (("load_corpus, 1 process", None), ("load_corpus, all cores", -1)):
        corpus, seconds = timed(load_corpus, root, n_jobs=n_jobs)
        print(
            f"{label:<36} {seconds:7.2f} s   {seconds / baseline:.2f}x"
            f"   ({len(corpus.pages):,} pages, {len(corpus.errors):,} errors; also checks"
            " every field and cleans the text)"
        )


if __name__ == "__main__":
    main()
