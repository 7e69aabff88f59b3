"""Streaming ``fit`` (data larger than ``working_memory``) and ``partial_fit``."""

import warnings

import numpy as np
import pytest
import torch
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import VHPEstimator
from sklearn_vhp._training import ShuffledBatches, StreamedBatches

KW = dict(hidden_layer_sizes=(16,), max_iter=3, n_importance=4, batch_size=32, random_state=0)
#: MiB: 600 x 20 rows as float32 (47 KiB) do not fit, so fit streams them.
SMALL_BUDGET = 0.01


@pytest.fixture(scope="module")
def binary():
    return (np.random.RandomState(0).rand(600, 20) > 0.6).astype(np.uint8)


def _fit(X, budget=None, block_rows=None, **kwargs):
    est = VHPEstimator(**{**KW, **kwargs})
    est._stream_block_rows = block_rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if budget is None:
            return est.fit(X)
        with config_context(working_memory=budget):
            return est.fit(X)


# ------------------------------------------------------------ the source
def _batches(source, epochs=1):
    return [[b.clone() for b in source.epoch()] for _ in range(epochs)]


def test_one_block_streams_the_batches_of_the_in_memory_source():
    data = torch.rand(203, 5)
    shuffled = ShuffledBatches(data, 16, torch.Generator().manual_seed(3))
    streamed = StreamedBatches(
        data.numpy(),
        16,
        torch.Generator().manual_seed(3),
        block_rows=203,
        buffer_blocks=8,
        reference=data,
    )
    assert streamed.steps_per_epoch == shuffled.steps_per_epoch == 12
    for a, b in zip(_batches(shuffled, 2), _batches(streamed, 2)):
        assert len(a) == len(b) == 12
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_blocks_show_each_row_once_per_epoch_and_skip_the_held_out_rows():
    n, batch = 1000, 24
    X = np.repeat(np.arange(n, dtype=np.int32)[:, None], 3, axis=1)  # row i holds i
    skip = np.arange(5, n, 37)
    source = StreamedBatches(
        X,
        batch,
        torch.Generator().manual_seed(0),
        block_rows=30,
        buffer_blocks=3,
        reference=None,
        skip=skip,
    )
    epochs = _batches(source, 2)
    orders = []
    for batches in epochs:
        assert len(batches) == source.steps_per_epoch == (n - len(skip)) // batch
        rows = torch.cat(batches)
        assert rows.dtype == torch.float32 and bool((rows == rows[:, :1]).all())
        ids = rows[:, 0].long().numpy()
        assert len(np.unique(ids)) == len(ids)  # no row twice
        assert not np.isin(ids, skip).any()
        assert n - len(skip) - len(ids) < batch  # only the ragged last batch is missing
        orders.append(ids)
    assert not np.array_equal(orders[0][:100], orders[1][:100])  # reshuffled each epoch
    # Rows are shuffled across the blocks of a buffer, not only block by block.
    first = orders[0][:batch] // 30
    assert len(np.unique(first)) > 1


def test_leaving_an_epoch_early_stops_the_reader_thread():
    import threading

    X = np.zeros((500, 4), dtype=np.uint8)
    source = StreamedBatches(
        X, 10, torch.Generator(), block_rows=20, buffer_blocks=2, reference=None
    )
    before = threading.active_count()
    for i, _ in enumerate(source.epoch()):
        if i == 3:
            break
    assert threading.active_count() == before


# ------------------------------------------------------------ streamed fit
def test_streamed_fit_with_one_block_is_bit_equal_to_the_in_memory_fit(binary):
    # The defined case: one block (and a subsample that is all rows) makes the
    # batch order, settings, PCA start and calibration those of memory.
    ref = _fit(binary)
    est = _fit(binary, budget=SMALL_BUDGET, block_rows=len(binary))
    np.testing.assert_array_equal(est.history_["loss"], ref.history_["loss"])
    np.testing.assert_array_equal(est.transform(binary), ref.transform(binary))


def test_streamed_gaussian_fit_with_one_block_is_bit_equal():
    X = np.random.RandomState(1).randn(400, 20)
    ref = _fit(X)
    est = _fit(X, budget=SMALL_BUDGET, block_rows=len(X))
    np.testing.assert_array_equal(est.history_["loss"], ref.history_["loss"])
    np.testing.assert_array_equal(est.transform(X), ref.transform(X))
    # Calibrated on the same rows, in chunks that follow the budget (noise per chunk).
    assert est.noise_variance_ == pytest.approx(ref.noise_variance_, rel=0.05)


