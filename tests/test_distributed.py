import copy
import re
import shutil
import socket
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone

import recommender.distributed as distributed_module
import recommender.neighbors as neighbors
import recommender.workers as workers
from recommender import Recommender, load_corpus
from recommender.cli import EXIT_USAGE, main
from recommender.neighbors import top_k_cosine, top_k_cosine_fast

from .conftest import SAMPLE
from .test_neighbors_fast import pairs_over_a_common_term, random_rows, topical_rows

distributed = pytest.importorskip("dask.distributed")

from recommender.distributed import (  # noqa: E402
    cluster_client,
    top_k_cosine_dask,
    top_k_cosine_fast_dask,
)


def local_cluster(n_workers: int, *, processes: bool = True):
    """A cluster on this machine, one thread a worker; its HTTP server on a free port."""
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},  # else 8787, taken by the other cluster
    )


@pytest.fixture(scope="module")
def client():
    # not the default client: a run must use the client it was given, as recommend does
    with local_cluster(2) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def sample_pages():
    return load_corpus(SAMPLE).pages


def task_names(stream) -> list[str]:
    """The function names of the tasks a get_task_stream block saw run."""
    return [str(task["key"]).split("-", 1)[0] for task in stream.data]


def test_same_result_as_one_process(client):
    X = topical_rows(1500, seed=11)
    expected = top_k_cosine_fast(X, k=7, n_terms=12, n_candidates=30, block_size=200)
    found = top_k_cosine_fast_dask(
        X, k=7, n_terms=12, n_candidates=30, block_size=170, client=client
    )
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


def test_strong_terms_by_weight_alone_on_the_cluster_too(client):
    X = topical_rows(600, seed=15)
    options = {"k": 5, "n_terms": 8, "n_candidates": 10}
    found = top_k_cosine_fast_dask(X, rarity_power=0, block_size=128, client=client, **options)
    by_weight = top_k_cosine_fast(X, rarity_power=0, **options)
    np.testing.assert_array_equal(found[0], by_weight[0])
    assert (found[0] != top_k_cosine_fast(X, **options)[0]).any()  # the power counts here


def test_common_terms_find_no_candidates_on_the_cluster_either(client, monkeypatch):
    monkeypatch.setattr(neighbors, "COMMON_MIN_TARGETS", 10)  # decided before blocks go out
    X = pairs_over_a_common_term(40)
    found = top_k_cosine_fast_dask(X, k=3, common_share=0.5, block_size=16, client=client)
    np.testing.assert_array_equal(found[0], top_k_cosine_fast(X, k=3, common_share=0.5)[0])
    assert (found[0][:, 2] == -1).all()
    every_term = top_k_cosine_fast_dask(X, k=3, common_share=1.0, block_size=16, client=client)
    assert (every_term[0] >= 0).all()


def test_queries_against_other_targets(client):
    X, Y = random_rows(40, 30, 0.2, seed=12), random_rows(90, 30, 0.2, seed=13)
    expected = top_k_cosine_fast(X, Y, k=5)
    found = top_k_cosine_fast_dask(X, Y, k=5, block_size=9, client=client)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


def test_exact_search_same_result_as_one_process(client):
    X = topical_rows(1200, seed=14)
    expected = top_k_cosine(X, k=9, block_size=500)
    found = top_k_cosine_dask(X, k=9, block_size=130, client=client)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])
    no_rows = sp.csr_matrix((0, 30), dtype=np.float32)
    targets = random_rows(50, 30, 0.2, seed=15)
    assert top_k_cosine_dask(no_rows, targets, k=3, client=client)[0].shape == (0, 3)


def test_no_cluster_unless_joblib_is_told(client):
    with client.as_current():
        assert cluster_client() is None  # a current client alone is not asked to work
    with joblib.parallel_config(backend="dask", client=client):
        assert cluster_client() is client
        assert cluster_client(n_jobs=1) is None  # as joblib: one job runs here
    assert cluster_client() is None


@pytest.mark.parametrize(("search", "block"), [("exact", "exact_block"), ("fast", "fast_block")])
def test_fit_on_the_cluster_gives_the_same_links(client, sample_pages, search, block):
    model = Recommender(search=search, block_size=16, min_df=1)
    expected = clone(model).fit(sample_pages)
    with (
        distributed.get_task_stream(client) as stream,
        joblib.parallel_config(backend="dask", client=client),
    ):
        found = clone(model).fit(sample_pages)
    assert task_names(stream).count(block) == 4  # 64 pages in blocks of 16
    assert found.related_.to_csv() == expected.related_.to_csv()
    np.testing.assert_array_equal(found.candidates_, expected.candidates_)
    np.testing.assert_array_equal(found.candidate_scores_, expected.candidate_scores_)


