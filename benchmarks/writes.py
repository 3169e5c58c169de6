"""Replacing a site's pages on this disk: temporary files in one folder, or beside each page.

    python benchmarks/writes.py [SITE_FOLDER_OR_ARCHIVE] [--pairs N] [--again N]

On fresh copies of the site, alternated, in one process (as the exporter's
calling process makes every file change): every page replaced by its own
bytes through :class:`recommender.files.PageWriter`, then ``--again`` of them
(3,000 by default, seeded) once more, as a night after a full run.  Two ways:

* ``folder``: the temporary files in the scratch folder at the site's root
  (``.recommend-writing``), as the exporter writes since 2026-12-06;
* ``beside``: each temporary file beside its page, as before (a link planted
  where the scratch folder goes, which the writer never uses).

Each copy is made right after the copy before it was rewritten, so that
each way meets the inodes the other's rewrite freed minutes before (see
``docs/performance.md``, *The temporary files in one folder*).  Prints each
copy's wall and kernel seconds; the copies are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from _site import ARCHIVE, extract

from recommender.files import SCRATCH_FOLDER, PageWriter

SEED = 0


def rewrite(site: Path, pages: list[Path]) -> tuple[float, float]:
    """Wall and kernel seconds to replace ``pages`` with their own bytes (read first)."""
    texts = [page.read_bytes() for page in pages]
    start, kernel = time.perf_counter(), os.times().system
    with PageWriter(os.path.realpath(site)) as writer:
        for page, text in zip(pages, texts, strict=True):
            writer.replace(page, text)
    return time.perf_counter() - start, os.times().system - kernel


def one_copy(source: Path, work: Path, way: str, again: int) -> str:
    site = extract(source, work / f"{way}-{time.monotonic_ns()}")
    if way == "beside":
        (site / SCRATCH_FOLDER).symlink_to("nowhere")
    pages = sorted(site.rglob("*.md"))
    wall, kernel = rewrite(site, pages)
    chosen = sorted(random.Random(SEED).sample(pages, min(again, len(pages))))
    wall_again, kernel_again = rewrite(site, chosen)
    return (
        f"{way:6s}  {len(pages):,} pages {wall:6.1f} s ({kernel:5.1f} s kernel), "
        f"then {len(chosen):,} again {wall_again:5.2f} s ({kernel_again:4.2f} s kernel)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=ARCHIVE)
    parser.add_argument("--pairs", type=int, default=2, help="copies of each way (alternated)")
    parser.add_argument("--again", type=int, default=3000, help="pages replaced a second time")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recommender-writes-"))
    try:
        for _ in range(args.pairs):
            for way in ("beside", "folder"):
                print(one_copy(args.site, work, way, args.again), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
