"""Defaults that follow the data (κ, the noise variance and the epoch budget)."""

import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import VHPEstimator


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data / 16.0
    return X[:900], X[900:1300]


def _fit_quietly(est, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X)
    return est, [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_auto_kappa_trains_the_prior_where_a_fixed_one_is_out_of_reach(digits):
    # A 2-D code reconstructs digits to an RMS error far above κ₀ = 0.05.
    X, _ = digits
    kw = dict(n_components=2, hidden_layer_sizes=(64,), random_state=0)
    fixed, warned = _fit_quietly(VHPEstimator(kappa=0.05, **kw), X)
    assert warned and set(fixed.history_["phase"]) == {"initial"} and fixed.kappa_ == 0.05

    auto, warned = _fit_quietly(VHPEstimator(**kw), X)
    assert not warned
    assert auto.schedule_.phase == "main" and auto.beta_ == pytest.approx(1.0, abs=1e-3)
    # κ was set where the reconstruction error levelled off: above κ₀, and
    # met at the end of training.
    assert auto.kappa_ > 0.05
    assert auto.history_["constraint_avg"][-1] <= auto.kappa_**2


def test_auto_noise_variance_is_the_maximum_likelihood_variance(digits):
    X, X_test = digits
    kw = dict(n_components=2, hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    kw["decoder_variance"] = "scalar"  # (the calibrated scalar variance; "full": see its tests)
    fixed = VHPEstimator(noise_variance=0.01, **kw).fit(X)  # 0.01: the training variance
    auto = VHPEstimator(**kw).fit(X)
    assert fixed.noise_variance_ == 0.01
    # The same networks: calibration changes the variance only.
    np.testing.assert_array_equal(auto.transform(X_test), fixed.transform(X_test))
    # The ML variance is the decoder's squared error under q(z|x): at least
    # that of the posterior means' reconstructions, and better than 0.01.
    mse = np.mean((X - auto.inverse_transform(auto.transform(X))) ** 2)
    assert mse <= auto.noise_variance_ < 0.1
    assert auto.score(X) > fixed.score(X)
    assert auto.score(X_test) > fixed.score(X_test)
    # A calibrated density: above probabilistic PCA of the same width.
    assert auto.score(X_test) > PCA(n_components=2).fit(X).score(X_test)


@pytest.mark.parametrize(
    "n_samples, batch_size, epochs",
    [(300, 10, math.ceil(4000 / 30)), (100, 100, 200), (1700, 10, 25)],
)
def test_auto_epochs_give_enough_iterations(n_samples, batch_size, epochs):
    X = np.random.RandomState(0).rand(n_samples, 3)
    est = VHPEstimator(
        hidden_layer_sizes=(4,),
        n_importance=1,
        batch_size=batch_size,
        schedule="constant",
        random_state=0,
        device="cpu",
    )
    est.fit(X)
    assert est.n_iter_ == epochs
    assert len(est.history_["loss"]) == epochs * (n_samples // batch_size)


@pytest.mark.parametrize(
    "n_samples, n_features, batch_size",
    [(2000, 5, 64), (9000, 5, 140), (40000, 5, 256), (9000, 129, 64)],
)
def test_auto_batch_size_is_larger_on_many_rows_of_few_features(n_samples, n_features, batch_size):
    X = np.random.RandomState(0).rand(n_samples, n_features)
    est = VHPEstimator(hidden_layer_sizes=(4,), n_importance=1, max_iter=1, random_state=0)
    _fit_quietly(est, X)
    assert est.batch_size_ == batch_size
    assert len(est.history_["loss"]) == n_samples // batch_size
    # An explicit batch size is used as given.
    _fit_quietly(est.set_params(batch_size=100), X[:1000])
    assert est.batch_size_ == 100 and len(est.history_["loss"]) == 10


def test_auto_batch_size_keeps_the_rows_seen_by_the_auto_epochs():
    # 6,400 rows of 3 features: batches of 100, and the 4,000 iterations of
    # 64 rows (256,000 rows) become 2,560 of 100: 40 epochs (an explicit
    # batch_size=100 keeps 4,000 iterations: 63 epochs).
    X = np.random.RandomState(0).rand(6400, 3)
    est = VHPEstimator(hidden_layer_sizes=(4,), n_importance=1, schedule="constant", random_state=0)
    _fit_quietly(est, X)
    assert est.batch_size_ == 100
    assert est.n_iter_ == 40


def test_auto_epochs_decay_the_step_size_over_the_last_third():
    # max_iter="auto" on 128 rows in batches of 64: 200 epochs of 2 iterations.
    X = np.random.RandomState(0).rand(128, 3)
    kw = dict(hidden_layer_sizes=(4,), n_importance=1, batch_size=64, random_state=0)
    est = VHPEstimator(**kw).fit(X)
    lr = est.history_["lr"]
    assert lr.shape == (400,)
    # Constant for two thirds of the iterations, then down to a tenth.
    np.testing.assert_array_equal(lr[: 400 * 2 // 3], 1e-3)
    assert np.all(np.diff(lr) <= 0) and lr[400 * 2 // 3 + 2] < 1e-3
    assert lr[-1] == pytest.approx(1e-4, rel=0.02)
    assert est.learning_rate_ == 1e-3  # the undecayed step size
    # A warm start decays again over its own budget; an explicit max_iter
    # and partial_fit keep the step size constant.
    est.set_params(warm_start=True).fit(X)
    assert est.history_["lr"][400] == 1e-3 and est.history_["lr"][-1] == pytest.approx(
        1e-4, rel=0.02
    )
    fixed = VHPEstimator(max_iter=200, **kw).fit(X)
    np.testing.assert_array_equal(fixed.history_["lr"], 1e-3)
    np.testing.assert_array_equal(fixed.history_["lr"][: 400 * 2 // 3], lr[: 400 * 2 // 3])
    partial = VHPEstimator(**kw).partial_fit(X).partial_fit(X)
    np.testing.assert_array_equal(partial.history_["lr"], 1e-3)
    # The decay changes only the last third: the same iterations as a
    # constant step size until then.
    np.testing.assert_array_equal(
        fixed.history_["loss"][: 400 * 2 // 3], est.history_["loss"][: 400 * 2 // 3]
    )
