"""The variational auto-encoder: the one place where loss terms and estimates are computed."""

import contextlib
import copy
import math
import weakref

import torch
from torch import nn

from .networks import gaussian_log_prob_of_noise, log_mean_exp, standard_normal_kl

#: Floats of importance-sampling noise :meth:`VAE.log_marginal` draws at once (8 MiB).
NOISE_BLOCK_FLOATS = 2**20


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
        Has ``log_prob(z, eps)``, ``sample(n, generator, device, dtype)``,
        ``frozen()`` and ``n_aux``, the width of the noise its estimate
        consumes (0 when exact).
    hidden_layer_sizes : tuple of int, default=()
        The widths the networks were built with; with the networks' own
        statements (``floats_per_row``, ``floats_per_sample``) they give the
        memory a row needs (:meth:`memory_per_row`).
    """

    def __init__(self, encoder, decoder, likelihood, prior, *, hidden_layer_sizes=()):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.prior = prior
        self.hidden_layer_sizes = tuple(hidden_layer_sizes)

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
        log_q = gaussian_log_prob_of_noise(eps_z, logvar[:, None, :])
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
            loss = -log_mean_exp(log_w, dim=1)
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
            estimate does not depend on which rows are scored with it (but
            for the rounding of the matrix products, whose kernels change
            with the number of rows).
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

    def log_marginal(self, x, n_samples, *, seed, samples_per_chunk=None, prior=None):
        """Importance-sampled ``log p(x)`` of each row of ``x``, in float64.

        ``log p(x) ≈ logsumexp_s log w_s - log S`` with ``S = n_samples``
        weights from :meth:`log_weights`. The noise is drawn here, in fixed
        blocks of samples (at most :data:`NOISE_BLOCK_FLOATS` floats each,
        block ``b`` from seed ``seed + b``), in float64 and rounded to the
        module's precision: every row sees the same noise whatever the rows
        and chunks, so a row's estimate depends on that row alone, to the
        rounding of the networks' matrix products (BLAS picks its kernels by
        the number of rows and threads: float32 rows agree within
        ``1e-5 (|log p| + n_features)``, not bit for bit). The
        weights are computed ``samples_per_chunk`` samples at a time (see
        :meth:`memory_per_row`) and accumulated in float64.

        Parameters
        ----------
        x : Tensor (B, D)
        n_samples : int
        seed : int
        samples_per_chunk : int or None
            ``None``: all samples of a block at once.
        prior : object or None
            The prior's :meth:`frozen` form, to share between calls.
        """
        ref = self._ref
        dev, dtype = ref.device, ref.dtype
        S, d, n_aux = n_samples, self.encoder.n_out, self.prior.n_aux
        block = max(1, NOISE_BLOCK_FLOATS // (d + n_aux))
        step = samples_per_chunk or block
        acc = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=dev)
        with contextlib.ExitStack() as stack:
            if prior is None:
                prior = stack.enter_context(self.prior.frozen())
            for b in range(-(-S // block)):
                gen = torch.Generator(device=dev).manual_seed(seed + b)
                kw = dict(generator=gen, device=dev, dtype=torch.float64)
                size = min(block, S - b * block)
                eps_z = torch.randn(size, d, **kw).to(dtype)
                eps_aux = torch.randn(size, n_aux, **kw).to(dtype) if n_aux else None
                for s0 in range(0, size, step):
                    aux = eps_aux[s0 : s0 + step] if n_aux else None
                    log_w = self.log_weights(x, eps_z[s0 : s0 + step], aux, prior)
                    acc = torch.logaddexp(acc, torch.logsumexp(log_w.double(), dim=1))
        return acc - math.log(S)

    def memory_per_row(self, task, *, n_samples=1, n_out=0, itemsize=8):
        """Bytes of temporaries one row needs in ``task`` (for chunk sizes).

        ``"log_marginal"``: per (row, sample) pair of :meth:`log_marginal`;
        ``"loss"``: a row of :meth:`training_loss` with ``n_samples``
        importance samples; ``"map"``: a row through an encoder or decoder
        with ``n_out`` outputs; ``"squared_error"``: a row of
        :meth:`squared_error`; ``"sample"``: a row of :meth:`sample_latent`.
        ``itemsize`` is the bytes per float (8 for float64, 4 for float32).

        A user's network (:mod:`.custom`) states the activations it was
        measured to make per row (``measured_floats_per_row``,
        ``measured_floats_per_sample``); they are counted in every task, the
        encoder's conservatively once per (row, sample) pair of
        ``"log_marginal"``.
        """
        hidden = self.hidden_layer_sizes
        widest = max(hidden, default=1)
        per_row = getattr(self.encoder, "floats_per_row", 0)
        per_sample = getattr(self.decoder, "floats_per_sample", 0)
        per_sample += getattr(self.likelihood, "floats_per_sample", 0)
        user_row = getattr(self.encoder, "measured_floats_per_row", 0)
        user_sample = getattr(self.decoder, "measured_floats_per_sample", 0)
        n_features = self.decoder_width
        if task == "log_marginal":
            floats = 3 * n_features + 2 * widest
            # The VampPrior's log p(z) holds its K component densities per
            # pair, always in float64 (8 bytes, counted in units of itemsize).
            floats += 2 * getattr(self.prior, "n_components_mixture", 0) * 8 // itemsize
            floats += per_sample + user_row
        elif task == "loss":
            floats = n_samples * (n_features + 2 * (sum(hidden) or 1) + per_sample) + user_row
        elif task == "map":
            floats = n_out + widest + max(per_row, per_sample)
        elif task == "squared_error":
            floats = 2 * n_features + widest + user_row + user_sample
        elif task == "sample":
            floats = 4 * sum(hidden) + 6 * self.encoder.n_out
            if getattr(self.prior, "n_components_mixture", 0):
                floats += n_features + per_row
        else:
            raise ValueError(f"Unknown task {task!r}.")
        return itemsize * max(1, floats)

    @property
    def decoder_width(self):
        """Number of features of ``x`` (the decoder's outputs)."""
        decoder = self.decoder
        return decoder.n_out if hasattr(decoder, "n_out") else decoder.out.out_features

    @torch.no_grad()
    def init_from_projections(self, encoder_weight, encoder_bias, decoder_weight, decoder_bias):
        """Start as an affine auto-encoder (e.g. PCA's projections).

        The encoder mean starts as ``x @ encoder_weight.T + encoder_bias``
        and the decoder's output as ``z @ decoder_weight.T + decoder_bias``;
        the nonlinear branches start at zero (their hidden layers keep their
        random initialisation). Arrays are taken in any float dtype.
        """
        ref = self._ref

        def t(a):
            return torch.as_tensor(a, dtype=ref.dtype)

        self.encoder.set_linear_mean(t(encoder_weight), t(encoder_bias))
        self.decoder.set_linear(t(decoder_weight), t(decoder_bias))

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
        return (self.residuals(x, eps_z) ** 2).sum(-1)

    def residuals(self, x, eps_z):
        """``x - E[x|z]`` at ``z = μ(x) + σ(x) eps_z`` (B, D)."""
        mean, logvar = self.encoder(x)
        z = mean + torch.exp(0.5 * logvar) * eps_z
        return x - self.decode_mean(z)

    @torch.no_grad()
    def fit_noise_variance(self, chunks, *, seed, floor=0.0):
        """Set the Gaussian likelihood's variance to its maximum-likelihood value.

        Given the networks, the variance that maximises the ELBO on the data
        is the mean squared error of the decoder under ``q(z|x)`` per feature
        (:meth:`squared_error`, noise from ``seed``), as probabilistic PCA's
        noise variance is its residual variance; at least ``floor``. The rows
        come as ``chunks``, an iterable of tensors. Returns the variance.
        """
        device = next(self.parameters()).device
        n = d = 0
        total = torch.zeros((), dtype=torch.float64, device=device)
        for x, eps in self._with_posterior_noise(chunks, seed):
            n, d = n + x.shape[0], x.shape[1]
            total += self.squared_error(x, eps).sum(dtype=torch.float64)
        variance = max(float(total) / (n * d), floor)
        self.set_noise_variance(variance)
        return variance

    @torch.no_grad()
    def fit_feature_variances(self, chunks, *, seed):
        """Set per-feature learned variances to their maximum-likelihood values.

        As :meth:`fit_noise_variance`, per feature: the mean squared error
        of each feature under ``q(z|x)`` (noise from ``seed``), at least the
        likelihood's floor. No-op unless the likelihood has per-feature
        variances (``set_feature_variances``).
        """
        setter = getattr(self.likelihood, "set_feature_variances", None)
        if setter is None or self.likelihood.amortized:
            return
        n, total = 0, None
        for x, eps in self._with_posterior_noise(chunks, seed):
            part = (self.residuals(x, eps) ** 2).sum(0, dtype=torch.float64)
            n, total = n + x.shape[0], part if total is None else total + part
        setter(total / max(1, n))

    @torch.no_grad()
    def mean_decoder_variance(self, chunks, *, seed):
        """The learned decoder variances' mean over features and rows (a summary).

        At ``z = μ(x) + σ(x) ε`` (noise from ``seed``) for the rows of
        ``chunks``, as :meth:`fit_noise_variance` reads them. ``None`` unless
        the likelihood learns its variances.
        """
        variances = getattr(self.likelihood, "variances", None)
        if variances is None:
            return None
        device = next(self.parameters()).device
        n, total = 0, torch.zeros((), dtype=torch.float64, device=device)
        for x, eps in self._with_posterior_noise(chunks, seed):
            mean, logvar = self.encoder(x)
            out = self.decoder(mean + torch.exp(0.5 * logvar) * eps)
            var = variances(out).expand(x.shape[0], x.shape[1])
            n, total = n + x.numel(), total + var.sum(dtype=torch.float64)
        return float(total) / max(1, n)

    @torch.no_grad()
    def noise_residuals(self, chunks, *, seed):
        """The residuals ``x - E[x|z]`` (float64) at ``z ~ q(z|x)`` (noise from
        ``seed``) of the rows of ``chunks``: what ``decoder_variance="full"``'s
        mixture noise is fitted to (:class:`~.likelihoods.MixtureNoiseLikelihood`)."""
        parts = [
            self.residuals(x, eps).to(torch.float64)
            for x, eps in self._with_posterior_noise(chunks, seed)
        ]
        return torch.cat(parts)

    def _with_posterior_noise(self, chunks, seed):
        """``(x, eps)`` for each tensor ``x`` of ``chunks``: the standard normal
        noise of ``z = μ(x) + σ(x) eps``, one row per row of ``x``, drawn in
        order from one generator seeded with ``seed`` (what the calibrations
        after training read the networks at)."""
        gen = torch.Generator(device=next(self.parameters()).device).manual_seed(seed)
        for x in chunks:
            shape = (x.shape[0], self.encoder.n_out)
            yield x, torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype)

    def set_noise_variance(self, variance):
        """Set the Gaussian likelihood's scalar variance (no-op for other likelihoods).

        Mixture noise (``decoder_variance="full"``) goes back to the scalar
        variance until it is fitted again.
        """
        setter = getattr(self.likelihood, "set_variance", None)
        if setter is not None:
            setter(variance)

    def init_prior_scale(self, z, var=None):
        """Let a prior with a data-dependent standardisation fit it to ``z``.

        ``var``: the posterior variances at ``z`` (see
        :meth:`~.priors.HierarchicalPrior.init_scale`), or ``None``.
        """
        if self.prior_has_scale:
            self.prior.init_scale(z, var)

    @property
    def prior_has_scale(self):
        """Whether the prior has a data-dependent standardisation (:meth:`init_prior_scale`)."""
        return getattr(self.prior, "init_scale", None) is not None

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


