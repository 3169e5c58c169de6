"""Worker processes: started ahead of their work, and reused by run_chunks."""

import os

import pytest

from recommender import workers
from recommender.workers import PARALLEL_MIN_PAGES, run_chunks, workers_started


def _worker_processes():
    """The live processes of loky's reusable executor, which run_chunks uses (read only)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is None:
        return []
    return [p for p in executor._processes.values() if p.is_alive()]


def test_started_workers_are_running_when_the_body_ends_and_run_chunks_uses_them():
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # no workers left from other tests
    assert _worker_processes() == []
    with workers_started("colorsys", n_jobs=2):
        pass  # the run's own work goes here
    started = {p.pid for p in _worker_processes()}
    assert len(started) == 2
    _, results = run_chunks(_pid, list(range(PARALLEL_MIN_PAGES)), n_jobs=2)
    assert {pid for chunk in results for pid in chunk} <= started


def _pid(chunk):
    return [os.getpid()] * len(chunk)


def test_nothing_is_started_where_run_chunks_would_use_no_workers(monkeypatch):
    started = []
    monkeypatch.setattr(workers, "_pool", lambda n: started.append(n))
    with workers_started("colorsys", n_jobs=1):
        pass
    assert started == []


def test_the_bodys_error_is_raised_and_not_a_workers_that_failed_to_start():
    class Stop(Exception):
        pass

    with pytest.raises(Stop), workers_started("no_module_of_this_name", n_jobs=2):
        raise Stop
    # with no error of its own, the workers' is raised, as run_chunks would raise it
    with pytest.raises(ModuleNotFoundError), workers_started("no_module_of_this_name", n_jobs=2):
        pass


def _stats_module(chunk):
    import sys

    import sklearn  # noqa: F401 - as a counting chunk's import of scikit-learn

    return [type(sys.modules["scipy.stats"]).__name__] * len(chunk)


def test_worker_processes_defer_the_modules_their_imports_never_use():
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # new workers, started by run_chunks
    _, results = run_chunks(_stats_module, list(range(PARALLEL_MIN_PAGES)), n_jobs=2)
    assert {kind for chunk in results for kind in chunk} == {"_DeferredModule"}
