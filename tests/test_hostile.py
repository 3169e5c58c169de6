"""Hostile sites: a bad page is one error row, nothing unparsable is written, the root is a wall.

Each test here failed on the code before issue 11 (see the commit history).
"""

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recommender.corpus as corpus_module
import recommender.rewrite as rewrite_module
from recommender import load_corpus
from recommender.cli import main
from recommender.export import export_links, replace_related
from recommender.files import SCRATCH_FOLDER

from .conftest import SAMPLE


def page(front_matter: str, body: str = "body\n") -> str:
    return f"---\n{front_matter}---\n{body}"


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
    for previous, name in zip("abcdefghi", "bcdefghij", strict=True)
)

# name: (front matter after `title` and `url`, problem, line of the problem in the file)
BAD_PAGES = {
    "impossible-date": ("date: 2024-02-30\n", "cannot be read as timestamp", 4),
    "year-zero": ("date: 0000-01-01\n", "year 0 is out of range", 4),
    "hour-25": ("date: 2024-01-01 25:00:00\n", "hour must be in 0..23", 4),
    "timestamp-tag": ("date: !!timestamp soon\n", "cannot be read as timestamp", 4),
    "twenty-digit-id": ("id: 12345678901234567890\n", "does not fit in 64 bits", 4),
    "int-tag": ("score: !!int abc\n", "cannot be read as int", 4),
    "float-tag": ("score: !!float abc\n", "cannot be read as float", 4),
    "huge-score": ("score: " + "9" * 400 + "\n", "too large a number", 4),
    "duplicate-key": ("subject: A\nsubject: B\n", "the key 'subject' appears twice", 5),
    "alias-bomb": (ALIAS_BOMB, "values once aliases expand", None),
    "recursive-alias": ("x: &x [*x]\n", "contains it", 4),
    "deep-nesting": ("x: " + "[" * 500 + "]" * 500 + "\n", "levels deep", None),
    "unhashable-key": ("? [a]\n: 1\n", "unhashable", None),
    "set-as-seo": ("seo: !!set {a, b}\n", "wrong type", None),
}
BAD_URLS = {
    "javascript-url": "javascript:alert(1)",
    "data-url": "data:text/html,hi",
    "relative-url": "learn/a",
    "url-with-blank": "/learn/a b",
    "url-with-control": "/learn/a\x07b",
    "url-with-line-separator": "/learn/a\u2028b",
}


def hostile_site(tmp_path, files: dict[str, str]):
    site = tmp_path / "site"
    shutil.copytree(SAMPLE, site)
    for name, text in files.items():
        (site / name).write_text(text, encoding="utf-8")
    return site


def bad_page_text(name: str) -> str:
    if name in BAD_URLS:
        return page(f"title: Hostile\nurl: {json.dumps(BAD_URLS[name])}\n")
    return page(f"title: Hostile\nurl: /hostile/{name}\n{BAD_PAGES[name][0]}")


@pytest.mark.parametrize("name", [*BAD_PAGES, *BAD_URLS])
def test_a_bad_page_is_one_error_row_naming_the_file(tmp_path, name):
    site = hostile_site(tmp_path, {f"{name}.md": bad_page_text(name)})
    corpus = load_corpus(site)
    assert len(corpus.pages) == 64
    assert corpus.errors["path"].tolist() == [f"{name}.md"]
    error = corpus.errors.iloc[0]
    if name in BAD_URLS:
        assert (error["problem"], error["line"]) == ("bad url", 3)
        return
    _, problem, line = BAD_PAGES[name]
    assert problem in error["message"]
    if line is not None:
        assert error["line"] == line


def test_every_hostile_page_at_once_is_exit_3_never_internal_error(tmp_path, capsys):
    files = {f"{name}.md": bad_page_text(name) for name in [*BAD_PAGES, *BAD_URLS]}
    site = hostile_site(tmp_path, files)
    before = snapshot(site)
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 3, err
    assert "internal error" not in err
    assert f"64 loaded, {len(files)} bad (skipped)" in out
    for name in files:
        assert f"bad page {name}" in err
    after = snapshot(site)
    assert all(after[name] == before[name] for name in files)


@pytest.mark.parametrize(
    ("raw_name", "shown"),
    [(b"bad-\xff-name.md", "bad-\\xff-name.md"), (b"line\nbreak.md", "line\\nbreak.md")],
)
def test_a_hostile_file_name_is_an_error_row_shown_escaped(tmp_path, capsys, raw_name, shown):
    site = hostile_site(tmp_path, {})
    with open(os.path.join(os.fsencode(site), raw_name), "wb") as stream:
        stream.write(page("title: Named\nurl: /named\n").encode())
    corpus = load_corpus(site)
    assert len(corpus.pages) == 64
    assert corpus.errors["path"].tolist() == [shown]
    assert corpus.errors.at[0, "problem"] == "bad file name"
    code, _, err = run(capsys, site)
    assert code == 3 and f"bad page {shown}: bad file name" in err


