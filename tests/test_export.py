import errno
import json
import logging
import os
import re
import shutil
import stat
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender import Recommender, load_corpus
from recommender.errors import ExportError, RewriteCheckError, UnsafeFileError
from recommender.export import (
    LOADED_COLUMNS,
    PageChange,
    WriteBack,
    check_output_path,
    export_links,
    related_blocks,
    replace_related,
    targets_by_source,
    write_atomic,
    write_links_table,
    written_blocks,
    yaml_scalar,
)
from recommender.files import SCRATCH_FOLDER, PageWriter
from recommender.frames import is_in
from recommender.rewrite import check_rewrite

from .conftest import FIXTURES, SAMPLE

EXPORT = FIXTURES / "export"
CASES = sorted(p.name[: -len(".targets.json")] for p in EXPORT.glob("*.targets.json"))

# Independent of the code under test: a related block is its header line and
# the indented lines under it.
BLOCK = re.compile(r"^related_article\d+:.*\r?\n(?:[ \t]+\S.*\r?\n|[ \t]*\r?\n(?=[ \t]+\S))*", re.M)


def without_blocks(text: str) -> str:
    return BLOCK.sub("", text)


def front_matter(text: str) -> dict:
    return yaml.safe_load(re.split(r"^---\r?$", text.lstrip("\ufeff"), maxsplit=2, flags=re.M)[1])


def blocks_of(data: dict) -> list[dict]:
    keys = sorted((k for k in data if k.startswith("related_article")), key=lambda k: int(k[15:]))
    assert keys == [f"related_article{n}" for n in range(1, len(keys) + 1)]
    return [data[k] for k in keys]


def expected_blocks(targets: list[dict]) -> list[dict]:
    return [{k: v for k, v in t.items() if v not in (None, "")} for t in targets]


@pytest.mark.parametrize("case", CASES)
def test_fixture_page_gives_its_expected_text(case):
    text = (EXPORT / f"{case}.md").read_bytes().decode("utf-8")
    targets = json.loads((EXPORT / f"{case}.targets.json").read_text(encoding="utf-8"))
    expected = (EXPORT / f"{case}.expected.md").read_bytes().decode("utf-8")
    assert replace_related(text, targets) == expected


@pytest.mark.parametrize("case", CASES)
def test_fixture_result_reads_back_and_keeps_every_other_byte(case):
    text = (EXPORT / f"{case}.md").read_bytes().decode("utf-8")
    targets = json.loads((EXPORT / f"{case}.targets.json").read_text(encoding="utf-8"))
    result = replace_related(text, targets)
    assert blocks_of(front_matter(result)) == expected_blocks(targets)
    assert without_blocks(result) == without_blocks(text)
    assert replace_related(result, targets) == result  # idempotent
    if "\r\n" in text:
        assert "\n" not in result.replace("\r\n", "")


def test_pages_without_front_matter_are_refused():
    with pytest.raises(ValueError, match=r"^the file does not open with a '---' line$"):
        replace_related("no front matter\n", [])


def test_related_blocks_spans():
    text = "a: 1\nrelated_article1:\n    id: 2\n\n    url: /u\n\nb: 2\nrelated_articles: 3\n"
    assert [text[a:b] for a, b in related_blocks(text)] == [
        "related_article1:\n    id: 2\n\n    url: /u\n"
    ]


@pytest.mark.parametrize(
    "value",
    [
        "Sociology",
        "yes",
        "No",
        "null",
        "~",
        "true",
        "on",
        "123",
        "1e3",
        ".inf",
        "0x1F",
        "2024-01-02",
        "",
        " leading",
        "trailing ",
        "a: b",
        "a #b",
        "#x",
        "- x",
        "-x",
        "*x",
        "&x",
        "!x",
        "%x",
        "@x",
        "`x",
        "'x'",
        '"x"',
        "x\ny",
        "tab\there",
        "nel\x85",
        "ls\u2028",
        "bom\ufeff",
        "ctrl\x07",
        "back\\slash",
        "[a]",
        "{a}",
        "|",
        ">",
        "?",
        "?x",
        ":x",
        "caf\u00e9 \u4e2d \U0001f600",
        "/learn/a-b/questions/c_d",
    ],
)
@pytest.mark.parametrize("folded", [False, True])
def test_yaml_scalar_reads_back_exactly(value, folded):
    scalar = yaml_scalar(value, folded=folded)
    document = f"key: >-\n    {scalar[3:]}\n" if scalar.startswith(">-\n") else f"key: {scalar}\n"
    assert yaml.safe_load(document) == {"key": value}


def test_yaml_scalar_integers_and_refusals():
    assert yaml_scalar(-7) == "-7"
    assert yaml.safe_load(f"k: {yaml_scalar(10**20)}") == {"k": 10**20}
    with pytest.raises(TypeError, match="cannot write bool True as a related block value"):
        yaml_scalar(True)
    with pytest.raises(TypeError, match=r"cannot write float 1\.5"):
        yaml_scalar(1.5)


text_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
targets_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.none(), st.integers(-(10**12), 10**12)),
            "title": text_values,
            "subject": st.one_of(st.just(""), text_values),
            "url": text_values,
        }
    ),
    max_size=6,
)


# no deadline: how long an example takes depends on the machine's load, not on the code
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(targets=targets_strategy, crlf=st.booleans(), old=targets_strategy)
def test_round_trip_any_values(targets, crlf, old):
    page = "---\ntitle: T\nurl: /t\nanswer: >-\n    text\n---\nbody\n"
    page = replace_related(page, old)
    if crlf:
        page = page.replace("\n", "\r\n")
    result = replace_related(page, targets)
    assert blocks_of(front_matter(result)) == expected_blocks(targets)
    assert front_matter(result)["answer"] == "text"
    assert result.endswith("---" + ("\r\n" if crlf else "\n") + "body" + ("\r\n" if crlf else "\n"))
    assert replace_related(result, targets) == result


