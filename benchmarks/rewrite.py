"""Time ``recommend --rewrite`` on a copy of a site, first run and no-change re-run.

    python benchmarks/rewrite.py [SITE_FOLDER_OR_ARCHIVE]

The baseline, in the same run: the naive way of writing the same links back,
``frontmatter.load`` and ``frontmatter.dump`` on every page (which also
reflows every string and sorts the keys: the script counts the pages whose
text outside the related blocks it changes).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import frontmatter
from _site import site_from_args

from recommender import Recommender, load_corpus
from recommender.cli import main

BLOCK = re.compile(r"^related_article\d+:.*\n(?:[ \t]+\S.*\n|[ \t]*\n(?=[ \t]+\S))*", re.M)


def naive_rewrite(root: Path, pages, links) -> int:
    """Write the links with python-frontmatter; return how many pages changed outside the blocks."""
    by_source = links.sort_values(["source_url", "rank"]).groupby("source_url")["target_url"]
    damaged = 0
    for url, targets in by_source:
        path = root / pages.at[url, "path"]
        before = path.read_text(encoding="utf-8")
        post = frontmatter.loads(before)
        for key in [k for k in post.metadata if k.startswith("related_article")]:
            del post.metadata[key]
        for n, target in enumerate(targets, 1):
            page = pages.loc[target]
            post.metadata[f"related_article{n}"] = {
                "id": int(page["id"]),
                "title": page["title"],
                "subject": page["subject"],
                "url": target,
            }
        after = frontmatter.dumps(post)
        path.write_text(after, encoding="utf-8")
        damaged += BLOCK.sub("", before) != BLOCK.sub("", after)
    return damaged


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main_bench() -> None:
    source, _ = site_from_args(__doc__)
    work = Path(tempfile.mkdtemp(prefix="recommender-rewrite-"))
    try:
        naive_site, site = work / "naive", work / "site"
        shutil.copytree(source, naive_site)
        shutil.copytree(source, site)

        corpus = load_corpus(naive_site, n_jobs=-1)
        links = Recommender(n_jobs=-1).fit(corpus.pages).related_
        damaged, naive = timed(naive_rewrite, naive_site, corpus.pages, links)
        print(f"site: {source} ({len(corpus.pages):,} pages)")
        row = "{:<46} {:7.1f} s   {:.2f}x   {}".format
        print(
            row(
                "naive frontmatter load/dump, same links",
                naive,
                1.0,
                f"(changed {damaged:,} pages outside the related blocks)",
            )
        )
        code, first = timed(main, [str(site), "--rewrite", "--quiet"])
        print(row("recommend --rewrite (load, fit, write)", first, first / naive, f"exit {code}"))
        code, again = timed(main, [str(site), "--rewrite", "--quiet"])
        print(
            row(
                "recommend --rewrite again, nothing to change", again, again / naive, f"exit {code}"
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
