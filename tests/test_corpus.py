import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import recommender.workers as workers
from recommender import load_corpus
from recommender.corpus import BLOCK_COLUMNS, ERROR_COLUMNS, PAGE_COLUMNS, RAW_TEXT_COLUMNS
from recommender.errors import PageError, SiteNotFoundError

from .conftest import BROKEN, FIXTURES, SAMPLE

PAGES = FIXTURES / "pages"


# ---------------------------------------------------------------- good pages


@pytest.fixture(scope="module")
def fixture_corpus():
    return load_corpus(PAGES)


@pytest.mark.parametrize("expected_file", sorted(PAGES.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_page_loads_to_its_expected_values(fixture_corpus, expected_file):
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    pages = fixture_corpus.pages
    row = pages[pages["path"] == expected["path"]].iloc[0]
    for column, value in expected.items():
        actual = row[column]
        if column == "date":
            actual = None if pd.isna(actual) else actual.date().isoformat()
        elif column == "id":
            actual = None if pd.isna(actual) else int(actual)
        elif column == "score":
            actual = None if math.isnan(actual) else actual
        assert actual == value, column


def test_bom_and_crlf_load_like_the_plain_page(fixture_corpus):
    pages = fixture_corpus.pages.set_index("path")
    plain, crlf = pages.loc["markdown-and-latex.md"], pages.loc["bom-crlf.md"]
    for column in ("title", "answer", "keywords", "answer_text", "related_urls"):
        assert plain[column] == crlf[column], column


def test_frames_have_the_documented_columns(fixture_corpus):
    assert fixture_corpus.pages.index.name == "url"
    assert list(fixture_corpus.pages.columns) == list(PAGE_COLUMNS)
    assert list(fixture_corpus.errors.columns) == list(ERROR_COLUMNS)
    assert list(fixture_corpus.links.columns) == list(BLOCK_COLUMNS)
    assert fixture_corpus.pages.index.is_monotonic_increasing
    assert fixture_corpus.errors.empty


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_without_raw_texts_only_the_raw_texts_are_left_out(fixture_corpus, n_jobs, monkeypatch):
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 2)  # worker processes, too
    lean = load_corpus(PAGES, raw_texts=False, n_jobs=n_jobs)
    assert list(lean.pages.columns) == [c for c in PAGE_COLUMNS if c not in RAW_TEXT_COLUMNS]
    assert set(RAW_TEXT_COLUMNS) == {"answer", "description"}
    pd.testing.assert_frame_equal(lean.pages, fixture_corpus.pages[lean.pages.columns])
    pd.testing.assert_frame_equal(lean.links, fixture_corpus.links)
    pd.testing.assert_frame_equal(lean.errors, fixture_corpus.errors)


def test_existing_links_table(fixture_corpus):
    links = fixture_corpus.links
    source = "/learn/accounting/questions/markdown-and-latex"
    rows = links[links["source_url"] == source]
    assert rows["rank"].tolist() == [1, 2]
    assert rows["target_url"].tolist() == [
        "/learn/accounting/questions/simple-interest",
        "/learn/economics/questions/loan",
    ]
    assert rows["target_id"].tolist() == [11, 12]
    assert rows["target_title"].tolist() == ["What is simple interest?", "What is a loan?"]
    assert rows["target_subject"].tolist() == ["Accounting and Finance", "Economics"]


# ---------------------------------------------------------------- bad pages

#: Every page of data/broken that must fail, with its line and the start of its message.
BROKEN_PAGES = {
    "empty-file.md": (None, "empty file"),
    "no-front-matter.md": (1, "no front matter: the file does not open with a '---' line"),
    "unterminated-front-matter.md": (1, "unterminated front matter"),
    "invalid-yaml.md": (4, "invalid YAML: mapping values are not allowed"),
    "not-a-mapping.md": (2, "front matter is not a mapping: it is a list"),
    "missing-url.md": (None, "missing url: the front matter has no `url`"),
    "missing-title.md": (None, "missing title: the front matter has no `title`"),
    "list-title.md": (4, "wrong type: `title` is a list"),
    "text-id.md": (2, "wrong type: `id` is text ('ten'), expected an integer"),
    "invalid-utf8.md": (4, "invalid UTF-8: byte 0xe9"),
    "unsafe-yaml.md": (4, "invalid YAML: could not determine a constructor for the tag"),
    "duplicate-url-2.md": (
        None,
        "duplicate url: url /learn/chemistry/questions/duplicate-url is also used by "
        "duplicate-url-1.md",
    ),
}
GOOD_PAGES = {"good-page.md", "bom-and-crlf.md", "duplicate-url-1.md"}


@pytest.fixture(scope="module")
def broken_corpus():
    return load_corpus(BROKEN)


def test_every_broken_page_is_reported_and_the_good_ones_load(broken_corpus):
    assert set(broken_corpus.errors["path"]) == set(BROKEN_PAGES)
    assert set(broken_corpus.pages["path"]) == GOOD_PAGES


@pytest.mark.parametrize("name", sorted(BROKEN_PAGES))
def test_broken_page_message(broken_corpus, name):
    line, start = BROKEN_PAGES[name]
    row = broken_corpus.errors.set_index("path").loc[name]
    where = f"{name}:{line}" if line else name
    assert row["message"].startswith(f"{where}: {start}"), row["message"]
    assert (None if pd.isna(row["line"]) else int(row["line"])) == line
    assert row["message"] == f"{where}: {row['problem']}: {row['detail']}"


@pytest.mark.parametrize("name", sorted(BROKEN_PAGES))
def test_each_bad_page_alone_beside_a_good_page(tmp_path, name):
    """One test per kind: the bad page is reported, the good page beside it loads."""
    shutil.copy(BROKEN / "good-page.md", tmp_path / "good-page.md")
    shutil.copy(BROKEN / name, tmp_path / name)
    if name == "duplicate-url-2.md":
        shutil.copy(BROKEN / "duplicate-url-1.md", tmp_path / "duplicate-url-1.md")
    corpus = load_corpus(tmp_path)
    assert corpus.errors["path"].tolist() == [name]
    assert "good-page.md" in set(corpus.pages["path"])


def test_strict_raises_the_first_bad_page_with_the_same_message(broken_corpus):
    with pytest.raises(PageError) as info:
        load_corpus(BROKEN, strict=True)
    first = broken_corpus.errors.iloc[0]
    assert str(info.value) == first["message"]
    assert info.value.path == first["path"] == "duplicate-url-2.md"


@pytest.mark.parametrize(
    ("front_matter", "start"),
    [
        ("title: [a]\nurl: /x", "wrong type: `title` is a list"),
        ("title: T\nurl: 5", "wrong type: `url` is a number (5), expected text; quote it"),
        ("title: yes\nurl: /x", "wrong type: `title` is true/false"),
        ("title: T\nurl: /x\nid: 1.5", "wrong type: `id` is a number (1.5), expected an integer"),
        ("title: T\nurl: /x\nid: true", "wrong type: `id` is true/false"),
        ("title: T\nurl: /x\nscore: high", "wrong type: `score` is text ('high')"),
        ("title: T\nurl: /x\nno_index: 'yes'", "wrong type: `no_index` is text"),
        ("title: T\nurl: /x\ndate: someday", "wrong type: `date` 'someday' is not a YYYY-MM-DD"),
        (
            "title: T\nurl: /x\nseo: words",
            "wrong type: `seo` is text ('words'), expected a mapping",
        ),
        (
            "title: T\nurl: /x\nseo:\n  page_keywords: {a: 1}",
            "wrong type: `page_keywords` is a mapping",
        ),
        (
            "title: T\nurl: /x\nrelated_article1: /y",
            "bad related block: `related_article1` must be",
        ),
        ("title: T\nurl: /x\nrelated_article1:\n  id: 3", "bad related block"),
        ("title: T\nurl: /x\nanswer: [1, 2]", "wrong type: `answer` is a list"),
        ("title: T\nurl: /x\na: &a [*a]", "invalid YAML"),
        ("title: T\nurl: /x\n? [a, b]\n: c", "invalid YAML"),
        ("", "empty front matter"),
        ("just text", "front matter is not a mapping: it is text"),
    ],
)
def test_field_checks(tmp_path, front_matter, start):
    (tmp_path / "page.md").write_text(f"---\n{front_matter}\n---\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert corpus.pages.empty
    message = corpus.errors["message"].iloc[0]
    assert message.split(": ", 1)[1].startswith(start), message


def test_line_numbers_point_at_the_key(tmp_path):
    (tmp_path / "page.md").write_text(
        "---\ntitle: T\nurl: /x\n\nscore: high\n---\n", encoding="utf-8"
    )
    assert load_corpus(tmp_path).errors["line"].tolist() == [5]


# ---------------------------------------------------------------- the file system


def _write_page(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\ntitle: Page {url}\nurl: {url}\n---\n", encoding="utf-8")


def test_walk_follows_folder_symlinks_reports_loops_and_skips_dot_folders(tmp_path):
    _write_page(tmp_path / "a" / "one.md", "/one")
    _write_page(tmp_path / "real" / "two.md", "/two")
    _write_page(tmp_path / ".git" / "three.md", "/three")
    (tmp_path / "a" / "notes.txt").write_text("not a page")
    os.symlink(tmp_path / "real", tmp_path / "linked")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    corpus = load_corpus(tmp_path)
    assert sorted(corpus.pages.index) == ["/one", "/two"]
    problems = dict(zip(corpus.errors["path"], corpus.errors["problem"], strict=True))
    assert problems["a/loop"] == "symlink loop"
    # the folder reached twice (real/ and linked/) is read once and reported once
    assert {"linked", "real"} & set(problems) and len(problems) == 2


def test_unreadable_page_is_reported_not_fatal(tmp_path):
    _write_page(tmp_path / "good.md", "/good")
    os.symlink(tmp_path / "missing-target.md", tmp_path / "dangling.md")
    corpus = load_corpus(tmp_path)
    assert corpus.pages.index.tolist() == ["/good"]
    row = corpus.errors.iloc[0]
    assert (row["path"], row["problem"]) == ("dangling.md", "unreadable file")
    assert "No such file" in row["detail"]


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(SiteNotFoundError, match="not a folder"):
        load_corpus(tmp_path / "nowhere")


def test_processes_give_the_same_result_as_one(monkeypatch):
    serial = load_corpus(SAMPLE)
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 1)
    parallel = load_corpus(SAMPLE, n_jobs=2)
    pd.testing.assert_frame_equal(serial.pages, parallel.pages)
    pd.testing.assert_frame_equal(serial.links, parallel.links)
    # bad pages travel back from the workers with every field
    pd.testing.assert_frame_equal(load_corpus(BROKEN).errors, load_corpus(BROKEN, n_jobs=2).errors)


# ---------------------------------------------------------------- the bundled sample


def test_bundled_sample_has_the_awkward_cases():
    corpus = load_corpus(SAMPLE)
    pages = corpus.pages
    assert corpus.errors.empty
    assert len(pages) >= 60 and pages["folder"].nunique() >= 6
    # one question cross-listed under two folders: same id and answer, different url
    shared = pages[pages.duplicated("id", keep=False)]
    assert shared["folder"].nunique() == 2 and shared["answer"].nunique() == 1
    assert pages["no_index"].sum() == 1
    counts = pages["related_urls"].map(len)
    assert (counts == 0).any() and (counts == 5).any()
    assert pages.groupby("subject_key")["subject"].nunique().max() == 2
    # a related block whose id is stale (not the id of the page at its url)
    merged = corpus.links.join(pages["id"], on="target_url")
    assert (merged["target_id"] != merged["id"]).sum() == 1
    assert pages["answer"].str.contains(r"\n", regex=False).all()
    assert pages["answer"].str.contains("$", regex=False).any()
    assert pages["id"].lt(0).any() and pages["score"].isna().any()


# ---------------------------------------------------------------- the real corpus


@pytest.mark.real_corpus
def test_real_corpus_loads_completely(real_corpus):
    pages = real_corpus.pages
    assert len(pages) == 35_915
    assert real_corpus.errors.empty
    assert pages.index.is_unique
    assert pages["folder"].nunique() == 40
    assert int(pages["no_index"].sum()) == 67
    assert int(pages["score"].isna().sum()) == 7_851
    assert int((pages["id"] < 0).sum()) > 0
    assert len(real_corpus.links) == 103_133
    assert int((pages["related_urls"].map(len) == 0).sum()) == 9_697
    # ids are shared by cross-listed copies: 2,402 ids by 4,876 files
    shared = pages["id"].value_counts()
    assert (shared > 1).sum() == 2_402 and shared[shared > 1].sum() == 4_876


@pytest.mark.real_corpus
def test_real_corpus_cleaned_text(real_corpus):
    texts = real_corpus.pages["answer_text"]
    assert not texts.str.contains(r"\n", regex=False).any()  # no literal backslash-n left
    assert not texts.str.contains("**", regex=False).any()
    assert not texts.str.contains("$", regex=False).any()
    assert not texts.str.contains(r"\frac", regex=False).any()
    assert texts.str.contains("\n").mean() > 0.9  # real line breaks instead
    sample = real_corpus.pages.loc[
        real_corpus.pages["answer"].str.contains(r"**Stabilization of Trade**", regex=False)
    ]
    for raw, clean in zip(sample["answer"], sample["answer_text"], strict=True):
        assert "Stabilization of Trade" in clean and "**" in raw
    titles = real_corpus.pages[["title", "title_text"]]
    assert (titles["title"].str.split().str.join(" ") == titles["title_text"]).mean() > 0.99


def test_pages_are_sorted_by_url_a_column_at_a_time_each_freed_once_copied():
    from recommender.corpus import _by_url

    loaded = pd.DataFrame(
        {
            "url": pd.array(["/c", "/a", "/b", "/a2"], dtype="str"),
            "title": pd.array(["C", "A", "B", None], dtype="str"),
            "id": pd.array([3, 1, None, 4], dtype="Int64"),
            "score": [0.3, 0.1, 0.2, float("nan")],
            "no_index": [False, True, False, False],
            "keywords": pd.Series([["c"], ["a"], [], ["d"]], dtype=object),
        }
    )
    loaded = pd.concat([loaded.iloc[:2], loaded.iloc[2:]], ignore_index=True)  # as loaded: texts
    assert pa.array(loaded["title"].array).num_chunks == 2  # in chunks, one per worker's chunk
    expected = loaded.iloc[[1, 3, 2, 0]].set_index("url")
    pages = _by_url(loaded)
    pd.testing.assert_frame_equal(pages, expected)
    assert pages.index.name == "url" and loaded.columns.empty  # every column handed on


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux's /proc")
def test_freed_texts_give_their_memory_back_to_the_system():
    import numpy as np

    from recommender.corpus import release_freed_texts

    texts = pd.Series([f"{i} " * 400 for i in range(1000)], dtype="str")
    copy = texts.array.take(np.arange(250_000) % 1000)  # about 400 MB of pyarrow strings
    del copy
    held = _resident_bytes()
    release_freed_texts()
    assert held - _resident_bytes() > 200 * 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux's /proc")
def test_texts_freed_on_the_c_heap_give_their_memory_back_to_the_system():
    from recommender.corpus import _malloc_trim, release_free_memory

    if _malloc_trim() is None:
        pytest.skip("the C library has no malloc_trim")
    texts = [f"{i:08d}" * 150 for i in range(300_000)]  # 1.2 kB each: malloc, not pymalloc
    kept = texts[::500]  # scattered survivors: glibc cannot shrink its heap from the top
    del texts
    held = _resident_bytes()
    release_free_memory()
    assert held - _resident_bytes() > 200 * 2**20
    assert len(kept) == 600
