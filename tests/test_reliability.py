"""Reliability: bad input, divergence, interruption, persistence, early stopping."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_vhp import VHPEstimator, _schedules
from sklearn_vhp._estimator import DivergenceWarning
from sklearn_vhp._torch.vae import VAE

TINY = dict(
    hidden_layer_sizes=(16,),
    # The training engine's own guarantees, measured on the scalar variance
    # (mixture noise adds its EM refits: see test_mixture_noise_* below).
    decoder_variance="scalar",
    max_iter=3,
    n_importance=4,
    n_eval_samples=16,
    batch_size=32,
    random_state=0,
)
N_ROWS = 200  # 6 iterations of 32 rows per epoch (the ragged batch is dropped)
PER_EPOCH = N_ROWS // 32


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return rng.rand(N_ROWS, 12)


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VHPEstimator(**TINY).fit(X)


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _params(est):
    return {k: v.detach().clone() for k, v in est.module_.state_dict().items()}


def _assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def _all_finite(est):
    return all(torch.isfinite(p).all() for p in est.module_.parameters())


# --------------------------------------------------------------- bad input
def _nan(X):
    X = X.copy()
    X[3, 2] = np.nan
    return X


def _inf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


FIT_CASES = {
    "nan": (lambda X: _nan(X), ValueError, "NaN"),
    "inf": (lambda X: _inf(X), ValueError, "infinity"),
    "1d": (lambda X: X[:, 0], ValueError, "Expected 2D array"),
    "3d": (lambda X: X.reshape(N_ROWS, 3, 4), ValueError, "dim 3"),
    "zero_rows": (lambda X: X[:0], ValueError, "0 sample"),
    "zero_features": (lambda X: X[:, :0], ValueError, "0 feature"),
    "strings": (lambda X: np.array([["a", "b"], ["c", "d"]]), ValueError, "convert string"),
    "complex": (lambda X: X + 1j, ValueError, "Complex data not supported"),
    "sparse": (lambda X: sp.csr_matrix(X), TypeError, "Sparse data was passed"),
    "beyond_float32": (lambda X: X * 1e300, ValueError, "float32"),
}


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_rejects_bad_input(X, case):
    make, exc, match = FIT_CASES[case]
    with pytest.raises(exc, match=match):
        VHPEstimator(**TINY).fit(make(X))


PREDICT_CASES = {
    "nan": (lambda X: _nan(X), ValueError, "NaN"),
    "inf": (lambda X: _inf(X), ValueError, "infinity"),
    "1d": (lambda X: X[0], ValueError, "Expected 2D array"),
    "zero_rows": (lambda X: X[:0], ValueError, "0 sample"),
    "strings": (lambda X: np.full((2, 12), "x"), ValueError, "convert string"),
    "wrong_width": (lambda X: X[:, :5], ValueError, "X has 5 features, but VHPEstimator"),
    "sparse": (lambda X: sp.csr_matrix(X), TypeError, "Sparse data was passed"),
}


@pytest.mark.parametrize("method", ["transform", "score_samples", "score", "active_units"])
@pytest.mark.parametrize("case", PREDICT_CASES)
def test_predict_methods_reject_bad_input(fitted, X, method, case):
    make, exc, match = PREDICT_CASES[case]
    with pytest.raises(exc, match=match):
        getattr(fitted, method)(make(X[:10]))


@pytest.mark.parametrize(
    "Z, exc, match",
    [
        (np.zeros((3, 3)), ValueError, "n_components=2"),
        (np.zeros(2), ValueError, "Expected 2D array"),
        (np.array([[0.0, np.nan]]), ValueError, "NaN"),
        (np.zeros((0, 2)), ValueError, "0 sample"),
    ],
)
def test_inverse_transform_rejects_bad_codes(fitted, Z, exc, match):
    with pytest.raises(exc, match=match):
        fitted.inverse_transform(Z)


@pytest.mark.parametrize("method", ["sample", "sample_latent"])
@pytest.mark.parametrize("n_samples", [-1, 0, 2.5, "3"])
def test_sample_rejects_bad_n_samples(fitted, method, n_samples):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        getattr(fitted, method)(n_samples)


@pytest.mark.parametrize(
    "param, value",
    [
        ("prior", "gaussian_mixture"),
        ("schedule", "cosine"),
        ("likelihood", "poisson"),
        ("architecture", "transformer"),
        ("objective", "vimco"),
        ("n_components", 0),
        ("n_components", -2),
        ("n_importance", 0),
        ("kappa", 0.0),
        ("kappa", -0.1),
        ("batch_size", 0),
        ("max_iter", 0),
        ("learning_rate", 0.0),
        ("device", 3),
        ("early_stopping", "yes"),
        ("validation_fraction", 1.0),
        ("n_iter_no_change", 0),
    ],
)
def test_invalid_parameters(X, param, value):
    with pytest.raises(InvalidParameterError, match=f"The '{param}' parameter of VHPEstimator"):
        VHPEstimator(**{**TINY, param: value}).fit(X)


@pytest.mark.parametrize(
    "device, match",
    [
        ("tpu", "device='tpu' is not a valid device"),
        ("not a device", "is not a valid device"),
        ("meta", "is not supported"),
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA is not available"),
    ],
)
def test_unknown_or_unavailable_device(X, monkeypatch, device, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=match):
        VHPEstimator(**{**TINY, "device": device}).fit(X)


def test_bernoulli_rejects_data_outside_unit_interval(X):
    with pytest.raises(ValueError, match=r"likelihood='bernoulli' needs data in \[0, 1\]"):
        VHPEstimator(likelihood="bernoulli", **TINY).fit(X * 3 - 1)


def test_warm_start_checks_bernoulli_range_of_new_data(quiet):
    Xb = (np.random.RandomState(0).rand(64, 6) > 0.5).astype(float)
    est = VHPEstimator(warm_start=True, **TINY).fit(Xb)
    assert est.likelihood_ == "bernoulli"
    with pytest.raises(ValueError, match="needs data in"):
        est.fit(Xb * 2)


@pytest.mark.parametrize(
    "schedule, beta_init, match",
    [("rewo", 0.0, "0 < beta_init <= 1"), ("rewo", 2.0, "0 < beta_init <= 1"),
     ("geco", 0.0, "beta_init > 0")],
)  # fmt: skip
def test_beta_init_outside_schedule_range(X, schedule, beta_init, match):
    with pytest.raises(ValueError, match=match):
        VHPEstimator(schedule=schedule, beta_init=beta_init, **TINY).fit(X)


@pytest.mark.parametrize("hidden", [(16, 0), (-3,), (16.5,), ("a",)])
def test_bad_hidden_layer_sizes(X, hidden):
    with pytest.raises(ValueError, match="hidden_layer_sizes must be a sequence of positive"):
        VHPEstimator(**{**TINY, "hidden_layer_sizes": hidden}).fit(X)


@pytest.mark.skipif(
    "conv" not in VHPEstimator._parameter_constraints["architecture"][0].options,
    reason="convolutional networks not available",
)
def test_conv_architecture_needs_image_shape(X):
    with pytest.raises(ValueError, match="image_shape"):
        VHPEstimator(**{**TINY, "architecture": "conv"}).fit(X)


@pytest.mark.parametrize(
    "method, args",
    [
        ("transform", "X"),
        ("inverse_transform", "Z"),
        ("score_samples", "X"),
        ("score", "X"),
        ("sample", None),
        ("sample_latent", None),
        ("active_units", "X"),
        ("get_feature_names_out", None),
    ],
)
def test_not_fitted(X, method, args):
    est = VHPEstimator(**TINY)
    call_args = {"X": (X,), "Z": (np.zeros((2, 2)),), None: ()}[args]
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(est, method)(*call_args)


def test_early_stopping_validation_set_too_small():
    with pytest.raises(ValueError, match="validation set for early stopping is too small"):
        VHPEstimator(early_stopping=True, validation_fraction=0.1, **TINY).fit(np.eye(5))


# -------------------------------------------------------------- divergence
def _patch_training_loss(monkeypatch, action, on_call):
    """Make the N-th call of VAE.training_loss misbehave (``action``)."""
    original = VAE.training_loss
    calls = {"n": 0}

    def patched(self, x, **kw):
        calls["n"] += 1
        out = original(self, x, **kw)
        return action(self, calls["n"], out) if calls["n"] in on_call else out

    monkeypatch.setattr(VAE, "training_loss", patched)
    return calls


def _nan_loss(self, n, out):
    loss, nll, kl, sq_err = out
    return loss * torch.nan, nll, kl, sq_err


def test_non_finite_loss_restores_last_epoch_and_halves_step(X, monkeypatch, quiet):
    seen = {}

    def action(self, n, out):
        if n == PER_EPOCH + 1:  # first iteration of epoch 2: the state after epoch 1
            seen["after_epoch_1"] = {k: v.detach().clone() for k, v in self.state_dict().items()}
            return out
        if n == PER_EPOCH + 4:  # fourth iteration of epoch 2: the loss is NaN
            return _nan_loss(self, n, out)
        # The first iteration after the rollback starts from the restored state.
        _assert_same_params(
            {k: v.detach() for k, v in self.state_dict().items()}, seen["after_epoch_1"]
        )
        return out

    _patch_training_loss(monkeypatch, action, {PER_EPOCH + 1, PER_EPOCH + 4, PER_EPOCH + 5})
    est = VHPEstimator(**TINY)
    with pytest.warns(DivergenceWarning, match="epoch 2, iteration 4: the loss is not finite"):
        est.fit(X)
    assert issubclass(DivergenceWarning, RuntimeWarning)
    assert est.n_iter_ == 3 and est.learning_rate_ == pytest.approx(5e-4)
    assert est.divergences_ == [
        {"epoch": 2, "iteration": 4, "loss": pytest.approx(np.nan, nan_ok=True), "lr": 5e-4}
    ]
    # Only completed epochs are in the history, the rolled-back one is not.
    h = est.history_
    np.testing.assert_array_equal(h["epoch"], np.repeat([1, 2, 3], PER_EPOCH))
    np.testing.assert_array_equal(h["lr"], np.repeat([1e-3, 5e-4, 5e-4], PER_EPOCH))
    assert all(np.isfinite(h[k]).all() for k in ("loss", "constraint", "constraint_avg", "beta"))
    assert _all_finite(est) and np.isfinite(est.transform(X)).all()
    # The halved step size survives pickling and a warm start.
    loaded = pickle.loads(pickle.dumps(est)).set_params(warm_start=True, max_iter=1)
    loaded.fit(X)
    assert loaded.learning_rate_ == pytest.approx(5e-4) and loaded.n_iter_ == 4
    np.testing.assert_array_equal(loaded.history_["lr"][-PER_EPOCH:], 5e-4)
    # ...unless the user sets a new learning_rate.
    loaded.set_params(learning_rate=2e-3).fit(X)
    assert loaded.learning_rate_ == 2e-3 and loaded.history_["lr"][-1] == 2e-3


def test_non_finite_parameters_with_finite_loss_are_rolled_back(X, monkeypatch, quiet):
    class InfiniteGradient(torch.autograd.Function):
        """Identity forward, infinite gradient: a finite loss that overflows."""

        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * torch.inf

    def poison(self, n, out):
        loss, *rest = out
        return (InfiniteGradient.apply(loss), *rest)

    _patch_training_loss(monkeypatch, poison, {PER_EPOCH})  # last iteration of epoch 1
    est = VHPEstimator(**TINY)
    with pytest.warns(DivergenceWarning, match="parameters or Adam's moments became non-finite"):
        est.fit(X)
    assert est.n_iter_ == 3 and len(est.divergences_) == 1
    assert est.divergences_[0]["epoch"] == 1 and np.isnan(est.divergences_[0]["loss"])
    assert _all_finite(est)


# ------------------------------------------------------------ host syncs
_SYNCING = ("tolist", "item", "__bool__", "__float__", "__int__", "__index__", "numpy")


def _count_host_syncs(monkeypatch):
    """Count the tensor → Python conversions (each one a device sync on a GPU)."""
    counts = dict.fromkeys(_SYNCING, 0)
    for name in _SYNCING:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kw):
            counts[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


@pytest.mark.parametrize("sync_every", [1, 4, 100])
def test_training_syncs_with_the_host_once_per_sync_interval(X, monkeypatch, quiet, sync_every):
    """The inner loop converts tensors to Python only when it flushes its statistics.

    On a GPU each conversion waits for the queued kernels; there ``fit``
    flushes every 32 iterations (``_HOST_SYNC_EVERY``), on a CPU every one.
    Besides the flushes, each epoch checks the weights once, and the fit
    reads the calibrated noise variance once at its end.
    """
    est = VHPEstimator(**TINY)
    est._sync_every = sync_every
    est.fit(X[:5])  # the one-off start-up work (PCA, module) is not counted below
    est.set_params(warm_start=True)
    counts = _count_host_syncs(monkeypatch)
    est.fit(X)
    flushes = -(-PER_EPOCH // sync_every)  # per epoch
    n_epochs = TINY["max_iter"]
    assert counts["tolist"] == n_epochs * flushes
    assert counts["__bool__"] == n_epochs  # _state_is_finite
    assert counts["__float__"] == 1  # noise_variance="auto": one calibration a fit
    # On a CPU the batches are gathered from the numpy rows: the epoch's
    # permutation becomes numpy indices once (no device to wait for).
    host = n_epochs if est.device_.type == "cpu" else 0
    assert counts["numpy"] == host
    assert sum(counts.values()) == n_epochs * (flushes + 1) + 1 + host


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_step_has_no_hidden_syncs(X, monkeypatch, quiet):
    """Forward pass and Adam step on CUDA queue kernels without waiting on them.

    Syncs that do not go through Python (``nonzero``, boolean masks, a
    device-to-host copy) are invisible to the counting test above; CUDA's
    sync debug mode raises on them.
    """

    def strict(function):
        def wrapped(*args, **kw):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return function(*args, **kw)
            finally:
                torch.cuda.set_sync_debug_mode(0)

        return wrapped

    for prior in ("vhp", "standard", "vamp"):
        est = VHPEstimator(device="cuda", prior=prior, **TINY).fit(X)
        with monkeypatch.context() as m:
            m.setattr(VAE, "training_loss", strict(VAE.training_loss))
            adam = type(est._optimizer)
            m.setattr(adam, "step", strict(adam.step))
            est.set_params(warm_start=True).fit(X)
        assert est.n_iter_ == 2 * TINY["max_iter"]


def test_sync_interval_changes_nothing_without_beta_feedback(X, quiet):
    """With a constant β the statistics' timing cannot change the model."""
    fits = []
    for sync_every in (1, 4, 100):
        est = VHPEstimator(schedule="constant", **TINY)
        est._sync_every = sync_every
        fits.append(est.fit(X))
    for other in fits[1:]:
        _assert_same_params(_params(fits[0]), _params(other))
        for key, values in fits[0].history_.items():
            np.testing.assert_array_equal(values, other.history_[key])


