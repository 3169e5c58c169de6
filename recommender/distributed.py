"""The expensive steps on a Dask cluster: loading, and the similarity search's blocks.

Needs the optional extra ``dask`` (``pip install "recommender[dask]"``); dask
is imported only when a cluster is used.  A cluster is in use while joblib's
dask backend is active, which is how scikit-learn runs on Dask too::

    from dask.distributed import Client
    import joblib

    client = Client("tcp://scheduler:8786")
    with joblib.parallel_config(backend="dask"):
        corpus = load_corpus("site")  # chunks of pages read by the workers
        model = Recommender().fit(corpus.pages)  # the search's blocks run on the workers

:func:`on_cluster` does both for ``recommend --scheduler``: it connects a
client and makes it joblib's backend.  :func:`cluster_client` is how the
loader and the model find out.  The blocks are those of
:func:`~recommender.neighbors.top_k_cosine` and
:func:`~recommender.neighbors.top_k_cosine_fast` and give the same result
wherever they run: the targets are sent to every worker once, each task takes
one block of query rows and returns its indices and scores.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence

import joblib
import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from .errors import ConfigError
from .neighbors import (
    COMMON_SHARE,
    MAX_HOLDERS,
    RARITY_POWER,
    ExactSearch,
    FastSearch,
    check_block_size,
    exact_block,
    fast_block,
)
from .workers import cluster_client, map_in_order

__all__ = [
    "CONNECT_TIMEOUT",
    "cluster_client",
    "map_in_order",
    "on_cluster",
    "top_k_cosine_dask",
    "top_k_cosine_fast_dask",
]

#: Seconds to wait for a scheduler, and for its first worker, before giving up.
CONNECT_TIMEOUT = 10.0

_INSTALL = 'pip install "recommender[dask]"'

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def on_cluster(address: str, *, timeout: float | None = None) -> Iterator[object]:
    """Connect to the Dask scheduler at ``address`` and make it joblib's backend, in a block.

    Yields the :class:`dask.distributed.Client`, closed at the end of the
    block (the cluster goes on).  The workers read the site's pages: they must
    see the site at the same path as this process.

    Raises
    ------
    ConfigError
        When dask is not installed, or no scheduler with a worker answers at
        ``address`` within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT`).
    """
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    if not _ADDRESS.fullmatch(address):  # a client half made of a bad one hangs when freed
        raise ConfigError(
            f"{address!r} is no Dask scheduler address: tcp://host:port (or host:port)"
        )
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError(f"a Dask scheduler needs the extra dask: {_INSTALL}") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # refused, timed out, a bad address, a peer that is no scheduler
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {address}: {type(exc).__name__}: {exc}"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ConfigError(
                f"the Dask scheduler at {address} has no worker after {timeout:g} s"
            ) from None
        workers = len(client.scheduler_info()["workers"])
        logger.info("running on the Dask scheduler at %s (%d workers)", address, workers)
        with joblib.parallel_config(backend="dask", client=client):
            yield client


#: A scheduler's address: [protocol://]host:port, or an in-process one.
_ADDRESS = re.compile(r"inproc://\S+|(?:[a-z][a-z0-9+.-]*://)?[^\s/:]+(?::[^\s/]*)*:\d+/?")


def top_k_cosine_dask(
    X: sp.spmatrix,
    Y: sp.spmatrix | None = None,
    *,
    k: int,
    client=None,
    block_size: int = 4096,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~recommender.neighbors.top_k_cosine` with its blocks run on Dask workers.

    Parameters
    ----------
    X, Y, k, block_size, progress
        As in :func:`~recommender.neighbors.top_k_cosine`.
    client : dask.distributed.Client, optional
        The cluster to use; default the current client.

    Returns
    -------
    indices, scores : ndarray
        Identical to what :func:`~recommender.neighbors.top_k_cosine` returns
        for the same arguments.
    """
    check_block_size(block_size)
    search = ExactSearch(X, Y, k=k)
    return _blocks_on_cluster(
        client,
        exact_block,
        [search.X],
        [search.targets_t],
        k=k,
        block_size=block_size,
        progress=progress,
        options={"k": k, "n_threads": 1},
    )


def top_k_cosine_fast_dask(
    X: sp.spmatrix,
    Y: sp.spmatrix | None = None,
    *,
    k: int,
    client=None,
    n_terms: int = 40,
    n_candidates: int | None = None,
    common_share: float = COMMON_SHARE,
    max_holders: int | None = MAX_HOLDERS,
    rarity_power: float = RARITY_POWER,
    block_size: int = 4096,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~recommender.neighbors.top_k_cosine_fast` with its blocks run on Dask workers.

    Parameters
    ----------
    X, Y, k, n_terms, n_candidates, common_share, max_holders, rarity_power, block_size, progress
        As in :func:`~recommender.neighbors.top_k_cosine_fast`.
    client : dask.distributed.Client, optional
        The cluster to use; default the current client.

    Returns
    -------
    indices, scores : ndarray
        Identical to what :func:`~recommender.neighbors.top_k_cosine_fast`
        returns for the same arguments.
    """
    check_block_size(block_size)
    search = FastSearch(
        X,
        Y,
        k=k,
        n_terms=n_terms,
        n_candidates=n_candidates,
        common_share=common_share,
        max_holders=max_holders,
        rarity_power=rarity_power,
    )
    return _blocks_on_cluster(
        client,
        fast_block,
        [search.X, search.strong_queries],
        [search.Y, search.strong_targets_t],
        k=k,
        block_size=block_size,
        progress=progress,
        options={"k": k, "width": search.width, "n_threads": 1},
    )


def _blocks_on_cluster(
    client,
    block: Callable[..., tuple[np.ndarray, np.ndarray]],
    queries: Sequence[sp.csr_matrix],
    targets: Sequence[sp.csr_matrix],
    *,
    k: int,
    block_size: int,
    progress: bool,
    options: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """``block(*rows of each queries matrix, *targets, **options)`` per block, on the cluster.

    The targets go to every worker once; each block's rows are scattered to
    one worker (not through the scheduler).  Results are stacked in row order.
    """
    from dask.distributed import as_completed, default_client

    client = client or default_client()
    n = queries[0].shape[0]
    if n == 0:
        return np.full((0, k), -1, dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    shared = client.scatter(list(targets), broadcast=True, hash=False)
    rows = [
        [part[start : start + block_size] for part in queries] for start in range(0, n, block_size)
    ]
    parts = client.scatter(rows, hash=False)
    futures = [  # keys named after the block function, as the dashboard shows them
        client.submit(
            _apply, block, part, *shared, key=f"{block.__name__}-{uuid.uuid4().hex}", **options
        )
        for part in parts
    ]
    done = as_completed(futures, loop=client.loop)  # this client, which need not be the default
    for _ in tqdm(done, total=len(futures), desc="similarity", unit="block", disable=not progress):
        pass
    results = client.gather(futures)
    return np.vstack([r[0] for r in results]), np.vstack([r[1] for r in results])


def _apply(block: Callable, rows: list, *targets, **options):
    """On a worker: one block's search, its query rows unpacked."""
    return block(*rows, *targets, **options)
