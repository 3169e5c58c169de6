"""The whole job on a copy of the real corpus, as the nightly run and an operator use it."""

import re

import pytest
import yaml

from recommender import evaluate, load_corpus
from recommender.cli import main

from .conftest import extract_real_corpus

pytestmark = pytest.mark.real_corpus

# Independent of the exporter: a related block is its header and its indented lines.
BLOCK = re.compile(r"^related_article\d+:.*\n(?:[ \t]+\S.*\n|[ \t]*\n(?=[ \t]+\S))*", re.M)


def files(root):
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.md"))}


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return extract_real_corpus(tmp_path_factory.mktemp("real-copy"))


def test_rewrite_the_real_site(copy, capsys):
    before = {rel: p.read_bytes() for rel, p in files(copy).items()}

    # --diff lists the pages that --rewrite then writes, and writes nothing itself
    assert main([str(copy), "--diff", "--quiet"]) == 0
    diff = capsys.readouterr().out
    diffed = {line[6:] for line in diff.splitlines() if line.startswith("+++ b/")}
    assert {rel: p.read_bytes() for rel, p in files(copy).items()} == before

    assert main([str(copy), "--rewrite", "--quiet"]) == 0
    capsys.readouterr()
    after = {rel: p.read_bytes() for rel, p in files(copy).items()}
    written = {rel for rel in after if after[rel] != before[rel]}
    assert diffed == written
    assert len(written) > 35_000

    # every byte outside the related blocks is as it was, on every page
    for rel in before:
        old, new = before[rel].decode("utf-8"), after[rel].decode("utf-8")
        assert BLOCK.sub("", old) == BLOCK.sub("", new), rel

    # every page parses; each has five valid links whose blocks equal the target page
    corpus = load_corpus(copy, n_jobs=-1)
    assert corpus.errors.empty and len(corpus.pages) == 35_915
    pages = corpus.pages
    metrics = evaluate(pages, corpus.links).set_index("metric")["value"]
    assert metrics["pages_with_k_links"] == 35_915
    for metric in (
        "unresolved_links",
        "self_links",
        "repeated_links",
        "copy_links",
        "no_index_links",
        "stale_blocks",
    ):
        assert metrics[metric] == 0, metric
    for rel in list(after)[::997]:  # a sample, parsed by PyYAML itself
        data = yaml.safe_load(after[rel].decode("utf-8").split("\n---\n")[0][4:])
        for n in range(1, 6):
            block = data[f"related_article{n}"]
            target = pages.loc[block["url"]]
            assert block == {
                "id": target["id"],
                "title": target["title"],
                "subject": target["subject"],
                "url": block["url"],
            }

    # a second run writes nothing and touches no mtime; --check agrees
    mtimes = {rel: p.stat().st_mtime_ns for rel, p in files(copy).items()}
    assert main([str(copy), "--rewrite"]) == 0
    assert "0 rewritten, 35,915 unchanged" in capsys.readouterr().out
    assert {rel: p.stat().st_mtime_ns for rel, p in files(copy).items()} == mtimes
    assert main([str(copy), "--check", "--quiet"]) == 0

    # a related block edited by hand: --check exits 1
    page = files(copy)[sorted(written)[0]]
    text = page.read_text(encoding="utf-8")
    page.write_text(
        text.replace("related_article1:\n    id: ", "related_article1:\n    id: 9", 1),
        encoding="utf-8",
    )
    assert main([str(copy), "--check", "--quiet"]) == 1
