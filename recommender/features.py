"""Field-weighted TF-IDF: one vectorizer per text field, combined into one matrix.

Each field (title, keywords, answer, ...) gets its own
:class:`~sklearn.feature_extraction.text.TfidfVectorizer`, so that a word's
rarity is judged within the field and a long answer cannot drown out the
title.  Each field's rows are L2-normalised, scaled by the square root of the
field's weight, placed side by side and L2-normalised again.  The dot product
of two rows is then their cosine similarity and, where both pages have every
field, exactly the weighted mean of the per-field cosines::

    score(a, b) = sum_f w_f * cos_f(a, b) / sum_f w_f

The ``keywords`` field is a comma-separated list of tags: its terms are each
whole keyword (``"cognitive dissonance"``) as well as its words, as static
site generators index tags, so that two pages sharing a keyword count for more
than two pages sharing one of its words.

Nothing here knows about files; it takes a DataFrame with one text column per
field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from tqdm.auto import tqdm

__all__ = ["TAG_FIELDS", "FieldFeatures", "TagAnalyzer", "text_column"]

logger = logging.getLogger(__name__)

#: Fields holding comma-separated tags rather than prose.
TAG_FIELDS = frozenset({"keywords"})


def text_column(field: str) -> str:
    """The pages column that holds a field's cleaned text: ``title`` -> ``title_text``."""
    return f"{field}_text"


