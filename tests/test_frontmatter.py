"""Splitting a page into front matter and body, and loading the YAML safely."""

import datetime
import re

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from recommender import frontmatter
from recommender.errors import RewriteCheckError
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


# The quick reader (``quick_parse``) against libyaml: it reads only a plain layout,
# and what it reads must be exactly what libyaml and ``parse_yaml`` read.


def libyaml_reading(text):
    """What the loader made of front matter before the quick reader: value and spans,
    spans None where ``related_spans`` refuses the layout; None where YAML refuses it."""
    try:
        root, value = frontmatter.parse_yaml(text)
    except yaml.YAMLError:
        return None
    try:
        return value, frontmatter.related_spans(text, root)
    except RewriteCheckError:
        return value, None


def assert_read_alike(text):
    """quick_parse reads text as libyaml does, or leaves it (None); True when it read it."""
    quick, reading = frontmatter.quick_parse(text), libyaml_reading(text)
    if quick is None:
        return False
    assert reading is not None, f"libyaml refuses what the quick reader read: {text!r}"
    assert repr(quick[0]) == repr(reading[0]), text  # repr: types and key order too
    # and as PyYAML reads it, without the tags both readers keep (a wrong one would agree)
    assert repr(quick[0]) == repr(yaml.load(text, Loader=yaml.CSafeLoader)), text
    assert quick[1] == reading[1], text
    assert frontmatter.value_and_spans(text) == quick
    return True


PAGE = (
    "_schema: default\nid: 165951\ndate: 2025-01-29\ntitle: What is Impressionism?\n"
    "seo:\n  title: QuickTakes | Art\n  page_keywords: >-\n    Impressionism, light, color\n"
    "question: >-\n    What is it?\nanswer: >-\n    It is a movement.\\n\\n### Light\\n\\n1. **Focus**\n"
    "score: -1.0\nno_index: false\nrelated_article1:\n    id: 160493\n    title: >-\n"
    "        How has the pandemic influenced ...?\n    subject: Sociology\n    url: /learn/a\n"
    'related_article2:\n    id: 7\n    title: \'It\'\'s: "quoted"\'\n    url: "/learn/b\\u00e9\\""\n'
    "subject: English literature\nurl: /learn/english/what\n\n"
)

READ_QUICKLY = [
    PAGE,
    "a: 1\n",
    "a:\nb: ~\nc: null\n",  # keys with no value, then a sibling or the end: null
    "a:\n  b:\n    c: x\n  d: 2001-12-14 21:59:43.10\ne: .inf\n",
    "k: >\n  text  \nl: |-\n   more\nm: |\n x\n",  # block scalars: their one line, clipped
    "k: -1.0\nl: -x\nm: ?x\nn: :x\no: 0x1F\np: 1_000\nq: 0o17\nr: yes\ns: Off\nt: ~\n",
    'k: "\\x41\\u00e9\\U0001F600\\t\\N\\_\\L\\P\\ \\0"\nl: \'\'\nm: ""\n',
    "k: C# and a:b and a,b [x] {y} 'q' \"r\"#hash\n",
    "k: é ∑ \U0001f600 \u00a0nbsp\n",
    'k: "\\ue000\\U0010FFFF"\nl: MAX\nm: X y\n',  # the ends of the ranges YAML allows
    "related_article2: >-\n  # its text, not a comment\n\n",
    "related_article1:\n  url: /a\n\n\nrelated_article2: x\nz: 1\n\nrelated_article3:\n  id: 1\n\n",
]

