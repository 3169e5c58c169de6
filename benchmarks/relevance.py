"""Relevance against people's judgements: each method on each labelled site, side by side.

    python benchmarks/relevance.py [--labelled FOLDER_OR_ARCHIVE] [--real FOLDER_OR_ARCHIVE]
                                   [--sites cooking,biology,crypto] [--skip-real]

For every labelled site (``labelled-qa``: ``<site>/pages`` and ``<site>/truth.tsv``)
fits each method and prints recall@5, MRR@5 and success@5 (a labelled pair is
found when either page lists the other among its first five; see
:func:`recommender.evaluate.evaluate`).  Methods:

- ``today``: the default before issue 9 (one TF-IDF per field, weights 1:1:2,
  title word pairs, ``max_df=0.1``, no stemming), with coverage on and off;
- ``baseline``: one ``TfidfVectorizer`` over ``title x3 + keywords x2 + answer``,
  exact top 5, no rules (the issue's reference);
- candidate designs of :class:`~recommender.features.FieldFeatures`, each
  through the full :class:`~recommender.Recommender` (rules; coverage off, and
  on as well for today's and the chosen default);
- ``lsa-rescore``: the chosen features, candidates re-scored with 0.15 of an
  LSA (100-component TruncatedSVD) cosine, coverage off (not adopted: slow).

Tuning used cooking and crypto; biology is held out (shown last, marked).
Then, on the real corpus, the guard rails of the chosen default against
today's default, fitted in the same run: pages with 5 links, keyword share,
same-subject share, orphan share, largest in-degree, fit time.

By default the archives are read from ``../shared/corpora/`` beside the
checkout and extracted to a temporary folder; an already-extracted folder
may be given instead.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

import recommender.model
from recommender import Recommender, evaluate, load_corpus
from recommender.evaluate import read_labels
from recommender.features import FieldFeatures
from recommender.neighbors import top_k_cosine
from recommender.rescoring import blend_scores

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SITES = ("cooking", "crypto", "biology")
HELD_OUT = {"biology"}
TODAY = dict(
    field_weights={"title": 1.0, "keywords": 1.0, "answer": 2.0},
    max_df=0.1,
    ngram_range={"title": (1, 2)},
)
TODAY_FEATURES = dict(combine="per_field", stem=False)
#: The chosen default: Recommender parameters, and FieldFeatures' own (its new defaults).
CHOSEN = dict(
    field_weights={"title": 3.0, "keywords": 2.0, "answer": 1.0}, max_df=0.5, ngram_range={}
)
CHOSEN_FEATURES = dict(combine="concatenate", stem=True)
#: (name, Recommender parameters, FieldFeatures options) of every design measured.
DESIGNS = [
    ("today", TODAY, TODAY_FEATURES),
    ("per-field 3:2:1 stem", {**CHOSEN, "max_df": 0.5}, dict(combine="per_field", stem=True)),
    ("one space 3:2:1 no stem", CHOSEN, dict(combine="concatenate", stem=False)),
    ("chosen: one space 3:2:1 stem", CHOSEN, CHOSEN_FEATURES),
]
CHOSEN_NAME = DESIGNS[-1][0]
LABEL_METRICS = ["recall_at_k", "mrr_at_k", "success_at_k"]


def extracted(source: Path) -> Path:
    """A folder: source itself, or the archive extracted to a temporary folder."""
    if source.is_dir():
        return source
    if not source.is_file():
        sys.exit(f"no corpus at {source}: give a folder or an archive")
    target = Path(tempfile.mkdtemp(prefix="recommender-relevance-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    with tarfile.open(source, "r:xz") as archive:
        archive.extractall(target, filter="data")
    return target


def fit(pages: pd.DataFrame, params: dict, features: dict, **more) -> Recommender:
    """Recommender(**params).fit with FieldFeatures options Recommender cannot pass yet."""
    patched = functools.partial(FieldFeatures, **features)
    with mock.patch.object(recommender.model, "FieldFeatures", patched):
        return Recommender(n_jobs=-1, **params, **more).fit(pages)


def plain_top5(pages: pd.DataFrame, scores_for) -> pd.DataFrame:
    """Links table of each page's 5 best other pages by the given (indices, scores) search."""
    indices, scores = scores_for()
    urls = pages.index
    rows = []
    for i, (row, _) in enumerate(zip(indices, scores, strict=True)):
        targets = [j for j in row if j >= 0 and j != i][:5]
        rows.extend((urls[i], rank, urls[j]) for rank, j in enumerate(targets, 1))
    return pd.DataFrame(rows, columns=["source_url", "rank", "target_url"])


