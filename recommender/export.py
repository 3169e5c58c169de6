"""Writing related links back into pages, changing nothing else.

A page's related links live in its front matter as ``related_article1`` to
``related_articleN`` blocks::

    related_article1:
        id: 160493
        title: >-
            How has the COVID-19 pandemic influenced ...?
        subject: Sociology
        url: /learn/sociology/questions/how-has-the-covid19-...

:func:`replace_related` edits a page's text surgically: the old blocks are cut
out, the new ones go where the first old one was (or at the end of the front
matter), and every other byte stays as it was: key order, folded scalars,
indentation, the body, the final newline or its absence, CRLF line endings,
a BOM.  Values are written so that YAML reads back exactly what was meant
(:func:`yaml_scalar`).  A page whose blocks already hold the wanted values is
left alone, whatever their layout.

:func:`export_links` does this for a whole site: it plans every page,
reports what would change, and with ``write=True`` writes the pages whose
text changes, each atomically (a temporary file in the same folder, the
file's mode kept, then ``os.replace``), so that a killed run leaves every
page either as it was or as it should be.
"""

from __future__ import annotations

import difflib
import io
import itertools
import logging
import math
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from .errors import ExportError, RewriteCheckError, UnsafeFileError
from .files import DEFAULT_MAX_PAGE_BYTES, PageWriter, read_regular_file, write_atomic
from .frames import is_in
from .frontmatter import (
    file_digest,
    is_block_key,
    load_yaml,
    outside_spans,
    parse_yaml,
    related_spans,
    rest_fingerprint,
    split_front_matter,
)
from .workers import run_chunks

__all__ = [
    "LINKS_TABLE_SUFFIXES",
    "LOADED_COLUMNS",
    "REPORT_COLUMNS",
    "PageChange",
    "WriteBack",
    "check_output_path",
    "export_links",
    "related_blocks",
    "replace_related",
    "targets_by_source",
    "write_atomic",
    "write_links_table",
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
}

#: Columns of a pages frame telling what the loader found in each file, which
#: spare the exporter parsing the file again while it is unchanged.
LOADED_COLUMNS = ("file_digest", "block_spans", "rest_fingerprint")
_BLOCK_INDENT = " " * 4
_PLAIN_SAFE = re.compile(r"[A-Za-z/][A-Za-z0-9 _./()&,'!?+-]*")
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})


