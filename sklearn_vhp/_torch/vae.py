"""The variational auto-encoder: the one place where loss terms are computed."""

import math

import torch
from torch import nn


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

    def loss_terms(self, x, n_importance, generator):
        """Per-row terms of the training objective for a mini-batch.

        Returns
        -------
        nll : Tensor (B,)
            ``-log p(x|z)`` for one ``z ~ q(z|x)`` (reparametrised).
        kl : Tensor (B,)
            Single-sample estimate of ``log q(z|x) - log p(z)``; with the
            hierarchical prior ``log p(z)`` is its K-sample importance-weighted
            bound, so ``kl`` is an upper bound on the KL divergence in
            expectation (paper Eq. 10).
        sq_err : Tensor ()
            Mean squared error between ``x`` and the decoder mean, per element
            (the REWO/GECO constraint ``C``), detached.
        """
        mean, logvar = self.encoder(x)
        eps = self._randn(mean.shape, generator)
        z = mean + torch.exp(0.5 * logvar) * eps
        out = self.decoder(z)
        nll = -self.likelihood.log_prob(x, out)
        log_q = -0.5 * (eps**2 + logvar + math.log(2 * math.pi)).sum(-1)
        aux = None
        if self.prior.n_aux:
            aux = self._randn((n_importance, *z.shape[:-1], self.prior.n_aux), generator)
        kl = log_q - self.prior.log_prob(z, aux)
        with torch.no_grad():
            sq_err = ((self.likelihood.mean(out) - x) ** 2).mean()
        return nll, kl, sq_err

    def log_weights(self, x, eps_z, eps_aux=None):
        """Log importance weights of ``log p(x)`` under the joint proposal.

        ``z_s = μ(x) + σ(x) eps_z[s]`` and, for the hierarchical prior,
        ``ζ_s = μ(z_s) + σ(z_s) eps_aux[s]``: the proposal is
        ``q(z|x) q(ζ|z)`` and each weight is
        ``p(x|z) p(z|ζ) p(ζ) / (q(z|x) q(ζ|z))``.

        Parameters
        ----------
        x : Tensor (B, D)
        eps_z : Tensor (S, d)
            Noise shared by all rows (common random numbers), so a row's
            estimate does not depend on which rows are scored with it.
        eps_aux : Tensor (S, d_aux) or None

        Returns
        -------
        Tensor (B, S)
        """
        mean, logvar = self.encoder(x)  # (B, d)
        z = mean[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps_z  # (B, S, d)
        log_q = -0.5 * (eps_z**2 + logvar[:, None, :] + math.log(2 * math.pi)).sum(-1)
        out = self.decoder(z)
        log_px = self.likelihood.log_prob(x[:, None, :], out)
        if eps_aux is not None:
            log_pz = self.prior.log_prob(z, eps_aux.expand(1, *z.shape[:-1], -1))
        else:
            log_pz = self.prior.log_prob(z)
        return log_px + log_pz - log_q

    def encode_mean(self, x):
        return self.encoder(x)[0]

    def decode_mean(self, z):
        return self.likelihood.mean(self.decoder(z))

    def sample_latent(self, n, generator):
        ref = self._ref
        return self.prior.sample(n, generator, device=ref.device, dtype=ref.dtype)
