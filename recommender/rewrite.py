"""One page's related blocks rewritten in its text, changing nothing else.

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
left alone, whatever their layout.  :func:`rewrite_pages` does it for some
pages in their files, checked but not yet written, and :func:`write_pending`
writes them, each atomically.

This is the work :mod:`recommender.export` hands its worker processes: it
imports neither pandas nor scikit-learn (nor numpy, though joblib's workers
import that), so that a worker starts in a fraction of a second.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import RewriteCheckError, UnsafeFileError
from .files import DEFAULT_MAX_PAGE_BYTES, PageWriter, read_regular_file
from .frontmatter import (
    UNSAFE_IN_LINE,
    file_digest,
    is_block_key,
    load_yaml,
    outside_spans,
    parse_yaml,
    related_spans,
    rest_fingerprint,
    split_front_matter,
)

__all__ = [
    "PageChange",
    "block_values",
    "check_rewrite",
    "related_blocks",
    "replace_related",
    "rewrite_pages",
    "write_pending",
    "yaml_scalar",
]

logger = logging.getLogger(__name__)

_BLOCK_INDENT = " " * 4
_PLAIN_SAFE = re.compile(r"[A-Za-z/][A-Za-z0-9 _./()&,'!?+-]*")
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})


def _double_quoted(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif not UNSAFE_IN_LINE.match(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        else:  # every character past U+FFFF is printable: kept as it is, above
            out.append(f"\\u{ord(char):04x}")
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
    if folded and value and value == value.strip() and not UNSAFE_IN_LINE.search(value):
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
        values = block_values(target)
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
    wanted = [block_values(target) for target in targets]
    newline = "\r\n" if text[start - 2 : start] == "\r\n" else "\n"
    each_block = _rendered_blocks(wanted, newline, cache)
    rendered = "".join(each_block)
    old_text = "".join(front_matter[a:b] for a, b in blocks)
    if old_text == rendered or (blocks and _blocks_say(old_text, wanted)):
        return text, blocks
    pieces = outside_spans(front_matter, blocks)
    if not blocks:  # at the end, but before a document-end marker (``...``) closing it
        ending = _DOCUMENT_END.search(front_matter)
        cut = len(front_matter) if ending is None else ending.start()
        pieces = [front_matter[:cut], front_matter[cut:]]
    # the new blocks go where the first old one was, else at the end
    new_front_matter = pieces[0] + rendered + "".join(pieces[1:])
    new_text = text[:start] + new_front_matter + text[end:]
    body_start = len(new_text) - (len(text) - span[2])
    if split_front_matter(new_text) != (start, start + len(new_front_matter), body_start):
        raise RewriteCheckError("the new text would move the end of the front matter")
    _check_rewrite(before, new_front_matter, wanted, fingerprint)
    ends = list(itertools.accumulate([len(pieces[0]), *map(len, each_block)]))
    return new_text, list(itertools.pairwise(ends))


#: A front matter's last lines from a document-end marker: ``...``, then blank or comment lines.
_DOCUMENT_END = re.compile(r"^\.\.\.[ \t]*(?:#.*)?\r?\n(?:[ \t]*(?:#.*)?\r?\n)*\Z", re.M)


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
    fingerprint: str | None = None,
) -> None:
    """:func:`check_rewrite` with the old front matter's value already known.

    A ``fingerprint`` (the loader's, of the old value outside the blocks)
    stands for the old value.
    """
    try:
        after = load_yaml(new)
    except yaml.YAMLError as exc:
        raise RewriteCheckError(
            f"the new front matter would not parse: {_first_line(exc)}"
        ) from None
    if fingerprint is not None:
        if rest_fingerprint(after) != fingerprint:
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
    if list(rest_before) != list(rest_after):  # name a key lost or added, else the first moved
        changed = sorted(set(rest_before) ^ set(rest_after), key=str) or [
            key for key, now in zip(rest_before, rest_after, strict=True) if key != now
        ]
        raise RewriteCheckError(f"the key `{str(changed[0])[:60]}` would be lost or moved")
    for key, value in rest_before.items():
        if not _same(value, rest_after[key]):
            raise RewriteCheckError(f"the key `{str(key)[:60]}` would read back differently")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _same(a: object, b: object, ordered: bool = True) -> bool:
    """Equal values of equal types, NaN equal to NaN, mappings with the same keys (in the
    same order, when ``ordered``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        keys = list(a) == list(b) if ordered else a.keys() == b.keys()
        return keys and all(_same(a[k], b[k], ordered) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y, ordered) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def block_values(target: Mapping[str, object]) -> dict[str, object]:
    """The keys a block holds for a target, in order; a missing value (None, NaN, pandas'
    NA, empty text) is left out."""
    values: dict[str, object] = {}
    for key in ("id", "title", "subject", "url"):
        value = target.get(key)
        if isinstance(value, str):
            if not value:
                continue
        elif value is None or _is_nan(value):
            continue
        values[key] = int(value) if key == "id" else value
    return values


def _is_nan(value: object) -> bool:
    """NaN (a float, a numpy float) or pandas' NA: a missing value."""
    try:
        return bool(value != value)
    except TypeError:  # pandas' NA has no truth value
        return True
    except ValueError:  # an array's: not a value a block can hold (yaml_scalar says so)
        return False


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
    # of the same types too (an id 5.0 or true is no id 5), each block's keys in any order
    return (
        isinstance(old, dict)
        and _same(old, expected, ordered=False)
        and list(old) == list(expected)
    )


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


#: A page's new bytes for :func:`write_pending`: its place in the work, its path
#: under the root, the bytes, and the file's identity once they were checked.
Pending = tuple[int, str, bytes, tuple[int, int, int]]
#: A page's outcome: its status, what went wrong for an error, and for a page written as
#: it was loaded the content hash and flat block spans of its new bytes; for a page
#: written, its new file's size and modification time (ns) right after the write.
Outcome = tuple[str, str, str | None, list[int] | None, tuple[int, int] | None]


def rewrite_pages(
    work: list[tuple[str, str, list[dict[str, object]], tuple | None]],
    root: Path,
    write: bool,
    max_bytes: int,
    on_change: Callable[[PageChange], None] | None,
) -> tuple[list[Outcome], list[Pending]]:
    """Prepare the rewrite of (or, without ``write``, compare) some pages of the site at ``root``.

    ``work`` holds, per page, its path under ``root``, its url, its wanted
    targets (mappings with ``id``, ``title``, ``subject``, ``url``) and what
    the loader found in its file (content hash, flat block spans, rest
    fingerprint; or None).  Returns, per page: its status (``unchanged``,
    ``changed``, ``written`` or ``error``), what went wrong for an error, and
    for a page written as it was loaded the content hash and flat block spans
    of its new bytes; and the pages to write, checked but not yet written,
    for :func:`write_pending` (a page is ``written`` once that has written it).

    Nothing is written here: the exporter's worker processes read, rewrite
    and check the pages, and one process makes every file change.  On some
    file systems two processes' creates and renames do not overlap, and each
    waits for the other's instead of doing its own work (see README).
    """
    pending = _Pending(os.path.realpath(root))
    cache: dict[tuple[object, ...], str] = {}
    outcomes = []
    for place, (path, url, targets, known) in enumerate(work):
        pending.page = (place, path)
        writer = pending if write else None
        outcomes.append(
            _rewrite_page(root, path, url, targets, cache, writer, on_change, max_bytes, known)
        )
    return outcomes, pending.pages


def write_pending(
    writer: PageWriter,
    root: Path,
    pending: list[Pending],
    outcomes: list[Outcome],
) -> None:
    """Write the pages :func:`rewrite_pages` prepared; a page that cannot be written
    becomes an error in ``outcomes`` (and is logged), and the others go on.

    A page whose file is no longer the one that was rewritten (another inode,
    size or modification time: edited meanwhile) is not replaced: the edit is kept.
    """
    for place, path, data, identity in pending:
        file = root / path
        try:
            if _identity(os.stat(file)) != identity:
                raise UnsafeFileError("the page changed since it was read; left as it is")
            outcomes[place] = (*outcomes[place][:4], writer.replace(file, data))
        except (OSError, UnsafeFileError) as exc:
            logger.warning("%s: cannot write: %s", path, exc)
            outcomes[place] = ("error", f"{path}: cannot write: {exc}", None, None, None)


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    return status.st_ino, status.st_size, status.st_mtime_ns


class _Pending:
    """Stands in for the :class:`PageWriter`: keeps each page's checked new bytes, and
    its file's identity then (a fraction of a millisecond after it was read, the
    window a worker's own write had), for :func:`write_pending`."""

    def __init__(self, root_real: str):
        self.root_real = root_real
        self.page = (0, "")  # the page being rewritten: its place in the work, its path
        self.pages: list[Pending] = []

    def replace(self, file: Path, data: bytes) -> None:
        self.pages.append((*self.page, data, _identity(os.stat(file))))


def _rewrite_page(
    root: Path,
    path: str,
    url: str,
    targets: list[dict[str, object]],
    cache: dict[tuple[object, ...], str],
    writer: PageWriter | None,
    on_change: Callable[[PageChange], None] | None,
    max_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    known: tuple[str, list[int] | None, str | None] | None = None,
) -> Outcome:
    """Rewrite one page's blocks (without a writer, compare only).

    Returns its status, what went wrong for an error, and for a page written
    as it was loaded the content hash and flattened block spans of its new
    bytes (as the loader would find them; None for a page that changed since,
    whose rest the loader's fingerprint no longer describes).  ``known``: the
    loader's content hash, flat block spans and rest fingerprint (the last two
    None where the loader could not tell them); used when the file still has
    that hash.
    """
    file = root / path
    try:
        old = read_regular_file(
            file, writer.root_real if writer else os.path.realpath(root), max_bytes
        )
        same = known is not None and file_digest(old) == known[0]
        loaded = (
            (list(zip(known[1][::2], known[1][1::2], strict=True)), known[2])
            if same and known[1] is not None and known[2] is not None
            else None  # the loader could not tell its blocks or rest: read it whole
        )
        new, spans = _replaced(old.decode("utf-8"), targets, cache, loaded)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, UnsafeFileError) as exc:
        logger.warning("%s: not exported: %s", path, _first_line(exc))
        return "error", f"{path}: {_first_line(exc)}", None, None, None
    encoded = new.encode("utf-8")
    if encoded == old:
        return "unchanged", "", None, None, None
    if len(encoded) > max_bytes:  # the next run would not read it back
        problem = (
            f"its new text would be {len(encoded):,} bytes, over {max_bytes:,} (max_page_bytes)"
        )
        logger.warning("%s: not exported: %s", path, problem)
        return "error", f"{path}: {problem}", None, None, None
    if on_change is not None:
        on_change(PageChange(path=path, url=url, old=old.decode("utf-8"), new=new))
    if writer is None:
        return "changed", "", None, None, None
    try:
        writer.replace(file, encoded)
    except (OSError, UnsafeFileError) as exc:
        logger.warning("%s: cannot write: %s", path, exc)
        return "error", f"{path}: cannot write: {exc}", None, None, None
    if not same:  # changed since it was loaded: the loader's fingerprint is not its own
        return "written", "", None, None, None
    return "written", "", file_digest(encoded), [place for span in spans for place in span], None
