"""Priors p(z): the standard normal, the hierarchical prior of VHP, the VampPrior.

Every prior has ``log_prob(z, eps)``, ``sample(n, generator, device, dtype)``,
``frozen()`` (a context giving the form to use for many ``log_prob`` calls
without gradients) and ``n_aux``, the width of the auxiliary noise ``eps`` its log-density
estimate consumes (0 when ``log p(z)`` is exact and ``eps`` is ignored).
"""

import contextlib

import torch
from torch import nn

from .networks import (
    LOG_2PI,
    GaussianMLP,
    gaussian_log_prob,
    gaussian_log_prob_of_noise,
    log_mean_exp,
    standard_normal_log_prob,
)


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

    @contextlib.contextmanager
    def frozen(self):
        """This prior itself: nothing to precompute (see :meth:`VampPrior.frozen`)."""
        yield self

    def sample(self, n, generator, device=None, dtype=None, chunk=None):
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
        # An affine standardisation of z, set from data by `init_scale`: both
        # networks then work on unit-scale latents whatever scale the encoder
        # has reached (it reached radius ~26 on the pendulum, which saturated
        # q(ζ|z) and left p(z|ζ) a broad blob). It reparametrises the same
        # family of densities: p(z|ζ) = N(loc + scale·μ(ζ), scale²·σ²(ζ)).
        self.register_buffer("loc", torch.zeros(n_components))
        self.register_buffer("scale", torch.ones(n_components))

    @torch.no_grad()
    def init_scale(self, z, var=None):
        """Set the standardisation from latent codes ``z`` (rows), e.g. the
        posterior means of the training data when the prior starts training.

        ``var`` (same shape), the posterior variances at those rows, floors
        the scale at the posteriors' RMS width: when the means hardly vary
        (constant or near-constant data, an unused latent dimension) their
        spread says nothing about where the codes are, and a scale of
        ``std(means)`` alone (down to 1e-3) squeezed ``p(z|ζ)`` far below
        the width of ``q(z|x)``, whose KL then exploded (~1e8 nats).
        """
        z = z.reshape(-1, z.shape[-1]).to(self.loc.dtype)
        self.loc.copy_(z.mean(0))
        scale = z.std(0) if z.shape[0] > 1 else torch.ones_like(self.loc)
        if var is not None:
            width = var.reshape(-1, var.shape[-1]).to(self.loc.dtype).mean(0).sqrt()
            scale = torch.maximum(scale, width)
        self.scale.copy_(scale.clamp_min(1e-3))

    def _q(self, z):
        return self.q_zeta((z - self.loc) / self.scale)

    def _p(self, zeta):
        mean, logvar = self.p_z(zeta)
        return self.loc + self.scale * mean, logvar + 2.0 * torch.log(self.scale)

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
        mean_q, logvar_q = self._q(z)
        zeta = mean_q + torch.exp(0.5 * logvar_q) * eps
        log_q = gaussian_log_prob_of_noise(eps, logvar_q)
        mean_p, logvar_p = self._p(zeta)
        log_w = gaussian_log_prob(z, mean_p, logvar_p) + standard_normal_log_prob(zeta) - log_q
        return log_mean_exp(log_w, dim=0)

    @contextlib.contextmanager
    def frozen(self):
        """This prior itself: nothing to precompute (see :meth:`VampPrior.frozen`)."""
        yield self

    def aux_posterior(self, z):
        """Mean and log-variance of ``q_Φ(ζ|z)``, each of shape ``(..., n_aux)``."""
        return self._q(z)

    def sample(self, n, generator, device=None, dtype=None, chunk=None):
        """Draw ``z`` by ancestral sampling: ``ζ ~ N(0, I)``, ``z ~ p(z|ζ)``.

        The noise is drawn for all ``n`` rows first; the networks then run on
        at most ``chunk`` rows at a time (all at once for ``None``), which
        changes nothing in the result.
        """
        zeta = torch.randn(n, self.n_aux, generator=generator, device=device, dtype=dtype)
        noise = torch.randn(n, self.n_components, generator=generator, device=device, dtype=dtype)
        out = torch.empty_like(noise)
        step = n if chunk is None else max(1, int(chunk))
        for start in range(0, n, step):
            rows = slice(start, start + step)
            mean, logvar = self._p(zeta[rows])
            out[rows] = mean + torch.exp(0.5 * logvar) * noise[rows]
        return out


