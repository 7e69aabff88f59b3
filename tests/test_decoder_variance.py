"""Learned decoder variances (``decoder_variance``), through the public API."""

import pickle
import warnings

import numpy as np
import pytest
from torch import nn

from sklearn_vhp import VHPEstimator

FAST = dict(
    hidden_layer_sizes=(16,), batch_size=64, random_state=0, device="cpu", n_eval_samples=50
)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short fits end in REWO's initial phase
        return VHPEstimator(**{**FAST, **params}).fit(X)


def _flat_and_textured(n, seed):
    """Rows of 12 pixels: half flat and dark, half textured and bright.

    A flat row is a level in [0.1, 0.3] plus pixel noise 0.005; a textured
    row a level in [0.7, 0.9] plus pixel noise 0.1. The code (the level)
    tells the two kinds apart; the features' noise is the same on average.
    """
    rng = np.random.RandomState(seed)
    textured = rng.rand(n, 1) < 0.5
    level = np.where(textured, 0.7, 0.1) + rng.uniform(0, 0.2, size=(n, 1))
    noise = np.where(textured, 0.1, 0.005)
    return level + noise * rng.randn(n, 12)


def _noisy_features(n, seed):
    """Independent features whose noise levels differ by a factor of 60."""
    rng = np.random.RandomState(seed)
    return 0.5 + np.geomspace(0.005, 0.3, 12) * rng.randn(n, 12)


def test_feature_variance_scores_higher_held_out_than_scalar():
    X, X_test = _noisy_features(600, 0), _noisy_features(300, 1)
    scalar = _fit(X, n_components=2, decoder_variance="scalar", max_iter=60)
    feature = _fit(X, n_components=2, decoder_variance="feature", max_iter=60)
    # Measured (40 epochs): 21.7 against 13.2 nats per row (~13.5 to gain).
    assert feature.score(X_test) > scalar.score(X_test) + 5.0


def test_amortized_variance_scores_higher_held_out_than_scalar_and_feature():
    # Flat and textured rows: only a variance that depends on the code can
    # tell them apart (the code must carry which kind a row is).
    X, X_test = _flat_and_textured(800, 0), _flat_and_textured(300, 1)
    # (β = 1 throughout: the plain ELBO, which these short fits reach.)
    params = dict(n_components=2, max_iter=60, schedule="constant", encoder_variance="amortized")
    scalar = _fit(X, decoder_variance="scalar", **params)
    feature = _fit(X, decoder_variance="feature", **params)
    amortized = _fit(X, decoder_variance="amortized", **params)
    s_scalar, s_feature, s_amortized = (m.score(X_test) for m in (scalar, feature, amortized))
    # Measured: 17.7 against 12.5 (scalar) and 12.7 (feature) nats per row.
    assert s_amortized > s_scalar + 3.0
    assert s_amortized > s_feature + 3.0


@pytest.mark.parametrize("kind", ["feature", "amortized", "full"])
def test_floor_keeps_the_density_finite_on_constant_features(kind):
    rng = np.random.RandomState(0)
    X = rng.rand(200, 6)
    X[:, 2] = 0.25  # constant: reconstructed exactly
    model = _fit(X, n_components=2, decoder_variance=kind, max_iter=20)
    scores = model.score_samples(X[:20])
    assert np.all(np.isfinite(scores))
    # The floor (1e-6 for data in [0, 1]) bounds the constant feature's density
    # by -0.5 log(2π 1e-6) ≈ 6.0 nats; the others are below ~0.
    assert scores.max() < 6.0 + 5 * 2.0
    assert model.noise_variance_ >= 1e-6


@pytest.mark.parametrize("kind", ["auto", "scalar", "feature", "amortized", "full", "full_trained"])
def test_resolved_decoder_variance_is_a_fitted_attribute(kind):
    X = np.random.RandomState(0).rand(100, 5)
    model = _fit(X, decoder_variance=kind, max_iter=2)
    expected = "full" if kind == "auto" else kind
    assert model.decoder_variance_ == expected
    assert model.noise_variance_ > 0
    binary = (X > 0.5).astype(float)
    assert _fit(binary, decoder_variance=kind, max_iter=2).decoder_variance_ is None


def test_auto_is_scalar_when_the_noise_variance_is_fixed():
    X = np.random.RandomState(0).rand(100, 5)
    model = _fit(X, noise_variance=0.02, max_iter=2)
    assert model.decoder_variance_ == "scalar"
    assert model.noise_variance_ == 0.02


