"""Mutation testing of the core rooms, one module at a time, with mutmut 3.

    python tools/mutate.py                      # every module of TESTS, below
    python tools/mutate.py rules coverage       # some of them
    python tools/mutate.py rules --tests tests/test_rules.py tests/test_model.py
    python tools/mutate.py --summary            # print the last runs' summary again
    python tools/mutate.py rules --again        # new tests against the last run's survivors
    python tools/mutate.py export --every 4     # every 4th mutant only, a sample

Each module is mutated in its own scratch copy of the project (``--workdir``,
default ``$TMPDIR/recommender-mutation/<module>``), with a ``[tool.mutmut]``
section that mutates that module only and runs only its fast tests
(:data:`TESTS`), so that the checkout is never touched and a run fits a
shared machine.  mutmut runs under ``nice``; ``--max-children`` sets its
processes.  At the end it prints, per module, the mutants, how many the tests
killed, how many survived (and timed out, or were not covered), and the name
of every survivor; ``mutmut show NAME`` in the module's scratch folder shows
one as a diff.  Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The fast tests that exercise each module (a mutant runs only those that reach it).
TESTS: dict[str, list[str]] = {
    "neighbors": ["tests/test_neighbors.py", "tests/test_neighbors_fast.py"],
    "rules": [
        "tests/test_rules.py",
        "tests/test_editorial.py",
        "tests/test_config_rules.py",
        "tests/test_evaluate.py",
    ],
    "coverage": ["tests/test_coverage.py"],
    "export": ["tests/test_export.py"],
    "rewrite": ["tests/test_export.py"],
    "files": ["tests/test_export.py", "tests/test_hostile.py"],
    "evaluate": ["tests/test_evaluate.py"],
    "frontmatter": ["tests/test_frontmatter.py", "tests/test_corpus.py"],
    "job": [
        "tests/test_state.py",
        # mutmut's trampoline holds the frame that _fit hands over, which this test sees alive
        "--deselect=tests/test_state.py::test_a_full_run_frees_the_cleaned_texts_once_counted",
        "tests/test_cli.py",
        "tests/test_hostile.py",
        "tests/test_config_rules.py",
        "tests/test_job.py",
    ],
}

#: Copied into each scratch folder besides the package and the tests.
ALSO_COPY = ["data", "pyproject.toml"]

#: pytest options for every run: no doctests, notebooks or cache of the project's addopts.
PYTEST_ARGS = ["-o", "addopts=", "-p", "no:cacheprovider", "-q", "-x"]

#: Statuses that need no second look: killed, or not run (outside an --every sample).
DONE = frozenset({"killed", "not checked"})

_RESULT = re.compile(r"^\s*(\S+\.x(?:_|\u01c1)\S+):\s*(.+?)\s*$")  # x_function, or xǁClassǁmethod


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def prepare(module: str, tests: list[str], workdir: Path) -> Path:
    """A scratch copy of the project whose mutmut settings mutate ``module`` only."""
    scratch = workdir / module
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    shutil.copytree(ROOT / "recommender", scratch / "recommender", ignore=ignore)
    shutil.copytree(ROOT / "tests", scratch / "tests", ignore=ignore)
    for name in ALSO_COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, scratch / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, scratch / name)
    settings = f"""

