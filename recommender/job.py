"""The whole job on one site: load the pages, compute the links, write them back.

:func:`run_job` is what ``recommend`` does, as a library call: it loads the
site (:func:`~recommender.corpus.load_corpus`), fits a
:class:`~recommender.model.Recommender`, compares each page's related blocks
with its new links and, as the :class:`~recommender.export.WriteBack` mode
says, writes them, shows their diff or only counts them
(:func:`~recommender.export.export_links`).  It returns a :class:`JobResult`
that knows what to say of the run (:meth:`JobResult.summary_lines`); the
command line prints those lines and turns the result into an exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .corpus import Corpus, load_corpus
from .errors import ConfigError, RemovalRefusedError
from .evaluate import churn, compare
from .export import PageChange, WriteBack, check_output_path, export_links, write_links_table
from .files import DEFAULT_MAX_PAGE_BYTES, SiteLock, remove_temporary_files
from .model import LINK_COLUMNS, Recommender
from .rules import target_mask

__all__ = ["DEFAULT_MAX_REMOVAL_SHARE", "JobResult", "pages_losing_links", "run_job"]

#: Largest share of pages a rewrite may leave with fewer links than they hold today.
DEFAULT_MAX_REMOVAL_SHARE = 0.1

logger = logging.getLogger(__name__)


@dataclass
class JobResult:
    """What one run did: the pages loaded, the links computed, and each page's fate.

    Attributes
    ----------
    corpus : Corpus
        The site as loaded (``corpus.errors``: the pages that were skipped).
    links : pandas.DataFrame
        The new links (:data:`~recommender.model.LINK_COLUMNS`); empty when
        the site has fewer than two pages.
    report : pandas.DataFrame
        One row per page (:data:`~recommender.export.REPORT_COLUMNS`).
    write_back : WriteBack
        The mode the run was made in.
    n_links : int
        Links each page was meant to get.
    seconds : dict of str to float
        Seconds spent loading, fitting, writing, and in all.
    output : Path or None
        Where the links table was written.
    metrics : pandas.DataFrame or None
        With ``evaluate``: the metrics of the links in the pages and of the
        new links, side by side (indexed by group and metric).
    churn : pandas.DataFrame or None
        With ``evaluate``: how the new links differ from those in the pages.
    temporary_files_removed : int
        Temporary files a killed run had left, removed before writing.
    """

    corpus: Corpus
    links: pd.DataFrame
    report: pd.DataFrame
    write_back: WriteBack
    n_links: int
    seconds: dict[str, float] = field(default_factory=dict)
    output: Path | None = None
    metrics: pd.DataFrame | None = None
    churn: pd.DataFrame | None = None
    temporary_files_removed: int = 0

    def count(self, status: str) -> int:
        """Pages of the report with this status."""
        return int((self.report["status"] == status).sum())

    @property
    def pages_changed(self) -> int:
        """Pages whose related blocks were (or would be) rewritten."""
        return self.count("written") + self.count("changed")

    @property
    def pages_failed(self) -> int:
        """Pages that could not be read back or written."""
        return self.count("error")

    def summary_lines(self) -> list[str]:
        """What a person wants to know of the run, one line each."""
        pages, errors = self.corpus.pages, self.corpus.errors
        per_page = self.links.groupby("source_url").size().reindex(pages.index, fill_value=0)
        verb = "rewritten" if self.write_back.writes else "would be rewritten"
        touched = self.report[self.report["status"] != "unchanged"]
        failed = f", {self.pages_failed:,} failed" if self.pages_failed else ""
        lines = [
            f"recommend {self.corpus.root}",
            f"  pages    {len(pages):,} loaded, {len(errors):,} bad (skipped)",
            f"  links    {len(self.links):,} for {int((per_page > 0).sum()):,} pages "
            f"({int((per_page == self.n_links).sum()):,} with {self.n_links}) "
            f"in {self.seconds.get('fit', 0.0):.1f} s",
            f"  pages    {self.pages_changed:,} {verb}, {self.count('unchanged'):,} unchanged"
            + failed,
            f"  links    {int(touched['links_added'].sum()):,} added, "
            f"{int(touched['links_removed'].sum()):,} removed, "
            f"{int(self.report['links_kept'].sum()):,} kept",
        ]
        if self.output is not None:
            lines.append(f"  output   {len(self.links):,} links written to {self.output}")
        if self.temporary_files_removed:
            lines.append(
                f"  cleaned  {self.temporary_files_removed:,} temporary files left by a killed run"
            )
        if self.write_back is WriteBack.NO and self.pages_changed:
            lines.append("  nothing written: --rewrite writes the changes, --diff shows them")
        lines.append(f"  done in {self.seconds.get('total', 0.0):.1f} s")
        return lines

    def problem_lines(self) -> list[str]:
        """One line per page skipped or not written, naming its file."""
        bad = [f"  bad page {message}" for message in self.corpus.errors["message"]]
        failed = self.report.loc[self.report["status"] == "error", "detail"]
        return bad + [f"  failed   {detail}" for detail in failed]


def run_job(
    root: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any] | None = None,
    write_back: WriteBack = WriteBack.NO,
    strict: bool = False,
    output: str | os.PathLike[str] | None = None,
    evaluate: bool = False,
    on_change: Callable[[PageChange], None] | None = None,
    progress: bool = False,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE,
    force: bool = False,
) -> JobResult:
    """Load a site, compute its links and write them back as ``write_back`` says.

    A run that writes holds the site's lock (:class:`~recommender.files.SiteLock`)
    from start to end, and first removes the temporary files a killed run left.
    Worker processes end with the run.

    Parameters
    ----------
    root : path
        The site's content folder.
    settings : mapping, optional
        :class:`~recommender.model.Recommender` parameters.
    write_back : WriteBack, default WriteBack.NO
        Whether pages are written, and whether their diffs are shown.
    strict : bool, default False
        Any bad page raises its :class:`~recommender.errors.PageError`
        before anything is written.
    output : path, optional
        Also write the links table there (``.csv``, ``.parquet``, ``.jsonl``);
        the path is checked before any page is written.
    evaluate : bool, default False
        Measure the new links beside the links in the pages (``metrics``).
    on_change : callable, optional
        Called with each :class:`~recommender.export.PageChange`, as by
        :func:`~recommender.export.export_links`.
    progress : bool, default False
        Show progress bars.
    max_page_bytes : int, default 1,000,000
        A page file bigger than this is a bad page, not read.
    max_removal_share : float, default 0.1
        A rewrite that would leave more than this share of the loaded pages
        with fewer links than they hold today is refused, unless ``force``.
    force : bool, default False
        Write even so.

    Returns
    -------
    JobResult

    Raises
    ------
    LockedError
        When another run holds the site's lock (only when writing).
    RemovalRefusedError
        When the rewrite would remove links from too many pages; nothing is written.
    """
    if not 0.0 <= max_removal_share <= 1.0:
        raise ConfigError(f"max_removal_share must be in [0, 1], got {max_removal_share!r}")
    with _worker_processes_ended(), _lock_when_writing(root, write_back) as removed:
        result = _run(
            root,
            settings=dict(settings or {}),
            write_back=write_back,
            strict=strict,
            output=None if output is None else Path(output),
            evaluate=evaluate,
            on_change=on_change,
            progress=progress,
            max_page_bytes=max_page_bytes,
            max_removal_share=1.0 if force else max_removal_share,
        )
    result.temporary_files_removed = removed
    return result


@contextlib.contextmanager
def _lock_when_writing(root: str | os.PathLike[str], write_back: WriteBack) -> Iterator[int]:
    """Hold the site's lock and clean up after a killed run, when the run writes; yield removed."""
    if not write_back.writes or not Path(root).is_dir():
        yield 0
        return
    with SiteLock(root):
        removed = remove_temporary_files(root)
        if removed:
            logger.warning("removed %d temporary files left by a killed run", removed)
        yield removed