def test_a_block_value_that_is_an_array_is_refused_by_its_type():
    page = "---\ntitle: T\nurl: /t\n---\nbody\n"
    target = {"id": 1, "title": np.array(["a", "b"]), "subject": "S", "url": "/a"}
    with pytest.raises(TypeError, match="cannot write ndarray"):
        replace_related(page, [target])


@pytest.mark.parametrize("missing", [None, "", float("nan"), np.nan, np.float32("nan"), pd.NA])
def test_a_missing_id_is_left_out_of_its_block(missing):
    page = "---\ntitle: T\nurl: /t\n---\nbody\n"
    result = replace_related(page, [{"id": missing, "title": "A", "subject": "S", "url": "/a"}])
    assert blocks_of(front_matter(result)) == [{"title": "A", "subject": "S", "url": "/a"}]


# ---------------------------------------------------------------- whole sites


def links_for(root):
    corpus = load_corpus(root)
    return corpus, Recommender().fit(corpus.pages).related_


def snapshot(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*.md"))}


def test_report_without_writing_then_write_then_nothing_left(site):
    corpus, links = links_for(site)
    before = snapshot(site)
    seen = []
    report = export_links(site, corpus.pages, links, on_change=seen.append)
    assert snapshot(site) == before  # nothing written
    assert set(report["status"]) == {"changed"}
    assert sorted(c.path for c in seen) == sorted(report["path"])
    assert seen[0].diff().startswith(f"--- a/{seen[0].path}\n+++ b/{seen[0].path}\n")

    written = export_links(site, corpus.pages, links, write=True)
    assert (written["status"] == "written").all()
    after = snapshot(site)
    for path, (data, _) in after.items():
        assert without_blocks(data.decode()) == without_blocks(before[path][0].decode())

    reloaded = load_corpus(site)
    assert reloaded.errors.empty
    again = export_links(
        site, reloaded.pages, Recommender().fit(reloaded.pages).related_, write=True
    )
    assert (again["status"] == "unchanged").all()
    assert snapshot(site) == after  # not a byte, not an mtime


def test_written_blocks_equal_the_target_pages(site):
    corpus, links = links_for(site)
    export_links(site, corpus.pages, links, write=True)
    pages = corpus.pages
    for source, group in links.groupby("source_url"):
        data = front_matter((site / pages.at[source, "path"]).read_text(encoding="utf-8"))
        blocks = blocks_of(data)
        assert [b["url"] for b in blocks] == group.sort_values("rank")["target_url"].tolist()
        for block in blocks:
            target = pages.loc[block["url"]]
            assert block["id"] == target["id"]
            assert (block["title"], block["subject"]) == (target["title"], target["subject"])


ODD_TARGETS = [  # id, title, subject of a target page, as a caller's frame may hold them
    (None, "A title", ""),
    (pd.NA, "yes", None),
    (7, "123", "0x1F"),
    (-(2**40), "Ünïcode: a 'quoted' \"title\" # with a hash", "Chemistry"),
    (3, "A long title " * 12, "  spaced  "),
    (-(2**63), "The least int64", "x"),
    (2**63, "An id no int64 holds: read back as missing", "x"),
    (2**70, "Nor this one", "x"),
]


def test_written_blocks_are_what_the_loader_reads_back(site):
    corpus, links = links_for(site)
    pages = corpus.pages.copy()
    targets = links["target_url"].unique()[: len(ODD_TARGETS)]
    pages["id"] = pages["id"].astype(object)
    for url, (block_id, title, subject) in zip(targets, ODD_TARGETS, strict=True):
        pages.loc[url, ["id", "title", "subject"]] = [block_id, title, subject]
    export_links(site, pages, links, write=True)
    on_disk = load_corpus(site).links
    assert is_in(on_disk["target_url"], targets).any()
    pd.testing.assert_frame_equal(
        written_blocks(pages, links.sample(frac=1, random_state=0)), on_disk
    )


def test_counts_of_links_added_removed_kept(site):
    corpus, links = links_for(site)
    report = export_links(site, corpus.pages, links).set_index("url")
    for url, row in report.iterrows():
        old = set(corpus.pages.at[url, "related_urls"])
        new = set(links.loc[links["source_url"] == url, "target_url"])
        assert (row["links_added"], row["links_removed"], row["links_kept"]) == (
            len(new - old),
            len(old - new),
            len(new & old),
        )


def test_file_mode_and_symlinks_inside_the_site_are_kept(site):
    corpus, links = links_for(site)
    first, second = corpus.pages["path"].iloc[0], corpus.pages["path"].iloc[1]
    os.chmod(site / first, 0o640)
    kept_apart = site / ".drafts" / "second.md"  # inside the root, in a folder not walked
    kept_apart.parent.mkdir()
    shutil.move(site / second, kept_apart)
    os.symlink(kept_apart, site / second)
    before = kept_apart.read_bytes()
    report = export_links(site, corpus.pages, links, write=True).set_index("path")
    assert stat.S_IMODE((site / first).stat().st_mode) == 0o640
    assert report.at[second, "status"] == "written"
    assert (site / second).is_symlink()
    assert kept_apart.read_bytes() != before
    assert not list(site.rglob("*.tmp"))


def test_a_page_that_broke_since_loading_is_reported_and_the_rest_written(site):
    corpus, links = links_for(site)
    broken = corpus.pages["path"].iloc[3]
    (site / broken).write_text("no front matter any more\n", encoding="utf-8")
    report = export_links(site, corpus.pages, links, write=True).set_index("path")
    assert report.at[broken, "status"] == "error"
    assert "does not open with" in report.at[broken, "detail"]
    assert (report.drop(broken)["status"] == "written").all()


def test_links_to_unknown_pages_are_refused(site):
    corpus, links = links_for(site)
    links.loc[0, "target_url"] = "/nowhere"
    with pytest.raises(ExportError, match=r"not pages of the site.*'/nowhere'"):
        export_links(site, corpus.pages, links)
    other = [url for url in corpus.pages.index if url != links.loc[0, "source_url"]]
    with pytest.raises(ExportError, match="'/nowhere'"):  # whichever pages are written
        export_links(site, corpus.pages, links, sources=other[:3])


@pytest.mark.parametrize("kind", [set, list, pd.Index, tuple])
def test_only_the_sources_are_written_and_as_a_whole_run_writes_them(site, tmp_path, kind):
    corpus, links = links_for(site)
    whole = tmp_path / "whole"
    shutil.copytree(site, whole)
    every = export_links(whole, corpus.pages, links, write=True).set_index("url")
    sources = corpus.pages.index[::7]
    before = snapshot(site)
    some = export_links(site, corpus.pages, links, write=True, sources=kind(sources))
    assert sorted(some["url"]) == sorted(sources)
    pd.testing.assert_frame_equal(some.set_index("url"), every.loc[some["url"]])
    for path, (text, mtime) in snapshot(site).items():
        relative = path.relative_to(site)
        if corpus.pages.set_index("path").index.get_loc(relative.as_posix()) % 7 == 0:
            assert text == (whole / relative).read_bytes()  # as the whole run wrote it
        else:
            assert (text, mtime) == before[path]  # not touched
    assert export_links(site, corpus.pages, links, sources=[]).empty


def test_write_atomic_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "page.md"
    path.write_text("old", encoding="utf-8")

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, b"new")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]


