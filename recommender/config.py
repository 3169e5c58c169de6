"""Settings files: TOML whose keys are :class:`~recommender.model.Recommender` parameters.

Example ``recommender.toml``::

    n_links = 5
    max_df = 0.1
    coverage = true
    max_in_links = 20

    [field_weights]
    title = 1.0
    keywords = 1.0
    answer = 2.0

    [ngram_range]
    title = [1, 2]

A key left out keeps its default; ``recommend --print-config`` prints every
setting in effect in this format.  ``rules = "related-rules.toml"`` names an
editor's rules file (:func:`load_rules`), relative to the settings file;
so is ``embedding_cache``, the folder of cached embeddings (``~`` is the
user's home).
"""

from __future__ import annotations

import inspect
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import tomli_w

from .errors import ConfigError, UnsafeFileError
from .files import read_regular_file
from .model import DEFAULT_FIELD_WEIGHTS, DEFAULT_NGRAM_RANGES, Recommender
from .rules import EditorialRules, Keep, Never, Pin

__all__ = [
    "RULE_KEYS",
    "SETTINGS",
    "check_settings",
    "effective_settings",
    "load_rules",
    "load_settings",
    "settings_toml",
]

#: Keys a settings file may hold: every Recommender parameter but ``progress``
#: (the command line decides on progress bars).
SETTINGS: tuple[str, ...] = tuple(
    name for name in inspect.signature(Recommender).parameters if name != "progress"
)


#: Largest settings or rules file read (a FIFO is never opened, ``/dev/zero`` never read).
MAX_FILE_BYTES = 1 << 20


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    """A settings or rules file's text: a regular file of at most :data:`MAX_FILE_BYTES`,
    UTF-8 (a byte-order mark allowed), read as the pages are; else a ConfigError naming it."""
    try:
        data = read_regular_file(path, os.path.realpath(path), MAX_FILE_BYTES)
        return data.decode("utf-8-sig")
    except (OSError, UnsafeFileError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"{path}: cannot read {what}: {detail}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: cannot read {what}: byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start} is not UTF-8"
        ) from None


