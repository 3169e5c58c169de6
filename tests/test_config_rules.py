"""Rules files: parsed into EditorialRules; every bad rule named with its file and line."""

import os
import re
import shutil
import sys

import pytest

from recommender import load_corpus
from recommender.cli import main
from recommender.config import load_rules, load_settings
from recommender.errors import ConfigError
from recommender.rules import EditorialRules, Keep, Never, Pin

from .conftest import SAMPLE

GOOD = """\
# comments and blank lines count as lines
[[pin]]
source = "/learn/biology/questions/how-is-dna-replicated-before-a-cell-divides"
target = "/learn/biology/questions/what-is-the-difference-between-mitosis-and-meiosis"
rank = 1

[[never]]
source = "subject:Biology"
target = "/learn/history-of-the-world/questions/*"

[[never]]
target = "/learn/economics/*"

[[keep]]
source = "/learn/economics/questions/what-causes-inflation"

[dates]
no_newer = true
half_life_days = 365.0

[subjects]
min_same = 2
cross_min_score = 0.2
"""


def write(tmp_path, text, name="rules.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_rules_file_becomes_editorial_rules_with_lines(tmp_path):
    path = write(tmp_path, GOOD)
    rules = load_rules(path)
    assert rules == EditorialRules(
        pins=(
            Pin(
                "/learn/biology/questions/how-is-dna-replicated-before-a-cell-divides",
                "/learn/biology/questions/what-is-the-difference-between-mitosis-and-meiosis",
                1,
                line=2,
            ),
        ),
        nevers=(
            Never("subject:Biology", "/learn/history-of-the-world/questions/*", line=7),
            Never(None, "/learn/economics/*", line=11),
        ),
        keeps=(Keep("/learn/economics/questions/what-causes-inflation", line=14),),
        no_newer=True,
        half_life_days=365.0,
        min_same=2,
        cross_min_score=0.2,
        file=str(path),
        section_lines=(("dates", 17), ("subjects", 21)),
    )
    assert rules.where("subjects") == f"{path}:21: [subjects]"


def test_the_sample_rules_file_loads_and_applies():
    from recommender import Recommender

    rules = load_rules(SAMPLE / "related-rules.toml")
    pages = load_corpus(SAMPLE).pages
    model = Recommender(rules=rules).fit(pages)
    assert len(model.kept_urls_) == 1 and not model.rule_events_.empty


PIN = '[[pin]]\nsource = "/a"\ntarget = "/b"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PIN + "\n" + PIN + "colour = 1\n", r":5: \[\[pin\]\]: unknown key 'colour'"),
        (PIN + '[[pin]]\nsource = "/a"\n', r":4: \[\[pin\]\]: target is required"),
        (PIN + "rank = 0\n", r":1: \[\[pin\]\]: rank must be an integer from 1, got 0"),
        (PIN + 'rank = "1"\n', r":1: \[\[pin\]\]: rank must be an integer"),
        ('[[pin]]\nsource = ""\ntarget = "/b"\n', r":1: \[\[pin\]\]: source must be a url"),
        ("\n\n[[never]]\n", r":3: \[\[never\]\]: give a source, a target or both"),
        ("[[keep]]\nsource = 3\n", r":1: \[\[keep\]\]: source must be a url"),
        ("\n[dates]\nno_newer = 1\n", r":2: \[dates\]: no_newer must be true or false, got 1"),
        ("[dates]\nhalf_life_days = 0\n", r":1: \[dates\]: half_life_days must be a number"),
        ("[subjects]\nmin_same = -1\n", r":1: \[subjects\]: min_same must be an integer from 0"),
        ("[subjects]\nmin_same = 100000000000000000000000\n", r":1: \[subjects\]: min_same must"),
        ("[dates]\nhalf_life_days = 1e400\n", r":1: \[dates\]: half_life_days must be a number"),
        ("[subjects]\ncross_min_score = 1.5\n", r":1: \[subjects\]: cross_min_score must be"),
        ("[subjects]\nmin_sam = 1\n", r":1: \[subjects\]: unknown key 'min_sam'"),
        ("\n[[pins]]\n", r":2: \[pins\]: unknown section 'pins'; known: pin, never"),
        ("pin = 3\n", r":1: \[pin\]: write each rule as a \[\[pin\]\] table"),
        ("[[pin]\n", ": not valid TOML"),
    ],
)
def test_a_bad_rules_file_names_the_rule_and_its_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{path}{message}"):
        load_rules(path)


def test_a_missing_rules_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the rules"):
        load_rules(tmp_path / "none.toml")