# ---------------------------------------------------------------- write-back modes


@pytest.mark.parametrize(
    ("rewrite", "check", "diff", "mode", "writes", "shows_diff", "checks"),
    [
        (False, False, False, WriteBack.NO, False, False, False),
        (False, False, True, WriteBack.DIFF, False, True, False),
        (True, False, False, WriteBack.YES, True, False, False),
        (True, False, True, WriteBack.YES_DIFF, True, True, False),
        (False, True, False, WriteBack.CHECK, False, False, True),
        (False, True, True, WriteBack.CHECK_DIFF, False, True, True),
    ],
)
def test_write_back_modes_from_options(rewrite, check, diff, mode, writes, shows_diff, checks):
    found = WriteBack.from_options(rewrite=rewrite, check=check, diff=diff)
    assert found is mode
    assert (found.writes, found.shows_diff, found.checks) == (writes, shows_diff, checks)


def test_write_back_refuses_rewrite_with_check():
    with pytest.raises(ValueError, match="--rewrite and --check cannot be given together"):
        WriteBack.from_options(rewrite=True, check=True, diff=False)


def test_page_change_diff_is_a_unified_diff():
    change = PageChange(path="a/b.md", url="/b", old="x\ny\n", new="x\nz\n")
    assert change.diff() == "--- a/a/b.md\n+++ b/a/b.md\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n"
    assert PageChange(path="p.md", url="/p", old="same\n", new="same\n").diff() == ""


# ---------------------------------------------------------------- the links table


@pytest.fixture
def links_table():
    return pd.DataFrame(
        {
            "source_url": ["/a", "/a", "/b"],
            "rank": [1, 2, 1],
            "target_url": ["/b", "/c", "/a"],
            "score": [0.5, 0.25, 0.125],
        }
    )


@pytest.mark.parametrize(
    ("suffix", "read"),
    [
        (".csv", pd.read_csv),
        (".CSV", pd.read_csv),
        (".parquet", pd.read_parquet),
        (".jsonl", lambda path: pd.read_json(path, lines=True)),
    ],
)
def test_links_table_round_trips_in_each_format(tmp_path, links_table, suffix, read):
    path = tmp_path / f"links{suffix}"
    write_links_table(links_table, path)
    pd.testing.assert_frame_equal(read(path), links_table, check_dtype=False)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_links_table_csv_and_jsonl_text(tmp_path, links_table):
    write_links_table(links_table.iloc[:1], tmp_path / "links.csv")
    assert (
        tmp_path / "links.csv"
    ).read_bytes() == b"source_url,rank,target_url,score\n/a,1,/b,0.5\n"
    unicode = links_table.iloc[:1].assign(target_url="/caf\u00e9")
    write_links_table(unicode, tmp_path / "links.jsonl")
    text = (tmp_path / "links.jsonl").read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.count("\n") == 1 and "caf\u00e9" in text  # not \\u00e9
    assert json.loads(text) == {
        "source_url": "/a",
        "rank": 1,
        "target_url": "/caf\u00e9",
        "score": 0.5,
    }


def test_links_table_paths_that_cannot_be_written_are_refused_first(
    tmp_path, links_table, monkeypatch
):
    with pytest.raises(ExportError, match=r"links\.txt: a links table must end in \.csv, "):
        check_output_path(tmp_path / "links.txt")
    with pytest.raises(ExportError, match=r"the folder .*missing does not exist"):
        check_output_path(tmp_path / "missing" / "links.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ExportError, match=r"folder\.csv: is a folder"):
        check_output_path(tmp_path / "folder.csv")
    check_output_path(tmp_path / "links.parquet")  # fine: nothing raised, nothing written
    assert not (tmp_path / "links.parquet").exists()
    # a folder the user may not write to (os.access, so that it holds when run as root)
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK | os.X_OK)
    with pytest.raises(
        ExportError, match=rf"the folder {re.escape(str(tmp_path))} is not writable"
    ):
        check_output_path(tmp_path / "links.csv")
    with pytest.raises(ExportError, match="is not writable"):
        write_links_table(links_table, tmp_path / "links.csv")
    assert not (tmp_path / "links.csv").exists()


