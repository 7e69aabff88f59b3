"""A fitted VHPEstimator on dask arrays, on a 2-worker LocalCluster of processes.

The package needs nothing dask-specific: a fitted estimator pickles to the
workers (``__getstate__``) and its methods run per block with
``dask.array.map_blocks`` or ``dask_ml.wrappers.ParallelPostFit``; training
goes through ``dask_ml.wrappers.Incremental``, a chain of ``partial_fit``
calls over the blocks.

Agreement with the in-memory call: ``transform`` is a row-wise map, and
``score_samples`` gives every row the same importance-sampling noise (from the
fitted model's seed, in fixed blocks of samples), so a row's value depends on
that row alone, not on the block it is in -- up to the rounding of the
networks' matrix products, whose kernels change with the number of rows in a
block (see ``_numerics.py``: 1.5e-6 nats apart between a 7-row block and the
whole array on one 2-core machine). Those are compared within that bound;
training and sampling, which run the same shapes on the workers as here (one
torch thread everywhere), exactly.
"""

import numpy as np
import pytest
import torch
from _numerics import assert_same_log_likelihood, assert_same_values
from sklearn.datasets import load_digits
from sklearn.utils.validation import check_is_fitted

from sklearn_vhp import VHPEstimator

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

TINY = dict(
    hidden_layer_sizes=(16,),
    max_iter=2,
    n_importance=4,
    n_eval_samples=16,
    batch_size=32,
    random_state=0,
)


