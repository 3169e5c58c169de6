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
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .corpus import (
    CLEANED_TEXT_COLUMNS,
    Corpus,
    errors_frame,
    find_pages,
    load_corpus,
    release_free_memory,
)
from .distributed import on_cluster
from .errors import (
    ConfigError,
    PageError,
    RemovalRefusedError,
    SiteNotFoundError,
    UnsafeFileError,
)
from .evaluate import churn, compare
from .export import (
    REPORT_COLUMNS,
    PageChange,
    WriteBack,
    check_output_path,
    export_links,
    exporter_started,
    targets_by_source,
    write_links_table,
    written_blocks,
)
from .files import DEFAULT_MAX_PAGE_BYTES, SiteLock, remove_temporary_files
from .frames import is_in, sources_with_new_lists
from .model import LINK_COLUMNS, Recommender
from .rules import target_mask
from .state import (
    DEFAULT_STATE_FOLDER,
    SavedState,
    Signatures,
    SiteChanges,
    StateDamagedError,
    check_state_folder,
    file_signatures,
    read_state,
    signatures_after_writes,
    state_key,
    write_state,
)

__all__ = ["DEFAULT_MAX_REMOVAL_SHARE", "JobResult", "pages_losing_links", "run_job"]

#: Largest share of pages a rewrite may leave with fewer links than they hold today.
DEFAULT_MAX_REMOVAL_SHARE = 0.1

logger = logging.getLogger(__name__)


#: Share of changed pages past which a nightly run refits everything.
DEFAULT_FULL_AFTER = 0.1


class RunKind(Enum):
    """How much of the work a run did again."""

    FULL = "full"  # every page read, vectorizers fitted, every page compared
    INCREMENTAL = "incremental"  # only new, changed and affected pages
    UNCHANGED = "unchanged"  # no file changed since the state: nothing read or written


@dataclass
class JobResult:
    """What one run did: the pages loaded, the links computed, and each page's fate.

    Attributes
    ----------
    corpus : Corpus
        The site as loaded (``corpus.errors``: the pages that were skipped),
        without its long texts (:data:`~recommender.state.TEXT_COLUMNS`): a
        full run reads no raw texts and frees the cleaned ones once the model
        has counted their terms.  After an unchanged run (nothing was read),
        ``corpus.pages`` holds only ``path`` and ``related_urls``; after an
        incremental run, the pages read from the state lack their long texts
        (missing values), and the new and changed pages have their cleaned
        texts.  :func:`~recommender.load_corpus` gives them all.
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
        Seconds spent fitting (``"fit"``, 0 when nothing was fitted) and in
        all (``"total"``).
    kind : RunKind
        Whether the run was full, incremental, or found nothing changed.
    full_because : str or None
        Why a run that keeps a state was a full one (no state yet, ``--full``,
        a state ignored or unreadable, the share of files changed, changes
        the state cannot take), or an incremental one that chose the links
        again ("other link settings": the settings of
        :data:`~recommender.model.LINKING_PARAMETERS` changed since the
        state was written); None for other incremental runs, unchanged runs
        and runs without a state.
    changes : SiteChanges or None
        With a state: the files new, changed and deleted since the last run.
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
    kind: RunKind = RunKind.FULL
    full_because: str | None = None
    changes: SiteChanges | None = None
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
        if self.changes is not None:
            lines.append(
                f"  state    {self.kind.value} run"
                + (f" ({self.full_because})" if self.full_because else "")
                + f": {len(self.changes.new):,} new, "
                f"{len(self.changes.changed):,} changed, {len(self.changes.deleted):,} deleted "
                "files since the last run"
            )
        elif self.full_because:  # no state to compare with: say why
            lines.append(f"  state    {self.kind.value} run ({self.full_because})")
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
    state: str | os.PathLike[str] | bool | None = None,
    full: bool = False,
    full_after: float = DEFAULT_FULL_AFTER,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE,
    force: bool = False,
    scheduler: str | None = None,
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
        Measure the new links beside the links in the pages (``metrics``);
        this reads every page.
    on_change : callable, optional
        Called with each :class:`~recommender.export.PageChange`, as by
        :func:`~recommender.export.export_links`.
    progress : bool, default False
        Show progress bars.
    state : path, True, or None/False
        The state folder kept between runs (:mod:`recommender.state`):
        ``True`` for ``.recommender`` at the site root, a path for another,
        None or False for none.  It is read by every run and written by runs
        that write the pages (``WriteBack.YES``).
    full : bool, default False
        Refit everything, whatever the state holds.
    full_after : float, default 0.1
        With a state, refit everything when more than this share of the
        pages changed (the frozen document frequencies drift as a site grows).
    max_page_bytes : int, default 1,000,000
        A page file bigger than this is a bad page, not read.
    max_removal_share : float, default 0.1
        A rewrite that would leave more than this share of the loaded pages
        with fewer links than they hold today is refused, unless ``force``.
    force : bool, default False
        Write even so.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:port``): the pages are read
        and the similarity search's blocks run on its workers, which must see
        the site at the same path (:func:`~recommender.distributed.on_cluster`;
        needs ``pip install "recommender[dask]"``).  The links are the same.
        Without it, the caller's joblib backend is used, as by the library.

    Returns
    -------
    JobResult

    Raises
    ------
    ConfigError
        When ``scheduler`` is given but dask is not installed or the
        scheduler cannot be reached; nothing is read.
    LockedError
        When another run holds the site's lock (only when writing).
    RemovalRefusedError
        When the rewrite would remove links from too many pages; nothing is written.
    """
    if not 0.0 <= max_removal_share <= 1.0:
        raise ConfigError(f"max_removal_share must be in [0, 1], got {max_removal_share!r}")
    cluster = contextlib.nullcontext() if scheduler is None else on_cluster(scheduler)
    with _worker_processes_ended(), cluster, _lock_when_writing(root, write_back) as removed:
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
            state=state,
            full=full,
            full_after=full_after,
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