def test_links_table_write_errors_become_export_errors(tmp_path, links_table, monkeypatch):
    def refused(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("recommender.export.write_atomic", refused)
    with pytest.raises(ExportError, match=r"cannot write the links table: Permission denied$"):
        write_links_table(links_table, tmp_path / "links.csv")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_links_table_leaves_the_frames_index_out(tmp_path, links_table, suffix):
    some = links_table.iloc[[2, 0]]  # an index that is not 0..n-1
    path = tmp_path / f"links{suffix}"
    write_links_table(some, path)
    read = {
        ".csv": pd.read_csv,
        ".parquet": pd.read_parquet,
        ".jsonl": lambda p: pd.read_json(p, lines=True),
    }[suffix]
    back = read(path)
    assert list(back.columns) == list(links_table.columns)
    pd.testing.assert_frame_equal(back, some.reset_index(drop=True), check_dtype=False)


@pytest.fixture
def tiny_site(tmp_path):
    root = tmp_path / "tiny"
    root.mkdir()
    for name, title in (("a", "Alpha"), ("b", "Beta")):
        (root / f"{name}.md").write_text(
            f"---\ntitle: {title}\nurl: /{name}\nanswer: text\n---\n", encoding="utf-8"
        )
    pages = load_corpus(root).pages
    links = pd.DataFrame({"source_url": ["/a"], "rank": [1], "target_url": ["/b"]})
    return root, pages, links


def test_export_shows_a_progress_bar_only_when_asked(tiny_site, capsys):
    root, pages, links = tiny_site
    export_links(root, pages, links)
    assert capsys.readouterr().err == ""
    export_links(root, pages, links, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"(^|\r)comparing: ", err) and " 2/2 [" in err
    assert re.search(r"[\d.?]+(page/s|s/page)\]", err), err
    export_links(root, pages, links, write=True, progress=True)
    assert re.search(r"(^|\r)writing: ", capsys.readouterr().err)


def test_a_page_that_cannot_be_written_is_an_error_and_logged(tiny_site, monkeypatch, caplog):
    root, pages, links = tiny_site

    def refused(writer, path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("recommender.files.PageWriter.replace", refused)
    with caplog.at_level(logging.WARNING, logger="recommender.rewrite"):
        report = export_links(root, pages, links, write=True).set_index("path")
    assert report.at["a.md", "status"] == "error"
    assert report.at["a.md", "detail"].startswith(
        "a.md: cannot write: [Errno 13] Permission denied"
    )
    assert report.at["b.md", "status"] == "unchanged"
    assert caplog.messages[0].startswith("a.md: cannot write: [Errno 13]")


def test_ids_from_pandas_are_written_as_plain_integers():
    page = "---\ntitle: T\nurl: /t\n---\n"
    target = {"id": np.int64(7), "title": "A", "subject": "S", "url": "/a"}
    result = replace_related(page, [target, dict(target, id=8.0, url="/b")])
    assert "    id: 7\n" in result and "    id: 8\n" in result
    assert [b["id"] for b in blocks_of(front_matter(result))] == [7, 8]


def test_write_atomic_gives_a_new_file_the_modes_the_umask_allows(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.md", b"text")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o640
    assert (tmp_path / "new.md").read_bytes() == b"text"


def test_write_atomic_writes_through_a_hidden_temporary_file_beside_the_page(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace

    def recording(source, target):
        replaced.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording)
    write_atomic(tmp_path / "page.md", b"new")
    ((temporary, target),) = replaced
    assert temporary.parent == tmp_path and target == tmp_path / "page.md"
    assert re.fullmatch(r"\.page\.md\..+\.tmp", temporary.name)


def test_a_page_write_interrupted_leaves_the_old_page_and_no_temporary_file(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("old", encoding="utf-8")
    page.chmod(0o640)

    def killed(*_, **__):
        raise KeyboardInterrupt

    with PageWriter(os.path.realpath(tmp_path)) as writer:
        writer.replace(page, b"new")
        assert page.read_bytes() == b"new" and stat.S_IMODE(page.stat().st_mode) == 0o640
        monkeypatch.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            writer.replace(page, b"newer")
    assert page.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]


@pytest.mark.parametrize("when", ["as the temporary file is created", "once it replaced the page"])
def test_an_interrupt_at_either_end_of_a_write_leaves_no_temporary_file(
    tmp_path, monkeypatch, when
):
    """The command line turns SIGTERM into an interrupt, which can land the moment the
    temporary file exists but before the code that would remove it runs (a hostile pass
    saw one left, once in 14 runs)."""
    page = tmp_path / "page.md"
    page.write_text("old", encoding="utf-8")
    real = {"open": os.open, "replace": os.replace}
    name = "open" if when.startswith("as") else "replace"

    def interrupted(*args, **kwargs):
        done = real[name](*args, **kwargs)
        if str(args[0]).endswith(".tmp"):  # not the folder's open
            raise KeyboardInterrupt
        return done

    monkeypatch.setattr(os, name, interrupted)
    with PageWriter(os.path.realpath(tmp_path)) as writer, pytest.raises(KeyboardInterrupt):
        writer.replace(page, b"new")
    monkeypatch.undo()
    assert page.read_bytes() == (b"old" if name == "open" else b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]


def test_a_page_writer_never_writes_through_a_folder_leading_outside(tmp_path):
    site, outside = tmp_path / "site", tmp_path / "outside"
    (site / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "page.md").write_text("theirs", encoding="utf-8")
    (site / "b").symlink_to(outside)
    with (
        PageWriter(os.path.realpath(site)) as writer,
        pytest.raises(UnsafeFileError, match="outside the site"),
    ):
        writer.replace(site / "b" / "page.md", b"mine")
    assert (outside / "page.md").read_text(encoding="utf-8") == "theirs"


def _replaces_recorded(monkeypatch, root: Path, failing: bool = False) -> list[str]:
    """Where each ``os.replace`` found its source: ``scratch`` or ``beside`` (the page's
    folder); with ``failing``, one from the scratch folder fails as across file systems."""
    seen, real = [], os.replace

    def recording(source, target, *, src_dir_fd=None, dst_dir_fd=None):
        where = "scratch" if (root / SCRATCH_FOLDER / source).exists() else "beside"
        seen.append(where)
        if failing and where == "scratch":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(source, target, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(os, "replace", recording)
    return seen


def test_new_page_texts_are_written_in_a_scratch_folder_removed_at_the_end(tmp_path, monkeypatch):
    """The temporary files go to one folder at the root, not beside each page: there,
    a new file never waits for the inodes the replaced pages freed (see README)."""
    (tmp_path / "a").mkdir()
    pages = [tmp_path / "a" / "one.md", tmp_path / "two.md"]
    for page in pages:
        page.write_text("old", encoding="utf-8")
        page.chmod(0o640)
    seen = _replaces_recorded(monkeypatch, tmp_path)
    with PageWriter(os.path.realpath(tmp_path)) as writer:
        for page in pages:
            writer.replace(page, b"new")
        scratch = (tmp_path / SCRATCH_FOLDER).stat()
        assert (
            stat.S_IMODE(scratch.st_mode) == 0o700
            and list((tmp_path / SCRATCH_FOLDER).iterdir()) == []
        )
    assert seen == ["scratch", "scratch"]
    assert all(p.read_bytes() == b"new" and stat.S_IMODE(p.stat().st_mode) == 0o640 for p in pages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "two.md"]


def test_a_scratch_folder_of_ours_already_there_is_used_and_left(tmp_path, monkeypatch):
    """Another writer of ours may be using it: only the writer that made it removes it."""
    (tmp_path / "page.md").write_text("old", encoding="utf-8")
    (tmp_path / SCRATCH_FOLDER).mkdir(mode=0o755)
    seen = _replaces_recorded(monkeypatch, tmp_path)
    with PageWriter(os.path.realpath(tmp_path)) as writer:
        writer.replace(tmp_path / "page.md", b"new")
    assert seen == ["scratch"] and (tmp_path / "page.md").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [SCRATCH_FOLDER, "page.md"]
    assert list((tmp_path / SCRATCH_FOLDER).iterdir()) == []


@pytest.mark.parametrize("planted", ["a link", "a folder others may write to", "another's folder"])
def test_a_scratch_folder_planted_by_someone_else_is_never_used(tmp_path, monkeypatch, planted):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "page.md").write_text("old", encoding="utf-8")
    scratch = site / SCRATCH_FOLDER
    if planted == "a link":
        scratch.symlink_to(elsewhere)
    else:
        scratch.mkdir()
        scratch.chmod(0o777 if planted.startswith("a folder") else 0o700)
    if planted == "another's folder":
        monkeypatch.setattr(os, "geteuid", lambda: os.stat(scratch).st_uid + 1)
    seen = _replaces_recorded(monkeypatch, site)
    with PageWriter(os.path.realpath(site)) as writer:
        writer.replace(site / "page.md", b"new")
    assert seen == ["beside"] and (site / "page.md").read_bytes() == b"new"
    assert scratch.is_symlink() if planted == "a link" else scratch.is_dir()
    assert list(elsewhere.iterdir()) == []


def test_a_page_the_scratch_folder_cannot_serve_is_written_beside_itself(tmp_path, monkeypatch):
    """A page under another mount in the site cannot be renamed into from the scratch
    folder: it is written as before, and so are its folder's later pages; the next
    folder's pages try the scratch folder again."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pages = [tmp_path / "a" / "one.md", tmp_path / "a" / "two.md", tmp_path / "b" / "three.md"]
    for page in pages:
        page.write_text("old", encoding="utf-8")
    seen = _replaces_recorded(monkeypatch, tmp_path, failing=True)
    with PageWriter(os.path.realpath(tmp_path)) as writer:
        for page in pages:
            writer.replace(page, page.name.encode())
    assert seen == ["scratch", "beside", "beside", "scratch", "beside"]
    assert [page.read_bytes() for page in pages] == [b"one.md", b"two.md", b"three.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_a_setgid_folders_pages_keep_its_group(tmp_path, monkeypatch):
    """A new file takes a setgid folder's group: one made in the scratch folder would
    take the process's, so such a folder's pages are written beside themselves."""
    folder = tmp_path / "shared"
    folder.mkdir()
    group = next(g for g in (100, 1, 2, 3) if g != os.getegid())
    try:
        os.chown(folder, -1, group)
    except PermissionError:
        pytest.skip("cannot give a folder another group here")
    folder.chmod(0o2775)
    other = tmp_path / "other-group"  # not setgid: its new files take the process's group
    other.mkdir()
    os.chown(other, -1, group)
    for page in (folder / "page.md", other / "page.md", tmp_path / "plain.md"):
        page.write_text("old", encoding="utf-8")
    seen = _replaces_recorded(monkeypatch, tmp_path)
    with PageWriter(os.path.realpath(tmp_path)) as writer:
        for page in (folder / "page.md", other / "page.md", tmp_path / "plain.md"):
            writer.replace(page, b"new")
    assert seen == ["beside", "scratch", "scratch"]
    assert (folder / "page.md").stat().st_gid == group


def test_a_folder_with_a_default_acl_has_its_pages_written_beside_themselves(tmp_path, monkeypatch):
    folder = tmp_path / "shared"
    folder.mkdir()
    # user::rwx group::r-x other::r-x, in the kernel's binary form (version 2)
    acl = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perms, 0xFFFFFFFF) for tag, perms in ((1, 7), (4, 5), (32, 5))
    )
    try:
        os.setxattr(folder, "system.posix_acl_default", acl)
    except (OSError, AttributeError):
        pytest.skip("no POSIX ACLs here")
    (folder / "page.md").write_text("old", encoding="utf-8")
    seen = _replaces_recorded(monkeypatch, tmp_path)
    with PageWriter(os.path.realpath(tmp_path)) as writer:
        writer.replace(folder / "page.md", b"new")
    assert seen == ["beside"] and (folder / "page.md").read_bytes() == b"new"


def test_targets_by_source_lists_each_sources_targets_in_rank_order():
    rng = np.random.default_rng(3)
    links = pd.DataFrame(
        {
            "source_url": rng.choice([f"/s{i}" for i in range(40)], 300),
            "rank": rng.permutation(300),
            "target_url": [f"/t{i % 50}" for i in range(300)],
        }
    )
    expected = links.sort_values("rank").groupby("source_url")["target_url"].agg(list).to_dict()
    found = targets_by_source(links)
    assert found == expected
    assert targets_by_source(links.iloc[:0]) == {}
    # one string object per distinct target, however many sources link to it
    assert len({id(url) for targets in found.values() for url in targets}) == 50


def test_pages_as_loaded_are_not_parsed_again_and_give_the_same_text(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(SAMPLE, site)
    corpus = load_corpus(site)
    links = corpus.links[["source_url", "rank", "target_url"]].assign(
        rank=lambda frame: -frame["rank"]  # every list reversed: every page changes
    )
    links = links[links["target_url"].isin(corpus.pages.index)]
    seen: dict[str, dict[str, str]] = {"known": {}, "parsed": {}}
    plain = corpus.pages.drop(columns=list(LOADED_COLUMNS))
    for name, pages in (("known", corpus.pages), ("parsed", plain)):
        export_links(
            site, pages, links, on_change=lambda c, n=name: seen[n].__setitem__(c.path, c.new)
        )
    assert seen["known"] and seen["known"] == seen["parsed"]


def test_a_written_pages_hash_and_spans_are_what_the_loader_finds_in_it(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(SAMPLE, site)
    corpus = load_corpus(site)
    links = corpus.links[["source_url", "rank", "target_url"]].assign(rank=lambda f: -f["rank"])
    links = links[links["target_url"].isin(corpus.pages.index)]
    edited = site / corpus.pages["path"].iloc[2]  # changed after loading: its rest too
    edited.write_text(edited.read_text(encoding="utf-8").replace("\ntitle:", "\nnote: 1\ntitle:"))
    report = export_links(site, corpus.pages, links, write=True).set_index("url")
    assert report.at[corpus.pages.index[2], "status"] == "written"
    assert pd.isna(report.at[corpus.pages.index[2], "file_digest"])
    written = (report["status"] == "written") & (report.index != corpus.pages.index[2])
    assert written.sum() > 10 and report.loc[~written, "file_digest"].isna().all()
    reloaded = load_corpus(site).pages.loc[report.index[written]]
    assert report.loc[written, "file_digest"].tolist() == reloaded["file_digest"].tolist()
    assert [list(s) for s in report.loc[written, "block_spans"]] == [
        list(s) for s in reloaded["block_spans"]
    ]


def test_a_wrong_fingerprint_or_a_changed_file_is_never_trusted(tmp_path, monkeypatch):
    site = tmp_path / "site"
    shutil.copytree(SAMPLE, site)
    corpus = load_corpus(site)
    links = corpus.links[["source_url", "rank", "target_url"]].assign(rank=lambda f: -f["rank"])
    links = links[links["target_url"].isin(corpus.pages.index)]
    lying = corpus.pages.assign(rest_fingerprint="0" * 32)
    report = export_links(site, lying, links).set_index("path")
    changing = report["status"] != "unchanged"
    assert changing.any() and (report.loc[changing, "status"] == "error").all()
    assert report.loc[changing, "detail"].str.contains("outside the related blocks").all()
    page = site / report.index[changing][0]
    page.write_text(
        page.read_text(encoding="utf-8").replace("\nanswer:", "\nreviewed: 7\nanswer:", 1)
    )
    again = export_links(site, lying, links, write=True).set_index("path")
    assert again.at[report.index[changing][0], "status"] == "written", again.at[
        report.index[changing][0], "detail"
    ]
    assert "reviewed: 7" in page.read_text(encoding="utf-8")


def test_every_file_change_is_made_by_the_calling_process_not_the_workers(site, monkeypatch):
    """Worker processes read, rewrite and check the pages; one process writes them all
    (two processes' creates and renames wait on each other on some file systems)."""
    from recommender import workers

    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 1)  # the sample is small
    corpus = load_corpus(site)
    links = corpus.links[["source_url", "rank", "target_url"]].assign(rank=lambda f: -f["rank"])
    links = links[links["target_url"].isin(corpus.pages.index)]
    writers, real = [], PageWriter.replace

    def recording(writer, path, data):  # patched here only: a worker would write unrecorded
        writers.append(os.getpid())
        real(writer, path, data)

    monkeypatch.setattr(PageWriter, "replace", recording)
    report = export_links(site, corpus.pages, links, write=True, n_jobs=2)
    written = (report["status"] == "written").sum()
    assert written > 10 and writers == [os.getpid()] * written


def test_a_page_edited_after_it_was_read_is_not_replaced(tmp_path, caplog):
    from recommender.rewrite import rewrite_pages, write_pending

    root = tmp_path / "site"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.md").write_text(f"---\ntitle: {name}\nurl: /{name}\n---\n", "utf-8")
    target = {"id": 1, "title": "T", "subject": "S", "url": "/t"}
    work = [(f"{name}.md", f"/{name}", [target], None) for name in ("a", "b")]
    outcomes, pending = rewrite_pages(work, root, True, 10_000, None)
    assert [status for status, *_ in outcomes] == ["written", "written"] and len(pending) == 2
    assert "related_article1" not in (root / "a.md").read_text("utf-8")  # not yet written
    (root / "a.md").write_text("---\ntitle: edited\nurl: /a\n---\n", "utf-8")
    with (
        caplog.at_level(logging.WARNING, logger="recommender.rewrite"),
        PageWriter(os.path.realpath(root)) as writer,
    ):
        write_pending(writer, root, pending, outcomes)
    assert outcomes[0][0] == "error" and "changed since it was read" in outcomes[0][1]
    assert (root / "a.md").read_text("utf-8") == "---\ntitle: edited\nurl: /a\n---\n"
    assert outcomes[1][0] == "written" and "url: /t" in (root / "b.md").read_text("utf-8")
    assert caplog.messages[0].startswith("a.md: cannot write: the page changed")


def test_the_workers_get_the_pages_a_window_at_a_time(site, monkeypatch):
    """What the workers rewrite waits in the calling process to be written: a window
    of pages at a time bounds it, with the same pages written as without windows."""
    from recommender import export

    corpus = load_corpus(site)
    links = corpus.links[["source_url", "rank", "target_url"]].assign(rank=lambda f: -f["rank"])
    links = links[links["target_url"].isin(corpus.pages.index)]
    handed, real = [], export.run_chunks

    def recording(function, items, *args, **kwargs):
        handed.append(len(items))
        return real(function, items, *args, **kwargs)

    monkeypatch.setattr(export, "run_chunks", recording)
    monkeypatch.setattr(export, "EXPORT_WINDOW_PAGES", 10)
    report = export_links(site, corpus.pages, links)  # compared only
    assert max(handed) == 10 and sum(handed) == len(report) > 30
    monkeypatch.setattr(export, "EXPORT_WINDOW_PAGES", 10_000)
    assert report.equals(export_links(site, corpus.pages, links))


def test_a_change_names_its_page_by_path_and_url(tiny_site):
    root, pages, links = tiny_site
    changes = []
    export_links(root, pages, links, on_change=changes.append)
    assert [(c.path, c.url) for c in changes] == [("a.md", "/a")]
    assert "related_article1" in changes[0].new and "related_article1" not in changes[0].old


OLD_PAGE = """title: Cells
score: .nan
tags: [a, b]
meta: {x: 1, y: 2}
related_article1:
  title: Old
  url: /old
"""


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        (OLD_PAGE.replace("Old", "New").replace("/old", "/new"), None),
        (OLD_PAGE.replace("tags: [a, b]", "tags: [a, b, c]"), "tags"),  # a longer list
        (OLD_PAGE.replace("tags: [a, b]", "tags: [a, c]"), "tags"),  # another item
        (OLD_PAGE.replace("tags: [a, b]", "tags: [b, a]"), "tags"),  # another order
        (OLD_PAGE.replace("score: .nan", "score: 1.0"), "score"),  # NaN is no number
        (OLD_PAGE.replace("meta: {x: 1, y: 2}", "meta: {y: 2, x: 1}"), "meta"),  # key order
        (OLD_PAGE.replace("meta: {x: 1, y: 2}", "meta: {x: 1.0, y: 2}"), "meta"),  # a type
        (OLD_PAGE.replace("  title: Old\n", "  title: New\n"), "related"),  # not the blocks
    ],
)
def test_check_rewrite_refuses_any_other_value_outside_the_blocks(new, problem):
    wanted = [{"title": "New", "url": "/new"}]
    if problem is None:
        check_rewrite(OLD_PAGE, new, wanted)  # NaN reads back as NaN: the same value
        return
    with pytest.raises(RewriteCheckError, match=problem):
        check_rewrite(OLD_PAGE, new, wanted)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("- a list\n", "the new front matter would not be a mapping"),
        (
            "title: [unclosed\n",
            "the new front matter would not parse: while parsing a flow sequence",
        ),
        (OLD_PAGE.replace("tags: [a, b]\n", ""), "the key `tags` would be lost or moved"),
        (OLD_PAGE + "zzz: 1\n", "the key `zzz` would be lost or moved"),
        (
            OLD_PAGE.replace("score: .nan\ntags: [a, b]", "tags: [a, b]\nscore: .nan"),
            "the key `score` would be lost or moved",  # the first key out of place
        ),
        (OLD_PAGE.replace("Cells", "Bones"), "the key `title` would read back differently"),
        (OLD_PAGE, "the new related blocks would not read back as the links meant"),
    ],
)
def test_check_rewrite_says_what_would_go_wrong(new, message):
    with pytest.raises(RewriteCheckError) as refused:
        check_rewrite(OLD_PAGE, new, [{"title": "New", "url": "/new"}])
    assert str(refused.value) == message


