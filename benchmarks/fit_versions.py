"""Time the default Recommender's fit in this checkout against another revision's.

    python benchmarks/fit_versions.py [SITE_FOLDER_OR_ARCHIVE] [--against REV] [--repeat N]

REV (default: a70597c, main when issue 9 was filed, whose guard rail is "fit
no slower than today") is exported with ``git archive`` to a temporary
folder. Each fit runs in a fresh process, the two versions alternated, each
loading the site with its own loader and fitting ``Recommender(n_jobs=-1)``
with its own defaults; only ``fit`` is timed. Prints every run, the medians
and their ratio (machines here are noisy: compare the ratio, not seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from _site import ARCHIVE, extract

PROJECT = Path(__file__).resolve().parents[1]
ISSUE_9_FILED = "a70597c"

CHILD = """
import json, sys, time
import recommender
from recommender import Recommender, load_corpus
pages = load_corpus(sys.argv[1]).pages
start = time.perf_counter()
model = Recommender(n_jobs=-1).fit(pages)
print(json.dumps({"fit": time.perf_counter() - start, "links": len(model.related_),
                  "timings": getattr(model, "timings_", {}), "package": recommender.__file__}))
"""


def export_revision(revision: str, target: Path) -> Path:
    """The ``recommender`` package of ``revision``, unpacked under ``target``."""
    archive = target / "package.tar"
    subprocess.run(
        ["git", "-C", str(PROJECT), "archive", "-o", str(archive), revision, "recommender"],
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(target / "code", filter="data")
    return target / "code"


def timed_fit(code: Path, site: Path) -> dict:
    """One fit in a fresh process with ``code`` first on its path."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(site)],
        env=env,
        cwd=code,  # python -c puts the working folder first on the path
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["package"]).resolve().is_relative_to(code.resolve()):
        sys.exit(f"the fit ran {result['package']}, not the code under {code}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=ARCHIVE)
    parser.add_argument("--against", default=ISSUE_9_FILED, help="a git revision")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recommender-versions-") as scratch:
        scratch = Path(scratch)
        site = args.site if args.site.is_dir() else extract(args.site, scratch / "site")
        versions = {args.against: export_revision(args.against, scratch), "this checkout": PROJECT}
        runs: dict[str, list[float]] = {name: [] for name in versions}
        for turn in range(args.repeat):
            for name, code in versions.items():
                result = timed_fit(code, site)
                runs[name].append(result["fit"])
                stages = ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items())
                print(
                    f"run {turn + 1} {name:>14}: fit {result['fit']:.1f} s ({stages}), "
                    f"{result['links']:,} links",
                    flush=True,
                )
    before, now = (statistics.median(runs[name]) for name in versions)
    print(
        f"median fit: {args.against} {before:.1f} s, this checkout {now:.1f} s, "
        f"ratio {now / before:.2f}x"
    )


if __name__ == "__main__":
    main()
