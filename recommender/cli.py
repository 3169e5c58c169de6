"""The ``recommend`` command: a thin layer over the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .corpus import load_corpus
from .errors import PageError, RecommenderError, SiteNotFoundError

EXIT_OK, EXIT_CHANGES, EXIT_USAGE, EXIT_BAD_PAGES, EXIT_FAILED = 0, 1, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommend",
        description="Load a site of Markdown pages and summarise it.",
    )
    parser.add_argument("path", help="the site's content folder")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad page")
    parser.add_argument("--jobs", type=int, default=None, metavar="N", help="processes (-1: all)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", "-v", action="store_true", help="log details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    progress = not args.quiet and sys.stderr.isatty()
    try:
        corpus = load_corpus(args.path, strict=args.strict, n_jobs=args.jobs, progress=progress)
    except PageError as exc:
        print(f"recommend: {exc}", file=sys.stderr)
        return EXIT_BAD_PAGES
    except SiteNotFoundError as exc:
        print(f"recommend: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RecommenderError as exc:
        print(f"recommend: {exc}", file=sys.stderr)
        return EXIT_FAILED
    pages = corpus.pages
    print(f"{len(pages):,} pages loaded from {args.path}, {len(corpus.errors):,} errors")
    print(f"{pages['subject_key'].nunique():,} subjects, {len(corpus.links):,} related links")
    for message in corpus.errors["message"]:
        print(f"  {message}")
    return EXIT_BAD_PAGES if len(corpus.errors) else EXIT_OK
