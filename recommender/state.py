"""What a nightly run keeps between runs, so that it does not redo yesterday's work.

A state folder (by default ``.recommender`` at the site root) holds, for the
last run that completed:

- each page file's signature: size, modification time and a content hash;
- the pages as parsed, less their long texts (:data:`TEXT_COLUMNS`: only a
  new or changed page is vectorised again, and it is read anew), the bad
  pages, and the related blocks they held;
- the fitted vocabularies and document frequencies, the feature matrix, each
  page's raw candidates and the links; with ``semantic_weight``, each page's
  embedding (so that a run embeds only the new and changed pages) and its
  nearest pages by embedding;
- whether each page's blocks hold its links (a report-only run leaves them
  out of step).

Nothing in it is a pickle: arrays go to ``.npz`` (loaded with
``allow_pickle=False``), tables to Parquet, the header to JSON, so a state
folder planted in a site cannot run code.  It is written atomically: a new
generation folder is written whole, then ``state.json`` is replaced to name
it, then older generations are removed; a killed run leaves the last
complete state.  A state written by another version of the format or of
recommender, or with settings that shape the features and candidates
otherwise, is ignored with one log line and rebuilt, never trusted.  Settings
that only choose the links among the candidates
(:data:`~recommender.model.LINKING_PARAMETERS`: the rules, coverage, ...)
keep it: the next run chooses the links again from the state's candidates.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import __version__
from .corpus import CLEANED_TEXT_COLUMNS, RAW_TEXT_COLUMNS, Corpus
from .errors import UnsafeFileError
from .files import read_regular_file, temporary_name, write_atomic
from .model import (
    DEFAULT_FIELD_WEIGHTS,
    DEFAULT_NGRAM_RANGES,
    LINKING_PARAMETERS,
    REAL_SETTINGS,
    Recommender,
    as_real,
    unsearched_settings,
)
from .rules import EditorialRules

__all__ = [
    "DEFAULT_STATE_FOLDER",
    "STATE_FORMAT",
    "TEXT_COLUMNS",
    "SavedState",
    "SiteChanges",
    "StateDamagedError",
    "StateKey",
    "check_state_folder",
    "file_signatures",
    "read_state",
    "settings_key",
    "state_key",
    "write_state",
]

logger = logging.getLogger(__name__)

#: Version of the state's layout; a state of another format is rebuilt.
STATE_FORMAT = 9  # 9: the blocks as written (8: the pages a keep rule left as they were)
#: Page columns the state leaves out: the long texts, which only vectorising
#: and embedding read, and only for the new and changed pages a run reads anew.
#: Leaving them out keeps the state's page table a sixth of the size (19 MB, not 117 MB).
TEXT_COLUMNS = (*RAW_TEXT_COLUMNS, *CLEANED_TEXT_COLUMNS)
#: The state folder's name at the site root, when no other is given.
DEFAULT_STATE_FOLDER = ".recommender"
_HEADER = "state.json"
#: A generation's folder name (``uuid4().hex``) and the files it holds: only such a folder
#: is ever removed from the state folder (``--state`` may name a folder holding others).
_GENERATION = re.compile(r"[0-9a-f]{32}")
_GENERATION_FILES = frozenset(
    {
        "signatures.npz",
        "model.npz",
        "urls.parquet",
        "links.parquet",
        "pages.parquet",
        "errors.parquet",
        "blocks.parquet",
    }
)
#: The temporary file :func:`~recommender.files.write_atomic` writes before state.json.
_LEFT_HEADER = temporary_name(_HEADER)
#: The largest page file hashed to compare it with the state (a bigger one counts as changed).
_HASHED_BYTES = 1 << 26


#: Libraries whose version shapes what the state holds: the parsed fields (PyYAML), the
#: words and their stems (scikit-learn, PyStemmer), the weights and the candidates.
SHAPING_LIBRARIES = ("scikit-learn", "PyStemmer", "PyYAML", "numpy", "scipy", "sparse-dot-topn")


class StateKey(NamedTuple):
    """What a state is compared with: digests of the settings that shape what it holds
    (:func:`settings_key`) and of those that only choose the links (:func:`links_key`)."""

    search: str
    links: str


def state_key(settings: Mapping[str, Any]) -> StateKey:
    """Both digests of these settings."""
    return StateKey(settings_key(settings), links_key(settings))


def settings_key(settings: Mapping[str, Any]) -> str:
    """A digest of everything that shapes the state's features and candidates: settings
    (all but :data:`~recommender.model.LINKING_PARAMETERS`) and library versions.

    Without ``semantic_weight``, the embedding settings are left out: they
    shape nothing then, so changing them does not force a full run.  After
    an upgrade of any of :data:`SHAPING_LIBRARIES` the state is not trusted:
    a new stemmer's words, say, would not match the stored vocabulary.
    """
    ignored = unsearched_settings(settings.get("semantic_weight"))
    return _described(
        {
            "settings": {k: _as_shaping(k, v) for k, v in settings.items() if k not in ignored},
            "recommender": __version__,
            **{name: _installed_version(name) for name in SHAPING_LIBRARIES},
        }
    )


def links_key(settings: Mapping[str, Any]) -> str:
    """A digest of the settings that choose the links among the candidates
    (:data:`~recommender.model.LINKING_PARAMETERS`; the defaults where not given)."""
    defaults = Recommender().get_params(deep=False)
    return _described(
        {name: _as_shaping(name, settings.get(name, defaults[name])) for name in LINKING_PARAMETERS}
    )


def _described(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_shaping(name: str, value: Any) -> Any:
    """A setting as it shapes the links, whatever its spelling: the default field weights
    and n-grams written out or not, a real number written as an integer or not (a weight
    of 3 or 3.0), an editor's rules without their file's name or lines."""
    if name == "field_weights" and isinstance(value, Mapping):
        return {field: as_real(weight) for field, weight in value.items()}
    if name in REAL_SETTINGS:
        return as_real(value)
    if name == "field_weights" and value is None:
        return DEFAULT_FIELD_WEIGHTS
    if name == "ngram_range" and value is None:
        return DEFAULT_NGRAM_RANGES
    if name == "ngram_range" and isinstance(value, Mapping):
        return {field: list(pair) for field, pair in value.items()}
    if isinstance(value, EditorialRules):
        return {
            "pins": [(pin.source, pin.target, pin.rank) for pin in value.pins],
            "nevers": [(never.source, never.target) for never in value.nevers],
            "keeps": [keep.source for keep in value.keeps],
            **{key: getattr(value, key) for key in _RULE_VALUES},
        }
    return value


#: An editor's rules' settings besides the rules themselves.
_RULE_VALUES = ("no_newer", "half_life_days", "min_same", "cross_min_score")


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class Signatures:
    """Size, modification time (ns) and content hash of each page file, by path."""

    paths: list[str]
    size: np.ndarray
    mtime_ns: np.ndarray
    digest: np.ndarray  # (n, 16) uint8; zeros where not computed


def file_signatures(root: Path, paths: list[str]) -> Signatures:
    """Stat each page (its content hash is left zero); a missing file gets size -1."""
    size = np.full(len(paths), -1, dtype=np.int64)
    mtime = np.zeros(len(paths), dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            info = os.stat(os.path.join(root, path))
        except OSError:
            continue
        size[i], mtime[i] = info.st_size, info.st_mtime_ns
    return Signatures(paths, size, mtime, np.zeros((len(paths), 16), dtype=np.uint8))


def signatures_after_writes(
    root: Path,
    before: Signatures,
    written: Mapping[str, tuple[str | None, tuple[int, int] | None]],
    saved: Signatures | None = None,
    loaded: Mapping[str, str] | None = None,
) -> Signatures:
    """The signatures to save after a run: ``before``'s, the written files' taken anew.

    ``written``: each written file's path, the content hash of the bytes
    written (hex) and the file's size and modification time (ns) right after
    the write (else stat'ed now).  A hash of None: the exporter did not write
    it over the bytes its pages were made from (edited while the run
    computed); such a file is saved as unknown, never the same, so that the
    next run reads it again (its saved fields are those before the edit).
    The size and time from right after the write let an edit made since (the
    writing of a large site takes minutes) be seen next time.  Every other file
    keeps its signature from the start of the run (a file that changed under
    the run then differs from it next time, and is read again), and its
    content hash from the ``saved`` state where its stat has not changed
    since, else the hash of the bytes its pages were made from (``loaded``:
    path to hex hash, as the loader or the state found them), so that a file
    only touched afterwards is not counted as changed; zeros where neither
    knows (such a file, touched later, is read again).
    """
    after = Signatures(
        list(before.paths), before.size.copy(), before.mtime_ns.copy(), before.digest.copy()
    )
    if saved is not None:
        rows = pd.Series(np.arange(len(saved.paths)), index=saved.paths).reindex(after.paths)
        known = rows.notna().to_numpy()
        old = rows.to_numpy(dtype=float)[known].astype(np.int64)
        same = (after.size[known] == saved.size[old]) & (
            after.mtime_ns[known] == saved.mtime_ns[old]
        )
        places = np.flatnonzero(known)[same]
        after.digest[places] = saved.digest[old[same]]
    if loaded:  # the others not known from the state
        for i in np.flatnonzero(~after.digest.any(axis=1)).tolist():
            known = loaded.get(after.paths[i])
            if isinstance(known, str):
                after.digest[i] = np.frombuffer(bytes.fromhex(known), np.uint8)
    for i, path in enumerate(after.paths):
        if path not in written:
            continue
        known, signature = written[path]
        if known is not None and signature is None:
            try:
                info = os.stat(root / path)
                signature = info.st_size, info.st_mtime_ns
            except OSError:
                known = None
        if known is None:  # gone, or its pages were not made from the bytes it was written over
            after.size[i], after.mtime_ns[i], after.digest[i] = -1, 0, 0
        else:
            after.size[i], after.mtime_ns[i] = signature
            after.digest[i] = np.frombuffer(bytes.fromhex(known), np.uint8)
    return after


def _digest(root: Path, path: str, root_real: str) -> np.ndarray:
    """The content hash of a page file; zeros when it cannot be read as a page is (a FIFO,
    a device, a symlink leading outside the site, ``root_real``, a file over
    :data:`_HASHED_BYTES`)."""
    try:
        data = read_regular_file(root / path, root_real, _HASHED_BYTES)
    except (OSError, UnsafeFileError):
        return np.zeros(16, dtype=np.uint8)
    return np.frombuffer(hashlib.blake2b(data, digest_size=16).digest(), dtype=np.uint8)


@dataclass
class SiteChanges:
    """How the site's files differ from the state's: paths new, changed and deleted."""

    new: list[str]
    changed: list[str]
    deleted: list[str]
    n_files: int

    @property
    def count(self) -> int:
        return len(self.new) + len(self.changed) + len(self.deleted)

    @property
    def share(self) -> float:
        """Changed files over the files of the larger of the two sites."""
        return self.count / max(self.n_files, 1)


@dataclass
class SavedState:
    """A state read back: its header, the file signatures and where the rest lies."""

    folder: Path
    generation: str
    signatures: Signatures
    in_sync: np.ndarray  # per path: its blocks hold its links
    same_links: bool = True  # made with the link settings of this run

    def changes(self, root: Path, now: Signatures) -> SiteChanges:
        """Compare the files now with the state's; a file whose stat differs is hashed.

        Its hash goes into ``now``, so that a file touched but not changed keeps its hash
        in the state written after the run (without, every such file counted as changed
        the night after).
        """
        before = pd.Series(np.arange(len(self.signatures.paths)), index=self.signatures.paths)
        rows = before.reindex(now.paths).to_numpy(dtype=float)
        known = ~np.isnan(rows)
        old = rows[known].astype(np.int64)
        same_stat = (now.size[known] == self.signatures.size[old]) & (
            now.mtime_ns[known] == self.signatures.mtime_ns[old]
        )
        stat_differs = np.flatnonzero(~same_stat)  # only these files are hashed
        places = np.flatnonzero(known)[stat_differs]
        root_real = os.path.realpath(root)
        for place in places:
            now.digest[place] = _digest(root, now.paths[place], root_real)
        changed = [  # zeros: a file that cannot be read as a page now, never the same
            now.paths[place]
            for place, row in zip(places, old[stat_differs], strict=True)
            if not now.digest[place].any()
            or not np.array_equal(now.digest[place], self.signatures.digest[row])
        ]
        return SiteChanges(
            new=[p for p, k in zip(now.paths, known, strict=True) if not k],
            changed=changed,
            deleted=sorted(set(self.signatures.paths) - set(now.paths)),
            n_files=max(len(now.paths), len(self.signatures.paths)),
        )

    def read_corpus(self, root: Path, columns: list[str] | None = None) -> Corpus:
        """The pages (less :data:`TEXT_COLUMNS`), bad pages and blocks as the state saw them.

        ``columns``: only these columns of the pages (default all it holds).
        Raises :class:`StateDamagedError` when its files cannot be read.
        """
        with _damage_as(StateDamagedError, self.folder):
            return self._read_corpus(root, columns)

    def _read_corpus(self, root: Path, columns: list[str] | None = None) -> Corpus:
        folder = self.folder / self.generation
        pages = pd.read_parquet(_state_file(folder, "pages.parquet"), columns=columns)
        for column in ("keywords", "related_urls"):
            if column in pages:
                pages[column] = pages[column].map(list)
        errors = pd.read_parquet(_state_file(folder, "errors.parquet"))
        blocks = pd.read_parquet(_state_file(folder, "blocks.parquet"))
        return Corpus(root=root, pages=pages, errors=errors, links=blocks)

    def read_links(self) -> pd.DataFrame:
        """The links of the last run (:data:`~recommender.model.LINK_COLUMNS`)."""
        with _damage_as(StateDamagedError, self.folder):
            return pd.read_parquet(_state_file(self.folder / self.generation, "links.parquet"))

    def read_model(self, settings: Mapping[str, Any]) -> Recommender:
        """The fitted model as it was: vectorizers, features, candidates, links."""
        with _damage_as(StateDamagedError, self.folder):
            return self._read_model(settings)

    def _read_model(self, settings: Mapping[str, Any]) -> Recommender:
        folder = self.folder / self.generation
        model = Recommender(**settings)
        with np.load(_state_file(folder, "model.npz"), allow_pickle=False) as arrays:
            model.features_ = sp.csr_matrix(
                (arrays["data"], arrays["indices"], arrays["indptr"]),
                shape=tuple(arrays["shape"]),
            )
            model.candidates_ = arrays["candidates"]
            model.candidate_scores_ = arrays["candidate_scores"]
            model.copy_group_ = arrays["copy_group"]
            model.features_model_ = model.new_features(*model.check_params()).from_arrays(arrays)
            model.embeddings_ = arrays["embeddings"] if "embeddings" in arrays.files else None
            model.semantic_candidates_ = arrays["semantic_candidates"]
            model.semantic_candidate_scores_ = arrays["semantic_candidate_scores"]
        model.related_ = self.read_links()
        urls = pd.read_parquet(_state_file(folder, "urls.parquet"))
        model.urls_ = pd.Index(urls["url"].astype(str), name="url")
        model.kept_urls_ = model.urls_[urls["kept"].to_numpy(dtype=bool)]
        model.search_params_ = model.search_settings()  # those of the state's key
        model.timings_ = {}
        return model


class StateDamagedError(Exception):
    """A state file that cannot be read back: the run goes on without the state."""


@contextlib.contextmanager
def _damage_as(kind: type[Exception], folder: Path):
    try:
        yield
    except Exception as exc:
        raise kind(f"state in {folder} is damaged ({exc})") from exc


def check_state_folder(folder: Path) -> None:
    """Refuse, before any page is read, a state folder that no run could write.

    Checked where writing would otherwise fail only after the pages were
    rewritten, and again every night: a state folder that is a file (or
    ``/dev/null``), and a folder where ``state.json`` goes.  An empty one
    there is removed (logged); one holding anything is refused, never emptied.

    Raises
    ------
    UnsafeFileError
        Naming the path and what is wrong.
    """
    if folder.exists() and not folder.is_dir():
        raise UnsafeFileError(f"{folder}: cannot be the state folder: not a folder")
    header = folder / _HEADER
    if header.is_dir() and not header.is_symlink():
        try:
            header.rmdir()
        except OSError:
            raise UnsafeFileError(
                f"{header}: a folder where the state's header goes; remove it"
            ) from None
        logger.warning("removed the empty folder %s, where the state's header goes", header)


def read_state(folder: Path, key: StateKey) -> tuple[SavedState | None, str]:
    """The state in ``folder`` if it was made with these search settings, and '' ; else
    None and why not, for the run's summary (and one log line).  Its ``same_links`` says
    whether its links were chosen with these link settings."""
    try:
        header = json.loads(_state_file(folder, _HEADER, max_bytes=1 << 20).read_text("utf-8"))
    except FileNotFoundError:
        logger.info("no state in %s: a full run", folder)
        return None, "no state yet"
    except (OSError, ValueError) as exc:
        logger.warning("state in %s is unreadable (%s): a full run rebuilds it", folder, exc)
        return None, "the state could not be read"
    reason = _distrust(header, key.search)
    if reason:
        logger.warning("state in %s ignored: %s; a full run rebuilds it", folder, reason)
        return None, f"the state was ignored: {reason}"
    try:
        saved = _read_signatures(folder, header["generation"])
    except Exception as exc:  # a damaged file can fail in many ways; none is trusted
        logger.warning("state in %s is damaged (%s): a full run rebuilds it", folder, exc)
        return None, "the state could not be read"
    saved.same_links = header.get("links") == key.links
    return saved, ""


def _distrust(header: Any, key: str) -> str:
    """Why a state header cannot be trusted ('' when it can)."""
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        return f"it is of format {got!r}, this is {STATE_FORMAT}"
    if header.get("recommender") != __version__:
        return f"it was made by recommender {header.get('recommender')}, this is {__version__}"
    if header.get("settings") != key:
        return "it was made with other settings"
    if not isinstance(header.get("generation"), str) or not _GENERATION.fullmatch(
        header["generation"]
    ):
        return "it names no generation"
    return ""


def _read_signatures(folder: Path, generation: str) -> SavedState:
    with np.load(_state_file(folder / generation, "signatures.npz"), allow_pickle=False) as arrays:
        paths = (
            arrays["paths"].tobytes().decode("utf-8").split("\x00") if arrays["size"].size else []
        )
        signatures = Signatures(paths, arrays["size"], arrays["mtime_ns"], arrays["digest"])
        in_sync = arrays["in_sync"]
    lengths = (signatures.size, signatures.mtime_ns, signatures.digest, in_sync)
    if len({len(paths), *(len(values) for values in lengths)}) != 1:
        raise ValueError("signature arrays of different lengths")
    return SavedState(folder, generation, signatures, in_sync)


def write_state(
    folder: Path,
    key: StateKey,
    signatures: Signatures,
    in_sync: np.ndarray,
    corpus: Corpus,
    model: Recommender,
) -> None:
    """Write a new generation of the state, then point ``state.json`` at it."""
    generation = uuid.uuid4().hex
    target = folder / generation
    target.mkdir(parents=True)
    try:
        _write_generation(target, signatures, in_sync, corpus, model)
        header = {
            "format": STATE_FORMAT,
            "recommender": __version__,
            "settings": key.search,
            "links": key.links,
            "generation": generation,
            "pages": len(corpus.pages),
        }
        header_text = json.dumps(header, indent=1).encode("utf-8")
        write_atomic(folder / _HEADER, header_text, follow_symlinks=False)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    for old in folder.iterdir():
        if old.name != generation and _is_generation(old):
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
        elif _LEFT_HEADER.fullmatch(old.name):
            with contextlib.suppress(OSError):  # a killed run's unfinished state.json
                if stat.S_ISREG(os.lstat(old).st_mode):  # (gone meanwhile: nothing to do)
                    old.unlink()


def _is_generation(path: Path) -> bool:
    """Whether ``path`` is a generation this module wrote: a real folder named as one,
    holding nothing but a generation's files.  Nothing else in a state folder is removed."""
    try:
        if not _GENERATION.fullmatch(path.name) or not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        return all(entry.name in _GENERATION_FILES for entry in os.scandir(path))
    except OSError:
        return False


def _state_file(folder: Path, name: str, max_bytes: int | None = None) -> Path:
    """``folder / name`` where it is a regular file (and at most ``max_bytes``), and, in a
    generation, where that is a real folder; else ``OSError``: a FIFO, a device, a folder
    or a symlink planted in the state would hang the run, never end, or lead elsewhere."""
    path = folder / name
    if name != _HEADER and not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise OSError(f"{folder} is not a folder")
    status = os.lstat(path)
    if not stat.S_ISREG(status.st_mode):
        raise OSError(f"{path} is not a regular file")
    if max_bytes is not None and status.st_size > max_bytes:
        raise OSError(f"{path} is over {max_bytes:,} bytes")
    return path


def _write_generation(
    target: Path,
    signatures: Signatures,
    in_sync: np.ndarray,
    corpus: Corpus,
    model: Recommender,
) -> None:
    np.savez(
        target / "signatures.npz",
        paths=np.frombuffer("\x00".join(signatures.paths).encode("utf-8"), dtype=np.uint8),
        size=signatures.size,
        mtime_ns=signatures.mtime_ns,
        digest=signatures.digest,
        in_sync=np.asarray(in_sync, dtype=bool),
    )
    features = model.features_
    np.savez(
        target / "model.npz",
        data=features.data,
        indices=features.indices,
        indptr=features.indptr,
        shape=np.array(features.shape),
        candidates=model.candidates_,
        candidate_scores=model.candidate_scores_,
        copy_group=model.copy_group_,
        semantic_candidates=model.semantic_candidates_,
        semantic_candidate_scores=model.semantic_candidate_scores_,
        **model.features_model_.to_arrays(),
        **({} if model.embeddings_ is None else {"embeddings": model.embeddings_}),
    )
    kept = model.urls_.isin(getattr(model, "kept_urls_", ()))
    pd.DataFrame({"url": model.urls_, "kept": kept}).to_parquet(target / "urls.parquet")
    model.related_.to_parquet(target / "links.parquet")
    corpus.pages.drop(columns=list(TEXT_COLUMNS), errors="ignore").to_parquet(
        target / "pages.parquet"
    )
    corpus.errors.to_parquet(target / "errors.parquet")
    corpus.links.to_parquet(target / "blocks.parquet")
