"""Field-weighted term weights over a page's text fields, in one matrix.

Two ways to combine the fields (``combine``):

``"concatenate"`` (the default) puts every field in one vector space: a term's
count in a page is the weighted sum of its counts in each field (title x3,
keywords x2, answer x1 count a title word three times), then a term weight
(:class:`TermWeighting`), one idf over the site and L2 normalisation.  A title
word then also matches the same word in another page's answer.  Measured
against people's related pairs on three labelled question sites, one space
beat one space per field by 10-30% in recall@5 (``benchmarks/relevance.py``).

The term weight by default is BM25's saturating, length-normalised count
(``k1 = 5``, ``b = 0.75``) times the square root of the idf.  Against
sublinear tf times the full idf (scikit-learn's TF-IDF) it raised recall@5 on
the three labelled sites by 4-7%: a long page's many words no longer crowd out
a short page's few, and rarity weighs less, so that two pages sharing several
ordinary words of their topic beat two sharing one odd word.

``"per_field"`` gives each field (title, keywords, answer, ...) its own
term weights and idf, so that a word's rarity is judged within the field and
a long answer cannot drown out the title.  Each field's rows are
L2-normalised, scaled by the square root of the field's weight, placed side
by side and L2-normalised again.  The dot product of two rows is then their
cosine similarity and, where both pages have every field, exactly the
weighted mean of the per-field cosines::

    score(a, b) = sum_f w_f * cos_f(a, b) / sum_f w_f

The ``keywords`` field is a comma-separated list of tags: its terms are each
whole keyword (``"cognitive dissonance"``) as well as its words, as static
site generators index tags, so that two pages sharing a keyword count for more
than two pages sharing one of its words.

With ``stem`` (the default) words are reduced to their Snowball English
stem after stop words are dropped (``proteins`` and ``protein`` are one term),
which raised recall@5 on the labelled sites by up to 7%.

Nothing here knows about files; it takes a DataFrame with one text column per
field.
"""

from __future__ import annotations

import logging
import re
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
)
from sklearn.preprocessing import normalize
from tqdm.auto import tqdm

from .matrices import ENTRIES_AT_A_TIME, entries_per_column
from .workers import PARALLEL_MIN_PAGES, run_chunks

__all__ = [
    "COMBINE_MODES",
    "TAG_FIELDS",
    "TF_WEIGHTS",
    "FieldFeatures",
    "StemmingTokenizer",
    "TagAnalyzer",
    "TermWeighting",
    "text_column",
]

logger = logging.getLogger(__name__)

#: Fields holding comma-separated tags rather than prose.
TAG_FIELDS = frozenset({"keywords"})
#: Ways to combine the fields: one vector space, or one space per field.
COMBINE_MODES = ("concatenate", "per_field")
#: Term-frequency weights of :class:`TermWeighting`.
TF_WEIGHTS = ("bm25", "log", "raw")


def text_column(field: str) -> str:
    """The pages column that holds a field's cleaned text: ``title`` -> ``title_text``."""
    return f"{field}_text"


