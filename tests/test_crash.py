"""Crash safety, proven by killing ``recommend --rewrite`` (SIGKILL) at random moments.

A synthetic site of a thousand small pages is rewritten alternately with two
settings (5 and 4 links a page, so that every page changes on every run); each
run is killed at a random moment of its writing.  After each kill every page
must be byte-equal to its text before that run or to its text after an
uninterrupted run, and a last run must finish the job exactly.

Each run is ``recommend --rewrite`` in a child process forked from this one,
which has the library imported already: the trials then spend their time
loading, fitting and writing rather than starting Python.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recommender.cli import main
from recommender.files import SiteLock

from .conftest import child_processes

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ["biology", "chemistry", "history", "physics", "economics", "music", "art", "maths"]
N_PAGES = 1200  # enough to kill mid-write; read in one process (under PARALLEL_MIN_PAGES)
TRIALS = 20


def _words(rng: random.Random, count: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe", "da", "go", "zu"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(count)]


def make_site(root: Path, n_pages: int = N_PAGES, seed: int = 11) -> None:
    """Small pages of random words in the reference layout; some CRLF, some without a last newline."""
    rng = random.Random(seed)
    vocabulary = _words(rng, 600)
    for i in range(n_pages):
        subject = SUBJECTS[i % len(SUBJECTS)]
        topic = [vocabulary[(i * 7 + j) % 600] for j in range(40)]
        title = " ".join(rng.sample(topic, 5)).capitalize() + "?"
        answer = " ".join(rng.choice(topic) for _ in range(40))
        keywords = ", ".join(rng.sample(topic, 3))
        lines = [
            "---",
            f"id: {i}",
            f"title: >-\n    {title}",
            f"seo:\n  page_keywords: >-\n    {keywords}",
            f"question: >-\n    {title}",
            f"answer: >-\n    {answer}",
            f"subject: {subject.capitalize()}",
            f"url: /t/{subject}/p{i}",
        ]
        if i % 3 == 0:
            lines.append(f"related_article1:\n    title: Old\n    url: /t/x/p{(i + 1) % n_pages}")
        text = "\n".join(lines) + "\n---\n\nSome body text.\n"
        if i % 7 == 0:
            text = text.rstrip("\n")
        if i % 11 == 0:
            text = text.replace("\n", "\r\n")
        folder = root / subject
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"page-{i:05d}.md").write_bytes(text.encode("utf-8"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def arguments(site: Path, n_links: int) -> list[str]:
    config = site.parent / f"links-{n_links}.toml"
    # stability 0 and no state: each run's new text depends on the settings only
    config.write_text(f"n_links = {n_links}\nstability = 0.0\n", encoding="utf-8")
    return [
        *(str(site), "--rewrite", "--quiet", "--force", "--no-state"),
        *("--jobs", "1", "--config", str(config)),
    ]


def command(site: Path, n_links: int) -> list[str]:
    return [sys.executable, "-m", "recommender.cli", *arguments(site, n_links)]


class Run:
    """``recommend ARGS`` in a forked child process, which a test may SIGKILL."""

    def __init__(self, argv: list[str]):
        self.pid = os.fork()
        if self.pid == 0:  # the child: run the command and leave, whatever happens
            code = 70
            try:
                code = main(argv)
            finally:
                os._exit(code)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.wait()


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}


def finished_run(site: Path, n_links: int) -> tuple[dict[str, bytes], float]:
    """Rewrite the site uninterrupted; return its pages and how long writing took."""
    first = sorted(site.rglob("*.md"))[0]
    before = first.read_bytes()
    process = Run(arguments(site, n_links))
    wrote_at = _wait_for_change(first, before, process)
    assert process.wait() == 0
    return snapshot(site), time.monotonic() - (wrote_at or time.monotonic())


def _wait_for_change(path: Path, before: bytes, process: Run) -> float | None:
    """When the page first changed (the writing started), or None if the run ended first."""
    while process.poll() is None:
        try:
            if path.read_bytes() != before:
                return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    return None


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The pristine site, and its pages after an uninterrupted run with 5 and with 4 links."""
    base = tmp_path_factory.mktemp("crash")
    pristine = base / "pristine"
    make_site(pristine)
    expected, window = {}, {}
    for n_links in (5, 4):
        copy = base / f"done-{n_links}"
        shutil.copytree(pristine, copy)
        expected[n_links], window[n_links] = finished_run(copy, n_links)
    return base, pristine, expected, window


def test_sigkill_at_random_moments_leaves_every_page_whole_and_the_next_run_finishes(synthetic):
    base, pristine, expected, window = synthetic
    site = base / "site"
    shutil.copytree(pristine, site)
    rng = random.Random(2024)
    first = sorted(site.rglob("*.md"))[0]
    killed_mid_write = 0
    started = time.monotonic()
    for trial in range(TRIALS):
        n_links = (5, 4)[trial % 2]
        before = snapshot(site)
        process = Run(arguments(site, n_links))
        wrote_at = _wait_for_change(first, before[first.relative_to(site).as_posix()], process)
        if wrote_at is not None:
            time.sleep(rng.uniform(0, window[n_links] * 0.9))
        process.kill()
        after = snapshot(site)
        assert after.keys() == before.keys()
        new = [path for path in after if after[path] == expected[n_links][path] != before[path]]
        whole = all(after[path] in (before[path], expected[n_links][path]) for path in after)
        assert whole, f"trial {trial}: a page is neither its old nor its new text"
        killed_mid_write += 0 < len(new) < sum(before[p] != expected[n_links][p] for p in before)
    assert killed_mid_write >= TRIALS // 4, f"only {killed_mid_write} kills landed mid-write"
    last = (5, 4)[(TRIALS - 1) % 2]
    assert Run(arguments(site, last)).wait() == 0
    assert snapshot(site) == expected[last]
    assert not [p for p in site.rglob("*.tmp")]
    print(
        f"\n{TRIALS} SIGKILL trials on {N_PAGES} pages, {killed_mid_write} mid-write, "
        f"{time.monotonic() - started:.1f} s"
    )


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find worker processes")
def test_worker_processes_end_soon_after_the_run_is_killed(tmp_path):
    site = tmp_path / "site"
    make_site(site, n_pages=2400)  # over PARALLEL_MIN_PAGES: read by worker processes
    argv = [sys.executable, "-m", "recommender.cli", str(site), "--quiet", "--jobs", "2"]
    process = subprocess.Popen(argv, env=environment())
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        workers |= child_processes(process.pid)
        if len(workers) >= 2:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert workers, "no worker process was started"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}/stat").exists()]
    alive = [pid for pid in alive if " Z " not in Path(f"/proc/{pid}/stat").read_text()]
    assert not alive, f"worker processes {alive} outlived the killed run by 30 s"


def test_a_killed_run_leaves_its_lock_to_the_next(tmp_path):
    site = tmp_path / "site"
    make_site(site, n_pages=200)
    process = subprocess.Popen(command(site, 5), env=environment())
    lock = site / ".recommend.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with SiteLock(site) as taken:
        assert taken.stale is None or taken.stale["pid"] == process.pid
