"""Fast paths of fit (issue 18): PCA start, optimiser, one data copy, VampPrior density."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.utils.extmath import svd_flip

from sklearn_vhp import VHPEstimator
from sklearn_vhp._adam import FusedAdam, available
from sklearn_vhp._settings import pca_projections


@pytest.mark.parametrize("shape", [(300, 20), (30, 200)], ids=["tall", "wide"])
def test_pca_start_is_the_exact_principal_subspace(shape):
    """The Gram-matrix eigenpairs give the full SVD's whitened projection (tall and wide)."""
    rng = np.random.RandomState(0)
    X = rng.randn(*shape) @ np.diag(np.linspace(3, 0.1, shape[1])) + 5.0
    weight, bias, dec_w, dec_b = pca_projections(X, 4, "gaussian", np.random.RandomState(1))
    Xc = X - X.mean(0)
    u, s, vt = np.linalg.svd(Xc, full_matrices=False)
    _, vt = svd_flip(u, vt, u_based_decision=False)
    std = s[:4] / np.sqrt(shape[0] - 1)
    np.testing.assert_allclose(weight, vt[:4] / std[:, None], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dec_w, (vt[:4] * std[:, None]).T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(bias, -weight @ X.mean(0), rtol=1e-7, atol=1e-9)
    # The whitened projection of the data has identity covariance.
    Z = X @ weight.T + bias
    np.testing.assert_allclose(np.cov(Z.T), np.eye(4), atol=1e-8)


def test_pca_start_leaves_out_absent_directions():
    """Rank-2 data asked for 4 components: two directions, the rest zero."""
    rng = np.random.RandomState(0)
    X = rng.randn(50, 2) @ rng.randn(2, 6)
    weight, *_ = pca_projections(X, 4, "gaussian", rng)
    assert np.count_nonzero(np.abs(weight).sum(1)) == 2


@pytest.mark.skipif(not available(), reason="no fused Adam kernel in this torch")
def test_fused_adam_matches_torch_adam_and_its_state():
    """Same steps as torch.optim.Adam(fused=True), bit for bit, and either loads the other."""
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    b = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    b.load_state_dict(a.state_dict())
    ours = FusedAdam(a.parameters(), lr=1e-2)
    theirs = torch.optim.Adam(b.parameters(), lr=1e-2, fused=True)
    x = torch.randn(16, 5)
    for step in range(5):
        for net, opt in ((a, ours), (b, theirs)):
            opt.zero_grad(set_to_none=True)
            net(x + step).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # A model saved with torch's Adam continues identically with ours.
    c = FusedAdam(b.parameters(), lr=1e-2)
    c.load_state_dict(theirs.state_dict())
    for p, q in zip(ours.state_dict()["state"].values(), c.state_dict()["state"].values()):
        assert all(torch.equal(p[k], q[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    with pytest.raises(ValueError, match="shape"):
        FusedAdam(torch.nn.Linear(3, 2).parameters(), 1e-3).load_state_dict(
            {"state": {0: ours.state_dict()["state"][0]}, "param_groups": [{"params": [0, 1]}]}
        )


def test_first_fit_imports_no_compiler():
    """A first fit in a fresh process does not import torch._dynamo (seconds of set-up)."""
    code = (
        "import sys, numpy as np\n"
        "from sklearn_vhp import VHPEstimator\n"
        "X = np.random.RandomState(0).rand(40, 6)\n"
        "VHPEstimator(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    expected = "False" if available() else out.stdout.strip()
    assert out.stdout.strip().splitlines()[-1] == expected


def test_fit_on_fortran_ordered_or_strided_data_is_the_same():
    """The data's memory layout changes nothing (it is copied once, into float32)."""
    X = np.random.RandomState(0).rand(120, 8)
    kw = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0, n_components=2)
    ref = VHPEstimator(**kw).fit(X).transform(X)
    for data in (np.asfortranarray(X), X[::-1][::-1]):
        np.testing.assert_array_equal(VHPEstimator(**kw).fit(data).transform(X), ref)


def test_vamp_log_prob_as_matrix_products_is_the_mixture_density():
    """The expanded form gives the mixture's log-density and its gradients (float32 z)."""
    from sklearn_vhp._torch.networks import GaussianMLP
    from sklearn_vhp._torch.priors import VampPrior

    torch.manual_seed(0)
    encoder = GaussianMLP(6, (8,), 3)
    prior = VampPrior(encoder, 5, 6)
    prior.set_pseudo_inputs(torch.rand(5, 6))
    z = (3.0 * torch.randn(4, 2, 3) + 2.0).requires_grad_(True)
    log_p = prior.log_prob(z)
    mean, logvar = (t.double() for t in prior.components())
    comps = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    direct = torch.logsumexp(comps.log_prob(z.double()[..., None, :]).sum(-1), -1) - np.log(5)
    assert log_p.dtype == torch.float32 and log_p.shape == (4, 2)
    torch.testing.assert_close(log_p.double(), direct, rtol=1e-6, atol=1e-5)
    (g_ours,) = torch.autograd.grad(log_p.sum(), z)
    (g_direct,) = torch.autograd.grad(direct.sum(), z)
    torch.testing.assert_close(g_ours.double(), g_direct.double(), rtol=1e-5, atol=1e-5)
    # The pseudo-inputs get the same gradient too.
    (g_u,) = torch.autograd.grad(prior.log_prob(z.detach()).sum(), prior.pseudo_inputs)
    mean, logvar = (t.double() for t in prior.components())
    comps = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    direct = torch.logsumexp(comps.log_prob(z.detach().double()[..., None, :]).sum(-1), -1)
    (g_u_direct,) = torch.autograd.grad(direct.sum(), prior.pseudo_inputs)
    torch.testing.assert_close(g_u.double(), g_u_direct.double(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_shared_variance_head_computes_the_mean_half_only(architecture):
    """With a shared variance the head's mean equals the full head's first half;
    the unused log-variance rows get a zero gradient (Adam leaves them as they are)."""
    from sklearn_vhp._torch.conv import ConvGaussianEncoder
    from sklearn_vhp._torch.networks import LOGVAR_BOUND, GaussianMLP

    torch.manual_seed(0)
    if architecture == "mlp":
        enc = GaussianMLP(64, (32,), 3, shared_variance=True)
        hidden = enc.net.body
    else:
        enc = ConvGaussianEncoder((8, 8), (16,), 3, shared_variance=True)
        hidden = lambda x: enc.trunk(x.reshape(-1, 1, 8, 8))  # noqa: E731
    with torch.no_grad():
        enc.shared_logvar.normal_()
        enc.head_layers[1].weight.normal_()
    x = torch.rand(10, 64)
    mean, logvar = enc(x)
    out, shortcut = enc.head_layers
    full = out(hidden(x)) + shortcut(x)  # all 2 n_out rows, as before
    torch.testing.assert_close(mean, full[:, :3], rtol=1e-6, atol=1e-6)
    expected = LOGVAR_BOUND * torch.tanh(enc.shared_logvar / LOGVAR_BOUND)
    torch.testing.assert_close(logvar, expected.expand(10, 3))
    (mean.sum() + logvar.sum()).backward()
    for layer in (out, shortcut):
        assert torch.count_nonzero(layer.weight.grad[3:]) == 0
        assert torch.count_nonzero(layer.weight.grad[:3]) > 0