def test_an_unforeseen_failure_of_one_page_is_its_error_row(tmp_path, monkeypatch):
    site = hostile_site(tmp_path, {"poison.md": page("title: Poison pill\nurl: /poison\n")})
    real = corpus_module.clean_text

    def fragile(text):
        if "Poison" in text:
            raise RuntimeError("a bug met only here")
        return real(text)

    monkeypatch.setattr(corpus_module, "clean_text", fragile)
    corpus = load_corpus(site)
    assert len(corpus.pages) == 64
    assert corpus.errors["message"].tolist() == [
        "poison.md: cannot be read: RuntimeError: a bug met only here"
    ]


def no_index_site(tmp_path):
    site = hostile_site(tmp_path, {})
    for path in site.rglob("*.md"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("no_index: true\n", "").replace("\nurl:", "\nno_index: true\nurl:", 1)
        path.write_text(text, encoding="utf-8")
    return site


def test_a_site_where_every_page_is_no_index_is_no_crash(tmp_path, capsys):
    site = no_index_site(tmp_path)
    before = snapshot(site)
    code, _, err = run(capsys, site)
    assert code == 0, err
    assert "every page is no_index" in err
    code, _, err = run(capsys, site, "--rewrite")
    assert code == 5 and "fewer links than today" in err
    assert snapshot(site) == before


BLOCK_VALUES = [
    "42",
    "3.5",
    "true",
    "2020-01-02",
    "[a, b]",
    "{x: 1}",
    "''",
    "null",
    "!!binary aGk=",
]


@pytest.mark.parametrize("value", BLOCK_VALUES)
def test_a_block_whose_title_or_subject_is_not_text_is_no_crash_and_the_state_is_kept(
    tmp_path, capsys, value
):
    linked = "/learn/biology/questions/how-is-dna-replicated-before-a-cell-divides"
    block = f"related_article1:\n  title: {value}\n  subject: {value}\n  url: {linked}\n"
    site = hostile_site(tmp_path, {"biology/odd.md": page(f"title: Odd\nurl: /odd\n{block}")})
    loaded = load_corpus(site).links.set_index("source_url").loc["/odd"]
    as_read = yaml.safe_load(f"v: {value}")["v"]
    if as_read is None:
        assert loaded[["target_title", "target_subject"]].isna().all()
    else:  # a value that is not text, as its text
        assert loaded[["target_title", "target_subject"]].tolist() == [str(as_read)] * 2
    code, _, err = run(capsys, site, "--rewrite")
    assert code == 0, err
    assert (site / ".recommender" / "state.json").is_file()
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 0 and "unchanged run" in out, err  # the state was kept
    code, _, err = run(capsys, site, "--evaluate")
    assert code == 0, err


@pytest.mark.parametrize("rules", [False, True])
def test_dates_far_from_today_are_days_like_any_other(tmp_path, capsys, rules):
    files = {
        "biology/last-day.md": page("title: Last day\nurl: /last-day\ndate: 9999-12-31\n"),
        "biology/first-day.md": page("title: First day\nurl: /first-day\ndate: 0001-01-01\n"),
    }
    site = hostile_site(tmp_path, files)
    if rules:
        (site / "dates.toml").write_text("[dates]\nno_newer = true\nhalf_life_days = 730\n")
    extra = ["--rules", site / "dates.toml"] if rules else []
    code, _, err = run(capsys, site, "--rewrite", *extra)
    assert code == 0, err  # through nanoseconds, 9999-12-31 stopped every run (exit 4)
    linked = load_corpus(site).links
    newest = linked.loc[linked["source_url"] == "/first-day", "target_url"].tolist()
    if rules:  # the first day links to nothing newer: it has no page to link to
        assert newest == []


# ------------------------------------------------------------ nothing unparsable is written

LINE_BREAKS = ["\u2028", "\u2029", "\x85", "\r", "\r\n", "\x0b", "\x0c", "\t", "\x00", "\ufeff"]


@pytest.mark.parametrize("char", LINE_BREAKS, ids=[f"U+{ord(c[0]):04X}" for c in LINE_BREAKS])
def test_any_line_break_in_a_title_reads_back_exactly_in_every_linking_page(tmp_path, char):
    site = hostile_site(tmp_path, {})
    target = site / "biology" / "how-do-genes-determine-the-traits-of-an-organism.md"
    title = f"Genes{char}and traits"
    text = target.read_text(encoding="utf-8")
    old_title = "title: >-\n    How do genes determine the traits of an organism?\n"
    target.write_text(text.replace(old_title, f"title: {json.dumps(title)}\n"), encoding="utf-8")
    corpus = load_corpus(site)
    target_url = corpus.pages.index[corpus.pages["path"] == target.relative_to(site).as_posix()][0]
    assert corpus.pages.at[target_url, "title"] == title
    sources = [url for url in corpus.pages.index if url != target_url][:20]
    links = pd.DataFrame({"source_url": sources, "rank": 1, "target_url": target_url, "score": 1.0})
    report = export_links(site, corpus.pages, links, write=True)
    assert (report["status"] != "error").all(), report["detail"].tolist()
    again = load_corpus(site)
    assert again.errors.empty, again.errors["message"].tolist()
    written = again.links[again.links["source_url"].isin(sources)]
    assert len(written) == 20
    assert (written["target_title"] == title).all()


MULTI_LINE_VALUES = [
    "answer: 'first\n\nrelated_article2:\n    url: /evil'\n",
    'answer: "first\nrelated_article1: evil\n  end"\n',
    "answer: >\n  text\n\n  related_article1: not a key\n",
    "notes: [a,\nrelated_article3: b]\n",
]


@pytest.mark.parametrize("value", MULTI_LINE_VALUES)
def test_text_inside_a_value_never_passes_for_a_block(value):
    text = page(f"title: T\n{value}url: /u\n")
    before = yaml.safe_load(text.split("---\n")[1])
    new = replace_related(text, [{"title": "New", "url": "/new"}])
    after = yaml.safe_load(new.split("---\n")[1])
    assert after.pop("related_article1") == {"title": "New", "url": "/new"}
    assert after == before


def test_a_new_text_that_would_not_read_back_is_not_written(site, monkeypatch):
    corpus = load_corpus(site)
    links = pd.DataFrame(
        {
            "source_url": corpus.pages.index[:3],
            "rank": 1,
            "target_url": corpus.pages.index[5],
            "score": 1.0,
        }
    )
    real = rewrite_module._rendered_blocks
    broken = {"count": 0}

    def render_badly(targets, newline, cache):
        broken["count"] += 1
        *blocks, text = real(targets, newline, cache)
        bad = text.replace("url: ", "url: /other", 1) if broken["count"] % 2 else text + "a: [\n"
        return [*blocks, bad]

    monkeypatch.setattr(rewrite_module, "_rendered_blocks", render_badly)
    before = snapshot(site)
    report = export_links(site, corpus.pages, links, write=True).set_index("path")
    sources = corpus.pages.loc[corpus.pages.index[:3], "path"]
    assert (report.loc[sources, "status"] == "error").all()
    details = " ".join(report.loc[sources, "detail"])
    assert "would not read back as the links meant" in details and "would not parse" in details
    assert all(snapshot(site)[path] == before[path] for path in sources)


# ------------------------------------------------------------------- bounded resources


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    import time

    site = hostile_site(tmp_path, {"bomb.md": page(f"title: B\nurl: /b\n{ALIAS_BOMB}")})
    assert len((site / "bomb.md").read_bytes()) < 3000
    started = time.perf_counter()
    corpus = load_corpus(site)
    assert time.perf_counter() - started < 10
    assert corpus.errors["path"].tolist() == ["bomb.md"]


def test_fifos_sockets_and_devices_are_reported_never_opened(tmp_path, alarm, capsys):
    site = hostile_site(tmp_path, {})
    os.mkfifo(site / "fifo.md")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(site / "socket.md"))
    os.mkdir(site / "folder.md")
    os.symlink("fifo.md", site / "link-to-fifo.md")
    try:
        corpus = load_corpus(site)
        code, _, err = run(capsys, site, "--rewrite")
    finally:
        server.close()
    problems = dict(zip(corpus.errors["path"], corpus.errors["detail"], strict=True))
    assert set(problems) == {"fifo.md", "socket.md"}  # the link to fifo.md leads to it: once
    assert "a FIFO (named pipe), not a regular file" in problems["fifo.md"]
    assert "a socket" in problems["socket.md"]
    assert code == 3 and "bad page fifo.md: not read" in err