def test_sync_interval_delays_the_beta_update_by_at_most_the_interval(X, quiet):
    """GECO's β is stepped from every iteration's constraint, only later."""
    est = VHPEstimator(schedule="geco", **{**TINY, "max_iter": 2})
    est._sync_every = 4
    est.fit(X)
    beta, c_avg = est.history_["beta"], est.history_["constraint_avg"]
    ref = _schedules.GECOSchedule(est.kappa_)
    used = []
    for t, c in enumerate(est.history_["constraint"]):
        if (t % PER_EPOCH) % 4 == 0:  # flushes: every 4 iterations and at epoch ends
            current = ref.beta
        used.append(current)
        ref.step(c)
        assert ref.constraint_avg == pytest.approx(c_avg[t])
    np.testing.assert_allclose(beta, used)
    assert len(np.unique(beta)) == 4  # β changed at each of the 4 flushes' reads


def test_non_finite_loss_found_at_a_later_sync_still_rolls_back(X, monkeypatch, quiet):
    """With deferred checks the NaN step is taken, then undone with the epoch."""
    _patch_training_loss(monkeypatch, _nan_loss, {PER_EPOCH + 2})
    est = VHPEstimator(**TINY)
    est._sync_every = 100  # checked at the end of the epoch
    with pytest.warns(DivergenceWarning, match="epoch 2, iteration 2: the loss is not finite"):
        est.fit(X)
    assert est.n_iter_ == 3 and est.learning_rate_ == pytest.approx(5e-4)
    np.testing.assert_array_equal(est.history_["epoch"], np.repeat([1, 2, 3], PER_EPOCH))
    assert all(np.isfinite(est.history_[k]).all() for k in ("loss", "constraint", "beta"))
    assert _all_finite(est)