# Not printable in a YAML stream, any of YAML's line breaks (\n, \r, \x85, \u2028,
# \u2029), or a BOM: such text is double-quoted, and these characters escaped.
_UNSAFE_IN_BLOCK = re.compile(
    "[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def _double_quoted(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif not _UNSAFE_IN_BLOCK.match(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def yaml_scalar(value: object, *, folded: bool = False) -> str:
    """A YAML scalar that reads back as exactly ``value`` (int or str).

    Text that is safely plain (letters, digits and harmless punctuation, not a
    YAML word such as ``yes`` or ``null``) is written plain; with ``folded``,
    single-line text is written as a folded block (``>-`` then the text on the
    next line, as the reference site writes titles); anything else
    double-quoted, with escapes.  The caller indents a folded block's second
    line.

    Examples
    --------
    >>> yaml_scalar("Sociology"), yaml_scalar("yes"), yaml_scalar('say "hi": now')
    ('Sociology', '"yes"', '"say \\\\"hi\\\\": now"')
    >>> yaml_scalar(-12)
    '-12'
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as a related block value")
    if isinstance(value, int):
        return str(value)
    if folded and value and value == value.strip() and not _UNSAFE_IN_BLOCK.search(value):
        return ">-\n" + value
    if (
        _PLAIN_SAFE.fullmatch(value)
        and not value.endswith(" ")
        and value.lower() not in _YAML_WORDS
    ):
        return value
    return _double_quoted(value)


def _rendered_blocks(
    targets: Sequence[Mapping[str, object]],
    newline: str,
    cache: dict[tuple[object, ...], str] | None,
) -> list[str]:
    """Each ``related_articleN`` block's text for a list of targets, in the site's layout.

    Each target is a mapping with ``id``, ``title``, ``subject`` and ``url``;
    a missing or empty ``id`` or ``subject`` is left out.  ``cache`` (any
    dict, kept by the caller) saves rendering the same target again.
    """
    out = []
    for number, target in enumerate(targets, 1):
        values = _block_values(target)
        key = (newline, *values.items())
        body = None if cache is None else cache.get(key)
        if body is None:
            lines = []
            for name, value in values.items():
                scalar = yaml_scalar(value, folded=name == "title")
                if scalar.startswith(">-\n"):
                    lines.append(f"{_BLOCK_INDENT}{name}: >-{newline}")
                    lines.append(f"{_BLOCK_INDENT * 2}{scalar[3:]}{newline}")
                else:
                    lines.append(f"{_BLOCK_INDENT}{name}: {scalar}{newline}")
            body = "".join(lines)
            if cache is not None:
                cache[key] = body
        out.append(f"related_article{number}:{newline}{body}")
    return out


def related_blocks(front_matter: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the ``related_articleN`` blocks in front matter text.

    The blocks are found where YAML itself puts them: the top-level keys
    ``related_articleN`` of the composed front matter, from the key to the end
    of its value's last line (blank and comment lines after it stay outside),
    so that text inside another value never passes for a block.

    Raises
    ------
    yaml.YAMLError
        When the front matter is not valid YAML (see :func:`~recommender.frontmatter.parse_yaml`).
    RewriteCheckError
        When it is not a mapping of keys at the start of lines.
    """
    return related_spans(front_matter, parse_yaml(front_matter)[0])


def replace_related(
    text: str,
    targets: Sequence[Mapping[str, object]],
    *,
    cache: dict[tuple[object, ...], str] | None = None,
    known: tuple[list[tuple[int, int]], str] | None = None,
) -> str:
    """Return a page's text with its related blocks replaced by ``targets``.

    Every byte outside the old blocks is kept.  If the old blocks already
    hold exactly these values (in order, whatever their layout), the text is
    returned unchanged.  ``cache`` saves rendering the same target again.  Like
    black, the new front matter is parsed again before it is returned
    (:func:`check_rewrite`).  ``known``: the blocks' spans in the front
    matter and the :func:`~recommender.frontmatter.rest_fingerprint` of the
    rest, as the loader found them in exactly this text; the old text is
    then not parsed again, and the new one must read back to that fingerprint.

    Raises
    ------
    ValueError
        When the text has no (or an unterminated) front matter.
    yaml.YAMLError
        When the front matter is not valid YAML.
    RewriteCheckError
        When the new text would not read back as meant.
    """
    return _replaced(text, targets, cache, known)[0]


def _replaced(
    text: str,
    targets: Sequence[Mapping[str, object]],
    cache: dict[tuple[object, ...], str] | None,
    known: tuple[list[tuple[int, int]], str] | None,
) -> tuple[str, list[tuple[int, int]]]:
    """:func:`replace_related`, and the spans of the blocks in the new front matter."""
    span = split_front_matter(text)
    if span is None:
        raise ValueError("the file does not open with a '---' line")
    start, end, _ = span
    front_matter = text[start:end]
    if known is None:
        root, before = parse_yaml(front_matter)
        blocks, fingerprint = related_spans(front_matter, root), None
    else:
        (blocks, fingerprint), before = known, None
    wanted = [_block_values(target) for target in targets]
    newline = "\r\n" if text[start - 2 : start] == "\r\n" else "\n"
    each_block = _rendered_blocks(wanted, newline, cache)
    rendered = "".join(each_block)
    old_text = "".join(front_matter[a:b] for a, b in blocks)
    if old_text == rendered or (blocks and _blocks_say(old_text, wanted)):
        return text, blocks
    pieces = outside_spans(front_matter, blocks)
    # the new blocks go where the first old one was, else at the end
    new_front_matter = pieces[0] + rendered + "".join(pieces[1:])
    new_text = text[:start] + new_front_matter + text[end:]
    body_start = len(new_text) - (len(text) - span[2])
    if split_front_matter(new_text) != (start, start + len(new_front_matter), body_start):
        raise RewriteCheckError("the new text would move the end of the front matter")
    _check_rewrite(before, new_front_matter, wanted, rest=("".join(pieces), fingerprint))
    ends = list(itertools.accumulate([len(pieces[0]), *map(len, each_block)]))
    return new_text, list(itertools.pairwise(ends))


def check_rewrite(old: str, new: str, wanted: Sequence[Mapping[str, object]]) -> None:
    """Check that new front matter reads back as the old one with exactly ``wanted`` as blocks.

    Every key outside the related blocks must keep its value (and its place
    in the order), and the blocks must be ``related_article1..N`` holding
    ``wanted`` in order.

    Raises
    ------
    RewriteCheckError
        Naming the first key that would read back differently.
    """
    _check_rewrite(load_yaml(old), new, wanted)


def _check_rewrite(
    before: object,
    new: str,
    wanted: Sequence[Mapping[str, object]],
    rest: tuple[str, str | None] | None = None,
) -> None:
    """:func:`check_rewrite` with the old front matter's value already known.

    With a fingerprint in ``rest`` (the new text outside its blocks, and the
    fingerprint of the old value outside them), that fingerprint stands for
    the old value.
    """
    try:
        after = load_yaml(new)
    except yaml.YAMLError as exc:
        raise RewriteCheckError(
            f"the new front matter would not parse: {_first_line(exc)}"
        ) from None
    if rest is not None and rest[1] is not None:
        if rest_fingerprint(rest[0], after) != rest[1]:
            raise RewriteCheckError(
                "the keys outside the related blocks would read back differently"
            )
    else:
        _check_rest({} if before is None else before, after)
    blocks = [(k, v) for k, v in after.items() if is_block_key(k)]
    expected = [(f"related_article{n}", dict(values)) for n, values in enumerate(wanted, 1)]
    if len(blocks) != len(expected) or not all(
        key == want_key and _same(value, want)
        for (key, value), (want_key, want) in zip(blocks, expected, strict=True)
    ):
        raise RewriteCheckError("the new related blocks would not read back as the links meant")


def _check_rest(before: object, after: object) -> None:
    """Every key outside the related blocks keeps its value and its place."""
    if not isinstance(after, dict) or not isinstance(before, dict):
        raise RewriteCheckError("the new front matter would not be a mapping")
    rest_before = {k: v for k, v in before.items() if not is_block_key(k)}
    rest_after = {k: v for k, v in after.items() if not is_block_key(k)}
    if list(rest_before) != list(rest_after):
        changed = sorted(set(rest_before) ^ set(rest_after), key=str) or list(rest_before)
        raise RewriteCheckError(f"the key `{str(changed[0])[:60]}` would be lost or moved")
    for key, value in rest_before.items():
        if not _same(value, rest_after[key]):
            raise RewriteCheckError(f"the key `{str(key)[:60]}` would read back differently")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _same(a: object, b: object) -> bool:
    """Equal values of equal types, NaN equal to NaN, mappings in the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _block_values(target: Mapping[str, object]) -> dict[str, object]:
    """The keys a block holds for a target, in order; a missing id or subject is left out."""
    values: dict[str, object] = {}
    for key in ("id", "title", "subject", "url"):
        value = target.get(key)
        if value is None or value == "" or (key == "id" and pd.isna(value)):
            continue
        values[key] = int(value) if key == "id" else value
    return values


def _blocks_say(blocks_text: str, wanted: list[dict[str, object]]) -> bool:
    """Do these related blocks already say exactly this, in this order, whatever their layout?"""
    if blocks_text.count("related_article") != len(wanted) or not all(
        values["url"] in blocks_text for values in wanted
    ):
        return False  # a cheap look first: most changed pages fail it
    try:
        old = load_yaml(blocks_text)
    except yaml.YAMLError:
        return False
    expected = {f"related_article{n}": values for n, values in enumerate(wanted, 1)}
    return isinstance(old, dict) and old == expected and list(old) == list(expected)


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


@dataclass(frozen=True)
class PageChange:
    """A page whose text would change: its path, url and old and new text."""

    path: str
    url: str
    old: str
    new: str

    def diff(self) -> str:
        """A unified diff of the page that ``git apply`` and ``patch -p1`` accept.

        Lines are split at ``\\n`` only (not at the other characters Python
        takes for line ends), and a last line without a newline is marked
        ``\\ No newline at end of file``.
        """
        lines = difflib.unified_diff(
            _patch_lines(self.old),
            _patch_lines(self.new),
            fromfile=f"a/{self.path}",
            tofile=f"b/{self.path}",
        )
        return "".join(
            line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"
            for line in lines
        )


def _patch_lines(text: str) -> list[str]:
    """The lines of a text as ``diff`` sees them: each ends at ``\\n``, the last perhaps not."""
    lines = text.split("\n")
    last = lines.pop()
    return [line + "\n" for line in lines] + ([last] if last else [])


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
        read back as meant (:func:`check_rewrite`); when it is read-only, not
        a regular file, or its real path is outside ``root`` (the root is a
        wall: nothing is ever written outside it).

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
            rows[path] = (path, url, "unchanged", 0, 0, kept, "kept as it is by a rule", None, None)
            continue
        targets = lists_by_source.get(url, [])
        rows[path] = (path, url, None, *_link_counts(old_urls, targets), "", None, None)
        work.append((path, url, [blocks_by_url[t] for t in targets], known))
    # a diff is shown before its page is written: in this process, one page at a time
    chunks, results = run_chunks(
        _export_chunk,
        work,
        root,
        write,
        max_page_bytes,
        on_change,
        n_jobs=None if on_change else n_jobs,
    )
    with tqdm(
        total=len(work), desc="writing" if write else "comparing", unit="page", disable=not progress
    ) as bar:
        for chunk, outcomes in zip(chunks, results, strict=True):
            for (path, *_), (status, *written) in zip(chunk, outcomes, strict=True):
                row = rows[path]
                rows[path] = (*row[:2], status, *row[3:6], *written)  # detail, digest, spans
            bar.update(len(chunk))
    return pd.DataFrame(list(rows.values()), columns=list(REPORT_COLUMNS))


def _as_loaded(pages: pd.DataFrame) -> list[tuple[str, list[int], str] | None]:
    """Per page, what the loader found in its file (:data:`LOADED_COLUMNS`), where it could.

    Content hash, block spans (flat, as loaded: paired in the worker) and rest
    fingerprint; None where the frame lacks them or the loader could not tell
    (see :func:`replace_related`).
    """
    if not set(LOADED_COLUMNS) <= set(pages.columns):
        return [None] * len(pages)
    return [
        None
        if not isinstance(digest, str) or spans is None or fingerprint is None
        else (digest, spans, fingerprint)
        for digest, spans, fingerprint in zip(
            *(pages[column].tolist() for column in LOADED_COLUMNS), strict=True
        )
    ]


def _export_chunk(
    work: list[tuple[str, str, list[dict[str, object]], tuple | None]],
    root: Path,
    write: bool,
    max_bytes: int,
    on_change: Callable[[PageChange], None] | None,
) -> list[tuple[str, str, str | None, list[int] | None]]:
    """Rewrite (or compare) some pages: each one's status, for an error what went wrong,
    and for a written page its new content hash and block spans."""
    root_real = os.path.realpath(root)
    cache: dict[tuple[object, ...], str] = {}
    with PageWriter(root_real) as writer:
        return [
            _export_page(
                root,
                path,
                url,
                targets,
                cache,
                writer if write else None,
                on_change,
                max_bytes,
                known,
            )
            for path, url, targets, known in work
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


def _link_counts(old_urls: list[str], new_urls: list[str]) -> tuple[int, int, int]:
    """Targets added, removed and kept."""
    old, new = set(old_urls), set(new_urls)
    return len(new - old), len(old - new), len(new & old)


def _export_page(
    root: Path,
    path: str,
    url: str,
    targets: list[dict[str, object]],
    cache: dict[tuple[object, ...], str],
    writer: PageWriter | None,
    on_change: Callable[[PageChange], None] | None,
    max_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    known: tuple[str, list[int], str] | None = None,
) -> tuple[str, str, str | None, list[int] | None]:
    """Rewrite one page's blocks (without a writer, compare only).

    Returns its status, what went wrong for an error, and for a page written
    as it was loaded the content hash and flattened block spans of its new
    bytes (as the loader would find them; None for a page that changed since,
    whose rest the loader's fingerprint no longer describes).  ``known``: the
    loader's content hash, flat block spans and rest fingerprint; used when the
    file still has that hash.
    """
    file = root / path
    try:
        old = read_regular_file(
            file, writer.root_real if writer else os.path.realpath(root), max_bytes
        )
        same = known is not None and file_digest(old) == known[0]
        loaded = (list(zip(known[1][::2], known[1][1::2], strict=True)), known[2]) if same else None
        new, spans = _replaced(old.decode("utf-8"), targets, cache, loaded)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, UnsafeFileError) as exc:
        logger.warning("%s: not exported: %s", path, _first_line(exc))
        return "error", f"{path}: {_first_line(exc)}", None, None
    encoded = new.encode("utf-8")
    if encoded == old:
        return "unchanged", "", None, None
    if on_change is not None:
        on_change(PageChange(path=path, url=url, old=old.decode("utf-8"), new=new))
    if writer is None:
        return "changed", "", None, None
    try:
        writer.replace(file, encoded)
    except (OSError, UnsafeFileError) as exc:
        logger.warning("%s: cannot write: %s", path, exc)
        return "error", f"{path}: cannot write: {exc}", None, None
    if not same:  # changed since it was loaded: the loader's fingerprint is not its own
        return "written", "", None, None
    return "written", "", file_digest(encoded), [place for span in spans for place in span]


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
