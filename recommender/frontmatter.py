"""One page's text: where its YAML front matter is, and that YAML loaded safely.

Both the loader (:mod:`recommender.corpus`) and the exporter
(:mod:`recommender.export`) split pages here, so that they always agree on
where a page's front matter starts and ends.  Nothing here knows about sites,
files or the model.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "load_yaml",
    "parse_yaml",
    "split_front_matter",
]

logger = logging.getLogger(__name__)

try:  # libyaml's C parser is several times faster; fall back (with a warning) where absent
    _SAFE_LOADER: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _SAFE_LOADER = yaml.SafeLoader
    logger.warning("PyYAML has no libyaml: pages load several times slower")

_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "map", "seq"))
_MERGE = "tag:yaml.org,2002:merge"
#: Most nodes a front matter may hold once its aliases are expanded: a few KB of
#: aliases ("billion laughs") would otherwise expand to more values than memory holds
#: in anything that walks them (``==``, ``repr``, pandas).
MAX_NODES = 100_000
#: Deepest nesting of lists and mappings a front matter may have.
MAX_DEPTH = 64
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
    loader = _SAFE_LOADER(text)
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
