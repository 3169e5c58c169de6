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

__all__ = ["load_yaml", "split_front_matter"]

logger = logging.getLogger(__name__)

try:  # libyaml's C parser is several times faster; fall back (with a warning) where absent
    _SAFE_LOADER: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _SAFE_LOADER = yaml.SafeLoader
    logger.warning("PyYAML has no libyaml: pages load several times slower")

_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "map", "seq"))
_MERGE = "tag:yaml.org,2002:merge"
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


def load_yaml(text: str) -> Any:
    """Parse YAML safely with libyaml, building plain dicts, lists and strings.

    Gives the same values as ``yaml.load(text, Loader=yaml.CSafeLoader)``
    (only YAML's standard tags; no arbitrary objects), about 1.5 times faster:
    libyaml composes the node tree, strings and plain mappings are built
    directly, and every other node goes through PyYAML's safe constructor.

    Raises
    ------
    yaml.YAMLError
        For invalid YAML, unknown tags, unhashable keys or recursive aliases.
    """
    loader = _SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _node_value(node, loader, {})
    except (TypeError, RecursionError) as exc:
        raise yaml.YAMLError(f"cannot build the front matter: {exc}") from None
    finally:
        loader.dispose()


def _node_value(node: Any, loader: Any, built: dict[int, Any]) -> Any:
    """The value of a node; a node met again (a YAML alias) gives the same object.

    Sharing aliased values, as PyYAML's own constructor does, keeps a page
    full of aliases (a "billion laughs" bomb) as small as its text.
    """
    known = built.get(id(node))
    if known is not None:
        return known
    kind = node.__class__
    if kind is ScalarNode and node.tag == _STR:
        return node.value
    if kind is MappingNode and node.tag == _MAP:
        if any(key.tag == _MERGE for key, _ in node.value):
            value = loader.construct_object(node, deep=True)
        else:
            value = {
                _node_value(key, loader, built): _node_value(item, loader, built)
                for key, item in node.value
            }
    elif kind is SequenceNode and node.tag == _SEQ:
        value = [_node_value(item, loader, built) for item in node.value]
    else:
        value = loader.construct_object(node, deep=True)
    built[id(node)] = value
    return value