def test_a_symlink_to_dev_zero_is_not_read(tmp_path, alarm):
    site = hostile_site(tmp_path, {})
    os.symlink("/dev/zero", site / "zero.md")
    corpus = load_corpus(site)
    assert corpus.errors["path"].tolist() == ["zero.md"]
    assert "outside the site" in corpus.errors.at[0, "detail"]


def test_a_page_over_the_size_limit_is_an_error_and_the_limit_is_settable(tmp_path, capsys):
    big = page("title: Big page\nurl: /big\n", body="x" * 1_200_000)
    site = hostile_site(tmp_path, {"big.md": big})
    corpus = load_corpus(site)
    assert corpus.errors["path"].tolist() == ["big.md"]
    assert "over the limit of 1,000,000 bytes" in corpus.errors.at[0, "detail"]
    assert "/big" in load_corpus(site, max_page_bytes=2_000_000).pages.index
    code, out, _ = run(capsys, site, "--max-page-bytes", "2000000")
    assert code == 0 and "65 loaded, 0 bad" in out
    code, _, err = run(capsys, site, "--max-page-bytes", "0")
    assert code == 2 and "max_page_bytes" in err


# ------------------------------------------------------------------ the root is a wall


def test_a_symlink_up_out_of_the_site_is_not_followed(tmp_path, capsys):
    site = hostile_site(tmp_path, {})
    sibling = tmp_path / "sibling"
    shutil.copytree(SAMPLE / "biology", sibling)
    os.symlink("..", site / "up")
    before = snapshot(sibling)
    corpus = load_corpus(site)
    assert len(corpus.pages) == 64
    assert corpus.errors["path"].tolist() == ["up"]
    assert corpus.errors.at[0, "problem"] == "outside the site"
    code, _, _ = run(capsys, site, "--rewrite")
    assert code == 3
    assert snapshot(sibling) == before


