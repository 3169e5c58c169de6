"""Running a function over chunks of pages in worker processes, in order.

The loader and the exporter both spread their pages over loky worker
processes (joblib) this way.  Workers end with the run: when it ends, however
it ends (:func:`end_with_parent` watches for a killed parent), and when idle.
While joblib's dask backend is active (:func:`cluster_client`), the loader's
chunks run on the Dask cluster's workers instead.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import joblib

from .deferred import defer_unused

__all__ = [
    "PARALLEL_MIN_PAGES",
    "WORKER_IDLE_SECONDS",
    "cluster_client",
    "end_with_parent",
    "map_in_order",
    "run_chunks",
    "workers_started",
]

#: Fewer pages than this are handled in the calling process: starting workers costs more.
PARALLEL_MIN_PAGES = 2000
#: Seconds an idle worker process waits for more work before it ends.
WORKER_IDLE_SECONDS = 5


def run_chunks(
    function: Callable[..., Any],
    items: Sequence[Any],
    *args: Any,
    n_jobs: int | None = None,
    cluster: bool = False,
) -> tuple[list[Sequence[Any]], Iterator[Any]]:
    """Split ``items`` into chunks; return them and ``function(chunk, *args)`` of each, in order.

    With more than one worker (``n_jobs`` as in joblib) and at least
    :data:`PARALLEL_MIN_PAGES` items, the chunks (16 per worker) run in
    worker processes; otherwise one after the other here, lazily.  With
    ``cluster``, while joblib's dask backend is active, they run on the
    cluster's workers (even one: joblib would run a single job here).
    """
    workers = joblib.effective_n_jobs(n_jobs)  # under the dask backend: the cluster's threads
    client = cluster_client(n_jobs) if cluster else None
    parallel = (workers > 1 or client is not None) and len(items) >= PARALLEL_MIN_PAGES
    size = max(1, -(-len(items) // (workers * 16))) if parallel else 1000
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if not parallel:
        return chunks, (function(chunk, *args) for chunk in chunks)
    if client is not None:
        return chunks, map_in_order(client, function, chunks, *([a] * len(chunks) for a in args))
    return chunks, _pool(workers)(joblib.delayed(function)(chunk, *args) for chunk in chunks)


def _pool(workers: int) -> joblib.Parallel:
    """The worker processes of :func:`run_chunks`: the same settings reuse the same ones."""
    return joblib.Parallel(
        n_jobs=workers,
        return_as="generator",
        idle_worker_timeout=WORKER_IDLE_SECONDS,
        initializer=_start_worker,
        initargs=(os.getpid(),),
        backend="loky",
    )


@contextlib.contextmanager
def workers_started(module: str, n_jobs: int | None = None) -> Iterator[None]:
    """Start :func:`run_chunks`'s worker processes now, importing ``module`` there, while
    this process goes on; leaving waits until they are ready.

    Starting them takes about half a second (a new interpreter each), which
    a run that works on its own meanwhile need not wait for: the workers are
    then ready for its ``run_chunks`` (within :data:`WORKER_IDLE_SECONDS`).  One
    import is asked of each worker, but an idle worker may take two: the module
    is then imported by the other's first chunk.
    Nothing is started where ``run_chunks`` would use no worker processes
    (one job, or a Dask cluster).
    """
    workers = joblib.effective_n_jobs(n_jobs)
    if workers < 2 or cluster_client(n_jobs) is not None:
        yield
        return
    ready = _pool(workers)(joblib.delayed(_import)(module) for _ in range(workers))
    try:
        yield
    except BaseException:  # the body's error is the one to see, not a worker's
        with contextlib.suppress(Exception):
            collections.deque(ready, maxlen=0)
        raise
    collections.deque(ready, maxlen=0)


def _import(module: str) -> None:
    importlib.import_module(module)


def cluster_client(n_jobs: int | None = None):
    """The Dask client to run on: that of joblib's active backend, if it is dask; else None.

    None too when ``n_jobs`` is 1: as with joblib, one job runs in this process.
    Never imports dask: while it has not been imported, no dask backend can be active.
    """
    dask_backend = sys.modules.get("joblib._dask")
    if dask_backend is None or n_jobs == 1:
        return None
    backend, _ = joblib.parallel.get_active_backend()
    if not isinstance(backend, dask_backend.DaskDistributedBackend):
        return None
    return backend.client


def map_in_order(client, function: Callable, *iterables: Sequence, **kwargs) -> Iterator:
    """``function(*items, **kwargs)`` over the iterables on the cluster's workers; results in order.

    All the tasks are sent at once; each result is given back, and released
    on the cluster, as soon as it and those before it are done.
    """
    futures = client.map(function, *iterables, pure=False, **kwargs)
    for future in futures:
        yield future.result()
        future.release()


def _start_worker(parent: int) -> None:
    """A worker process's start: modules it would import and never use deferred
    (:mod:`recommender.deferred`), and its end tied to ``parent``'s."""
    defer_unused()
    end_with_parent(parent)


def end_with_parent(parent: int, interval: float = 0.5) -> None:
    """In a worker process: end it when the process ``parent`` has ended (say, by SIGKILL).

    A killed parent cannot tell its workers to stop; without this they would
    wait for work until their idle timeout.
    """

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent and not _alive(parent):
                os._exit(0)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
