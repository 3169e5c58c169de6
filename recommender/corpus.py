"""Reading a whole site of Markdown pages into pandas DataFrames.

:func:`load_corpus` walks a site, parses each page's YAML front matter with
libyaml's safe C loader, checks the fields the recommender relies on, cleans
the text fields for vectorising (:mod:`recommender.text`) and returns a
:class:`Corpus`: the pages that loaded, one row per page that did not, and the
related links the pages hold today.  One bad page never stops the others.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import gc
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from tqdm.auto import tqdm

from .errors import (
    ConfigError,
    PageError,
    SiteNotFoundError,
    UnsafeFileError,
)
from .files import DEFAULT_MAX_PAGE_BYTES, is_inside, read_regular_file
from .frames import INT64
from .frontmatter import (
    file_digest,
    rest_fingerprint,
    split_front_matter,
    value_and_spans,
)
from .text import clean_text, split_keywords
from .workers import run_chunks

__all__ = [
    "BLOCK_COLUMNS",
    "CLEANED_TEXT_COLUMNS",
    "ERROR_COLUMNS",
    "PAGE_COLUMNS",
    "RAW_TEXT_COLUMNS",
    "Corpus",
    "errors_frame",
    "find_pages",
    "load_corpus",
    "read_page",
    "release_free_memory",
    "release_freed_texts",
]

logger = logging.getLogger(__name__)

_RELATED_KEY = re.compile(r"related_article(\d+)")
_BLANK = re.compile(r"\s+")
#: A url a page may have: a site path or an http(s) address, without blanks or control characters.
_URL = re.compile(r"(?:/|https?://)[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]*", re.IGNORECASE)
#: Ids are stored as Int64.

#: Columns of :attr:`Corpus.pages`, in order, with what each holds.  The index is ``url``.
PAGE_COLUMNS: dict[str, str] = {
    "path": "file path relative to the site root, with '/' separators",
    "folder": "first folder of the path (the subject folder on the reference site); '' at the root",
    "slug": "file name without '.md'; cross-listed copies of a question share it",
    "id": "front matter `id` (nullable Int64: ids are neither unique nor always present)",
    "title": "front matter `title`",
    "subject": "front matter `subject` as written ('' when absent)",
    "subject_key": "subject, case and spacing folded: 'Computer  science' -> 'computer science'",
    "keywords": "`seo.page_keywords` split on commas and stripped (list of str)",
    "description": "`seo.page_description` ('' when absent)",
    "question": "front matter `question` ('' when absent)",
    "answer": "front matter `answer` as written: literal \\n, Markdown, LaTeX ('' when absent)",
    "date": "front matter `date`, the day only (datetime64; NaT when absent)",
    "score": "front matter `score` (float; NaN when absent)",
    "no_index": "front matter `no_index` (bool; False when absent)",
    "related_urls": "urls of the existing related_article1..N blocks, in order (list of str)",
    "title_text": "title cleaned for vectorising (see recommender.text.clean_text)",
    "keywords_text": "keywords joined with ', ', cleaned",
    "description_text": "description cleaned",
    "question_text": "question cleaned",
    "answer_text": "answer cleaned: real line breaks, no Markdown or LaTeX markup, words kept",
    "file_digest": "content hash of the file as read (BLAKE2b-128, hex)",
    "block_spans": "start and end of each related block in the front matter text, "
    "flat (list of int; None when the blocks cannot be rewritten in place)",
    "rest_fingerprint": "hash of the front matter's value outside its related blocks "
    "(see recommender.frontmatter.rest_fingerprint; None where unknown)",
}

#: Page columns that hold a text as written beside its cleaned form, which no later
#: stage reads: ``load_corpus(raw_texts=False)`` leaves them out.
RAW_TEXT_COLUMNS = ("answer", "description")

#: Page columns of the texts cleaned for vectorising (and embedding), which only a
#: model's fit reads.
CLEANED_TEXT_COLUMNS = tuple(column for column in PAGE_COLUMNS if column.endswith("_text"))

#: Columns of :attr:`Corpus.errors`.
ERROR_COLUMNS: dict[str, str] = {
    "path": "file path relative to the site root",
    "line": "1-based line of the problem where known (nullable Int64)",
    "problem": "short category, e.g. 'invalid YAML', 'duplicate url'",
    "detail": "what is wrong, for a person",
    "message": "the whole message: 'path:line: problem: detail'",
}

#: Columns of :attr:`Corpus.links` (the related links the pages hold today).
BLOCK_COLUMNS: dict[str, str] = {
    "source_url": "url of the page holding the link",
    "rank": "N of its related_articleN block (1-based)",
    "target_url": "the block's url",
    "target_id": "the block's id (nullable Int64)",
    "target_title": "the block's title as text (missing when absent)",
    "target_subject": "the block's subject as text (missing when absent)",
}


@dataclass(frozen=True)
class Corpus:
    """A loaded site.

    Attributes
    ----------
    root : Path
        The folder the pages were read from.
    pages : pandas.DataFrame
        One row per loaded page, indexed by ``url`` and sorted by it; columns
        as in :data:`PAGE_COLUMNS`.
    errors : pandas.DataFrame
        One row per page that could not be loaded, sorted by path; columns as
        in :data:`ERROR_COLUMNS`.
    links : pandas.DataFrame
        The related links the loaded pages hold today, one row per block;
        columns as in :data:`BLOCK_COLUMNS`.
    """

    root: Path
    pages: pd.DataFrame
    errors: pd.DataFrame
    links: pd.DataFrame

    def __repr__(self) -> str:
        return (
            f"<Corpus {str(self.root)!r}: {len(self.pages):,} pages, "
            f"{len(self.errors):,} errors, {len(self.links):,} existing links>"
        )


def _key_line(front_matter: str, key: str, nested: bool = False) -> int | None:
    """1-based file line of a key in the front matter (which starts on file line 2)."""
    indent = r"[ \t]+" if nested else ""
    match = re.search(rf"^{indent}{re.escape(key)}[ \t]*:", front_matter, re.MULTILINE)
    return front_matter.count("\n", 0, match.start()) + 2 if match else None


_TYPE_NAMES = {
    list: "a list",
    dict: "a mapping",
    bool: "true/false",
    str: "text",
    int: "a number",
    float: "a number",
    dt.date: "a date",
    dt.datetime: "a date",
}


def _describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Checker:
    """Field checks for one page, raising :class:`PageError` with the key's line."""

    def __init__(self, path: str, front_matter: str):
        self.path, self.front_matter = path, front_matter

    def fail(self, problem: str, detail: str, key: str | None = None, nested: bool = False):
        line = _key_line(self.front_matter, key, nested) if key else None
        raise PageError(self.path, problem, detail, line)

    def wrong_type(self, key: str, value: object, expected: str, nested: bool = False):
        shown = f" ({value!r:.60})" if isinstance(value, str | int | float) else ""
        self.fail("wrong type", f"`{key}` is {_describe(value)}{shown}, {expected}", key, nested)

    def text(self, key: str, value: object, required: bool = False, nested: bool = False) -> str:
        if value is None or value == "":
            if required:
                self.fail(f"missing {key}", f"the front matter has no `{key}`", key, nested)
            return ""
        if not isinstance(value, str):
            self.wrong_type(key, value, "expected text; quote it", nested)
        return value

    def integer(self, key: str, value: object) -> int | None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.wrong_type(key, value, "expected an integer")
        if value is not None and value not in INT64:
            self.fail("wrong type", f"`{key}` {str(value)[:30]} does not fit in 64 bits", key)
        return value

    def url(self, value: object) -> str:
        url = self.text("url", value, required=True)
        if not _URL.fullmatch(url):
            self.fail(
                "bad url",
                f"`url` {url!r:.80} must start with '/' or http(s):// and hold no blanks "
                "or control characters",
                "url",
            )
        return url

    def number(self, key: str, value: object) -> float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.wrong_type(key, value, "expected a number")
        try:
            return float(value)
        except OverflowError:
            self.fail("wrong type", f"`{key}` is too large a number", key)

    def flag(self, key: str, value: object) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.wrong_type(key, value, "expected true or false")
        return value

    def day(self, key: str, value: object) -> dt.date | None:
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                self.fail("wrong type", f"`{key}` {value!r:.40} is not a YYYY-MM-DD date", key)
        if isinstance(value, dt.datetime):
            return value.date()
        if value is not None and not isinstance(value, dt.date):
            self.wrong_type(key, value, "expected a YYYY-MM-DD date")
        return value

    def seo(self, value: object) -> tuple[list[str], str]:
        """Keywords (split) and description of the ``seo`` mapping."""
        if value is None:
            value = {}
        elif not isinstance(value, dict):
            self.wrong_type("seo", value, "expected a mapping")
        raw_keywords = value.get("page_keywords")
        if isinstance(raw_keywords, list) and all(isinstance(k, str) for k in raw_keywords):
            keywords = split_keywords(raw_keywords)
        else:
            keywords = split_keywords(self.text("page_keywords", raw_keywords, nested=True))
        description = self.text("page_description", value.get("page_description"), nested=True)
        return keywords, description

    def related(self, data: dict) -> list[tuple[int, str, object, object, object]]:
        """The ``related_articleN`` blocks, by N: (N, url, id, title, subject)."""
        related = []
        for key, block in data.items():
            match = _RELATED_KEY.fullmatch(str(key))
            if match is None:
                continue
            if not isinstance(block, dict) or not isinstance(block.get("url"), str):
                self.fail("bad related block", f"`{key}` must be a mapping with a text `url`", key)
            related.append(
                (
                    int(match.group(1)),
                    block["url"],
                    block.get("id"),
                    block.get("title"),
                    block.get("subject"),
                )
            )
        return sorted(related, key=lambda block: block[0])


