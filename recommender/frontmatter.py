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
    "file_digest",
    "is_block_key",
    "load_yaml",
    "outside_spans",
    "parse_yaml",
    "related_spans",
    "rest_fingerprint",
    "split_front_matter",
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
    """The value of :func:`parse_yaml`."""
    return parse_yaml(text)[1]


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