def test_real_divergence_gives_up_with_finite_weights(X):
    """A hopeless step size: 3 recoveries, then an error naming cause and fix."""
    est = VHPEstimator(**{**TINY, "learning_rate": 1e10})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(FloatingPointError, match="diverged.*Lower learning_rate, scale the"):
            est.fit(X)
    assert sum(issubclass(w.category, DivergenceWarning) for w in record) == 3
    assert [d["lr"] for d in est.divergences_] == [5e9, 2.5e9, 1.25e9]
    # Never left with NaN weights: the model is the last finite state.
    assert est.n_iter_ == 0 and _all_finite(est)
    assert np.isfinite(est.transform(X)).all()


def test_data_scaled_by_1e6_with_gaussian_likelihood(X, quiet):
    est = VHPEstimator(likelihood="gaussian", **TINY).fit(X * 1e6)
    assert _all_finite(est) and np.isfinite(est.history_["loss"]).all()
    assert np.isfinite(est.score_samples(X[:5] * 1e6)).all()


# ------------------------------------------------------------ interruption
def test_keyboard_interrupt_keeps_last_epoch_and_warm_start_resumes(X, monkeypatch, quiet):
    seen = {}

    def interrupt(self, n, out):
        if n == PER_EPOCH + 1:
            seen["params"] = {k: v.detach().clone() for k, v in self.state_dict().items()}
            seen["schedule"] = dict(vars(est.schedule_))
            return out
        raise KeyboardInterrupt

    _patch_training_loss(monkeypatch, interrupt, {PER_EPOCH + 1, PER_EPOCH + 3})
    est = VHPEstimator(warm_start=True, **TINY)
    with pytest.warns(UserWarning, match="interrupted.*after epoch 1, the last completed"):
        assert est.fit(X) is est
    assert est.n_iter_ == 1 and len(est.history_["loss"]) == PER_EPOCH
    assert set(est.history_["epoch"]) == {1}
    # The weights of epoch 1; the likelihood's variance is then calibrated.
    params = _params(est)
    assert params.pop("likelihood.variance") == pytest.approx(est.noise_variance_)
    seen["params"].pop("likelihood.variance")
    _assert_same_params(params, seen["params"])
    assert vars(est.schedule_) == seen["schedule"]
    assert est.beta_ == seen["schedule"]["beta"]
    assert not est.module_.training
    assert np.isfinite(est.transform(X)).all() and np.isfinite(est.score_samples(X[:5])).all()
    state = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(state.transform(X), est.transform(X))

    monkeypatch.undo()
    c_hat, alpha = est.schedule_.constraint_avg, est.schedule_.alpha
    est.set_params(max_iter=2).fit(X)  # warm start: continues
    h = est.history_
    assert est.n_iter_ == 3
    np.testing.assert_array_equal(h["epoch"], np.repeat([1, 2, 3], PER_EPOCH))
    # Ĉ_t carried on from where the interrupted fit stopped.
    assert h["constraint_avg"][PER_EPOCH] == pytest.approx(
        (1 - alpha) * h["constraint"][PER_EPOCH] + alpha * c_hat
    )


