"""The nightly job on the real site: a first full run, a no-change re-run, and a night's edits.

    python benchmarks/nightly.py [SITE_FOLDER_OR_ARCHIVE] [--skip-baseline] [--full-run-only]
                                 [--repeat N]

On a fresh copy of the site with 500 pages taken out (seeded):

1. ``recommend COPY --rewrite``: the first full run (no state yet);
2. the same again with nothing changed (the state says so: no page is read);
3. the 500 pages put back and 200 others edited (a sentence added to the
   answer): the night's incremental run.

Each run is a subprocess, timed from outside (wall time, interpreter start
included), with the stage timings it logs (``--verbose``).  With
``--full-run-only``, only a first full run of the whole copy (for large
synthetic sites, see the README's *Large sites*).  With ``--repeat N``,
each run is made N times from the same copy of the site and its state (the
disk here is noisy): the median run is shown, with every run's seconds.
The baseline, in
the same run: the naive pipeline with python-frontmatter loading every
page, one scikit-learn ``TfidfVectorizer`` over title, keywords and answer,
a blockwise ``X @ X.T`` top 5, and ``frontmatter.dumps`` writing every page.
Peak memory is the child's maximum resident set size.  Before the runs, the
disk's floor, on a copy of its own: every page replaced by its own bytes (a
temporary file in the site's scratch folder, then a rename, in one process, as
the exporter writes), which no code around the writes can beat.

Nothing is deleted until the end: a used copy is moved aside, not removed.
On this machine's file system (ext4 without a journal) a new file's inode is
found by skipping every inode freed in the last one to six minutes: replacing
every page of a copy made after 105,000 files were removed took 14.0 s, of one
made with no removal before it 6.8 s (one process).  A nightly job's site was
not removed minutes before it runs.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _site import ARCHIVE, extract

TAKEN_OUT, EDITED, SEED = 500, 200, 0
STEP = re.compile(r"^(\S+ [\d:,]+) info recommender\.(\w+): (.*)$")
#: The log lines that mark the stages: reading, fitting, writing, the state.
STAGES = re.compile(
    r"^(reading|loaded|\d+ links for|\d+ of \d+ pages searched|wrote|compared|state written)"
)


#: A run: wall seconds, peak GiB, summary and log lines (and, repeated, every run's seconds).
Run = tuple[float, float, list[str], list[float]]


def recommend(site: Path, *extra: str) -> tuple[float, float, list[str]]:
    """Run recommend --rewrite; return its wall seconds, peak RSS (GiB) and log lines.

    The peak is that of this run's process and the worker processes it
    started (``wait4`` on it), not of anything else this script ran.
    """
    command = [
        sys.executable,
        "-m",
        "recommender.launch",
        str(site),
        "--rewrite",
        "--verbose",
        *extra,
    ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        sys.exit(f"recommend failed ({child.returncode}):\n{stderr[-3000:]}")
    peak = usage.ru_maxrss / 2**20
    steps = [
        f"{m.group(1)[11:]}  {m.group(3)}"
        for line in stderr.splitlines()
        if (m := STEP.search(line)) and STAGES.match(m.group(3))
    ]
    summary = [line for line in stdout.splitlines() if line.startswith("  ")]
    return seconds, peak, [*summary, *(f"  log      {s}" for s in steps)]


def take_out(site: Path, aside: Path) -> list[Path]:
    pages = sorted(site.rglob("*.md"))
    chosen = random.Random(SEED).sample(pages, TAKEN_OUT)
    for page in chosen:
        target = aside / page.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        page.rename(target)
    return chosen


def edit(pages: list[Path]) -> None:
    """Add a sentence to each page's answer (the folded line after ``answer: >-``)."""
    for page in pages:
        lines = page.read_text(encoding="utf-8").split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("answer:"))
        lines[at + 1] += " A reviewer added this sentence about sources and further reading."
        page.write_text("\n".join(lines), encoding="utf-8")