def test_page_and_folder_symlinks_leading_outside_are_reported_and_never_written(tmp_path, capsys):
    site = hostile_site(tmp_path, {})
    outside = tmp_path / "outside"
    shutil.copytree(SAMPLE / "biology", outside)
    one_page = sorted(outside.glob("*.md"))[0]
    os.symlink(one_page, site / "linked-page.md")
    os.symlink(outside, site / "linked-folder")
    before = snapshot(outside)
    corpus = load_corpus(site)
    assert sorted(corpus.errors["path"]) == ["linked-folder", "linked-page.md"]
    code, _, err = run(capsys, site, "--rewrite")
    assert code == 3 and "outside" in err
    assert snapshot(outside) == before


def test_a_symlink_inside_the_site_is_read_once_and_written_through(tmp_path, capsys):
    site = hostile_site(tmp_path, {})
    real = sorted((site / "biology").glob("*.md"))[0]
    os.symlink(os.path.relpath(real, site), site / "alias.md")
    os.symlink("biology", site / "also-biology")
    corpus = load_corpus(site)
    assert corpus.errors["path"].tolist() == ["also-biology"]
    assert corpus.errors["problem"].tolist() == ["second way to a folder"]
    assert len(corpus.pages) == 64
    code, _, _ = run(capsys, site, "--rewrite")
    assert code == 3
    assert (site / "alias.md").is_symlink()
    assert load_corpus(site).pages.at[corpus.pages.index[0], "related_urls"]


def test_a_page_turned_into_a_symlink_after_loading_is_not_written_outside(site, tmp_path):
    corpus = load_corpus(site)
    links = pd.DataFrame(
        {"source_url": corpus.pages.index, "rank": 1, "target_url": corpus.pages.index[::-1]}
    )
    victim = corpus.pages["path"].iloc[0]
    outside = tmp_path / "outside.md"
    shutil.move(site / victim, outside)
    os.symlink(outside, site / victim)
    before = outside.read_bytes()
    report = export_links(site, corpus.pages, links, write=True).set_index("path")
    assert report.at[victim, "status"] == "error"
    assert "outside the site" in report.at[victim, "detail"]
    assert outside.read_bytes() == before
    assert (report.drop(victim)["status"] == "written").all()


def test_a_read_only_page_is_not_replaced(site, capsys):
    victim = sorted(site.rglob("*.md"))[0]
    os.chmod(victim, 0o444)
    before = victim.read_bytes()
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 4
    assert "63 rewritten, 0 unchanged, 1 failed" in out
    assert "read-only" in err and victim.name in err
    assert victim.read_bytes() == before
    assert stat.S_IMODE(victim.stat().st_mode) == 0o444


# ---------------------------------------------------------------- no silent mass removal


