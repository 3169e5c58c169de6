"""What may link to what: the rules every list of related pages obeys.

- never the page itself;
- never one of its cross-listed copies (the same question under another
  subject folder: same slug, same question, or a near-duplicate text);
- never two copies of one question on one page (the copy in the reader's
  subject wins, else the best scored);
- no ``no_index`` pages as targets (optional);
- nothing scoring at or under ``min_score``.

An editor adds rules of their own (:class:`EditorialRules`, read from a TOML
file by :func:`recommender.config.load_rules`): pins, nevers, keeps, dates
and subjects.  :meth:`EditorialRules.resolve` turns them into page indices
(:class:`ResolvedRules`), which apply as masks and score factors on the same
candidate arrays, and place the pins after coverage.

Candidates arrive as two aligned ``(n_pages, n_places)`` arrays, target row
indices (``-1`` for none) and scores, each row best first; the rules remove
forbidden entries and keep the order of the rest.  This room knows the pages
DataFrame (slugs, questions, subjects, flags) but not files or vectors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "apply_rules",
    "connected_labels",
    "copy_groups",
    "first_links",
    "near_duplicate_pairs",
    "target_mask",
]

_NOT_WORD = re.compile(r"\W+")


def target_mask(pages: pd.DataFrame, *, exclude_no_index: bool) -> np.ndarray:
    """Per page, whether other pages may link to it."""
    allowed = np.ones(len(pages), dtype=bool)
    if exclude_no_index:
        allowed &= ~pages["no_index"].to_numpy(dtype=bool)
    return allowed


def copy_groups(pages: pd.DataFrame) -> np.ndarray:
    """Label cross-listed copies: pages that are the same question under other folders.

    Two pages are copies when they share a slug (file name) or the same
    question once case, punctuation and spacing are folded (the title where
    there is no question).  Copies of copies are copies: the labels are the
    connected components of that relation.

    Returns
    -------
    ndarray of int64, one label per row of ``pages``; equal labels are copies.
    """
    questions = pages["question"].where(pages["question"] != "", pages["title"])
    keys = [
        pages["slug"],
        questions.map(lambda q: _NOT_WORD.sub(" ", q.casefold()).strip()),
    ]
    return connected_labels(len(pages), [pd.factorize(key)[0] for key in keys])


def connected_labels(
    n: int, codes: list[np.ndarray], pairs: np.ndarray | None = None
) -> np.ndarray:
    """Connected components of n items linked when they share a code (or are a pair).

    ``codes`` are integer arrays (one code per item, -1 for none); ``pairs``
    an optional (m, 2) array of item indices.  Labels are numbered by each
    component's first item, so they are deterministic.
    """
    rows, cols = [], []
    items = np.arange(n)
    for code in codes:
        code = np.asarray(code)
        has = code >= 0
        first = np.full(code.max() + 1 if has.any() else 0, -1, dtype=np.int64)
        # the first item with each code (scanning backwards so the smallest index wins)
        first[code[has][::-1]] = items[has][::-1]
        rows.append(items[has])
        cols.append(first[code[has]])
    if pairs is not None and len(pairs):
        rows.append(pairs[:, 0])
        cols.append(pairs[:, 1])
    graph = sp.coo_matrix(
        (np.ones(sum(map(len, rows)), dtype=np.int8), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    # renumber by first occurrence, independent of the graph library's numbering
    _, first_index, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first_index))
    return order[inverse].astype(np.int64)


def near_duplicate_pairs(
    candidates: np.ndarray, scores: np.ndarray, threshold: float
) -> np.ndarray:
    """``(m, 2)`` pairs of (page, candidate) scoring at least ``threshold``: copies by text."""
    near = (candidates >= 0) & (scores >= threshold)
    return np.column_stack([np.nonzero(near)[0], candidates[near]])


def apply_rules(
    candidates: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove forbidden candidates; keep each row's order (score desc, url asc).

    Removed: padding, anything at or under ``min_score``, the page itself and
    its copies (same label in ``groups``), and all but one page of any group
    in a row: the copy in the source's own subject (``subjects``: one code per
    page) if there is one, else the best placed.

    Returns the candidates and scores with each row compacted to the left and
    padded with ``-1`` and ``0``.
    """
    valid = (candidates >= 0) & (scores > min_score)
    safe = np.maximum(candidates, 0)
    target_group = np.where(valid, groups[safe], -1)
    valid &= target_group != groups[:, None]
    valid &= ~_later_copies(valid, target_group, subjects[safe] != subjects[:, None])
    return _compact_rows(valid, candidates, scores)


