"""The state between nightly runs: nothing changed, some pages changed, and states not to trust."""

import contextlib
import json
import os
import shutil
import weakref
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest

import recommender.corpus as corpus_module
import recommender.job as job_module
import recommender.model as model_module
import recommender.rewrite as rewrite_module
from recommender import load_corpus
from recommender.corpus import CLEANED_TEXT_COLUMNS, DEFAULT_MAX_PAGE_BYTES, RAW_TEXT_COLUMNS
from recommender.export import WriteBack
from recommender.features import FieldFeatures
from recommender.job import RunKind, run_job
from recommender.model import LINKING_PARAMETERS, Recommender
from recommender.rules import EditorialRules, Keep
from recommender.state import (
    STATE_FORMAT,
    TEXT_COLUMNS,
    SavedState,
    StateKey,
    file_signatures,
    links_key,
    read_state,
    settings_key,
    signatures_after_writes,
    state_key,
)

from .conftest import fail_writes_to
from .test_embeddings import FakeEncoder

SETTINGS = {"min_df": 1, "stability": 0.0}  # links that do not depend on the pages' history


def rewrite(site, **options):
    return run_job(site, settings=SETTINGS, write_back=WriteBack.YES, state=True, **options)


def blocks(site):
    corpus = load_corpus(site)
    return corpus.links[["source_url", "rank", "target_url"]].reset_index(drop=True)


def page_bytes(site):
    return {p.relative_to(site): p.read_bytes() for p in sorted(site.rglob("*.md"))}


def mtimes(site):
    return {p: p.stat().st_mtime_ns for p in site.rglob("*.md")}


def test_nothing_changed_reads_and_writes_no_page(site, monkeypatch):
    first = rewrite(site)
    assert first.kind is RunKind.FULL and first.pages_changed == 64
    before = mtimes(site)

    def no_reading(*args, **kwargs):
        raise AssertionError("a page was read")

    monkeypatch.setattr(corpus_module, "read_page", no_reading)
    again = rewrite(site)
    assert again.kind is RunKind.UNCHANGED
    assert again.pages_changed == 0 and again.count("unchanged") == 64
    assert len(again.links) == len(first.links) == 320
    assert mtimes(site) == before
    assert "unchanged run: 0 new, 0 changed, 0 deleted" in "\n".join(again.summary_lines())


def test_deleting_and_restoring_pages_ends_where_a_full_run_does(site, tmp_path):
    full = rewrite(site)
    after_full = blocks(site)
    page = site / full.corpus.pages["path"].iloc[10]
    url = full.corpus.pages.index[10]
    assert (full.links["target_url"] == url).any()  # someone links to it
    kept = tmp_path / "kept.md"
    shutil.move(page, kept)
    gone = rewrite(site)
    assert gone.kind is RunKind.INCREMENTAL and gone.changes.deleted == [
        page.relative_to(site).as_posix()
    ]
    assert not (blocks(site)["target_url"] == url).any()  # no dangling link
    assert 0 < gone.pages_changed < 64
    shutil.move(kept, page)
    back = rewrite(site)
    assert back.kind is RunKind.INCREMENTAL
    pd.testing.assert_frame_equal(blocks(site), after_full)


def test_an_edited_page_is_read_again_and_its_links_follow(site):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[5]
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("\nanswer:", "\nscore: 99\nanswer:", 1), encoding="utf-8")
    result = rewrite(site)
    assert result.kind is RunKind.INCREMENTAL
    assert result.changes.changed == [page.relative_to(site).as_posix()]
    assert rewrite(site).kind is RunKind.UNCHANGED
    assert (
        run_job(site, settings=SETTINGS, state=True, write_back=WriteBack.CHECK).pages_changed == 0
    )


def test_the_state_keeps_no_long_texts_and_an_incremental_run_reads_only_fresh_ones(site):
    full = rewrite(site)
    header = json.loads((site / ".recommender" / "state.json").read_text(encoding="utf-8"))
    kept = pd.read_parquet(site / ".recommender" / header["generation"] / "pages.parquet")
    # the job reads no raw texts at all, and keeps no cleaned ones
    cleaned = [name for name in TEXT_COLUMNS if name not in RAW_TEXT_COLUMNS]
    assert not set(TEXT_COLUMNS) & set(full.corpus.pages.columns)
    assert not set(TEXT_COLUMNS) & set(kept.columns)
    assert {"path", "title", "question", "related_urls", "file_digest"} <= set(kept.columns)
    page = sorted(site.rglob("*.md"))[7]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    again = rewrite(site)
    assert again.kind is RunKind.INCREMENTAL
    fresh = again.corpus.pages["path"] == page.relative_to(site).as_posix()
    assert not set(RAW_TEXT_COLUMNS) & set(again.corpus.pages.columns)
    texts = again.corpus.pages[cleaned]
    assert texts[fresh].notna().all(axis=None) and texts[~fresh].isna().all(axis=None)


def test_a_full_run_frees_the_cleaned_texts_once_counted(site, monkeypatch):
    handed, events = [], []
    fit, weights, search = Recommender.fit, FieldFeatures.fit_weights, Recommender._search
    release = model_module.release_free_memory

    def watched_fit(self, pages):  # a weak reference to the loaded frame the job hands over
        handed.append(weakref.ref(pages))
        assert set(CLEANED_TEXT_COLUMNS) <= set(pages.columns)
        whole = [pages]
        del pages
        return fit(self, whole.pop())

    def watch(step, name):
        def watched(self, *args, **kwargs):
            events.append(f"{name} with the loaded frame {'alive' if handed[0]() else 'freed'}")
            return step(self, *args, **kwargs)

        return watched

    monkeypatch.setattr(Recommender, "fit", watched_fit)
    monkeypatch.setattr(FieldFeatures, "fit_weights", watch(weights, "weights"))
    monkeypatch.setattr(Recommender, "_search", watch(search, "search"))
    monkeypatch.setattr(
        model_module, "release_free_memory", lambda: events.append("released") or release()
    )
    result = rewrite(site)
    assert result.kind is RunKind.FULL
    # freed once counted, and their memory given back to the system
    assert events == [
        "released",
        "weights with the loaded frame freed",
        "search with the loaded frame freed",
    ]
    assert not set(CLEANED_TEXT_COLUMNS) & set(result.corpus.pages.columns)


