import pytest

from recommender.text import clean_text, split_keywords


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ""),
        ("", ""),
        ("Plain   title  ", "Plain title"),
        (r"line one\nline two", "line one\nline two"),
        (r"a\n\n\n\nb", "a\n\nb"),
        (r"**Bold** and *italic* and __under__", "Bold and italic and under"),
        (
            r"### Heading\n- item one\n* item two\n1. first\n10) tenth",
            "Heading\nitem one\nitem two\nfirst\ntenth",
        ),
        (r"> quoted words", "quoted words"),
        (r"see [the docs](https://x.org/a_b) and ![a chart](c.png)", "see the docs and a chart"),
        (r"| a | b |\n|---|:--:|\n| 1 | 2 |", "a b\n1 2"),
        (r"```python\nprint(x)\n```", "print(x)"),
        (r"inline `code` here", "inline code here"),
        (r"$x^2 + y_1$", "x 2 + y 1"),
        (r"$$\frac{\Delta p}{p}$$", "Delta p p"),
        (r"\(\alpha\) and \[\beta\]", "alpha and beta"),
        (r"\text{Revenue} \times \mathbf{Price}", "Revenue Price"),
        (r"$\begin{pmatrix} 1 \\ 2 \end{pmatrix}$", "1 2"),
        (r"$\nabla f$ and $a \neq b$", "nabla f and a b"),
        (r"\nabla at the start? no: \nabla f", "nabla at the start? no: nabla f"),
        (r"Ends with a break\nnext", "Ends with a break\nnext"),
        (r"```cmd\nmove a.txt Documents\\n```\nDone", "move a.txt Documents\nDone"),
        ("A&amp;B &nbsp;x <br> y<sup>2</sup>", "A&B x y 2"),
        ("CRLF\r\nline", "CRLF\nline"),
        ("snake_case", "snake case"),
        ("3 * 4 = 12", "3 4 = 12"),
        ("---", ""),
        ("Caf\u00e9 \u2013 na\u00efve", "Caf\u00e9 \u2013 na\u00efve"),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_keeps_every_word_of_a_real_looking_answer():
    raw = (
        r"International cooperation matters.\n\n1. **Stabilization of Trade**: tariffs "
        r"fall.\n2. **Growth** of $x^2$ exports."
    )
    assert clean_text(raw) == (
        "International cooperation matters.\n\nStabilization of Trade: tariffs fall.\n"
        "Growth of x 2 exports."
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ("", []),
        ("a, b ,c", ["a", "b", "c"]),
        (" trade,  tariffs ,, trade, WTO ", ["trade", "tariffs", "WTO"]),
        ("one   keyword", ["one keyword"]),
        (["x ", " y", ""], ["x", "y"]),
    ],
)
def test_split_keywords(raw, expected):
    assert split_keywords(raw) == expected
