"""The ``recommend`` command: a thin layer over the library.

It parses options, calls :func:`~recommender.load_corpus`,
:class:`~recommender.Recommender` and :func:`~recommender.export.export_links`,
prints what happened, and turns exceptions into one line and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import __version__
from .config import effective_settings, load_rules, load_settings, settings_toml
from .errors import (
    ConfigError,
    ExportError,
    LockedError,
    PageError,
    RecommenderError,
    RemovalRefusedError,
    SiteNotFoundError,
)
from .export import LINKS_TABLE_SUFFIXES, PageChange, WriteBack
from .files import DEFAULT_MAX_PAGE_BYTES
from .job import DEFAULT_FULL_AFTER, DEFAULT_MAX_REMOVAL_SHARE, JobResult, run_job
from .model import Recommender
from .state import DEFAULT_STATE_FOLDER

EXIT_OK = 0  # done; with --check: no page would change
EXIT_CHANGES = 1  # --check: some pages would change
EXIT_USAGE = 2  # bad command line, settings file or site folder
EXIT_BAD_PAGES = 3  # some pages could not be loaded (skipped; with --strict, nothing written)
EXIT_FAILED = 4  # anything else went wrong (a page could not be written, ...)
EXIT_REFUSED = 5  # --rewrite refused: it would remove links from too many pages (--force)
EXIT_LOCKED = 6  # another run holds the site's lock; nothing was done
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM
# 2, 6 and 5 stop a run before any page is written, so they come alone; a run
# that went through gives the most serious of 4 over 3 over 1 over 0 (see _exit_code);
# 130 whenever the run was interrupted.

EPILOG = """\
modes (like black):
  (none)       say what would change; write nothing
  --rewrite    write the pages whose related blocks change
  --check      write nothing; exit 1 if any page would change
  --diff       print a unified diff of each page that would change

exit codes:
  0  done (with --check: no page would change)
  1  --check: some pages would change
  2  usage error: bad option, settings file, site folder or Dask scheduler
  3  some pages could not be loaded: they were listed and skipped
     (with --strict: nothing was written)
  4  something else failed, such as writing a page; the others were written
  5  refused: the rewrite would leave too many pages with fewer links than
     today (see --max-removal-share); nothing was written; --force writes
  6  another run holds the site's lock; nothing was done
  130  interrupted (Ctrl-C or SIGTERM); each page is either as it was or done
  2, 6 and 5 stop the run before any page is written; otherwise the highest
  of 4, 3 and 1 wins

settings: a TOML file of Recommender parameters (see --print-config);
options given on the command line override it.  rules: an editor's TOML
file of pins, nevers, keeps, dates and subjects (--rules, or rules = in the
settings); a rule that cannot be applied is exit 2, nothing written.
"""


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
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help=f"state kept between runs (default: {DEFAULT_STATE_FOLDER} at the site root)",
    )
    state.add_argument(
        "--no-state", action="store_true", help="keep no state: every run is a full run"
    )
    parser.add_argument(
        "--full", action="store_true", help="refit everything, whatever the state holds"
    )
    parser.add_argument(
        "--full-after",
        type=_share,
        default=DEFAULT_FULL_AFTER,
        metavar="SHARE",
        help="refit everything when more than this share of the pages changed "
        f"(default: {DEFAULT_FULL_AFTER})",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="editorial rules file (TOML: pin, never, keep, dates, subjects); overrides --config",
    )
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
        "--semantic-weight",
        type=_share,
        metavar="W",
        help="blend this share of sentence-embedding similarity into the scores "
        '(0: off; needs pip install "recommender[embeddings]"; overrides --config)',
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="read the pages and run the similarity search on the Dask cluster of this "
        'scheduler (tcp://host:port; its workers must see PATH; pip install "recommender[dask]")',
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="any bad page fails the run before anything is written",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rewrite even when many pages would lose links (see --max-removal-share)",
    )
    parser.add_argument(
        "--max-removal-share",
        type=float,
        default=DEFAULT_MAX_REMOVAL_SHARE,
        metavar="SHARE",
        help="refuse to rewrite (exit 5) when more than this share of pages would have fewer "
        f"links than today (default {DEFAULT_MAX_REMOVAL_SHARE})",
    )
    parser.add_argument(
        "--max-page-bytes",
        type=int,
        default=DEFAULT_MAX_PAGE_BYTES,
        metavar="N",
        help=f"a bigger page file is a bad page, not read (default {DEFAULT_MAX_PAGE_BYTES:,})",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print only errors; no progress bars"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log each step; show tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a share from 0 to 1, got {text}")
    return value


class _Usage(Exception):
    """A usage error found after parsing."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``recommend`` with the given arguments; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except _Usage as exc:
        parser.print_usage(sys.stderr)
        return _fail(f"error: {exc}", EXIT_USAGE)
    except (ConfigError, SiteNotFoundError) as exc:
        return _fail(f"error: {exc}", EXIT_USAGE)
    except PageError as exc:  # --strict
        return _fail(f"bad page, nothing written: {exc}", EXIT_BAD_PAGES)
    except LockedError as exc:
        return _fail(f"not run: {exc}", EXIT_LOCKED)
    except RemovalRefusedError as exc:
        return _fail(f"nothing written: {exc}", EXIT_REFUSED)
    except KeyboardInterrupt:
        return _fail("interrupted; every page is as it was or as it should be", EXIT_INTERRUPTED)
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        kind = "error" if isinstance(exc, RecommenderError | OSError) else "internal error"
        hint = "" if args.verbose else " (--verbose shows the traceback)"
        return _fail(f"{kind}: {exc}{hint}", EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)
        logging.captureWarnings(False)