LEFT_TO_LIBYAML = [
    "",  # no final line break
    "a: 1",
    "\n",  # an empty document is null
    "a: 1 # comment\n",
    "# comment\na: 1\n",
    "a: 1\n  \n",  # a blank line of spaces
    "a:\tb\n",
    "a: b\r\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: [1, 2]\n",
    "a: {b: 1}\n",
    "a:\n  - 1\n",
    "a: b\n  continued\n",  # a plain scalar on two lines
    "a: >-\n  one\n  two\n",  # a block scalar of two lines
    "a: >-\n\n  after an empty line\n",
    "a: >-\nb: 1\n",  # a header with no text
    "a: >2\n   x\n",
    "a: >+\n  x\n",
    "a: 1\na: 2\n",  # a repeated key: libyaml's reading refuses it
    "yes: 1\n",  # a key that is not text
    "a:\n  b: 1\n c: 2\n",  # indentation between levels
    "a: b: c\n",
    "a: - b\n",
    "a: -\n",
    "a: b:\n",
    "a: 'it's'\n",
    'a: "say "hi""\n',
    'a: "\\q"\n',
    'a: "\\ud800"\n',
    'a: "\\udfff"\n',
    'a: "\\U00110000"\n',
    'a: "\n',
    "a: '\n",
    "a: >-\n  x\x85y\n",  # a line break inside a block scalar's line
    "a: |\n  \ufeffx\n",
    "related_article1: {url: /a}  # a flow mapping\nz: 1\n",  # its block's span from libyaml
    "{related_article1: x}\n",  # no block that related_spans can find: spans None
    'a: "\\/"\n',  # libyaml before 0.2.2 refuses this escape
    "a: 2024-02-30\n",
    "a: =\n",  # the value tag, which the safe constructor does not build
    "a: <<\n",  # YAML's date that Python cannot hold
    "a: x\x85y\n",
    "a: x\u2028y\n",
    "a: \ufeffx\n",
    "a: x\x7f\n",
    "a: x \n",  # a plain scalar's trailing blank
    "...\n",
    "a: 1\n---\n",
    '"a": 1\n',
    "a b: 1\n",
    "a" * 101 + ": 1\n",
    "".join(f"{' ' * n}k{n}:\n" for n in range(20)) + " " * 20 + "x: 1\n",  # too deep
]


@pytest.mark.parametrize("text", READ_QUICKLY)
def test_the_quick_reader_reads_the_plain_layout_as_libyaml_does(text):
    assert assert_read_alike(text)


def test_the_quick_reader_gives_the_related_blocks_spans_without_the_empty_lines_after():
    text = READ_QUICKLY[-1]
    assert [text[a:b] for a, b in frontmatter.quick_parse(text)[1]] == [
        "related_article1:\n  url: /a\n",
        "related_article2: x\n",
        "related_article3:\n  id: 1\n",
    ]


def test_the_quick_reader_types_plain_scalars_by_the_loaders_own_rules(monkeypatch):
    """A rule added to the loader's resolver is the quick reader's too, whichever reads first."""
    rules = {
        first: list(found)
        for first, found in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }
    rules["n"] = [("tag:yaml.org,2002:null", re.compile("^none$")), *rules["n"]]
    monkeypatch.setattr(frontmatter._SafeLoader, "yaml_implicit_resolvers", rules)
    monkeypatch.setattr(frontmatter._SafeLoader, "_resolved", {})
    assert frontmatter.quick_parse("a: none\n")[0] == {"a": None}
    assert frontmatter.parse_yaml("a: none\n")[1] == {"a": None}


@pytest.mark.parametrize("text", LEFT_TO_LIBYAML)
def test_the_quick_reader_leaves_every_other_layout_to_libyaml(text):
    assert frontmatter.quick_parse(text) is None
    reading = libyaml_reading(text)
    if reading is None:
        with pytest.raises(yaml.YAMLError):
            frontmatter.value_and_spans(text)
    else:
        assert repr(load_yaml(text)) == repr(reading[0])
        assert repr(frontmatter.value_and_spans(text)) == repr(reading)


def test_the_plain_layout_is_read_without_libyaml(monkeypatch):
    expected = yaml.load(PAGE, Loader=yaml.CSafeLoader)

    def refused(text):
        raise AssertionError("libyaml read the plain layout")

    monkeypatch.setattr(frontmatter, "parse_yaml", refused)
    assert load_yaml(PAGE) == expected
    assert frontmatter.value_and_spans(PAGE) == frontmatter.quick_parse(PAGE)


