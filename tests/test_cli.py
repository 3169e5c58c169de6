import json
import os
import shutil
import signal
import sys
import tomllib
import warnings

import pandas as pd
import pytest

import recommender.cli as cli
import recommender.job as job_module
from recommender import Recommender, load_corpus
from recommender.cli import main
from recommender.config import SETTINGS, load_settings

from .conftest import BROKEN, SAMPLE, fail_writes_to


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_documents_modes_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "--rewrite",
        "--check",
        "--diff",
        "--output",
        "--config",
        "--print-config",
        "--jobs",
        "--quiet",
        "--verbose",
        "--strict",
        "--evaluate",
    ):
        assert text in out
    for code in ("0  done", "1  --check", "2  usage error", "3  some pages", "4  something else"):
        assert code in out


def test_default_mode_says_what_would_change_and_writes_nothing(site, capsys):
    before = snapshot(site)
    code, out, err = run(capsys, site)
    assert code == 0 and err == ""
    assert snapshot(site) == before
    assert "64 loaded, 0 bad" in out
    assert "320 for 64 pages (64 with 5)" in out
    assert "64 would be rewritten, 0 unchanged" in out
    assert "nothing written" in out


def test_rewrite_then_check_then_hand_edit(site, capsys):
    code, out, _ = run(capsys, site, "--rewrite")
    assert code == 0 and "64 rewritten" in out
    written = snapshot(site)
    code, out, _ = run(capsys, site, "--rewrite")
    assert code == 0 and "0 rewritten, 64 unchanged" in out
    assert snapshot(site) == written
    assert run(capsys, site, "--check")[0] == 0

    page = next(site.rglob("*.md"))
    text = page.read_text(encoding="utf-8")
    start = text.index("related_article1:")
    title_line = text.index("title:", start)
    page.write_text(
        text[:title_line]
        + "title: Edited by hand\n"
        + text[text.index("\n    subject:", title_line) + 1 :],
        encoding="utf-8",
    )
    code, out, _ = run(capsys, site, "--check")
    assert code == 1 and "1 would be rewritten" in out
    assert page.read_text(encoding="utf-8").count("Edited by hand") == 1  # --check wrote nothing


def test_diff_shows_exactly_the_pages_rewrite_writes(site, capsys):
    # make the site partly up to date: rewrite, then spoil a few pages
    run(capsys, site, "--rewrite")
    spoiled = sorted(site.rglob("*.md"))[::9]
    for page in spoiled:
        text = page.read_text(encoding="utf-8")
        page.write_text(text[: text.index("related_article1:")] + "---\n", encoding="utf-8")
    before = snapshot(site)
    code, out, _ = run(capsys, site, "--diff")
    assert code == 0
    diffed = {line[6:] for line in out.splitlines() if line.startswith("+++ b/")}
    run(capsys, site, "--rewrite")
    after = snapshot(site)
    assert diffed == {path for path in after if after[path] != before[path]}
    assert diffed == {page.relative_to(site).as_posix() for page in spoiled}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_output_links_table(site, tmp_path, capsys, suffix):
    target = tmp_path / f"links{suffix}"
    code, out, _ = run(capsys, site, "--output", target)
    assert code == 0 and f"320 links written to {target}" in out
    if suffix == ".csv":
        table = pd.read_csv(target)
    elif suffix == ".parquet":
        table = pd.read_parquet(target)
    else:
        table = pd.read_json(target, lines=True)
    assert list(table.columns) == ["source_url", "rank", "target_url", "score"]
    assert len(table) == 320


def test_bad_output_suffix_is_a_usage_error_before_any_work(site, tmp_path, capsys):
    code, _, err = run(capsys, site, "--output", tmp_path / "links.xlsx")
    assert code == 2
    assert "--output must end in .csv, .parquet, .jsonl" in err