class FieldFeatures:
    """Fitted field-weighted TF-IDF.

    Parameters
    ----------
    weights : mapping of str to float
        Field name to weight; fields with weight 0 are left out.
    ngram_ranges : mapping of str to (int, int), optional
        Word n-grams per field; (1, 1) for fields not named.
    combine : {"concatenate", "per_field"}, default "concatenate"
        One vector space where a term's count is the weighted sum of its
        counts in the fields, or one TF-IDF per field, each L2-normalised and
        scaled by the square root of its weight (see the module docstring).
    stem : bool, default True
        Reduce words to their Snowball English stem (after dropping stop words).
    n_jobs : int or None, default None
        Worker processes that count the terms while fitting, as in joblib;
        the result is the same for any number.
    tf, bm25_k1, bm25_b, idf_power
        The term weight: see :class:`TermWeighting`.
    **counting : keyword arguments
        Counting settings (``max_df``, ``min_df``, ``stop_words``, ...), as
        for ``CountVectorizer``; a float ``max_df`` is applied as a number of
        pages, never under 2.

    Attributes
    ----------
    vectorizers_ : dict of str to CountVectorizer
        One fitted counting vectorizer per field with a positive weight and
        any term.
    counting_ : dict
        The counting settings as applied (a float ``max_df`` as a number of pages).
    weighting_ : TermWeighting
        The fitted term weights of the one space (``combine="concatenate"``);
        ``weightings_``, one per field, with ``"per_field"``.
    field_columns_ : list of ndarray
        With ``combine="concatenate"``, per field the column of each of its
        terms in the one space (-1 for a term pruned): how :meth:`transform`
        sums the fields' counts without rebuilding their union vocabulary.
    feature_names_ : pandas.DataFrame
        One row per column of the combined matrix: its ``field`` and ``term``.
        With ``combine="concatenate"`` the field is the fields joined by
        ``+`` (``"title+keywords+answer"``): a column holds a term of any field.
    arrays_read_ : dict of str to ndarray or None
        The arrays :meth:`from_arrays` read (None after a fit).
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        ngram_ranges: Mapping[str, tuple[int, int]] | None = None,
        *,
        combine: str = "concatenate",
        stem: bool = True,
        tf: str = "bm25",
        bm25_k1: float = 5.0,
        bm25_b: float = 0.75,
        idf_power: float = 0.5,
        n_jobs: int | None = None,
        **counting,
    ):
        self.n_jobs = n_jobs
        self.weights = dict(weights)
        self.ngram_ranges = dict(ngram_ranges or {})
        self.combine = combine
        self.stem = stem
        self.tf = tf
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.idf_power = idf_power
        self.counting = counting

    def fit_transform(self, pages: pd.DataFrame, *, progress: bool = False) -> sp.csr_matrix:
        """Fit on ``pages[<field>_text]``; return one L2-normalised row per page.

        The same as :meth:`fit_counts`, then :meth:`fit_weights`.
        """
        return self.fit_weights(self.fit_counts(pages, progress=progress))

    def fit_counts(self, pages: pd.DataFrame, *, progress: bool = False) -> list[sp.csr_matrix]:
        """The first half of :meth:`fit_transform`, the only one that reads the texts.

        Fits each field's counting vectorizer on ``pages[<field>_text]`` and
        returns the fields' counts, for :meth:`fit_weights`.  A caller done with
        the texts may free them in between (the nightly job at a million pages).
        """
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {self.combine!r}")
        self.arrays_read_ = None  # fitted anew: to_arrays describes this fit
        counting = dict(self.counting)
        if isinstance(counting.get("max_df"), float):
            # As a count (the same cut: document frequencies are whole), never under 2,
            # so that on a handful of pages a share does not prune every word.
            counting["max_df"] = max(int(counting["max_df"] * len(pages)), 2)
        self.counting_ = counting
        self.vectorizers_ = {}
        blocks, problems = [], []
        fields = [field for field, weight in self.weights.items() if weight > 0]
        for field in tqdm(fields, desc="vectorising", unit="field", disable=not progress):
            vectorizer = self._field_vectorizer(field, counting)
            try:
                block = vectorizer.fit_transform(pages[text_column(field)])
            except ValueError as exc:  # an empty vocabulary: every word pruned, or no text
                problems.append(f"{field}: {exc}")
                logger.warning("field %r left out: %s", field, exc)
                continue
            logger.info("%s: %d terms", field, block.shape[1])
            self.vectorizers_[field] = vectorizer
            blocks.append(block)
        if not blocks:
            raise ValueError("no field has any term left: " + "; ".join(problems))
        return blocks

    def fit_weights(self, blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
        """The second half of :meth:`fit_transform`: the term weights fitted on the
        fields' counts from :meth:`fit_counts`; one L2-normalised row per page.

        With ``combine="concatenate"``, ``blocks`` is emptied once the counts are
        summed, so that their memory is freed.
        """
        if self.combine == "per_field":
            self.weightings_ = [self._weighting().fit(block) for block in blocks]
            self.feature_names_ = self._feature_names()
            return self._side_by_side(blocks)
        return self._normalise(self._one_space(blocks, self.counting_))

    def _weighting(self) -> TermWeighting:
        return TermWeighting(
            tf=self.tf, bm25_k1=self.bm25_k1, bm25_b=self.bm25_b, idf_power=self.idf_power
        )

    def _side_by_side(self, blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
        """Per field: weigh and normalise each field's counts, scale by sqrt(weight), join."""
        fields = zip(self.vectorizers_, self.weightings_, blocks, strict=True)
        matrix = sp.hstack(
            [
                self._normalise(weighting.transform(block)) * np.float32(np.sqrt(self.weights[f]))
                for f, weighting, block in fields
            ],
            format="csr",
        )
        return self._normalise(matrix)

    def _field_vectorizer(self, field: str, counting: dict) -> CountVectorizer:
        """An unfitted counting vectorizer for one field."""
        options = dict(counting)
        stop_words = options.pop("stop_words", None)
        if self.combine == "concatenate":
            # Document frequencies are pruned once over the combined counts.
            options = {k: v for k, v in options.items() if k not in ("max_df", "min_df")}
        vectorizer = _CountVectorizer(dtype=np.float32, **options)
        if self.stem:
            vectorizer.set_params(
                tokenizer=StemmingTokenizer(stop_words), token_pattern=None, stop_words=None
            )
        else:
            vectorizer.set_params(stop_words=stop_words)
        vectorizer.set_params(ngram_range=tuple(self.ngram_ranges.get(field, (1, 1))))
        vectorizer.n_jobs = self.n_jobs
        if field in TAG_FIELDS:
            words = vectorizer.build_analyzer()
            vectorizer.set_params(
                analyzer=TagAnalyzer(words), ngram_range=(1, 1), tokenizer=None, stop_words=None
            )
        return vectorizer

    def _one_space(self, blocks: list[sp.csr_matrix], counting: dict) -> sp.csr_matrix:
        """Weighted sum of the fields' counts over their union vocabulary, then weighed.

        Empties ``blocks`` once they are summed, so that their memory is freed.
        """
        names = [v.get_feature_names_out() for v in self.vectorizers_.values()]
        vocabulary, columns = _union_columns(names)
        counts = self._weighted_counts(blocks, columns, len(vocabulary))
        blocks.clear()  # the fields' own counts are summed: let them go before weighing
        keep = _document_frequency_mask(
            counts, counting.get("min_df", 1), counting.get("max_df", 1.0)
        )
        if not keep.any():
            raise ValueError("no field has any term left: every term pruned by min_df/max_df")
        self.kept_terms_ = keep
        self.field_columns_ = _kept_columns(columns, keep)
        kept = counts[:, keep]
        del counts
        self.weighting_ = self._weighting().fit(kept)
        self.feature_names_ = pd.DataFrame(
            {"field": "+".join(self.vectorizers_), "term": vocabulary[keep]}
        )
        return self.weighting_.transform(kept)

    def _weighted_counts(
        self, blocks: list[sp.csr_matrix], columns: list[np.ndarray], width: int
    ) -> sp.csr_matrix:
        """Each page's weighted counts summed over the fields: ``columns[i][j]`` is the
        column of field ``i``'s term ``j`` among ``width`` columns (-1: left out)."""
        counts = sp.csr_matrix((blocks[0].shape[0], width), dtype=np.float32)
        # Weights scaled so that the lightest field counts 1 per word: a sublinear tf
        # (1 + log tf) is then never negative.
        lightest = min(self.weights[field] for field in self.vectorizers_)
        for field, block, term_columns in zip(self.vectorizers_, blocks, columns, strict=True):
            terms = np.flatnonzero(term_columns >= 0)
            remap = sp.csr_matrix(
                (np.ones(len(terms), np.float32), (terms, term_columns[terms])),
                shape=(block.shape[1], width),
            )
            counts = counts + (block @ remap) * np.float32(self.weights[field] / lightest)
        return counts

    def transform(self, pages: pd.DataFrame) -> sp.csr_matrix:
        """Vectorise pages with the fitted vocabularies and document frequencies.

        A page's row equals the row :meth:`fit_transform` gave it, as long as
        the vocabularies and document frequencies are those fitted (a nightly
        run vectorises only new and changed pages this way).
        """
        blocks = [v.transform(pages[text_column(f)]) for f, v in self.vectorizers_.items()]
        if self.combine == "per_field":
            return self._side_by_side(blocks)
        if not hasattr(self, "field_columns_"):  # fitted by a version without it: rebuilt once
            names = [v.get_feature_names_out() for v in self.vectorizers_.values()]
            self.field_columns_ = _kept_columns(_union_columns(names)[1], self.kept_terms_)
        counts = self._weighted_counts(blocks, self.field_columns_, int(self.kept_terms_.sum()))
        counts.sort_indices()  # as the fitted rows: the same sums, in the same order
        return self._normalise(self.weighting_.transform(counts))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted vocabularies and term weights as plain arrays (no pickle)."""
        if getattr(self, "arrays_read_", None) is not None:  # read by from_arrays: as they were
            return dict(self.arrays_read_)
        arrays: dict[str, np.ndarray] = {}
        for number, (field, vectorizer) in enumerate(self.vectorizers_.items()):
            terms = "\x00".join(vectorizer.get_feature_names_out()).encode("utf-8")
            arrays[f"field{number}_name"] = np.frombuffer(field.encode("utf-8"), dtype=np.uint8)
            arrays[f"field{number}_terms"] = np.frombuffer(terms, dtype=np.uint8)
            if self.combine == "per_field":
                arrays |= self.weightings_[number].to_arrays(f"field{number}_")
        if self.combine != "per_field":  # the union's columns too: finding them again is slow
            arrays["kept_terms"] = self.kept_terms_
            for number, columns in enumerate(self.field_columns_):
                arrays[f"field{number}_columns"] = columns
            terms = "\x00".join(self.feature_names_["term"]).encode("utf-8")
            arrays["kept_names"] = np.frombuffer(terms, dtype=np.uint8)
            arrays |= self.weighting_.to_arrays()
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray]) -> FieldFeatures:
        """Fit these features from :meth:`to_arrays` (made with the same settings); return self.

        The arrays are kept, and :meth:`to_arrays` gives them back: a nightly
        run writes its state without joining the vocabularies again.
        """
        self.arrays_read_ = {
            name: arrays[name]
            for name in arrays
            if name.startswith("field") or name in _ONE_SPACE_ARRAYS
        }
        self.vectorizers_ = {}
        number = 0
        while f"field{number}_name" in arrays:
            field = arrays[f"field{number}_name"].tobytes().decode("utf-8")
            terms = arrays[f"field{number}_terms"].tobytes().decode("utf-8").split("\x00")
            vectorizer = self._field_vectorizer(field, dict(self.counting))
            vectorizer.set_params(vocabulary={term: i for i, term in enumerate(terms)})
            self.vectorizers_[field] = vectorizer
            number += 1
        if self.combine == "per_field":
            self.weightings_ = [
                self._weighting().from_arrays(arrays, f"field{i}_") for i in range(number)
            ]
            self.feature_names_ = self._feature_names()
            return self
        self.kept_terms_ = arrays["kept_terms"]
        self.weighting_ = self._weighting().from_arrays(arrays)
        self.field_columns_ = [arrays[f"field{i}_columns"] for i in range(number)]
        terms = arrays["kept_names"].tobytes().decode("utf-8").split("\x00")
        self.feature_names_ = pd.DataFrame(
            {"field": "+".join(self.vectorizers_), "term": np.array(terms, dtype=object)}
        )
        return self

    @staticmethod
    def _normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
        matrix = normalize(_with_values(matrix, matrix.data.astype(np.float32)), copy=False)
        matrix.sort_indices()
        return matrix

    def _feature_names(self) -> pd.DataFrame:
        """One row per column of the per-field matrix: ``field`` and ``term``."""
        # get_feature_names_out, not vocabulary_: a vectorizer read back from the
        # state (from_arrays) has a vocabulary parameter and no vocabulary_ yet
        terms = {field: v.get_feature_names_out() for field, v in self.vectorizers_.items()}
        return pd.DataFrame(
            {
                "field": np.concatenate([[field] * len(t) for field, t in terms.items()]),
                "term": np.concatenate(list(terms.values())),
            }
        )


def _union_columns(field_terms: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The fields' union vocabulary (sorted), and per field each term's column in it."""
    vocabulary, column_of_term = np.unique(np.concatenate(field_terms), return_inverse=True)
    ends = np.cumsum([len(terms) for terms in field_terms])[:-1]
    return vocabulary, np.split(column_of_term.ravel(), ends)


