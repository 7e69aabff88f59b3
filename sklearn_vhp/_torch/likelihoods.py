"""Observation models p(x|z) given the decoder's output."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .networks import MLP, gaussian_log_density

#: Learned decoder log-variances move softly within ``± LEARNED_LOGVAR_BOUND``
#: of the log of the training variance (e^12: a factor of 160,000 either way).
LEARNED_LOGVAR_BOUND = 12.0
#: The per-feature raw log-variances are multiplied by this gain: Adam moves
#: a parameter by about the learning rate per step, and a log-variance that
#: must travel ~8 nats (0.01 to 3e-6) took 8,000 steps at gain 1.
FEATURE_LOGVAR_GAIN = 10.0


class BernoulliLikelihood(nn.Module):
    """Independent Bernoulli pixels; the decoder outputs logits."""

    def log_prob(self, x, out):
        """``log p(x|z)`` summed over features; broadcasts ``x`` against ``out``.

        ``Σ_j x_j l_j - softplus(l_j)`` (the negative of
        ``binary_cross_entropy_with_logits``): the first sum is a batched
        matrix-vector product and the second one elementwise pass, instead of
        the several passes over an expanded ``x`` that the loss function makes.
        ``x`` is ``(B, 1, D)`` (or ``(B, D)`` for one sample per row).
        """
        if x.dim() == out.dim() and x.shape[-2] == 1 and out.dim() >= 3:
            dot = torch.matmul(out, x.transpose(-1, -2)).squeeze(-1)
        else:
            dot = (x * out).sum(-1)
        return dot - F.softplus(out).sum(-1)

    def mean(self, out):
        return torch.sigmoid(out)


class GaussianLikelihood(nn.Module):
    """Independent Gaussians of fixed variance; the decoder outputs the mean.

    The variance is fixed rather than learned: a learned variance lets the
    model trade reconstruction for KL until the posterior collapses (seen on
    the pendulum), and a fixed one makes ``beta = 1`` the usual ELBO.
    """

    def __init__(self, variance):
        super().__init__()
        self.register_buffer("variance", torch.tensor(float(variance)))

    def set_variance(self, variance):
        """Set the variance (the training variance, or its calibrated value)."""
        self.variance.fill_(float(variance))

    def log_prob(self, x, out):
        var = self.variance
        sq = (out - x) ** 2
        return -0.5 * (sq / var + torch.log(2 * math.pi * var)).sum(-1)

    def mean(self, out):
        return out


class MixtureNoiseLikelihood(GaussianLikelihood):
    """Gaussian mixture noise with full covariances, fitted in closed form.

    ``decoder_variance="full"``: ``p(x|z) = Σ_k π_k N(x; mean(z), Σ_k)``,
    ``S`` components with full covariances around the decoder's mean. The
    residuals of real data are correlated (neighbouring pixels, related
    columns) and differ in size and shape from row to row (flat and
    textured image patches, edges of each orientation): the Gaussian scale
    mixtures of natural images (Wainwright & Simoncelli, 2000) and a mixture
    of shapes besides. A network that outputs a variance per feature can
    describe neither.

    The likelihood is :class:`GaussianLikelihood`'s, with the scalar
    ``variance``, until :meth:`fit` sets the mixture to residuals by EM (the
    estimator does after training, and with ``trained`` the trainer after
    every epoch of the main phase, so that the networks train against it);
    :meth:`set_variance` goes back to the scalar variance.

    Each ``Σ_k`` is stored through its whitening matrix ``W_k = L_k⁻¹``
    (``Σ_k = L_k L_kᵀ``, lower triangular), so a component's density is one
    matrix product per sample: ``log N = -|W_k (x - mean)|²/2 + log|W_k| -
    D/2 log 2π``. Every ``Σ_k`` is shrunk towards its spherical part
    (:func:`_shrunk`) and has eigenvalues of at least ``floor``, which keeps
    the density bounded where a feature is reconstructed exactly.
    """

    def __init__(self, n_features, variance, floor, n_components, trained=False):
        super().__init__(variance)
        self.trained = bool(trained)
        d, s = int(n_features), int(n_components)
        self.register_buffer("floor", torch.tensor(float(floor)))
        self.register_buffer("fitted", torch.tensor(False))
        self.register_buffer("whiten", torch.eye(d).repeat(s, 1, 1))
        self.register_buffer("log_weights", torch.full((s,), -math.log(s)))
        self._is_fitted = False

    def set_variance(self, variance):
        """The scalar variance ``variance`` (training), until :meth:`fit` is called again."""
        super().set_variance(variance)
        self._set_fitted(False)

    def _set_fitted(self, value):
        self.fitted.fill_(value)
        self._is_fitted = bool(value)

    @property
    def is_fitted(self):
        """Whether the mixture is fitted (a host copy of the ``fitted`` buffer:
        reading a device tensor at every training step would wait for the device)."""
        if getattr(self, "_is_fitted", None) is None:
            self._is_fitted = bool(self.fitted)
        return self._is_fitted

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._is_fitted = None  # the buffer may have changed

    @property
    def floats_per_sample(self):
        """Temporaries per (row, sample) pair: a whitened residual per component."""
        s, d = self.whiten.shape[:2]
        return s * d + 2 * s

    def log_prob(self, x, out):
        if not self.is_fitted:
            return super().log_prob(x, out)
        # One product whitens the residual by every component: (..., D) @ (D, S D)
        s, d = self.whiten.shape[:2]
        stacked = self.whiten.transpose(-1, -2).permute(1, 0, 2).reshape(d, s * d)
        y = torch.matmul(out - x, stacked).unflatten(-1, (s, d))  # (..., S, D)
        log_det = torch.log(torch.diagonal(self.whiten, dim1=-2, dim2=-1)).sum(-1)  # (S,)
        log_k = self.log_weights + log_det - 0.5 * (y * y).sum(-1)  # (..., S)
        return torch.logsumexp(log_k, -1) - 0.5 * y.shape[-1] * math.log(2 * math.pi)

    @torch.no_grad()
    def fit(self, residuals, n_iter=100, tol=1e-4):
        """Fit the mixture to ``residuals`` (N, D) by EM, in float64.

        Maximum likelihood of the residuals ``x - mean(z)`` at codes drawn
        from ``q(z|x)`` (the ELBO's reconstruction term, as the scalar
        variance is calibrated). A fitted mixture is the starting point (the
        trainer refits it after every epoch, a few iterations each); else
        the components start as a scale mixture, the residuals' covariance
        times scales log-spaced over four decades, with equal weights. A
        component left with (almost) no rows keeps its covariance. EM stops
        after ``n_iter`` iterations, or when the mean log-likelihood gains
        less than ``tol`` nats per feature. Returns the mixture's mean
        variance ``Σ_k π_k tr(Σ_k) / D``.
        """
        r = residuals.to(torch.float64)
        n, d = r.shape
        s = self.log_weights.numel()
        like = dict(dtype=r.dtype, device=r.device)
        eye = torch.eye(d, **like)
        floor = float(self.floor) * eye
        if self.is_fitted:
            factor = torch.linalg.solve_triangular(
                self.whiten.to(**like), eye.expand(s, d, d), upper=False
            )
            cov = factor @ factor.transpose(-1, -2)
            log_pi = self.log_weights.to(**like)
        else:
            scales = torch.logspace(-2, 2, s, **like)
            cov = scales[:, None, None] * (r.T @ r / n) + floor
            log_pi = torch.full((s,), -math.log(s), **like)
        previous = -math.inf
        for _ in range(n_iter):
            chol, cov = _cholesky(cov, eye)  # (S, D, D)
            y = torch.linalg.solve_triangular(chol, r.T.expand(s, d, n), upper=False)
            log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
            log_k = log_pi - 0.5 * (y * y).sum(1).T - 0.5 * log_det  # (N, S)
            log_norm = torch.logsumexp(log_k, 1, keepdim=True)
            mean_ll = float(log_norm.mean()) / d
            if mean_ll - previous < tol:
                break
            previous = mean_ll
            resp = torch.exp(log_k - log_norm)
            total = resp.sum(0)
            alive = total > 1e-6 * n
            log_pi = torch.log(total.clamp_min(1e-300) / n).clamp_min(-80.0)
            scatter = torch.stack([(r * resp[:, k, None]).T @ r for k in range(s)])
            fitted = _shrunk(scatter / total.clamp_min(1e-300)[:, None, None], total, eye)
            cov = torch.where(alive[:, None, None], fitted + floor, cov)
        chol, cov = _cholesky(cov, eye)
        self.whiten.copy_(torch.linalg.solve_triangular(chol, eye.expand(s, d, d), upper=False))
        self.log_weights.copy_(log_pi)
        self._set_fitted(True)
        return float((torch.exp(log_pi) * torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)).sum())


def _shrunk(cov, rows, eye):
    """Covariances (S, D, D) of ``rows`` (S,) rows each, shrunk towards their spherical parts.

    The oracle approximating shrinkage of Chen et al. (2010), as
    :func:`sklearn.covariance.oas`, per component (with its weighted row
    count): a covariance estimated from few rows per feature puts almost no
    variance on directions its rows did not vary in, and held-out rows that
    do are scored as impossible; the shrinkage, strong for few rows and
    vanishing for many, keeps them plausible.
    """
    d = cov.shape[-1]
    mu = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)  # (S,)
    alpha = (cov * cov).mean((-2, -1))
    num = alpha + mu**2
    den = (rows + 1) * (alpha - mu**2 / d)
    shrinkage = torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(den)).clamp(max=1)
    shrinkage = shrinkage[:, None, None]
    return (1 - shrinkage) * cov + shrinkage * mu[:, None, None] * eye


def _cholesky(cov, eye):
    """Cholesky factors of ``cov`` (S, D, D), and ``cov``: with jitter where rounding broke it.

    A floor far below the data's scale (a tiny fixed ``noise_variance``) can
    leave a covariance of exactly repeated residuals indefinite in float64:
    such a component gets ``1e-12`` of its mean variance added, then ten
    times more, until it factors.
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    jitter = 1e-12 * torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).abs().clamp_min(1e-300)
    while bool((info > 0).any()):
        bad = (info > 0)[:, None, None]
        cov = torch.where(bad, cov + jitter[:, None, None] * eye, cov)
        jitter = jitter * 10
        chol, info = torch.linalg.cholesky_ex(cov)
    return chol, cov


