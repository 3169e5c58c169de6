"""Offline evaluation of a links table: is one set of related links better than another?

:func:`evaluate` measures one links table (the model's :attr:`Recommender.related_
<recommender.model.Recommender>`, or :attr:`Corpus.links <recommender.corpus.Corpus>`,
the links the pages hold today) against the pages; :func:`compare` puts several
side by side; :func:`churn` measures how much a table changed since another
(yesterday's run).  Every result is a tidy DataFrame: ``group``, ``metric``,
``value`` and its ``definition``.

A links table needs ``source_url`` and ``target_url``; ``rank`` (1 = first)
orders a page's links where present, else their order in the table does.
``target_id``, ``target_title`` and ``target_subject`` (as in
``Corpus.links``) are checked against the target page where present.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .rules import copy_groups

__all__ = [
    "METRICS",
    "churn",
    "compare",
    "evaluate",
    "in_degrees",
    "labelled_pairs",
    "read_labels",
    "valid_links",
]

#: Every metric: (group, metric) -> definition.
METRICS: dict[tuple[str, str], str] = {
    ("coverage", "pages"): "pages in the site",
    ("coverage", "pages_with_k_links"): "pages with exactly k valid links (k = links per page)",
    ("coverage", "pages_with_fewer_links"): "pages with 1 to k-1 valid links",
    ("coverage", "pages_with_no_links"): "pages with no valid link",
    ("validity", "links"): "rows in the links table",
    ("validity", "unresolved_links"): "links whose target url is not a page of the site",
    ("validity", "self_links"): "links from a page to itself",
    ("validity", "repeated_links"): "links to a target the same page already links to",
    ("validity", "pages_repeating_a_target"): "pages that link to one target more than once",
    ("validity", "copy_links"): "links to a cross-listed copy of the page (same slug or question)",
    ("validity", "no_index_links"): "links to pages marked no_index",
    ("validity", "stale_blocks"): "links whose id, title or subject disagree with the target page",
    (
        "topicality",
        "keyword_share",
    ): "share of valid links whose target shares a keyword with the source",
    ("topicality", "keyword_jaccard"): "mean Jaccard similarity of source and target keyword sets",
    (
        "topicality",
        "same_subject_share",
    ): "share of valid links within the source's subject (case-folded)",
    ("graph", "orphan_pages"): "pages no other page links to",
    ("graph", "orphan_share"): "orphan pages / pages",
    ("graph", "max_in_degree"): "most pages linking to one page",
    ("graph", "in_degree_gini"): "Gini coefficient of in-degree over pages (0 = even, 1 = one hub)",
    ("graph", "reciprocity"): "share of valid links whose target links back",
    ("labels", "labelled_pairs"): "unordered labelled pairs whose two pages are both in the site",
    ("labels", "unknown_pairs"): "labelled pairs left out because a page is not in the site",
    ("labels", "labelled_pages"): "pages in at least one labelled pair",
    (
        "labels",
        "recall_at_k",
    ): "share of labelled pairs found: either page lists the other in its first k valid links",
    (
        "labels",
        "mrr_at_k",
    ): "mean over labelled pages of 1 / the best place (1..k) at which one of its pairs is found"
    " (either page listing the other); 0 if none",
    (
        "labels",
        "success_at_k",
    ): "share of labelled pages with at least one of their pairs found",
    ("churn", "pages"): "pages with links in either table",
    ("churn", "pages_changed"): "pages whose ordered list of targets changed",
    ("churn", "changed_share"): "pages changed / pages",
    ("churn", "links_added"): "(source, target) pairs in the new table only",
    ("churn", "links_dropped"): "(source, target) pairs in the old table only",
    ("churn", "links_kept"): "(source, target) pairs in both",
    ("churn", "mean_rank_displacement"): "mean |new rank - old rank| over kept links",
}


def _table(rows: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(group, metric, value, METRICS[group, metric]) for (group, metric), value in rows.items()],
        columns=["group", "metric", "value", "definition"],
    )


def _ordered(links: pd.DataFrame) -> pd.DataFrame:
    """Links with a rank column, sorted by source then rank."""
    for column in ("source_url", "target_url"):
        if column not in links.columns:
            raise ValueError(f"a links table needs a {column!r} column; got {list(links.columns)}")
    links = links.reset_index(drop=True)
    if "rank" not in links.columns:
        links = links.assign(rank=links.groupby("source_url", sort=False).cumcount() + 1)
    return links.sort_values(["source_url", "rank"], kind="stable", ignore_index=True)


def valid_links(pages: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """The links that count: they resolve, are not self links, and do not repeat a target.

    Sorted by source and rank (``rank`` is added from the table's order where absent).
    """
    links = _ordered(links)
    keep = (
        links["target_url"].isin(pages.index)
        & (links["source_url"] != links["target_url"])
        & ~links.duplicated(["source_url", "target_url"])
    )
    return links[keep]


def in_degrees(pages: pd.DataFrame, links: pd.DataFrame) -> pd.Series:
    """Per page (indexed by url), how many pages link to it with a valid link."""
    return _in_degrees(pages.index, valid_links(pages, links))


def _in_degrees(urls: pd.Index, good: pd.DataFrame) -> pd.Series:
    """In-degree per url of links already known to be valid."""
    return good.groupby("target_url").size().reindex(urls, fill_value=0).rename("in_degree")


def _keyword_sets(pages: pd.DataFrame) -> pd.Series:
    return pages["keywords"].map(lambda words: frozenset(w.casefold() for w in words))


def _gini(values: np.ndarray) -> float:
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) == 0 or values.sum() == 0:
        return 0.0
    ranks = np.arange(1, len(values) + 1)
    return float((2 * ranks - len(values) - 1) @ values / (len(values) * values.sum()))


def evaluate(
    pages: pd.DataFrame,
    links: pd.DataFrame,
    *,
    k: int = 5,
    labels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Measure one links table against the pages of its site.

    Parameters
    ----------
    pages : pandas.DataFrame
        ``Corpus.pages`` (indexed by url).
    links : pandas.DataFrame
        One row per link: ``source_url``, ``target_url``, optionally ``rank``
        and the ``target_id``/``target_title``/``target_subject`` written in
        the page.
    k : int, default 5
        Links each page should have.
    labels : pandas.DataFrame, optional
        Pairs known to be related (``source_url`` and ``target_url``, or
        ``url_a`` and ``url_b``; see :func:`read_labels`), taken as unordered
        pairs; pairs naming a page not in ``pages`` are left out (counted in
        ``unknown_pairs``).  Adds, over the first k valid links of each page:

        - ``recall_at_k``: found pairs / pairs, where a pair {a, b} is found
          when a lists b or b lists a;
        - ``mrr_at_k``: the mean, over pages in at least one pair, of 1 / r,
          r the best place (1..k) at which any of the page's pairs is found
          in either direction (0 when none is found);
        - ``success_at_k``: the share of those pages with a pair found.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``metric``, ``value``, ``definition``; see :data:`METRICS`.
        A *valid* link resolves, is not a self link, and does not repeat an
        earlier target of its page.

    Examples
    --------
    ::

        corpus = load_corpus("data/sample")
        evaluate(corpus.pages, corpus.links).set_index("metric")["value"]
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    links = _ordered(links)
    resolves = links["target_url"].isin(pages.index).to_numpy()
    is_self = (links["source_url"] == links["target_url"]).to_numpy()
    repeated = links.duplicated(["source_url", "target_url"]).to_numpy()
    good = links[resolves & ~is_self & ~repeated]
    rows = _coverage_metrics(pages, good, k)
    rows |= _validity_metrics(pages, links, good, resolves, is_self, repeated)
    rows |= _topicality_metrics(pages, good)
    rows |= _graph_metrics(pages, good)
    if labels is not None:
        rows |= _label_metrics(pages, good, labels, k)
    return _table(rows)


def _coverage_metrics(pages: pd.DataFrame, good: pd.DataFrame, k: int) -> dict:
    per_page = good.groupby("source_url").size().reindex(pages.index, fill_value=0).to_numpy()
    return {
        ("coverage", "pages"): len(pages),
        ("coverage", "pages_with_k_links"): int((per_page >= k).sum()),
        ("coverage", "pages_with_fewer_links"): int(((per_page > 0) & (per_page < k)).sum()),
        ("coverage", "pages_with_no_links"): int((per_page == 0).sum()),
    }


def _validity_metrics(
    pages: pd.DataFrame,
    links: pd.DataFrame,
    good: pd.DataFrame,
    resolves: np.ndarray,
    is_self: np.ndarray,
    repeated: np.ndarray,
) -> dict:
    groups = pd.Series(copy_groups(pages), index=pages.index)
    source_group = groups.reindex(good["source_url"]).to_numpy()
    target_group = groups.reindex(good["target_url"]).to_numpy()
    return {
        ("validity", "links"): len(links),
        ("validity", "unresolved_links"): int((~resolves).sum()),
        ("validity", "self_links"): int(is_self.sum()),
        ("validity", "repeated_links"): int(repeated.sum()),
        ("validity", "pages_repeating_a_target"): int(links.loc[repeated, "source_url"].nunique()),
        ("validity", "copy_links"): int((source_group == target_group).sum()),
        ("validity", "no_index_links"): int(
            pages["no_index"].reindex(good["target_url"]).to_numpy(dtype=bool).sum()
        ),
        ("validity", "stale_blocks"): int(_stale_blocks(pages, links, resolves).sum()),
    }


def _stale_blocks(pages: pd.DataFrame, links: pd.DataFrame, resolves: np.ndarray) -> np.ndarray:
    """Per link, whether its written id, title or subject disagrees with the target page."""
    stale = np.zeros(len(links), dtype=bool)
    for column, page_column in (
        ("target_id", "id"),
        ("target_title", "title"),
        ("target_subject", "subject"),
    ):
        if column in links.columns:
            expected = pages[page_column].reindex(links["target_url"]).to_numpy(dtype=object)
            written = links[column].to_numpy(dtype=object)
            stale |= resolves & ~np.array(
                [_same(w, e) for w, e in zip(written, expected, strict=True)], dtype=bool
            )
    return stale


def _topicality_metrics(pages: pd.DataFrame, good: pd.DataFrame) -> dict:
    keywords = _keyword_sets(pages)
    source_words = keywords.reindex(good["source_url"]).to_numpy()
    target_words = keywords.reindex(good["target_url"]).to_numpy()
    shared = np.array([len(a & b) for a, b in zip(source_words, target_words, strict=True)])
    union = np.array([len(a | b) for a, b in zip(source_words, target_words, strict=True)])
    subjects = pages["subject_key"]
    same_subject = subjects.reindex(good["source_url"]).to_numpy() == (
        subjects.reindex(good["target_url"]).to_numpy()
    )
    return {
        ("topicality", "keyword_share"): _mean(shared > 0),
        ("topicality", "keyword_jaccard"): _mean(
            np.divide(shared, union, where=union > 0, out=np.zeros(len(union)))
        ),
        ("topicality", "same_subject_share"): _mean(same_subject),
    }


def _graph_metrics(pages: pd.DataFrame, good: pd.DataFrame) -> dict:
    n = len(pages)
    in_degree = _in_degrees(pages.index, good).to_numpy()
    pairs = set(zip(good["source_url"], good["target_url"], strict=True))
    back = np.array(
        [(t, s) in pairs for s, t in zip(good["source_url"], good["target_url"], strict=True)]
    )
    return {
        ("graph", "orphan_pages"): int((in_degree == 0).sum()),
        ("graph", "orphan_share"): float((in_degree == 0).mean()) if n else 0.0,
        ("graph", "max_in_degree"): int(in_degree.max()) if n else 0,
        ("graph", "in_degree_gini"): _gini(in_degree),
        ("graph", "reciprocity"): _mean(back),
    }


def _same(written: object, expected: object) -> bool:
    """Equal, treating missing values (None, NaN, NA) as equal to each other only."""
    if pd.isna(written) or pd.isna(expected):
        return bool(pd.isna(written) and pd.isna(expected))
    return bool(written == expected)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _label_metrics(
    pages: pd.DataFrame, links: pd.DataFrame, labels: pd.DataFrame, k: int
) -> dict[tuple[str, str], float]:
    """recall@k, MRR@k and success@k of valid links against unordered labelled pairs."""
    pairs = labelled_pairs(labels)
    known = pairs["url_a"].isin(pages.index) & pairs["url_b"].isin(pages.index)
    pairs = pairs[known]
    top = links.assign(place=links.groupby("source_url").cumcount() + 1)
    top = top[top["place"] <= k]
    keys = zip(top["source_url"], top["target_url"], strict=True)
    place = dict(zip(keys, top["place"], strict=True))
    # Best place at which either page lists the other (inf: found by neither).
    best = np.array(
        [
            min(place.get((a, b), np.inf), place.get((b, a), np.inf))
            for a, b in zip(pairs["url_a"], pairs["url_b"], strict=True)
        ],
        dtype=float,
    )
    per_page = pd.DataFrame(
        {
            "url": np.concatenate([pairs["url_a"], pairs["url_b"]]),
            "best": np.concatenate([best, best]),
        }
    )
    best_per_page = per_page.groupby("url")["best"].min().to_numpy()
    return {
        ("labels", "labelled_pairs"): len(pairs),
        ("labels", "unknown_pairs"): int((~known).sum()),
        ("labels", "labelled_pages"): len(best_per_page),
        ("labels", "recall_at_k"): _mean(np.isfinite(best)),
        ("labels", "mrr_at_k"): _mean(1 / best_per_page),
        ("labels", "success_at_k"): _mean(np.isfinite(best_per_page)),
    }


def labelled_pairs(labels: pd.DataFrame) -> pd.DataFrame:
    """Labelled pairs as unordered pairs: ``url_a`` < ``url_b``, each pair once, no self pairs.

    Parameters
    ----------
    labels : pandas.DataFrame
        ``source_url`` and ``target_url`` (or ``url_a`` and ``url_b``), one
        row per pair in either order.

    Returns
    -------
    pandas.DataFrame
        ``url_a``, ``url_b``, sorted.

    Examples
    --------
    >>> labels = pd.DataFrame({"source_url": ["/b", "/a", "/a"], "target_url": ["/a", "/b", "/a"]})
    >>> labelled_pairs(labels).to_dict("list")
    {'url_a': ['/a'], 'url_b': ['/b']}
    """
    for names in (("source_url", "target_url"), ("url_a", "url_b")):
        if set(names) <= set(labels.columns):
            first, second = (labels[name].astype(str).to_numpy() for name in names)
            break
    else:
        raise ValueError(
            "a labels table needs 'source_url' and 'target_url' (or 'url_a' and 'url_b') "
            f"columns; got {list(labels.columns)}"
        )
    pairs = pd.DataFrame({"url_a": np.minimum(first, second), "url_b": np.maximum(first, second)})
    pairs = pairs[pairs["url_a"] != pairs["url_b"]].drop_duplicates()
    return pairs.sort_values(["url_a", "url_b"], ignore_index=True)


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a tab-separated file of related pairs into a labels table for :func:`evaluate`.

    Parameters
    ----------
    path : str or Path
        A TSV with a header line and the columns ``url_a``, ``url_b`` and
        optionally ``link_type`` (as the ``truth.tsv`` of a labelled site).

    Returns
    -------
    pandas.DataFrame
        ``source_url``, ``target_url`` (``url_a`` and ``url_b`` as read) and
        ``link_type`` (``"linked"`` where the file has no such column).

    Examples
    --------
    ::

        evaluate(corpus.pages, model.related_, labels=read_labels("truth.tsv"))
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [column for column in ("url_a", "url_b") if column not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: a labels file needs the columns url_a and url_b; lacks {missing}"
        )
    link_type = table["link_type"] if "link_type" in table.columns else "linked"
    return pd.DataFrame(
        {"source_url": table["url_a"], "target_url": table["url_b"], "link_type": link_type}
    )


def compare(
    pages: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    *,
    k: int = 5,
    labels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Evaluate several links tables; one column of values per table.

    Returns a DataFrame indexed by (group, metric), with a column per name in
    ``tables`` and the ``definition`` last.

    Examples
    --------
    ::

        compare(corpus.pages, {"site": corpus.links, "model": model.related_})
    """
    results = {name: evaluate(pages, links, k=k, labels=labels) for name, links in tables.items()}
    first = next(iter(results.values()))
    table = first[["group", "metric"]].copy()
    for name, result in results.items():
        table[name] = result["value"].to_numpy()
    table["definition"] = first["definition"].to_numpy()
    return table.set_index(["group", "metric"])


def churn(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """How much a links table changed: pages whose lists changed, links added and dropped.

    Parameters
    ----------
    old, new : pandas.DataFrame
        Links tables (``source_url``, ``target_url``, optionally ``rank``),
        for example yesterday's and today's ``--output`` files.

    Returns
    -------
    pandas.DataFrame
        ``group`` ("churn"), ``metric``, ``value``, ``definition``.
    """
    old, new = _ordered(old), _ordered(new)
    old_lists = old.groupby("source_url")["target_url"].agg(tuple)
    new_lists = new.groupby("source_url")["target_url"].agg(tuple)
    sources = old_lists.index.union(new_lists.index)
    old_lists = old_lists.reindex(sources, fill_value=())
    new_lists = new_lists.reindex(sources, fill_value=())
    changed = int((old_lists != new_lists).sum())
    key = ["source_url", "target_url"]
    old_first = old.drop_duplicates(key)
    new_first = new.drop_duplicates(key)
    merged = old_first[[*key, "rank"]].merge(
        new_first[[*key, "rank"]], on=key, how="outer", suffixes=("_old", "_new"), indicator=True
    )
    kept = merged[merged["_merge"] == "both"]
    return _table(
        {
            ("churn", "pages"): len(sources),
            ("churn", "pages_changed"): changed,
            ("churn", "changed_share"): changed / len(sources) if len(sources) else 0.0,
            ("churn", "links_added"): int((merged["_merge"] == "right_only").sum()),
            ("churn", "links_dropped"): int((merged["_merge"] == "left_only").sum()),
            ("churn", "links_kept"): len(kept),
            ("churn", "mean_rank_displacement"): _mean(
                (kept["rank_new"] - kept["rank_old"]).abs().to_numpy(dtype=float)
            ),
        }
    )
