"""The paper's baselines: priors, objectives, schedules and diagnostics."""

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_vhp import VHPEstimator
from sklearn_vhp._torch.factory import build_vae
from sklearn_vhp._torch.priors import VampPrior
from sklearn_vhp.datasets import make_pendulum

TINY = dict(hidden_layer_sizes=(16,), max_iter=2, n_eval_samples=16, n_importance=4)
PRIORS = ["vhp", "standard", "vamp"]
SCHEDULES = ["rewo", "geco", "warmup", "constant"]


@pytest.fixture(scope="module")
def pendulum():
    X, angles = make_pendulum(n_samples=200, random_state=0)
    return X, angles


@parametrize_with_checks(
    [VHPEstimator(prior="vamp", objective="iwae", n_pseudo_inputs=8, **TINY, batch_size=16)]
)
def test_sklearn_compatible_vamp_iwae(estimator, check):
    check(estimator)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("prior", PRIORS)
def test_every_prior_and_schedule_fits_scores_samples(pendulum, prior, schedule):
    X, _ = pendulum
    est = VHPEstimator(prior=prior, schedule=schedule, n_pseudo_inputs=20, random_state=0, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    for key in ("loss", "constraint", "constraint_avg", "kl", "beta"):
        assert np.isfinite(est.history_[key]).all(), key
    scores = est.score_samples(X[:10])
    assert scores.shape == (10,) and np.isfinite(scores).all()
    assert est.sample(3).shape == (3, X.shape[1])
    assert est.sample_latent(5).shape == (5, 2)
    assert np.isfinite(est.beta_)


@pytest.mark.parametrize("prior", PRIORS)
def test_iwae_objective_fits_and_records_constraint(pendulum, prior):
    X, _ = pendulum
    est = VHPEstimator(
        prior=prior,
        objective="iwae",
        schedule="constant",
        n_pseudo_inputs=20,
        random_state=0,
        **TINY,
    ).fit(X)
    assert np.isfinite(est.history_["loss"]).all()
    assert np.isfinite(est.history_["constraint_avg"]).all()
    assert np.all(est.history_["beta"] == 1.0)
    assert np.isfinite(est.score_samples(X[:5])).all()
    assert est.sample(2).shape == (2, X.shape[1])


# ------------------------------------------------------------------- IWAE
def _module(prior, seed=0, n_features=12):
    gen = torch.Generator().manual_seed(seed)
    module = build_vae(
        n_features=n_features,
        n_components=2,
        prior=prior,
        likelihood="gaussian",
        hidden_layer_sizes=(16,),
        noise_variance=0.1,
        n_pseudo_inputs=7 if prior == "vamp" else None,
        generator=gen,
    ).double()
    if prior == "vamp":
        module.prior.set_pseudo_inputs(torch.randn(7, n_features, generator=gen))
    return module


@pytest.mark.parametrize("beta", [1.0, 0.3])
@pytest.mark.parametrize("prior", PRIORS)
def test_iwae_with_one_sample_equals_elbo_exactly(prior, beta):
    module = _module(prior)
    x = torch.randn(9, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = {}
    for objective in ("elbo", "iwae"):
        gen = torch.Generator().manual_seed(5)
        out[objective] = module.training_loss(
            x, beta=beta, n_importance=1, generator=gen, objective=objective
        )
    for a, b in zip(out["elbo"], out["iwae"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("prior", ["standard", "vhp"])
def test_iwae_bound_rises_with_k(prior):
    """E[L_K] increases with K on a fixed model (Burda et al. 2016, Thm 1)."""
    module = _module(prior)
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    bounds = []
    with torch.no_grad():
        for k in (1, 4, 32):
            reps = [
                -module.training_loss(x, beta=1.0, n_importance=k, generator=gen, objective="iwae")[
                    0
                ].mean()
                for _ in range(40)
            ]
            bounds.append(torch.stack(reps).mean().item())
    assert bounds[0] < bounds[1] < bounds[2], bounds


# -------------------------------------------------------------- VampPrior
def test_vamp_log_prob_is_the_exact_mixture_density():
    module = _module("vamp")
    prior = module.prior
    z = torch.randn(6, 3, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        got = prior.log_prob(z).numpy()
        mean, logvar = (t.numpy() for t in module.encoder(prior.pseudo_inputs))
    zz = z.numpy()[..., None, :]  # (6, 3, 1, 2)
    var = np.exp(logvar)
    log_comp = -0.5 * (((zz - mean) ** 2) / var + np.log(2 * np.pi * var)).sum(-1)
    expected = logsumexp(log_comp, axis=-1) - np.log(mean.shape[0])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_vamp_references_the_encoder_without_owning_it():
    module = _module("vamp")
    assert module.prior._encoder is module.encoder
    assert [n for n, _ in module.prior.named_parameters()] == ["pseudo_inputs"]
    assert module.prior_parameters() == [module.prior.pseudo_inputs]
    keys = list(module.state_dict())
    assert not any(k.startswith("prior._encoder") or k.startswith("prior.encoder") for k in keys)
    n_params = sum(p.numel() for p in module.parameters())
    buffers = ("variance", "prior.input_loc", "prior.input_scale")
    assert n_params == sum(
        v.numel() for k, v in module.state_dict().items() if not k.endswith(buffers)
    )
    # A deep copy (used for float64 inference) keeps the reference inside the copy.
    dup = copy.deepcopy(module).float()
    assert dup.prior._encoder is dup.encoder and dup.prior._encoder is not module.encoder
    assert dup.prior.components()[0].dtype == torch.float32


def test_vamp_score_samples_matches_manual_importance_sampling(pendulum):
    X, _ = pendulum
    est = VHPEstimator(
        prior="vamp",
        schedule="constant",
        n_pseudo_inputs=15,
        random_state=0,
        hidden_layer_sizes=(16,),
        max_iter=2,
        n_eval_samples=64,
    ).fit(X)
    x = X[:6]
    S, d = est.n_eval_samples, est.n_components
    gen = torch.Generator().manual_seed(est._eval_seed)  # test hook: the evaluation noise
    eps = torch.randn(S, d, generator=gen, dtype=torch.float64).numpy()
    module = copy.deepcopy(est.module_).double()
    with torch.no_grad():
        mean, logvar = (t.numpy() for t in module.encoder(torch.as_tensor(x)))
        u_mean, u_logvar = (t.numpy() for t in module.encoder(module.prior.pseudo_inputs))
    z = mean[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps  # (6, S, d)
    log_q = -0.5 * (eps**2 + logvar[:, None, :] + np.log(2 * np.pi)).sum(-1)
    u_var = np.exp(u_logvar)
    log_comp = -0.5 * (((z[..., None, :] - u_mean) ** 2) / u_var + np.log(2 * np.pi * u_var)).sum(
        -1
    )
    log_pz = logsumexp(log_comp, axis=-1) - np.log(u_mean.shape[0])
    recon = est.inverse_transform(z.reshape(-1, d)).reshape(6, S, -1)
    var = float(module.likelihood.variance)
    log_px = -0.5 * (((x[:, None, :] - recon) ** 2) / var + np.log(2 * np.pi * var)).sum(-1)
    expected = logsumexp(log_px + log_pz - log_q, axis=1) - math.log(S)
    np.testing.assert_allclose(est.score_samples(x), expected, rtol=1e-9, atol=1e-8)


def test_vamp_pseudo_inputs_start_as_training_rows(pendulum):
    X, _ = pendulum
    kw = dict(prior="vamp", kappa=1e-6, hidden_layer_sizes=(16,), max_iter=1)
    with warnings.catch_warnings():
        # kappa is never reached: REWO stays in its initial phase and the
        # prior (the pseudo-inputs) is not trained.
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = VHPEstimator(n_pseudo_inputs=10, random_state=0, **kw).fit(X)
        b = VHPEstimator(n_pseudo_inputs=10, random_state=1, **kw).fit(X)
        capped = VHPEstimator(n_pseudo_inputs=1000, random_state=0, **kw).fit(X[:30])
    rows = []
    for est in (a, b):
        u = est.module_.prior.pseudo_inputs.detach().numpy()
        match = np.all(np.isclose(u[:, None, :], X[None, :, :].astype(np.float32)), axis=2)
        assert match.shape == (10, len(X)) and np.all(match.sum(1) >= 1)
        rows.append(set(np.argmax(match, axis=1)))
        assert len(rows[-1]) == 10  # distinct rows
    assert rows[0] != rows[1]
    assert capped.module_.prior.pseudo_inputs.shape == (30, X.shape[1])


def test_vamp_pickle_round_trip(pendulum):
    X, _ = pendulum
    est = VHPEstimator(prior="vamp", n_pseudo_inputs=12, random_state=0, **TINY).fit(X)
    loaded = pickle.loads(pickle.dumps(est))
    assert isinstance(loaded.module_.prior, VampPrior)
    assert loaded.module_.prior._encoder is loaded.module_.encoder
    np.testing.assert_array_equal(loaded.score_samples(X[:5]), est.score_samples(X[:5]))
    np.testing.assert_array_equal(loaded.sample(3), est.sample(3))


# ------------------------------------------------------------ diagnostics
@pytest.mark.parametrize("prior", PRIORS)
def test_active_units_shapes(pendulum, prior):
    X, _ = pendulum
    est = VHPEstimator(prior=prior, n_pseudo_inputs=10, random_state=0, **TINY).fit(X)
    res = est.active_units(X)
    assert res.z_activity.shape == (2,) and res.z_active.dtype == bool
    assert res.n_active_z == int(res.z_active.sum())
    np.testing.assert_allclose(res.z_activity, est.transform(X).var(axis=0), rtol=1e-10)
    if prior == "vhp":
        assert res.zeta_activity.shape == (2,) and res.zeta_active.dtype == bool
        assert res.zeta_kl.shape == (2,) and np.all(res.zeta_kl >= 0)
    else:
        assert res.zeta_activity is None and res.n_active_zeta is None
    if prior == "standard":
        assert res.z_kl.shape == (2,) and np.all(res.z_kl >= 0)
    else:
        assert res.z_kl is None


def test_active_units_detects_a_dead_dimension(pendulum):
    X, _ = pendulum
    est = VHPEstimator(prior="vhp", random_state=0, **TINY).fit(X)
    net = est.module_.encoder.net
    with torch.no_grad():  # make E[z_1|x] constant
        net.out.weight[1].zero_()
        net.out.bias[1] = 0.5
        net.shortcut.weight[1].zero_()
    res = est.active_units(X, threshold=0.01)
    assert res.z_activity[1] == pytest.approx(0.0, abs=1e-20)
    assert res.z_active.tolist() == [True, False] and res.n_active_z == 1
    assert est.active_units(X, threshold=1e9).n_active_z == 0
    with pytest.raises(ValueError, match="threshold"):
        est.active_units(X, threshold=-1)
