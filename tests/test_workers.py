"""Worker processes: started ahead of their work, and reused by run_chunks."""

import sys

from recommender import workers
from recommender.workers import PARALLEL_MIN_PAGES, run_chunks, workers_started


def _imported(chunk, module):
    return [module in sys.modules] * len(chunk)


def test_started_workers_have_imported_the_module_when_run_chunks_uses_them():
    items = list(range(PARALLEL_MIN_PAGES))
    _, results = run_chunks(_imported, items, "colorsys", n_jobs=2)
    assert not any(flag for chunk in results for flag in chunk)  # no worker has it yet
    with workers_started("colorsys", n_jobs=2):
        pass  # the run's own work goes here
    _, results = run_chunks(_imported, items, "colorsys", n_jobs=2)
    assert all(flag for chunk in results for flag in chunk)


def test_nothing_is_started_where_run_chunks_would_use_no_workers(monkeypatch):
    started = []
    monkeypatch.setattr(workers, "_pool", lambda n: started.append(n))
    with workers_started("colorsys", n_jobs=1):
        pass
    assert started == []