def test_pages_written_last_run_are_not_parsed_again_to_find_their_blocks(site, monkeypatch):
    rewrite(site)
    parsed = []
    real_parse = rewrite_module.parse_yaml
    monkeypatch.setattr(rewrite_module, "parse_yaml", lambda t: parsed.append(t) or real_parse(t))
    page = sorted(site.rglob("*.md"))[9]
    page.write_text(page.read_text(encoding="utf-8").replace("\nanswer:", "\nscore: 3\nanswer:"))
    again = rewrite(site)
    assert again.kind is RunKind.INCREMENTAL and again.pages_changed > 1
    assert parsed == []  # the edited page was just loaded, the others are as last written


def test_a_new_title_reaches_the_blocks_naming_it_and_an_edited_answer_reads_no_other(
    site, monkeypatch
):
    full = rewrite(site)
    read = []
    real_read = rewrite_module.read_regular_file
    monkeypatch.setattr(
        rewrite_module, "read_regular_file", lambda p, *a: read.append(p.name) or real_read(p, *a)
    )
    target = full.links["target_url"].value_counts().index[0]  # a page many link to
    page = site / full.corpus.pages.at[target, "path"]
    linkers = set(full.links.loc[full.links["target_url"] == target, "source_url"])
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("\nanswer: >-\n", "\nanswer: >-\n    Also: \n", 1))
    edited = rewrite(site)
    assert edited.kind is RunKind.INCREMENTAL
    new_lists = set(edited.report.loc[edited.report["status"] != "unchanged", "url"])
    staying = {Path(full.corpus.pages.at[u, "path"]).name for u in linkers - new_lists}
    assert staying and not staying & set(read)  # their blocks still say the same of it
    title = full.corpus.pages.at[target, "title"]
    page.write_text(page.read_text(encoding="utf-8").replace(title, "A title never seen", 1))
    retitled = rewrite(site)
    assert retitled.kind is RunKind.INCREMENTAL
    for url in retitled.links.loc[retitled.links["target_url"] == target, "source_url"]:
        path = site / retitled.corpus.pages.at[url, "path"]
        assert "A title never seen" in path.read_text(encoding="utf-8"), url


def test_a_touched_but_identical_page_is_not_a_change(site):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[3]
    page.write_bytes(page.read_bytes())  # new mtime, same bytes
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_a_page_not_written_keeps_its_content_hash_across_runs(site):
    rewrite(site)
    pages = sorted(site.rglob("*.md"))
    pages[5].write_text(pages[5].read_text(encoding="utf-8") + "\n", encoding="utf-8")
    second = rewrite(site)
    written = set(second.report.loc[second.report["status"] == "written", "path"])
    untouched = next(p for p in pages if p.relative_to(site).as_posix() not in written)
    untouched.write_bytes(untouched.read_bytes())  # new mtime, same bytes as two runs ago
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_full_and_full_after_refit_everything(site):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert rewrite(site, full=True).kind is RunKind.FULL
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert rewrite(site, full_after=0.0).kind is RunKind.FULL


@pytest.mark.parametrize(
    "damage",
    ["format", "settings", "version", "garbage header", "garbage arrays", "pickled arrays"],
)
def test_a_state_not_to_trust_is_ignored_with_one_line_and_rebuilt(site, caplog, damage):
    rewrite(site)
    folder = site / ".recommender"
    header = json.loads((folder / "state.json").read_text())
    generation = folder / header["generation"]
    if damage == "format":
        header["format"] = STATE_FORMAT + 1
    elif damage == "settings":
        header["settings"] = "0" * 64
    elif damage == "version":
        header["recommender"] = "0.0.0"
    if damage in ("format", "settings", "version"):
        (folder / "state.json").write_text(json.dumps(header))
    elif damage == "garbage header":
        (folder / "state.json").write_text("{not json")
    elif damage == "garbage arrays":
        (generation / "signatures.npz").write_bytes(b"PK\x03\x04 broken")
    else:  # an object array would need a pickle to load: never
        np.savez(generation / "signatures.npz", size=np.array([object()], dtype=object))
    with caplog.at_level("INFO", logger="recommender.state"):
        result = rewrite(site)
    assert result.kind is RunKind.FULL
    said = [r for r in caplog.records if r.name == "recommender.state"]
    assert len(said) == 1 and "full run" in said[0].getMessage()
    assert rewrite(site).kind is RunKind.UNCHANGED  # rebuilt


def test_other_settings_do_not_use_the_state(site):
    rewrite(site)
    result = run_job(
        site, settings={**SETTINGS, "max_df": 0.3}, write_back=WriteBack.YES, state=True
    )
    assert result.kind is RunKind.FULL
    assert result.full_because == "the state was ignored: it was made with other settings"


@pytest.mark.parametrize(
    "settings",
    [{"n_links": 4}, {"mutual_discount": 0.0, "max_in_links": 3}, {"coverage": False}],
    ids=lambda s: ",".join(s),
)
def test_other_link_settings_choose_the_links_again_from_the_state(
    site, tmp_path, monkeypatch, settings
):
    """No page is read again: the links are those of a full run with the new settings."""
    first = rewrite(site)
    fresh = tmp_path / "fresh"
    shutil.copytree(site, fresh, ignore=shutil.ignore_patterns(".recommender"))
    full = run_job(
        fresh, settings={**SETTINGS, **settings}, write_back=WriteBack.YES, state=False, force=True
    )
    monkeypatch.setattr(corpus_module, "read_page", lambda *a, **k: pytest.fail("a page was read"))
    again = run_job(
        site, settings={**SETTINGS, **settings}, write_back=WriteBack.YES, state=True, force=True
    )
    monkeypatch.undo()
    assert again.kind is RunKind.INCREMENTAL and again.full_because == "other link settings"
    assert "incremental run (other link settings): 0 new, 0 changed" in "\n".join(
        again.summary_lines()
    )
    assert again.links.to_csv() == full.links.to_csv() != first.links.to_csv()
    assert page_bytes(site) == page_bytes(fresh)
    assert again.pages_changed == full.pages_changed  # the pages whose blocks change
    same = run_job(site, settings={**SETTINGS, **settings}, write_back=WriteBack.YES, state=True)
    assert same.kind is RunKind.UNCHANGED
    back = rewrite(site, force=True)
    assert back.kind is RunKind.INCREMENTAL and back.links.to_csv() == first.links.to_csv()