def _run(root, *, settings, **options) -> JobResult:
    """The job, once the lock is held: the state, then a full, incremental or no-change run."""
    started = time.perf_counter()
    write_back = options["write_back"]
    root = Path(root)
    output = options["output"]
    if output is not None:
        check_output_path(output)
    if not root.is_dir():
        raise SiteNotFoundError(f"{root}: not a folder")
    folder = _state_folder(root, options["state"])
    if folder is not None and write_back.writes:  # refused now, not after the pages are written
        check_state_folder(folder)
    unfitted = Recommender(**settings)
    unfitted.check_params()  # a bad setting or a missing extra fails before any page is read
    # the page size limit decides which pages load: a state made under another is not used
    key = state_key({**unfitted.get_params(), "max_page_bytes": options["max_page_bytes"]})
    saved, no_state_because = None, None
    if folder is not None:
        saved, no_state_because = (None, "--full") if options["full"] else read_state(folder, key)
    rels, before, walked = [], None, None
    if folder is not None:  # without a state, only the loader needs to walk the site
        walked = find_pages(root)
        rels, _ = walked
        before = file_signatures(root, rels)
    changes = None if saved is None else saved.changes(root, before)
    kind, full_because = _run_kind(saved, changes, options["full_after"], options["evaluate"])
    if write_back.writes:  # a run keeping a state says why it had none to use
        full_because = full_because or no_state_because or None
    try:
        if kind is RunKind.UNCHANGED:
            corpus, links, report, model = _unchanged(saved, walked, root, options)
        elif kind is RunKind.INCREMENTAL:
            corpus, links, report, model = _incremental(
                saved, changes, walked, root, settings, options
            )
    except StateDamagedError as exc:
        logger.warning("%s: a full run rebuilds it", exc)
        kind, full_because = RunKind.FULL, "the state could not be read"
    except _FullRunNeeded as exc:
        logger.info("%s: a full run", exc)
        kind, full_because = RunKind.FULL, str(exc)
    if kind is RunKind.FULL:
        corpus, links, report, model = _full(root, settings, options, walked)
    if output is not None:
        write_links_table(links, output)
    if folder is not None and write_back.writes and model is not None:
        _save_state(folder, key, root, rels, before, report, corpus, model, saved)
    n_links = unfitted.n_links
    metrics, changed_links = (
        _metrics(corpus, links, n_links) if options["evaluate"] else (None, None)
    )
    seconds = {"fit": sum(model.timings_.values()) if model is not None else 0.0}
    seconds["total"] = time.perf_counter() - started
    return JobResult(
        corpus=corpus,
        links=links,
        report=report,
        write_back=write_back,
        n_links=n_links,
        seconds=seconds,
        output=output,
        metrics=metrics,
        churn=changed_links,
        kind=kind,
        full_because=full_because,
        changes=changes,
    )