class LearnedGaussianLikelihood(nn.Module):
    """Independent Gaussians whose variances are learned with the networks.

    ``decoder_variance="feature"``: one learned variance per feature (the
    same for every code). ``"amortized"``: the decoder (wrapped in a
    :class:`VarianceDecoder`) outputs a mean and a log-variance per feature,
    ``out = [mean, raw]`` of width ``2 n_features``.

    Every variance is ``floor + v0 exp(B tanh(r / B))`` with ``r`` the raw
    (learned) value, ``v0`` the training variance it starts from
    (``r = 0``) and ``B`` :data:`LEARNED_LOGVAR_BOUND`: at least ``floor``,
    which keeps the density bounded where a feature is reconstructed
    exactly (a constant feature), and smooth in ``r``.
    """

    def __init__(self, n_features, initial_variance, floor, amortized=False):
        super().__init__()
        self.n_features, self.amortized = int(n_features), bool(amortized)
        self.register_buffer(
            "log_initial_variance", torch.tensor(math.log(float(initial_variance)))
        )
        self.register_buffer("floor", torch.tensor(float(floor)))
        self.raw_log_variance = None if amortized else nn.Parameter(torch.zeros(self.n_features))

    def _raw(self, out):
        if self.amortized:
            return out[..., self.n_features :]
        return FEATURE_LOGVAR_GAIN * self.raw_log_variance

    @torch.no_grad()
    def set_feature_variances(self, variances):
        """Set the per-feature variances (``"feature"``), as closely as floor and bounds allow."""
        v = torch.as_tensor(variances, dtype=self.floor.dtype, device=self.floor.device)
        excess = torch.clamp(v - self.floor, min=1e-3 * self.floor)
        t = (torch.log(excess) - self.log_initial_variance) / LEARNED_LOGVAR_BOUND
        raw = LEARNED_LOGVAR_BOUND * torch.atanh(torch.clamp(t, -0.999, 0.999))
        self.raw_log_variance.copy_(raw / FEATURE_LOGVAR_GAIN)

    def variance_from_raw(self, raw):
        """The variance of raw log-variances ``raw`` (see the class docstring)."""
        bound = LEARNED_LOGVAR_BOUND
        log_v = self.log_initial_variance + bound * torch.tanh(raw / bound)
        return self.floor + torch.exp(log_v)

    def variances(self, out):
        """Per-feature variances given the decoder's output ``out`` (broadcastable to the mean)."""
        return self.variance_from_raw(self._raw(out))

    def log_prob(self, x, out):
        var = self.variances(out)
        sq = (self.mean(out) - x) ** 2
        return gaussian_log_density(sq / var, torch.log(var).expand_as(sq))

    def mean(self, out):
        return out[..., : self.n_features] if self.amortized else out