def test_keyboard_interrupt_in_first_epoch_leaves_initial_model(X, monkeypatch, quiet):
    def interrupt(self, n, out):
        raise KeyboardInterrupt

    _patch_training_loss(monkeypatch, interrupt, {2})
    with pytest.warns(UserWarning, match="after epoch 0"):
        est = VHPEstimator(**TINY).fit(X)
    assert est.n_iter_ == 0 and len(est.history_["loss"]) == 0
    assert est.transform(X).shape == (N_ROWS, 2) and np.isfinite(est.sample(3)).all()


# ------------------------------------------------------------- persistence
def test_pickle_joblib_identical_outputs(fitted, X, tmp_path):
    for loaded in (
        pickle.loads(pickle.dumps(fitted)),
        joblib.load(joblib.dump(fitted, tmp_path / "m.joblib")[0]),
    ):
        np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
        np.testing.assert_array_equal(loaded.score_samples(X[:8]), fitted.score_samples(X[:8]))
        np.testing.assert_array_equal(loaded.sample(4), fitted.sample(4))
        np.testing.assert_array_equal(
            loaded.inverse_transform(np.ones((2, 2))), fitted.inverse_transform(np.ones((2, 2)))
        )
        for k in fitted.history_:
            np.testing.assert_array_equal(loaded.history_[k], fitted.history_[k])


