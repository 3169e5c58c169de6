import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender import load_corpus

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def synthetic():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("synthetic", BENCHMARKS / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["synthetic"] = module  # so that worker processes find its functions
    spec.loader.exec_module(module)
    yield module
    del sys.modules["synthetic"]
    sys.path.remove(str(BENCHMARKS))


def made_up_statistics() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    letters = ("abcdefghij", "klmnopqrst", "uvwxyz", "abcdefghij")
    words = np.array(["w" + "".join(chosen) for chosen in itertools.product(*letters)])
    return {
        "words": words,
        "counts": (1_000_000 // np.arange(1, len(words) + 1)).astype(np.int64),
        "answer_words": rng.integers(20, 200, 100).astype(np.int32),
        "paragraphs": rng.integers(1, 6, 100).astype(np.int32),
        "title_words": rng.integers(4, 12, 100).astype(np.int32),
        "n_keywords": rng.integers(1, 12, 100).astype(np.int32),
        "keyword_words": rng.integers(1, 4, 100).astype(np.int32),
    }


def read_all(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def test_same_arguments_same_bytes_whatever_the_processes(synthetic, tmp_path):
    stats = made_up_statistics()
    synthetic.generate(tmp_path / "a", 900, 3, stats, chunk=100)
    synthetic.generate(tmp_path / "b", 900, 3, stats, jobs=2, chunk=100)
    assert read_all(tmp_path / "a") == read_all(tmp_path / "b")
    truth_a = (tmp_path / "a.truth.tsv").read_bytes()
    assert truth_a == (tmp_path / "b.truth.tsv").read_bytes()
    synthetic.generate(tmp_path / "c", 900, 4, stats, chunk=100)
    assert read_all(tmp_path / "a") != read_all(tmp_path / "c")


def test_pages_load_cleanly_with_their_truth(synthetic, tmp_path):
    synthetic.generate(tmp_path / "site", 600, 1, made_up_statistics())
    corpus = load_corpus(tmp_path / "site")
    assert len(corpus.errors) == 0
    assert len(corpus.pages) == 600
    truth = pd.read_csv(tmp_path / "site.truth.tsv", sep="\t").set_index("url")
    assert set(truth.index) == set(corpus.pages.index)
    assert len(corpus.links) > 0
    assert corpus.links["target_url"].isin(corpus.pages.index).all()
    copies = truth["copy_of"].dropna()
    assert len(copies) == 18  # 3% cross-listed
    pages = corpus.pages
    assert (pages.loc[copies.index, "answer"].to_numpy() == pages.loc[copies, "answer"]).all()
    assert pages["answer"].str.contains("\\n\\n", regex=False).any()
