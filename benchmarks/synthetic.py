"""Write a synthetic site of any size in the reference site's format, with known topics.

Usage::

    python benchmarks/synthetic.py OUT_DIR --pages N [--seed S] [--real SITE] [--stats FILE]

Each page is ``<subject-folder>/<slug>.md`` with everything in its YAML front
matter (title, question = title, answer with literal ``\\n`` breaks,
``seo.page_keywords``, subject, url ``/learn/<folder>/questions/<slug>``, id,
date, some ``related_articleN`` blocks) and the body ``&nbsp;``.

The text has topical structure: pages belong to sub-topics (about 20 pages
each), ten sub-topics to a topic, topics to subjects.  A page's words mix the
background word frequencies of the real corpus with its topic's and its
sub-topic's own words, so that pages of one sub-topic are true neighbours.
Word frequencies and the lengths of answers, titles and keyword lists are
fitted to a real site (``--real``) once and kept in a statistics file
(``--stats``, default beside OUT_DIR); the script itself holds no real text.
About 3% of the questions are cross-listed under a second subject folder, as on
the real site, and about 60% of pages hold 1 to 5 related blocks.

Beside the site, ``OUT_DIR.truth.tsv`` gives every page's url, subject, topic,
sub-topic and, for a cross-listed copy, the url it copies.  The same arguments
and statistics give the same bytes.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _site import ARCHIVE

#: Pages per sub-topic (mean) and sub-topics per topic.
SUBTOPIC_PAGES = 20
TOPIC_SUBTOPICS = 10
#: Share of an answer's words drawn from the background, the topic and the sub-topic.
MIXTURE = (0.88, 0.09, 0.03)
#: Words owned by each topic and sub-topic; keyword phrases per sub-topic.
TOPIC_WORDS, SUBTOPIC_WORDS, SUBTOPIC_PHRASES = 300, 40, 12
#: The most frequent words are left to the background (function words).
COMMON_RANK = 300
COPY_SHARE, RELATED_SHARE, NO_INDEX_SHARE = 0.03, 0.6, 0.002
OPENINGS = ("what is", "how does", "why is", "what are the", "can you explain", "how do")
REAL_PAGES = 35_915
FIRST_DAY = np.datetime64("2024-11-21")
_WORD = re.compile(r"[a-z]+")


def fit_statistics(site: Path) -> dict[str, np.ndarray]:
    """Word frequencies and length distributions of a real site.

    Returns arrays only: ``words`` and ``counts`` (answer words seen at least
    twice, most frequent first), and one length per page for ``answer_words``,
    ``paragraphs``, ``title_words`` and ``n_keywords``, and one per keyword
    for ``keyword_words``.
    """
    from recommender import load_corpus

    pages = load_corpus(site, n_jobs=-1).pages
    counts: Counter[str] = Counter()
    answer_words = np.empty(len(pages), dtype=np.int32)
    for i, text in enumerate(pages["answer_text"]):
        words = _WORD.findall(text.lower())
        counts.update(words)
        answer_words[i] = len(words)
    kept = sorted((-c, w) for w, c in counts.items() if c >= 2)
    keywords = pages["keywords"]
    return {
        "words": np.array([w for _, w in kept]),
        "counts": np.array([-c for c, _ in kept], dtype=np.int64),
        "answer_words": answer_words,
        "paragraphs": pages["answer"].str.count(r"\\n\\n").to_numpy(np.int32) + 1,
        "title_words": pages["title_text"].str.split().str.len().to_numpy(np.int32),
        "n_keywords": keywords.str.len().to_numpy(np.int32),
        "keyword_words": np.array([len(k.split()) for ks in keywords for k in ks], dtype=np.int32),
    }


def load_statistics(stats: Path, real: Path) -> dict[str, np.ndarray]:
    """Read the statistics file, fitting it from ``real`` first where it is missing."""
    if not stats.exists():
        if not real.exists():
            sys.exit(f"no statistics at {stats} and no real site at {real} to fit them")
        source = real
        if not real.is_dir():
            from _site import extract_temporary

            source = extract_temporary(real)
        stats.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(stats, **fit_statistics(source))
    with np.load(stats) as data:
        return {name: data[name] for name in data.files}


class Tokens:
    """A table of byte strings, joined back into text by index, all in numpy.

    Parameters
    ----------
    strings : sequence of str
        The tokens, each with whatever separator should follow it.
    """

    def __init__(self, strings):
        encoded = [s.encode() for s in strings]
        self.lengths = np.array([len(s) for s in encoded], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.table = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def join(self, ids: np.ndarray, counts: np.ndarray) -> list[bytes]:
        """The bytes of each run of ``counts[i]`` consecutive tokens of ``ids``."""
        lengths = self.lengths[ids]
        ends = np.cumsum(lengths)
        source = np.repeat(self.starts[ids] - (ends - lengths), lengths)
        data = self.table[source + np.arange(ends[-1] if len(ends) else 0)].tobytes()
        bounds = np.concatenate([[0], ends[np.cumsum(counts) - 1]]) if len(ids) else [0]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]


def build_vocabulary(stats, n_pages: int, rng) -> tuple[list[str], np.ndarray]:
    """Real words with their frequencies, plus invented rare words as the site grows.

    The vocabulary grows as the square root of the site (Heaps' law); the
    invented words join pieces of two real words and only serve as topic words.
    """
    words = list(stats["words"])
    extra = int(len(words) * (max(np.sqrt(n_pages / REAL_PAGES), 1.0) - 1.0))
    long_words = [w for w in words[COMMON_RANK:] if len(w) >= 5]
    heads = rng.choice(len(long_words), extra)
    tails = rng.choice(len(long_words), extra)
    invented = {long_words[h][:4] + long_words[t][-4:] for h, t in zip(heads, tails, strict=True)}
    invented -= set(words)
    background = stats["counts"].astype(np.float64)
    return words + sorted(invented), background / background.sum()


def sample_topics(n_topics: int, n_subtopics: int, n_words: int, rng) -> tuple[np.ndarray, ...]:
    """Each topic's and sub-topic's own words (indices past the common ones).

    A sub-topic's words come from its topic's, so siblings share vocabulary.
    """
    pool = np.arange(COMMON_RANK, n_words)
    topic_words = np.stack([rng.choice(pool, TOPIC_WORDS, replace=False) for _ in range(n_topics)])
    topic_of = np.arange(n_subtopics) // TOPIC_SUBTOPICS
    picks = np.stack(
        [rng.choice(TOPIC_WORDS, SUBTOPIC_WORDS, replace=False) for _ in range(n_subtopics)]
    )
    subtopic_words = np.take_along_axis(topic_words[topic_of], picks, 1)
    return topic_of, topic_words, subtopic_words


def zipf_choice(rng, size, width: int) -> np.ndarray:
    """Positions 0..width-1 drawn with probability falling as 1/(rank+1)."""
    weights = 1.0 / np.arange(1, width + 1)
    return rng.choice(width, size, p=weights / weights.sum())


def draw_words(rng, owners, lengths, background, topic_words, subtopic_words, topic_of):
    """Word ids for pages of given sub-topics, mixing background, topic and sub-topic words."""
    total = int(lengths.sum())
    owner = np.repeat(owners, lengths)
    source = rng.choice(3, total, p=MIXTURE)
    ids = rng.choice(len(background), total, p=background)
    topical = source == 1
    ids[topical] = topic_words[
        topic_of[owner[topical]], zipf_choice(rng, topical.sum(), TOPIC_WORDS)
    ]
    own = source == 2
    ids[own] = subtopic_words[owner[own], rng.integers(0, SUBTOPIC_WORDS, own.sum())]
    return ids


def make_subjects(n_subjects: int, words: list[str], rng) -> tuple[list[str], list[str]]:
    """Invented subject names (two vocabulary words) and their folders."""
    names: list[str] = []
    while len(names) < n_subjects:
        first, second = rng.choice(np.arange(COMMON_RANK, 3 * COMMON_RANK), 2, replace=False)
        name = f"{words[first].capitalize()} {words[second]}"
        if name not in names:
            names.append(name)
    return names, [name.lower().replace(" ", "-") for name in names]


def make_titles(rng, stats, subtopics, vocab, background, topics) -> list[str]:
    """One question per page: an opening, then mostly topical words."""
    topic_of, topic_words, subtopic_words = topics
    n = len(subtopics)
    lengths = np.maximum(rng.choice(stats["title_words"], n) - 2, 1)
    ids = draw_words(rng, subtopics, lengths, background, topic_words, subtopic_words, topic_of)
    texts = Tokens([w + " " for w in vocab]).join(ids, lengths)
    openings = rng.integers(0, len(OPENINGS), n)
    return [
        f"{OPENINGS[o].capitalize()} {t.decode()[:-1]}?"
        for o, t in zip(openings, texts, strict=True)
    ]


def make_keywords(rng, stats, subtopics, vocab, topics) -> list[str]:
    """Comma-separated keyword phrases: the sub-topic's own, some of a sibling's."""
    topic_of, topic_words, subtopic_words = topics
    n_sub = len(subtopic_words)
    n_phrases = n_sub * SUBTOPIC_PHRASES
    phrase_lengths = rng.choice(stats["keyword_words"], n_phrases)
    owner = np.repeat(np.arange(n_sub), SUBTOPIC_PHRASES)
    own = np.repeat(owner, phrase_lengths)
    from_topic = rng.random(len(own)) < 0.3
    ids = subtopic_words[own, rng.integers(0, SUBTOPIC_WORDS, len(own))]
    ids[from_topic] = topic_words[
        topic_of[own[from_topic]], rng.integers(0, TOPIC_WORDS, from_topic.sum())
    ]
    phrases = [p.decode()[:-1] for p in Tokens([w + " " for w in vocab]).join(ids, phrase_lengths)]
    counts = np.maximum(rng.choice(stats["n_keywords"], len(subtopics)), 1)
    page = np.repeat(np.arange(len(subtopics)), counts)
    source = subtopics[page]
    sibling = rng.random(len(page)) < 0.3
    shift = rng.integers(1, TOPIC_SUBTOPICS, sibling.sum())
    base = topic_of[source[sibling]] * TOPIC_SUBTOPICS
    source[sibling] = np.minimum(
        base + (source[sibling] - base + shift) % TOPIC_SUBTOPICS, n_sub - 1
    )
    chosen = source * SUBTOPIC_PHRASES + rng.integers(0, SUBTOPIC_PHRASES, len(page))
    joined = Tokens([p + ", " for p in phrases]).join(chosen, counts)
    return [k.decode()[:-2] for k in joined]


def slugs_for(titles: list[str], folders: np.ndarray) -> list[str]:
    """Slugs from titles, made unique within each folder by a numeric suffix."""
    import pandas as pd

    base = pd.Series(titles).str.lower().str.replace(r"[^a-z0-9 ]", "", regex=True)
    base = base.str.split().str.join("-")
    seen = pd.DataFrame({"folder": folders, "slug": base}).groupby(["folder", "slug"]).cumcount()
    suffix = np.where(seen.to_numpy() > 0, "-" + (seen + 1).astype(str), "")
    return list(base + suffix)


def plan_site(n_pages: int, seed: int, stats) -> dict:
    """Everything about every page but its answer: topics, titles, keywords, urls, links."""
    rng = np.random.default_rng([seed, 0])
    vocab, background = build_vocabulary(stats, n_pages, rng)
    n_copies = int(n_pages * COPY_SHARE)
    n_unique = n_pages - n_copies
    n_sub = max(1, round(n_unique / SUBTOPIC_PAGES))
    n_topics = -(-n_sub // TOPIC_SUBTOPICS)
    topics = sample_topics(n_topics, n_sub, len(vocab), rng)
    names, folders = make_subjects(min(40, n_topics), vocab, rng)
    subject_of_topic = rng.integers(0, len(names), n_topics)
    subtopic = rng.integers(0, n_sub, n_unique)
    titles = make_titles(rng, stats, subtopic, vocab, background, topics)
    keywords = make_keywords(rng, stats, subtopic, vocab, topics)
    origin = np.concatenate([np.arange(n_unique), rng.choice(n_unique, n_copies, replace=False)])
    subject = subject_of_topic[topics[0][subtopic]][origin]
    if len(names) > 1:  # a copy sits under another subject
        moved = subject[n_unique:] + rng.integers(1, len(names), n_copies)
        subject[n_unique:] = moved % len(names)
    folder = np.array(folders)[subject]
    slugs = slugs_for([titles[i] for i in origin], folder)
    plan = {
        "vocab": vocab,
        "background": background,
        "topics": topics,
        "n_unique": n_unique,
        "origin": origin,
        "subtopic": subtopic[origin],
        "title": titles,
        "keywords": keywords,
        "id": (100_000 + rng.permutation(n_unique))[origin],
        "date": (FIRST_DAY + rng.integers(0, 120, n_unique))[origin].astype(str),
        "subject": np.array(names)[subject],
        "folder": folder,
        "slug": slugs,
        "url": [f"/learn/{f}/questions/{s}" for f, s in zip(folder, slugs, strict=True)],
        "no_index": rng.random(n_pages) < NO_INDEX_SHARE,
    }
    plan["related"] = pick_related(rng, plan["subtopic"])
    return plan


def pick_related(rng, subtopic: np.ndarray) -> list[np.ndarray]:
    """Existing related targets: 0 to 5 per page, mostly of the same sub-topic."""
    n = len(subtopic)
    counts = np.where(rng.random(n) < RELATED_SHARE, rng.integers(1, 6, n), 0)
    page = np.repeat(np.arange(n), counts)
    order = np.argsort(subtopic, kind="stable")
    starts = np.searchsorted(subtopic[order], subtopic[page], side="left")
    ends = np.searchsorted(subtopic[order], subtopic[page], side="right")
    targets = order[starts + (rng.random(len(page)) * (ends - starts)).astype(np.int64)]
    anywhere = rng.random(len(page)) < 0.4
    targets[anywhere] = rng.integers(0, n, anywhere.sum())
    return np.split(targets, np.cumsum(counts)[:-1])


def make_answers(rng, stats, plan, subtopics: np.ndarray) -> list[str]:
    """Answers: topical words, sentences and literal ``\\n\\n`` paragraph breaks."""
    topic_of, topic_words, subtopic_words = plan["topics"]
    n = len(subtopics)
    lengths = np.maximum(rng.choice(stats["answer_words"], n), 10)
    paragraphs = rng.choice(stats["paragraphs"], n)
    ids = draw_words(
        rng, subtopics, lengths, plan["background"], topic_words, subtopic_words, topic_of
    )
    breaks = np.repeat((paragraphs - 1) / lengths, lengths)
    draw = rng.random(len(ids))
    separator = np.where(draw < breaks, 2, np.where(draw < breaks + 1 / 15, 1, 0))
    tokens = Tokens([w + end for w in plan["vocab"] for end in (" ", ". ", ".\\n\\n")])
    texts = tokens.join(ids * 3 + separator, lengths)
    answers = []
    for text in texts:
        text = text.decode().rstrip(" ").removesuffix("\\n\\n").rstrip(".")
        answers.append(text[0].upper() + text[1:] + ".")
    return answers


def render_page(plan, page: int, answer: str) -> str:
    """One page's file text, in the reference site's layout."""
    source = plan["origin"][page]
    title, subject = plan["title"][source], plan["subject"][page]
    description = answer[:200].rsplit(" ", 1)[0].replace("\\n", " ")
    lines = [
        "---",
        "_schema: default",
        f"id: {plan['id'][page]}",
        f"date: {plan['date'][page]}",
        f"title: >-\n    {title}",
        f"article_title: >-\n    {title}",
        "date_format: MMM DD, YYYY",
        "post_on_text: Posted on",
        "seo:",
        f"  title: Synthetic | {subject}",
        f"  page_description: >-\n    {description}",
        f"  page_keywords: >-\n    {plan['keywords'][source]}",
        "author: Synthetic",
        f"question: >-\n    {title}",
        f"answer: >-\n    {answer}",
        f"subject: {subject}",
        f"file_name: {plan['slug'][page]}.md",
        f"url: {plan['url'][page]}",
    ]
    if plan["no_index"][page]:
        lines.append("no_index: true")
    for rank, target in enumerate(plan["related"][page], start=1):
        lines.append(
            f"related_article{rank}:\n    id: {plan['id'][target]}\n"
            f"    title: >-\n        {plan['title'][plan['origin'][target]]}\n"
            f"    subject: {plan['subject'][target]}\n    url: {plan['url'][target]}"
        )
    lines += ["---", "", "&nbsp;"]
    return "\n".join(lines)


def write_chunk(out: Path, plan, stats, seed: int, first: int, last: int) -> None:
    """Write the unique pages first..last-1 and the copies of them."""
    rng = np.random.default_rng([seed, 1, first])
    pages = np.arange(first, last)
    answers = make_answers(rng, stats, plan, plan["subtopic"][pages])
    copies = plan["copies_of"]
    for page, answer in zip(pages, answers, strict=True):
        for target in [page, *copies.get(page, ())]:
            path = out / plan["folder"][target] / f"{plan['slug'][target]}.md"
            path.write_bytes(render_page(plan, target, answer).encode())


def write_truth(path: Path, plan) -> None:
    """One line per page: url, subject, topic, sub-topic, and the url a copy copies."""
    topic_of = plan["topics"][0]
    origin = plan["origin"]
    with open(path, "w", encoding="utf-8") as truth:
        truth.write("url\tsubject\ttopic\tsubtopic\tcopy_of\n")
        for page, url in enumerate(plan["url"]):
            copy_of = plan["url"][origin[page]] if page >= plan["n_unique"] else ""
            sub = plan["subtopic"][page]
            truth.write(f"{url}\t{plan['subject'][page]}\t{topic_of[sub]}\t{sub}\t{copy_of}\n")


_STATE: dict = {}


def _write_chunk_forked(first: int, last: int) -> None:
    write_chunk(_STATE["out"], _STATE["plan"], _STATE["stats"], _STATE["seed"], first, last)


def generate(out: Path, n_pages: int, seed: int, stats, jobs: int = 1, chunk: int = 5000) -> None:
    """Write the site under ``out`` (which must not exist) and ``out.truth.tsv``."""
    plan = plan_site(n_pages, seed, stats)
    copies: dict[int, list[int]] = {}
    for page in range(plan["n_unique"], n_pages):
        copies.setdefault(int(plan["origin"][page]), []).append(page)
    plan["copies_of"] = copies
    out.mkdir(parents=True)
    for folder in sorted(set(plan["folder"])):
        (out / folder).mkdir()
    bounds = [(a, min(a + chunk, plan["n_unique"])) for a in range(0, plan["n_unique"], chunk)]
    if jobs == 1:
        for first, last in bounds:
            write_chunk(out, plan, stats, seed, first, last)
    else:
        import multiprocessing

        _STATE.update(out=out, plan=plan, stats=stats, seed=seed)
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            pool.starmap(_write_chunk_forked, bounds, chunksize=1)
    write_truth(out.with_name(out.name + ".truth.tsv"), plan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="site folder to create")
    parser.add_argument("--pages", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=Path, default=ARCHIVE, help="real site to fit statistics")
    parser.add_argument("--stats", type=Path, help="statistics file (default beside OUT)")
    parser.add_argument("--jobs", type=int, default=1, help="writer processes")
    args = parser.parse_args(argv)
    if args.out.exists():
        sys.exit(f"{args.out} exists: give a new folder")
    stats_path = args.stats or args.out.parent / "synthetic-stats.npz"
    stats = load_statistics(stats_path, args.real)
    start = time.perf_counter()
    generate(args.out, args.pages, args.seed, stats, jobs=args.jobs)
    print(f"{args.pages:,} pages in {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
