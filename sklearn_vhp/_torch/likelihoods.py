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


#: ``MixtureNoiseLikelihood.shrinkage`` below zero: the oracle approximating
#: shrinkage towards the spherical part (what older models were fitted with).
OAS_SHRINKAGE = -1.0
#: :meth:`MixtureNoiseLikelihood.select`'s candidates: shrinkages (the oracle
#: approximating one, then shares towards the diagonal) and component counts.
SELECT_SHRINKAGES = (OAS_SHRINKAGE, 0.3, 0.1, 0.03, 0.0)
SELECT_COMPONENTS = (1, 2, 4, 8, 16)
#: ... the shrinkage is chosen with this many components.
SELECT_SHRINKAGE_COMPONENTS = 4
#: ... every ``SELECT_HOLD_OUT``-th row is held out; on at most
#: ``SELECT_FOLD_ROWS`` rows, each of the ``SELECT_FOLDS`` folds is held out
#: in turn (cross-validation: with few rows, a feature that only one or two
#: rows use must be held out to show what a mixture makes of it).
SELECT_HOLD_OUT, SELECT_FOLDS, SELECT_FOLD_ROWS = 5, 5, 2048
#: ... with fewer rows per feature: one component, the oracle approximating shrinkage.
SELECT_MIN_ROWS_PER_FEATURE = 10
#: ... then, with the chosen shrinkage and count, one scale per component or
#: ``SCALE_LEVELS`` of them: each component's covariance times multipliers
#: log-spaced from 1 to ``exp(SCALE_SPAN)``, with a weight each (a Gaussian
#: scale mixture per component. A mixture of 16 components fitted to image
#: patches themselves: 193.7 nats per held-out patch with one scale, 197.6 with
#: five; the default VHP fit: 192.6 and 195.5, docs/performance_notes.md).
#: The scales are chosen only if they gain ``SCALE_MIN_GAIN`` nats per held-out
#: row: on data without a spread of scales they would describe the rows as one
#: scale does (all weight on one level), at five times the cost of a density.
SCALE_LEVELS, SCALE_SPAN, SCALE_MIN_GAIN = 5, 3.0, 0.05


def scale_grid(n_scales, **like):
    """The log variance multipliers of ``n_scales`` scale levels: ``0 … SCALE_SPAN``."""
    if n_scales == 1:
        return torch.zeros(1, **like)
    return torch.linspace(0.0, SCALE_SPAN, n_scales, **like)


def _at_scales(constant, squared, log_c, d):
    """Log densities (..., S J) of ``S`` components at ``J`` scales each.

    ``constant`` (S, J): each (component, scale)'s log weight and log
    normaliser at scale 1; ``squared`` (..., S): the squared whitened
    residuals; ``log_c`` (J,): the scales' log multipliers; ``d``: the
    features. Scale ``c`` divides the squared residual by ``c`` and adds
    ``-d/2 log c``; at one scale (``c = 1``) the values are the unscaled
    components', bit for bit. The noise model's density and EM's both come
    from here.
    """
    constant = constant - 0.5 * d * log_c
    return (constant - 0.5 * squared[..., None] * torch.exp(-log_c)).flatten(-2)