def read_page(
    path: Path,
    rel: str,
    *,
    root_real: str | None = None,
    max_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> dict[str, Any]:
    """Read and check one page; return its row of :attr:`Corpus.pages` as a dict.

    Parameters
    ----------
    path : Path
        The file to read.
    rel : str
        Its path relative to the site root, used in messages and the ``path`` column.
    root_real : str, optional
        The real path of the site root: a page whose real path is outside is
        not read.  By default the page's own folder.
    max_bytes : int, default 1,000,000
        A bigger file is not read.

    Raises
    ------
    PageError
        With the file, the line where known, and what is wrong.
    """
    if root_real is None:
        root_real = os.path.realpath(path.parent)
    try:
        raw = read_regular_file(path, root_real, max_bytes)
    except UnsafeFileError as exc:
        raise PageError(rel, "not read", str(exc)) from None
    except OSError as exc:
        raise PageError(rel, "unreadable file", exc.strerror or str(exc)) from None
    if not raw.strip():
        raise PageError(rel, "empty file", "the file has no content")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PageError(
            rel,
            "invalid UTF-8",
            f"byte {raw[exc.start]:#04x} at offset {exc.start} is not UTF-8; save it as UTF-8",
            line,
        ) from None
    try:
        span = split_front_matter(text)
    except ValueError as exc:
        raise PageError(rel, "unterminated front matter", str(exc), 1) from None
    if span is None:
        raise PageError(rel, "no front matter", "the file does not open with a '---' line", 1)
    front_matter = text[span[0] : span[1]]
    try:
        data, spans = value_and_spans(front_matter)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        line = mark.line + 2 if mark is not None else None
        raise PageError(rel, "invalid YAML", detail or str(exc), line) from None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses: its line, one line
        line = front_matter.count("\n", 0, exc.position) + 2
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "a byte"
        raise PageError(rel, "invalid YAML", f"{character}: {exc.reason}", line) from None
    except yaml.YAMLError as exc:
        raise PageError(rel, "invalid YAML", str(exc).splitlines()[0]) from None
    if data is None:
        raise PageError(rel, "empty front matter", "there is nothing between the '---' lines", 1)
    if not isinstance(data, dict):
        raise PageError(
            rel,
            "front matter is not a mapping",
            f"it is {_describe(data)}; expected `key: value` lines",
            2,
        )
    return {**_page_record(rel, front_matter, data), **_as_read(raw, spans, data)}


def _as_read(raw: bytes, spans: list[tuple[int, int]] | None, data: dict) -> dict[str, Any]:
    """What the exporter needs to know of the file as read (see :data:`LOADED_COLUMNS`);
    no ``spans`` where its blocks cannot be found (the exporter will say why)."""
    if spans is None:
        return {"file_digest": file_digest(raw), "block_spans": None, "rest_fingerprint": None}
    return {
        "file_digest": file_digest(raw),
        "block_spans": [place for span in spans for place in span],
        "rest_fingerprint": rest_fingerprint(data),
    }


def _page_record(rel: str, front_matter: str, data: dict) -> dict[str, Any]:
    """A page's row of :attr:`Corpus.pages`, with its blocks as ``related``."""
    check = _Checker(rel, front_matter)
    url = check.url(data.get("url"))
    title = check.text("title", data.get("title"), required=True)
    subject = check.text("subject", data.get("subject"))
    question = check.text("question", data.get("question"))
    answer = check.text("answer", data.get("answer"))
    keywords, description = check.seo(data.get("seo"))
    parts = rel.split("/")
    title_text = clean_text(title)
    return {
        "path": rel,
        "folder": parts[0] if len(parts) > 1 else "",
        "slug": parts[-1][:-3] if parts[-1].endswith(".md") else parts[-1],
        "id": check.integer("id", data.get("id")),
        "url": url,
        "title": title,
        "subject": subject,
        "subject_key": _BLANK.sub(" ", subject).strip().casefold(),
        "keywords": keywords,
        "description": description,
        "question": question,
        "answer": answer,
        "date": check.day("date", data.get("date")),
        "score": check.number("score", data.get("score")),
        "no_index": check.flag("no_index", data.get("no_index")),
        "related": check.related(data),
        "title_text": title_text,
        "keywords_text": clean_text(", ".join(keywords)),
        "description_text": clean_text(description),
        "question_text": title_text if question == title else clean_text(question),
        "answer_text": clean_text(answer),
    }


def _read_chunk(
    rels: list[str],
    root: Path,
    max_bytes: int,
    columns: tuple[str, ...],
) -> tuple[pd.DataFrame, pd.DataFrame, list[PageError]]:
    """Read some pages; return their pages and links frames (unindexed) and their errors.

    Frames rather than records, so that a worker process sends Arrow buffers
    back instead of pickling a Python string per field.  Whatever goes wrong
    with one page becomes its :class:`PageError`; the others go on.
    """
    records: list[dict[str, Any]] = []
    problems: list[PageError] = []
    root_real = os.path.realpath(root)
    collecting = gc.isenabled()
    gc.disable()  # many small containers and no cycles: the collector would only slow this down
    try:
        for rel in rels:
            try:
                records.append(read_page(root / rel, rel, root_real=root_real, max_bytes=max_bytes))
            except PageError as exc:
                problems.append(exc)
            except Exception as exc:
                problems.append(_unexpected(rel, exc))
    finally:
        if collecting:
            gc.enable()
    return *_frames_keeping_good(records, problems, columns), problems


def _unexpected(rel: str, exc: Exception) -> PageError:
    """A page that failed in a way no check foresaw: an error row all the same."""
    logger.debug("%s: unexpected %s", rel, type(exc).__name__, exc_info=exc)
    return PageError(rel, "cannot be read", f"{type(exc).__name__}: {str(exc)[:200]}")


def _frames_keeping_good(
    records: list[dict[str, Any]], problems: list[PageError], columns: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`_frames` of the records; a record that pandas cannot hold becomes a problem."""
    try:
        return _frames(records, columns)
    except Exception:
        good = []
        for record in records:
            try:
                _frames([record], columns)
            except Exception as exc:
                problems.append(_unexpected(record["path"], exc))
            else:
                good.append(record)
        return _frames(good, columns)


def shown_path(rel: str) -> str:
    """A path as it may be printed on one line: undecodable bytes and control characters escaped.

    >>> shown_path("a/b\\nc.md"), shown_path("x\\udcff.md")
    ('a/b\\\\nc.md', 'x\\\\xff.md')
    """
    raw = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(
        char.encode("unicode_escape").decode("ascii") if _UNSAFE_NAME.match(char) else char
        for char in raw
    )


_UNSAFE_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _name_problem(rel: str) -> PageError | None:
    """A file name that cannot be shown or stored as it is (not UTF-8, control characters)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return PageError(shown_path(rel), "bad file name", "the name is not valid UTF-8; rename it")
    if _UNSAFE_NAME.search(rel):
        return PageError(
            shown_path(rel), "bad file name", "the name holds control characters; rename it"
        )
    return None


def find_pages(root: Path) -> tuple[list[str], list[PageError]]:
    """Every ``*.md`` under root, sorted, and the problems met; the root is a wall.

    Folder symlinks are followed only where their real path is inside the
    root (a folder is read once, however many ways lead to it); a page
    symlinked to another page of the site is read once, under its own path.
    """
    found: list[str] = []
    problems: list[PageError] = []
    root_real = os.path.realpath(root)
    seen_dirs = _real_folders(root)  # a folder is read at its own path before any link to it

    def unreadable(exc: OSError) -> None:
        rel = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "."
        problems.append(PageError(shown_path(rel), "unreadable folder", exc.strerror or str(exc)))

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable):
        here = Path(folder)
        rel_here = here.relative_to(root).as_posix()
        real = os.path.realpath(folder)
        if not is_inside(root_real, real):
            problems.append(
                PageError(shown_path(rel_here), "outside the site", f"a symlink to {real}; skipped")
            )
            dirs.clear()
            continue
        if seen_dirs.setdefault(real, rel_here) != rel_here:
            looping = is_inside(real, here.parent)  # the link is inside its own target
            problems.append(
                PageError(
                    shown_path(rel_here),
                    "symlink loop" if looping else "second way to a folder",
                    f"this folder is {shown_path(seen_dirs[real])!r} again, which is read; skipped",
                )
            )
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = "" if rel_here == "." else rel_here + "/"
        for name in files:
            if name.endswith(".md"):
                rel = prefix + name
                problem = _name_problem(rel)
                if problem is None:
                    found.append(rel)
                else:
                    problems.append(problem)
    return _without_second_ways(root, root_real, sorted(found)), problems


def _real_folders(root: Path) -> dict[str, str]:
    """The real path of every folder reached without a symlink, to its path from the root."""
    folders = {}
    for folder, dirs, _ in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        folders[os.path.realpath(folder)] = Path(folder).relative_to(root).as_posix()
    return folders


def _without_second_ways(root: Path, root_real: str, rels: list[str]) -> list[str]:
    """Drop page symlinks that lead to another page found: each file is read once."""
    linked = _symlinks_among(root, rels)
    if not linked:  # the usual site: nothing to resolve
        return rels
    real_of = {os.path.join(root_real, rel): rel for rel in rels}
    kept = []
    for rel in rels:
        path = os.path.join(root, rel)
        if rel in linked:
            real = os.path.realpath(path)
            if real_of.get(real, rel) != rel:
                logger.info("%s: a symlink to %s, read there", rel, real_of[real])
                continue
        kept.append(rel)
    return kept


def _symlinks_among(root: Path, rels: list[str]) -> set[str]:
    """The pages among ``rels`` that are symlinks: one listing per folder, not a stat per page."""
    linked: set[str] = set()
    by_folder: dict[str, list[str]] = {}
    for rel in rels:
        by_folder.setdefault(rel.rpartition("/")[0], []).append(rel)
    for folder, pages in by_folder.items():
        prefix = folder + "/" if folder else ""
        try:
            with os.scandir(os.path.join(root, folder)) as entries:
                links = {prefix + entry.name for entry in entries if entry.is_symlink()}
        except OSError:  # the folder went away or changed: ask each page
            links = {rel for rel in pages if os.path.islink(os.path.join(root, rel))}
        linked.update(links.intersection(pages))
    return linked


def load_corpus(
    root: str | os.PathLike[str],
    *,
    strict: bool = False,
    n_jobs: int | None = None,
    progress: bool = False,
    paths: list[str] | None = None,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    raw_texts: bool = True,
    walked: tuple[list[str], list[PageError]] | None = None,
) -> Corpus:
    """Load every ``*.md`` page under ``root`` (or only those named in ``paths``).

    Parameters
    ----------
    root : path
        The site's content folder, a wall: a page or folder symlink whose real
        path is outside it is reported and skipped; symlinks inside are
        followed (a loop is reported, not fatal) and each file is read once.
        Folders whose name starts with '.' are skipped.  Only regular files are
        read: a FIFO, device or socket named ``*.md`` is reported, never opened.
    strict : bool, default False
        Raise the first bad page's :class:`~recommender.errors.PageError` (in
        path order) instead of listing it in ``errors``.
    n_jobs : int or None, default None
        Processes to read with, as in scikit-learn: None means 1, -1 all cores.
        Small sites are always read in this process.  Under joblib's dask
        backend (:mod:`recommender.distributed`) the cluster's workers read
        the pages, unless ``n_jobs`` is 1; they must see ``root`` at the same path.
    progress : bool, default False
        Show a progress bar.
    paths : list of str, optional
        Only these pages (paths relative to root, as :func:`find_pages` gives
        them); a nightly run reads only what changed.
    max_page_bytes : int, default 1,000,000
        A page file bigger than this is reported, not read.
    raw_texts : bool, default True
        False leaves out the columns of :data:`RAW_TEXT_COLUMNS` (``answer``
        and ``description`` as written; their cleaned ``*_text`` forms stay):
        no stage of the recommender reads them, and they are about a third
        of the table's memory.  The ``recommend`` command reads without them.
    walked : (list of str, list of PageError), optional
        What :func:`find_pages` gave for ``root`` just before, when the caller
        has walked the site already (the nightly job, for the files'
        signatures): the site is then not walked again.  Not used with ``paths``.

    Returns
    -------
    Corpus
        ``pages`` (indexed by url), ``errors`` and the existing ``links``.

    Raises
    ------
    SiteNotFoundError
        When root is not a folder.
    PageError
        In strict mode, for the first bad page.

    Examples
    --------
    ::

        corpus = load_corpus("data/sample", n_jobs=-1)
        corpus.pages[["title", "subject_key", "keywords"]].head()
        corpus.errors["message"].tolist()
    """
    root = Path(root)
    if not root.is_dir():
        raise SiteNotFoundError(f"{root}: not a folder")
    if paths is not None:
        rels, problems = sorted(paths), []
    else:
        rels, problems = find_pages(root) if walked is None else walked
        problems = list(problems)  # the caller's list stays as it was
    logger.info("reading %d pages under %s", len(rels), root)
    if max_page_bytes < 1:
        raise ConfigError(f"max_page_bytes must be a positive integer, got {max_page_bytes!r}")
    columns = tuple(c for c in PAGE_COLUMNS if raw_texts or c not in RAW_TEXT_COLUMNS)
    pages, links = _read_pages(
        root, rels, problems, columns, n_jobs=n_jobs, progress=progress, max_bytes=max_page_bytes
    )
    pages, links = _drop_duplicate_urls(pages, links, problems)
    release_free_memory()  # what reading the pages and joining them freed
    problems.sort(key=lambda p: p.path)
    if strict and problems:
        raise problems[0]
    for problem in problems:
        logger.debug("%s", problem)
    pages = _by_url(pages)
    links = links.drop(columns="source_path").sort_values(["source_url", "rank"], ignore_index=True)
    logger.info("loaded %d pages, %d errors", len(pages), len(problems))
    return Corpus(root=root, pages=pages, errors=errors_frame(problems), links=links)


def _by_url(pages: pd.DataFrame) -> pd.DataFrame:
    """The pages (emptied) sorted by url and indexed by it, a column at a time.

    Each column is freed once copied in order, and its memory given back:
    sorting the whole frame at once held up to three copies of each text (at
    1,000,000 pages the sort peaked at 12.97 GiB that way, 10.56 GiB this way).
    """
    # argsort of the urls as Python strings (the same order) is several times faster than
    # sort_index over pyarrow strings at 200,000 pages
    order = np.argsort(pages["url"].to_numpy(dtype=object), kind="stable")
    index = pd.Index(_in_order(pages.pop("url").array, order), name="url")
    columns = {name: _in_order(pages.pop(name).array, order) for name in list(pages.columns)}
    return pd.DataFrame(columns, index=index, copy=False)


def _in_order(values, order: np.ndarray):
    """A column's values taken in ``order``, the memory of the others given back.

    A pyarrow column (the texts) is first put in one piece: its ``take`` would
    join the loaded chunks itself, holding three copies of the text at once.
    """
    arrow = pa.array(values) if isinstance(values, pd.arrays.ArrowExtensionArray) else None
    if isinstance(arrow, pa.ChunkedArray) and arrow.num_chunks > 1:
        values = pd.array(arrow.combine_chunks(), dtype=values.dtype)
        del arrow
        release_freed_texts()
    values = values.take(order)
    release_freed_texts()
    return values


def release_freed_texts() -> None:
    """Give the memory of freed texts back to the system.

    Text columns are pyarrow strings, and pyarrow's allocator (mimalloc) keeps
    the memory they free for its own later use: without this, a process would
    hold the memory of texts long gone (the loader's unsorted copy, the
    cleaned texts once vectorised).
    """
    pa.default_memory_pool().release_unused()


def release_free_memory() -> None:
    """Give all the freed memory back to the system: :func:`release_freed_texts`, and
    the free pages of the C library's heap (glibc's ``malloc_trim``).

    Texts longer than 512 bytes and small arrays live on that heap, and glibc keeps
    what they free for later allocations; but large numpy arrays are mapped apart and
    never reuse it, so without this a process would carry the loader's and the fit's
    freed texts through the search and the writing (at 200,000 pages, 3.10 GiB at
    peak, against 2.58 GiB with it).  Slower than :func:`release_freed_texts` (it
    walks the heap): for the ends of stages.  Only the Arrow part where the C
    library has no ``malloc_trim``.
    """
    release_freed_texts()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError, TypeError):  # none, or not glibc
        return None