class VarianceDecoder(nn.Module):
    """A decoder and a log-variance network from the same code: ``[mean, raw log-variance]``.

    ``decoder_variance="amortized"``: the package's own network
    (:class:`~.networks.MLP`, one hidden layer of ``width`` units, no
    shortcut) maps the code to a raw log-variance per feature beside any
    decoder, built-in or the user's, so a user's decoder outputs means only.
    Its output layer starts at zero (the training variance everywhere).
    """

    def __init__(self, decoder, n_components, n_features, width, activation=nn.Tanh):
        super().__init__()
        self.mean_decoder = decoder
        self.log_variance = MLP(
            n_components, (width,), n_features, activation=activation, shortcut=False
        )
        self.n_out = int(n_features)

    def forward(self, z):
        return torch.cat([self.mean_decoder(z), self.log_variance(z)], dim=-1)

    @torch.no_grad()
    def reset_log_variance(self):
        """Start at the training variance: the raw log-variance is zero everywhere."""
        self.log_variance.out.weight.zero_()
        self.log_variance.out.bias.zero_()

    def set_linear(self, weight, bias):
        self.mean_decoder.set_linear(weight, bias)

    @property
    def floats_per_sample(self):
        width = self.log_variance.out.in_features
        return getattr(self.mean_decoder, "floats_per_sample", 0) + 2 * self.n_out + width

    @property
    def measured_floats_per_sample(self):
        return getattr(self.mean_decoder, "measured_floats_per_sample", 0)