def test_settings_name_the_rules_file_relative_to_themselves(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    write(folder, GOOD, "related-rules.toml")
    settings = write(folder, 'rules = "related-rules.toml"\nn_links = 5\n', "settings.toml")
    assert load_settings(settings)["rules"] == load_rules(folder / "related-rules.toml")
    with pytest.raises(ConfigError, match="rules must be the path of a rules file"):
        load_settings(write(folder, "rules = 3\n", "bad.toml"))


def test_settings_name_the_embedding_cache_relative_to_themselves(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    settings = write(folder, 'semantic_weight = 0.5\nembedding_cache = "emb"\n', "s.toml")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigError, match=r"s\.toml: semantic_weight > 0 needs sentence embed"):
        load_settings(settings)
    monkeypatch.undo()
    monkeypatch.setattr("recommender.model.require_embeddings", lambda: None)
    loaded = load_settings(settings)
    assert loaded == {"semantic_weight": 0.5, "embedding_cache": str(folder / "emb")}
    home = write(folder, 'embedding_cache = "~/emb"\n', "home.toml")
    assert load_settings(home)["embedding_cache"] == os.path.expanduser("~/emb")
    with pytest.raises(ConfigError, match="'embedding_cache' parameter"):
        load_settings(write(folder, "embedding_cache = 3\n", "bad.toml"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_recommend_with_rules_keeps_the_kept_page_byte_for_byte(site, tmp_path, capsys):
    rules = write(tmp_path, GOOD)
    kept = site / "economics" / "what-causes-inflation.md"
    # a hand-curated page, stale block and all: kept as it is, not corrected
    text = kept.read_text(encoding="utf-8")
    kept.write_text(text.replace("What is the normal distribution?", "Normal?"), encoding="utf-8")
    before = kept.read_bytes()
    # the never rule takes every economics link away: more than --max-removal-share
    code, _out, err = run(capsys, site, "--rules", rules, "--rewrite", "--force", "-j", "1")
    assert code == 0, err
    assert kept.read_bytes() == before
    pages = load_corpus(site).pages
    dna = "/learn/biology/questions/how-is-dna-replicated-before-a-cell-divides"
    assert pages.loc[dna, "related_urls"][0].endswith(
        "what-is-the-difference-between-mitosis-and-meiosis"
    )
    economics = pages["related_urls"].map(lambda urls: any("/economics/" in u for u in urls))
    assert set(pages.index[economics]) <= {"/learn/economics/questions/what-causes-inflation"}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('[[never]]\nsource = "/nowhere"\n', r":2: \[\[never\]\]: source '/nowhere' names no page"),
        (
            '[[pin]]\nsource = "subject:biology"\n'
            'target = "/learn/psychology/questions/what-is-cognitive-dissonance"\n',
            r":2: \[\[pin\]\]: target .* is a no_index page",
        ),
    ],
)
def test_a_rule_that_names_no_page_fails_the_run_before_anything_is_written(
    site, tmp_path, capsys, rule, message
):
    rules = write(tmp_path, "# a rule that cannot hold\n" + rule)
    copy = tmp_path / "before"
    shutil.copytree(site, copy)
    code, _out, err = run(capsys, site, "--rules", rules, "--rewrite", "-j", "1")
    assert code == 2
    assert err.count("\n") == 1
    assert f"recommend: error: {rules}" in err and re.search(message, err)
    for page in copy.rglob("*.md"):
        assert (site / page.relative_to(copy)).read_bytes() == page.read_bytes()


def test_print_config_names_the_rules_file_so_that_it_reads_back(tmp_path, capsys):
    rules = write(tmp_path, GOOD)
    code, out, _err = run(capsys, "--rules", rules, "--print-config")
    assert code == 0 and f'rules = "{rules}"' in out
    settings = write(tmp_path / "..", out, "printed.toml")
    assert load_settings(settings)["rules"] == load_rules(rules)


@pytest.mark.parametrize("load", [load_settings, load_rules])
def test_a_settings_or_rules_file_is_read_as_pages_are(tmp_path, alarm, load):
    # a FIFO hung the run, /dev/zero filled memory, other bytes than UTF-8 were an internal
    # error (a hostile pass found each)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"fifo\.toml: cannot read .*not a regular file"):
        load(fifo)
    with pytest.raises(ConfigError, match=r"/dev/zero: cannot read .*not a regular file"):
        load("/dev/zero")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"big\.toml: cannot read .*over the limit"):
        load(big)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.toml: cannot read .*0xe9 at offset 5 is not"):
        load(latin)
    marked = tmp_path / "marked.toml"
    marked.write_bytes("\ufeff# a byte-order mark is fine\n".encode())
    load(marked)


@pytest.mark.parametrize(
    "rule",
    [
        '[[keep]]\nsource = "/learn/economics/questions/what-causes-inflation"\n',
        '[[pin]]\nsource = "subject:economics"\n'
        'target = "/learn/economics/questions/what-causes-inflation"\n',
    ],
)
def test_a_rule_naming_a_page_that_cannot_be_read_never_stops_the_others(
    site, tmp_path, capsys, rule
):
    # it was a usage error (exit 2) and no page was written (hostile pass)
    rules = write(tmp_path, rule)
    broken = site / "economics" / "what-causes-inflation.md"
    broken.write_text(
        broken.read_text(encoding="utf-8").replace("title:", "title: [unclosed", 1), "utf-8"
    )
    written = []
    for state in ("--no-state", "--full", None):  # full runs, then a night with the state
        arguments = [site, "--rules", rules, "--rewrite", "-j", "1", state]
        code, out, err = run(capsys, *[a for a in arguments if a is not None])
        assert code == 3 and "bad page economics/what-causes-inflation.md" in err
        fitted = "names no page of the site that loaded (1 could not be read" in err
        assert fitted == (state is not None)  # the night finds nothing changed: no fit
        written.append(int(re.search(r"pages +([\d,]+) rewritten", out)[1].replace(",", "")))
    assert written[0] > 0 and written[1:] == [0, 0]