def _state_folder(root: Path, state: str | os.PathLike[str] | bool | None) -> Path | None:
    """The state folder: none, the default one in the site, or the one named.

    The default one must not be a symlink: planted in a site, one would have the
    state written, and old generations removed, wherever it leads.
    """
    if state is None or state is False:
        return None
    if state is not True:
        return Path(state)
    folder = root / DEFAULT_STATE_FOLDER
    if folder.is_symlink():
        raise UnsafeFileError(f"{folder}: cannot be the state folder: a symlink")
    return folder


class _FullRunNeeded(Exception):
    """An incremental run finds it must be a full one; the message says why."""


def _run_kind(
    saved: SavedState | None, changes: SiteChanges | None, full_after: float, evaluate: bool
) -> tuple[RunKind, str | None]:
    """The kind of run to make, and why a run with a state is a full one (or an
    incremental one with no file changed)."""
    if saved is None or changes is None:
        return RunKind.FULL, None
    if evaluate:
        return RunKind.FULL, "--evaluate reads every page"
    if changes.count == 0 and saved.in_sync.all() and saved.same_links:
        return RunKind.UNCHANGED, None
    if changes.share > full_after:
        because = f"{changes.share:.1%} of the files changed, over {full_after:.0%}"
        logger.info("%s: a full run", because)
        return RunKind.FULL, because
    if not saved.same_links:  # the state's candidates serve: only their choice differs
        logger.info("other link settings: the links are chosen again from the state's candidates")
        return RunKind.INCREMENTAL, "other link settings"
    return RunKind.INCREMENTAL, None


def _full(root: Path, settings, options, walked: tuple[list[str], list] | None = None):
    """Every page read, the model fitted, every page compared; ``walked``: the
    site's walk (:func:`find_pages`) when this run made it already."""
    corpus, model, links = _fit(
        load_corpus(  # handed over whole: see _fit
            root,
            walked=walked,
            strict=options["strict"],
            n_jobs=settings.get("n_jobs"),
            progress=options["progress"],
            max_page_bytes=options["max_page_bytes"],
            raw_texts=False,  # nothing below reads them
        ),
        settings,
        options["progress"],
    )
    if len(corpus.pages) < 2:  # nothing to link: every page is left as it is
        return corpus, links, _report(corpus.pages.iloc[:0], links, []), None
    fitted = model if hasattr(model, "related_") else None
    release_free_memory()  # what the fit freed: the writing and the state come next
    return corpus, links, _export(corpus, links, model, options), fitted


def _export(corpus: Corpus, links: pd.DataFrame, model, options, sources=None) -> pd.DataFrame:
    """Refuse a mass removal, then write (or compare) the pages."""
    pages = corpus.pages if sources is None else corpus.pages[is_in(corpus.pages.index, sources)]
    write_back = options["write_back"]
    _refuse_mass_removal(pages, links, options["max_removal_share"], writing=write_back.writes)
    started = time.perf_counter()
    report = export_links(
        corpus.root,
        corpus.pages,
        links,
        write=write_back.writes,
        on_change=options["on_change"],
        progress=options["progress"],
        max_page_bytes=options["max_page_bytes"],
        sources=sources,
        leave=set(getattr(model, "kept_urls_", ())),  # pages of [[keep]] rules
        n_jobs=getattr(model, "n_jobs", None),  # the settings' processes
    )
    logger.info(
        "%s %d pages in %.1fs",
        "wrote" if write_back.writes else "compared",
        len(report),
        time.perf_counter() - started,
    )
    return report