def test_config_file_and_flags(site, tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text("n_links = 3\nmax_df = 0.5\n[field_weights]\ntitle = 1.0\nanswer = 1.0\n")
    code, out, _ = run(capsys, site, "--config", config, "--output", tmp_path / "l.csv")
    assert code == 0 and "192 for 64 pages (64 with 3)" in out
    code, out, _ = run(capsys, "--config", config, "--jobs", "3", "--print-config")
    assert code == 0
    printed = tomllib.loads(out)
    assert printed["n_links"] == 3 and printed["n_jobs"] == 3 and printed["max_df"] == 0.5
    assert printed["field_weights"] == {"title": 1.0, "answer": 1.0}
    assert set(printed) <= set(SETTINGS)
    # what --print-config prints is a settings file that gives the same settings
    again = tmp_path / "again.toml"
    again.write_text(out)
    assert load_settings(again)["n_links"] == 3


def test_print_config_shows_every_default(capsys):
    code, out, _ = run(capsys, "--print-config")
    printed = tomllib.loads(out)
    assert code == 0
    assert printed["field_weights"] == {"title": 3.0, "keywords": 2.0, "answer": 1.0}
    assert printed["ngram_range"] == {} and printed["combine"] == "concatenate"
    assert printed["n_jobs"] == -1 and printed["coverage"] is True
    assert printed["stability"] == Recommender().stability
    # no rules by default: TOML has no null, so it is printed as a comment
    assert set(printed) == set(SETTINGS) - {"rules", "embedding_cache"}
    assert "# rules is not set" in out and "# embedding_cache is not set" in out
    assert printed["semantic_weight"] == 0.0 and printed["embedding_model"] == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("n_linkz = 3\n", "unknown setting n_linkz; known: n_links"),
        (
            "n_links = 0\n",
            "'n_links' parameter of Recommender must be an int in the range [1, inf). Got 0",
        ),
        ("max_df = 1\n", "an int in the range [2, inf). Got 1 instead"),
        ("max_df = [1\n", "not valid TOML"),
        ('coverage = "yes"\n', "'coverage' parameter of Recommender must be an instance of 'bool'"),
    ],
)
def test_bad_config_is_a_one_line_usage_error(site, tmp_path, capsys, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    code, _out, err = run(capsys, site, "--config", config)
    assert code == 2
    assert err.startswith(f"recommend: error: {config}: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_and_site(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path, "--config", tmp_path / "none.toml")
    assert code == 2 and "cannot read the settings" in err
    code, _, err = run(capsys, tmp_path / "nowhere")
    assert code == 2 and "not a folder" in err
    code, _, err = run(capsys)
    assert code == 2 and "PATH is required" in err


def test_bad_pages_are_listed_and_skipped(site, capsys):
    for name in ("invalid-yaml.md", "text-id.md"):
        shutil.copy(BROKEN / name, site / name)
    before = snapshot(site)
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 3
    assert "64 loaded, 2 bad (skipped)" in out
    assert "bad page invalid-yaml.md:4: invalid YAML" in err
    assert "bad page text-id.md:2: wrong type" in err
    assert "bad page" not in out
    after = snapshot(site)
    assert after["invalid-yaml.md"] == before["invalid-yaml.md"]
    assert sum(after[path] != before[path] for path in before) == 64


def test_the_broken_examples_run(tmp_path, capsys):
    site = tmp_path / "broken"
    shutil.copytree(BROKEN, site)
    code, out, _ = run(capsys, site)
    assert code == 3 and "3 loaded, 12 bad (skipped)" in out


def test_strict_fails_before_anything_is_written(tmp_path, capsys):
    site = tmp_path / "broken"
    shutil.copytree(BROKEN, site)
    before = snapshot(site)
    code, _out, err = run(capsys, site, "--rewrite", "--strict")
    assert code == 3
    assert err.startswith("recommend: bad page, nothing written: duplicate-url-2.md: duplicate url")
    assert snapshot(site) == before


def test_quiet_prints_nothing_on_success(site, capsys):
    code, out, err = run(capsys, site, "--rewrite", "--quiet")
    assert (code, out, err) == (0, "", "")


def test_unexpected_errors_are_one_line_unless_verbose(site, capsys, monkeypatch):
    def broken_fit(self, pages):
        raise RuntimeError("something odd")

    monkeypatch.setattr(job_module.Recommender, "fit", broken_fit)
    code, _, err = run(capsys, site)
    assert code == 4
    assert err == "recommend: internal error: something odd (--verbose shows the traceback)\n"
    code, _, err = run(capsys, site, "--verbose")
    assert code == 4 and "Traceback (most recent call last)" in err


def test_failed_writes_exit_4_and_the_others_are_written(site, capsys, monkeypatch):
    victim = sorted(site.rglob("*.md"))[0]
    fail_writes_to(monkeypatch, victim)
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 4
    assert "63 rewritten, 0 unchanged, 1 failed" in out
    assert "cannot write" in err and victim.name in err


def test_evaluate_prints_both_sets_of_links(site, capsys):
    code, out, _ = run(capsys, site, "--evaluate")
    assert code == 0
    assert "in the pages" in out and "recommended" in out
    line = next(line for line in out.splitlines() if line.startswith("validity: self_links"))
    assert line.split()[-1] == "0"
    assert "topicality: keyword_share" in out
    changed = next(line for line in out.splitlines() if line.startswith("churn: pages_changed"))
    assert changed.split()[-1] == "64"


def test_jsonl_is_one_object_per_line(site, tmp_path, capsys):
    target = tmp_path / "links.jsonl"
    run(capsys, site, "--output", target, "--quiet")
    first = json.loads(target.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"source_url", "rank", "target_url", "score"}


def test_sigterm_mid_run_leaves_every_page_whole(site, capsys, monkeypatch):
    real_replace = os.replace
    replaced = []

    def replace_then_terminate(source, target, **folders):
        replaced.append(target)
        if len(replaced) == 10:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler stopping the job would
        real_replace(source, target, **folders)

    monkeypatch.setattr(os, "replace", replace_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run(capsys, site, "--rewrite")
    assert code == 130 and "interrupted" in err
    assert signal.getsignal(signal.SIGTERM) is before
    assert not [p for p in site.rglob("*") if p.name.endswith(".tmp")]
    assert 9 <= len(replaced) <= 11
    corpus = load_corpus(site)
    assert corpus.errors.empty and len(corpus.pages) == 64
    monkeypatch.undo()
    code, out, _ = run(capsys, site, "--rewrite")  # the next run finishes the job
    assert code == 0 and "rewritten" in out


def test_one_good_and_one_bad_page_is_a_data_problem_not_a_usage_error(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(BROKEN / "text-id.md", site / "bad.md")
    good = next(p for p in sorted(BROKEN.glob("*.md")) if p.name.startswith("good"))
    shutil.copy(good, site / "good.md")
    before = snapshot(site)
    code, out, err = run(capsys, site, "--rewrite")
    assert code == 3, err
    assert "1 loaded, 1 bad (skipped)" in out and "bad page bad.md:2: wrong type" in err
    assert "nothing to link" in err
    assert snapshot(site) == before  # the good page keeps its blocks


def test_a_missing_output_folder_fails_before_any_page_is_written(site, tmp_path, capsys):
    before = snapshot(site)
    code, _, err = run(capsys, site, "--rewrite", "--output", tmp_path / "missing" / "x.csv")
    assert code == 2
    assert f"{tmp_path / 'missing' / 'x.csv'}: the folder" in err and "does not exist" in err
    assert snapshot(site) == before


def test_with_diff_the_summary_goes_to_stderr_and_stdout_is_only_the_patch(site, capsys):
    code, out, err = run(capsys, site, "--diff")
    assert code == 0
    assert out.startswith("--- a/") and "64 would be rewritten" in err
    assert "pages" not in out.splitlines()[0]


@pytest.mark.parametrize(
    ("failed", "bad", "check", "changed", "code"),
    [
        (1, 1, True, 1, 4),
        (0, 1, True, 1, 3),
        (0, 0, True, 1, 1),
        (0, 0, False, 1, 0),
        (0, 0, True, 0, 0),
    ],
)
def test_exit_code_precedence_is_4_over_3_over_1(failed, bad, check, changed, code):
    statuses = ["error"] * failed + ["written" if not check else "changed"] * changed
    report = pd.DataFrame({"status": statuses, "links_added": 0, "links_removed": 0})
    errors = pd.DataFrame({"message": ["x.md: bad"] * bad})
    corpus = type("C", (), {"errors": errors})()
    mode = cli.WriteBack.CHECK if check else cli.WriteBack.YES
    result = cli.JobResult(corpus=corpus, links=None, report=report, write_back=mode, n_links=5)
    assert cli._exit_code(result) == code


def test_library_warnings_are_one_plain_line_and_quiet_hides_them(site, capsys):
    config = write_config(site.parent, "n_candidates = 5\nstability = 0.0\n")
    with warnings.catch_warnings():  # as outside pytest, which records warnings itself
        warnings.simplefilter("default")
        code, _, err = run(capsys, site, "--config", config)
    warning = [line for line in err.splitlines() if "fewer than 5 links" in line]
    assert code == 0 and len(warning) == 1
    assert warning[0].startswith("recommend: warning: ") and "UserWarning" not in warning[0]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code, out, err = run(capsys, site, "--quiet", "--config", config)
    assert (code, out, err) == (0, "", "")


def write_config(folder, text):
    path = folder / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_semantic_weight_flag_overrides_the_settings_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("recommender.model.require_embeddings", lambda: None)  # extra or not
    config = write_config(tmp_path, "semantic_weight = 0.7\n")
    code, out, _ = run(capsys, "--config", config, "--semantic-weight", "0.25", "--print-config")
    assert code == 0 and tomllib.loads(out)["semantic_weight"] == 0.25
    with pytest.raises(SystemExit) as info:
        main(["--semantic-weight", "1.5", "--print-config"])
    assert info.value.code == 2
    assert "a share from 0 to 1, got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["flag", "settings file"])
def test_semantic_weight_without_the_extra_is_a_usage_error_naming_it(
    site, tmp_path, capsys, monkeypatch, where
):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    before = snapshot(site)
    if where == "flag":
        code, out, err = run(capsys, site, "--rewrite", "--semantic-weight", "0.5")
    else:
        config = write_config(tmp_path, "semantic_weight = 0.5\n")
        code, out, err = run(capsys, site, "--rewrite", "--config", config)
    assert code == 2 and out == ""
    assert 'needs sentence embeddings: pip install "recommender[embeddings]"' in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(site) == before and not (site / ".recommender").exists()


def test_ctrl_c_while_the_command_starts_is_exit_130_not_a_traceback(monkeypatch, capsys):
    from recommender import launch

    class Interrupted:  # a Ctrl-C while the command's modules are imported
        def find_spec(self, name, path=None, target=None):
            if name == "recommender.cli":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "recommender.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupted(), *sys.meta_path])
    assert launch.main() == 130 == cli.EXIT_INTERRUPTED
    assert "interrupted while starting" in capsys.readouterr().err


def test_the_console_script_runs_the_command(monkeypatch):
    from recommender import launch

    monkeypatch.setattr(sys, "argv", ["recommend", "--version"])
    with pytest.raises(SystemExit) as stopped:
        launch.main()
    assert stopped.value.code == 0


def test_print_config_refuses_what_a_run_refuses(capsys):
    # it printed `n_jobs = 0`, a file --config then refused (hostile pass)
    code, out, err = run(capsys, "--jobs", "0", "--print-config")
    assert code == 2 and out == "" and "error: n_jobs must be" in err


def test_rules_on_the_command_line_override_a_settings_file_naming_none(capsys, tmp_path):
    # the settings' missing rules file failed the run, --rules notwithstanding (hostile pass)
    settings = tmp_path / "settings.toml"
    settings.write_text('rules = "missing.toml"\n', encoding="utf-8")
    rules = tmp_path / "rules.toml"
    rules.write_text("[dates]\nno_newer = true\n", encoding="utf-8")
    code, out, _ = run(capsys, "--config", settings, "--rules", rules, "--print-config")
    assert code == 0 and tomllib.loads(out)["rules"] == str(rules)
    code, _, err = run(capsys, "--config", settings, "--print-config")
    assert code == 2 and "missing.toml" in err


@pytest.mark.parametrize("extra", [[SAMPLE], ["--rewrite"], ["--output", "links.csv"]])
def test_print_config_with_a_site_or_a_run_s_options_is_a_usage_error(capsys, extra):
    # it printed the settings and did nothing else, silently (hostile pass)
    code, out, err = run(capsys, *extra, "--print-config")
    assert code == 2 and out == "" and "--print-config prints the settings and exits" in err