#: float64 copies of fitted modules for float64 inference, by module (see
#: :func:`in_precision`); an entry goes with its module.
_FLOAT64_MODULES = weakref.WeakKeyDictionary()


def in_precision(module, dtype):
    """``module`` in ``dtype`` (``torch.float32``: itself; else a float64 copy).

    The float64 copy is made once and reused until the weights change: the
    tensors' ``_version`` counters catch writes (e.g. ``load_state_dict``),
    and training drops it (:func:`forget_precisions`; the fused Adam step
    does not count in ``_version``). It lives beside the module, not in it:
    it is never pickled. Threads that build it at the same time each get a
    correct copy; the last one is kept.
    """
    if dtype == torch.float32:
        return module
    versions = tuple(t._version for t in module.state_dict(keep_vars=True).values())
    cached = _FLOAT64_MODULES.get(module)
    if cached is not None and cached[0] == versions:
        return cached[1]
    # Outside the caller's inference_mode: a copy made there would hold
    # inference tensors.
    with torch.inference_mode(False), torch.no_grad():
        copy64 = copy.deepcopy(module).to(torch.float64)
    copy64.eval()
    _FLOAT64_MODULES[module] = (versions, copy64)
    return copy64


def forget_precisions(module):
    """Drop the float64 copy of ``module`` (its weights are about to change)."""
    _FLOAT64_MODULES.pop(module, None)
