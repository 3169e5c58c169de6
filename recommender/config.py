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
setting in effect in this format.
"""

from __future__ import annotations

import inspect
import os
import tomllib
from collections.abc import Mapping
from typing import Any

import tomli_w

from .errors import ConfigError
from .model import DEFAULT_FIELD_WEIGHTS, DEFAULT_NGRAM_RANGES, Recommender

__all__ = ["SETTINGS", "check_settings", "effective_settings", "load_settings", "settings_toml"]

#: Keys a settings file may hold: every Recommender parameter but ``progress``
#: (the command line decides on progress bars).
SETTINGS: tuple[str, ...] = tuple(
    name for name in inspect.signature(Recommender).parameters if name != "progress"
)


def load_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML settings file and check it; return the parameters it sets.

    Raises
    ------
    ConfigError
        When the file cannot be read, is not TOML, names an unknown setting
        or gives a bad value, naming the file and the setting.
    """
    try:
        with open(path, "rb") as stream:
            settings = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings: {exc.strerror or exc}") from None
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
    check_settings(settings, source=str(path))
    return settings


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

    A ``None`` value (only ``n_jobs`` may be None) is written as a comment:
    TOML has no null, and leaving the key out means the same.
    """
    plain = {key: value for key, value in settings.items() if value is not None}
    plain = {
        key: list(value) if isinstance(value, tuple) else value for key, value in plain.items()
    }
    text = tomli_w.dumps(plain)
    missing = [key for key, value in settings.items() if value is None]
    return "".join(f"# {key} is not set\n" for key in missing) + text
