"""Where benchmarks find a site: a folder given on the command line, or the real corpus."""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "quicktakes-pages.tar.xz"


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
    return extract(source), args


def extract(archive: Path) -> Path:
    """Extract a .tar.xz site to a temporary folder removed at exit."""
    target = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    with tarfile.open(archive, "r:xz") as opened:
        opened.extractall(target, filter="data")
    return target