def test_check_rewrite_names_a_key_of_any_type_and_at_most_60_characters_of_it():
    wanted = [{"title": "New", "url": "/new"}]
    block = "related_article1:\n  title: New\n  url: /new\n"
    with pytest.raises(RewriteCheckError, match=r"^the key `1` would be lost or moved$"):
        check_rewrite("1: x\na: y\n", block, wanted)  # keys 1 and 'a' lost: sorted as text
    long = "k" * 70
    with pytest.raises(RewriteCheckError) as refused:
        check_rewrite(f"{long}: 1\n", f"{long}: 2\n{block}", wanted)
    assert str(refused.value) == f"the key `{long[:60]}` would read back differently"
    with pytest.raises(RewriteCheckError) as refused:
        check_rewrite(f"{long}: 1\n", block, wanted)
    assert str(refused.value) == f"the key `{long[:60]}` would be lost or moved"
    check_rewrite("", block, wanted)  # an empty front matter has nothing to lose


def test_new_text_must_read_back_to_the_loaders_fingerprint_of_the_rest():
    page = "---\ntitle: T\nurl: /p\n---\n"
    target = {"id": 3, "title": "New", "subject": "S", "url": "/new"}
    with pytest.raises(RewriteCheckError) as refused:
        replace_related(page, [target], known=([], "0" * 32))  # not this page's rest
    assert str(refused.value) == "the keys outside the related blocks would read back differently"


