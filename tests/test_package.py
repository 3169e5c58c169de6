"""The package's names: imported on first use, and never rebound to the submodules."""

import importlib.util
import subprocess
import sys

import recommender

HEAVY = ("pandas", "numpy", "sklearn", "scipy", "pyarrow")


def imported_after(statement: str) -> set[str]:
    """The heavy libraries a fresh interpreter holds after running ``statement``."""
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name for name in out.stdout.split() if name.split(".")[0] in HEAVY}


def test_a_rewrite_worker_imports_no_pandas_numpy_or_scikit_learn():
    # what an export worker process imports to run its chunks of pages
    assert imported_after("from recommender.rewrite import rewrite_pages") == set()


def test_the_package_imports_its_libraries_only_for_a_name_that_needs_them():
    assert imported_after("import recommender") == set()
    assert {"pandas", "numpy"} <= imported_after("from recommender import load_corpus")


def test_evaluate_stays_the_function_when_its_module_is_imported():
    import recommender.evaluate
    from recommender import evaluate
    from recommender.evaluate import read_labels

    assert callable(evaluate) and evaluate.__module__ == "recommender.evaluate"
    assert recommender.evaluate is evaluate
    assert callable(read_labels)


def test_every_public_name_resolves_and_is_listed():
    for name in recommender.__all__:
        assert getattr(recommender, name) is not None
    assert set(recommender.__all__) <= set(dir(recommender))


def test_a_submodule_is_an_attribute_as_with_an_eager_package():
    code = "import recommender; print(recommender.errors.RecommenderError.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "RecommenderError"


def test_the_console_script_defers_scipy_stats_and_a_run_never_imports_it(site):
    # scikit-learn imports scipy.stats as it starts; the command's work never needs it
    code = (
        "import sys; from recommender import launch; "
        f"sys.argv = ['recommend', {str(site)!r}, '--rewrite', '--quiet']; code = launch.main(); "
        "print(code, type(sys.modules['scipy.stats']).__name__, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "_DeferredModule", "True"]
    assert (site / ".recommender" / "state.json").exists()  # the run did its work


def test_a_deferred_module_is_imported_by_its_first_use(monkeypatch):
    from recommender.deferred import defer_import

    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert defer_import("colorsys")
    import colorsys

    assert type(colorsys).__name__ == "_DeferredModule"  # bound, not imported
    assert importlib.util.find_spec("colorsys").name == "colorsys"  # its spec, still deferred
    assert type(sys.modules["colorsys"]).__name__ == "_DeferredModule"
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert type(sys.modules["colorsys"]).__name__ == "module"  # the real one, in its place
    assert "hls_to_rgb" in vars(colorsys)  # its names copied over: both serve
    from colorsys import hsv_to_rgb  # a from-import of a name

    assert hsv_to_rgb(0.0, 0.0, 1.0) == (1.0, 1.0, 1.0)
    assert not defer_import("colorsys")  # imported: nothing changes
    assert not defer_import("no_such_package.stats") and not defer_import("no_such_module")
    assert "no_such_package.stats" not in sys.modules


def test_a_deferred_package_is_imported_for_its_submodules(monkeypatch):
    from recommender.deferred import defer_import

    for name in [n for n in sys.modules if n == "xml.dom" or n.startswith("xml.dom.")]:
        monkeypatch.delitem(sys.modules, name)
    assert defer_import("xml.dom")
    import xml.dom.minidom  # needs the package's __path__

    assert xml.dom.minidom.parseString("<a/>").documentElement.tagName == "a"
    assert type(sys.modules["xml.dom"]).__name__ == "module"