def _unchanged(saved: SavedState, walked, root: Path, options):
    """No file changed and every page holds its links: say so, read and write nothing.

    Only the pages' paths and links are read from the state (the summary needs no more).
    """
    corpus = _with_walk_problems(saved.read_corpus(root, columns=["path", "related_urls"]), walked)
    _raise_first_error(corpus, options["strict"])
    links = saved.read_links()
    return corpus, links, _report(corpus.pages, links, []), None


def _incremental(saved, changes, walked, root, settings, options):
    """Read only the new and changed files; search again only where they reach.

    A page left out as a duplicate url is read again too: the page that held
    its url may have changed it or gone.
    """
    old = saved.read_corpus(root)
    duplicates = set(old.errors["path"][old.errors["problem"] == "duplicate url"])
    again = sorted((duplicates - set(changes.deleted)) | set(changes.new + changes.changed))
    fresh = load_corpus(  # not strict: the first bad page by path is named below, as in full
        root,
        n_jobs=settings.get("n_jobs"),
        paths=again,
        max_page_bytes=options["max_page_bytes"],
        raw_texts=False,  # as the state's pages (see state.TEXT_COLUMNS)
    )
    gone = set(again) | set(changes.deleted)
    kept = old.pages[~is_in(old.pages["path"], gone)]
    fresh = _without_clashes(kept, fresh)
    corpus = None if fresh is None else _merged_corpus(old, kept, fresh, gone)
    if corpus is not None:
        corpus = _with_walk_problems(corpus, walked)
    if corpus is None or not _linkable(corpus, settings):
        raise _FullRunNeeded("the changes cannot be merged into the state")
    _raise_first_error(corpus, options["strict"])
    # the exporter's workers start while the links are computed, not when it needs them
    with exporter_started(settings.get("n_jobs"), options["on_change"]):
        model = saved.read_model(
            {**_rules_knowing(corpus, settings), "progress": options["progress"]}
        )
        old_links, kept_before = model.related_, set(model.kept_urls_)
        links = model.update(corpus.pages, changed=fresh.pages.index).related_
        restated = _restated(old, fresh)
        released = kept_before - set(model.kept_urls_)
        sources = _pages_to_export(
            corpus, old_links, links, fresh.pages.index, restated, saved, released
        )
    report = _export(corpus, links, model, options, sources)
    return corpus, links, _report(corpus.pages, links, [report]), model


def _with_walk_problems(corpus: Corpus, walked: tuple[list[str], list[PageError]]) -> Corpus:
    """The corpus with this run's problems from walking the site (a folder symlink leading
    outside, a file name that is not UTF-8, ...) instead of the state's: the state's rows
    are kept only for page files found now, so a problem gone is gone, and a new one shown.
    """
    rels, problems = walked
    kept = corpus.errors[is_in(corpus.errors["path"], set(rels))]
    errors = pd.concat([kept, errors_frame(problems)], ignore_index=True)
    errors = errors.sort_values("path", ignore_index=True, kind="stable")
    return Corpus(root=corpus.root, pages=corpus.pages, errors=errors, links=corpus.links)


def _restated(old: Corpus, fresh: Corpus) -> pd.Index:
    """The fresh pages whose blocks elsewhere would read differently: new pages, and pages
    whose id, title or subject (what a block says of its target) changed."""

    def said(pages: pd.DataFrame) -> np.ndarray:  # missing values as None, equal to None
        values = pages[["id", "title", "subject"]]
        return values.astype(object).where(values.notna(), None).to_numpy()

    differs = said(old.pages.reindex(fresh.pages.index)) != said(fresh.pages)
    return fresh.pages.index[differs.any(axis=1)]


def _linkable(corpus: Corpus, settings: Mapping[str, Any]) -> bool:
    """At least two pages, and some page that may be linked to."""
    exclude = Recommender(**settings).exclude_no_index
    return len(corpus.pages) >= 2 and target_mask(corpus.pages, exclude_no_index=exclude).any()


