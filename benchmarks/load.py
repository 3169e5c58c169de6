"""Time load_corpus against a naive single-process python-frontmatter loop.

    python benchmarks/load.py [SITE_FOLDER_OR_ARCHIVE]

Prints wall times and ratios against the baseline measured in the same run
(machines here are noisy: compare ratios, not seconds, between runs).  Then
the front matter readers on every page, in one process, alternated: libyaml's
reading (``parse_yaml`` and ``related_spans``) against ``value_and_spans``,
which reads the plain layout line by line (``quick_parse``) and leaves every
other text to libyaml; with how many pages it left, and how many it read
differently (none, or a bug).
"""

from __future__ import annotations

import time

import frontmatter
from _site import site_from_args

from recommender import load_corpus
from recommender.errors import RewriteCheckError
from recommender.frontmatter import (
    parse_yaml,
    quick_parse,
    related_spans,
    split_front_matter,
    value_and_spans,
)


def naive_load(root):
    """The baseline: one process, frontmatter.load on every file, nothing checked or cleaned."""
    return [frontmatter.load(path).metadata for path in sorted(root.rglob("*.md"))]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def libyaml_reading(text):
    root, value = parse_yaml(text)
    try:
        return value, related_spans(text, root)
    except RewriteCheckError:
        return value, None


def front_matters(root) -> list[str]:
    """Each page's front matter text (pages with none, or not UTF-8, left out)."""
    texts = []
    for path in sorted(root.rglob("*.md")):
        try:
            text = path.read_text("utf-8")
            span = split_front_matter(text)
        except (UnicodeDecodeError, ValueError):
            continue
        if span is not None:
            texts.append(text[span[0] : span[1]])
    return texts


def compare_readers(root, rounds: int = 2) -> None:
    texts = front_matters(root)
    readers = {"libyaml": libyaml_reading, "value_and_spans": value_and_spans}
    readings = {}
    for _ in range(rounds):
        for label, read in readers.items():
            readings[label], seconds = timed(lambda read=read: [_or_error(read, t) for t in texts])
            print(f"{label:<36} {seconds:7.2f} s   ({len(texts):,} front matters, one process)")
    left = sum(quick_parse(text) is None for text in texts)
    differ = sum(map(lambda a, b: repr(a) != repr(b), *readings.values()))
    print(f"left to libyaml: {left:,}; read differently: {differ:,}")


def _or_error(read, text):
    try:
        return read(text)
    except Exception as exc:  # a page YAML refuses: the same refusal either way
        return type(exc).__name__


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
    compare_readers(root)


if __name__ == "__main__":
    main()
