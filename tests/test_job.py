"""The nightly job's orchestration (recommender.job): tests from its mutation run.

What a run says of itself (summary, problems, report, seconds), what an unchanged
and an incremental run read and keep in the state, and the refusals.
"""

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import recommender.export as export_module
import recommender.job as job_module
import recommender.rewrite as rewrite_module
from recommender import load_corpus
from recommender.config import load_rules
from recommender.errors import ConfigError, PageError, RemovalRefusedError
from recommender.export import WriteBack
from recommender.job import JobResult, RunKind, run_job

from .conftest import BROKEN, SAMPLE, fail_writes_to

SETTINGS = {"min_df": 1, "stability": 0.0}  # links that do not depend on the pages' history
KEPT = "/learn/economics/questions/what-causes-inflation"  # the sample rules' [[keep]] page


def rewrite(site, settings=SETTINGS, **options):
    return run_job(site, settings=settings, write_back=WriteBack.YES, state=True, **options)


def related_urls(site) -> pd.Series:
    """Each page's related urls as its file holds them now."""
    return load_corpus(site).pages["related_urls"]


def copy_pages(site: Path, count: int) -> Path:
    for page in sorted(SAMPLE.rglob("*.md"))[:count]:
        target = site / page.relative_to(SAMPLE)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, target)
    return site


def edit(page: Path, old: str, new: str) -> None:
    text = page.read_text(encoding="utf-8")
    assert old in text
    page.write_text(text.replace(old, new, 1), encoding="utf-8")