@pytest.fixture(scope="module")
def client():
    """A distributed client on 2 worker processes of 1 thread each."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(lambda: __import__("sklearn_vhp"))  # start-up cost here, not in a test
        yield client


@pytest.fixture(autouse=True)
def one_thread_like_the_workers(client):
    """This process computes the references at the workers' torch thread count.

    distributed starts its workers with ``OMP_NUM_THREADS=1``; the exact
    comparisons below (training, sampling: the same shapes here and there)
    then compare equal computations, whatever ``SKLEARN_VHP_TEST_THREADS`` is.
    """
    counts = client.run(lambda: __import__("torch").get_num_threads())
    assert set(counts.values()) == {1}, counts
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def X():
    """Digits in [0, 1], float32: 600 rows of 64 pixels."""
    return (load_digits().data[:600] / 16.0).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return VHPEstimator(**TINY).fit(X)


def _on_workers(client, collection):
    """Compute ``collection`` on the cluster (checking that its workers ran it)."""
    with distributed.get_task_stream(client) as stream:
        result = client.compute(collection).result()
    workers = {task["worker"] for task in stream.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])
    return result


# ----------------------------------------------------------------- inference
def test_transform_over_blocks_equals_in_memory(client, fitted, X):
    dX = da.from_array(X, chunks=(100, -1))
    Z = dX.map_blocks(
        fitted.transform, chunks=(dX.chunks[0], (fitted.n_components,)), dtype=X.dtype
    )
    assert Z.shape == (X.shape[0], fitted.n_components)
    assert_same_values(_on_workers(client, Z), fitted.transform(X))


def test_parallel_post_fit_transform_equals_in_memory(client, fitted, X):
    """dask-ml's wrapper computes the same codes.

    Its ``map_blocks`` passes no ``chunks``, so dask-ml 2025.1.0 declares the
    input's width (64) for the result: the computed array is right, the lazy
    one's ``shape`` is not (hence ``map_blocks`` with ``chunks`` in the docs).
    """
    ParallelPostFit = pytest.importorskip("dask_ml.wrappers").ParallelPostFit

    dX = da.from_array(X, chunks=(100, -1))
    post = ParallelPostFit(fitted, transform_meta=np.empty((0, 0), dtype=X.dtype))
    Z = _on_workers(client, post.transform(dX))
    assert_same_values(Z, fitted.transform(X))
    # In memory, the wrapper is the estimator.
    np.testing.assert_array_equal(post.transform(X), fitted.transform(X))


def test_score_samples_over_blocks_equals_in_memory(client, fitted, X):
    # Uneven blocks: a row's estimate must not depend on its neighbours.
    dX = da.from_array(X, chunks=((50, 250, 7, 293), (X.shape[1],)))
    log_p = dX.map_blocks(fitted.score_samples, drop_axis=1, dtype=np.float64)
    out = _on_workers(client, log_p)
    expected = fitted.score_samples(X)
    assert np.all(np.isfinite(expected))
    assert_same_log_likelihood(out, expected, X.shape[1])
    # Another noise per block would move each row by ~0.1-1 nats, far outside the bound.
    assert np.max(np.abs(out - expected)) < 1e-3
    # The mean over blocks is the estimator's score (to the same rounding).
    mean = client.compute(log_p.mean()).result()
    assert_same_log_likelihood([mean], [fitted.score(X)], X.shape[1])


def test_uint8_blocks_score_as_their_float32_rows(client):
    """Binary pixels stored as uint8 (4x smaller) are converted per block."""
    X = (load_digits().data[:400] > 7).astype(np.uint8)
    est = VHPEstimator(**TINY).fit(X.astype(np.float32))
    assert est.likelihood_ == "bernoulli"
    dX = da.from_array(X, chunks=(100, -1))
    log_p = dX.map_blocks(
        lambda b: est.score_samples(b.astype(np.float32)), drop_axis=1, dtype=np.float64
    )
    assert_same_log_likelihood(
        _on_workers(client, log_p), est.score_samples(X.astype(np.float32)), X.shape[1]
    )


def _sample_blocks(est, n_samples, block_rows, seed):
    """``n_samples`` draws from ``est`` as a dask array, block ``i`` from its own seed.

    The seeds come from ``numpy.random.SeedSequence(seed)``, so the draws
    depend on ``seed`` and the block sizes, never on the workers or the order
    in which the blocks run.
    """
    sizes = [block_rows] * (n_samples // block_rows) + (
        [n_samples % block_rows] if n_samples % block_rows else []
    )
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(sizes))]

    def block(block_info=None):
        i = block_info[None]["chunk-location"][0]
        return est.sample(sizes[i], random_state=seeds[i])

    width = est.n_features_in_
    out = da.map_blocks(
        block, chunks=(tuple(sizes), (width,)), dtype=np.float64, meta=np.empty((0, 0))
    )
    return out, sizes, seeds


def test_sample_over_blocks_is_the_per_block_in_memory_sample(client, fitted):
    """What equality means for sampling: block ``i`` is ``sample(n_i, random_state=seed_i)``.

    One generator for all rows would serialise the draws; a seed per block lets
    the blocks run anywhere and stay reproducible.
    """
    dS, sizes, seeds = _sample_blocks(fitted, 250, 100, seed=7)
    S = _on_workers(client, dS)
    expected = np.concatenate([fitted.sample(n, random_state=s) for n, s in zip(sizes, seeds)])
    np.testing.assert_array_equal(S, expected)
    # Reproducible: the same seed gives the same draws; another seed others.
    np.testing.assert_array_equal(client.compute(dS).result(), S)
    other = client.compute(_sample_blocks(fitted, 250, 100, seed=8)[0]).result()
    assert not np.allclose(other, S)
    # One block is the in-memory sample with that block's seed.
    one, _, (seed,) = _sample_blocks(fitted, 250, 250, seed=7)
    np.testing.assert_array_equal(
        client.compute(one).result(), fitted.sample(250, random_state=seed)
    )


def test_dask_sample_matches_in_memory_sample_in_distribution(client, fitted):
    """Independent block seeds draw from the same learned prior as one big draw."""
    dS, _, _ = _sample_blocks(fitted, 4000, 500, seed=0)
    S = client.compute(dS).result()
    ref = fitted.sample(4000, random_state=1)
    # Per-pixel means of 4000 decoder means agree to a few standard errors.
    se = np.sqrt(S.var(axis=0) / 4000 + ref.var(axis=0) / 4000) + 1e-12
    assert np.max(np.abs(S.mean(axis=0) - ref.mean(axis=0)) / se) < 5


# ------------------------------------------------------------------ training
def test_incremental_fit_is_partial_fit_over_the_blocks(client, X):
    """``Incremental(est).fit(dX)`` = ``partial_fit`` on each block in turn, on the cluster.

    The model travels between workers as a pickle (weights, Adam's state,
    schedule and seeds), so the result is that of the local loop, exactly.
    """
    Incremental = pytest.importorskip("dask_ml.wrappers").Incremental

    dX = da.from_array(X, chunks=(150, -1))
    inc = Incremental(VHPEstimator(**TINY), shuffle_blocks=False)
    with distributed.get_task_stream(client) as stream:
        inc.fit(dX)
    assert len(stream.data) > 0
    check_is_fitted(inc.estimator_)

    local = VHPEstimator(**TINY)
    for block in dX.blocks:
        local.partial_fit(block.compute())
    np.testing.assert_array_equal(inc.estimator_.history_["loss"], local.history_["loss"])
    np.testing.assert_array_equal(inc.estimator_.transform(X), local.transform(X))
    # Incremental scores and transforms the fitted copy block-wise (150-row blocks).
    assert_same_values(client.compute(inc.transform(dX)).result(), local.transform(X))


def test_incremental_shuffled_blocks_train_on_every_row(client, X):
    """With shuffled blocks every block is seen once per ``fit``: one pass each."""
    Incremental = pytest.importorskip("dask_ml.wrappers").Incremental

    dX = da.from_array(X, chunks=(200, -1))
    params = {**TINY, "batch_size": 40}  # 5 whole batches per block
    inc = Incremental(VHPEstimator(**params), shuffle_blocks=True, random_state=0).fit(dX)
    est = inc.estimator_
    batches_per_block = 200 // 40
    assert len(est.history_["loss"]) == 3 * batches_per_block
    assert np.all(np.isfinite(est.score_samples(X)))
    # A second partial_fit of the wrapper continues the same model.
    inc.partial_fit(dX)
    assert len(inc.estimator_.history_["loss"]) == 6 * batches_per_block
