"""The variational auto-encoder: the one place where loss terms are computed."""

import math

import torch
from torch import nn

from .networks import standard_normal_kl


class VAE(nn.Module):
    """Encoder ``q_φ(z|x)``, decoder ``p_θ(x|z)`` and a prior ``p(z)``.

    Parameters
    ----------
    encoder : nn.Module
        Maps ``x`` to ``(mean, logvar)`` of ``q(z|x)``.
    decoder : nn.Module
        Maps ``z`` to the likelihood's parameters (logits or mean).
    likelihood : nn.Module
        Has ``log_prob(x, out)`` and ``mean(out)``.
    prior : nn.Module
        Has ``log_prob(z, eps)``, ``sample(n, generator, device, dtype)`` and
        ``n_aux``, the width of the noise its estimate consumes (0 when exact).
    """

    def __init__(self, encoder, decoder, likelihood, prior):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.prior = prior

    # -- groups of parameters (REWO trains the prior only in its main phase)
    def autoencoder_parameters(self):
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def prior_parameters(self):
        return list(self.prior.parameters())

    @property
    def _ref(self):
        return next(self.decoder.parameters())

    def _randn(self, shape, generator):
        ref = self._ref
        return torch.randn(shape, generator=generator, device=ref.device, dtype=ref.dtype)

    def _sample_terms(self, x, eps_z, eps_aux=None, prior=None):
        """Per-sample terms of the importance weights ``p(x,z)/q(z|x)``.

        ``z_s = μ(x) + σ(x) eps_z[..., s, :]`` and, for the hierarchical prior,
        ``log p(z_s)`` is its importance-weighted estimate with the noise
        ``eps_aux`` (leading axis: samples of ``ζ`` per ``z``).

        Parameters
        ----------
        x : Tensor (B, D)
        eps_z : Tensor (B, S, d) or (S, d)
            Standard normal noise of ``z`` (``(S, d)`` is shared by all rows).
        eps_aux : Tensor (M, B, S, n_aux) or None
            Noise of ``ζ`` for the prior's estimate (``None`` when exact).
        prior : object or None
            Computes ``log p(z)`` in place of ``self.prior`` (e.g. the
            VampPrior's :meth:`~.priors.VampPrior.frozen` copy).

        Returns
        -------
        log_px, log_pz, log_q : Tensors (B, S)
            ``log p(x|z_s)``, ``log p(z_s)`` (or its estimate), ``log q(z_s|x)``.
        out : Tensor (B, S, D)
            The decoder's output at ``z_s``.
        """
        mean, logvar = self.encoder(x)  # (B, d)
        z = mean[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps_z  # (B, S, d)
        # log q(z|x) from the noise directly: exact and cheaper.
        log_q = -0.5 * (eps_z**2 + logvar[:, None, :] + math.log(2 * math.pi)).sum(-1)
        out = self.decoder(z)
        log_px = self.likelihood.log_prob(x[:, None, :], out)
        log_pz = (self.prior if prior is None else prior).log_prob(z, eps_aux)
        return log_px, log_pz, log_q, out

    def training_loss(self, x, *, beta, n_importance, generator, objective="elbo"):
        """Per-row training loss of a mini-batch and its parts.

        ``objective="elbo"``: one ``z ~ q(z|x)`` (reparametrised) and the loss
        ``-log p(x|z) + β (log q(z|x) - log p(z))``; with the hierarchical
        prior ``log p(z)`` is its ``K = n_importance``-sample
        importance-weighted bound, so the KL term is an upper bound in
        expectation (paper Eq. 10).

        ``objective="iwae"``: ``K = n_importance`` joint samples from the
        proposal ``q(z|x)`` (times ``q(ζ|z)``, one ``ζ`` per ``z``, for the
        hierarchical prior: the two-layer IWAE) and the loss
        ``-log 1/K Σ_k exp(log p(x|z_k) - β (log q_k - log p_k))`` where
        ``log q_k - log p_k`` is ``log q(z_k|x) - log p(z_k)``, or for the
        hierarchical prior
        ``log q(z_k|x) q(ζ_k|z_k) - log p(z_k|ζ_k) p(ζ_k)``. At ``β = 1`` this
        is the IWAE bound (Burda et al., 2016); at ``K = 1`` it equals the
        ELBO loss exactly, for every ``β``, given the same noise.

        Returns
        -------
        loss : Tensor (B,)
            The per-row loss to minimise (average it over the batch).
        nll : Tensor (B,)
            ``-log p(x|z)``, averaged over the ``z`` samples, detached.
        kl : Tensor (B,)
            ``log q - log p`` as above, averaged over the samples, detached.
        sq_err : Tensor ()
            Mean squared error between ``x`` and the decoder mean, per element
            (the REWO/GECO constraint ``C``), detached.
        """
        if objective not in ("elbo", "iwae"):
            raise ValueError(f"Unknown objective {objective!r}.")
        B, d, n_aux = x.shape[0], self.encoder.n_out, self.prior.n_aux
        if objective == "elbo":
            eps_z = self._randn((B, 1, d), generator)
            aux = self._randn((n_importance, B, 1, n_aux), generator) if n_aux else None
        else:
            eps_z = self._randn((B, n_importance, d), generator)
            aux = self._randn((1, B, n_importance, n_aux), generator) if n_aux else None
        log_px, log_pz, log_q, out = self._sample_terms(x, eps_z, aux)
        kl_s = log_q - log_pz  # (B, S)
        if objective == "elbo":
            loss = -log_px[:, 0] + beta * kl_s[:, 0]
        else:
            log_w = log_px - beta * kl_s
            loss = -(torch.logsumexp(log_w, dim=1) - math.log(n_importance))
        with torch.no_grad():
            nll = -log_px.mean(1)
            kl = kl_s.mean(1)
            sq_err = ((self.likelihood.mean(out) - x[:, None, :]) ** 2).mean()
        return loss, nll, kl, sq_err

    def log_weights(self, x, eps_z, eps_aux=None, prior=None):
        """Log importance weights of ``log p(x)`` under the joint proposal.

        ``z_s = μ(x) + σ(x) eps_z[s]`` and, for the hierarchical prior,
        ``ζ_s = μ(z_s) + σ(z_s) eps_aux[s]``: the proposal is
        ``q(z|x) q(ζ|z)`` and each weight is
        ``p(x|z) p(z|ζ) p(ζ) / (q(z|x) q(ζ|z))``. Priors with an exact
        ``log p(z)`` (standard normal, VampPrior) take ``eps_aux=None``.

        Parameters
        ----------
        x : Tensor (B, D)
        eps_z : Tensor (S, d)
            Noise shared by all rows (common random numbers), so a row's
            estimate does not depend on which rows are scored with it.
        eps_aux : Tensor (S, d_aux) or None
        prior : object or None
            Computes ``log p(z)`` in place of ``self.prior`` (see
            :meth:`_sample_terms`).

        Returns
        -------
        Tensor (B, S)
        """
        aux = None
        if eps_aux is not None:
            aux = eps_aux.expand(1, x.shape[0], *eps_aux.shape)
        log_px, log_pz, log_q, _ = self._sample_terms(x, eps_z, aux, prior)
        return log_px + log_pz - log_q

    def latent_statistics(self, x):
        """Posterior means and per-dimension KLs to ``N(0, 1)`` (diagnostics).

        Returns
        -------
        z_mean : Tensor (B, d)
            ``E[z|x]``.
        z_kl : Tensor (B, d)
            ``KL(q(z_j|x) || N(0, 1))`` per dimension.
        zeta_mean, zeta_kl : Tensors (B, n_aux) or None
            The same for ``q(ζ|z)`` at ``z = E[z|x]`` when the prior has an
            auxiliary posterior (the hierarchical prior), else ``None``.
        """
        z_mean, z_logvar = self.encoder(x)
        zeta_mean = zeta_kl = None
        aux_posterior = getattr(self.prior, "aux_posterior", None)
        if aux_posterior is not None:
            zeta_mean, zeta_logvar = aux_posterior(z_mean)
            zeta_kl = standard_normal_kl(zeta_mean, zeta_logvar)
        return z_mean, standard_normal_kl(z_mean, z_logvar), zeta_mean, zeta_kl

    def squared_error(self, x, eps_z):
        """Per-row ``Σ_j (x_j - E[x_j|z])²`` at ``z = μ(x) + σ(x) eps_z``.

        With ``eps_z ~ N(0, I)`` its mean over rows, divided by the number of
        features, is the maximum-likelihood variance of a Gaussian likelihood
        for the given networks (the ELBO's optimum in the variance).
        """
        mean, logvar = self.encoder(x)
        z = mean + torch.exp(0.5 * logvar) * eps_z
        return ((self.decode_mean(z) - x) ** 2).sum(-1)

    def set_noise_variance(self, variance):
        """Set the Gaussian likelihood's variance (no-op for other likelihoods)."""
        buffer = getattr(self.likelihood, "variance", None)
        if buffer is not None:
            buffer.fill_(float(variance))

    def init_prior_scale(self, z, var=None):
        """Let a prior with a data-dependent standardisation fit it to ``z``.

        ``var``: the posterior variances at ``z`` (see
        :meth:`~.priors.HierarchicalPrior.init_scale`), or ``None``.
        """
        init = getattr(self.prior, "init_scale", None)
        if init is not None:
            init(z, var)

    def standardise_prior(self, x):
        """Fit the prior's standardisation to the posteriors ``q(z|x)`` of rows ``x``."""
        mean, logvar = self.encoder(x)
        self.init_prior_scale(mean, torch.exp(logvar))

    def encode_mean(self, x):
        return self.encoder(x)[0]

    def decode_mean(self, z):
        return self.likelihood.mean(self.decoder(z))

    def sample_latent(self, n, generator, chunk=None):
        """``n`` draws from the prior; its networks see at most ``chunk`` rows at once."""
        ref = self._ref
        return self.prior.sample(n, generator, device=ref.device, dtype=ref.dtype, chunk=chunk)
