"""Worker processes: started ahead of their work, then reused by it."""

from __future__ import annotations

import os

import recommender.workers as workers
from recommender.export import start_export_workers

from .conftest import child_processes


def _pid_of(chunk) -> int:
    """The process that ran a chunk."""
    return os.getpid()


def test_workers_started_ahead_are_the_ones_that_run_the_chunks(monkeypatch):
    # a pool of its own: another idle time than any pool earlier tests left alive
    monkeypatch.setattr(workers, "WORKER_IDLE_SECONDS", 17)
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 2)
    thread = workers.start_workers(_pid_of, [], n_jobs=2)
    thread.join(timeout=60)
    started = child_processes(os.getpid())
    _, results = workers.run_chunks(_pid_of, list(range(64)), n_jobs=2)
    used = set(results)
    assert used and os.getpid() not in used
    assert used <= started


def test_no_workers_started_for_one_job_or_a_small_export(monkeypatch):
    started = []
    monkeypatch.setattr(workers, "threading", None)  # any start would fail here
    assert workers.start_workers(_pid_of, [], n_jobs=1) is None
    monkeypatch.setattr(
        "recommender.export.start_workers", lambda *args, **kwargs: started.append(args)
    )
    start_export_workers(".", workers.PARALLEL_MIN_PAGES - 1, n_jobs=2)
    assert started == []
    start_export_workers(".", workers.PARALLEL_MIN_PAGES, n_jobs=2)
    assert len(started) == 1
