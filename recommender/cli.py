"""The ``recommend`` command: a thin layer over the library.

It parses options, calls :func:`~recommender.load_corpus`,
:class:`~recommender.Recommender` and :func:`~recommender.export.export_links`,
prints what happened, and turns exceptions into one line and an exit code.
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import __version__
from .config import effective_settings, load_settings, settings_toml
from .corpus import load_corpus
from .errors import ConfigError, PageError, RecommenderError, SiteNotFoundError
from .evaluate import churn, compare
from .export import export_links, write_atomic
from .model import Recommender

EXIT_OK = 0  # done; with --check: no page would change
EXIT_CHANGES = 1  # --check: some pages would change
EXIT_USAGE = 2  # bad command line, settings file or site folder
EXIT_BAD_PAGES = 3  # some pages could not be loaded (skipped; with --strict, nothing written)
EXIT_FAILED = 4  # anything else went wrong (a page could not be written, ...)
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM

EPILOG = """\
modes (like black):
  (none)       say what would change; write nothing
  --rewrite    write the pages whose related blocks change
  --check      write nothing; exit 1 if any page would change
  --diff       print a unified diff of each page that would change

exit codes:
  0  done (with --check: no page would change)
  1  --check: some pages would change
  2  usage error: bad option, settings file or site folder
  3  some pages could not be loaded: they were listed and skipped
     (with --strict: nothing was written)
  4  something else failed, such as writing a page; the others were written
  130  interrupted (Ctrl-C or SIGTERM); each page is either as it was or done

settings: a TOML file of Recommender parameters (see --print-config);
options given on the command line override it.
"""

OUTPUT_FORMATS = (".csv", ".parquet", ".jsonl")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommend",
        description=(
            "Compute the most related pages for every page of a site of Markdown pages and "
            "write them into each page's related_article1..N blocks."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", nargs="?", type=Path, help="the site's content folder")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--rewrite", action="store_true", help="write the pages that change")
    mode.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any page would change"
    )
    parser.add_argument(
        "--diff", action="store_true", help="print a unified diff of every page that changes"
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="also write the links table to FILE (.csv, .parquet or .jsonl)",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="print quality metrics of the new links beside those of the links in the pages",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="settings file (TOML)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the settings in effect and exit"
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="processes and threads to use (default: all cores; overrides n_jobs in --config)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="any bad page fails the run before anything is written",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print only errors; no progress bars"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log each step; show tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


class _Usage(Exception):
    """A usage error found after parsing."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``recommend`` with the given arguments; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except _Usage as exc:
        parser.print_usage(sys.stderr)
        print(f"recommend: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, SiteNotFoundError) as exc:
        print(f"recommend: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PageError as exc:  # --strict
        print(f"recommend: bad page, nothing written: {exc}", file=sys.stderr)
        return EXIT_BAD_PAGES
    except KeyboardInterrupt:
        print("recommend: interrupted; every page is as it was or as it should be", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (RecommenderError, OSError, Exception) as exc:
        if args.verbose:
            traceback.print_exc()
        kind = "error" if isinstance(exc, RecommenderError | OSError) else "internal error"
        hint = "" if args.verbose else " (--verbose shows the traceback)"
        print(f"recommend: {kind}: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    """SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C, so no temporary file is left."""
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config) if args.config else {}
    settings.setdefault("n_jobs", -1)
    if args.jobs is not None:
        settings["n_jobs"] = args.jobs
    if args.print_config:
        print(settings_toml(effective_settings(settings)), end="")
        return EXIT_OK
    if args.path is None:
        raise _Usage("the site folder PATH is required")
    if args.output is not None and args.output.suffix.lower() not in OUTPUT_FORMATS:
        raise _Usage(f"--output must end in {', '.join(OUTPUT_FORMATS)}; got {args.output}")
    progress = not args.quiet and sys.stderr.isatty()
    say = (lambda *_: None) if args.quiet else print

    started = time.perf_counter()
    corpus = load_corpus(
        args.path, strict=args.strict, n_jobs=settings["n_jobs"], progress=progress
    )
    pages, errors = corpus.pages, corpus.errors
    say(f"recommend {args.path}")
    say(f"  pages    {len(pages):,} loaded, {len(errors):,} bad (skipped)")
    for message in errors["message"]:
        print(f"  bad page {message}", file=sys.stderr if args.quiet else sys.stdout)

    clock = time.perf_counter()
    model = Recommender(**settings, progress=progress).fit(pages)
    links = model.related_
    per_page = links.groupby("source_url").size().reindex(pages.index, fill_value=0)
    say(
        f"  links    {len(links):,} for {int((per_page > 0).sum()):,} pages "
        f"({int((per_page == model.n_links).sum()):,} with {model.n_links}) "
        f"in {time.perf_counter() - clock:.1f} s"
    )

    def show_diff(change) -> None:
        sys.stdout.write(change.diff())

    report = export_links(
        corpus.root,
        pages,
        links,
        write=args.rewrite,
        on_change=show_diff if args.diff else None,
        progress=progress,
    )
    status = report["status"].value_counts()
    changed = int(status.get("written", 0) + status.get("changed", 0))
    verb = "rewritten" if args.rewrite else "would be rewritten"
    say(
        f"  pages    {changed:,} {verb}, {int(status.get('unchanged', 0)):,} unchanged"
        + (f", {int(status.get('error', 0)):,} failed" if status.get("error", 0) else "")
    )
    touched = report[report["status"] != "unchanged"]
    say(
        f"  links    {int(touched['links_added'].sum()):,} added, "
        f"{int(touched['links_removed'].sum()):,} removed, "
        f"{int(report['links_kept'].sum()):,} kept"
    )
    for detail in report.loc[report["status"] == "error", "detail"]:
        print(f"  failed   {detail}", file=sys.stderr)

    if args.output is not None:
        _write_links(links, args.output)
        say(f"  output   {len(links):,} links written to {args.output}")
    if args.evaluate:
        table = compare(
            pages, {"in the pages": corpus.links, "recommended": links}, k=model.n_links
        )
        changes = churn(corpus.links, links).set_index(["group", "metric"])[["value"]]
        say("")
        say(_format_metrics(table.drop(columns="definition")))
        say(_format_metrics(changes.rename(columns={"value": "pages -> recommended"})))
    if not args.rewrite and changed and not args.check:
        say("  nothing written: --rewrite writes the changes, --diff shows them")
    say(f"  done in {time.perf_counter() - started:.1f} s")

    if status.get("error", 0):
        return EXIT_FAILED
    if len(errors):
        return EXIT_BAD_PAGES
    if args.check and changed:
        return EXIT_CHANGES
    return EXIT_OK


def _write_links(links: pd.DataFrame, path: Path) -> None:
    """Write the links table in the format its suffix names, atomically."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        buffer = io.BytesIO()
        links.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    elif suffix == ".csv":
        data = links.to_csv(index=False, lineterminator="\n").encode("utf-8")
    else:
        data = links.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    write_atomic(path, data)


def _format_metrics(table: pd.DataFrame) -> str:
    def cell(value: float) -> str:
        if pd.isna(value):
            return "-"
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:.3f}"

    formatted = table.map(cell)
    formatted.index = [f"{group}: {metric}" for group, metric in table.index]
    return formatted.to_string()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