def load_settings(path: str | os.PathLike[str], *, rules: bool = True) -> dict[str, Any]:
    """Read a TOML settings file and check it; return the parameters it sets.

    Without ``rules``, a ``rules`` key is left out, its file not read: the
    command line's ``--rules`` overrides it, even one that names no file.

    Raises
    ------
    ConfigError
        When the file cannot be read, is not TOML, names an unknown setting
        or gives a bad value, naming the file and the setting.
    """
    try:
        settings = tomllib.loads(_read_text(path, "the settings"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known: {', '.join(SETTINGS)}"
        )
    if isinstance(settings.get("ngram_range"), list):
        settings["ngram_range"] = tuple(settings["ngram_range"])
    if not rules:
        settings.pop("rules", None)
    if "rules" in settings:
        settings["rules"] = _rules_setting(path, settings["rules"])
    if isinstance(settings.get("embedding_cache"), str):
        settings["embedding_cache"] = _beside(path, os.path.expanduser(settings["embedding_cache"]))
    check_settings(settings, source=str(path))
    return settings


def _rules_setting(settings_path: str | os.PathLike[str], value: Any) -> EditorialRules:
    """The rules file named by a settings file's ``rules``, relative to the settings file."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{settings_path}: rules must be the path of a rules file, got {value!r}")
    return load_rules(os.path.join(os.path.dirname(settings_path), value))


def _beside(settings_path: str | os.PathLike[str], value: str) -> str:
    """A path of a settings file, relative to that file, made absolute."""
    return os.path.abspath(os.path.join(os.path.dirname(settings_path), value))


def check_settings(settings: Mapping[str, Any], *, source: str = "settings") -> None:
    """Raise :class:`ConfigError`, naming ``source``, if a Recommender would refuse these."""
    try:
        Recommender(**settings).check_params()
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def effective_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting, with defaults filled in, as a Recommender would use them."""
    params = Recommender(**settings).get_params()
    params.pop("progress")
    if params["field_weights"] is None:
        params["field_weights"] = dict(DEFAULT_FIELD_WEIGHTS)
    if params["ngram_range"] is None:
        params["ngram_range"] = {field: list(r) for field, r in DEFAULT_NGRAM_RANGES.items()}
    return params


def settings_toml(settings: Mapping[str, Any]) -> str:
    """The settings as a TOML document that :func:`load_settings` reads back.

    Rules are written as the absolute path of their file.  A ``None`` value
    (``n_jobs``, ``rules``) is written as a comment:
    TOML has no null, and leaving the key out means the same.
    """
    plain = {key: value for key, value in settings.items() if value is not None}
    if isinstance(plain.get("rules"), EditorialRules):  # written as the path it was read from
        plain["rules"] = os.path.abspath(plain["rules"].file)
    plain = {
        key: list(value) if isinstance(value, tuple) else value for key, value in plain.items()
    }
    text = tomli_w.dumps(plain)
    missing = [key for key, value in settings.items() if value is None]
    return "".join(f"# {key} is not set\n" for key in missing) + text


# ---------------------------------------------------------------------- rules files

#: Keys each section of a rules file may hold, and whether each is required.
RULE_KEYS: dict[str, dict[str, bool]] = {
    "pin": {"source": True, "target": True, "rank": False},
    "never": {"source": False, "target": False},
    "keep": {"source": True},
    "dates": {"no_newer": False, "half_life_days": False},
    "subjects": {"min_same": False, "cross_min_score": False},
}


def load_rules(path: str | os.PathLike[str]) -> EditorialRules:
    """Read an editor's rules file (TOML) and check it (see :class:`~.rules.EditorialRules`).

    Example::

        [[pin]]
        source = "/learn/biology/questions/how-is-dna-replicated"
        target = "/learn/biology/questions/what-does-helicase-do"
        rank = 1

        [[never]]
        source = "subject:Biology"
        target = "/learn/history/questions/*"

        [[keep]]
        source = "/learn/sociology/questions/a-curated-page"

        [dates]
        no_newer = true

        [subjects]
        min_same = 3

    Raises
    ------
    ConfigError
        When the file cannot be read or is not TOML, or a rule has an
        unknown or missing key or a bad value: the message names the file,
        the line of the rule (``FILE:LINE: [[pin]]``) and what is wrong.
        Whether the pages it names exist is checked when the model is fit.
    """
    text = _read_text(path, "the rules")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    reader = _RulesReader(str(path), text)
    unknown = sorted(set(document) - set(RULE_KEYS))
    if unknown:
        raise ConfigError(
            f"{reader.where(unknown[0])}: unknown section {unknown[0]!r}; "
            f"known: {', '.join(RULE_KEYS)}"
        )
    return EditorialRules(
        pins=tuple(Pin(**reader.entry("pin", i, e)) for i, e in reader.tables(document, "pin")),
        nevers=tuple(
            Never(**reader.entry("never", i, e)) for i, e in reader.tables(document, "never")
        ),
        keeps=tuple(Keep(**reader.entry("keep", i, e)) for i, e in reader.tables(document, "keep")),
        **reader.section(document, "dates"),
        **reader.section(document, "subjects"),
        file=str(path),
        section_lines=tuple(
            (name, reader.header_line(name, array=False))
            for name in ("dates", "subjects")
            if name in document
        ),
    )


class _RulesReader:
    """Checks the entries of one rules file, naming each by the line of its header."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.lines = text.splitlines()

    def header_line(self, name: str, number: int = 0, *, array: bool = True) -> int:
        """1-based line of the ``number``-th ``[[name]]`` (or ``[name]``, or ``name =``) header."""
        pattern = (
            re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
            if array
            else re.compile(rf"^\s*(\[\[?\s*{re.escape(name)}\s*\]|{re.escape(name)}\s*[=.])")
        )
        found = [i + 1 for i, line in enumerate(self.lines) if pattern.match(line)]
        return found[number] if number < len(found) else 0

    def where(self, name: str, number: int | None = None) -> str:
        """``FILE:LINE: [[name]]`` for the ``number``-th rule; ``FILE:LINE: [name]`` else."""
        line = self.header_line(name, number or 0, array=number is not None)
        at = f"{self.file}:{line}" if line else self.file
        return f"{at}: [{name}]" if number is None else f"{at}: [[{name}]]"

    def tables(self, document: dict, name: str) -> list[tuple[int, dict]]:
        entries = document.get(name, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{self.where(name)}: write each rule as a [[{name}]] table")
        return list(enumerate(entries))

    def entry(self, name: str, number: int, entry: dict) -> dict[str, Any]:
        """A ``[[name]]`` table's values, checked, with its line."""
        where = self.where(name, number)
        self.check_keys(where, name, entry)
        for key in ("source", "target"):
            if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
                raise ConfigError(f"{where}: {key} must be a url, a glob or subject:NAME")
        if name == "never" and not entry:
            raise ConfigError(f"{where}: give a source, a target or both")
        rank = entry.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ConfigError(f"{where}: rank must be an integer from 1, got {rank!r}")
        return {**entry, "line": self.header_line(name, number)}

    def section(self, document: dict, name: str) -> dict[str, Any]:
        """A ``[name]`` section's values, checked."""
        values = document.get(name, {})
        where = self.where(name)
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: must be a [{name}] table")
        self.check_keys(where, name, values)
        checks = {
            "no_newer": (lambda v: isinstance(v, bool), "true or false"),
            "half_life_days": (
                lambda v: _is_real(v) and 0 < v <= _MOST_DAYS,
                f"a number of days > 0 and at most {_MOST_DAYS:,}",
            ),
            "min_same": (
                lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MOST_LINKS,
                f"an integer from 0 to {_MOST_LINKS:,}",
            ),
            "cross_min_score": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
        }
        for key, value in values.items():
            is_good, expected = checks[key]
            if not is_good(value):
                raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}")
        return values

    def check_keys(self, where: str, name: str, entry: dict) -> None:
        known = RULE_KEYS[name]
        unknown = sorted(set(entry) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(known)}")
        missing = [key for key, required in known.items() if required and key not in entry]
        if missing:
            raise ConfigError(f"{where}: {missing[0]} is required")


#: Bounds of rules' numbers, far past any use: numpy holds them (10**23 links or 10**400
#: days were internal errors).
_MOST_DAYS = 10**9
_MOST_LINKS = 10**6


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
