"""Writing related links back into a site's pages, changing nothing else.

:func:`export_links` does it for a whole site: it plans every page (the
targets each one must hold, what a related block says of each target),
reports what would change, and with ``write=True`` writes the pages whose
text changes, each atomically (a temporary file in the same folder, the
file's mode kept, then ``os.replace``), so that a killed run leaves every
page either as it was or as it should be.  The text surgery on one page, and
the check that its new text reads back as meant, are
:mod:`recommender.rewrite`'s (:func:`replace_related`); the pages go to it in
chunks, on worker processes for a large site.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Collection
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .errors import ExportError
from .files import DEFAULT_MAX_PAGE_BYTES, PageWriter, write_atomic
from .frames import INT64, is_in
from .rewrite import (
    PageChange,
    block_values,
    check_rewrite,
    related_blocks,
    replace_related,
    rewrite_pages,
    write_pending,
    yaml_scalar,
)
from .workers import run_chunks, workers_started

__all__ = [
    "LINKS_TABLE_SUFFIXES",
    "LOADED_COLUMNS",
    "REPORT_COLUMNS",
    "PageChange",
    "WriteBack",
    "check_output_path",
    "check_rewrite",
    "export_links",
    "related_blocks",
    "replace_related",
    "targets_by_source",
    "write_atomic",
    "write_links_table",
    "written_blocks",
    "yaml_scalar",
]

logger = logging.getLogger(__name__)

#: Columns of the report returned by :func:`export_links`, one row per page.
REPORT_COLUMNS: dict[str, str] = {
    "path": "file path relative to the site root",
    "url": "the page's url",
    "status": "'unchanged', 'changed' (would be written), 'written', or 'error'",
    "links_added": "target urls in the new list and not in the old one",
    "links_removed": "target urls in the old list and not in the new one",
    "links_kept": "target urls in both",
    "detail": "for errors, what went wrong",
    "file_digest": "for a page written as it was loaded, the content hash of its new bytes "
    "(else missing)",
    "block_spans": "for a page written as it was loaded, its new related blocks' spans in "
    "the front matter, flattened as the loader gives them (else missing)",
    "file_signature": "for a page written, its new file's size and modification time (ns) "
    "right after the write, a pair (else missing)",
}

#: A report row's last columns before its page is looked at: digest, spans, signature.
_NONE = (None, None, None)

#: Columns of a pages frame telling what the loader found in each file, which
#: spare the exporter parsing the file again while it is unchanged.
LOADED_COLUMNS = ("file_digest", "block_spans", "rest_fingerprint")
#: Pages handed to the worker processes at a time: their new bytes wait to be written
#: in the calling process, which the workers outrun (about 100 MB of pages at most).
EXPORT_WINDOW_PAGES = 16_384


class WriteBack(Enum):
    """What a run does with the pages whose related blocks change (as black's ``WriteBack``).

    ``NO`` says what would change; ``YES`` writes; ``CHECK`` writes nothing
    and fails when a page would change; ``DIFF`` shows each change as a
    unified diff and writes nothing; ``YES_DIFF`` and ``CHECK_DIFF`` show the
    diff as well.
    """

    NO = "report"
    YES = "rewrite"
    CHECK = "check"
    DIFF = "diff"
    YES_DIFF = "rewrite+diff"
    CHECK_DIFF = "check+diff"

    @classmethod
    def from_options(cls, *, rewrite: bool, check: bool, diff: bool) -> WriteBack:
        """The mode for the command line's ``--rewrite``, ``--check`` and ``--diff``."""
        if rewrite and check:
            raise ValueError("--rewrite and --check cannot be given together")
        if rewrite:
            return cls.YES_DIFF if diff else cls.YES
        if check:
            return cls.CHECK_DIFF if diff else cls.CHECK
        return cls.DIFF if diff else cls.NO

    @property
    def writes(self) -> bool:
        """Pages that change are written."""
        return self in (WriteBack.YES, WriteBack.YES_DIFF)

    @property
    def shows_diff(self) -> bool:
        """Each change is shown as a unified diff."""
        return self in (WriteBack.DIFF, WriteBack.YES_DIFF, WriteBack.CHECK_DIFF)

    @property
    def checks(self) -> bool:
        """A page that would change makes the run fail (exit 1)."""
        return self in (WriteBack.CHECK, WriteBack.CHECK_DIFF)


def export_links(
    root: str | os.PathLike[str],
    pages: pd.DataFrame,
    links: pd.DataFrame,
    *,
    write: bool = False,
    on_change: Callable[[PageChange], None] | None = None,
    progress: bool = False,
    sources: Collection[str] | None = None,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    leave: Collection[str] = (),
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Write each page's links into its related blocks (or only say what would change).

    Parameters
    ----------
    root : path
        The site folder the pages were loaded from.
    pages : pandas.DataFrame
        ``Corpus.pages``: where each page is (``path``) and what its blocks
        say of it as a target (``id``, ``title``, ``subject``).
    links : pandas.DataFrame
        ``source_url``, ``rank``, ``target_url``: the new links, for example
        ``Recommender.related_``.  Every page in ``pages`` gets exactly the
        links listed for it here (none if none are listed).
    write : bool, default False
        Write the pages whose text changes.  Without it nothing is written.
    on_change : callable, optional
        Called with a :class:`PageChange` for every page whose text changes
        (for example to print its diff), before it is written.
    progress : bool, default False
        Show a progress bar.
    sources : collection of str, optional
        Only these pages (urls) are read and written, the others are not
        touched and not reported; ``pages`` still tells what every target is.
    max_page_bytes : int, default 1,000,000
        A page file bigger than this is not read.
    leave : collection of str, optional
        Urls of pages never to rewrite (pages an editor keeps as they are):
        reported ``unchanged``, their blocks counted as kept, whatever
        ``links`` lists for them.
    n_jobs : int or None, default None
        Worker processes, as in joblib (None: one; -1: every core).  With
        ``on_change``, pages are handled here, one at a time.

    Returns
    -------
    pandas.DataFrame
        One row per page, sorted by path; columns as in :data:`REPORT_COLUMNS`.
        A page gets status ``error``, is not written, and the others go on,
        when it can no longer be read or split; when its new text would not
        read back as meant (:func:`check_rewrite`); when it changed after it
        was read (its edit is kept); when it is read-only, not a regular
        file, or its real path is outside ``root`` (the root is a wall:
        nothing is ever written outside it).

    Raises
    ------
    ExportError
        When a link's target is not one of the pages.
    """
    root = Path(root)
    _check_targets(pages, links)
    if sources is not None:  # only these pages' rows and links are looked at
        sources = pd.Index(list(sources), dtype=pages.index.dtype)
        links = links[is_in(links["source_url"], sources)]
    lists_by_source = targets_by_source(links)
    wanted = ["path", "related_urls", *(c for c in LOADED_COLUMNS if c in pages.columns)]
    chosen = pages[wanted] if sources is None else pages.loc[is_in(pages.index, sources), wanted]
    by_path = chosen.reset_index().sort_values("path")  # not a copy of every text
    target_pages = pages if sources is None else pages.loc[links["target_url"].unique()]
    blocks_by_url = _blocks_by_url(target_pages[["id", "title", "subject"]])
    rows, work = {}, []
    for url, path, old_urls, known in zip(
        by_path["url"].tolist(),
        by_path["path"].tolist(),
        by_path["related_urls"].tolist(),
        _as_loaded(by_path),
        strict=True,
    ):
        if url in leave:
            kept = len(old_urls)
            rows[path] = (path, url, "unchanged", 0, 0, kept, "kept as it is by a rule", *_NONE)
            continue
        targets = lists_by_source.get(url, [])
        rows[path] = (path, url, None, *_link_counts(old_urls, targets), "", *_NONE)
        work.append((path, url, [blocks_by_url[t] for t in targets], known))
    with tqdm(
        total=len(work), desc="writing" if write else "comparing", unit="page", disable=not progress
    ) as bar:
        for chunk, outcomes in _rewritten(root, work, write, max_page_bytes, on_change, n_jobs):
            for (path, *_), (status, *written) in zip(chunk, outcomes, strict=True):
                row = rows[path]  # written: detail, digest, spans, signature
                rows[path] = (*row[:2], status, *row[3:6], *written)
            bar.update(len(chunk))
    return pd.DataFrame(list(rows.values()), columns=list(REPORT_COLUMNS))


def exporter_started(n_jobs: int | None = None, on_change=None):
    """A context in which the exporter's worker processes start (see
    :func:`~recommender.workers.workers_started`): while a run computes its
    links, say, so that :func:`export_links` (with the same ``n_jobs`` and
    ``on_change``) need not wait for them."""
    return workers_started(rewrite_pages.__module__, _export_jobs(n_jobs, on_change))


def _export_jobs(n_jobs: int | None, on_change) -> int | None:
    """The exporter's worker processes: none with ``on_change``, which shows each diff
    in this process before its page is written."""
    return None if on_change else n_jobs


def _rewritten(root: Path, work: list, write: bool, max_page_bytes: int, on_change, n_jobs):
    """Each chunk of ``work`` and its pages' outcomes, its pages written.

    Worker processes read, rewrite and check the pages; this process makes
    every file change (:func:`~recommender.rewrite.write_pending`).  The work
    goes out :data:`EXPORT_WINDOW_PAGES` pages at a time: the workers run
    ahead of the writing, and what they have rewritten waits here.  A diff is
    shown before its page is written: with ``on_change``, all in this process.
    """
    with PageWriter(os.path.realpath(root)) as writer:
        for start in range(0, len(work), EXPORT_WINDOW_PAGES):
            chunks, results = run_chunks(
                rewrite_pages,
                work[start : start + EXPORT_WINDOW_PAGES],
                root,
                write,
                max_page_bytes,
                on_change,
                n_jobs=_export_jobs(n_jobs, on_change),
            )
            for chunk, (outcomes, pending) in zip(chunks, results, strict=True):
                write_pending(writer, root, pending, outcomes)
                yield chunk, outcomes


def _as_loaded(pages: pd.DataFrame) -> list[tuple[str, list[int] | None, str | None] | None]:
    """Per page, what the loader found in its file (:data:`LOADED_COLUMNS`), where it could.

    Content hash, block spans (flat, as loaded: paired in the worker) and rest
    fingerprint; None where the frame lacks them or holds no hash, and spans or
    fingerprint None where the loader could not tell them (see
    :func:`replace_related`): the hash alone still says the file is the one loaded.
    """
    if not set(LOADED_COLUMNS) <= set(pages.columns):
        return [None] * len(pages)
    return [
        None
        if not isinstance(digest, str)
        else (  # a frame holds a missing fingerprint (a !!set value) as NaN: not one
            digest,
            None if spans is None or isinstance(spans, float) else spans,
            fingerprint if isinstance(fingerprint, str) else None,
        )
        for digest, spans, fingerprint in zip(
            *(pages[column].tolist() for column in LOADED_COLUMNS), strict=True
        )
    ]


def _check_targets(pages: pd.DataFrame, links: pd.DataFrame) -> None:
    """Every link's target must be a page."""
    unknown = ~is_in(links["target_url"], pages.index)
    if unknown.any():
        raise ExportError(
            f"{int(unknown.sum())} links point to urls that are not pages of the site, "
            f"for example {links['target_url'][unknown].iloc[0]!r}"
        )


def targets_by_source(links: pd.DataFrame) -> dict[str, list[str]]:
    """Each source url of a links table and its target urls, in rank order.

    The same as ``links.groupby("source_url")["target_url"].agg(list)``, ten
    times faster: one sort, then the targets split where the source changes.
    """
    ordered = links.sort_values(["source_url", "rank"], kind="stable")
    sources = ordered["source_url"].to_numpy(dtype=object)
    # one string per distinct target (5 times fewer at 5 links a page: 0.3 GiB at 1,000,000)
    codes, distinct = pd.factorize(ordered["target_url"], use_na_sentinel=False)
    names = distinct.tolist()
    targets = [names[code] for code in codes.tolist()]
    if not targets:
        return {}
    cuts = (np.flatnonzero(sources[1:] != sources[:-1]) + 1).tolist()
    starts, ends = [0, *cuts], [*cuts, len(targets)]
    parts = [targets[a:b] for a, b in zip(starts, ends, strict=True)]
    return dict(zip(sources[starts].tolist(), parts, strict=True))


def _blocks_by_url(pages: pd.DataFrame) -> dict[str, dict[str, object]]:
    """What a related block says of each page as a target: id, title, subject, url."""
    return {
        url: {"id": None if pd.isna(i) else int(i), "title": t, "subject": s, "url": url}
        for url, i, t, s in zip(
            pages.index.tolist(),
            pages["id"].tolist(),
            pages["title"].tolist(),
            pages["subject"].tolist(),
            strict=True,
        )
    }


def written_blocks(pages: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """The related blocks that :func:`export_links` writes for ``links``, as the loader
    reads them back: one row per link, with the columns of ``Corpus.links`` (each
    source's links numbered from 1 in rank order; an id or subject the block leaves
    out is missing)."""
    ordered = links.sort_values(["source_url", "rank"], kind="stable", ignore_index=True)
    codes, targets = pd.factorize(ordered["target_url"])  # each target's block said once
    fields = pages.loc[targets, ["id", "title", "subject"]]
    said = [
        block_values({"id": i, "title": t, "subject": s})
        for i, t, s in zip(*(fields[name].tolist() for name in fields), strict=True)
    ]

    def column(name: str, dtype: str) -> pd.api.extensions.ExtensionArray:
        values = (values.get(name) for values in said)
        if dtype == "str":
            values = (None if value is None else str(value) for value in values)
        else:  # an id an int64 cannot hold is read back as missing
            values = (
                value if isinstance(value, int) and value in INT64 else None for value in values
            )
        return pd.array(list(values), dtype=dtype).take(codes)

    return pd.DataFrame(
        {
            "source_url": pd.array(ordered["source_url"], dtype="str"),
            "rank": ordered.groupby("source_url", sort=False).cumcount().to_numpy(np.int64) + 1,
            "target_url": pd.array(ordered["target_url"], dtype="str"),
            "target_id": column("id", "Int64"),
            "target_title": column("title", "str"),
            "target_subject": column("subject", "str"),
        }
    )


def _link_counts(old_urls: list[str], new_urls: list[str]) -> tuple[int, int, int]:
    """Targets added, removed and kept."""
    old, new = set(old_urls), set(new_urls)
    return len(new - old), len(old - new), len(new & old)


# ---------------------------------------------------------------------- the links table

#: Formats of :func:`write_links_table`, by file suffix.
LINKS_TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl")


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ExportError` unless a links table can be written at ``path``.

    Called before any page is written, so that a bad ``--output`` fails first.
    """
    path = Path(path)
    if path.suffix.lower() not in LINKS_TABLE_SUFFIXES:
        raise ExportError(f"{path}: a links table must end in {', '.join(LINKS_TABLE_SUFFIXES)}")
    folder = path.parent
    if not folder.is_dir():
        raise ExportError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"{path}: the folder {folder} is not writable")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder")


def write_links_table(links: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a links table in the format its suffix names (.csv, .parquet, .jsonl), atomically."""
    path = Path(path)
    check_output_path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        buffer = io.BytesIO()
        links.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    elif suffix == ".csv":
        data = links.to_csv(index=False, lineterminator="\n").encode("utf-8")
    else:
        data = links.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the links table: {exc.strerror or exc}") from None