[tool.mutmut]
source_paths = ["recommender"]
only_mutate = ["recommender/{module}.py"]
also_copy = {toml_list(ALSO_COPY)}
pytest_add_cli_args = {toml_list(PYTEST_ARGS)}
pytest_add_cli_args_test_selection = {toml_list(tests)}
use_git_change_detection = false
# forked straight from the process that ran the stats, a mutant inherits
# sparse_dot_topn's and the BLAS's started thread pools and can hang on them
process_isolation = "forkserver"
"""
    with open(scratch / "pyproject.toml", "a", encoding="utf-8") as stream:
        stream.write(settings)
    return scratch


def refresh_tests(scratch: Path) -> None:
    """Copy the checkout's tests over the scratch folder's (and its mutants/ copy)."""
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for folder in (scratch, scratch / "mutants"):
        if folder.is_dir():
            shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore, dirs_exist_ok=True)
    # which tests reach which function is measured again, with the new tests
    (scratch / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def run(module: str, scratch: Path, max_children: int, names: list[str] = ()) -> int:
    """mutmut run in the scratch folder, niced; its output goes to mutmut.log there."""
    command = ["nice", "-n", "15", sys.executable, "-m", "mutmut", "run"]
    command += ["--max-children", str(max_children), *names]
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    with open(scratch / "mutmut.log", "w", encoding="utf-8") as log:
        print(f"{module}: mutmut run in {scratch} (log: mutmut.log)", flush=True)
        return subprocess.run(command, cwd=scratch, env=env, stdout=log, stderr=log).returncode


def generate(module: str, scratch: Path, max_children: int) -> None:
    """Make the mutants (and the tests' coverage of them) without running any: mutmut
    has no such command, so it runs for a name that matches none, and stops there."""
    code = run(module, scratch, max_children, ["generate-only: a name no mutant has"])
    if not results(scratch):
        print(f"{module}: mutmut made no mutants (exit {code}); see {scratch / 'mutmut.log'}")


def results(scratch: Path) -> dict[str, str]:
    """Mutant name -> status, from ``mutmut results --all true``."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = {}
    for line in out.splitlines():
        match = _RESULT.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.split()[0].rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def sample(status: dict[str, str], every: int) -> list[str]:
    """Every ``every``-th mutant by name, of those not checked yet."""
    names = sorted(status, key=_natural)[::every]
    return [name for name in names if status[name] == "not checked"]


def summary(modules: list[str], workdir: Path) -> None:
    print(f"\n{'module':<11}{'mutants':>8}{'killed':>8}{'survived':>9}  other")
    survivors = {}
    for module in modules:
        scratch = workdir / module
        if not scratch.is_dir():
            print(f"{module:<11}  (not run)")
            continue
        status = results(scratch)
        counts = Counter(status.values())
        shown = sorted(counts.items())
        other = ", ".join(f"{name} {n}" for name, n in shown if name not in {"killed", "survived"})
        print(f"{module:<11}{len(status):>8}{counts['killed']:>8}{counts['survived']:>9}  {other}")
        survivors[module] = sorted(
            (f"{n} ({s})" for n, s in status.items() if s not in DONE), key=_natural
        )
    for module, names in survivors.items():
        if names:
            print(f"\n{module}: checked, not killed (mutmut show NAME in {workdir / module})")
            for name in names:
                print(f"  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(TESTS), help="modules to mutate")
    parser.add_argument("--tests", nargs="+", help="test files to run (default: TESTS)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "recommender-mutation",
        help="where the scratch copies go",
    )
    parser.add_argument("--max-children", type=int, default=1, help="mutmut processes")
    parser.add_argument("--summary", action="store_true", help="only print the last summary")
    parser.add_argument(
        "--again", action="store_true", help="run the last run's survivors against the tests now"
    )
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="run every Nth mutant only (by name), a sample; the rest stay 'not checked'",
    )
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if not (ROOT / "recommender" / f"{m}.py").is_file()]
    if unknown:
        parser.error(f"no such module: {', '.join(unknown)}")
    if args.again:
        for module in args.modules:
            scratch = args.workdir / module
            names = [n for n, s in results(scratch).items() if s not in DONE]
            if names:
                refresh_tests(scratch)
                run(module, scratch, args.max_children, names)
    elif not args.summary:
        for module in args.modules:
            tests = args.tests or TESTS.get(module) or [f"tests/test_{module}.py"]
            scratch = args.workdir / module
            names = []
            if args.every > 1:  # a sample of the mutants made now, or by an earlier run
                if (scratch / "mutants").is_dir() and results(scratch):
                    refresh_tests(scratch)
                else:
                    scratch = prepare(module, tests, args.workdir)
                    generate(module, scratch, args.max_children)
                names = sample(results(scratch), args.every)
                if not names:
                    continue
            else:
                scratch = prepare(module, tests, args.workdir)
            code = run(module, scratch, args.max_children, names)
            if code:
                print(f"{module}: mutmut exited with {code}; see {scratch / 'mutmut.log'}")
    summary(args.modules, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