def test_the_quick_reader_leaves_the_largest_and_deepest_texts_to_libyaml(monkeypatch):
    monkeypatch.setattr(frontmatter, "MAX_NODES", 30)  # three a line: key, value, and a margin
    assert frontmatter.quick_parse("".join(f"k{n}: 1\n" for n in range(10))) is not None
    assert frontmatter.quick_parse("".join(f"k{n}: 1\n" for n in range(11))) is None
    monkeypatch.undo()

    def nested(depth):  # mappings open at once: the root and depth - 1 more
        return "".join(f"{' ' * n}k:\n" for n in range(depth - 1)) + " " * (depth - 1) + "x: 1\n"

    assert assert_read_alike(nested(frontmatter._QUICK_DEPTH))
    assert frontmatter.quick_parse(nested(frontmatter._QUICK_DEPTH + 1)) is None


RISKY = [":", "#", " ", "  ", "-", "?", "'", '"', "\\", "\t", "\r", "\x85", "\u2028", "\ufeff"]
RISKY += ["é", "\x00", "\x7f", "\u00a0", "\U0001f600", ">", "|", "&", "*", "!", "[", "{", "%"]
SAFE = ["x", "ab", "/learn/x", "Why?", "a, b", "1", "-1.0", "é", "\\n", "C#", "a:b", "x y"]
LINE_PARTS = st.sampled_from([*SPECIAL_SCALARS, *SAFE] * 3 + RISKY)
KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "url", "related_article1", "id", "no"])
KEYS |= st.sampled_from(["related_article2", "related_article3", "title"])


@st.composite
def plain_layouts(draw):
    """Front matter near the plain layout: key lines at the depths of the mappings
    open (now and then another), values of safe and risky pieces, block scalars,
    quoted scalars, empty lines, and now and then any line at all."""
    lines, depths = [], [0]
    for _ in range(draw(st.integers(1, 10))):
        depth = draw(st.sampled_from(depths * 8 + [0, 1, 2, 3, 4]))
        depths = [d for d in depths if d <= depth] or [0]
        indent = " " * depth
        kind = draw(st.sampled_from(["value"] * 8 + ["none", "block", "quoted"] * 3 + ["any"]))
        kind = "empty" if kind == "any" and draw(st.booleans()) else kind
        key = draw(KEYS)
        value = "".join(draw(st.lists(LINE_PARTS, min_size=1, max_size=4)))
        if kind == "value":
            lines.append(f"{indent}{key}: {value}")
        elif kind == "none":
            lines.append(f"{indent}{key}:")
            depths.append(depth + draw(st.sampled_from([2, 4, 1])))
        elif kind == "block":
            header = draw(st.sampled_from([">-", ">", "|-", "|"] * 4 + [">+", ">2"]))
            inner = " " * (depth + draw(st.sampled_from([2, 4, 1] * 3 + [0])))
            lines += [f"{indent}{key}: {header}", f"{inner}{value}"]
        elif kind == "quoted":
            quote = draw(st.sampled_from(['"', "'"]))
            lines.append(f"{indent}{key}: {quote}{value}{quote}")
        elif kind == "empty":
            lines.append("")
        else:
            lines.append(draw(st.text(max_size=12)))
    return "\n".join(lines) + draw(st.sampled_from(["\n"] * 6 + ["", "\n\n"]))


@settings(max_examples=1500)
@given(plain_layouts())
def test_the_quick_reader_reads_as_libyaml_or_not_at_all(text):
    event("read quickly" if assert_read_alike(text) else "left to libyaml")


@pytest.mark.real_corpus
def test_the_quick_reader_reads_the_real_site_as_libyaml_does(real_site):
    pages = sorted(real_site.rglob("*.md"))
    read_quickly = 0
    for path in pages:
        text = path.read_text("utf-8")
        start, end, _ = split_front_matter(text)
        read_quickly += assert_read_alike(text[start:end])
    assert read_quickly >= 0.99 * len(pages)  # the site's own layout: the quick reader's