@contextlib.contextmanager
def _worker_processes_ended() -> Iterator[None]:
    """End joblib's worker processes with the run, rather than minutes after it."""
    try:
        yield
    finally:
        from joblib.externals.loky import reusable_executor

        executor = getattr(reusable_executor, "_executor", None)
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, kill_workers=True)


def _run(root, *, settings, write_back, output, max_removal_share, **options) -> JobResult:
    """The job, once the lock is held: load, fit, refuse a mass removal, write."""
    started = time.perf_counter()
    if output is not None:
        check_output_path(output)
    corpus = load_corpus(
        root,
        strict=options["strict"],
        n_jobs=settings.get("n_jobs"),
        progress=options["progress"],
        max_page_bytes=options["max_page_bytes"],
    )
    loaded = time.perf_counter()
    model, links = _fit(corpus, settings, options["progress"])
    fitted = time.perf_counter()
    # under two pages there is nothing to link: every page is left as it is
    pages = corpus.pages if len(corpus.pages) >= 2 else corpus.pages.iloc[:0]
    _refuse_mass_removal(pages, links, max_removal_share, writing=write_back.writes)
    report = export_links(
        corpus.root,
        pages,
        links,
        write=write_back.writes,
        on_change=options["on_change"],
        progress=options["progress"],
        max_page_bytes=options["max_page_bytes"],
    )
    if output is not None:
        write_links_table(links, output)
    seconds = {"load": loaded - started, "fit": fitted - loaded}
    seconds["write"] = time.perf_counter() - fitted
    evaluated = _metrics(corpus, links, model.n_links) if options["evaluate"] else (None, None)
    seconds["total"] = time.perf_counter() - started
    return JobResult(
        corpus=corpus,
        links=links,
        report=report,
        write_back=write_back,
        n_links=model.n_links,
        seconds=seconds,
        output=output,
        metrics=evaluated[0],
        churn=evaluated[1],
    )