def test_settings_that_give_no_links_refuse_to_rewrite_without_force(site, tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text("min_score = 0.99\n", encoding="utf-8")
    before = snapshot(site)
    code, _, err = run(capsys, site, "--config", config)
    assert code == 0 and "would have fewer links than today" in err
    code, out, err = run(capsys, site, "--rewrite", "--config", config)
    assert code == 5
    assert "refused" in err and "--force" in err and out == ""
    assert snapshot(site) == before
    code, _, _ = run(capsys, site, "--rewrite", "--config", config, "--max-removal-share", "1")
    assert code == 0
    assert snapshot(site) != before


def test_force_writes_the_removal(site, tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text("min_score = 0.99\n", encoding="utf-8")
    code, _, _ = run(capsys, site, "--rewrite", "--config", config, "--force")
    assert code == 0
    assert load_corpus(site).links.empty


# -------------------------------------------------------------------- one run at a time


def test_help_documents_the_new_options_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for text in ("--force", "--max-removal-share", "--max-page-bytes", "5  refused", "6  another"):
        assert text in out


def test_a_second_run_while_one_holds_the_lock_exits_6(site, capsys):
    from recommender.files import SiteLock

    before = snapshot(site)
    with SiteLock(site):
        code, _, err = run(capsys, site, "--rewrite")
        assert code == 6
        assert "another run" in err and f"pid {os.getpid()}" in err
        assert snapshot(site) == before
        code, _, _ = run(capsys, site)  # a run that writes nothing takes no lock
        assert code == 0
    assert not (site / ".recommend.lock").exists()
    code, _, _ = run(capsys, site, "--rewrite")
    assert code == 0


def test_a_stale_lock_of_a_killed_run_is_taken_over(site, capsys):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)
    (site / ".recommend.lock").write_text(
        json.dumps({"pid": dead, "host": socket.gethostname()}), encoding="utf-8"
    )
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 0, err
    assert f"took over the lock of a run that ended without releasing it (pid {dead}" in err
    assert "64 rewritten" in out
    assert not (site / ".recommend.lock").exists()


def test_the_lock_holds_while_a_first_run_makes_the_state_folder(site):
    # a site's first run makes .recommender when it writes its state: a run started
    # then must still find the lock taken, however the site looks now
    from recommender.errors import LockedError
    from recommender.files import SiteLock

    shutil.rmtree(site / ".recommender", ignore_errors=True)
    with SiteLock(site) as lock:
        assert lock.path == site / ".recommend.lock"
        holder = json.loads(lock.path.read_text(encoding="utf-8"))
        assert holder == {"pid": os.getpid(), "host": socket.gethostname()}
        (site / ".recommender").mkdir()
        with pytest.raises(LockedError, match="another run"), SiteLock(site):
            pass


def test_temporary_files_of_a_killed_run_are_removed_and_counted(site, capsys):
    page_path = sorted((site / "biology").glob("*.md"))[0]
    leftovers = [
        page_path.with_name(f".{page_path.name}.a1b2c3d4.tmp"),
        site / f".{page_path.name}.zz_99xyz.tmp",
        site / SCRATCH_FOLDER / f".{page_path.name}.0a1b2c3d.tmp",  # the writer's own folder
    ]
    leftovers[-1].parent.mkdir()
    for leftover in leftovers:
        leftover.write_text("half a page", encoding="utf-8")
    keep = site / ".notes.txt.tmp"
    keep.write_text("not ours", encoding="utf-8")
    code, out, _ = run(capsys, site, "--rewrite")
    assert code == 0
    assert "cleaned  3 temporary files left by a killed run" in out
    assert not any(p.exists() for p in leftovers) and keep.exists()
    assert not (site / SCRATCH_FOLDER).exists()


@pytest.mark.parametrize("leftovers", [0, 2])
def test_a_killed_runs_scratch_folder_is_removed_with_its_leftovers(tmp_path, leftovers):
    from recommender.files import remove_temporary_files

    (tmp_path / SCRATCH_FOLDER).mkdir()
    for n in range(leftovers):
        (tmp_path / SCRATCH_FOLDER / f".p{n}.md.0a1b2c3d.tmp").write_text("half", encoding="utf-8")
    assert remove_temporary_files(tmp_path) == leftovers
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("empty", [False, True])
def test_a_scratch_folder_others_may_write_to_is_left_as_it_is(tmp_path, empty):
    """Not one a writer of ours made: what it holds may be anyone's, and so is the folder."""
    from recommender.files import remove_temporary_files

    (tmp_path / SCRATCH_FOLDER).mkdir()
    (tmp_path / SCRATCH_FOLDER).chmod(0o777)
    if not empty:
        (tmp_path / SCRATCH_FOLDER / ".p.md.0a1b2c3d.tmp").write_text("theirs", encoding="utf-8")
    assert remove_temporary_files(tmp_path) == 0
    assert (tmp_path / SCRATCH_FOLDER).is_dir()
    assert [p.name for p in (tmp_path / SCRATCH_FOLDER).iterdir()] == (
        [] if empty else [".p.md.0a1b2c3d.tmp"]
    )


def test_a_scratch_folder_that_is_a_link_is_never_followed(tmp_path):
    from recommender.files import remove_temporary_files

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (elsewhere / ".p.md.0a1b2c3d.tmp").write_text("theirs", encoding="utf-8")
    (site / SCRATCH_FOLDER).symlink_to(elsewhere)
    assert remove_temporary_files(site) == 0
    assert (elsewhere / ".p.md.0a1b2c3d.tmp").exists() and (site / SCRATCH_FOLDER).is_symlink()


def test_a_scratch_folder_swapped_for_a_link_while_it_is_cleaned_leads_nowhere(
    tmp_path, monkeypatch
):
    """The clean-up removes what it listed through the folder it opened, not by path."""
    from recommender.files import remove_temporary_files

    site, elsewhere, leftover = tmp_path / "site", tmp_path / "elsewhere", ".p.md.0a1b2c3d.tmp"
    (site / SCRATCH_FOLDER).mkdir(parents=True)
    elsewhere.mkdir()
    for folder in (site / SCRATCH_FOLDER, elsewhere):
        (folder / leftover).write_text(folder.name, encoding="utf-8")
    real = os.listdir

    def swapping(folder):
        names = real(folder)
        if isinstance(folder, int):  # the opened scratch folder: swapped for a link now
            (site / SCRATCH_FOLDER).rename(site / "moved")
            (site / SCRATCH_FOLDER).symlink_to(elsewhere)
        return names

    monkeypatch.setattr(os, "listdir", swapping)
    assert remove_temporary_files(site) == 1
    assert (elsewhere / leftover).exists() and not (site / "moved" / leftover).exists()


def test_a_scratch_folder_holding_what_is_not_ours_is_left_with_it(site):
    from recommender.files import remove_temporary_files

    (site / SCRATCH_FOLDER).mkdir()
    (site / SCRATCH_FOLDER / "notes.txt").write_text("theirs", encoding="utf-8")
    (site / SCRATCH_FOLDER / ".a.md.0a1b2c3d.tmp").write_text("half", encoding="utf-8")
    assert remove_temporary_files(site) == 1
    assert [p.name for p in (site / SCRATCH_FOLDER).iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------------- --diff is a patch


def test_diff_is_a_patch_git_applies_for_every_page(site, tmp_path, capsys):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    pages = sorted(site.rglob("*.md"))
    pages[0].write_bytes(pages[0].read_bytes().rstrip(b"\n"))  # no final newline
    pages[1].write_bytes(pages[1].read_bytes() + "odd\u2028line\x0cbreaks\x85here\r\n".encode())
    code, out, _ = run(capsys, site, "--diff")
    assert code == 0 and "\\ No newline at end of file" in out
    patch = tmp_path / "changes.patch"
    patch.write_text(out, encoding="utf-8")
    subprocess.run([git, "init", "-q"], cwd=site, check=True)
    checked = subprocess.run(
        [git, "apply", "--check", "-v", str(patch)], cwd=site, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    subprocess.run([git, "apply", str(patch)], cwd=site, check=True)
    code, out, _ = run(capsys, site, "--check")
    assert code == 0, out


# ------------------------------------------------------------------- fuzz: YAML's corners

ODD_VALUES = [
    "yes",
    "No",
    "~",
    "null",
    "0x1F",
    "0o17",
    "1e400",
    ".nan",
    "-.inf",
    "+12",
    "2024-02-30",
    "2024-01-01",
    "2024-01-01 12:00:00",
    "0000-01-01",
    "2024-01-01 25:00:00",
    "12345678901234567890",
    "-9223372036854775809",
    "'it''s: quoted'",
    '"say \\"hi\\""',
    '"ls\\u2028ps\\u2029nel\\x85cr\\r"',
    '"tab\\tbell\\a nul\\0"',
    "caf\u00e9 \U0001f600",
    "!!str 12",
    "!!int abc",
    "!!int 7",
    "!!binary aGk=",
    "!!float x",
    "!!set {a, b}",
    "!!timestamp 2024-01-01",
    "!!python/name:os.system",
    "!custom x",
    "&anchor anchored",
    "*anchor",
    "*missing",
    "|\n  literal\n  related_article1: not a key\n",
    ">-\n  folded\n  text\n",
    "|+\n  kept\n\n",
    "[a, [b, {c: d}]]",
    "{a: 1, b: [2, 3]}",
    "{url: /x}",
    '"multi\nrelated_article1: x\n  end"',
    "'single\n\nrelated_article2:\n    url: /evil'",
    "javascript:alert(1)",
    "/ok/url",
    "http://example.com/x",
    "# only a comment",
    "@reserved",
    "`reserved",
    "- item",
    "? complex",
    "%percent",
    "",
]
KEYS = [
    "title", "url", "question", "answer", "subject", "id", "date", "score", "no_index", "seo",
    "related_article1", "related_article2", "related_article10", "extra", "'quoted key'", "1",
]  # fmt: skip


@st.composite
def front_matters(draw):
    lines = []
    if draw(st.booleans()):
        lines.append(f"title: Fuzzed page {draw(st.integers(0, 9))}")
        lines.append(f"url: /fuzz/{draw(st.integers(0, 99))}")
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(KEYS))
        value = draw(st.sampled_from(ODD_VALUES))
        depth = draw(st.integers(0, 3)) * draw(st.sampled_from([0, 1, 30]))
        if depth:
            value = "[" * depth + (value.splitlines() or ["x"])[0] + "]" * depth
        if key == "seo" and draw(st.booleans()):
            value = f"\n  page_keywords: {value.splitlines()[0] if value else 'k'}"
        lines.append(f"{key}: {value}")
    text = "\n".join(lines) + "\n"
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(front_matters(), min_size=1, max_size=3), st.booleans())
def test_fuzzed_front_matter_never_crashes_and_never_writes_an_unparsable_page(fuzzed, fit):
    import tempfile
    from pathlib import Path

    from recommender import Recommender
    from recommender.errors import ConfigError

    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder)
        for path in sorted((SAMPLE / "biology").glob("*.md"))[:4]:
            shutil.copy(path, site / path.name)
        for number, text in enumerate(fuzzed):
            (site / f"fuzz-{number}.md").write_bytes(page(text, body="body").encode("utf-8"))
        before = snapshot(site)
        corpus = load_corpus(site)
        urls = corpus.pages.index.tolist()
        links = pd.DataFrame(
            [(url, 1, urls[(i + 1) % len(urls)]) for i, url in enumerate(urls)],
            columns=["source_url", "rank", "target_url"],
        )
        if fit and len(urls) >= 2:
            with contextlib.suppress(ConfigError):
                links = Recommender(n_jobs=1, max_df=1.0, n_links=2).fit(corpus.pages).related_
        report = export_links(site, corpus.pages, links, write=True).set_index("path")
        again = load_corpus(site)
        assert set(again.errors["path"]) == set(corpus.errors["path"])
        after = snapshot(site)
        for path, row in report.iterrows():
            if row["status"] != "written":
                assert after[path] == before[path]
        wanted = links.sort_values(["source_url", "rank"]).groupby("source_url")["target_url"]
        wanted = wanted.agg(list).reindex(corpus.pages.index).tolist()
        got = again.pages["related_urls"].reindex(corpus.pages.index).tolist()
        for url, want, have, status in zip(
            corpus.pages.index,
            wanted,
            got,
            report.set_index("url").loc[corpus.pages.index, "status"],
            strict=True,
        ):
            if status == "written":
                assert have == (want if isinstance(want, list) else []), url


