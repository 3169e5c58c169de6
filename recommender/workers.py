"""Running a function over chunks of pages in worker processes, in order.

The loader and the exporter both spread their pages over loky worker
processes (joblib) this way.  Workers end with the run: when it ends, however
it ends (:func:`end_with_parent` watches for a killed parent), and when idle.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import joblib

__all__ = ["PARALLEL_MIN_PAGES", "WORKER_IDLE_SECONDS", "end_with_parent", "run_chunks"]

#: Fewer pages than this are handled in the calling process: starting workers costs more.
PARALLEL_MIN_PAGES = 2000
#: Seconds an idle worker process waits for more work before it ends.
WORKER_IDLE_SECONDS = 5


def run_chunks(
    function: Callable[..., Any],
    items: Sequence[Any],
    *args: Any,
    n_jobs: int | None = None,
) -> tuple[list[Sequence[Any]], Iterator[Any]]:
    """Split ``items`` into chunks; return them and ``function(chunk, *args)`` of each, in order.

    With more than one worker (``n_jobs`` as in joblib) and at least
    :data:`PARALLEL_MIN_PAGES` items, the chunks (16 per worker) run in
    worker processes; otherwise one after the other here, lazily.
    """
    workers = joblib.effective_n_jobs(n_jobs)
    parallel = workers > 1 and len(items) >= PARALLEL_MIN_PAGES
    size = max(1, -(-len(items) // (workers * 16))) if parallel else 1000
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if not parallel:
        return chunks, (function(chunk, *args) for chunk in chunks)
    run = joblib.Parallel(
        n_jobs=workers,
        return_as="generator",
        idle_worker_timeout=WORKER_IDLE_SECONDS,
        initializer=end_with_parent,
        initargs=(os.getpid(),),
    )
    return chunks, run(joblib.delayed(function)(chunk, *args) for chunk in chunks)


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
