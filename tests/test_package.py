"""The package's names: imported on first use, and never rebound to the submodules."""

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