def test_a_lock_file_planted_as_a_symlink_is_never_written_through(site, tmp_path, capsys):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me", encoding="utf-8")
    os.symlink(victim, site / ".recommend.lock")
    code, _, err = run(capsys, site, "--rewrite")
    assert code == 4 and "cannot be the lock" in err
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_comment_lines_after_a_block_stay_indented_or_not():
    # an indented comment after a block took the block's end past every comment above it,
    # and they went with the old block (found by a hostile pass)
    text = (
        "---\ntitle: Page\nurl: /p\nrelated_article1:\n    title: Old\n    url: /old\n"
        "# editor: keep the next block pinned\n    # (indented note)\n\ntags: [a]\n---\nbody\n"
    )
    new = replace_related(text, [{"title": "New", "url": "/new"}])
    assert "Old" not in new and "/new" in new
    assert new.endswith(
        "# editor: keep the next block pinned\n    # (indented note)\n\ntags: [a]\n---\nbody\n"
    )


@pytest.mark.parametrize("line_break", ["\r", "\x85", "\u2028", "\u2029"])
def test_a_comment_after_any_of_yamls_line_breaks_stays(line_break):
    text = (
        f"---\ntitle: P\nurl: /p\nrelated_article1:\n    url: /x{line_break}# keep me\nz: 1\n---\n"
    )
    new = replace_related(text, [{"title": "A", "url": "/a"}])
    assert "/x" not in new and new.endswith("# keep me\nz: 1\n---\n")


