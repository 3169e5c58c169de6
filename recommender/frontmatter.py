"""One page's text: where its YAML front matter is, and that YAML loaded safely.

Both the loader (:mod:`recommender.corpus`) and the exporter
(:mod:`recommender.export`) split pages here, so that they always agree on
where a page's front matter starts and ends.  Nothing here knows about sites,
files or the model.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import RewriteCheckError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "UNSAFE_IN_LINE",
    "file_digest",
    "is_block_key",
    "load_yaml",
    "outside_spans",
    "parse_yaml",
    "quick_parse",
    "related_spans",
    "rest_fingerprint",
    "split_front_matter",
    "value_and_spans",
]

logger = logging.getLogger(__name__)

try:  # libyaml's C parser is several times faster; fall back (with a warning) where absent
    _LIBYAML_LOADER: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _LIBYAML_LOADER = yaml.SafeLoader
    logger.warning("PyYAML has no libyaml: pages load several times slower")

_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "map", "seq"))
#: Plain scalars whose tag :class:`_SafeLoader` keeps, at most this many.
RESOLVED_LIMIT = 20_000


class _SafeLoader(_LIBYAML_LOADER):
    """PyYAML's safe loader, whose plain scalars' tags are looked up once per value.

    libyaml composes the nodes in C, but asks PyYAML's resolver, in Python,
    for the tag of every untagged scalar: a fifth of a page's parse.  Without
    path resolvers (the safe loader has none) a plain scalar's tag depends on
    its text alone, and a site's front matter repeats the same keys on every
    page: so the tag of each of the first :data:`RESOLVED_LIMIT` plain
    scalars met in a process is kept.  Every other node is resolved as
    PyYAML does.
    """

    _resolved: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        if kind is not ScalarNode:
            return self.DEFAULT_SEQUENCE_TAG if kind is SequenceNode else self.DEFAULT_MAPPING_TAG
        if not implicit[0]:  # quoted, folded, literal: PyYAML's implicit resolvers skip these
            return self.DEFAULT_SCALAR_TAG
        tag = self._resolved.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._resolved) < RESOLVED_LIMIT:
                self._resolved[value] = tag
        return tag


#: A character that no line of YAML text may hold as it is: one YAML refuses, a tab, any of
#: YAML's line breaks (``\n``, ``\r``, U+0085, U+2028, U+2029), or a BOM.  The exporter
#: double-quotes (and escapes) text holding one; :func:`quick_parse` leaves it to libyaml.
UNSAFE_IN_LINE = re.compile(
    "[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_MERGE = "tag:yaml.org,2002:merge"
#: Most nodes a front matter may hold once its aliases are expanded: a few KB of
#: aliases ("billion laughs") would otherwise expand to more values than memory holds
#: in anything that walks them (``==``, ``repr``, pandas).
MAX_NODES = 100_000
#: Deepest nesting of lists and mappings a front matter may have.
MAX_DEPTH = 64
_RELATED_KEY = re.compile(r"related_article(\d+)")
#: YAML's line breaks: a line ends at any of them, not only at ``\n``.
_BREAKS = "\n\r\x85\u2028\u2029"
_LINE_BREAK = re.compile(f"\r\n|[{_BREAKS}]")
_RARE_BREAK = re.compile("[\r\x85\u2028\u2029]")
_BLANK_OR_COMMENT_LINE = re.compile(f"(?:[ \t]*|#[^{_BREAKS}]*)(?:\r\n|[{_BREAKS}])")  # column 0
_INDENTED_COMMENT_LINE = re.compile(f"[ \t]+#[^{_BREAKS}]*(?:\r\n|[{_BREAKS}])")
_OPENING = re.compile(r"---[ \t]*\r?\n")
_CLOSING_LINE = re.compile(r"---[ \t]*(?:\r?\n|\r?$)")


def split_front_matter(text: str) -> tuple[int, int, int] | None:
    """Locate the YAML front matter of a page's text.

    The text must open with a ``---`` line; the front matter ends at the next
    line that is exactly ``---`` (trailing blanks allowed).  A leading UTF-8 BOM
    and CRLF line endings are accepted.

    Returns
    -------
    (start, end, after) or None
        ``text[start:end]`` is the YAML, ``text[end:after]`` the closing
        delimiter line with its line break, ``text[after:]`` the body.
        ``None`` when the text does not open with ``---``.

    Raises
    ------
    ValueError
        When the opening ``---`` has no closing line.
    """
    offset = 1 if text.startswith("\ufeff") else 0
    opening = _OPENING.match(text, offset)
    if opening is None:
        return None
    start = opening.end()
    if _CLOSING_LINE.match(text, start):  # empty front matter
        return start, start, _CLOSING_LINE.match(text, start).end()
    position = start
    while (position := text.find("\n---", position)) != -1:
        closing = _CLOSING_LINE.match(text, position + 1)
        if closing is not None:
            return start, position + 1, closing.end()
        position += 4
    raise ValueError("the opening '---' has no closing '---' line")


def parse_yaml(text: str) -> tuple[Any, Any]:
    """Parse YAML safely with libyaml: its node tree and its value, checked against hostile input.

    The value is what ``yaml.load(text, Loader=yaml.CSafeLoader)`` gives (only
    YAML's standard tags; no arbitrary objects), built in the same walk that
    checks the tree, about twice as fast: libyaml composes the nodes, strings,
    plain mappings and lists are built directly, and every other node goes
    through PyYAML's safe constructor.  Aliased values are shared, as PyYAML
    shares them.  Nodes carry ``start_mark`` and ``end_mark`` whose ``index``
    counts characters of ``text``.

    Returns
    -------
    (root, value)
        ``(None, None)`` for an empty document.

    Raises
    ------
    yaml.YAMLError
        For invalid YAML; a mapping that repeats a key; a recursive alias;
        more than :data:`MAX_NODES` values with aliases expanded or nesting
        deeper than :data:`MAX_DEPTH`; unknown tags, unhashable keys, or a
        value that YAML accepts but Python cannot hold (``2024-02-30``,
        ``!!int abc``), with its line.
    """
    loader = _SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        try:
            return root, _Builder(loader).value(root, 0)
        except (TypeError, RecursionError) as exc:
            raise yaml.YAMLError(f"cannot build the front matter: {exc}") from None
    finally:
        loader.dispose()


def load_yaml(text: str) -> Any:
    """The value of :func:`parse_yaml` (read by :func:`quick_parse` where it can)."""
    quick = quick_parse(text)
    return parse_yaml(text)[1] if quick is None else quick[0]


def value_and_spans(text: str) -> tuple[Any, list[tuple[int, int]] | None]:
    """The value of front matter text and its :func:`related_spans` (None where that
    refuses the layout), read by :func:`quick_parse` where it can.

    Raises
    ------
    yaml.YAMLError
        As :func:`parse_yaml`.
    """
    quick = quick_parse(text)
    if quick is not None:
        return quick
    root, value = parse_yaml(text)
    try:
        return value, related_spans(text, root)
    except RewriteCheckError:
        return value, None


#: One line: empty (no groups); or ``key: value`` with a plain key: its indentation, key,
#: and either a block scalar's header and next line (its indentation, its text) or the
#: value's text; or any other line (its text, the last group).
_ENTRY = re.compile(
    r"\n|( *)([A-Za-z_][A-Za-z0-9_-]{0,99}):(?: +(?:([>|]-?)\n( *)([^\n]*)|([^\n]*)))?\n"
    r"|([^\n]*)\n"
)
#: The block scalar headers :func:`quick_parse` reads: does the value keep its final line break?
_BLOCK_HEADERS = {">-": False, "|-": False, ">": True, "|": True}
#: A plain scalar cannot open with these; nor with ``-``, ``?`` or ``:`` before a blank.
_NOT_PLAIN_FIRST = frozenset(",[]{}#&*!|>'\"%@`")
_DOUBLE_QUOTED = re.compile(
    r'(?:[^"\\]|\\(?:[0abtnvfre "\\N_LP]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}))*'
)
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))")
_ESCAPED = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "\\": "\\",
    "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
#: Scalar tags :func:`quick_parse` builds (PyYAML's safe constructor for all but text).
_QUICK_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float", "null", "timestamp")
)
_RESOLVING = _SafeLoader("")  # its resolver: the loader's own rules and kept tags
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_QUICK_DEPTH = 16
_NO = object()  # a scalar :func:`quick_parse` leaves to libyaml


def quick_parse(text: str) -> tuple[dict, list[tuple[int, int]]] | None:
    """The value and :func:`related_spans` of front matter in the plain layout sites write,
    without libyaml; None for any other text, for :func:`parse_yaml` to read.

    Most of a page's parse went to building libyaml's node for each value, not to
    reading its characters: this reads the layout line by line instead.  It takes
    only lines of ``key: value`` (a plain key, indented by spaces as deep as its
    mapping's other keys), where the value is nothing (then a nested mapping, more
    indented, may follow), a plain scalar on its line, a quoted scalar on its line
    (``"..."`` with YAML's escapes, ``'...'``), or a block scalar header (``>-``,
    ``>``, ``|-``, ``|``) followed by exactly one line of text, more indented.
    Empty lines may come between them.  No other blank lines, no comment lines,
    tabs, anchors, tags, flow collections, sequences, repeated keys or keys that
    are not text.  Whatever it takes, it reads as libyaml and :func:`parse_yaml` do
    (the tests compare them on every page of the corpora, and on generated texts).
    """
    if not text.endswith("\n"):
        return None
    entries = _ENTRY.findall(text)
    if len(entries) * 3 > MAX_NODES:
        return None
    root: dict = {}
    stack = [(0, root)]  # (indentation, mapping) of the mappings open at this entry
    top: list[str] = []  # the top-level keys, in order
    opened, last = -1, ""  # a key with no value yet, its indentation: a mapping may follow
    for spaces, key, header, inner_spaces, line, raw, other in entries:
        if not key:
            if other:
                return None
            continue  # an empty line
        indent = len(spaces)
        if opened >= 0:
            if indent > opened:
                stack[-1][1][last] = child = {}
                stack.append((indent, child))
                if len(stack) > _QUICK_DEPTH:
                    return None
            opened = -1
        while stack[-1][0] > indent:
            stack.pop()
        level, mapping = stack[-1]
        if level != indent or key in mapping or _plain_tag(key) != _STR:
            return None
        if header:
            if len(inner_spaces) <= indent or not line or not _printable(line):
                return None
            value = line + "\n" if _BLOCK_HEADERS[header] else line
        elif raw:
            value = _quick_scalar(raw)
            if value is _NO:
                return None
        else:
            value, opened, last = None, indent, key
        mapping[key] = value
        if not indent:
            top.append(key)
    if not root:  # no key: an empty document, which YAML reads as null
        return None
    return root, _top_spans(text, top)


def _top_spans(text: str, keys: list[str]) -> list[tuple[int, int]]:
    """The spans of the ``related_articleN`` blocks among the top-level ``keys`` of text
    that :func:`quick_parse` read: from each one's line to the next top-level key's, the
    empty lines between them left out."""
    spans = []
    for number, key in enumerate(keys):
        if _RELATED_KEY.fullmatch(key):
            start = _key_start(text, key)
            end = len(text) if number + 1 == len(keys) else _key_start(text, keys[number + 1])
            while text[end - 2] == "\n":  # an empty line: the only lines between keys
                end -= 1
            spans.append((start, end))
    return spans


def _key_start(text: str, key: str) -> int:
    """Where the line of a top-level key starts: every other line is indented."""
    return 0 if text.startswith(key + ":") else text.index("\n" + key + ":") + 1


def _quick_scalar(raw: str) -> Any:
    """The value of a scalar written on one line after ``key: ``; :data:`_NO` where
    :func:`quick_parse` leaves it to libyaml."""
    if not _printable(raw):
        return _NO
    first = raw[0]
    if first == '"':
        inner = raw[1:-1]
        if len(raw) < 2 or raw[-1] != '"' or not _DOUBLE_QUOTED.fullmatch(inner):
            return _NO
        try:
            return _ESCAPE.sub(_unescaped, inner) if "\\" in inner else inner
        except _NotQuick:
            return _NO
    if first == "'":
        inner = raw[1:-1]
        if len(raw) < 2 or raw[-1] != "'" or "'" in inner.replace("''", ""):
            return _NO
        return inner.replace("''", "'")
    if first in _NOT_PLAIN_FIRST or ": " in raw or " #" in raw or raw[-1] in ": ":
        return _NO
    if first in "-?:" and (len(raw) == 1 or raw[1] == " "):
        return _NO
    tag = _plain_tag(raw)
    if tag == _STR:
        return raw
    if tag not in _QUICK_TAGS:
        return _NO
    try:
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, ScalarNode(tag, raw))
    except Exception:  # libyaml's reading says what is wrong with it
        return _NO


def _printable(text: str) -> bool:
    """Whether text holds none of :data:`UNSAFE_IN_LINE`: Python's printable
    characters are among YAML's, so most texts need no regular expression."""
    return text.isprintable() or not UNSAFE_IN_LINE.search(text)


def _unescaped(match: re.Match) -> str:
    code = match[1] or match[2] or match[3]
    if code is None:
        return _ESCAPED[match[4]]
    number = int(code, 16)
    if 0xD800 <= number <= 0xDFFF or number > 0x10FFFF:
        raise _NotQuick
    return chr(number)


class _NotQuick(Exception):
    """A double-quoted scalar whose escape libyaml refuses."""


def _plain_tag(value: str) -> str:
    """The tag of a plain scalar, as libyaml's reading gets it (:meth:`_SafeLoader.resolve`)."""
    resolvers = _SafeLoader.yaml_implicit_resolvers
    if value[0] not in resolvers and None not in resolvers:  # none looks at it: text
        return _STR
    return _RESOLVING.resolve(ScalarNode, value, (True, False))


class _Builder:
    """Builds a node tree's value in one walk that also refuses hostile trees.

    A node met again (an alias) gives the same object, and its expanded size
    is counted again without walking it again, so that the walk stays as
    small as the text however the aliases multiply.
    """

    def __init__(self, loader: Any):
        self.loader = loader
        self.built: dict[int, tuple[Any, int]] = {}  # id(node) -> (value, expanded size)
        self.on_path: set[int] = set()
        self.count = 0  # values so far, aliases expanded

    def value(self, node: Any, depth: int) -> Any:
        kind = node.__class__
        if kind is ScalarNode and node.tag == _STR:
            self.count += 1
            return node.value
        key = id(node)
        known = self.built.get(key)
        if known is not None:
            self.count += known[1]
            if self.count > MAX_NODES:
                raise _node_error(node, f"more than {MAX_NODES:,} values once aliases expand")
            return known[0]
        start = self.count
        value = self._scalar(node) if kind is ScalarNode else self._collection(node, key, depth)
        self.built[key] = (value, self.count - start)
        return value

    def _scalar(self, node: ScalarNode) -> Any:
        self.count += 1
        return _construct(node, self.loader)

    def _collection(self, node: Any, key: int, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _node_error(node, f"nested more than {MAX_DEPTH} levels deep")
        if key in self.on_path:
            raise _node_error(node, "an alias refers to a value that contains it")
        self.on_path.add(key)
        self.count += 1
        inner = depth + 1
        if node.__class__ is SequenceNode:
            items = [self.value(item, inner) for item in node.value]
            value = items if node.tag == _SEQ else _construct(node, self.loader)
        else:
            value = self._mapping(node, inner)
        self.on_path.discard(key)
        if self.count > MAX_NODES:
            raise _node_error(node, f"more than {MAX_NODES:,} values once aliases expand")
        return value

    def _mapping(self, node: MappingNode, inner: int) -> Any:
        pairs = node.value
        if node.tag == _MAP and not any(k.tag == _MERGE for k, _ in pairs):
            value = {self.value(k, inner): self.value(v, inner) for k, v in pairs}
            if len(value) != len(pairs):  # equal keys: refused where they are written alike
                _check_unique_keys(node)
            return value
        _check_unique_keys(node)
        for k, v in pairs:  # checked and counted here; PyYAML builds merges and other tags
            if k.tag != _MERGE:
                self.value(k, inner)
            self.value(v, inner)
        return _construct(node, self.loader)


def is_block_key(key: object) -> bool:
    """Is this front matter key one of the ``related_articleN`` blocks?"""
    return isinstance(key, str) and _RELATED_KEY.fullmatch(key) is not None


def file_digest(data: bytes) -> str:
    """The content hash of a page file's bytes (BLAKE2b, 128 bits, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def rest_fingerprint(data: Any) -> str | None:
    """A digest of a front matter's value (``data``) outside its related blocks.

    Two values with the same fingerprint are equal, with equal types and
    keys in the same order (a byte form of each, which says its type and
    where it ends, is hashed: see :func:`_serialised`).  None when the value
    is no mapping, or holds a set (``!!set``: Python orders sets by hash, so
    its form could differ between processes).
    """
    if not isinstance(data, dict):
        return None
    parts: list[bytes] = []
    try:
        for key, value in data.items():
            if not is_block_key(key):
                _serialised(key, parts)
                _serialised(value, parts)
    except _Unordered:
        return None
    return hashlib.blake2b(b"".join(parts), digest_size=16).hexdigest()


class _Unordered(Exception):
    """A value with no fixed byte form: a set."""


def _serialised(value: Any, parts: list[bytes]) -> None:
    """Append a byte form of a YAML value to ``parts``: its kind, its length, its content.

    Every form says where it ends, so equal sequences of forms come only from
    equal values of equal types (mappings with their keys in the same order).
    Texts go in as UTF-8 (twice as fast as their ``repr``, which escapes them);
    other scalars as their ``repr``.
    """
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        parts += (b"s%d:" % len(data), data)
    elif kind is dict:
        parts.append(b"d%d:" % len(value))
        for key, item in value.items():
            _serialised(key, parts)
            _serialised(item, parts)
    elif kind is list:
        parts.append(b"l%d:" % len(value))
        for item in value:
            _serialised(item, parts)
    elif kind is set or kind is frozenset:
        raise _Unordered
    else:  # YAML's other types never share a repr: 1, 1.0, True, None, dates, bytes
        text = repr(value).encode("utf-8", "surrogatepass")
        parts += (b"r%d:" % len(text), text)


def outside_spans(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """The pieces of ``text`` around ``spans`` (sorted, not overlapping): one more than spans."""
    pieces, position = [], 0
    for start, end in spans:
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return pieces


def related_spans(front_matter: str, root: Any) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the ``related_articleN`` blocks of front matter parsed as ``root``.

    The blocks are found where YAML itself puts them: the top-level keys
    ``related_articleN`` (``root`` from :func:`parse_yaml`), from the key to
    the end of its value's last line (blank and comment lines after it stay
    outside), so that text inside another value never passes for a block.

    Raises
    ------
    RewriteCheckError
        When the front matter is not a mapping of keys at the start of lines.
    """
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise RewriteCheckError("the front matter is not a block mapping of `key: value` lines")
    spans = []
    for key, value in root.value:
        if not isinstance(key, yaml.ScalarNode) or not _RELATED_KEY.fullmatch(key.value):
            continue
        if key.start_mark.column != 0 or key.tag != "tag:yaml.org,2002:str" or key.style:
            raise RewriteCheckError(f"the key {key.value} is not at the start of a plain line")
        if value.start_mark.index < key.end_mark.index:  # an alias (`*a`): the anchored
            end = _line_end(front_matter, key.end_mark.index)  # node is written before it
        else:
            end = _block_end(front_matter, value.end_mark.index, value)
        spans.append((key.start_mark.index, end))
    return spans


def _block_end(text: str, value_end: int, value: Any = None) -> int:
    """Where a block whose value (node) ends at ``value_end`` ends: after its last line.

    Blank and comment lines after the value stay outside the block, indented
    comments too, unless the value ends in a block scalar (``|``, ``>``),
    whose indented ``#`` lines are its text.
    """
    if _line_start(text, value_end) != value_end:  # it ends inside a line: the block takes it
        return _line_end(text, value_end)
    end = value_end  # a nested mapping ends where the next key starts: give back blank lines
    while end > 0:
        previous = _line_start(text, end - 1 - (text[end - 2 : end] == "\r\n"))
        if not _BLANK_OR_COMMENT_LINE.fullmatch(text, previous, end) and (
            not _INDENTED_COMMENT_LINE.fullmatch(text, previous, end)
            or _ends_in_block_scalar(value)
        ):
            break
        end = previous
    return end


def _ends_in_block_scalar(node: Any) -> bool:
    """Whether a node's text ends with a literal or folded scalar (its last value's)."""
    while isinstance(node, (MappingNode, SequenceNode)) and node.value:
        node = node.value[-1][1] if isinstance(node, MappingNode) else node.value[-1]
    return isinstance(node, ScalarNode) and node.style in ("|", ">")


def _line_start(text: str, position: int) -> int:
    """Where the line holding ``position`` starts: after the last line break before it.

    The last ``\n``, then any of YAML's rarer breaks between it and ``position``
    (a search of the whole text back for each of those cost every page its time).
    """
    start = text.rfind("\n", 0, position) + 1
    while (rare := _RARE_BREAK.search(text, start, position)) is not None:
        start = rare.end()
    return start


def _line_end(text: str, position: int) -> int:
    """After the line break that ends the line holding ``position`` (any of YAML's)."""
    found = _LINE_BREAK.search(text, position)
    return len(text) if found is None else found.end()


def _check_unique_keys(node: MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE:
            continue
        if (key.tag, key.value) in seen:
            raise _node_error(key, f"the key {key.value[:60]!r} appears twice in one mapping")
        seen.add((key.tag, key.value))


def _node_error(node: Any, problem: str) -> yaml.MarkedYAMLError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


def _construct(node: Any, loader: Any) -> Any:
    """PyYAML's safe constructor for one node; Python's refusals become YAML errors."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except Exception as exc:  # safe tags only: any failure is the text's, not ours
        problem = f"{node.value[:40]!r} cannot be read as {node.tag.rsplit(':', 1)[-1]}: {exc}"
        raise _node_error(node, problem if isinstance(node, ScalarNode) else str(exc)) from None