def test_model_fitted_on_cuda_loads_on_cpu_only_machine(fitted, X, monkeypatch):
    """Simulated: the state says the model lives on cuda:0, and CUDA is absent.

    The weights are stored as numpy arrays (no torch storage, hence no
    device tags and no torch pickle to load): only the recorded device
    decides where the model goes.
    """
    cuda_copy = pickle.loads(pickle.dumps(fitted))
    cuda_copy.device_ = torch.device("cuda:0")
    blob = pickle.dumps(cuda_copy)
    state = cuda_copy.__getstate__()
    assert state["device_"] == "cuda:0"
    assert all(isinstance(v, np.ndarray) for v in state["module_"].values())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k))
    with pytest.warns(UserWarning, match="fitted on cuda:0 but CUDA is not available"):
        loaded = pickle.loads(blob)
    assert not loads  # no torch pickle is read
    assert loaded.device_ == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X[:8]), fitted.score_samples(X[:8]))
    # It trains on, on the CPU.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loaded.set_params(warm_start=True, max_iter=1).fit(X)
    assert loaded.n_iter_ == fitted.n_iter_ + 1


# ------------------------------------------------------------ determinism
def test_determinism_with_early_stopping(X, quiet):
    kw = dict(TINY, early_stopping=True, validation_fraction=0.2)
    a, b = VHPEstimator(**kw).fit(X), VHPEstimator(**kw).fit(X)
    c = VHPEstimator(**{**kw, "random_state": 1}).fit(X)
    assert a.validation_scores_ == b.validation_scores_
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.score_samples(X[:5]), b.score_samples(X[:5]))
    np.testing.assert_array_equal(a.sample(3), b.sample(3))
    assert a.validation_scores_ != c.validation_scores_