def test_a_block_scalar_s_hash_lines_go_with_its_block():
    # in a literal scalar an indented '#' line is text, not a comment: the old block's
    # text goes whole, none of it left behind as a comment
    text = (
        "---\ntitle: P\nurl: /p\nrelated_article1:\n    url: /x\n    title: |\n"
        "        first\n        # not a comment\nz: 1\n---\n"
    )
    new = replace_related(text, [{"title": "A", "url": "/a"}])
    assert "not a comment" not in new and "first" not in new and new.endswith("z: 1\n---\n")


def test_an_old_block_with_an_id_or_number_past_64_bits_loads_the_page(tmp_path):
    # the page was refused with an internal OverflowError and never linked (hostile pass)
    (tmp_path / "a.md").write_text("---\ntitle: A\nurl: /a\n---\n", encoding="utf-8")
    (tmp_path / "p.md").write_text(
        "---\ntitle: P\nurl: /p\nrelated_article1:\n    id: 99999999999999999999999\n"
        "    url: /a\nrelated_article99999999999999999999999:\n    url: /a\n---\n",
        encoding="utf-8",
    )
    corpus = load_corpus(tmp_path, n_jobs=1)
    assert corpus.errors.empty and "/p" in corpus.pages.index
    links = corpus.links[corpus.links["source_url"] == "/p"]
    assert links["target_id"].isna().all() and links["rank"].tolist()[0] == 1


