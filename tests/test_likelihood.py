"""``score_samples`` as an estimator of ``log p(x)``: spread, bias, progress bar."""

import copy

import numpy as np
import pytest
import torch
from sklearn import config_context
from test_estimator import _exact_linear_gaussian_logpdf

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import make_pendulum


def _scores_over_seeds(est, X, n_eval_samples, seeds):
    """``score_samples`` of ``X`` for each evaluation seed: (n_seeds, n_rows)."""
    est.set_params(n_eval_samples=n_eval_samples)
    out = []
    for seed in seeds:
        est._eval_seed = seed  # test hook: the seed of the evaluation noise, drawn at fit
        out.append(est.score_samples(X))
    return np.array(out)


def test_spread_across_seeds_shrinks_with_n_eval_samples():
    X, _ = make_pendulum(n_samples=300, random_state=0)
    est = VHPEstimator(
        hidden_layer_sizes=(16,), max_iter=3, n_importance=4, batch_size=32, random_state=0
    ).fit(X)
    rows = X[:20]
    seeds = range(12)
    spread_10 = _scores_over_seeds(est, rows, 10, seeds).std(axis=0)
    spread_1000 = _scores_over_seeds(est, rows, 1000, seeds).std(axis=0)
    assert np.isfinite(spread_10).all() and np.isfinite(spread_1000).all()
    # Monte Carlo error ~ 1/sqrt(S): 10x less in theory; ask for 3x, row by row.
    assert (spread_1000 < spread_10 / 3).all(), (spread_10, spread_1000)


@pytest.fixture(scope="module")
def linear_gaussian():
    """A linear-Gaussian model with a known marginal and a too broad proposal.

    ``x = W z + b + noise``, ``z ~ N(0, I_6)``: ``p(x) = N(b, W Wᵀ + σ² I)``.
    The model is fitted for one epoch, then set to a known ``W`` whose
    posterior ``p(z|x)`` has variance 1/16 in each of the 6 dimensions, and
    ``q(z|x)`` to the exact posterior mean with unit variance (4 x the
    posterior's standard deviation). Broad proposals give bounded importance
    weights, so the estimate's bias decays steadily (about ``Var(w)/(2S)``).
    """
    D, d, var, ratio = 8, 6, 0.09, 16.0
    rng = np.random.RandomState(0)
    Q, _ = np.linalg.qr(rng.randn(D, d))
    W = Q * np.sqrt((ratio - 1.0) * var)  # posterior precision = ratio * I
    b = rng.uniform(-1, 1, D)
    X = rng.randn(300, d) @ W.T + b + np.sqrt(var) * rng.randn(300, D)
    est = VHPEstimator(
        prior="standard",
        schedule="constant",
        likelihood="gaussian",
        noise_variance=var,
        n_components=d,
        hidden_layer_sizes=(),
        max_iter=1,
        random_state=0,
    ).fit(X)
    cov = np.linalg.inv(np.eye(d) + W.T @ W / var)
    A = cov @ W.T / var  # posterior mean = A (x - b)
    f32 = dict(dtype=torch.float32)
    module = est.module_
    module.decoder.set_linear(torch.tensor(W, **f32), torch.tensor(b, **f32))
    module.encoder.set_linear_mean(torch.tensor(A, **f32), torch.tensor(-A @ b, **f32))
    with torch.no_grad():
        module.encoder.shared_logvar.zero_()
    return est, X[:20]


def test_estimate_approaches_exact_marginal_from_below(linear_gaussian):
    est, rows = linear_gaussian
    exact = _exact_linear_gaussian_logpdf(est, rows)
    seeds = range(200)
    gaps, errors = [], []
    for S in (1, 10, 100, 1000):
        gap = (exact - _scores_over_seeds(est, rows, S, seeds)).mean(axis=1)  # per seed
        gaps.append(gap.mean())
        errors.append(gap.std() / np.sqrt(len(gap)))
    gaps, errors = np.array(gaps), np.array(errors)
    # A lower bound in expectation (Jensen) ...
    assert (gaps > 3 * errors).all(), (gaps, errors)
    # ... that tightens as S grows.
    assert (np.diff(gaps) < -3 * np.hypot(errors[:-1], errors[1:])).all(), (gaps, errors)
    assert gaps[-1] < 0.5


def test_progress_bar_under_verbose(linear_gaussian, capsys):
    est, rows = linear_gaussian
    est = est.set_params(n_eval_samples=50)
    quiet = est.score_samples(rows)
    assert "score_samples" not in capsys.readouterr().err
    est.set_params(verbose=1)  # bars on fit only: scoring stays quiet
    try:
        est.score_samples(rows)
        assert "score_samples" not in capsys.readouterr().err
        est.set_params(verbose=2)
        with config_context(working_memory=0.01):  # several row chunks
            loud = est.score_samples(rows)
    finally:
        est.set_params(verbose=0)
    err = capsys.readouterr().err
    assert "score_samples" in err and f"{len(rows)}/{len(rows)}" in err
    np.testing.assert_allclose(loud, quiet, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prior", ["vhp", "standard", "vamp"])
def test_float32_input_scores_in_float32_close_to_float64(prior):
    """float32 rows run the networks in float32; the estimate stays within 1e-3 nats."""
    rng = np.random.default_rng(0)
    X = (rng.random((200, 64)) < 0.3).astype(np.float64)
    est = VHPEstimator(
        n_components=4,
        prior=prior,
        hidden_layer_sizes=(32, 32),
        n_pseudo_inputs=10,
        max_iter=2,
        n_eval_samples=64,
        random_state=0,
    ).fit(X)
    s64 = est.score_samples(X[:30])
    s32 = est.score_samples(X[:30].astype(np.float32))
    assert s32.dtype == np.float64
    np.testing.assert_allclose(s32, s64, atol=1e-3)
    assert not np.array_equal(s32, s64)  # it did run in float32


def test_vamp_prior_frozen_components_match_direct_density():
    """The matrix-product form used by score_samples equals the direct log p(z)."""
    X, _ = make_pendulum(n_samples=100, random_state=0)
    est = VHPEstimator(
        n_components=3, prior="vamp", n_pseudo_inputs=7, hidden_layer_sizes=(16,), max_iter=1
    ).fit(X)
    prior = copy.deepcopy(est.module_).double().prior  # the VampPrior keeps its encoder
    z = torch.randn(5, 11, 3, dtype=torch.float64) * 3
    with torch.no_grad():
        direct = prior.log_prob(z)
        with prior.frozen() as frozen_prior:
            frozen = frozen_prior.log_prob(z)
    assert "_frozen" not in prior.__dict__
    torch.testing.assert_close(frozen, direct, rtol=1e-10, atol=1e-10)


def test_bernoulli_log_prob_equals_negative_bce_with_logits():
    from torch.nn import functional as F

    from sklearn_vhp._torch.likelihoods import BernoulliLikelihood

    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 1, 40, generator=gen) < 0.3).double()
    x[0] = torch.rand(1, 40, generator=gen, dtype=torch.float64)  # grey values are allowed
    out = 10 * torch.randn(6, 9, 40, generator=gen, dtype=torch.float64)
    ref = -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)
    like = BernoulliLikelihood()
    torch.testing.assert_close(like.log_prob(x, out), ref, rtol=0, atol=1e-8)
    torch.testing.assert_close(like.log_prob(x[:, 0], out[:, 0]), ref[:, 0], rtol=0, atol=1e-8)