def _read_pages(
    root: Path,
    rels: list[str],
    problems: list[PageError],
    columns: tuple[str, ...],
    *,
    n_jobs: int | None,
    progress: bool,
    max_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pages and links frames of the files ``rels``, in path order; bad pages go to problems.

    On a Dask cluster (joblib's dask backend) the cluster's workers read them.
    """
    chunks, results = run_chunks(
        _read_chunk, rels, root, max_bytes, columns, n_jobs=n_jobs, cluster=True
    )
    empty_pages, empty_links = _frames([], columns)  # the columns and dtypes, even with no pages
    page_parts, link_parts = [empty_pages], [empty_links]
    with tqdm(total=len(rels), desc="loading", unit="page", disable=not progress) as bar:
        for chunk, (pages, links, chunk_problems) in zip(chunks, results, strict=True):
            page_parts.append(pages)
            link_parts.append(links)
            problems.extend(chunk_problems)
            bar.update(len(chunk))
    return pd.concat(page_parts, ignore_index=True), pd.concat(link_parts, ignore_index=True)
    return True


def _drop_duplicate_urls(
    pages: pd.DataFrame, links: pd.DataFrame, problems: list[PageError]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first page (by path) of each url; report the others, naming the first."""
    duplicate = pages["url"].duplicated(keep="first")
    if not duplicate.any():
        return pages, links
    first_path = pages.drop_duplicates("url").set_index("url")["path"]
    for path, url in pages.loc[duplicate, ["path", "url"]].itertuples(index=False):
        problems.append(
            PageError(path, "duplicate url", f"url {url} is also used by {first_path[url]}")
        )
    links = links[~links["source_path"].isin(pages.loc[duplicate, "path"])]
    return pages[~duplicate], links


def errors_frame(problems: list[PageError]) -> pd.DataFrame:
    """:attr:`Corpus.errors`: one row per problem, columns as in :data:`ERROR_COLUMNS`."""
    return pd.DataFrame(
        {
            "path": [p.path for p in problems],
            "line": pd.array([p.line for p in problems], dtype="Int64"),
            "problem": [p.problem for p in problems],
            "detail": [p.detail for p in problems],
            "message": [str(p) for p in problems],
        },
        columns=list(ERROR_COLUMNS),
    )


def _block_text(value: object) -> str | None:
    """A block's title or subject as text: None when absent, any other value as its text
    (``title: 42`` as '42'), so that the column is text (it is saved in the nightly state)."""
    return value if value is None or isinstance(value, str) else str(value)


def _links_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The records' related blocks, one row each (with a source_path column).

    Each column is built from the values as read, never inferred by pandas
    (which reads a title column of text and None as text and NaN).
    """
    rows = [
        (record["path"], record["url"], rank, url, block_id, title, subject)
        for record in records
        for rank, url, block_id, title, subject in record["related"]
    ]
    columns = zip(*rows, strict=True) if rows else [()] * 7
    paths, sources, ranks, urls, ids, titles, subjects = columns
    return pd.DataFrame(
        {  # text in Arrow buffers, not a Python string each
            "source_path": pd.array(paths, dtype="str"),
            "source_url": pd.array(sources, dtype="str"),
            "rank": np.array([min(rank, _INT64_MAX) for rank in ranks], dtype=np.int64),
            "target_url": pd.array(urls, dtype="str"),
            "target_id": pd.array([v if _is_int64(v) else None for v in ids], dtype="Int64"),
            "target_title": pd.array([_block_text(v) for v in titles], dtype="str"),
            "target_subject": pd.array([_block_text(v) for v in subjects], dtype="str"),
        },
        columns=["source_path", *BLOCK_COLUMNS],
    )


_INT64_MAX = int(np.iinfo(np.int64).max)


def _is_int64(value: Any) -> bool:
    """An integer (not a bool) that an int64 holds: an old block's id another can be."""
    return isinstance(value, int) and not isinstance(value, bool) and value in INT64


def _frames(
    records: list[dict[str, Any]], columns: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pages (with a url column, then ``columns``) and links (with a source_path column)."""
    links = _links_frame(records)
    values: dict[str, Any] = {
        name: [record[name] for record in records]
        for name in ("url", *columns)
        if name != "related_urls"
    }
    values["related_urls"] = [[url for _, url, *_ in record["related"]] for record in records]
    values["id"] = pd.array(values["id"], dtype="Int64")
    values["date"] = pd.to_datetime(pd.Series(values["date"], dtype=object)).astype("datetime64[s]")
    values["score"] = pd.array(values["score"], dtype="float64")
    values["no_index"] = pd.array(values["no_index"], dtype=bool)
    for name in ("keywords", "related_urls", "block_spans"):
        values[name] = pd.Series(values[name], dtype=object)
    for name, column in values.items():
        if isinstance(column, list):
            values[name] = pd.array(column, dtype="str")
    return pd.DataFrame(values, columns=["url", *columns]), links