def touch(path: Path) -> None:
    """A new modification time, the same bytes."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def edited_while_exporting(monkeypatch, page: Path, old: str, new: str) -> None:
    """Edit ``page`` after the run has loaded the site, just before it writes the pages."""
    real = job_module.export_links

    def export_links(*args, **kwargs):
        edit(page, old, new)
        return real(*args, **kwargs)

    monkeypatch.setattr(job_module, "export_links", export_links)


def line(result: JobResult, start: str) -> str:
    return next(text for text in result.summary_lines() if text.startswith(start))


# ------------------------------------------------------------------ what a run says


def test_a_two_page_site_links_each_page_to_the_other(tmp_path):
    site = copy_pages(tmp_path / "site", 2)
    result = run_job(site, settings=SETTINGS)
    urls = sorted(result.corpus.pages.index)
    pairs = result.links[["source_url", "target_url"]].itertuples(index=False, name=None)
    assert sorted(pairs) == [(urls[0], urls[1]), (urls[1], urls[0])]
    assert "\n  links    2 for 2 pages (0 with 5) in " in "\n".join(result.summary_lines())


def test_the_summary_counts_the_links_of_the_pages_touched_and_no_failure(site):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[4]  # a dangling block first: only its list changes
    edit(page, "\nrelated_article1:", "\nrelated_article1:\n    url: /nowhere\nrelated_article9:")
    result = run_job(site, settings=SETTINGS)
    touched = result.report[result.report["status"] == "changed"]
    assert len(touched) == 1 and touched["links_removed"].sum() > 0
    added, removed = touched["links_added"].sum(), touched["links_removed"].sum()
    kept = result.report["links_kept"].sum()
    assert line(result, f"  links    {added:,} added") == (
        f"  links    {added:,} added, {removed:,} removed, {kept:,} kept"
    )
    assert line(result, "  pages    1 ") == "  pages    1 would be rewritten, 63 unchanged"
    assert not [text for text in result.summary_lines() if "failed" in text]


def test_a_page_that_fails_to_write_is_a_problem_line_and_the_state_keeps_its_old_links(
    site, monkeypatch
):
    victim = sorted(site.rglob("*.md"))[7]
    fail_writes_to(monkeypatch, victim)
    first = rewrite(site)
    assert first.pages_failed == 1
    detail = first.report.loc[first.report["status"] == "error", "detail"].item()
    assert detail and first.problem_lines() == [f"  failed   {detail}"]
    assert line(first, "  pages    63") == "  pages    63 rewritten, 0 unchanged, 1 failed"
    monkeypatch.undo()
    on_disk = related_urls(site)
    again = rewrite(site)
    assert again.kind is RunKind.INCREMENTAL  # the page is out of step with the state
    # what the next run reads of the failed page from the state is what its file holds
    pd.testing.assert_series_equal(again.corpus.pages["related_urls"], on_disk)
    row = again.report.set_index("path").loc[victim.relative_to(site).as_posix()]
    assert row["status"] == "written"


def test_the_summary_shows_the_seconds_fitting_and_in_all(site):
    result = replace(run_job(site, settings=SETTINGS), seconds={"fit": 1.5, "total": 2.5})
    assert line(result, "  links    320 for").endswith(" in 1.5 s")
    assert result.summary_lines()[-1] == "  done in 2.5 s"


# -------------------------------------------------------------------- an unchanged run


def test_an_unchanged_run_reports_every_page_unchanged_with_its_links_kept(site):
    first = rewrite(site)
    result = rewrite(site)
    assert result.kind is RunKind.UNCHANGED
    assert result.corpus.root == site
    assert line(result, "recommend") == f"recommend {site}"
    assert list(result.corpus.pages.columns) == ["path", "related_urls"]
    report = result.report
    assert report.index.equals(pd.RangeIndex(64))
    assert report["path"].is_monotonic_increasing
    url_of = dict(zip(result.corpus.pages["path"], result.corpus.pages.index, strict=True))
    assert report["url"].tolist() == [url_of[path] for path in report["path"]]
    assert (report["status"] == "unchanged").all()
    assert report["links_added"].tolist() == [0] * 64
    assert report["links_removed"].tolist() == [0] * 64
    assert report["links_kept"].tolist() == [5] * 64
    assert report["detail"].tolist() == [""] * 64
    assert len(first.links) == len(result.links) == 320


def test_an_unchanged_run_after_one_that_linked_nothing_counts_no_link_kept(site):
    settings = {**SETTINGS, "min_score": 0.99}  # no two pages are that alike: no link at all
    assert rewrite(site, settings, max_removal_share=1.0).links.empty
    result = rewrite(site, settings, max_removal_share=1.0)
    assert result.kind is RunKind.UNCHANGED
    assert result.report["links_kept"].tolist() == [0] * 64


def test_a_strict_incremental_run_names_the_bad_page_a_full_run_names(site):
    shutil.copy2(BROKEN / "invalid-yaml.md", site / "biology" / "0-invalid-yaml.md")
    rewrite(site)  # the state holds it as a bad page
    shutil.copy2(BROKEN / "missing-title.md", site / "chemistry" / "missing-title.md")
    named = []
    for full in (True, False):
        with pytest.raises(PageError) as raised:
            rewrite(site, strict=True, full=full)
        named.append(raised.value.path)
    assert named == ["biology/0-invalid-yaml.md"] * 2  # the first by path, either way


def test_a_strict_unchanged_run_raises_the_first_bad_page_with_its_line(site):
    shutil.copy2(BROKEN / "invalid-yaml.md", site / "chemistry" / "invalid-yaml.md")
    first = rewrite(site)
    error = first.corpus.errors.iloc[0]
    assert first.corpus.errors["path"].tolist() == ["chemistry/invalid-yaml.md"]
    assert error["line"] > 0
    with pytest.raises(PageError) as raised:
        rewrite(site, strict=True)
    assert (raised.value.path, raised.value.problem, raised.value.detail, raised.value.line) == (
        error["path"],
        error["problem"],
        error["detail"],
        error["line"],
    )


def test_a_run_says_how_long_it_took_in_all_and_fitting(site):
    full, unchanged = rewrite(site), rewrite(site)
    assert unchanged.kind is RunKind.UNCHANGED
    for result in (full, unchanged):
        assert set(result.seconds) == {"fit", "total"}
        assert result.seconds["total"] >= result.seconds["fit"]
        assert result.seconds["total"] > 0.0
    assert full.seconds["fit"] > 0.0 and unchanged.seconds["fit"] == 0.0  # nothing fitted


# --------------------------------------------------------------------- an incremental run


def test_full_after_is_a_share_a_run_may_reach_and_stay_incremental(site):
    rewrite(site)
    edit(sorted(site.rglob("*.md"))[5], "\nanswer:", "\nlede: One.\nanswer:")
    result = rewrite(site, full_after=1 / 64)
    assert result.changes.share == 1 / 64
    assert result.kind is RunKind.INCREMENTAL


def test_an_incremental_run_with_rules_leaves_a_kept_page_whose_target_changed_its_title(site):
    settings = {**SETTINGS, "rules": load_rules(SAMPLE / "related-rules.toml")}
    rewrite(site, settings)
    kept = site / "economics" / "what-causes-inflation.md"
    before = kept.read_bytes()
    assert b"title: What is the normal distribution?" in before
    target = site / "mathematics" / "what-is-the-normal-distribution.md"
    edit(target, "title: What is the normal distribution?", "title: What is a bell curve?")
    result = rewrite(site, settings)
    assert result.kind is RunKind.INCREMENTAL
    assert result.report.set_index("url").loc[KEPT, "status"] == "unchanged"
    assert kept.read_bytes() == before


def test_the_state_keeps_a_kept_page_s_links_as_its_file_holds_them(site):
    kept = site / "economics" / "what-causes-inflation.md"
    edit(kept, "\nrelated_article1:", "\nrelated_article9:\n    url: /gone\nrelated_article1:")
    settings = {**SETTINGS, "rules": load_rules(SAMPLE / "related-rules.toml")}
    rewrite(site, settings)
    on_disk = related_urls(site)
    assert "/gone" in on_disk[KEPT]
    result = rewrite(site, settings)
    assert result.kind is RunKind.UNCHANGED
    pd.testing.assert_series_equal(result.corpus.pages["related_urls"], on_disk)


def test_pages_whose_paths_sort_otherwise_than_their_urls_are_not_parsed_again(site, monkeypatch):
    # a page moved to a folder that sorts last keeps its url, which sorts among the first
    moved = site / "zz-moved"
    moved.mkdir()
    shutil.move(sorted(site.rglob("*.md"))[0], moved / "first.md")
    rewrite(site)
    parsed = []
    real_parse = rewrite_module.parse_yaml
    monkeypatch.setattr(rewrite_module, "parse_yaml", lambda t: parsed.append(t) or real_parse(t))
    page = site / "chemistry" / "how-do-you-balance-a-chemical-equation.md"
    title = "title: How do you balance a chemical equation?"
    edit(page, title, f"{title} A guide")  # the pages linking to it are written
    again = rewrite(site)
    assert again.kind is RunKind.INCREMENTAL and again.corpus.errors.empty
    assert again.pages_changed > 1
    assert parsed == []  # the edited page was just loaded, the others are as last written
    # the report too is in the order of the paths, numbered from 0, and the blocks
    assert again.report["path"].is_monotonic_increasing
    assert again.report.index.equals(pd.RangeIndex(len(again.report)))
    assert again.corpus.links.index.equals(pd.RangeIndex(len(again.corpus.links)))


def test_deleting_a_bad_page_changes_no_list_and_writes_nothing(site):
    bad = site / "chemistry" / "missing-title.md"
    shutil.copy2(BROKEN / "missing-title.md", bad)
    assert len(rewrite(site).corpus.errors) == 1
    bad.unlink()
    result = rewrite(site)
    assert result.kind is RunKind.INCREMENTAL and result.changes.deleted == [
        "chemistry/missing-title.md"
    ]
    assert result.corpus.errors.empty
    assert result.pages_changed == 0 and result.count("unchanged") == 64


def test_an_incremental_run_showing_diffs_starts_no_exporter_workers(site, monkeypatch):
    settings = {**SETTINGS, "n_jobs": 2}
    rewrite(site, settings)
    page = site / "chemistry" / "how-do-you-balance-a-chemical-equation.md"
    title = "title: How do you balance a chemical equation?"
    edit(page, title, f"{title} A guide")  # the pages linking to it change
    asked = []
    real = export_module.workers_started
    monkeypatch.setattr(
        export_module,
        "workers_started",
        lambda module, n_jobs: asked.append(n_jobs) or real(module, n_jobs),
    )
    changes = []
    result = run_job(
        site, settings=settings, write_back=WriteBack.YES_DIFF, state=True, on_change=changes.append
    )
    assert result.kind is RunKind.INCREMENTAL and changes
    assert asked and all(n_jobs is None for n_jobs in asked)  # each diff shown here, in order


def test_a_site_shrunk_to_one_page_is_a_full_run(tmp_path):
    site = copy_pages(tmp_path / "site", 3)
    rewrite(site, max_removal_share=1.0)
    for page in sorted(site.rglob("*.md"))[1:]:
        page.unlink()
    result = rewrite(site, full_after=1.0, max_removal_share=1.0)
    assert result.kind is RunKind.FULL
    assert result.full_because == "the changes cannot be merged into the state"
    assert result.links.empty and len(result.corpus.pages) == 1


def test_a_site_whose_every_page_turns_no_index_is_a_full_run_linking_nothing(site):
    rewrite(site)
    for page in site.rglob("*.md"):
        text = re.sub(r"\nno_index:.*", "", page.read_text(encoding="utf-8"))
        page.write_text(text.replace("\nanswer:", "\nno_index: true\nanswer:", 1), "utf-8")
    result = rewrite(site, full_after=1.0, max_removal_share=1.0)
    assert result.kind is RunKind.FULL
    assert result.full_because == "the changes cannot be merged into the state"
    assert result.links.empty and len(result.corpus.pages) == 64


# ------------------------------------------------------------------------------ the state


def test_a_page_edited_while_the_run_computes_is_written_with_its_edit_and_the_state_saved(
    site, monkeypatch
):
    page = site / "chemistry" / "how-do-you-balance-a-chemical-equation.md"
    text = page.read_text(encoding="utf-8")
    edited_while_exporting(monkeypatch, page, "\nanswer:", "\nlede: Edited.\nanswer:")
    result = rewrite(site)  # its bytes written are not those it was loaded from
    row = result.report.set_index("path").loc["chemistry/how-do-you-balance-a-chemical-equation.md"]
    assert row["status"] == "written" and not isinstance(row["file_digest"], str)
    now = page.read_text(encoding="utf-8")
    assert "lede: Edited." in now and now != text.replace("\nanswer:", "\nlede: Edited.\nanswer:")
    assert (site / ".recommender" / "state.json").is_file()


def test_a_bad_page_s_content_hash_is_kept_from_state_to_state(site):
    bad = site / "chemistry" / "missing-title.md"
    shutil.copy2(BROKEN / "missing-title.md", bad)
    rewrite(site)
    touch(bad)  # read again (the full run knew no hash of it), and hashed now
    edit(sorted(site.rglob("*.md"))[5], "\nanswer:", "\nlede: One.\nanswer:")
    assert rewrite(site).changes.changed[-1] == "chemistry/missing-title.md"
    edit(sorted(site.rglob("*.md"))[6], "\nanswer:", "\nlede: Two.\nanswer:")
    assert rewrite(site).kind is RunKind.INCREMENTAL  # a state made from the last one
    touch(bad)
    assert rewrite(site).kind is RunKind.UNCHANGED  # its hash is still known


#: A page whose title the tests of edits made during a run change, and that title.
EDITED_PATH = "chemistry/how-do-you-balance-a-chemical-equation.md"
EDITED_TITLE = "title: How do you balance a chemical equation?"


def assert_the_next_run_reads_the_edit(site) -> None:
    again = rewrite(site)
    assert again.changes.changed == [EDITED_PATH]
    url = "/learn/chemistry/questions/how-do-you-balance-a-chemical-equation"
    assert again.corpus.pages.loc[url, "title"].endswith("A guide")


def test_a_page_edited_after_it_was_written_and_before_the_state_is_saved_is_read_again(
    site, monkeypatch
):
    page, title = site / EDITED_PATH, EDITED_TITLE
    real = job_module._save_state

    def edited_first(*args, **kwargs):  # the page written minutes ago, on a large site
        edit(page, title, f"{title} A guide")
        return real(*args, **kwargs)

    monkeypatch.setattr(job_module, "_save_state", edited_first)
    assert rewrite(site).report.set_index("path").loc[EDITED_PATH, "status"] == "written"
    monkeypatch.undo()
    assert_the_next_run_reads_the_edit(site)


def test_a_written_page_the_loader_kept_no_fingerprint_of_is_not_read_again(site):
    page = sorted(site.rglob("*.md"))[4]
    edit(page, "\nanswer:", "\ntags: !!set {a, b}\nanswer:")  # no rest fingerprint
    path = page.relative_to(site).as_posix()
    assert pd.isna(load_corpus(site).pages.set_index("path").loc[path, "rest_fingerprint"])
    row = rewrite(site).report.set_index("path").loc[path]
    assert row["status"] == "written" and isinstance(row["file_digest"], str)
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_a_page_edited_while_the_run_computes_is_read_again_next_run(site, monkeypatch):
    edited_while_exporting(monkeypatch, site / EDITED_PATH, EDITED_TITLE, f"{EDITED_TITLE} A guide")
    rewrite(site)
    monkeypatch.undo()
    assert_the_next_run_reads_the_edit(site)


def test_an_incremental_run_s_blocks_are_those_the_files_hold(site):
    rewrite(site)
    edit(sorted(site.rglob("*.md"))[5], "\nanswer:", "\nlede: One.\nanswer:")
    on_disk = load_corpus(site).links
    again = rewrite(site)
    assert again.kind is RunKind.INCREMENTAL
    columns = ["source_url", "rank", "target_url"]
    pd.testing.assert_frame_equal(again.corpus.links[columns], on_disk[columns])


# ------------------------------------------------------------------ evaluate and refusals


def test_evaluate_measures_with_the_settings_links_per_page_and_names_the_churn(site):
    settings = {**SETTINGS, "n_links": 3}
    rewrite(site, settings, max_removal_share=1.0)
    result = run_job(site, settings=settings, evaluate=True, state=True)
    assert result.kind is RunKind.FULL and result.full_because == "--evaluate reads every page"
    assert list(result.metrics.columns) == ["in the pages", "recommended"]
    assert result.metrics.loc[("coverage", "pages_with_k_links"), "recommended"] == 64
    assert list(result.churn.columns) == ["pages -> recommended"]


def test_a_removal_refused_for_one_page_names_it(site):
    page = sorted(site.rglob("*.md"))[4]
    url = load_corpus(site).pages.index[4]
    extra = "".join(f"related_article{i}:\n    url: /x{i}\n" for i in range(6, 12))
    edit(page, "\nrelated_article1:", f"\n{extra}related_article1:")
    before = {p: p.read_bytes() for p in site.rglob("*.md")}
    with pytest.raises(RemovalRefusedError) as refused:
        rewrite(site, max_removal_share=0.0)
    assert refused.value.pages == 1 and refused.value.share == 1 / 64
    assert f"(for example {url})" in str(refused.value)
    assert {p: p.read_bytes() for p in site.rglob("*.md")} == before


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_removal_share_outside_0_1_is_refused_naming_it(site, share):
    with pytest.raises(ConfigError, match=rf"^max_removal_share must be in \[0, 1\], got {share}$"):
        run_job(site, settings=SETTINGS, max_removal_share=share)


def test_a_bad_scheduler_address_fails_the_run_as_a_config_error(site):
    with pytest.raises(ConfigError, match="no Dask scheduler address"):
        run_job(site, settings=SETTINGS, scheduler="not an address")