def test_only_runs_that_write_keep_a_state(site):
    run_job(site, settings=SETTINGS, write_back=WriteBack.NO, state=True)
    assert not (site / ".recommender").exists()
    rewrite(site)
    assert (site / ".recommender" / "state.json").is_file()
    assert len([p for p in (site / ".recommender").iterdir() if p.is_dir()]) == 1


def test_a_page_that_fails_to_write_is_tried_again_next_run(site, monkeypatch):
    victim = sorted(site.rglob("*.md"))[0]
    fail_writes_to(monkeypatch, victim)
    assert rewrite(site).pages_failed == 1
    monkeypatch.undo()
    result = rewrite(site)
    assert result.kind is RunKind.INCREMENTAL and result.count("written") == 1


def test_a_damaged_model_file_falls_back_to_a_full_run(site, caplog):
    rewrite(site)
    folder = site / ".recommender"
    generation = folder / json.loads((folder / "state.json").read_text())["generation"]
    (generation / "model.npz").write_bytes(b"not an npz")
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        result = rewrite(site)
    assert result.kind is RunKind.FULL
    assert any("damaged" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("library", ["PyStemmer", "PyYAML", "scikit-learn", "numpy"])
def test_a_library_upgrade_is_a_change_of_settings(site, monkeypatch, library):
    # a new stemmer's words would not match the stored vocabulary (found by a hostile pass)
    import recommender.state as state_module

    rewrite(site)
    settings = Recommender(**SETTINGS).get_params()
    key = settings_key(settings)
    installed = state_module.metadata.version
    monkeypatch.setattr(
        state_module.metadata,
        "version",
        lambda name: "99.0" if name == library else installed(name),
    )
    assert settings_key(settings) != key
    result = rewrite(site)
    assert result.kind is RunKind.FULL
    assert result.full_because == "the state was ignored: it was made with other settings"


def test_embeddings_count_as_settings_only_with_a_weight(site, tmp_path):
    plain = Recommender().get_params()
    before_embeddings = {
        k: v for k, v in plain.items() if k not in ("semantic_weight", "embedding_model")
    }
    assert settings_key(plain) == settings_key(before_embeddings)  # older states still trusted
    assert settings_key({**plain, "embedding_model": "other"}) == settings_key(plain)
    blended = {**plain, "semantic_weight": 0.5}
    assert settings_key(blended) != settings_key(plain)
    assert settings_key({**blended, "embedding_model": "other"}) != settings_key(blended)
    assert settings_key({**blended, "embedding_cache": tmp_path}) == settings_key(blended)


def test_a_nightly_run_embeds_only_new_and_changed_pages(site, tmp_path):
    encoder = FakeEncoder()
    embedding = {"embedding_model": encoder, "embedding_cache": tmp_path / "emb"}
    settings = {**SETTINGS, "semantic_weight": 0.5, **embedding}

    def run(**changed):
        return run_job(
            site, settings={**settings, **changed}, write_back=WriteBack.YES, state=True, force=True
        )

    first = run()
    assert first.kind is RunKind.FULL and sum(map(len, encoder.calls)) > 60
    encoder.calls.clear()
    page = sorted(site.rglob("*.md"))[5]
    text = page.read_text(encoding="utf-8")
    page.write_text(
        text.replace("\nanswer: >-\n    ", "\nanswer: >-\n    Quasars. ", 1), encoding="utf-8"
    )
    edited = run()
    assert edited.kind is RunKind.INCREMENTAL
    assert len(encoder.calls) == 1 and len(encoder.calls[0]) == 1
    assert "Quasars." in encoder.calls[0][0]
    encoder.calls.clear()
    assert run(semantic_weight=0.3).kind is RunKind.FULL  # another weight: another state
    assert encoder.calls == []  # every text from the cache
    assert run(semantic_weight=0.0).kind is RunKind.FULL


def test_a_full_run_with_a_state_walks_the_site_once(site, monkeypatch):
    walks = []
    walk = corpus_module.find_pages

    def counted(root):
        walks.append(root)
        return walk(root)

    outside = site.parent / "outside"
    outside.mkdir()
    shutil.copy(next(site.rglob("*.md")), outside / "elsewhere.md")
    os.symlink(outside, site / "away")
    monkeypatch.setattr(corpus_module, "find_pages", counted)
    monkeypatch.setattr(job_module, "find_pages", counted)
    first = rewrite(site)
    assert first.kind is RunKind.FULL and len(first.corpus.pages) == 64
    assert len(walks) == 1  # for the files' signatures; the loader reads what it found
    assert first.corpus.errors[["path", "problem"]].values.tolist() == [
        ["away", "outside the site"]
    ]


def test_a_night_after_a_run_that_linked_nothing_runs_on_the_state(site):
    strict = {**SETTINGS, "min_score": 0.99}  # no two pages are that alike: no link at all

    def run():
        return run_job(
            site, settings=strict, write_back=WriteBack.YES, state=True, max_removal_share=1.0
        )

    first = run()
    assert first.kind is RunKind.FULL and first.links.empty
    page = sorted(site.rglob("*.md"))[5]
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("\nanswer: >-\n    ", "\nanswer: >-\n    Quasars. ", 1))
    night = run()
    assert night.kind is RunKind.INCREMENTAL and night.links.empty


