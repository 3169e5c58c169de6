"""Where benchmarks find a site: a folder given on the command line, or the real corpus."""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from recommender.state import DEFAULT_STATE_FOLDER

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "quicktakes-pages.tar.xz"


def extract(source: Path, target: Path) -> Path:
    """A fresh copy of a site folder, or of a .tar.xz archive's content, at target.

    The default state folder that a run left at the site's root is not
    copied: a benchmark's first run must be a first run (a state kept
    elsewhere with ``--state`` is not in the folder anyway).
    """
    if not source.exists():
        sys.exit(f"no site at {source}: give a folder or the real corpus archive")
    if source.is_dir():
        skip = {DEFAULT_STATE_FOLDER}
        shutil.copytree(
            source,
            target,
            symlinks=True,
            ignore=lambda folder, names: skip & set(names) if Path(folder) == source else set(),
        )
        return target
    target.mkdir(parents=True)
    with tarfile.open(source, "r:xz") as archive:
        archive.extractall(target, filter="data")
    return target


def site_from_args(description: str) -> tuple[Path, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "site",
        nargs="?",
        type=Path,
        help=f"a site folder or .tar.xz archive (default: {ARCHIVE})",
    )
    args = parser.parse_args()
    source = args.site or ARCHIVE
    if not source.exists():
        sys.exit(f"no site at {source}: give a folder or the real corpus archive")
    if source.is_dir():
        return source, args
    target = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    return extract(source, target / "site"), args


def extract_temporary(archive: Path) -> Path:
    """A site folder, or a .tar.xz site extracted to a temporary folder removed at exit."""
    if archive.is_dir():
        return archive
    target = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    return extract(archive, target / "site")