def test_a_page_holding_a_set_is_written(tmp_path):
    # its missing fingerprint reached the exporter as NaN, taken for a real one: refused
    # every run (hostile pass)
    (tmp_path / "p.md").write_text("---\ntitle: P\nurl: /p\ntags: !!set {a, b}\n---\n", "utf-8")
    (tmp_path / "a.md").write_text("---\ntitle: A\nurl: /a\n---\n", encoding="utf-8")
    corpus = load_corpus(tmp_path, n_jobs=1)
    links = pd.DataFrame({"source_url": ["/p"], "rank": [1], "target_url": ["/a"]})
    report = export_links(tmp_path, corpus.pages, links, write=True).set_index("url")
    assert report.loc["/p", "status"] == "written"
    assert "tags: !!set {a, b}" in (tmp_path / "p.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("old_id", ["5.0", "true", "'5'"])
def test_a_block_whose_id_is_no_integer_is_rewritten(old_id):
    # id 5.0 and true equal 5 and 1 in Python: the block counted as already right
    text = f"---\ntitle: P\nurl: /p\nrelated_article1:\n    id: {old_id}\n    url: /a\n---\n"
    want = 1 if old_id == "true" else 5
    new = replace_related(text, [{"id": want, "url": "/a"}])
    assert new.replace(" ", "").count(f"id:{want}\n") == 1


def test_a_rewrite_never_grows_a_page_past_the_size_the_loader_reads(tmp_path):
    # the next run skipped the page it wrote as too big (exit 3): its links were lost
    page = "---\ntitle: P\nurl: /p\n---\n" + "body text\n" * 150
    (tmp_path / "p.md").write_text(page, encoding="utf-8")
    (tmp_path / "a.md").write_text("---\ntitle: A\nurl: /a\n---\n", encoding="utf-8")
    limit = len(page) + 20  # the page fits; with its block it does not
    corpus = load_corpus(tmp_path, n_jobs=1, max_page_bytes=limit)
    links = pd.DataFrame({"source_url": ["/p"], "rank": [1], "target_url": ["/a"]})
    report = export_links(tmp_path, corpus.pages, links, write=True, max_page_bytes=limit)
    row = report.set_index("url").loc["/p"]
    assert row["status"] == "error" and f"over {limit:,} (max_page_bytes)" in row["detail"]
    assert (tmp_path / "p.md").read_text(encoding="utf-8") == page
    roomy = export_links(tmp_path, corpus.pages, links, write=True, max_page_bytes=limit + 100)
    assert roomy.set_index("url").loc["/p", "status"] == "written"


@pytest.mark.parametrize("ending", ["...\n", "... # end\n\n# notes\n", "...\r\n"])
def test_new_blocks_go_before_a_document_end_marker(ending):
    # after `...` they started a second document: refused every run (hostile pass)
    newline = "\r\n" if ending.endswith("\r\n") else "\n"
    text = f"---{newline}title: P{newline}url: /p{newline}{ending}---{newline}body{newline}"
    new = replace_related(text, [{"title": "A", "url": "/a"}])
    assert new.index("related_article1") < new.index(ending) and new.endswith(
        f"{ending}---{newline}body{newline}"
    )
    assert replace_related(new, [{"title": "A", "url": "/a"}]) == new


def test_a_block_that_is_an_alias_of_another_is_replaced_with_it():
    # its span ended before it started (the alias's node is the anchored one): the
    # rewrite was refused every run (hostile pass)
    text = "---\ntitle: P\nurl: /p\nrelated_article1: &a\n    url: /x\nrelated_article2: *a\nz: 1\n---\n"
    new = replace_related(text, [{"title": "A", "url": "/a"}])
    assert "*a" not in new and "&a" not in new and new.endswith("    url: /a\nz: 1\n---\n")


def test_a_character_yaml_refuses_is_one_error_line_with_its_line(tmp_path):
    # it was two lines, "in <unicode string>, position 18", without the page's line
    (tmp_path / "p.md").write_text("---\ntitle: P\nurl: /p\nnote: bell\x07here\n---\n", "utf-8")
    (error,) = load_corpus(tmp_path, n_jobs=1).errors.to_dict("records")
    assert error["line"] == 4 and error["problem"] == "invalid YAML"
    assert error["message"] == "p.md:4: invalid YAML: #x0007: control characters are not allowed"


@pytest.mark.parametrize("limit", [10**12, 2**63 - 1])
def test_a_huge_page_size_limit_reads_pages_as_they_are(tmp_path, limit):
    # each read reserved the whole limit first: every page a MemoryError or OverflowError
    (tmp_path / "p.md").write_text("---\ntitle: P\nurl: /p\n---\n", encoding="utf-8")
    corpus = load_corpus(tmp_path, n_jobs=1, max_page_bytes=limit)
    assert corpus.errors.empty and list(corpus.pages.index) == ["/p"]
