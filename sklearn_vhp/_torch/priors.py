"""Priors p(z): the standard normal and the hierarchical prior of VHP."""

import math

import torch
from torch import nn

from .networks import GaussianMLP, gaussian_log_prob, standard_normal_log_prob


class StandardNormalPrior(nn.Module):
    """``p(z) = N(0, I)``."""

    def __init__(self, n_components):
        super().__init__()
        self.n_components = n_components

    #: Dimension of the auxiliary noise a log-density estimate consumes.
    n_aux = 0

    def log_prob(self, z, eps=None):
        """Exact ``log p(z)``, shape ``z.shape[:-1]`` (``eps`` is ignored)."""
        return standard_normal_log_prob(z)

    def sample(self, n, generator, device=None, dtype=None):
        return torch.randn(n, self.n_components, generator=generator, device=device, dtype=dtype)


class HierarchicalPrior(nn.Module):
    """The learned hierarchical prior ``p(z) = ∫ p(z|ζ) p(ζ) dζ`` (paper Eq. 8).

    ``p(ζ) = N(0, I)``, ``p_Θ(z|ζ)`` and the variational ``q_Φ(ζ|z)`` are
    diagonal Gaussians parametrised by MLPs. ``log p(z)`` is estimated by the
    importance-weighted lower bound with ``K`` samples of ``q_Φ(ζ|z)``
    (paper Eq. 9)::

        log p(z) >= E[ log 1/K Σ_k p(z|ζ_k) p(ζ_k) / q(ζ_k|z) ],  ζ_k ~ q(ζ|z)

    which tightens to ``log p(z)`` as ``K`` grows.
    """

    def __init__(self, n_components, n_latent2, hidden, *, activation=nn.Tanh):
        super().__init__()
        self.n_components = n_components
        self.n_aux = n_latent2
        self.q_zeta = GaussianMLP(n_components, hidden, n_latent2, activation=activation)
        self.p_z = GaussianMLP(n_latent2, hidden, n_components, activation=activation)

    def log_prob(self, z, eps):
        """Importance-weighted estimate of ``log p(z)``.

        Parameters
        ----------
        z : Tensor of shape (..., n_components)
        eps : Tensor of shape (K, ..., n_aux)
            Standard normal noise; ``ζ_k = μ(z) + σ(z) eps_k``.

        Returns
        -------
        Tensor of shape ``z.shape[:-1]``: ``logsumexp_k w_k - log K``.
        """
        mean_q, logvar_q = self.q_zeta(z)
        zeta = mean_q + torch.exp(0.5 * logvar_q) * eps
        # log q(ζ|z) from the noise directly: exact and cheaper.
        log_q = -0.5 * (eps**2 + logvar_q + math.log(2 * math.pi)).sum(-1)
        mean_p, logvar_p = self.p_z(zeta)
        log_w = gaussian_log_prob(z, mean_p, logvar_p) + standard_normal_log_prob(zeta) - log_q
        return torch.logsumexp(log_w, dim=0) - math.log(eps.shape[0])

    def sample(self, n, generator, device=None, dtype=None):
        """Draw ``z`` by ancestral sampling: ``ζ ~ N(0, I)``, ``z ~ p(z|ζ)``."""
        zeta = torch.randn(n, self.n_aux, generator=generator, device=device, dtype=dtype)
        mean, logvar = self.p_z(zeta)
        noise = torch.randn(mean.shape, generator=generator, device=device, dtype=dtype)
        return mean + torch.exp(0.5 * logvar) * noise