def naive(site: Path) -> float:
    """The naive pipeline's wall seconds (python-frontmatter, plain TF-IDF, X @ X.T, dumps)."""
    import frontmatter
    from sklearn.feature_extraction.text import TfidfVectorizer

    start = time.perf_counter()
    paths = sorted(site.rglob("*.md"))
    posts = [frontmatter.load(path) for path in paths]
    texts = [
        " ".join(str(p.get(k, "")) for k in ("title", "answer")) + str(p.get("seo", {}))
        for p in posts
    ]
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    top = []
    for start_row in range(0, matrix.shape[0], 2048):
        block = (matrix[start_row : start_row + 2048] @ matrix.T).toarray()
        block[np.arange(block.shape[0]), np.arange(start_row, start_row + block.shape[0])] = -1
        top.append(np.argsort(-block, axis=1)[:, :5])
    top = np.vstack(top)
    for path, post, row in zip(paths, posts, top, strict=True):
        for n, target in enumerate(row, 1):
            other = posts[target]
            post.metadata[f"related_article{n}"] = {
                "title": other.get("title"),
                "url": other.get("url"),
            }
        path.write_text(frontmatter.dumps(post), encoding="utf-8")
    return time.perf_counter() - start


def write_floor(site: Path) -> float:
    """Seconds to replace every page with its own bytes as the exporter does, and nothing else.

    A temporary file in the site's scratch folder, then ``os.replace`` over the
    page, in one process (the exporter's calling process makes every file
    change): what the disk asks of a full rewrite whatever the code does
    around it.
    """
    from recommender.files import PageWriter

    pages = sorted(str(page) for page in site.rglob("*.md"))
    start = time.perf_counter()
    with PageWriter(os.path.realpath(site)) as writer:
        for page in pages:
            writer.replace(page, Path(page).read_bytes())
    return time.perf_counter() - start


def naive_in_child(site: Path) -> float:
    """:func:`naive` in a process of its own: its memory (GiB of dense blocks) never
    counts in the peaks of the runs measured after it (a child starts as a copy of us)."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import nightly; "
    code += f"from pathlib import Path; print(nightly.naive(Path({str(site)!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def night(site: Path, work: Path, repeat: int = 1) -> list[tuple[str, Run]]:
    """The three runs: first full run less some pages, no change, the pages back and edits."""
    aside = work / "aside"
    moved = take_out(site, aside)
    runs = [("first full run", repeated(site, work, repeat))]
    runs.append(("re-run, nothing changed", repeated(site, work, repeat)))
    for page in moved:
        (aside / page.relative_to(site)).rename(page)
    remaining = sorted(set(site.rglob("*.md")) - set(moved))
    edit(random.Random(SEED + 1).sample(remaining, EDITED))
    runs.append((f"{TAKEN_OUT} new and {EDITED} edited pages", repeated(site, work, repeat)))
    return runs


def repeated(site: Path, work: Path, repeat: int) -> Run:
    """The run ``repeat`` times, each from the same site and state (a copy made before the
    first, with the files' times): the median run, and the seconds of them all."""
    snapshot = work / f"snapshot-{time.monotonic_ns()}"
    if repeat > 1:
        shutil.copytree(site, snapshot, symlinks=True)
    runs = []
    for number in range(repeat):
        if number:  # moved aside, removed at the end (see the module's notes)
            site.rename(work / f"used-{time.monotonic_ns()}")
            shutil.copytree(snapshot, site, symlinks=True)
        os.sync()  # the copy's writes are not the run's
        runs.append(recommend(site))
    median = sorted(runs, key=lambda run: run[0])[(repeat - 1) // 2]
    return (*median, [run[0] for run in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site", nargs="?", type=Path, default=ARCHIVE)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--full-run-only", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each scenario this many times from the same site and state; show the median",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    work = Path(tempfile.mkdtemp(prefix="recommender-nightly-"))
    try:
        site = extract(args.site, work / "site")
        baseline = None
        if not args.skip_baseline:
            naive_site = extract(args.site, work / "naive")
            baseline = naive_in_child(naive_site)
            print(
                f"naive pipeline (frontmatter, TfidfVectorizer, X @ X.T, dumps): {baseline:.1f} s"
            )
        floor = write_floor(extract(args.site, work / "floor"))
        print(f"the disk's floor: every page replaced by its own bytes, one process: {floor:.1f} s")
        if args.full_run_only:
            runs = [("first full run", repeated(site, work, args.repeat))]
        else:
            runs = night(site, work, args.repeat)
        for name, (seconds, peak, lines, each) in runs:
            ratio = f", {seconds / baseline:.2f}x the naive pipeline" if baseline else ""
            spread = f" (median of {len(each)}: {', '.join(f'{s:.1f}' for s in each)} s)"
            print(f"\n{name}: {seconds:.1f} s{spread if len(each) > 1 else ''}{ratio}, ", end="")
            print(f"peak {peak:.2f} GiB")
            print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