def test_memmap_fit_streams_blocks_and_trains_as_well_as_in_memory(binary, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, binary)
    X = np.load(path, mmap_mode="r")
    est = _fit(X, budget=SMALL_BUDGET)
    ref = _fit(binary)
    assert est.likelihood_ == "bernoulli" and est.n_features_in_ == 20
    assert est.n_iter_ == 3 and len(est.history_["loss"]) == 3 * (600 // 32)
    # Another batch order (block shuffle): not bit-equal, as good.
    assert not np.array_equal(est.history_["loss"], ref.history_["loss"])
    assert abs(est.score(binary) - ref.score(binary)) < 0.5
    assert np.array_equal(np.load(path), binary)  # read only
    # Deterministic: the reader thread draws no randomness of its own.
    again = _fit(X, budget=SMALL_BUDGET)
    np.testing.assert_array_equal(again.history_["loss"], est.history_["loss"])


def test_streamed_early_stopping_holds_out_rows_and_keeps_the_best_epoch(binary):
    est = _fit(binary, budget=SMALL_BUDGET, early_stopping=True, n_iter_no_change=1, max_iter=4)
    scores = est.validation_scores_
    assert 1 <= len(scores) <= 4
    assert est.best_validation_score_ == max(scores)
    # 60 rows held out: the epochs see the other 540.
    assert len(est.history_["loss"]) == len(scores) * (540 // 32)


def test_streamed_fit_refuses_non_finite_data_and_keeps_the_fitted_model(binary):
    est = _fit(binary)
    Z = est.transform(binary)
    bad = binary.astype(np.float32)
    bad[457, 3] = np.nan
    with config_context(working_memory=SMALL_BUDGET):
        with pytest.raises(ValueError, match="NaN"):
            est.fit(bad)
        with pytest.raises(ValueError, match="needs data in"):
            VHPEstimator(likelihood="bernoulli", **KW).fit(np.full_like(bad, 2.0))
    np.testing.assert_array_equal(est.transform(binary), Z)


def test_streamed_warm_start_checks_the_feature_count(binary):
    est = _fit(binary, budget=SMALL_BUDGET).set_params(warm_start=True)
    with config_context(working_memory=SMALL_BUDGET):
        with pytest.raises(ValueError, match="features"):
            est.fit(np.zeros((600, 21), dtype=np.uint8))
        est.fit(binary)
    assert est.n_iter_ == 6


# ------------------------------------------------------------ partial_fit
@pytest.mark.parametrize("prior", ["vhp", "vamp"])  # learned pseudo-inputs carry over too
def test_partial_fit_equals_one_epoch_fits_with_warm_start(binary, prior):
    a, b = binary[:300], binary[300:]
    inc = VHPEstimator(**KW, prior=prior, n_pseudo_inputs=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # partial_fit does not warn
        inc.partial_fit(a).partial_fit(b)
    ref = _fit(a, max_iter=1, prior=prior, n_pseudo_inputs=10).set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(b)
    np.testing.assert_array_equal(inc.history_["loss"], ref.history_["loss"])
    np.testing.assert_array_equal(inc.transform(binary), ref.transform(binary))
    assert inc.n_iter_ == 2
    assert list(np.unique(inc.history_["epoch"])) == [1, 2]


def test_partial_fit_carries_the_schedule_and_appends_history(binary):
    est = VHPEstimator(**KW)
    est.partial_fit(binary[:320])
    h1 = {k: v.copy() for k, v in est.history_.items()}
    beta, c_hat = est.schedule_.beta, est.schedule_.constraint_avg
    est.partial_fit(binary[320:])
    assert len(est.history_["loss"]) == 320 // 32 + 280 // 32
    for key in h1:  # the first call's records are kept as they were
        np.testing.assert_array_equal(est.history_[key][: len(h1[key])], h1[key])
    # The second call's first iteration starts from the first call's β and Ĉ_t.
    assert est.history_["beta"][len(h1["beta"])] == beta
    alpha = est.alpha
    step = est.history_["constraint"][len(h1["beta"])]
    assert est.history_["constraint_avg"][len(h1["beta"])] == pytest.approx(
        alpha * c_hat + (1 - alpha) * step
    )


def test_partial_fit_refuses_another_feature_count_and_early_stopping(binary):
    est = VHPEstimator(**KW).partial_fit(binary[:100])
    Z = est.transform(binary)
    with pytest.raises(ValueError, match="X has 19 features"):
        est.partial_fit(binary[:100, :19])
    with pytest.raises(ValueError, match="early_stopping"):
        est.set_params(early_stopping=True).partial_fit(binary[:100])
    with pytest.raises(ValueError, match="warm_start=True continues"):
        est.set_params(early_stopping=False, n_components=3).partial_fit(binary[:100])
    np.testing.assert_array_equal(est.transform(binary), Z)
    assert est.n_iter_ == 1


def test_partial_fit_streams_a_chunk_larger_than_the_budget(binary):
    est = VHPEstimator(**KW)
    with config_context(working_memory=SMALL_BUDGET):
        est.partial_fit(binary).partial_fit(binary)
    assert est.n_iter_ == 2 and len(est.history_["loss"]) == 2 * (600 // 32)


# ------------------------------------------- rollback and Ctrl-C while streaming
def _misbehave_on_call(monkeypatch, call, action):
    from sklearn_vhp._torch.vae import VAE

    original, calls = VAE.training_loss, {"n": 0}

    def patched(self, x, **kw):
        calls["n"] += 1
        out = original(self, x, **kw)
        return action(out) if calls["n"] == call else out

    monkeypatch.setattr(VAE, "training_loss", patched)


def test_streamed_divergence_rolls_the_epoch_back(binary, monkeypatch):
    import threading

    from sklearn_vhp import DivergenceWarning

    def nan_loss(out):
        return (out[0] * torch.nan, *out[1:])

    per_epoch, threads = 600 // 32, threading.active_count()
    _misbehave_on_call(monkeypatch, per_epoch + 4, nan_loss)  # in epoch 2
    with pytest.warns(DivergenceWarning):
        est = _fit(binary, budget=SMALL_BUDGET)
    assert [d["epoch"] for d in est.divergences_] == [2]
    assert est.n_iter_ == 3 and len(est.history_["loss"]) == 3 * per_epoch
    assert np.isfinite(est.history_["loss"]).all()
    assert threading.active_count() == threads  # the abandoned epoch's reader stopped


def test_streamed_ctrl_c_keeps_the_last_completed_epoch(binary, monkeypatch):
    import threading

    def interrupt(out):
        raise KeyboardInterrupt

    per_epoch, threads = 600 // 32, threading.active_count()
    _misbehave_on_call(monkeypatch, 2 * per_epoch + 3, interrupt)  # in epoch 3
    with pytest.warns(UserWarning, match="interrupted"):
        est = _fit(binary, budget=SMALL_BUDGET)
    assert est.n_iter_ == 2 and len(est.history_["loss"]) == 2 * per_epoch
    assert threading.active_count() == threads
