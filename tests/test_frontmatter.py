"""Splitting a page into front matter and body, and loading the YAML safely."""

import datetime

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from recommender import frontmatter
from recommender.frontmatter import load_yaml, rest_fingerprint, split_front_matter

#: Plain scalars of every kind PyYAML's safe resolver tells apart (YAML 1.1).
SPECIAL_SCALARS = (
    *("", "~", "null", "Null", "NULL", "yes", "No", "ON", "off", "y", "n", "True", "FALSE"),
    *("0", "012", "0o17", "0x1F", "0b101", "1_000", "+7", "-3", "190:20:30", "08", "1e3"),
    *("1.5", ".5", "-.inf", ".NaN", "1_0.5", "6.8523015e+5", "190:20:30.15"),
    *("2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10", "<<", "="),
    *("title", "related_article1", "1.2.3", "12:30", "a: b", "NaN", "٣", "²"),
)


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


@given(st.lists(st.sampled_from(SPECIAL_SCALARS) | st.text(max_size=12), max_size=30))
def test_plain_scalars_are_typed_as_pyyaml_types_them(values):
    """The loader keeps each plain scalar's tag (a cache): every value must come out
    as PyYAML's own safe resolver types it, the first time and again from the cache."""
    resolver = yaml.resolver.Resolver()
    loader = frontmatter._SafeLoader("")
    for value in [*values, *values]:
        for implicit in ((True, False), (False, True), (False, False)):
            expected = resolver.resolve(yaml.ScalarNode, value, implicit)
            assert loader.resolve(yaml.ScalarNode, value, implicit) == expected, value
    for kind in (yaml.SequenceNode, yaml.MappingNode):
        assert loader.resolve(kind, None, (False, False)) == resolver.resolve(kind, None, None)


def test_each_plain_scalar_is_resolved_once_and_the_kept_tags_are_bounded(monkeypatch):
    asked = []
    real = yaml.resolver.BaseResolver.resolve

    def counting(self, kind, value, implicit):
        asked.append(value)
        return real(self, kind, value, implicit)

    monkeypatch.setattr(yaml.resolver.BaseResolver, "resolve", counting)
    monkeypatch.setattr(frontmatter._SafeLoader, "_resolved", {})
    monkeypatch.setattr(frontmatter, "RESOLVED_LIMIT", 3)
    text = "a: 1\nb: x\nc: [1, 2, 1]\nd: {a: 1, e: 'q'}\n"
    for _ in range(3):
        assert load_yaml(text) == {"a": 1, "b": "x", "c": [1, 2, 1], "d": {"a": 1, "e": "q"}}
    assert sorted(asked[:3]) == ["1", "a", "b"] and len(frontmatter._SafeLoader._resolved) == 3
    assert "1" not in asked[3:] and "a" not in asked[3:]  # kept: never asked again
    assert asked.count("c") == 3  # past the limit: asked on every page


CONFUSABLE = [  # values a careless byte form of the rest would hash alike
    ({"k": "1"}, {"k": 1}),
    ({"k": 1}, {"k": 1.0}),
    ({"k": 1}, {"k": True}),
    ({"k": "True"}, {"k": True}),
    ({"k": None}, {"k": "None"}),
    ({"k": "2024-01-02"}, {"k": datetime.date(2024, 1, 2)}),
    ({"k": ["a", "sb"]}, {"k": ["as", "b"]}),
    ({"k": ["ab"]}, {"k": ["a", "b"]}),
    ({"k": [["a"], "b"]}, {"k": [["a", "b"]]}),
    ({"k": {"a": "bc"}}, {"k": {"ab": "c"}}),
    ({"k": {"a": "b"}, "c": "d"}, {"k": {"a": "b", "c": "d"}}),
    ({"k": ["a"], "b": "c"}, {"k": ["a", "b", "c"]}),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({"k": {"a": 1, "b": 2}}, {"k": {"b": 2, "a": 1}}),
    ({"k": "x"}, {"k": ["x"]}),
    ({"k": {}}, {"k": []}),
    ({"1": "x"}, {1: "x"}),
    ({"k": "é"}, {"k": "e\u0301"}),
]


@pytest.mark.parametrize(("one", "other"), CONFUSABLE)
def test_the_rest_fingerprint_tells_apart_values_that_differ_in_type_order_or_bounds(one, other):
    assert rest_fingerprint(one) != rest_fingerprint(other)


def test_the_rest_fingerprint_is_that_of_the_value_read_again_and_leaves_out_the_blocks():
    text = (
        "title: >-\n  Why \\n is 'text'\nseo:\n  page_keywords: a, b\nid: 7\nscore: -1.0\n"
        "date: 2016-10-28\nflag: yes\nlist: [1, x, {a: b}]\n"
    )
    block = "related_article1:\n    url: /a\n"
    fingerprint = rest_fingerprint(load_yaml(text))
    assert fingerprint == rest_fingerprint(load_yaml(text))
    assert fingerprint == rest_fingerprint(load_yaml(text + block))
    assert fingerprint == rest_fingerprint(load_yaml(block + text))
    assert fingerprint != rest_fingerprint(load_yaml(text.replace("-1.0", "-1")))
    for unordered in (
        "s: !!set {a, b}",
        "s: [1, !!set {a}]",
        "%TAG !s! tag:yaml.org,2002:\n---\ns: !s!set {a}",
    ):
        assert rest_fingerprint(load_yaml(unordered)) is None  # sets order by hash
