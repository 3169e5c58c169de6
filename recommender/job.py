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

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .corpus import Corpus, load_corpus
from .evaluate import churn, compare
from .export import PageChange, WriteBack, check_output_path, export_links, write_links_table
from .model import LINK_COLUMNS, Recommender

__all__ = ["JobResult", "run_job"]

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
) -> JobResult:
    """Load a site, compute its links and write them back as ``write_back`` says.

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

    Returns
    -------
    JobResult
    """
    settings = dict(settings or {})
    started = time.perf_counter()
    output = None if output is None else Path(output)
    if output is not None:
        check_output_path(output)
    corpus = load_corpus(root, strict=strict, n_jobs=settings.get("n_jobs"), progress=progress)
    loaded = time.perf_counter()
    model, links = _fit(corpus, settings, progress)
    fitted = time.perf_counter()
    # under two pages there is nothing to link: every page is left as it is
    pages = corpus.pages if len(corpus.pages) >= 2 else corpus.pages.iloc[:0]
    report = export_links(
        corpus.root,
        pages,
        links,
        write=write_back.writes,
        on_change=on_change,
        progress=progress,
        leave=set(getattr(model, "kept_urls_", ())),  # pages of [[keep]] rules
    )
    if output is not None:
        write_links_table(links, output)
    seconds = {
        "load": loaded - started,
        "fit": fitted - loaded,
        "write": time.perf_counter() - fitted,
    }
    metrics, changes = _metrics(corpus, links, model.n_links) if evaluate else (None, None)
    seconds["total"] = time.perf_counter() - started
    return JobResult(
        corpus=corpus,
        links=links,
        report=report,
        write_back=write_back,
        n_links=model.n_links,
        seconds=seconds,
        output=output,
        metrics=metrics,
        churn=changes,
    )


def _fit(
    corpus: Corpus, settings: Mapping[str, Any], progress: bool
) -> tuple[Recommender, pd.DataFrame]:
    """The model and its links; no links (and every page left as it is) under two pages."""
    model = Recommender(**settings, progress=progress)
    if len(corpus.pages) < 2:
        logger.warning("%d pages loaded: nothing to link, no page is changed", len(corpus.pages))
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