def _without_clashes(kept: pd.DataFrame, fresh: Corpus) -> Corpus | None:
    """The pages read now, less those whose url an unchanged page (``kept``) holds from an
    earlier path: those are duplicates, as a full run would report them.  None when a
    page read now comes first by path: the unchanged page would then lose its url, which
    a full run must settle."""
    clash = is_in(fresh.pages.index, kept.index)
    if not clash.any():
        return fresh
    urls = fresh.pages.index[clash]
    paths, holders = fresh.pages["path"][clash].tolist(), kept.loc[urls, "path"].tolist()
    if any(path < holder for path, holder in zip(paths, holders, strict=True)):
        return None
    problems = [
        PageError(path, "duplicate url", f"url {url} is also used by {holder}")
        for path, url, holder in zip(paths, urls, holders, strict=True)
    ]
    errors = pd.concat([fresh.errors, errors_frame(problems)], ignore_index=True)
    return Corpus(
        root=fresh.root,
        pages=fresh.pages[~clash],
        errors=errors.sort_values("path", ignore_index=True),
        links=fresh.links[~is_in(fresh.links["source_url"], urls)],
    )


def _merged_corpus(old: Corpus, kept: pd.DataFrame, fresh: Corpus, gone_paths: set[str]) -> Corpus:
    """Yesterday's corpus less the changed and deleted files (and those read again:
    ``gone_paths``; its pages less those are ``kept``), plus the files read now."""
    pages = pd.concat([kept, fresh.pages]).sort_index()
    errors = pd.concat(
        [old.errors[~is_in(old.errors["path"], gone_paths)], fresh.errors], ignore_index=True
    ).sort_values("path", ignore_index=True)
    blocks = pd.concat(
        [old.links[is_in(old.links["source_url"], kept.index)], fresh.links], ignore_index=True
    ).sort_values(["source_url", "rank"], ignore_index=True)
    return Corpus(root=old.root, pages=pages, errors=errors, links=blocks)


def _pages_to_export(
    corpus: Corpus,
    old_links: pd.DataFrame,
    links: pd.DataFrame,
    fresh: pd.Index,
    restated: pd.Index,
    saved: SavedState,
    released: set[str],
) -> set[str]:
    """Pages whose blocks may change: new lists, fresh pages, pages linking to a page
    that reads differently in a block now (``restated``), pages a failed write left behind,
    and pages a keep rule left as they were until now (``released``)."""
    sources = sources_with_new_lists(old_links, links, corpus.pages.index) | set(fresh)
    sources |= set(links["source_url"][is_in(links["target_url"], restated)])
    out_of_step = set(np.array(saved.signatures.paths)[~saved.in_sync])
    sources |= set(corpus.pages.index[is_in(corpus.pages["path"], out_of_step)])
    return sources | released.intersection(corpus.pages.index)


