"""Helpers on pandas columns of text that pandas itself makes slow.

pandas' ``isin`` on a pyarrow-backed text column builds one pyarrow scalar per
value looked for: asking which of 180,000 links point to one of 36,000 pages
took 0.2 s, where pyarrow's own ``is_in`` takes 0.015 s.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["is_in"]


def is_in(values: pd.Series | pd.Index, among: Iterable[object]) -> np.ndarray:
    """``values.isin(among)`` as a boolean array, in one pyarrow pass for a text column.

    A column of pandas' text dtype (``str``, ``string``) looking for texts is
    looked up by pyarrow; anything else (object, numbers, values of other
    types) goes to pandas' own ``isin``, which tells ``None``, ``NaN`` and
    ``pd.NA`` apart in an object column.

    Examples
    --------
    >>> is_in(pd.Series(["a", "b", None]), {"b", "c"}).tolist()
    [False, True, False]
    >>> is_in(pd.Series(["a", None]), ["a", None]).tolist()
    [True, True]
    """
    if isinstance(among, str | bytes):
        raise TypeError(f"is_in looks for a collection of values, not {type(among).__name__}")
    among = among if isinstance(among, pd.Series | pd.Index) else list(among)
    wanted = _texts(among) if isinstance(values.dtype, pd.StringDtype) else None
    if wanted is None:
        return np.asarray(values.isin(among))
    column = pa.array(values.array)  # pyarrow-backed text goes over without a copy
    # a null finds a null, as in pandas; the answer is never null
    return pc.is_in(column, value_set=wanted.cast(column.type)).to_numpy(zero_copy_only=False)


def _texts(among: pd.Series | pd.Index | list) -> pa.Array | None:
    """``among`` as a pyarrow array of texts; None when it holds anything else."""
    try:
        array = pa.array(getattr(among, "array", among), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return array if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) else None