def test_auto_is_full_on_few_features_and_scalar_on_many():
    rng = np.random.RandomState(0)
    few = _fit(rng.rand(150, 5), max_iter=2)
    assert few.decoder_variance_ == "full"
    wide = rng.rand(150, 129)
    default, scalar = _fit(wide, max_iter=2), _fit(wide, decoder_variance="scalar", max_iter=2)
    assert default.decoder_variance_ == "scalar"
    # "auto" on wide data is the scalar model: the same fit.
    assert np.array_equal(default.history_["loss"], scalar.history_["loss"])
    assert np.array_equal(default.score_samples(wide[:10]), scalar.score_samples(wide[:10]))


def _correlated_scales(n, seed):
    """Rows of 10 features: a level, plus noise that is strongly correlated
    across the features and whose size differs from row to row (0.01 or 0.1)."""
    rng = np.random.RandomState(seed)
    mix = np.linalg.cholesky(0.9 * np.ones((10, 10)) + 0.1 * np.eye(10))
    size = np.where(rng.rand(n, 1) < 0.5, 0.01, 0.1)
    return 0.5 + 0.2 * rng.rand(n, 1) + size * rng.randn(n, 10) @ mix.T


def test_full_noise_scores_higher_held_out_than_per_feature_variances():
    X, X_test = _correlated_scales(800, 0), _correlated_scales(400, 1)
    params = dict(n_components=2, max_iter=40)
    scores = {
        kind: _fit(X, decoder_variance=kind, **params).score(X_test)
        for kind in ("scalar", "amortized", "full", "full_trained")
    }
    # Measured: full 25.6, full_trained 26.1, amortized 18.2, scalar 17.9 nats per row.
    others = max(scores["scalar"], scores["amortized"])
    assert min(scores["full"], scores["full_trained"]) > others + 5.0, scores


def test_full_noise_density_integrates_to_one():
    # The density of a fitted model, integrated over the plane (a grid that
    # covers the data and its tails), is one: the noise mixture is a
    # normalised density at every code and its importance-sampled estimate
    # is unbiased (measured: 1.006; the scalar noise's 0.996).
    rng = np.random.RandomState(0)
    t = rng.rand(400, 1)
    X = np.hstack([t, t**2]) + 0.03 * rng.randn(400, 2) * np.where(rng.rand(400, 1) < 0.5, 1, 3)
    model = _fit(X, n_components=1, decoder_variance="full", max_iter=30, n_eval_samples=2000)
    grid = np.linspace(-0.6, 1.6, 111)
    xx, yy = np.meshgrid(grid, grid)
    density = np.exp(model.score_samples(np.c_[xx.ravel(), yy.ravel()]))
    total = density.sum() * (grid[1] - grid[0]) ** 2
    assert abs(total - 1.0) < 0.03, total


@pytest.mark.parametrize("kind", ["feature", "amortized", "full"])
def test_pickle_round_trip_keeps_the_learned_variances(kind):
    X = np.random.RandomState(0).rand(120, 5)
    model = _fit(X, decoder_variance=kind, max_iter=3)
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.decoder_variance_ == kind
    assert np.array_equal(loaded.score_samples(X[:10]), model.score_samples(X[:10]))


