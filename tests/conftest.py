"""Shared fixtures: the real corpus, extracted once per test session where it exists."""

from __future__ import annotations

import os
import shutil
import signal
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
BROKEN = ROOT / "data" / "broken"
FIXTURES = Path(__file__).parent / "fixtures"
#: The real site (35,915 pages), kept beside the checkout, never in it.
ARCHIVE = Path(
    os.environ.get(
        "RECOMMENDER_CORPUS", ROOT.parent / "shared" / "corpora" / "quicktakes-pages.tar.xz"
    )
)


def extract_real_corpus(target: Path) -> Path:
    """Extract the real corpus into target, or skip (fail where CI requires it)."""
    if not ARCHIVE.is_file():
        message = f"real corpus not found at {ARCHIVE} (set RECOMMENDER_CORPUS to its path)"
        if os.environ.get("RECOMMENDER_REQUIRE_CORPUS"):
            pytest.fail(message)
        pytest.skip(message)
    with tarfile.open(ARCHIVE, "r:xz") as archive:
        archive.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def real_site(tmp_path_factory) -> Path:
    """A read-only-by-convention extracted copy of the real corpus (do not modify it)."""
    return extract_real_corpus(tmp_path_factory.mktemp("real-site"))


@pytest.fixture(scope="session")
def real_corpus(real_site):
    from recommender import load_corpus

    return load_corpus(real_site, n_jobs=-1)


@pytest.fixture
def alarm():
    """Fail, rather than hang, when a read blocks (20 s)."""

    class Blocked(BaseException):  # not an OSError, which the code under test may catch
        pass

    def timeout(*_):
        raise Blocked("a read blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def site(tmp_path) -> Path:
    """A copy of the bundled sample site, free to rewrite."""
    root = tmp_path / "site"
    shutil.copytree(SAMPLE, root)
    return root


def fail_writes_to(monkeypatch, victim: Path) -> None:
    """Make every write of the page ``victim`` fail as a permission error; others go on."""
    from recommender.files import PageWriter

    real = PageWriter.replace

    def flaky(writer, path, data):
        if Path(path) == victim:
            raise PermissionError(13, "Permission denied")
        real(writer, path, data)

    monkeypatch.setattr(PageWriter, "replace", flaky)


def child_processes(pid: int) -> set[int]:
    """The pids of the live child processes of ``pid`` (Linux's /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found