# ---------------------------------------------------------- early stopping
@pytest.fixture(scope="module")
def overfit_data():
    # Few rows of noise: the validation ELBO peaks after a few epochs.
    return np.random.RandomState(0).randn(60, 10)


ES = dict(
    # A fixed variance: noise_variance="auto" recalibrates the kept model's
    # variance after the best epoch is chosen, so its validation ELBO moves.
    noise_variance=0.01,
    prior="standard",
    schedule="constant",
    hidden_layer_sizes=(64,),
    learning_rate=3e-2,
    batch_size=16,
    max_iter=100,
    early_stopping=True,
    validation_fraction=0.3,
    n_iter_no_change=3,
    random_state=0,
)


def test_early_stopping_stops_and_restores_best_weights(overfit_data):
    X = overfit_data
    est = VHPEstimator(**ES).fit(X)
    scores = est.validation_scores_
    assert isinstance(scores, list) and len(scores) == est.n_iter_ < 100
    best = int(np.argmax(scores))
    # Stops after n_iter_no_change + 1 epochs without improvement (as MLP).
    assert est.n_iter_ == best + 1 + ES["n_iter_no_change"] + 1
    assert est.best_validation_score_ == max(scores) > scores[-1]
    # The weights kept are the best epoch's: recomputing its score agrees.
    recomputed = est._validation_score(X)  # test hook: the score on X's validation rows
    assert recomputed == pytest.approx(est.best_validation_score_, rel=1e-6)
    # The training rows exclude the validation rows.
    assert len(est.history_["loss"]) == est.n_iter_ * (42 // 16)


def test_early_stopping_warm_start_keeps_split_and_best(overfit_data):
    X = overfit_data
    est = VHPEstimator(**{**ES, "warm_start": True, "max_iter": 2}).fit(X)
    first = list(est.validation_scores_)
    est.fit(X)
    assert est.n_iter_ == 4
    assert est.validation_scores_[:2] == first and len(est.validation_scores_) == 4
    # The warm fit's start counts as a candidate: the best never gets worse.
    assert est.best_validation_score_ >= max(first)
    # Scored on the same validation rows as the first fit (the split is kept).
    recomputed = est._validation_score(X)
    assert recomputed == pytest.approx(est.best_validation_score_, rel=1e-6)


def test_no_early_stopping_attributes(fitted):
    assert fitted.validation_scores_ is None and fitted.best_validation_score_ is None
    assert fitted.divergences_ == [] and fitted.learning_rate_ == 1e-3