def _configure_logging(args: argparse.Namespace) -> None:
    """Library warnings as one plain line on stderr; steps with timings only with --verbose."""
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if args.verbose else "recommend: "
    fmt += "" if args.verbose else "%(levelname)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)  # warnings.warn from the library: the same one line


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        if record.name == "py.warnings":  # "file:line: UserWarning: text" -> "text"
            record.msg = str(record.msg).split("Warning: ", 1)[-1].splitlines()[0]
        return super().format(record)


def _fail(message: str, code: int) -> int:
    print(f"recommend: {message}", file=sys.stderr)
    return code


def _interrupt(signum, frame) -> None:
    """SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C, so no temporary file is left."""
    raise KeyboardInterrupt


#: Options of a run that --print-config would silently not do.
_RUN_ONLY = {
    "--rewrite": "rewrite",
    "--check": "check",
    "--diff": "diff",
    "--output": "output",
    "--evaluate": "evaluate",
}


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.print_config:  # only settings a run takes, so that --config reads them back
        doing = [name for name, given in _RUN_ONLY.items() if getattr(args, given)]
        if args.path is not None or doing:
            what = ", ".join(["PATH"] * (args.path is not None) + doing)
            raise _Usage(f"--print-config prints the settings and exits; not with {what}")
        Recommender(**settings).check_params()
        print(settings_toml(effective_settings(settings)), end="")
        return EXIT_OK
    if args.path is None:
        raise _Usage("the site folder PATH is required")
    if args.output is not None and args.output.suffix.lower() not in LINKS_TABLE_SUFFIXES:
        raise _Usage(f"--output must end in {', '.join(LINKS_TABLE_SUFFIXES)}; got {args.output}")
    write_back = WriteBack.from_options(rewrite=args.rewrite, check=args.check, diff=args.diff)
    try:
        result = run_job(
            args.path,
            settings=settings,
            write_back=write_back,
            strict=args.strict,
            output=args.output,
            evaluate=args.evaluate,
            on_change=_print_diff if write_back.shows_diff else None,
            progress=not args.quiet and sys.stderr.isatty(),
            state=False if args.no_state else (args.state or True),
            full=args.full,
            full_after=args.full_after,
            max_page_bytes=args.max_page_bytes,
            max_removal_share=args.max_removal_share,
            force=args.force,
            scheduler=args.scheduler,
        )
    except ExportError as exc:
        if args.output is not None and str(exc).startswith(str(args.output)):
            raise _Usage(str(exc)) from None
        raise
    _report(result, args)
    return _exit_code(result)


def _settings(args: argparse.Namespace) -> dict:
    settings = load_settings(args.config, rules=args.rules is None) if args.config else {}
    settings.setdefault("n_jobs", -1)
    if args.jobs is not None:
        settings["n_jobs"] = args.jobs
    if args.semantic_weight is not None:
        settings["semantic_weight"] = args.semantic_weight
    if args.rules is not None:
        settings["rules"] = load_rules(args.rules)
    return settings


def _print_diff(change: PageChange) -> None:
    sys.stdout.write(change.diff())


def _report(result: JobResult, args: argparse.Namespace) -> None:
    """The summary on stdout (stderr when stdout carries a diff); problems on stderr."""
    for line in result.problem_lines():
        print(line, file=sys.stderr)
    if args.quiet:
        return
    stream = sys.stderr if result.write_back.shows_diff else sys.stdout
    for line in result.summary_lines():
        print(line, file=stream)
    if result.metrics is not None:
        print("", file=stream)
        print(_format_metrics(result.metrics), file=stream)
        print(_format_metrics(result.churn), file=stream)


def _exit_code(result: JobResult) -> int:
    """The one place a finished run becomes an exit code: 4 over 3 over 1 over 0."""
    if result.pages_failed:
        return EXIT_FAILED
    if len(result.corpus.errors):
        return EXIT_BAD_PAGES
    if result.write_back.checks and result.pages_changed:
        return EXIT_CHANGES
    return EXIT_OK


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