# ------------------------------------------------------- a hostile site or state folder


def test_a_state_folder_of_other_things_keeps_them_all(site, tmp_path):
    folder = tmp_path / "var"
    (folder / "backups2024").mkdir(parents=True)
    (folder / "backups2024" / "important.txt").write_text("keep")
    lookalike = folder / ("a" * 32)  # named as a generation, but holding something else
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("keep")
    for _ in range(2):  # the second run removes the first run's generation, and only that
        page = sorted(site.rglob("*.md"))[0]
        page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
        run_job(site, settings=SETTINGS, write_back=WriteBack.YES, state=folder)
    assert (folder / "backups2024" / "important.txt").read_text() == "keep"
    assert (lookalike / "notes.txt").read_text() == "keep"
    generations = [p for p in folder.iterdir() if p.is_dir() and p.name not in ("backups2024",)]
    assert sorted(p.name for p in generations) == sorted(
        [lookalike.name, json.loads((folder / "state.json").read_text())["generation"]]
    )


def test_a_planted_state_symlink_is_refused_and_nothing_outside_is_touched(site, tmp_path):
    from recommender.errors import UnsafeFileError

    outside = tmp_path / "outside"
    (outside / "data2024").mkdir(parents=True)
    (site / ".recommender").symlink_to(outside)
    pages = sorted(p.relative_to(site) for p in site.rglob("*.md"))
    with pytest.raises(UnsafeFileError, match="cannot be the state folder: a symlink"):
        rewrite(site)
    assert sorted(p.name for p in outside.iterdir()) == ["data2024"]
    assert sorted(p.relative_to(site) for p in site.rglob("*.md")) == pages


@pytest.mark.parametrize("where", ["in the site", "named"])
def test_a_state_folder_that_is_a_file_is_refused_before_any_page_is_written(site, tmp_path, where):
    # the run wrote every page, then failed to write its state, night after night
    from recommender.errors import UnsafeFileError

    if where == "in the site":
        (site / ".recommender").write_text("not a folder")
        state = True
    else:
        state = tmp_path / "state-file"
        state.write_text("not a folder")
    before = {p: p.read_bytes() for p in site.rglob("*.md")}

    def run(state, write_back=WriteBack.YES):
        return run_job(site, settings=SETTINGS, write_back=write_back, state=state)

    with pytest.raises(UnsafeFileError, match="cannot be the state folder: not a folder"):
        run(state)
    assert {p: p.read_bytes() for p in site.rglob("*.md")} == before
    assert run(state, WriteBack.NO).kind is RunKind.FULL  # a run that only reads goes on
    assert run(False).kind is RunKind.FULL  # and so does one without a state


def test_a_folder_holding_things_where_state_json_goes_is_refused_and_kept(site):
    rewrite(site)
    from recommender.errors import UnsafeFileError

    header = site / ".recommender" / "state.json"
    header.unlink()
    (header / "notes").mkdir(parents=True)
    before = {p: p.read_bytes() for p in site.rglob("*.md")}
    with pytest.raises(UnsafeFileError, match=r"state\.json: a folder where the state's header"):
        rewrite(site, full=True)
    assert {p: p.read_bytes() for p in site.rglob("*.md")} == before
    assert (header / "notes").is_dir()


def test_a_page_turned_into_a_fifo_between_runs_is_reported_not_waited_for(site, alarm):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[2]
    page.unlink()
    os.mkfifo(page)
    result = rewrite(site)
    assert page.relative_to(site).as_posix() in result.corpus.errors["path"].tolist()


@pytest.mark.parametrize("planted", ["fifo", "folder", "link"])
def test_a_state_file_that_is_no_regular_file_is_damage_not_a_hang(site, tmp_path, alarm, planted):
    folder = site / ".recommender"
    victim = tmp_path / "victim.txt"  # where a planted link leads: never written
    victim.write_text("keep")
    names = ["pages.parquet", "links.parquet", "state.json"]  # an empty folder: removed
    for name in names:
        rewrite(site)  # a good state again
        generation = folder / json.loads((folder / "state.json").read_text())["generation"]
        target = folder / name if name == "state.json" else generation / name
        target.unlink()
        if planted == "fifo":
            os.mkfifo(target)
        elif planted == "folder":
            target.mkdir()
        else:
            target.symlink_to(victim)
        page = sorted(site.rglob("*.md"))[0]  # a change: the pages' table must be read
        page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
        assert rewrite(site).kind is RunKind.FULL, name
        assert rewrite(site).kind is RunKind.UNCHANGED, name  # rebuilt
        assert victim.read_text() == "keep"