@pytest.mark.parametrize("kind", ["feature", "amortized", "full"])
def test_partial_fit_and_warm_start_keep_the_choice(kind):
    X = np.random.RandomState(0).rand(120, 5)
    model = VHPEstimator(**FAST, decoder_variance=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X)
        before = model.score_samples(X[:5])
        model.partial_fit(X)
    assert model.decoder_variance_ == kind
    assert not np.array_equal(before, model.score_samples(X[:5]))  # it trained on
    warm = _fit(X, decoder_variance=kind, max_iter=2, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.fit(X)
    assert warm.decoder_variance_ == kind and warm.n_iter_ == 4
    warm.set_params(decoder_variance="scalar")
    with pytest.raises(ValueError, match="decoder_variance changed"):
        warm.fit(X)


def small_decoder(n_components, n_features):  # module level: builders pickle by reference
    return nn.Sequential(nn.Linear(n_components, 8), nn.Tanh(), nn.Linear(8, n_features))


def test_amortized_variance_with_a_custom_decoder():
    # The package's log-variance network sits beside the user's decoder,
    # which returns means only.
    X = np.random.RandomState(0).rand(120, 6)
    model = _fit(X, decoder=small_decoder, decoder_variance="amortized", max_iter=3)
    assert model.decoder_variance_ == "amortized"
    assert model.inverse_transform(model.transform(X[:4])).shape == (4, 6)
    assert np.all(np.isfinite(model.score_samples(X[:10])))
    loaded = pickle.loads(pickle.dumps(model))
    assert np.array_equal(loaded.score_samples(X[:10]), model.score_samples(X[:10]))


@pytest.mark.parametrize("kind", ["feature", "amortized", "full"])
def test_skops_round_trip_trusts_only_this_package(kind, tmp_path):
    sio = pytest.importorskip("skops.io")
    X = np.random.RandomState(0).rand(120, 5)
    model = _fit(X, decoder_variance=kind, max_iter=3)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(t.startswith("sklearn_vhp.") for t in untrusted), untrusted
    loaded = sio.load(path, trusted=untrusted)
    assert loaded.decoder_variance_ == kind
    assert np.array_equal(loaded.score_samples(X[:10]), model.score_samples(X[:10]))
    assert loaded.noise_variance_ == model.noise_variance_


@pytest.mark.parametrize("kind", ["feature", "amortized", "full"])
def test_float64_input_scores_as_float32(kind):
    X = np.random.RandomState(0).rand(120, 5)
    model = _fit(X, decoder_variance=kind, max_iter=3)
    s64 = model.score_samples(X[:10])
    s32 = model.score_samples(X[:10].astype(np.float32))
    assert s64.dtype == np.float64
    np.testing.assert_allclose(s32, s64, rtol=1e-4, atol=1e-3)


def test_full_noise_leaves_the_codes_as_the_scalar_variance_trains_them():
    # "full" is fitted after training: the networks, and so the codes, are
    # the scalar model's, bit for bit; only the density changes.
    X = _correlated_scales(300, 0)
    full, scalar = (
        _fit(X, decoder_variance=k, n_components=2, max_iter=6) for k in ("full", "scalar")
    )
    np.testing.assert_array_equal(full.history_["loss"], scalar.history_["loss"])
    np.testing.assert_array_equal(full.transform(X), scalar.transform(X))
    assert full.score(X) > scalar.score(X) + 5.0


def test_full_trained_trains_the_networks_in_the_main_phase_only():
    # REWO's initial phase trains with the scalar variance, so a fit that
    # never leaves it (κ out of reach) has the scalar model's codes; once the
    # prior trains (here from the start), the networks train against the
    # mixture refitted after every epoch, and the codes differ.
    X = _correlated_scales(300, 0)
    initial = dict(n_components=2, max_iter=4, kappa=1e-9)
    full, scalar = (_fit(X, decoder_variance=k, **initial) for k in ("full_trained", "scalar"))
    assert set(full.history_["phase"]) == {"initial"}
    np.testing.assert_array_equal(full.transform(X), scalar.transform(X))

    main = dict(n_components=2, max_iter=4, schedule="constant")
    full, scalar = (_fit(X, decoder_variance=k, **main) for k in ("full_trained", "scalar"))
    # The first epoch (4 batches of 64) trains with the scalar variance; then the mixture.
    np.testing.assert_array_equal(full.history_["loss"][:4], scalar.history_["loss"][:4])
    assert np.all(full.history_["loss"][4:] < scalar.history_["loss"][4:] - 5.0)
    assert not np.allclose(full.transform(X), scalar.transform(X))


def test_full_trained_continues_with_its_mixture_after_an_interrupted_fit(monkeypatch):
    from sklearn_vhp._torch.vae import VAE

    X = _correlated_scales(256, 0)
    original, calls = VAE.training_loss, {"n": 0}

    def interrupt_in_epoch_3(self, x, **kw):
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 2:  # 4 batches of 64 per epoch
            raise KeyboardInterrupt
        return original(self, x, **kw)

    monkeypatch.setattr(VAE, "training_loss", interrupt_in_epoch_3)
    model = VHPEstimator(**{**FAST, "decoder_variance": "full_trained", "schedule": "constant"})
    model.set_params(max_iter=5, warm_start=True)
    with pytest.warns(UserWarning, match="after epoch 2"):
        model.fit(X)
    assert model.n_iter_ == 2 and np.all(np.isfinite(model.score_samples(X[:10])))
    monkeypatch.undo()
    # The warm start trains against the fitted mixture from its first step:
    # its first loss is at most near epoch 2's (the mixture's; the mixture
    # chosen and refitted after the interruption fits better still), not
    # back up at the scalar variance's (epoch 1, more than 5 nats higher).
    loss = model.history_["loss"]
    epoch_1, epoch_2 = loss[:4].mean(), loss[4:8].mean()
    assert epoch_1 > epoch_2 + 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.set_params(max_iter=1).fit(X)
    assert model.history_["loss"][8] < epoch_2 + 2.0


def test_noise_mixture_fits_degenerate_residuals():
    # The noise model itself (the estimator cannot make such residuals on
    # purpose): identical residuals with a zero column and a floor far below
    # their scale (a tiny fixed noise_variance) leave every covariance
    # singular in float64; the fit adds jitter where a covariance does not
    # factor, and the density stays finite.
    import torch

    from sklearn_vhp._torch.likelihoods import MixtureNoiseLikelihood

    likelihood = MixtureNoiseLikelihood(4, variance=1e-30, floor=1e-34, n_components=3)
    residuals = torch.full((50, 4), 0.3, dtype=torch.float64)
    residuals[:, 1] = 0.0
    assert np.isfinite(likelihood.fit(residuals))
    log_p = likelihood.log_prob(torch.zeros(2, 1, 4), torch.zeros(2, 5, 4))
    assert torch.isfinite(log_p).all()


def test_full_noise_generalises_from_few_rows_per_feature():
    # 100 digits (64 pixels, some never inked in so few rows): a full
    # covariance fitted to them alone puts almost no variance on those
    # pixels, and held-out digits that use them scored -3483 nats against
    # the scalar variance's -3.3. Shrunk towards its spherical part (OAS), the
    # mixture generalises (measured: 20.3).
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    scores = {
        kind: VHPEstimator(decoder_variance=kind, random_state=0).fit(X[:100]).score(X[1000:1300])
        for kind in ("full", "scalar")
    }
    assert scores["full"] > scores["scalar"] + 5.0, scores


def _curve_and_a_switch(n, seed):
    """A noisy curve ``(t, t²)`` and a binary column that it does not predict."""
    rng = np.random.RandomState(seed)
    t = rng.rand(n, 1)
    switch = (rng.rand(n, 1) < 0.5).astype(float)
    return np.hstack([t, t**2, switch]) + 0.01 * rng.randn(n, 3)


def test_full_noise_models_the_modes_of_the_residuals(tmp_path):
    # The code carries the curve; the switch's residual is +-1/2, as a
    # binary column (diabetes' sex) leaves a decoder that cannot tell it
    # from the code. Components with means put one mode at each value.
    # Measured, nats per held-out row: 1.57 (the scalar variance: -1.23; a
    # mixture centred at the decoder's mean with as many components as the
    # rows allowed, before the means and the choice: 0.11, which fails).
    X, X_test = _curve_and_a_switch(600, 0), _curve_and_a_switch(300, 1)
    params = dict(n_components=1, max_iter=30, n_eval_samples=200)
    full = _fit(X, decoder_variance="full", **params)
    scalar = _fit(X, decoder_variance="scalar", **params)
    assert full.score(X_test) > scalar.score(X_test) + 2.0
    # The number of components is chosen after training: a saved model is
    # rebuilt with it.
    loaded = pickle.loads(pickle.dumps(full))
    assert np.array_equal(loaded.score_samples(X_test[:20]), full.score_samples(X_test[:20]))


def _patches(n, seed=0):
    """``n`` 8 × 8 grey patches of scikit-learn's sample images, in [0, 1]."""
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    rng = np.random.RandomState(seed)
    images = [img.mean(axis=2) / 255.0 for img in load_sample_images().images]
    rows = [extract_patches_2d(g, (8, 8), max_patches=n // 2, random_state=rng) for g in images]
    return rng.permutation(np.concatenate(rows).reshape(-1, 64))


def test_full_noise_on_image_patches_beats_the_best_gaussian_mixture():
    # Natural-image patches are Gaussian scale mixtures: flat and textured
    # patches share shapes at contrasts that differ by orders of magnitude.
    # Each noise component at five scales describes them better than any
    # Gaussian mixture of the patches. Measured on 6,000 patches, nats per
    # held-out patch: the defaults 192.8, one scale per component 188.6,
    # GaussianMixture with 1/2/5/10/20 components 84.8/178.4/190.2/190.0/189.3.
    from sklearn.mixture import GaussianMixture

    patches = _patches(7000)
    X, X_test = patches[:6000], patches[6000:]
    best = max(GaussianMixture(k, random_state=0).fit(X).score(X_test) for k in (1, 2, 5, 10, 20))
    model = VHPEstimator(n_components=2, random_state=0, n_eval_samples=200).fit(X)
    assert model.score(X_test) > best + 1.0, (model.score(X_test), best)