def _kept_columns(columns: list[np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
    """``columns`` (into the union vocabulary) as columns among the kept terms; -1 where pruned."""
    kept_column = np.where(keep, np.cumsum(keep) - 1, -1)
    return [kept_column[field_columns] for field_columns in columns]


def _document_frequency_mask(counts: sp.csr_matrix, min_df: float, max_df: float) -> np.ndarray:
    """Columns whose number of pages is within [min_df, max_df] (shares of pages for floats)."""
    n = counts.shape[0]
    frequency = entries_per_column(counts)
    low = min_df * n if isinstance(min_df, float) else min_df
    high = max_df * n if isinstance(max_df, float) else max_df
    return (frequency >= low) & (frequency <= high)


class _FastCounting:
    """Counts terms as :class:`CountVectorizer` does, several times faster.

    Each document's terms are mapped to columns in C (``map``), and repeated
    terms are summed by scipy (``sum_duplicates``) a block of documents at a
    time, instead of a Python dictionary per document.  Same vocabulary, same
    matrix.
    """

    _BLOCK = 8192  # documents per block: bounds the memory of the uncounted terms
    #: Worker processes for fitting, as in joblib (set by :class:`FieldFeatures`).
    n_jobs: int | None = None

    def _count_vocab(self, raw_documents, fixed_vocab):
        workers = joblib.effective_n_jobs(self.n_jobs)
        sized = hasattr(raw_documents, "__len__") and hasattr(raw_documents, "__getitem__")
        if not fixed_vocab and workers > 1 and sized and len(raw_documents) >= PARALLEL_MIN_PAGES:
            vocabulary, blocks = self._count_in_workers(raw_documents)
        else:
            vocabulary, blocks = _count_chunk(
                raw_documents, self, self.vocabulary_ if fixed_vocab else None
            )
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        width = len(vocabulary)
        if not blocks:
            return vocabulary, sp.csr_matrix((0, width), dtype=self.dtype)
        return vocabulary, _stacked(blocks, width, self.dtype)

    def _count_in_workers(self, documents) -> tuple[dict[str, int], list[sp.csr_matrix]]:
        """Chunks counted by worker processes, their columns renumbered as one process would.

        Columns are numbered in the order terms are first met, chunk after chunk,
        so the vocabulary and the matrix are those of a count in one process.
        """
        chunks, results = run_chunks(_count_chunk, documents, self, n_jobs=self.n_jobs)
        vocabulary: dict[str, int] = {}
        blocks = []
        for _, (terms, chunk_blocks) in zip(chunks, results, strict=True):
            setdefault = vocabulary.setdefault
            renumber = np.array([setdefault(term, len(vocabulary)) for term in terms], np.int64)
            fits = len(vocabulary) < np.iinfo(np.int32).max
            for block in chunk_blocks:
                # in the block's own index type (int32 from a worker) where the columns fit:
                # as int64 the indices of every block held until stacked took twice the memory
                kind = block.indptr.dtype if fits else np.int64
                block.indices = renumber[block.indices].astype(kind, copy=False)
                block.has_sorted_indices = False
                blocks.append(block)
        return vocabulary, blocks

    def _limit_features(self, X, vocabulary, high=None, low=None, limit=None):
        """:class:`CountVectorizer`'s, without copies of the whole counts: the document
        frequencies are counted a slice of entries at a time (``np.bincount`` of every
        column index made an int64 copy of them) and the pruned entries dropped in place
        (a column selection held more than the counts twice).  Same vocabulary, same
        matrix; at a million pages counting peaked 1.7 GiB above the stacked counts.
        """
        if limit is not None or (high is None and low is None):
            return super()._limit_features(X, vocabulary, high, low, limit)
        frequencies = entries_per_column(X)
        kept = np.ones(len(frequencies), dtype=bool)
        if high is not None:
            kept &= frequencies <= high
        if low is not None:
            kept &= frequencies >= low
        if kept.all():  # as in one space, where the fields' counts are pruned together
            return X
        if not kept.any():
            raise ValueError(
                "After pruning, no terms remain. Try a lower min_df or a higher max_df."
            )
        new_column = np.cumsum(kept) - 1
        for term, old in list(vocabulary.items()):
            if kept[old]:
                vocabulary[term] = new_column[old]
            else:
                del vocabulary[term]
        return _kept_entries(X, np.where(kept, new_column, -1), int(kept.sum()))

    def _sort_features(self, X, vocabulary):
        """:class:`CountVectorizer`'s, the column indices renumbered in place a slice at a
        time (``take`` made an int64 copy of them all)."""
        new_column = np.empty(len(vocabulary), dtype=X.indices.dtype)
        for new, (term, old) in enumerate(sorted(vocabulary.items())):
            vocabulary[term] = new
            new_column[old] = new
        for start in range(0, X.nnz, _SLICE):
            part = X.indices[start : start + _SLICE]
            part[...] = new_column[part]
        return X


def _stacked(blocks: list[sp.csr_matrix], width: int, dtype: type) -> sp.csr_matrix:
    """The blocks' rows one under the other, ``width`` columns, indices sorted.

    Empties ``blocks``, each block freed once copied: stacking them all at once
    held the counts twice.
    """
    nnz, n_rows = sum(b.nnz for b in blocks), sum(b.shape[0] for b in blocks)
    index_dtype = np.int32 if max(nnz, width) < np.iinfo(np.int32).max else np.int64
    data, indices = np.empty(nnz, dtype), np.empty(nnz, index_dtype)
    indptr = np.zeros(n_rows + 1, index_dtype)
    at = row = 0
    blocks.reverse()
    while blocks:
        block = blocks.pop()
        data[at : at + block.nnz] = block.data
        indices[at : at + block.nnz] = block.indices
        indptr[row + 1 : row + 1 + block.shape[0]] = block.indptr[1:] + at
        at, row = at + block.nnz, row + block.shape[0]
        del block
    matrix = sp.csr_matrix((data, indices, indptr), shape=(n_rows, width))
    matrix.sort_indices()
    return matrix


def _count_chunk(documents, vectorizer, fixed: dict[str, int] | None = None):
    """Count the terms of some documents in blocks: their vocabulary and the blocks' counts.

    With ``fixed``, only its terms are counted, in its columns; otherwise the
    vocabulary is grown, terms numbered in the order first met.
    """
    vocabulary: dict[str, int] = fixed if fixed is not None else defaultdict()
    if fixed is None:
        vocabulary.default_factory = vocabulary.__len__
    analyze = vectorizer.build_analyzer()
    blocks, remaining = [], iter(documents)  # a block at a time: the texts are never all copied
    while block := list(islice(remaining, _FastCounting._BLOCK)):
        blocks.append(_count_block(block, analyze, vocabulary, fixed is not None, vectorizer.dtype))
    return dict(vocabulary), blocks


def _count_block(
    documents: list, analyze, vocabulary, fixed_vocab: bool, dtype: type
) -> sp.csr_matrix:
    """One block's term counts; columns as numbered in ``vocabulary`` (grown unless fixed).

    Counted in ``dtype`` (the vectorizer's): whole counts are exact in float32
    up to 2**24, and the blocks are half the size to send and stack.
    """
    columns: array = array("l")
    ends = [0]
    for document in documents:
        terms = analyze(document)
        if fixed_vocab:
            columns.extend([vocabulary[t] for t in terms if t in vocabulary])
        else:
            columns.extend(map(vocabulary.__getitem__, terms))
        ends.append(len(columns))
    found = np.frombuffer(columns, dtype=np.int64) if columns else np.zeros(0, np.int64)
    matrix = sp.csr_matrix(
        (np.ones(len(found), dtype=dtype), found, np.asarray(ends, dtype=np.int64)),
        shape=(len(documents), max(len(vocabulary), int(found.max(initial=-1)) + 1)),
    )
    matrix.sum_duplicates()
    return matrix


#: Entries of a count matrix handled at a time where a whole-matrix step would copy them.
_SLICE = ENTRIES_AT_A_TIME


def _kept_entries(X: sp.csr_matrix, new_column: np.ndarray, width: int) -> sp.csr_matrix:
    """``X`` with only the entries whose column has a new number (``new_column`` >= 0),
    in their order, renumbered: moved to the front in place a slice at a time, then
    copied once to their size.  ``X`` is not usable after."""
    data, indices, indptr = X.data, X.indices, X.indptr
    per_row = np.zeros(X.shape[0], dtype=np.int64)
    at = 0
    for start in range(0, X.nnz, _SLICE):
        columns = new_column[indices[start : start + _SLICE]]
        keep = columns >= 0
        rows = np.searchsorted(indptr, np.flatnonzero(keep) + start, side="right") - 1
        per_row += np.bincount(rows, minlength=X.shape[0])
        n = len(rows)
        data[at : at + n] = data[start : start + len(keep)][keep]
        indices[at : at + n] = columns[keep]
        at += n
    new_indptr = np.zeros(X.shape[0] + 1, dtype=indptr.dtype)
    np.cumsum(per_row, out=new_indptr[1:])
    return sp.csr_matrix(
        (data[:at].copy(), indices[:at].copy(), new_indptr), shape=(X.shape[0], width)
    )


class _CountVectorizer(_FastCounting, CountVectorizer):
    pass


def _with_values(X: sp.csr_matrix, values: np.ndarray) -> sp.csr_matrix:
    """A CSR matrix of ``X``'s shape and entries holding ``values``.

    Where ``X``'s columns are sorted in each row, the new matrix shares its
    index arrays (nothing will sort them in place); else they are copied.
    """
    if X.has_sorted_indices:
        shared = sp.csr_matrix((values, X.indices, X.indptr), shape=X.shape, copy=False)
        shared.has_sorted_indices = True
        return shared
    return sp.csr_matrix((values, X.indices.copy(), X.indptr.copy()), shape=X.shape)


def _saturate(values: np.ndarray, indptr: np.ndarray, scale: np.ndarray, k1: float) -> None:
    """BM25's ``tf * (k1 + 1) / (tf + scale)`` in place, ``scale`` per row; rows taken
    about :data:`_SLICE` entries at a time, so that no array as long as ``values``
    is made."""
    rows = len(indptr) - 1
    first = 0
    while first < rows:
        last = int(np.searchsorted(indptr, indptr[first] + _SLICE, side="right")) - 1
        last = min(max(last, first + 1), rows)
        start, stop = indptr[first], indptr[last]
        saturation = np.repeat(scale[first:last], np.diff(indptr[first : last + 1]))
        saturation += values[start:stop]
        values[start:stop] *= k1 + 1
        values[start:stop] /= saturation
        first = last


class TermWeighting:
    """Each term's weight in a page: a term-frequency weight times a power of its idf.

    Parameters
    ----------
    tf : {"bm25", "log", "raw"}, default "bm25"
        ``"bm25"``: Okapi BM25's saturating, length-normalised count,
        ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean_length))``;
        ``"log"``: ``1 + log(tf)`` (scikit-learn's ``sublinear_tf``);
        ``"raw"``: the count itself.
    bm25_k1 : float, default 5.0
        How slowly repeated terms saturate (``"bm25"`` only).
    bm25_b : float in [0, 1], default 0.75
        How much a long page's counts are scaled down (``"bm25"`` only).
    idf_power : float, default 0.5
        The smoothed idf, ``1 + log((1 + n) / (1 + df))`` as in scikit-learn,
        raised to this power: 1 is classic TF-IDF, 0 ignores rarity.

    Attributes
    ----------
    idf_ : ndarray of float64
        Each column's idf, raised to ``idf_power``.
    mean_length_ : float
        The mean of the pages' summed counts (BM25's ``mean_length``).

    Examples
    --------
    >>> counts = sp.csr_matrix(np.array([[2.0, 0.0], [1.0, 1.0]]))
    >>> TermWeighting(tf="raw", idf_power=0).fit(counts).transform(counts).toarray().tolist()
    [[2.0, 0.0], [1.0, 1.0]]
    """

    def __init__(
        self, *, tf: str = "bm25", bm25_k1: float = 5.0, bm25_b: float = 0.75, idf_power=0.5
    ):
        if tf not in TF_WEIGHTS:
            raise ValueError(f"tf must be one of {TF_WEIGHTS}, got {tf!r}")
        self.tf = tf
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.idf_power = idf_power

    def fit(self, counts: sp.csr_matrix) -> TermWeighting:
        """Learn the idf of each column and the mean page length; return self."""
        pages = counts.shape[0]
        frequency = entries_per_column(counts)
        self.idf_ = (np.log((1 + pages) / (1 + frequency)) + 1) ** self.idf_power
        self.mean_length_ = float(counts.sum() / pages) if pages else 1.0
        return self

    def transform(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """The weighted matrix (float64, not normalised); ``counts`` is left as it is.

        Computed in place, in one float64 copy of the counts' values (their
        column indices are shared where they are sorted, so never moved).
        """
        weighted = _with_values(counts, counts.data.astype(np.float64))
        values = weighted.data
        if self.tf == "log":
            np.log(values, out=values)
            values += 1
        elif self.tf == "bm25":
            lengths = np.asarray(weighted.sum(axis=1)).ravel() / (self.mean_length_ or 1.0)
            scale = self.bm25_k1 * (1 - self.bm25_b + self.bm25_b * lengths)
            _saturate(values, weighted.indptr, scale, self.bm25_k1)
        for start in range(0, len(values), _SLICE):  # idf gathered a slice at a time
            stop = start + _SLICE
            values[start:stop] *= self.idf_[weighted.indices[start:stop]]
        return weighted

    #: The names of :meth:`to_arrays` (after its prefix).
    ARRAY_NAMES = ("idf", "mean_length")

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        idf, mean_length = (prefix + name for name in self.ARRAY_NAMES)
        return {idf: self.idf_, mean_length: np.array([self.mean_length_])}

    def from_arrays(self, arrays: Mapping[str, np.ndarray], prefix: str = "") -> TermWeighting:
        idf, mean_length = (prefix + name for name in self.ARRAY_NAMES)
        self.idf_ = arrays[idf]
        self.mean_length_ = float(arrays[mean_length][0])
        return self


class StemmingTokenizer:
    """Words of a lowercased text, stop words dropped, each reduced to its English stem.

    Parameters
    ----------
    stop_words : "english", iterable of str or None
        Words dropped before stemming.

    Examples
    --------
    >>> StemmingTokenizer("english")("the proteins folded into a protein")
    ['protein', 'fold', 'protein']
    """

    _WORD = re.compile(r"\w\w+")  # as scikit-learn's token pattern: runs of 2+ word characters
    #: Each word's stem ("" for a stop word), shared by the tokenizers of one process
    #: that drop the same stop words.
    _CACHES: ClassVar[dict[object, dict[str, str]]] = {}

    def __init__(self, stop_words: str | Iterable[str] | None = "english"):
        self.stop_words = stop_words

    def __call__(self, text: str) -> list[str]:
        if not hasattr(self, "_stems"):
            self._prepare()
        words = self._WORD.findall(text)
        stems = list(map(self._stems.get, words))
        if None in stems:  # words not met before
            known = self._stems
            stems = [known[word] if word in known else self._learn(word) for word in words]
        return list(filter(None, stems))  # stop words' stems are ""

    def _learn(self, word: str) -> str:
        stem = "" if word in self._stop else self._stemmer.stemWord(word)
        self._stems[word] = stem
        return stem

    def _prepare(self) -> None:
        import Stemmer  # PyStemmer: Snowball's own C stemmers

        self._stemmer = Stemmer.Stemmer("english")
        if self.stop_words == "english":
            self._stop = ENGLISH_STOP_WORDS
        else:
            self._stop = frozenset(self.stop_words or ())
        self._stems = self._CACHES.setdefault(self._stop, {})

    def __getstate__(self) -> dict:
        # The stemmer and its cache are rebuilt after unpickling (model files, worker processes).
        return {"stop_words": self.stop_words}


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


#: The names of :meth:`FieldFeatures.to_arrays` that do not start with ``field``.
_ONE_SPACE_ARRAYS = ("kept_terms", "kept_names", *TermWeighting.ARRAY_NAMES)