def test_files_touched_without_a_change_keep_their_hash_after_an_incremental_run(site):
    rewrite(site)
    pages = sorted(site.rglob("*.md"))
    for page in pages:  # a deploy that sets every file's time
        os.utime(page, ns=(1, 1_000_000_000))
    pages[4].write_text(pages[4].read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = rewrite(site)
    assert result.kind is RunKind.INCREMENTAL and result.changes.changed == [
        pages[4].relative_to(site).as_posix()
    ]
    for page in pages:  # and again, with no change at all
        os.utime(page, ns=(2, 2_000_000_000))
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_files_touched_after_a_full_run_keep_the_hash_they_were_loaded_with(site):
    """A full run (the first, or --full) knows every page's hash from the loader, the
    pages it did not rewrite included: a deploy that only sets the files' times is no
    change (it cost the next night a full run, found by a hostile pass)."""
    rewrite(site)
    full = rewrite(site, full=True)
    assert full.kind is RunKind.FULL and full.count("written") < len(full.corpus.pages)
    for page in sorted(site.rglob("*.md")):
        os.utime(page, ns=(3, 3_000_000_000))
    result = rewrite(site)
    assert result.kind is RunKind.UNCHANGED and result.changes.count == 0


def test_problems_found_walking_the_site_come_and_go_with_the_state(site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    rewrite(site)
    (site / "evil").symlink_to(outside)  # a folder symlink leading outside the site
    second = rewrite(site)
    assert second.kind is RunKind.UNCHANGED
    assert second.corpus.errors["path"].tolist() == ["evil"]
    (site / "evil").unlink()
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    third = rewrite(site)
    assert third.kind is RunKind.INCREMENTAL and third.corpus.errors.empty


def test_another_page_size_limit_does_not_use_the_state(site):
    rewrite(site)
    assert rewrite(site, max_page_bytes=500_000).kind is RunKind.FULL
    assert rewrite(site, max_page_bytes=500_000).kind is RunKind.UNCHANGED


def test_a_state_json_left_half_written_by_a_killed_run_is_removed_next_time(site):
    rewrite(site)
    folder = site / ".recommender"
    left = folder / ".state.json.0a1b2c3d.tmp"  # as write_atomic names it
    left.write_text('{"form')
    kept = folder / ".state.json.notes"
    kept.write_text("not ours")
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    rewrite(site)
    assert not left.exists() and kept.read_text() == "not ours"


def test_a_page_that_cannot_be_read_now_is_a_change_whatever_the_state_knew(site, alarm):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[1]
    os.utime(page, ns=(1, 1_000_000_000))  # touched: the state's hash of it is unknown
    folder = site / ".recommender"
    generation = folder / json.loads((folder / "state.json").read_text())["generation"]
    with np.load(generation / "signatures.npz") as arrays:
        saved = dict(arrays)
    saved["digest"][:] = 0  # as a state that never knew the pages' hashes
    np.savez(generation / "signatures.npz", **saved)
    page.unlink()
    os.mkfifo(page)
    result = rewrite(site)
    assert page.relative_to(site).as_posix() in result.corpus.errors["path"].tolist()


def _url_line(page: Path) -> str:
    return next(line for line in page.read_text("utf-8").splitlines() if line.startswith("url: "))


@pytest.mark.parametrize("holder", ["moves", "goes"])
def test_a_duplicate_url_is_read_again_when_the_page_holding_it_moves_or_goes(site, holder):
    first, second = sorted(site.rglob("*.md"))[3], sorted(site.rglob("*.md"))[40]
    text = second.read_text("utf-8")
    second.write_text(text.replace(_url_line(second), _url_line(first)), "utf-8")
    run = rewrite(site)
    assert run.kind is RunKind.FULL
    duplicate = second.relative_to(site).as_posix()
    assert run.corpus.errors[["path", "problem"]].values.tolist() == [[duplicate, "duplicate url"]]
    if holder == "moves":
        first.write_text(first.read_text("utf-8").replace(_url_line(first), "url: /moved/"))
    else:
        first.unlink()
    run = rewrite(site)
    assert run.kind is RunKind.INCREMENTAL and run.corpus.errors.empty
    assert (run.links["source_url"] == _url_line(second)[5:]).sum() == 5
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_a_duplicate_url_still_held_stays_a_duplicate_without_a_full_run(site):
    pages = sorted(site.rglob("*.md"))
    first, second, other = pages[3], pages[40], pages[50]
    text = second.read_text("utf-8")
    second.write_text(text.replace(_url_line(second), _url_line(first)), "utf-8")
    rewrite(site)
    other.write_text(other.read_text("utf-8") + "\n", "utf-8")
    run = rewrite(site)
    assert run.kind is RunKind.INCREMENTAL
    assert run.corpus.errors["problem"].tolist() == ["duplicate url"]
    assert run.corpus.errors["detail"].str.endswith(first.relative_to(site).as_posix()).all()
    assert len(run.corpus.pages) == len(pages) - 1


def test_a_full_run_gives_freed_memory_back_before_writing_the_pages_and_the_state(
    site, monkeypatch
):
    stages = []
    export, write_state = job_module.export_links, job_module.write_state
    monkeypatch.setattr(job_module, "release_free_memory", lambda: stages.append("released"))
    monkeypatch.setattr(
        job_module, "export_links", lambda *a, **k: stages.append("export") or export(*a, **k)
    )
    monkeypatch.setattr(
        job_module, "write_state", lambda *a, **k: stages.append("state") or write_state(*a, **k)
    )
    assert rewrite(site).kind is RunKind.FULL
    assert stages == ["released", "export", "released", "state"]


def test_an_incremental_run_starts_the_exporters_workers_while_it_computes_links(site, monkeypatch):
    run_job(site, settings={**SETTINGS, "n_jobs": 2}, write_back=WriteBack.YES, state=True)
    page = sorted(site.rglob("*.md"))[5]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    events = []
    started = job_module.exporter_started

    @contextlib.contextmanager
    def recording(n_jobs, on_change):
        events.append(("start", n_jobs))
        with started(n_jobs, on_change):
            yield
        events.append("ready")

    update = model_module.Recommender.update
    monkeypatch.setattr(job_module, "exporter_started", recording)
    monkeypatch.setattr(
        model_module.Recommender,
        "update",
        lambda self, *a, **k: events.append("update") or update(self, *a, **k),
    )
    result = run_job(site, settings={**SETTINGS, "n_jobs": 2}, write_back=WriteBack.YES, state=True)
    assert result.kind is RunKind.INCREMENTAL
    assert events == [("start", 2), "update", "ready"]


def _state_line(result) -> str:
    return next(line for line in result.summary_lines() if line.startswith("  state"))


def test_the_summary_says_why_a_run_without_a_state_to_use_was_a_full_one(site):
    assert _state_line(rewrite(site)) == "  state    full run (no state yet)"
    assert _state_line(rewrite(site, full=True)) == "  state    full run (--full)"
    settings = {**SETTINGS, "max_df": 0.3}
    other = run_job(site, settings=settings, write_back=WriteBack.YES, state=True)
    assert _state_line(other) == (
        "  state    full run (the state was ignored: it was made with other settings)"
    )
    (site / ".recommender" / "state.json").write_text("garbage")
    result = rewrite(site)
    assert result.full_because == "the state could not be read"
    assert _state_line(result) == "  state    full run (the state could not be read)"
    for options in ({"state": False}, {"state": True, "full": True}):  # no state, no writing
        write_back = WriteBack.YES if options["state"] is False else WriteBack.NO
        result = run_job(site, settings=SETTINGS, write_back=write_back, **options)
        assert result.kind is RunKind.FULL and result.full_because is None
        assert not [line for line in result.summary_lines() if line.startswith("  state")]


def test_the_summary_says_why_a_run_with_a_state_was_a_full_one(site):
    rewrite(site)
    pages = sorted(site.rglob("*.md"))
    pages[0].write_text(pages[0].read_text("utf-8") + "\n", "utf-8")
    result = rewrite(site, full_after=0.0)
    assert result.kind is RunKind.FULL and result.full_because.endswith("changed, over 0%")
    assert _state_line(result) == (
        f"  state    full run ({1 / len(pages):.1%} of the files changed, over 0%): "
        "0 new, 1 changed, 0 deleted files since the last run"
    )
    # a changed page takes the url of an unchanged one with a later path: the state cannot
    # say which keeps it (a full run settles it); the run said "incremental" before
    earlier, later = pages[3], pages[40]
    earlier.write_text(
        earlier.read_text("utf-8").replace(_url_line(earlier), _url_line(later)), "utf-8"
    )
    result = rewrite(site)
    assert result.kind is RunKind.FULL
    assert _state_line(result).startswith(
        "  state    full run (the changes cannot be merged into the state): 0 new, 1 changed"
    )
    folder = site / ".recommender"
    generation = folder / json.loads((folder / "state.json").read_text())["generation"]
    (generation / "model.npz").write_bytes(b"not an npz")
    later.write_text(later.read_text("utf-8") + "\n", "utf-8")
    result = rewrite(site)
    assert result.kind is RunKind.FULL and result.full_because == "the state could not be read"
    assert "full run (the state could not be read)" in _state_line(result)
    result = rewrite(site)
    assert result.kind is RunKind.UNCHANGED and result.full_because is None
    assert _state_line(result).startswith("  state    unchanged run: 0 new")


def test_the_same_settings_spelled_otherwise_keep_the_state(site, tmp_path):
    # a settings file of the defaults, the rules file by another path or with a comment
    # made the state one of other settings: a full run (hostile pass)
    from recommender.config import load_rules, load_settings

    rules = tmp_path / "rules.toml"
    rules.write_text("[dates]\nno_newer = true\n", encoding="utf-8")
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("field_weights = {title = 3.0, keywords = 2.0, answer = 1.0}\n", "utf-8")

    def run(settings):
        return run_job(
            site, settings={**SETTINGS, **settings}, write_back=WriteBack.YES, state=True
        )

    run({"rules": load_rules(rules)})
    assert run({"rules": load_rules(rules)}).kind is RunKind.UNCHANGED
    rules.write_text("# an editor's note\n\n[dates]\nno_newer = true\n", encoding="utf-8")
    other_path = tmp_path / "elsewhere" / "same.toml"
    other_path.parent.mkdir()
    other_path.write_bytes(rules.read_bytes())
    for again in (load_rules(rules), load_rules(other_path)):
        assert run({"rules": again}).kind is RunKind.UNCHANGED
    assert run({**load_settings(defaults), "rules": load_rules(rules)}).kind is RunKind.UNCHANGED
    rules.write_text("[dates]\nno_newer = false\n", encoding="utf-8")
    other = run({"rules": load_rules(rules)})  # what the rules say counts: links chosen again
    assert other.kind is RunKind.INCREMENTAL and other.full_because == "other link settings"


# ---------------------------------------------------------------- from mutation testing


def test_an_edit_that_keeps_the_size_is_seen_by_its_new_time(site):
    rewrite(site)
    page = sorted(site.rglob("*.md"))[5]
    data = page.read_bytes()
    at = data.index(b"\nanswer:") + len(b"\nanswer:")
    letter = next(i for i in range(at, len(data)) if data[i : i + 1].isalpha())
    swapped = b"q" if data[letter : letter + 1] != b"q" else b"z"
    page.write_bytes(data[:letter] + swapped + data[letter + 1 :])  # same size, other bytes
    result = rewrite(site)
    assert result.kind is RunKind.INCREMENTAL
    assert result.changes.changed == [page.relative_to(site).as_posix()]


class _Planted:
    """Unpickled, it makes a file: a state read with pickles would run what it holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    ("file", "array"), [("signatures.npz", "in_sync"), ("model.npz", "copy_group")]
)
def test_a_state_array_holding_a_pickle_is_damage_and_never_unpickled(site, tmp_path, file, array):
    rewrite(site)
    folder = site / ".recommender"
    path = folder / json.loads((folder / "state.json").read_text())["generation"] / file
    with np.load(path) as held:
        arrays = {name: held[name] for name in held.files}
    marker = tmp_path / "unpickled"
    arrays[array] = np.array([_Planted(marker)] * len(arrays[array]), dtype=object)
    np.savez(path, **arrays)
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert rewrite(site).kind is RunKind.FULL
    assert not marker.exists()


def test_the_model_read_from_the_state_is_the_model_fitted(site):
    rewrite(site)
    settings = Recommender(**SETTINGS).get_params()
    key = state_key({**settings, "max_page_bytes": DEFAULT_MAX_PAGE_BYTES})  # as the job's
    saved, reason = read_state(site / ".recommender", key)
    assert reason == ""
    read = saved.read_model(settings)
    fitted = Recommender(**SETTINGS).fit(load_corpus(site).pages)
    assert read.urls_.equals(fitted.urls_) and read.urls_.name == "url"
    assert (read.features_ != fitted.features_).nnz == 0
    assert read.features_.shape == fitted.features_.shape
    np.testing.assert_array_equal(read.copy_group_, fitted.copy_group_)
    np.testing.assert_array_equal(read.candidates_, fitted.candidates_)
    assert read.semantic_candidates_.shape == fitted.semantic_candidates_.shape == (64, 0)
    assert read.timings_ == {}


def test_a_state_that_fails_to_write_leaves_the_last_one_whole_and_no_half_of_its_own(
    site, monkeypatch
):
    import recommender.state as state_module

    rewrite(site)
    folder = site / ".recommender"
    before = sorted(p.name for p in folder.iterdir())
    header = (folder / "state.json").read_text(encoding="utf-8")
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")

    def disk_full(target, *args):
        (target / "signatures.npz").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_module, "_write_generation", disk_full)
    with pytest.raises(OSError, match="No space left"):
        rewrite(site)
    assert sorted(p.name for p in folder.iterdir()) == before  # no half-written generation
    assert (folder / "state.json").read_text(encoding="utf-8") == header
    monkeypatch.undo()
    assert rewrite(site).kind is RunKind.INCREMENTAL  # the last state still serves


@pytest.mark.parametrize("generation", [5, "..", "0" * 31 + "g"])
def test_a_header_naming_no_generation_is_ignored_and_the_state_rebuilt(site, caplog, generation):
    rewrite(site)
    folder = site / ".recommender"
    header = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    (folder / "state.json").write_text(json.dumps({**header, "generation": generation}))
    with caplog.at_level("WARNING", logger="recommender.state"):
        assert rewrite(site).kind is RunKind.FULL
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "it names no generation; a full run rebuilds it"
    ]
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_threads_bars_and_the_embedding_cache_never_change_the_settings_key(tmp_path):
    plain = Recommender(**SETTINGS).get_params()
    key = settings_key(plain)
    running = [("n_jobs", 1), ("progress", True), ("embedding_cache", tmp_path), ("block_size", 9)]
    for name, value in running:
        assert settings_key({**plain, name: value}) == key, name
    assert settings_key({**plain, "ngram_range": {"title": (1, 2)}}) != key
    assert settings_key({**plain, "ngram_range": {"title": (1, 2)}}) != settings_key(
        {**plain, "ngram_range": {"title": (1, 3)}}
    )
    assert settings_key({**plain, "ngram_range": {"title": [1, 2]}}) == settings_key(
        {**plain, "ngram_range": {"title": (1, 2)}}
    )


def test_a_page_a_keep_rule_left_is_written_as_a_full_run_writes_it_once_released(site, tmp_path):
    """Its block, which a keep rule left, links a page that is gone (found by a review)."""
    pages = rewrite(site).corpus.pages  # each page holds its links: a list that can stay
    kept = pages.index[10]
    page = site / pages.loc[kept, "path"]
    head, _, body = page.read_text(encoding="utf-8").partition("\n---\n")
    gone = "/learn/biology/questions/gone"
    stale = (
        f"related_article6:\n    id: 1\n    title: Gone\n    subject: Biology\n    url: {gone}\n"
    )
    page.write_text(f"{head}\n{stale}---\n{body}", encoding="utf-8")
    keeping = {**SETTINGS, "rules": EditorialRules(keeps=(Keep(kept),))}
    run_job(site, settings=keeping, write_back=WriteBack.YES, state=True, force=True)
    assert gone in page.read_text(encoding="utf-8")
    fresh = tmp_path / "fresh"
    shutil.copytree(site, fresh, ignore=shutil.ignore_patterns(".recommender"))
    run_job(fresh, settings=SETTINGS, write_back=WriteBack.YES, state=False, force=True)
    released = rewrite(site, force=True)
    assert released.kind is RunKind.INCREMENTAL and released.full_because == "other link settings"
    assert gone not in page.read_text(encoding="utf-8")
    assert page_bytes(site) == page_bytes(fresh)
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_link_settings_keep_the_settings_key_and_change_the_links_key():
    plain = Recommender(**SETTINGS).get_params()
    assert state_key(plain) == (settings_key(plain), links_key(plain))
    assert links_key({}) == links_key(Recommender().get_params())  # defaults where not given
    changed = {
        "n_links": 4,
        "duplicate_threshold": 0.95,
        "min_score": 0.1,
        "coverage": False,
        "max_in_links": 10,
        "coverage_tolerance": 0.5,
        "rules": EditorialRules(keeps=(Keep("/a"),)),
        "stability": 0.5,
        "mutual_discount": 0.2,
    }
    assert set(changed) == LINKING_PARAMETERS
    for name, value in changed.items():
        other = {**plain, name: value}
        assert settings_key(other) == settings_key(plain), name
        assert links_key(other) != links_key(plain), name
    assert links_key({**plain, "max_df": 0.3, "n_jobs": 1}) == links_key(plain)


def test_a_generation_that_is_a_link_to_a_folder_elsewhere_is_damage(site, tmp_path, caplog):
    rewrite(site)
    folder = site / ".recommender"
    generation = folder / json.loads((folder / "state.json").read_text())["generation"]
    elsewhere = tmp_path / "elsewhere"
    shutil.move(generation, elsewhere)
    generation.symlink_to(elsewhere, target_is_directory=True)
    with caplog.at_level("WARNING", logger="recommender.state"):
        assert rewrite(site).kind is RunKind.FULL
    assert f"{generation} is not a folder" in caplog.text
    assert sorted(p.name for p in elsewhere.iterdir())  # read nothing there, removed nothing


def test_the_state_says_in_one_line_why_it_is_not_used(site, caplog):
    folder = site / ".recommender"

    def said(**options):
        caplog.clear()
        with caplog.at_level("INFO", logger="recommender.state"):
            rewrite(site, **options)
        return [r.getMessage() for r in caplog.records if r.name == "recommender.state"]

    assert said() == [f"no state in {folder}: a full run"]
    header = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**header, "recommender": "0.0.0"}))
    assert said() == [
        f"state in {folder} ignored: it was made by recommender 0.0.0, this is "
        f"{json.loads((folder / 'state.json').read_text())['recommender']}; a full run rebuilds it"
    ]
    (folder / "state.json").write_text("{not json")
    assert said()[0].startswith(f"state in {folder} is unreadable (")
    generation = folder / json.loads((folder / "state.json").read_text())["generation"]
    (generation / "signatures.npz").write_bytes(b"not an npz")
    assert said()[0].startswith(f"state in {folder} is damaged (")


def test_the_pages_read_back_from_the_state_hold_their_keywords_and_links_as_lists(site):
    rewrite(site)
    settings = Recommender(**SETTINGS).get_params()
    key = state_key({**settings, "max_page_bytes": DEFAULT_MAX_PAGE_BYTES})  # as the job's
    saved, _ = read_state(site / ".recommender", key)
    pages = saved.read_corpus(site).pages
    loaded = load_corpus(site).pages.loc[pages.index]
    for column in ("keywords", "related_urls"):  # as the loader gives them, not Arrow's arrays
        assert all(type(value) is list for value in pages[column]), column
        assert pages[column].tolist() == loaded[column].tolist(), column


def test_a_state_of_another_format_says_which_format_it_is(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"format": STATE_FORMAT + 1}))
    assert read_state(tmp_path, StateKey("", "")) == (
        None,
        f"the state was ignored: it is of format {STATE_FORMAT + 1}, this is {STATE_FORMAT}",
    )


def test_a_missing_page_file_is_signed_with_a_size_no_file_has(tmp_path):
    signatures = file_signatures(tmp_path, ["gone.md"])
    assert signatures.size.tolist() == [-1] and signatures.mtime_ns.tolist() == [0]
    assert not signatures.digest.any()


def test_a_file_signature_keeps_every_nanosecond_of_its_time(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("a")
    times = [1_700_000_000_123_456_789, 1_700_000_000_123_456_790]  # one float64 apart: none
    signed = []
    for ns in times:
        os.utime(page, ns=(ns, ns))
        signed += file_signatures(tmp_path, ["page.md"]).mtime_ns.tolist()
    assert signed == times


def test_a_file_saved_as_unknown_is_a_change_next_time_whatever_its_size_and_time(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("a")  # one byte, and the time an unknown file is saved with
    os.utime(page, ns=(0, 0))
    before = file_signatures(tmp_path, ["page.md"])
    after = signatures_after_writes(tmp_path, before, {"page.md": (None, None)})
    saved = SavedState(tmp_path, "0" * 32, after, np.ones(1, dtype=bool))
    assert saved.changes(tmp_path, file_signatures(tmp_path, ["page.md"])).changed == ["page.md"]


def test_a_state_folder_that_cannot_be_tidied_after_writing_still_serves(site, monkeypatch):
    rewrite(site)
    folder = site / ".recommender"
    old = folder / json.loads((folder / "state.json").read_text())["generation"]
    left = folder / ".state.json.0a1b2c3d.tmp"  # a killed run's, as write_atomic names it
    left.write_text('{"form')
    unlink, rmtree = Path.unlink, shutil.rmtree

    def refused_unlink(path, *args, **kwargs):
        if path == left:
            raise PermissionError(13, "Permission denied")
        return unlink(path, *args, **kwargs)

    def refused_rmtree(path, *args, **kwargs):
        if Path(path) == old:
            raise PermissionError(13, "Permission denied")
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refused_unlink)
    monkeypatch.setattr(shutil, "rmtree", refused_rmtree)
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert rewrite(site).kind is RunKind.INCREMENTAL
    monkeypatch.undo()
    assert left.exists() and old.is_dir()  # left as they were, the run not failed for them
    assert rewrite(site).kind is RunKind.UNCHANGED


def test_a_state_header_over_a_mebibyte_is_not_read(tmp_path, caplog):
    header = json.dumps({"format": STATE_FORMAT + 1}).encode("utf-8")
    for size, reason in [
        (1 << 20, "the state was ignored: it is of format"),
        ((1 << 20) + 1, "the state could not be read"),
    ]:
        (tmp_path / "state.json").write_bytes(header.ljust(size))  # JSON padded with spaces
        with caplog.at_level("WARNING", logger="recommender.state"):
            assert read_state(tmp_path, StateKey("", ""))[1].startswith(reason), size
    assert "is over 1,048,576 bytes" in caplog.text


def test_the_keys_do_not_depend_on_the_order_or_spelling_of_the_settings():
    plain = Recommender(**SETTINGS).get_params()
    assert state_key(dict(reversed(plain.items()))) == state_key(plain)
    assert plain["ngram_range"] is None  # the default: every field's words one by one
    for same in ({}, MappingProxyType({})):  # as a settings file of the defaults spells it
        assert settings_key({**plain, "ngram_range": same}) == settings_key(plain)
    title = {**plain, "ngram_range": {"title": [1, 2]}}
    assert settings_key({**plain, "ngram_range": MappingProxyType({"title": (1, 2)})}) == (
        settings_key(title)
    )


def test_a_real_setting_written_as_an_integer_is_the_same_setting():
    plain = Recommender(**SETTINGS).get_params()
    weights = {"title": 3, "keywords": 2, "answer": 1}  # the defaults, as a TOML file may say
    assert settings_key({**plain, "field_weights": weights}) == settings_key(plain)
    assert settings_key({**plain, "bm25_b": 1}) == settings_key({**plain, "bm25_b": 1.0})
    assert links_key({**plain, "stability": 0}) == links_key({**plain, "stability": 0.0})
    assert settings_key({**plain, "max_df": 1}) != settings_key({**plain, "max_df": 1.0})


def test_a_state_whose_signature_arrays_disagree_in_length_is_damaged_and_rebuilt(site):
    rewrite(site)
    folder = site / ".recommender"
    signatures = folder / json.loads((folder / "state.json").read_text())["generation"]
    signatures /= "signatures.npz"
    with np.load(signatures) as arrays:
        values = {name: arrays[name] for name in arrays.files}
    np.savez(signatures, **{**values, "mtime_ns": values["mtime_ns"][:-1]})
    page = sorted(site.rglob("*.md"))[0]
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = rewrite(site)
    assert result.kind is RunKind.FULL and result.full_because == "the state could not be read"
    assert rewrite(site).kind is RunKind.UNCHANGED
