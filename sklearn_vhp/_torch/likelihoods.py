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

    def log_prob(self, x, out):
        var = self.variance
        sq = (out - x) ** 2
        return -0.5 * (sq / var + torch.log(2 * math.pi * var)).sum(-1)

    def mean(self, out):
        return out


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