def _report(pages: pd.DataFrame, links: pd.DataFrame, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per page: the exported parts, and 'unchanged' for the pages not looked at."""
    done = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(REPORT_COLUMNS))
    )
    rest = pages["path"][~is_in(pages.index, done["url"])]  # one column: the texts stay put
    kept = links.groupby("source_url").size().reindex(rest.index, fill_value=0)
    untouched = pd.DataFrame(
        {
            "path": rest.to_numpy(),
            "url": rest.index.to_numpy(),
            "status": "unchanged",
            "links_added": 0,
            "links_removed": 0,
            "links_kept": kept.to_numpy(),
            "detail": "",
        },
        columns=list(REPORT_COLUMNS),
    )
    return pd.concat([done, untouched], ignore_index=True).sort_values("path", ignore_index=True)


def _raise_first_error(corpus: Corpus, strict: bool) -> None:
    if strict and len(corpus.errors):
        first = corpus.errors.iloc[0]
        line = None if pd.isna(first["line"]) else int(first["line"])
        raise PageError(first["path"], first["problem"], first["detail"], line)


def _save_state(folder, key, root, rels, before: Signatures, report, corpus, model, saved) -> None:
    """Write the state of a run that wrote its pages (see :func:`signatures_after_writes`)."""
    started = time.perf_counter()
    release_free_memory()  # what the writing freed
    done = report[report["status"] == "written"]
    written = {  # the hash of the bytes written, where the exporter knew it, and its size and time
        path: (
            digest if isinstance(digest, str) else None,
            signature if isinstance(signature, tuple) else None,
        )
        for path, digest, signature in zip(
            done["path"], done["file_digest"], done["file_signature"], strict=True
        )
    }
    pages = corpus.pages  # the hash of the bytes each page was made from, where known
    loaded = (
        dict(zip(pages["path"], pages["file_digest"], strict=True))
        if "file_digest" in pages
        else None
    )
    after = signatures_after_writes(root, before, written, saved and saved.signatures, loaded)
    failed = set(report.loc[report["status"] == "error", "path"])
    in_sync = np.array([path not in failed for path in rels], dtype=bool)
    write_state(folder, key, after, in_sync, _as_written(corpus, model, done, failed), model)
    logger.info("state written in %.1fs", time.perf_counter() - started)


def _as_written(corpus: Corpus, model, written: pd.DataFrame, failed: set[str]) -> Corpus:
    """The corpus as the pages now are: each page's ``related_urls`` as its blocks say (for
    stability) and, for a written page (``written``: its report rows), its blocks, new
    content hash and block spans (so that the next run need not parse it again to find
    its blocks)."""
    now = targets_by_source(model.related_)
    kept = set(getattr(model, "kept_urls_", ()))
    pages = corpus.pages.copy(deep=False)  # copy on write: the columns set below are new
    pages["related_urls"] = [  # lists, not an Arrow array's scalars one by one
        old if path in failed or url in kept else now.get(url, [])
        for url, path, old in zip(
            pages.index.tolist(),
            pages["path"].tolist(),
            pages["related_urls"].tolist(),
            strict=True,
        )
    ]
    written = written.set_index("url")
    if "file_digest" in pages and len(written):
        rows = is_in(pages.index, written.index)
        for column in ("file_digest", "block_spans"):
            values = pages[column].astype(object)
            values[rows] = written[column].reindex(pages.index[rows]).to_numpy()
            pages[column] = values
    rewritten = is_in(corpus.links["source_url"], written.index)
    blocks = pd.concat(
        [
            corpus.links[~rewritten],
            written_blocks(
                pages, model.related_[is_in(model.related_["source_url"], written.index)]
            ),
        ],
        ignore_index=True,
    ).sort_values(["source_url", "rank"], ignore_index=True)
    return Corpus(root=corpus.root, pages=pages, errors=corpus.errors, links=blocks)


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
    loaded: Corpus, settings: Mapping[str, Any], progress: bool
) -> tuple[Corpus, Recommender, pd.DataFrame]:
    """The corpus less its cleaned texts, the model and its links; no links (and every
    page left as it is) under two pages.

    Only the fit reads the cleaned texts (:data:`~recommender.corpus.CLEANED_TEXT_COLUMNS`).
    The model gets the only reference to them, so that they are freed once their terms
    are counted, before the term weights and the search; so ``loaded`` must be handed
    over (the caller keeps no reference).
    """
    slim = loaded.pages.drop(columns=list(CLEANED_TEXT_COLUMNS), errors="ignore")
    corpus = replace(loaded, pages=slim)
    with_texts = [loaded.pages]
    del loaded
    model = Recommender(**_rules_knowing(corpus, settings), progress=progress)
    if len(corpus.pages) < 2:
        logger.warning("%d pages loaded: nothing to link, no page is changed", len(corpus.pages))
        return corpus, model, pd.DataFrame(columns=list(LINK_COLUMNS))
    if not target_mask(corpus.pages, exclude_no_index=model.exclude_no_index).any():
        logger.warning("every page is no_index: no page may be linked to")
        return corpus, model, pd.DataFrame(columns=list(LINK_COLUMNS))
    return corpus, model, model.fit(with_texts.pop()).related_


def _rules_knowing(corpus: Corpus, settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """The settings with the editor's rules told how many pages could not be loaded: a
    rule naming one of them is then left out, with a warning, not a usage error."""
    rules = settings.get("rules")
    if rules is None or corpus.errors.empty:
        return settings
    return {**settings, "rules": replace(rules, unloaded=len(corpus.errors))}


def _metrics(
    corpus: Corpus, links: pd.DataFrame, n_links: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two sets of links measured side by side, and the churn from one to the other."""
    table = compare(
        corpus.pages, {"in the pages": corpus.links, "recommended": links}, k=n_links
    ).drop(columns="definition")
    changes = churn(corpus.links, links).set_index(["group", "metric"])[["value"]]
    return table, changes.rename(columns={"value": "pages -> recommended"})