def pages_losing_links(pages: pd.DataFrame, links: pd.DataFrame) -> pd.Index:
    """The pages (urls) that the new links would leave with fewer links than they hold today."""
    new_counts = links.groupby("source_url").size().reindex(pages.index, fill_value=0)
    old_counts = pages["related_urls"].map(len)
    return pages.index[(new_counts < old_counts).to_numpy()]


def _refuse_mass_removal(
    pages: pd.DataFrame, links: pd.DataFrame, max_share: float, *, writing: bool
) -> None:
    """No silent mass removal: refuse to write when too many pages would lose links."""
    losing = pages_losing_links(pages, links)
    share = len(losing) / len(pages) if len(pages) else 0.0
    if share <= max_share:
        return
    message = (
        f"{len(losing):,} of {len(pages):,} pages ({share:.0%}) would have fewer links than "
        f"today, over the {max_share:.0%} allowed (for example {losing[0]}); check the settings"
    )
    if writing:
        raise RemovalRefusedError(
            f"refused: {message}; --force writes anyway", pages=len(losing), share=share
        )
    logger.warning("%s", message)


def _fit(
    corpus: Corpus, settings: Mapping[str, Any], progress: bool
) -> tuple[Recommender, pd.DataFrame]:
    """The model and its links; no links (and every page left as it is) under two pages."""
    model = Recommender(**settings, progress=progress)
    if len(corpus.pages) < 2:
        logger.warning("%d pages loaded: nothing to link, no page is changed", len(corpus.pages))
        return model, pd.DataFrame(columns=list(LINK_COLUMNS))
    if not target_mask(corpus.pages, exclude_no_index=model.exclude_no_index).any():
        logger.warning("every page is no_index: no page may be linked to")
        return model, pd.DataFrame(columns=list(LINK_COLUMNS))
    return model, model.fit(corpus.pages).related_


def _metrics(
    corpus: Corpus, links: pd.DataFrame, n_links: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two sets of links measured side by side, and the churn from one to the other."""
    table = compare(
        corpus.pages, {"in the pages": corpus.links, "recommended": links}, k=n_links
    ).drop(columns="definition")
    changes = churn(corpus.links, links).set_index(["group", "metric"])[["value"]]
    return table, changes.rename(columns={"value": "pages -> recommended"})