class MixtureNoiseLikelihood(GaussianLikelihood):
    """Gaussian mixture noise with full covariances, fitted in closed form.

    ``decoder_variance="full"``: ``p(x|z) = Σ_k Σ_j π_kj N(x; mean(z) + b_k,
    c_j Σ_k)``, ``S`` components with full covariances around the decoder's
    mean, each at ``J`` scales ``c_j`` (:func:`scale_grid`; ``J = 1``: one
    Gaussian per component, ``c = 1``). The
    residuals of real data are correlated (neighbouring pixels, related
    columns) and differ in size and shape from row to row (flat and
    textured image patches, edges of each orientation): the Gaussian scale
    mixtures of natural images (Wainwright & Simoncelli, 2000) and a mixture
    of shapes besides. A network that outputs a variance per feature can
    describe neither; the scales let one component be a scale mixture of one
    shape. The means ``b_k`` are the residuals' modes (a binary
    column the decoder cannot decide, a ridge it rounds off): with a
    constant decoder the model is a Gaussian mixture of the data.

    The likelihood is :class:`GaussianLikelihood`'s, with the scalar
    ``variance``, until :meth:`fit` sets the mixture to residuals by EM (the
    estimator does after training, and with ``trained`` the trainer after
    every epoch of the main phase, so that the networks train against it);
    :meth:`set_variance` goes back to the scalar variance.

    Each ``Σ_k`` is stored through its whitening matrix ``W_k = L_k⁻¹``
    (``Σ_k = L_k L_kᵀ``, lower triangular), so a component's density is one
    matrix product per sample: ``log N = -|W_k (x - mean - b_k)|²/2 +
    log|W_k| - D/2 log 2π``. Every ``Σ_k`` is regularised (:func:`_shrunk`)
    by the ``shrinkage`` buffer: towards its spherical part by the oracle
    approximating shrinkage (:data:`OAS_SHRINKAGE`), or by that share
    towards its diagonal (``0``: not at all); and it has eigenvalues of at
    least ``floor`` (the least scale is 1), which keeps the density bounded
    where a feature is reconstructed exactly. :meth:`select` chooses the
    number of components, of scales and the shrinkage by the likelihood of
    held-out residuals.
    """

    def __init__(self, n_features, variance, floor, n_components, trained=False, n_scales=1):
        super().__init__(variance)
        self.trained = bool(trained)
        self.n_features = int(n_features)
        self.register_buffer("floor", torch.tensor(float(floor)))
        self.register_buffer("fitted", torch.tensor(False))
        self.register_buffer("shrinkage", torch.tensor(OAS_SHRINKAGE))
        self.resize(n_components, n_scales)

    def resize(self, n_components, n_scales=1):
        """Room for ``n_components`` components at ``n_scales`` scales (fitted by :meth:`fit`)."""
        d, s, j = self.n_features, int(n_components), int(n_scales)
        like = dict(device=self.floor.device, dtype=self.floor.dtype)
        self.register_buffer("whiten", torch.eye(d, **like).repeat(s, 1, 1))
        self.register_buffer("log_weights", torch.full((s,), -math.log(s), **like))
        self.register_buffer("offsets", torch.zeros(s, d, **like))
        # Within each component: the scales' log weights (rows sum to one) and log multipliers.
        self.register_buffer("scale_log_weights", torch.full((s, j), -math.log(j), **like))
        self.register_buffer("log_scales", scale_grid(j, **like))
        self._set_fitted(False)

    @property
    def n_components(self):
        return self.log_weights.numel()

    @property
    def n_scales(self):
        return self.log_scales.numel()

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
        return s * d + 2 * s * self.n_scales

    def log_prob(self, x, out):
        if not self.is_fitted:
            return super().log_prob(x, out)
        # One product whitens the residual by every component: (..., D) @ (D, S D)
        s, d = self.whiten.shape[:2]
        stacked = self.whiten.transpose(-1, -2).permute(1, 0, 2).reshape(d, s * d)
        shift = torch.matmul(self.whiten, self.offsets[:, :, None]).squeeze(-1)  # W_k b_k
        y = torch.matmul(out - x, stacked).unflatten(-1, (s, d)) + shift  # (..., S, D)
        log_det = torch.log(torch.diagonal(self.whiten, dim1=-2, dim2=-1)).sum(-1)  # (S,)
        constant = (self.log_weights + log_det)[:, None] + self.scale_log_weights  # (S, J)
        log_k = _at_scales(constant, (y * y).sum(-1), self.log_scales, d)  # (..., S J)
        return torch.logsumexp(log_k, -1) - 0.5 * y.shape[-1] * math.log(2 * math.pi)

    @torch.no_grad()
    def fit(self, residuals, n_iter=100, tol=1e-4):
        """Fit the mixture to ``residuals`` (N, D) by EM (see :func:`_em`).

        Maximum likelihood of the residuals ``x - mean(z)`` at codes drawn
        from ``q(z|x)`` (the ELBO's reconstruction term, as the scalar
        variance is calibrated). A fitted mixture is the starting point (the
        trainer refits it after every epoch, a few iterations each); else
        the components start at the residuals' mean as a scale mixture, the
        residuals' covariance times scales log-spaced over four decades,
        with equal weights. A component left with (almost) no rows keeps its
        mean and covariance. EM stops after ``n_iter`` iterations, or when
        the mean log-likelihood gains less than ``tol`` nats per feature.
        Returns the mixture's mean variance ``Σ_k π_k tr(Σ_k) / D``.
        """
        r = residuals.to(torch.float64)
        start = self._fitted_state(r) if self.is_fitted else None
        mixture = _em(
            r,
            start,
            self.n_components,
            float(self.floor),
            float(self.shrinkage),
            n_iter,
            tol,
            self.n_scales,
        )
        return self._set_mixture(*mixture)

    def _set_mixture(self, means, cov, log_pi):
        """Store a mixture (float64 tensors; ``log_pi`` (S, J)); returns its mean variance."""
        d = cov.shape[-1]
        eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
        chol, cov = _cholesky(cov, eye)
        self.whiten.copy_(torch.linalg.solve_triangular(chol, eye.expand_as(cov), upper=False))
        log_weights = torch.logsumexp(log_pi, -1)
        self.log_weights.copy_(log_weights)
        self.scale_log_weights.copy_(log_pi - log_weights[:, None])
        self.offsets.copy_(means)
        self._set_fitted(True)
        scale = torch.exp(log_pi + self.log_scales.to(log_pi)).sum(-1)  # Σ_j π_kj c_j
        return float((scale * torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)).sum())

    def _fitted_state(self, r):
        """The fitted mixture's ``(means, covariances, log weights)`` in ``r``'s dtype."""
        like = dict(dtype=r.dtype, device=r.device)
        s, d = self.whiten.shape[:2]
        eye = torch.eye(d, **like)
        factor = torch.linalg.solve_triangular(
            self.whiten.to(**like), eye.expand(s, d, d), upper=False
        )
        cov = factor @ factor.transpose(-1, -2)
        log_pi = self.log_weights[:, None] + self.scale_log_weights
        return self.offsets.to(**like), cov, log_pi.to(**like)

    @torch.no_grad()
    def select(self, residuals, n_iter=20):
        """Choose the shrinkage and the numbers of components and scales by held-out residuals.

        Every fifth row of ``residuals`` (N, D) is held out; mixtures are
        fitted to the others (at most ``n_iter`` EM iterations each) and
        scored on them (on at most :data:`SELECT_FOLD_ROWS` rows, every row
        is held out once: five folds). First the shrinkage, among
        :data:`SELECT_SHRINKAGES` with :data:`SELECT_SHRINKAGE_COMPONENTS`
        components; then, with it, the number of components among
        :data:`SELECT_COMPONENTS` (those with at least two fitting rows
        each); then, with both, one scale per component or
        :data:`SCALE_LEVELS` (where they gain :data:`SCALE_MIN_GAIN` nats per
        held-out row; chosen before the count, with the shrinkage's four
        components, they led to 8 components at 193.9 nats per held-out
        patch instead of 16 at 195.5). With fewer than
        :data:`SELECT_MIN_ROWS_PER_FEATURE` rows per feature, one component,
        one scale and the oracle approximating shrinkage. Sets the three (the
        mixture is then not fitted: call :meth:`fit`) and returns them.
        """
        r = residuals.to(torch.float64)
        n = r.shape[0]
        folds = SELECT_FOLDS if n <= SELECT_FOLD_ROWS else 1
        fold = torch.arange(n, device=r.device) % SELECT_HOLD_OUT
        floor, scores = float(self.floor), {}

        def score(shrinkage, s, j=1):
            if (shrinkage, s, j) not in scores:
                total = 0.0
                for k in range(folds):
                    train, test = r[fold != k], r[fold == k]
                    mixture = _em(train, None, s, floor, shrinkage, n_iter, 1e-4, j)
                    log_k = _log_components(test, *mixture)
                    total += float(torch.logsumexp(log_k, 1).sum())
                scores[shrinkage, s, j] = total
            return scores[shrinkage, s, j]

        if n < SELECT_MIN_ROWS_PER_FEATURE * r.shape[1]:
            # A feature that no row moves may move in new rows: only the
            # spherical shrinkage gives it variance, and no held-out row can
            # show the need (100 digits: -3061 nats per held-out digit with
            # the choice, 20 without).
            shrinkage, s, j = OAS_SHRINKAGE, 1, 1
        else:
            most = max(1, (n - n // SELECT_HOLD_OUT) // 2)
            s = min(SELECT_SHRINKAGE_COMPONENTS, most)
            shrinkage = max(SELECT_SHRINKAGES, key=lambda a: score(a, s))
            counts = [k for k in SELECT_COMPONENTS if k <= most]
            s = max(counts, key=lambda k: score(shrinkage, k))
            held_out = n if folds > 1 else int((fold == 0).sum())  # rows scored
            gain = (score(shrinkage, s, SCALE_LEVELS) - score(shrinkage, s)) / held_out
            j = SCALE_LEVELS if gain > SCALE_MIN_GAIN else 1
        self.shrinkage.fill_(shrinkage)
        self.resize(s, j)
        return shrinkage, s, j


def _log_components(r, means, cov, log_pi, rows=None):
    """``log π_kj + log N(r; means_k, c_j cov_k)`` (N, S J) of rows ``r`` (N, D).

    ``log_pi`` (S, J): the weights of ``J`` scales per component
    (:func:`scale_grid`); the columns are component-major.

    Through whitening matrices: the rows are whitened by one batched matrix
    product, much faster than a triangular solve with N right-hand sides.
    ``rows``: ``r`` in a lower precision for that product (float32 halves
    EM's time; the densities are only compared with one another there).
    """
    s, d = cov.shape[:2]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    chol, _ = _cholesky(cov, eye)
    whiten = torch.linalg.solve_triangular(chol, eye.expand(s, d, d), upper=False)
    shift = torch.matmul(whiten, means[:, :, None]).transpose(-1, -2)  # (S, 1, D)
    rows = r if rows is None else rows
    y = torch.matmul(rows, whiten.transpose(-1, -2).to(rows.dtype)) - shift.to(rows.dtype)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_c = scale_grid(log_pi.shape[-1], dtype=cov.dtype, device=cov.device)
    constant = log_pi - 0.5 * log_det[:, None] - 0.5 * d * math.log(2 * math.pi)
    squared = (y * y).sum(-1).T.to(cov.dtype)  # (N, S)
    return _at_scales(constant, squared, log_c, d).to(r.dtype)  # (N, S J)


def _em(r, start, n_components, floor, shrinkage, n_iter, tol, n_scales=1):
    """EM for a Gaussian mixture of the rows ``r`` (N, D): ``(means, covariances, log weights)``.

    Each component has ``n_scales`` scales (:func:`scale_grid`): the log
    weights are (S, J), and a row's share in a component's mean and
    covariance is its responsibility divided by the scale's multiplier (the
    maximum-likelihood shape of a scale mixture).

    The parameters, their factorisations and the shrinkage are float64; the
    two products over the rows (whitening them, and the components'
    scatter matrices) run in float32, which halves the time (the patches'
    mixture: 7 s to 4.5 s on 2 cores) and changed no held-out score by
    more than 0.02 nats on the suite's data.

    ``start``: a mixture to start from, or ``None`` for the scale mixture at
    the rows' mean (see :meth:`MixtureNoiseLikelihood.fit`; its scales
    equally weighted around it). Covariances are regularised by
    :func:`_shrunk` with ``shrinkage`` and get ``floor`` added.
    """
    n, d = r.shape
    s, j = n_components, n_scales
    like = dict(dtype=r.dtype, device=r.device)
    eye = torch.eye(d, **like)
    log_c = scale_grid(j, **like)
    if start is not None:
        means, cov, log_pi = start
    else:
        means = r.mean(0).expand(s, d)
        centred = r - means[0]
        scales = torch.logspace(-2, 2, s, **like) / torch.exp(log_c).mean()
        cov = scales[:, None, None] * (centred.T @ centred / n) + floor * eye
        log_pi = torch.full((s, j), -math.log(s * j), **like)
    rows32 = r.to(torch.float32)
    previous = -math.inf
    for _ in range(n_iter):
        log_k = _log_components(r, means, cov, log_pi, rows32)  # (N, S J)
        log_norm = torch.logsumexp(log_k, 1, keepdim=True)
        mean_ll = float(log_norm.mean()) / d
        if mean_ll - previous < tol:
            break
        previous = mean_ll
        resp = torch.exp(log_k - log_norm).unflatten(1, (s, j))  # (N, S, J)
        log_pi = torch.log(resp.sum(0).clamp_min(1e-300) / n).clamp_min(-80.0)
        total = resp.sum((0, 2))
        alive = total > 1e-6 * n
        resp = (resp * torch.exp(-log_c)).sum(-1)  # a row at scale c_j counts 1/c_j
        weight = resp.sum(0)  # the total responsibility, for one scale
        share = resp / weight.clamp_min(1e-300)  # (N, S): each component's row weights
        means = torch.where(alive[:, None], share.T @ r, means)
        centred = rows32 - means[:, None, :].to(rows32.dtype)  # (S, N, D)
        weighted = centred * share.T[:, :, None].to(rows32.dtype)
        scatter = torch.matmul(centred.transpose(-1, -2), weighted).to(r.dtype)
        if j > 1:  # Σ_k = Σ_ij r_ikj (x_i - b_k)(x_i - b_k)ᵀ / c_j over Σ_ij r_ikj
            scatter = scatter * (weight / total.clamp_min(1e-300))[:, None, None]
        fitted = _shrunk(scatter, total, eye, shrinkage)
        cov = torch.where(alive[:, None, None], fitted + floor * eye, cov)
    return means, cov, log_pi


def _shrunk(cov, rows, eye, shrinkage=OAS_SHRINKAGE):
    """Covariances (S, D, D) of ``rows`` (S,) rows each, regularised by ``shrinkage``.

    Below zero (:data:`OAS_SHRINKAGE`): shrunk towards their spherical
    parts by the oracle approximating shrinkage of Chen et al. (2010), as
    :func:`sklearn.covariance.oas`, per component (with its weighted row
    count): a covariance estimated from few rows per feature puts almost no
    variance on directions its rows did not vary in, and held-out rows that
    do are scored as impossible; the shrinkage, strong for few rows and
    vanishing for many, keeps them plausible. Else that share of the
    off-diagonal covariances is removed (towards the diagonal: features of
    very different variances, such as pixels that hardly vary, keep them).
    """
    if shrinkage >= 0:
        diagonal = torch.diagonal(cov, dim1=-2, dim2=-1)
        return (1 - shrinkage) * cov + shrinkage * torch.diag_embed(diagonal)
    d = cov.shape[-1]
    mu = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)  # (S,)
    alpha = (cov * cov).mean((-2, -1))
    num = alpha + mu**2
    den = (rows + 1) * (alpha - mu**2 / d)
    amount = torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(den)).clamp(max=1)
    amount = amount[:, None, None]
    return (1 - amount) * cov + amount * mu[:, None, None] * eye


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