def test_update_on_the_cluster_gives_the_same_links(client, sample_pages):
    fitted = Recommender(min_df=1, block_size=16).fit(sample_pages)
    edited = sample_pages.copy()
    changed = edited.index[[2, 30]]
    edited.loc[changed, "answer_text"] = edited["answer_text"].iloc[[50, 7]].to_numpy()
    expected = copy.deepcopy(fitted).update(edited, changed=changed)
    found = copy.deepcopy(fitted)
    with (
        distributed.get_task_stream(client) as stream,
        joblib.parallel_config(backend="dask", client=client),
    ):
        found.update(edited, changed=changed)
    assert "exact_block" in task_names(stream)
    assert found.related_.to_csv() == expected.related_.to_csv()


def test_loading_on_the_cluster_gives_the_same_pages(client, monkeypatch):
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 1)  # the sample is small
    expected = load_corpus(SAMPLE)
    with (
        distributed.get_task_stream(client) as stream,
        joblib.parallel_config(backend="dask", client=client),
    ):
        found = load_corpus(SAMPLE)
    assert any(name == "_read_chunk" for name in task_names(stream))
    pd.testing.assert_frame_equal(found.pages, expected.pages)
    pd.testing.assert_frame_equal(found.links, expected.links)


def test_one_worker_of_a_cluster_reads_too(monkeypatch):
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 1)
    with (
        local_cluster(1, processes=False) as cluster,
        distributed.Client(cluster, set_as_default=False) as one,
        distributed.get_task_stream(one) as stream,
        joblib.parallel_config(backend="dask", client=one),
    ):
        found = load_corpus(SAMPLE, n_jobs=-1)
    assert any(name == "_read_chunk" for name in task_names(stream))
    assert len(found.pages) == 64


# ---------------------------------------------------------------- recommend --scheduler


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def summary(out: str, root) -> str:
    """What recommend printed, but the site's path, the table's name and the seconds taken."""
    out = re.sub(r"(here|there)\.csv", "TABLE", out.replace(str(root), "SITE"))
    return re.sub(r"[0-9.]+ s\b", "T s", out)


def test_recommend_on_a_scheduler_writes_the_same_pages_and_table(
    client, site, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(workers, "PARALLEL_MIN_PAGES", 1)
    other = tmp_path / "other"
    shutil.copytree(site, other)
    assert main([str(site), "--rewrite", "--output", str(tmp_path / "here.csv")]) == 0
    here = capsys.readouterr().out
    with distributed.get_task_stream(client) as stream:
        code = main(
            [
                str(other),
                "--rewrite",
                "--output",
                str(tmp_path / "there.csv"),
                "--scheduler",
                client.scheduler.address,
            ]
        )
    there = capsys.readouterr().out
    assert code == 0
    names = task_names(stream)
    assert "exact_block" in names
    assert any(name == "_read_chunk" for name in names)
    assert snapshot(other) == snapshot(site)
    assert (tmp_path / "there.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    assert summary(there, other) == summary(here, site)


def test_recommend_without_dask_names_the_extra(site, capsys, monkeypatch):
    before = snapshot(site)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if absent
    code = main([str(site), "--rewrite", "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert 'pip install "recommender[dask]"' in err
    assert snapshot(site) == before


def test_recommend_with_an_unreachable_scheduler_fails_soon(site, capsys, monkeypatch):
    before = snapshot(site)
    monkeypatch.setattr(distributed_module, "CONNECT_TIMEOUT", 1.0)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    code = main([str(site), "--rewrite", "--scheduler", address])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert f"cannot connect to the Dask scheduler at {address}" in err
    assert err.count("\n") == 1
    assert snapshot(site) == before


@pytest.mark.parametrize("address", ["garbage", "tcp://host", "host:"])
def test_a_scheduler_address_without_a_port_fails_at_once(site, capsys, address):
    # dask's half-made client hung 20 s when freed, then printed a traceback (hostile pass)
    before = snapshot(site)
    code = main([str(site), "--rewrite", "--scheduler", address])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert f"{address!r} is no Dask scheduler address" in err and err.count("\n") == 1
    assert snapshot(site) == before


def test_recommend_with_a_scheduler_without_workers_fails_soon(site, capsys, monkeypatch):
    monkeypatch.setattr(distributed_module, "CONNECT_TIMEOUT", 1.0)
    with local_cluster(0, processes=False) as empty:
        code = main([str(site), "--scheduler", empty.scheduler_address])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert f"the Dask scheduler at {empty.scheduler_address} has no worker after 1 s" in err