class FieldFeatures:
    """Fitted field-weighted TF-IDF vectorizers.

    Parameters
    ----------
    weights : mapping of str to float
        Field name to weight; fields with weight 0 are left out.
    ngram_ranges : mapping of str to (int, int), optional
        Word n-grams per field; (1, 1) for fields not named.
    **tfidf : keyword arguments
        Passed to every field's ``TfidfVectorizer`` (``max_df``, ``min_df``,
        ``stop_words``, ``sublinear_tf``, ...).

    Attributes
    ----------
    vectorizers_ : dict of str to TfidfVectorizer
        One fitted vectorizer per field with a positive weight.
    feature_names_ : pandas.DataFrame
        One row per column of the combined matrix: its ``field`` and ``term``.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        ngram_ranges: Mapping[str, tuple[int, int]] | None = None,
        **tfidf,
    ):
        self.weights = dict(weights)
        self.ngram_ranges = dict(ngram_ranges or {})
        self.tfidf = tfidf

    def fit_transform(self, pages: pd.DataFrame, *, progress: bool = False) -> sp.csr_matrix:
        """Fit one vectorizer per field on ``pages[<field>_text]``; return the combined matrix."""
        self.vectorizers_: dict[str, TfidfVectorizer] = {}
        blocks, problems = [], []
        fields = [field for field, weight in self.weights.items() if weight > 0]
        tfidf = dict(self.tfidf)
        if isinstance(tfidf.get("max_df"), float):
            # As a count (the same cut: document frequencies are whole), never under 2,
            # so that on a handful of pages a share does not prune every word.
            tfidf["max_df"] = max(int(tfidf["max_df"] * len(pages)), 2)
        for field in tqdm(fields, desc="vectorising", unit="field", disable=not progress):
            weight = self.weights[field]
            vectorizer = self._vectorizer(field, tfidf)
            try:
                block = vectorizer.fit_transform(pages[text_column(field)])
            except ValueError as exc:  # an empty vocabulary: every word pruned, or no text
                problems.append(f"{field}: {exc}")
                logger.warning("field %r left out: %s", field, exc)
                continue
            logger.info("%s: %d terms", field, block.shape[1])
            self.vectorizers_[field] = vectorizer
            blocks.append(block * np.float32(np.sqrt(weight)))
        if not blocks:
            raise ValueError("no field has any term left: " + "; ".join(problems))
        self.feature_names_ = self._feature_names()
        return self._combine(blocks)

    def transform(self, pages: pd.DataFrame) -> sp.csr_matrix:
        """Vectorise pages with the fitted vocabularies and weights (as the fitted pages were).

        A row equals the row :meth:`fit_transform` gave the same page, as long
        as the vocabularies and document frequencies are those fitted.
        """
        blocks = [
            vectorizer.transform(pages[text_column(field)])
            * np.float32(np.sqrt(self.weights[field]))
            for field, vectorizer in self.vectorizers_.items()
        ]
        return self._combine(blocks)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted vectorizers as plain arrays (no pickle), for :meth:`from_arrays`."""
        arrays: dict[str, np.ndarray] = {}
        for number, (field, vectorizer) in enumerate(self.vectorizers_.items()):
            terms = "\x00".join(vectorizer.get_feature_names_out()).encode("utf-8")
            arrays[f"field{number}_name"] = np.frombuffer(field.encode("utf-8"), dtype=np.uint8)
            arrays[f"field{number}_terms"] = np.frombuffer(terms, dtype=np.uint8)
            arrays[f"field{number}_idf"] = vectorizer.idf_
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray]) -> FieldFeatures:
        """Fit these features from :meth:`to_arrays` (made with the same settings); return self."""
        features = self
        features.vectorizers_ = {}
        number = 0
        while f"field{number}_name" in arrays:
            field = arrays[f"field{number}_name"].tobytes().decode("utf-8")
            terms = arrays[f"field{number}_terms"].tobytes().decode("utf-8").split("\x00")
            vectorizer = features._vectorizer(field)
            vectorizer.set_params(vocabulary={term: i for i, term in enumerate(terms)})
            vectorizer.idf_ = arrays[f"field{number}_idf"]
            features.vectorizers_[field] = vectorizer
            number += 1
        features.feature_names_ = features._feature_names()
        return features

    @staticmethod
    def _combine(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
        matrix = sp.hstack(blocks, format="csr", dtype=np.float32)
        matrix = normalize(matrix, copy=False)
        matrix.sort_indices()
        return matrix

    def _vectorizer(self, field: str, tfidf: Mapping | None = None):
        """An unfitted vectorizer for one field (tags analysed by :class:`TagAnalyzer`)."""
        vectorizer = TfidfVectorizer(
            dtype=np.float32,
            ngram_range=tuple(self.ngram_ranges.get(field, (1, 1))),
            **(self.tfidf if tfidf is None else tfidf),
        )
        if field in TAG_FIELDS:
            words = vectorizer.build_analyzer()
            vectorizer.set_params(analyzer=TagAnalyzer(words), stop_words=None, ngram_range=(1, 1))
        return vectorizer

    def _feature_names(self) -> pd.DataFrame:
        """One row per column of the combined matrix: ``field`` and ``term``."""
        return pd.DataFrame(
            {
                "field": np.concatenate(
                    [[field] * len(v.vocabulary_) for field, v in self.vectorizers_.items()]
                ),
                "term": np.concatenate(
                    [v.get_feature_names_out() for v in self.vectorizers_.values()]
                ),
            }
        )


class TagAnalyzer:
    """Terms of a comma-separated tag list: each whole tag, lowercased, and its words.

    Parameters
    ----------
    words : callable
        The analyzer for the words of one tag (a vectorizer's
        ``build_analyzer()``, so stop words and n-grams apply to them).

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> analyze = TagAnalyzer(TfidfVectorizer(stop_words="english").build_analyzer())
    >>> analyze("Cognitive  Dissonance, the Self")
    ['cognitive dissonance', 'cognitive', 'dissonance', 'the self', 'self']
    """

    def __init__(self, words):
        self.words = words

    def __call__(self, text: str) -> list[str]:
        terms: list[str] = []
        for tag in text.split(","):
            tag = " ".join(tag.lower().split())
            if tag:
                terms.append(tag)
                terms.extend(term for term in self.words(tag) if term != tag)
        return terms