def baseline_links(pages: pd.DataFrame) -> pd.DataFrame:
    """The issue's reference: one TfidfVectorizer over title x3 + keywords x2 + answer."""
    text = (
        (pages["title_text"] + " ") * 3
        + (pages["keywords_text"].str.replace(",", " ") + " ") * 2
        + pages["answer_text"]
    )
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5)
    features = vectorizer.fit_transform(text)
    return plain_top5(pages, lambda: top_k_cosine(features, k=6, n_jobs=-1))


def lsa_rescored_links(pages: pd.DataFrame, weight: float = 0.15) -> pd.DataFrame:
    """The chosen features' 40 candidates re-scored with an LSA cosine; first 5, no rules."""
    features = FieldFeatures(
        CHOSEN["field_weights"],
        **CHOSEN_FEATURES,
        max_df=CHOSEN["max_df"],
        min_df=1,
        sublinear_tf=True,
        stop_words="english",
    ).fit_transform(pages)
    components = TruncatedSVD(100, random_state=0, n_iter=4).fit_transform(features)
    candidates, scores = top_k_cosine(features, k=40, n_jobs=-1)
    return plain_top5(
        pages, lambda: blend_scores(candidates, scores, normalize(components), weight)
    )


def label_row(pages: pd.DataFrame, links: pd.DataFrame, labels: pd.DataFrame) -> dict:
    table = evaluate(pages, links, labels=labels).set_index("metric")["value"]
    return {metric: table[metric] for metric in LABEL_METRICS}


def measure_site(folder: Path) -> list[dict]:
    """One row per method and coverage setting on one labelled site."""
    pages = load_corpus(folder / "pages", n_jobs=-1).pages
    labels = read_labels(folder / "truth.tsv")
    rows = [
        {
            "method": "baseline (issue 9)",
            "coverage": "-",
            **label_row(pages, baseline_links(pages), labels),
        }
    ]
    for name, params, features in DESIGNS:
        for coverage in (True, False) if name in ("today", CHOSEN_NAME) else (False,):
            model = fit(pages, params, features, coverage=coverage)
            rows.append(
                {
                    "method": name,
                    "coverage": "on" if coverage else "off",
                    **label_row(pages, model.related_, labels),
                }
            )
    rows.append(
        {
            "method": "chosen + LSA re-scoring 0.15",
            "coverage": "off",
            **label_row(pages, lsa_rescored_links(pages), labels),
        }
    )
    return rows


GUARD_RAILS = [
    ("coverage", "pages_with_k_links"),
    ("topicality", "keyword_share"),
    ("topicality", "same_subject_share"),
    ("graph", "orphan_share"),
    ("graph", "max_in_degree"),
]


def guard_rails(folder: Path) -> pd.DataFrame:
    """Today's default and the chosen one on the real corpus, fitted in the same run."""
    pages = load_corpus(folder, n_jobs=-1).pages
    columns = {}
    for name, params, features in (
        ("today", TODAY, TODAY_FEATURES),
        ("chosen", CHOSEN, CHOSEN_FEATURES),
    ):
        start = time.perf_counter()
        model = fit(pages, params, features)
        seconds = time.perf_counter() - start
        table = evaluate(pages, model.related_).set_index(["group", "metric"])["value"]
        column = {metric: table[group, metric] for group, metric in GUARD_RAILS}
        column["fit seconds"] = seconds
        column |= {f"  {step} seconds": value for step, value in model.timings_.items()}
        columns[name] = column
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labelled", type=Path, default=CORPORA / "labelled-qa.tar.xz")
    parser.add_argument("--real", type=Path, default=CORPORA / "quicktakes-pages.tar.xz")
    parser.add_argument("--sites", default=",".join(SITES))
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    labelled = extracted(args.labelled)
    if (labelled / "labelled-qa").is_dir():
        labelled = labelled / "labelled-qa"
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        if not args.skip_real:
            print("guard rails on the real corpus (fitted in this run)", flush=True)
            print(guard_rails(extracted(args.real)), flush=True)
        results = []
        for site in args.sites.split(","):
            for row in measure_site(labelled / site):
                results.append({"site": site + (" (held out)" if site in HELD_OUT else ""), **row})
                print(results[-1], file=sys.stderr, flush=True)
        table = pd.DataFrame(results).set_index(["method", "coverage", "site"]).unstack("site")
        for metric in LABEL_METRICS:
            print(f"\n{metric} (k = 5)")
            print(table[metric].reindex(table.index.unique()))


if __name__ == "__main__":
    main()