def test_a_page_gone_between_its_read_and_its_check_is_an_error(tmp_path, monkeypatch, caplog):
    from recommender import rewrite
    from recommender.rewrite import rewrite_pages

    root = tmp_path / "site"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.md").write_text(f"---\ntitle: {name}\nurl: /{name}\n---\n", "utf-8")
    real = rewrite._Pending.replace

    def gone(self, file, data):  # the page removed just after the worker read it
        if file.name == "a.md":
            raise FileNotFoundError(2, "No such file or directory")
        real(self, file, data)

    monkeypatch.setattr(rewrite._Pending, "replace", gone)
    target = {"id": 1, "title": "T", "subject": "S", "url": "/t"}
    work = [(f"{name}.md", f"/{name}", [target], None) for name in ("a", "b")]
    with caplog.at_level(logging.WARNING, logger="recommender.rewrite"):
        outcomes, pending = rewrite_pages(work, root, True, 10_000, None)
    assert outcomes[0] == (
        "error",
        "a.md: cannot write: [Errno 2] No such file or directory",
        None,
        None,
        None,
    )
    assert outcomes[1] == ("written", "", None, None, None)  # not as loaded, not written yet
    assert [page[1] for page in pending] == ["b.md"]
    assert caplog.messages == ["a.md: cannot write: [Errno 2] No such file or directory"]