def _later_copies(
    valid: np.ndarray, target_group: np.ndarray, other_subject: np.ndarray
) -> np.ndarray:
    """Entries that repeat a group already in their row: all but the one to keep.

    Within a row's entries of one group, the one kept is in the source's
    subject if any is, then the first placed.
    """
    group = np.where(valid, target_group, -1)  # groups are labels from 0: invalid ones first
    order = np.lexsort((other_subject, group), axis=1)  # within a row; stable: then by place
    in_order = np.take_along_axis(group, order, 1)
    repeats = np.zeros(valid.shape, dtype=bool)
    repeats[:, 1:] = (in_order[:, 1:] == in_order[:, :-1]) & (in_order[:, 1:] >= 0)
    later = np.zeros(valid.shape, dtype=bool)
    np.put_along_axis(later, order, repeats, 1)
    return later


def _compact_rows(
    valid: np.ndarray, candidates: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The valid entries of each row moved to its start, in order; -1 and 0 after them."""
    compact = np.argsort(~valid, axis=1, kind="stable")
    kept = np.take_along_axis(valid, compact, 1)
    candidates = np.where(kept, np.take_along_axis(candidates, compact, 1), -1)
    scores = np.where(kept, np.take_along_axis(scores, compact, 1), 0).astype(np.float32)
    return candidates, scores


def first_links(candidates: np.ndarray, n_links: int) -> np.ndarray:
    """Places of each row's chosen candidates (-1 for none): simply its first ``n_links``."""
    n, n_places = candidates.shape
    head = min(n_links, n_places)
    places = np.full((n, n_links), -1, dtype=np.int64)
    places[:, :head] = np.where(candidates[:, :head] >= 0, np.arange(head), -1)
    return places


# ---------------------------------------------------------------------- editorial rules


@dataclass(frozen=True)
class Pin:
    """``[[pin]]``: ``target`` always appears on ``source``, at ``rank`` (1-based) or first."""

    source: str
    target: str
    rank: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Never:
    """``[[never]]``: the ``source`` pages never link to the ``target`` pages (None: any page)."""

    source: str | None = None
    target: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Keep:
    """``[[keep]]``: the ``source`` pages keep their related blocks exactly as they are."""

    source: str
    line: int = 0


@dataclass(frozen=True)
class EditorialRules:
    """An editor's rules file, parsed and checked (see :func:`recommender.config.load_rules`).

    A plain, picklable value that :class:`~recommender.model.Recommender` takes
    as its ``rules`` parameter; :meth:`resolve` turns it into page indices.

    Parameters
    ----------
    pins, nevers, keeps : tuple
        The ``[[pin]]``, ``[[never]]`` and ``[[keep]]`` rules in file order.
    no_newer : bool
        ``[dates] no_newer``: never link to a page dated after the source.
    half_life_days : float or None
        ``[dates] half_life_days``: a target's ranking score is multiplied
        by ``0.5 ** (age / half_life_days)``, its age counted in days before
        the newest page of the site (undated pages are not discounted).
    min_same : int
        ``[subjects] min_same``: at least this many of a page's links within
        its subject, where it has that many candidates (pins excepted).
    cross_min_score : float or None
        ``[subjects] cross_min_score``: links across subjects only above this
        similarity.
    file : str
        Where the rules came from, for messages.
    section_lines : tuple of (str, int)
        The line of the ``[dates]`` and ``[subjects]`` headers, for messages.

    Pages are named by url, by a glob over urls or paths (``*``, ``?``,
    ``[...]``), or by ``subject:NAME`` (case and spacing folded).
    """

    pins: tuple[Pin, ...] = ()
    nevers: tuple[Never, ...] = ()
    keeps: tuple[Keep, ...] = ()
    no_newer: bool = False
    half_life_days: float | None = None
    min_same: int = 0
    cross_min_score: float | None = None
    file: str = "rules"
    section_lines: tuple[tuple[str, int], ...] = ()
    #: Pages of the site that could not be loaded (set by the job): a rule naming no page
    #: that loaded may name one of them, so it is left out with a warning, not an error.
    unloaded: int = field(default=0, repr=False, compare=False)

    def where(self, rule: Pin | Never | Keep | str) -> str:
        """``FILE:LINE: [[kind]]`` for a rule, or ``FILE:LINE: [section]`` for a section name."""
        if isinstance(rule, str):
            line = dict(self.section_lines).get(rule)
            return f"{self.file}:{line}: [{rule}]" if line else f"{self.file}: [{rule}]"
        return f"{self.file}:{rule.line}: [[{type(rule).__name__.lower()}]]"

    def resolve(
        self, pages: pd.DataFrame, *, n_links: int, exclude_no_index: bool
    ) -> ResolvedRules:
        """The rules as page indices of ``pages`` (sorted by url); raise on a bad rule.

        Raises
        ------
        ConfigError
            A selector naming no page; a pin whose target is not one page, is
            ``no_index``, is its own source, is forbidden by a never rule,
            clashes with another pin or a keep rule, or is one too many.
        """
        select = _Selector(pages, self)
        nevers = [
            (select(rule, rule.source, "source"), select(rule, rule.target, "target"))
            for rule in self.nevers
        ]
        keep_rule = np.full(len(pages), -1, dtype=np.int64)
        for number, rule in enumerate(self.keeps):
            keep_rule[select(rule, rule.source, "source") & (keep_rule < 0)] = number
        pins = _resolve_pins(self, select, pages, nevers, keep_rule, n_links, exclude_no_index)
        days = _days(pages["date"])
        return ResolvedRules(
            rules=self,
            nevers=nevers,
            keep_rule=keep_rule,
            pins=pins,
            days=days,
            subjects=pd.factorize(pages["subject_key"])[0],
        )


class _Selector:
    """Pages named by a rule's selector, as a boolean mask; a selector naming none is an error."""

    def __init__(self, pages: pd.DataFrame, rules: EditorialRules):
        self.urls = pages.index.to_numpy(dtype=object)
        self.paths = pages["path"].to_numpy(dtype=object) if "path" in pages else self.urls
        self.subjects = pages["subject_key"].to_numpy(dtype=object)
        self.rules = rules

    def __call__(self, rule: Pin | Never | Keep, selector: str | None, field: str) -> np.ndarray:
        if selector is None:
            return np.ones(len(self.urls), dtype=bool)
        if selector.startswith("subject:"):
            mask = self.subjects == subject_fold(selector[len("subject:") :])
        elif _GLOB.search(selector):
            mask = np.array(
                [
                    fnmatchcase(u, selector) or fnmatchcase(p, selector)
                    for u, p in zip(self.urls, self.paths, strict=True)
                ],
                dtype=bool,
            )
        else:
            mask = (self.urls == selector) | (self.paths == selector)
        if not mask.any():
            problem = f"{self.rules.where(rule)}: {field} {selector!r} names no page of the site"
            if not self.rules.unloaded:
                raise ConfigError(problem)
            logger.warning(  # one bad page never stops the others
                "%s that loaded (%d could not be read: it may be one); the rule is left out",
                problem,
                self.rules.unloaded,
            )
        return mask


_GLOB = re.compile(r"[*?\[]")


def subject_fold(subject: str) -> str:
    """A subject with case and spacing folded, as the pages' ``subject_key``."""
    return re.sub(r"\s+", " ", subject).strip().casefold()


def _days(dates: pd.Series) -> np.ndarray:
    """Each date as days since 1970-01-01 (float, NaN when absent), from year 1 to 9999:
    through nanoseconds (a difference of timestamps) 9999-12-31 stopped every run."""
    days = dates.to_numpy(dtype="datetime64[s]").astype("datetime64[D]")
    return np.where(np.isnat(days), np.nan, days.astype(np.int64).astype(float))


def _resolve_pins(
    rules: EditorialRules,
    select: _Selector,
    pages: pd.DataFrame,
    nevers: list[tuple[np.ndarray, np.ndarray]],
    keep_rule: np.ndarray,
    n_links: int,
    exclude_no_index: bool,
) -> pd.DataFrame:
    """Rows (source, pin): ``source``, ``target``, ``rank`` (0-based; -1 first free), ``rule``."""
    no_index = pages["no_index"].to_numpy(dtype=bool)
    rows: list[tuple[int, int, int, int]] = []
    for number, pin in enumerate(rules.pins):
        where = rules.where(pin)
        sources = np.flatnonzero(select(pin, pin.source, "source"))
        targets = np.flatnonzero(select(pin, pin.target, "target"))
        if not len(targets) and rules.unloaded:  # its target may be a page not loaded
            continue
        if len(targets) != 1:
            raise ConfigError(f"{where}: target {pin.target!r} names {len(targets)} pages, not one")
        target = int(targets[0])
        if exclude_no_index and no_index[target]:
            raise ConfigError(f"{where}: target {pin.target!r} is a no_index page")
        if pin.rank is not None and pin.rank > n_links:
            raise ConfigError(f"{where}: rank {pin.rank} is beyond n_links ({n_links})")
        if target in sources:
            raise ConfigError(f"{where}: {pin.target!r} would link to itself")
        for never, (never_sources, never_targets) in zip(rules.nevers, nevers, strict=True):
            if never_targets[target] and never_sources[sources].any():
                raise ConfigError(f"{where}: forbidden by {rules.where(never)}")
        kept = sources[keep_rule[sources] >= 0]
        if len(kept):
            clash = rules.where(rules.keeps[keep_rule[kept[0]]])
            raise ConfigError(f"{where}: {pages.index[kept[0]]!r} is kept as it is by {clash}")
        rank = -1 if pin.rank is None else pin.rank - 1
        rows.extend((int(source), target, rank, number) for source in sources)
    table = pd.DataFrame(rows, columns=["source", "target", "rank", "rule"], dtype=np.int64)
    _check_pins_fit(rules, pages, table, n_links)
    return table


def _check_pins_fit(
    rules: EditorialRules, pages: pd.DataFrame, pins: pd.DataFrame, n_links: int
) -> None:
    """No page pinned the same target twice, two targets at one rank, or more than n_links."""
    checks = [
        (pins.duplicated(["source", "target"]), "pins {target} on {source} a second time"),
        (
            (pins["rank"] >= 0) & pins.duplicated(["source", "rank"]),
            "pins a second page at rank {rank} of {source}",
        ),
        (
            pins.groupby("source").cumcount() >= n_links,
            f"pins more than n_links ({n_links}) pages on {{source}}",
        ),
    ]
    for bad, message in checks:
        if bad.any():
            row = pins[bad].iloc[0]
            text = message.format(
                source=repr(pages.index[row["source"]]),
                target=repr(pages.index[row["target"]]),
                rank=row["rank"] + 1,
            )
            raise ConfigError(f"{rules.where(rules.pins[row['rule']])}: {text}")


@dataclass
class ResolvedRules:
    """:class:`EditorialRules` as page indices; applies them to candidate arrays.

    ``events`` collects, as it goes, the (source, target, rule label) of
    every link a rule placed or removed, for :meth:`Recommender.explain_rules
    <recommender.model.Recommender.explain_rules>`.
    """

    rules: EditorialRules
    nevers: list[tuple[np.ndarray, np.ndarray]]
    keep_rule: np.ndarray
    pins: pd.DataFrame
    days: np.ndarray
    subjects: np.ndarray
    events: list[tuple[np.ndarray, np.ndarray, str, str]] = field(default_factory=list)

    def narrowed(self) -> np.ndarray:
        """Per page, whether a rule removed candidates from it or keeps it as it is."""
        narrowed = self.kept().copy()
        for sources, _, action, _ in self.events:
            if action == "removed":
                narrowed[sources] = True
        return narrowed

    def _log(self, sources: np.ndarray, targets: np.ndarray, action: str, rule: str) -> None:
        if len(sources):
            self.events.append((np.asarray(sources), np.asarray(targets), action, rule))

    def remove_forbidden(
        self, candidates: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop the candidates that a never rule, ``no_newer`` or ``cross_min_score`` forbids."""
        valid = candidates >= 0
        safe = np.maximum(candidates, 0)
        masks = [
            (source[:, None] & target[safe], self.rules.where(rule))
            for rule, (source, target) in zip(self.rules.nevers, self.nevers, strict=True)
        ]
        if self.rules.no_newer:
            masks.append(
                (self.days[safe] > self.days[:, None], self.rules.where("dates") + " no_newer")
            )
        if self.rules.cross_min_score is not None:
            cross = self.subjects[safe] != self.subjects[:, None]
            masks.append(
                (
                    cross & (scores <= self.rules.cross_min_score),
                    self.rules.where("subjects") + " cross_min_score",
                )
            )
        for mask, label in masks:
            removed = valid & mask
            rows, places = np.nonzero(removed)
            self._log(rows, candidates[rows, places], "removed", label)
            valid &= ~removed
        return _compact_rows(valid, candidates, scores)

    def recency(self) -> np.ndarray:
        """Per page, the factor its ranking score is multiplied by as a target (1: none)."""
        half_life = self.rules.half_life_days
        if half_life is None or np.isnan(self.days).all():
            return np.ones(len(self.days))
        age = np.nanmax(self.days) - self.days
        return np.where(np.isnan(age), 1.0, 0.5 ** (np.nan_to_num(age) / half_life))

    def limit_cross_subject(
        self, candidates: np.ndarray, ranking: np.ndarray, similarity: np.ndarray, n_links: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The candidate arrays, rows compacted, with room for ``min_same`` same-subject links.

        A row keeps at most ``n_links - min(min_same, same-subject candidates)``
        cross-subject candidates, its best ranked, so whatever ``n_links`` of
        them are chosen, ``min_same`` are in the page's subject where it can.
        """
        if self.rules.min_same == 0:
            return candidates, ranking, similarity
        valid = candidates >= 0
        cross = valid & (self.subjects[np.maximum(candidates, 0)] != self.subjects[:, None])
        same = (valid & ~cross).sum(axis=1)
        allowed = n_links - np.minimum(self.rules.min_same, same)
        dropped = cross & (np.cumsum(cross, axis=1) > allowed[:, None])
        rows, places = np.nonzero(dropped)
        self._log(
            rows, candidates[rows, places], "removed", self.rules.where("subjects") + " min_same"
        )
        _, similarity = _compact_rows(~dropped & valid, candidates, similarity)
        candidates, ranking = _compact_rows(~dropped & valid, candidates, ranking)
        return candidates, ranking, similarity

    def kept(self) -> np.ndarray:
        """Per page, whether a keep rule leaves its blocks as they are."""
        return self.keep_rule >= 0

    def log_kept(self, pairs: pd.DataFrame) -> None:
        """Record the (``source``, ``target``) links a keep rule left in place."""
        for rule, links in pairs.groupby(self.keep_rule[pairs["source"].to_numpy()]):
            self._log(
                links["source"].to_numpy(),
                links["target"].to_numpy(),
                "placed",
                self.rules.where(self.rules.keeps[rule]),
            )

    def place_pins(
        self, targets: np.ndarray, scores: np.ndarray, groups: np.ndarray, pin_scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each page's final links with its pins in place; the chosen links fill the other ranks.

        ``targets`` and ``scores`` are ``(n, n_links)``, best first, ``-1``
        padded; a chosen link that is a pinned page or one of its copies
        (same label in ``groups``) is dropped, and the weakest chosen links
        make room for the pins.
        """
        targets, scores = targets.copy(), scores.copy()
        for source, pins in self.pins.assign(score=pin_scores).groupby("source", sort=False):
            chosen = targets[source] >= 0
            chosen &= ~np.isin(groups[np.maximum(targets[source], 0)], groups[pins["target"]])
            targets[source], scores[source], pushed_out = _pinned_row(
                pins, targets[source][chosen], scores[source][chosen], targets.shape[1]
            )
            rule = self.rules.where(self.rules.pins[pins["rule"].iloc[0]])
            self._log(np.full(len(pushed_out), source), pushed_out, "removed", rule + " made room")
        for rule, pins in self.pins.groupby("rule"):
            self._log(
                pins["source"].to_numpy(),
                pins["target"].to_numpy(),
                "placed",
                self.rules.where(self.rules.pins[rule]),
            )
        return targets, scores


def _pinned_row(
    pins: pd.DataFrame, chosen: np.ndarray, chosen_scores: np.ndarray, n_links: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One page's links: pins at their ranks, then in the first free ranks, then ``chosen``.

    Returns the targets and scores (``-1`` and 0 after the last link, no
    gaps where links ran short) and the chosen targets pushed out.
    """
    row = np.full(n_links, -1, dtype=np.int64)
    row_scores = np.zeros(n_links, dtype=chosen_scores.dtype)
    ranked, unranked = pins[pins["rank"] >= 0], pins[pins["rank"] < 0]
    row[ranked["rank"]], row_scores[ranked["rank"]] = ranked["target"], ranked["score"]
    free = np.flatnonzero(row < 0)[: len(unranked)]
    row[free], row_scores[free] = unranked["target"], unranked["score"]
    free = np.flatnonzero(row < 0)
    row[free[: len(chosen)]] = chosen[: len(free)]
    row_scores[free[: len(chosen)]] = chosen_scores[: len(free)]
    filled = np.argsort(row < 0, kind="stable")
    return row[filled], row_scores[filled], chosen[len(free) :]