class VampPrior(nn.Module):
    """VampPrior (Tomczak & Welling, 2018): ``p(z) = 1/K Σ_k q_φ(z|u_k)``.

    A mixture of the variational posteriors of ``K`` learned pseudo-inputs
    ``u_k``, evaluated with the VAE's own encoder. ``log p(z)`` is exact (a
    ``logsumexp`` over the components), so ``n_aux = 0``.

    The encoder is *referenced*, not owned: it is kept out of this module's
    submodules so that its parameters appear once in the VAE's
    ``parameters()`` and ``state_dict()`` (under ``encoder.``), and this
    prior's own parameters are the pseudo-inputs alone. Moving or copying the
    VAE (``.to``, ``copy.deepcopy``) keeps the reference pointing at the
    VAE's encoder.

    Parameters
    ----------
    encoder : nn.Module
        Maps ``x`` to ``(mean, logvar)`` of ``q(z|x)``; must have ``n_out``.
    n_pseudo_inputs : int
        Number of mixture components ``K``.
    n_features : int
        Width of a pseudo-input (the data's number of features). The
        pseudo-inputs start at zero; set them with :meth:`set_pseudo_inputs`
        (e.g. to random training rows).
    """

    n_aux = 0

    @property
    def n_components_mixture(self):
        """``K``, the number of mixture components (for memory budgets)."""
        return self.pseudo_inputs.shape[0]

    def __init__(self, encoder, n_pseudo_inputs, n_features):
        super().__init__()
        self.n_components = encoder.n_out
        # The pseudo-inputs are ``input_loc + input_scale * pseudo_inputs``:
        # Adam moves a parameter by about the step size per step, which in
        # data units is far too much for data that span much less than 1
        # (near-constant data: a step of 1e-3 on data spanning 1e-7 threw the
        # components 1e4 away and the KL to 1e9). set_pseudo_inputs sets the
        # affine map from the data (the identity for data spanning 1 or more).
        self.pseudo_inputs = nn.Parameter(torch.zeros(n_pseudo_inputs, n_features))
        self.register_buffer("input_loc", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(()))
        # Not a submodule: bypass nn.Module.__setattr__'s registration.
        self.__dict__["_encoder"] = encoder

    @torch.no_grad()
    def set_pseudo_inputs(self, values):
        """Overwrite the pseudo-inputs with ``values`` of shape ``(K, n_features)``.

        Also sets the units in which they are trained: data units when the
        values span 1 or more (or nothing), else units of their span around
        their mean, so that an optimiser step moves them by a fraction of the
        data's spread whatever its scale.
        """
        p = self.pseudo_inputs
        values = torch.as_tensor(values, dtype=p.dtype, device=p.device)
        span = float(values.max() - values.min()) if values.numel() else 0.0
        if 0.0 < span < 1.0:
            self.input_loc.copy_(values.mean(0))
            self.input_scale.fill_(span)
        else:
            self.input_loc.zero_()
            self.input_scale.fill_(1.0)
        p.copy_((values - self.input_loc) / self.input_scale)

    def inputs(self):
        """The pseudo-inputs ``u_k`` in data units, shape ``(K, n_features)``."""
        return self.input_loc + self.input_scale * self.pseudo_inputs

    def components(self):
        """Mean and log-variance of the ``K`` components, each ``(K, n_components)``."""
        return self._encoder(self.inputs())

    def log_prob(self, z, eps=None):
        """Exact ``log p(z) = logsumexp_k log q(z|u_k) - log K``, shape ``z.shape[:-1]``.

        ``eps`` is ignored. See :meth:`frozen` for many calls without gradients.
        """
        mean, logvar = self.components()  # (K, d)
        return FrozenVampPrior(mean, logvar).log_prob(z)

    @contextlib.contextmanager
    def frozen(self):
        """A copy of this prior for many ``log_prob`` calls, components computed once.

        For inference without gradients (``score_samples``): the encoder runs
        on the ``K`` pseudo-inputs once instead of once per chunk, and
        ``Σ_j (z_j - m_kj)² / v_kj`` is expanded into matrix products, in
        float64 so that the expansion loses no precision. The context yields
        a :class:`FrozenVampPrior`; nothing is stored on this module, so
        threads scoring with one model at the same time do not share (and
        cannot clear) each other's components.
        """
        with torch.no_grad():
            mean, logvar = self.components()
        yield FrozenVampPrior(mean, logvar)

    def sample(self, n, generator, device=None, dtype=None, chunk=None):
        """Draw a component ``k`` uniformly, then ``z ~ q(z|u_k)``.

        The noise is drawn for all ``n`` rows first; the encoder then runs on
        at most ``chunk`` rows at a time (all at once for ``None``).
        """
        p = self.pseudo_inputs
        k = torch.randint(p.shape[0], (n,), generator=generator, device=p.device)
        noise = torch.randn(
            n, self.n_components, generator=generator, device=p.device, dtype=p.dtype
        )
        inputs = self.inputs()
        out = torch.empty_like(noise)
        step = n if chunk is None else max(1, int(chunk))
        for start in range(0, n, step):
            rows = slice(start, start + step)
            mean, logvar = self._encoder(inputs[k[rows]])
            out[rows] = mean + torch.exp(0.5 * logvar) * noise[rows]
        return out


class FrozenVampPrior:
    """The VampPrior's ``log p(z)`` given its components, as matrix products.

    ``Σ_j (z_j - m_kj)² / v_kj`` for every row and component is expanded
    into ``(z²) A - 2 z B + c`` with ``A = 1/v``, ``B = m/v`` (``(d, K)``
    matrices) and ``c_k = Σ_j m_kj² / v_kj``, in float64 so that the
    expansion loses no precision: two small matrix products instead of a
    ``(..., K, d)`` tensor and its elementwise passes (forward and backward,
    more than half of a training step's time with 500 pseudo-inputs).
    Gradients flow to ``z`` and to the components; :meth:`VampPrior.frozen`
    holds the components fixed for many calls.

    Parameters
    ----------
    mean, logvar : Tensor of shape (K, d)
        The components ``q(z|u_k)``.
    """

    n_aux = 0

    def __init__(self, mean, logvar):
        mean, logvar = mean.to(torch.float64), logvar.to(torch.float64)
        inv_var = torch.exp(-logvar)
        self._a = inv_var.T  # (d, K)
        self._b = (mean * inv_var).T  # (d, K)
        self._c = (mean * mean * inv_var + logvar + LOG_2PI).sum(-1)  # (K,)

    def log_prob(self, z, eps=None):
        """Exact ``log p(z)``, shape ``z.shape[:-1]``, in the dtype of ``z``."""
        z64 = z.to(torch.float64)
        log_comp = -0.5 * ((z64 * z64) @ self._a - 2.0 * (z64 @ self._b) + self._c)  # (..., K)
        log_p = log_mean_exp(log_comp, dim=-1)
        return log_p.to(z.dtype)
