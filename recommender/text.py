"""Turning the raw text of a page's fields into plain words for vectorising.

The real site stores line breaks in answers as a literal backslash-n (two
characters), writes Markdown (headings, bold, lists, tables, code fences, links)
and LaTeX (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\frac{a}{b}``).  :func:`clean_text`
turns the literal breaks into real ones and removes the markup while keeping
every word it wraps: ``**Stabilization of Trade**`` becomes
``Stabilization of Trade``, ``$\\frac{\\Delta p}{p}$`` becomes ``Delta p p``,
``[the docs](https://x.org)`` becomes ``the docs``.

Nothing here knows about pages or files.
"""

from __future__ import annotations

import html
import re

__all__ = ["clean_text", "split_keywords"]

# LaTeX commands that begin with "n": in the site's encoding "\nabla" could be a
# line break followed by "abla", so these are kept as commands, everything else
# starting with backslash-n is a line break.
_LATEX_N_COMMANDS = (
    "nabla",
    "neq",
    "neg",
    "nu",
    "not",
    "notin",
    "nmid",
    "newline",
    "nexists",
    "nleq",
    "ngeq",
    "nsubseteq",
    "nparallel",
    "nrightarrow",
    "nleftarrow",
    "ncong",
    "nsim",
)
_LITERAL_BREAK = re.compile(
    r"\\n(?!(?:" + "|".join(name[1:] for name in _LATEX_N_COMMANDS) + r")(?![A-Za-z]))"
)

# LaTeX command names that are words a reader would search for; all other
# commands (\frac, \text, \left, \cdot, \mathbf, ...) are markup and dropped.
_LATEX_WORDS = frozenset(
    """alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu
    xi pi varpi rho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda
    Xi Pi Sigma Upsilon Phi Psi Omega sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh
    log ln exp lim max min sup inf det gcd sum prod int oint nabla partial infty hbar""".split()
)
_LATEX_ENV = re.compile(r"\\(?:begin|end)\s*\{[^}]*\}")
_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+)")
_LATEX_SYMBOL = re.compile(r"\\[^A-Za-z\n]")

_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|u|p|br|hr|em|strong|span|div|sub|sup|code|pre|img|ul|ol|li|table|thead|tbody"
    r"|tr|td|th|h[1-6]|blockquote|del|s|small|mark)\b[^>\n]*>",
    re.IGNORECASE,
)
# Markup at the start of a line (heading, quote, list marker), and whole lines
# that are table rules, horizontal rules or code fences, matched after a "\n" rather than at a
# MULTILINE "^", which lets the regex engine jump from line break to line break.
_LINE_MARKUP = re.compile(r"\n[ \t]*(?:#{1,6}[ \t]*|>[ \t]?|(?:[-+*]|\d{1,3}[.)])[ \t]+)")
_RULE_LINE = re.compile(r"\n[ \t]*(?:[-*_=|: \t]{3,}|(?:```|~~~)[\w+#.-]*[ \t]*)(?=\n)")
_DOUBLE_SPACES = re.compile(r"  +")
# Text without any of these needs no more than its blanks collapsed (most titles).
_ANY_MARKUP = re.compile(r"[\\*`$#\[<>&_^{}|~\n\r\t\xa0]|^\s*(?:[-+=]|\d{1,3}[.)])")
# Characters that are pure markup once the patterns above have run: emphasis and
# code marks hug their words and are deleted, math and table marks separate words.
# (str.replace is many times faster than a character-class regex over long text.)
_HUGGING_MARKS = "*`"
_SEPARATING_MARKS = "$_^{}|~\\\t\f\v\xa0"


def _latex_command(match: re.Match[str]) -> str:
    name = match.group(1)
    return f" {name} " if name in _LATEX_WORDS else " "


def clean_text(raw: str | None) -> str:
    """Return the words of a Markdown and LaTeX field as plain text.

    Literal ``\\n`` (backslash, n) becomes a line break; headings, emphasis,
    list markers, tables, code fences, links, HTML tags and entities, and
    LaTeX commands, braces and math delimiters are removed, keeping the words
    they wrap.  Greek letters and named functions (``\\alpha``, ``\\log``) are
    kept as words.  Runs of spaces are collapsed, lines stripped and at most
    one blank line kept.

    Parameters
    ----------
    raw : str or None
        The field as loaded from YAML; ``None`` gives ``""``.

    Returns
    -------
    str

    Examples
    --------
    >>> clean_text(r"1. **Trade**: prices $\\frac{\\Delta p}{p}$\\n\\n### Next")
    'Trade: prices Delta p p\\n\\nNext'
    """
    if not raw:
        return ""
    if _ANY_MARKUP.search(raw) is None:
        return " ".join(raw.split())
    text = _LITERAL_BREAK.sub("\n", raw)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = html.unescape(text)
    if "](" in text:
        text = _IMAGE_OR_LINK.sub(r"\1", text)
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "\\" in text:
        text = _LATEX_ENV.sub(" ", text)
        text = _LATEX_COMMAND.sub(_latex_command, text)
        text = _LATEX_SYMBOL.sub(" ", text)
    text = _LINE_MARKUP.sub("\n", _RULE_LINE.sub("", f"\n{text}\n"))
    for mark in _HUGGING_MARKS:
        text = text.replace(mark, "")
    for mark in _SEPARATING_MARKS:
        text = text.replace(mark, " ")
    text = _DOUBLE_SPACES.sub(" ", text)
    text = text.replace(" \n", "\n").replace("\n ", "\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def split_keywords(raw: str | list[str] | None) -> list[str]:
    """Split a comma-separated keyword field into stripped, non-empty keywords.

    A YAML list of strings is accepted as well.  Order is kept; exact
    duplicates after stripping are dropped.

    Examples
    --------
    >>> split_keywords(" trade,  tariffs ,, trade, WTO ")
    ['trade', 'tariffs', 'WTO']
    """
    if not raw:
        return []
    parts = raw.split(",") if isinstance(raw, str) else raw
    seen: dict[str, None] = {}
    for part in parts:
        word = " ".join(part.split())
        if word:
            seen.setdefault(word, None)
    return list(seen)
