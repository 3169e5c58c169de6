"""Splitting a page into front matter and body, and loading the YAML safely."""

import pytest
import yaml

from recommender.frontmatter import load_yaml, split_front_matter


def test_yaml_is_loaded_safely_and_like_pyyaml():
    text = "a: 1\nb: [x, 2.5, null, true]\nc: {d: 2024-01-02}\n<<: {e: 3}\nf: !!str 4\n"
    assert load_yaml(text) == yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: !!python/object/apply:os.system [echo hi]")


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("---\na: 1\n---\nbody", (4, 9, 13)),
        ("---\r\na: 1\r\n---\r\nbody", (5, 11, 16)),
        ("\ufeff---\na: 1\n---", (5, 10, 13)),
        ("---\n---\n", (4, 4, 8)),
        ("---\na: |\n  ---\n----\n---  \nbody", (4, 20, 26)),
        ("text\n---\n---\n", None),
        ("--- \na: 1\n---\n", (5, 10, 14)),
    ],
)
def test_split_front_matter(text, span):
    assert split_front_matter(text) == span


def test_split_front_matter_unterminated():
    with pytest.raises(ValueError, match="no closing"):
        split_front_matter("---\na: 1\n")