def test_the_exporter_reads_no_page_over_its_size_limit(tiny_site, caplog):
    root, pages, links = tiny_site
    limit = (root / "b.md").stat().st_size  # a.md is one byte longer
    with caplog.at_level(logging.WARNING, logger="recommender.rewrite"):
        report = export_links(root, pages, links, write=True, max_page_bytes=limit)
    report = report.set_index("path")
    assert report.at["a.md", "status"] == "error"
    assert f"over the limit of {limit} bytes" in report.at["a.md", "detail"]
    assert report.at["b.md", "status"] == "unchanged"
    assert "related_article1" not in (root / "a.md").read_text("utf-8")
    assert caplog.messages == [
        f"a.md: not exported: {limit + 1} bytes or more, over the limit of {limit} bytes"
        " (max_page_bytes)"
    ]


def test_a_page_that_no_longer_parses_is_logged_by_path_and_first_line(tiny_site, caplog):
    root, pages, links = tiny_site
    (root / "a.md").write_text("---\ntitle: [unclosed\nurl: /a\n---\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="recommender.rewrite"):
        report = export_links(root, pages, links, write=True).set_index("path")
    detail = report.at["a.md", "detail"]
    assert report.at["a.md", "status"] == "error" and detail.startswith("a.md: while parsing")
    assert "\n" not in detail  # the first line of the parser's message, not all of it
    assert caplog.messages == [detail.replace("a.md: ", "a.md: not exported: ", 1)]


def test_only_an_error_has_a_detail(tiny_site):
    root, pages, links = tiny_site
    for write, statuses in ((False, {"changed", "unchanged"}), (True, {"written", "unchanged"})):
        report = export_links(root, pages, links, write=write)
        assert set(report["status"]) == statuses
        assert (report["detail"] == "").all()
    assert set(export_links(root, pages, links, write=True)["status"]) == {"unchanged"}


def test_blocks_that_do_not_parse_alone_are_rewritten_when_they_say_something_else(tmp_path):
    """Blocks found by the cheap look (their count and urls) but that do not parse on their
    own (an alias to a value outside them) are compared no further: they are rewritten."""
    page = (
        "---\ntitle: &s Biology\nurl: /p\nrelated_article1:\n  id: 1\n  title: Old title\n"
        "  subject: *s\n  url: /a\n---\n"
    )
    new = replace_related(page, [{"id": 1, "title": "New title", "subject": "S", "url": "/a"}])
    assert blocks_of(front_matter(new)) == [
        {"id": 1, "title": "New title", "subject": "S", "url": "/a"}
    ]
    assert new.startswith("---\ntitle: &s Biology\nurl: /p\n")


def test_keys_between_and_after_the_blocks_stay_where_they_are():
    page = (
        "---\ntitle: T\nrelated_article1:\n  title: Old\n  url: /old\nmiddle: 1\n"
        "related_article2:\n  title: Older\n  url: /older\nlast: [a, b]\n---\nbody\n"
    )
    target = {"id": 3, "title": "New", "subject": "S", "url": "/new"}
    new = replace_related(page, [target])
    assert front_matter(new) == {
        "title": "T",
        "related_article1": {"id": 3, "title": "New", "subject": "S", "url": "/new"},
        "middle": 1,
        "last": ["a", "b"],
    }
    assert new.endswith("middle: 1\nlast: [a, b]\n---\nbody\n")


def test_a_rendering_that_would_end_the_front_matter_early_is_refused(monkeypatch):
    """The new blocks never hold a line '---' (their scalars are quoted or indented); were
    one rendered, the page would not be written rather than cut short."""
    import recommender.rewrite as rewrite

    monkeypatch.setattr(rewrite, "_rendered_blocks", lambda *a: ["related_article1:\n---\n"])
    target = {"id": 3, "title": "New", "subject": "S", "url": "/new"}
    with pytest.raises(
        RewriteCheckError, match=r"^the new text would move the end of the front matter$"
    ):
        replace_related("---\ntitle: T\n---\nbody\n", [target])


@pytest.mark.parametrize(
    ("text", "rendered"),
    [("a\x85b", '"a\\x85b"'), ("a\u2028b", '"a\\u2028b"'), ("a\uffffb", '"a\\uffffb"')],
)
def test_a_title_with_a_line_break_or_no_printable_form_is_escaped(text, rendered):
    assert yaml_scalar(text) == rendered
    assert yaml.safe_load(rendered) == text
    assert yaml_scalar("a\U0001f600b") == '"a\U0001f600b"'  # printable past U+FFFF: kept


def test_an_error_without_a_message_is_named_by_its_type(tiny_site, monkeypatch):
    root, pages, links = tiny_site

    def silent(*args, **kwargs):
        raise OSError()

    monkeypatch.setattr("recommender.rewrite.read_regular_file", silent)
    report = export_links(root, pages, links).set_index("path")
    assert report.at["a.md", "detail"] == "a.md: OSError"
