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
    "compose_yaml",
    "load_yaml",
    "node_data",
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


def compose_yaml(text: str) -> Any:
    """Compose YAML into libyaml's node tree, checked against hostile input.

    Returns the root node (``None`` for an empty document).  Nodes carry
    ``start_mark`` and ``end_mark`` whose ``index`` counts characters of ``text``.

    Raises
    ------
    yaml.YAMLError
        For invalid YAML; a mapping that repeats a key; a recursive alias;
        more than :data:`MAX_NODES` nodes with aliases expanded or nesting
        deeper than :data:`MAX_DEPTH`.
    """
    loader = _SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is not None:
        _check_nodes(node)
    return node


def load_yaml(text: str) -> Any:
    """Parse YAML safely with libyaml, building plain dicts, lists and strings.

    Gives the same values as ``yaml.load(text, Loader=yaml.CSafeLoader)``
    (only YAML's standard tags; no arbitrary objects), about 1.5 times faster:
    libyaml composes the node tree, strings and plain mappings are built
    directly, and every other node goes through PyYAML's safe constructor.
    Unlike PyYAML it refuses a repeated key and hostile sizes
    (:func:`compose_yaml`), and a value YAML accepts but Python cannot hold
    (``2024-02-30``, ``!!int abc``) is a :class:`yaml.YAMLError` with its line.

    Raises
    ------
    yaml.YAMLError
        For invalid YAML, unknown tags, unhashable keys, values Python cannot
        hold, repeated keys, recursive aliases or hostile sizes.
    """
    return node_data(compose_yaml(text))


def node_data(node: Any) -> Any:
    """The value of a node tree from :func:`compose_yaml`, as :func:`load_yaml` builds it.

    Raises
    ------
    yaml.YAMLError
        For unknown tags, unhashable keys, or values Python cannot hold.
    """
    if node is None:
        return None
    loader = _SAFE_LOADER("")
    try:
        return _node_value(node, loader, {})
    except (TypeError, RecursionError) as exc:
        raise yaml.YAMLError(f"cannot build the front matter: {exc}") from None
    finally:
        loader.dispose()


def _children(node: Any) -> list[Any]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return node.value
    return []


def _check_nodes(root: Any) -> None:
    """Refuse repeated keys, recursive aliases, too many nodes (aliases expanded) or depth.

    Walks the node graph without recursion, counting each shared node's
    expanded size once, so that the check itself stays as small as the text.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise _node_error(node, f"more than {MAX_NODES:,} values once aliases expand")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _node_error(node, "an alias refers to a value that contains it")
        if depth > MAX_DEPTH:
            raise _node_error(node, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, MappingNode):
            _check_unique_keys(node)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))


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


def _node_value(node: Any, loader: Any, built: dict[int, Any]) -> Any:
    """The value of a node; a node met again (a YAML alias) gives the same object.

    Sharing aliased values, as PyYAML's own constructor does, keeps a page
    full of aliases as small as its text.  A value that YAML accepts but
    Python cannot hold (a 30th of February, ``!!int abc``) is a
    :class:`yaml.MarkedYAMLError` at the node.
    """
    known = built.get(id(node))
    if known is not None:
        return known
    kind = node.__class__
    if kind is ScalarNode and node.tag == _STR:
        return node.value
    if kind is MappingNode and node.tag == _MAP and not any(k.tag == _MERGE for k, _ in node.value):
        value = {
            _node_value(key, loader, built): _node_value(item, loader, built)
            for key, item in node.value
        }
    elif kind is SequenceNode and node.tag == _SEQ:
        value = [_node_value(item, loader, built) for item in node.value]
    else:
        value = _construct(node, loader)
    built[id(node)] = value
    return value


def _construct(node: Any, loader: Any) -> Any:
    """PyYAML's safe constructor for one node; Python's refusals become YAML errors."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except Exception as exc:  # safe tags only: any failure is the text's, not ours
        problem = f"{node.value[:40]!r} cannot be read as {node.tag.rsplit(':', 1)[-1]}: {exc}"
        raise _node_error(node, problem if isinstance(node, ScalarNode) else str(exc)) from None
