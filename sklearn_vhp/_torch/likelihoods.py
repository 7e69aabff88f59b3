"""Observation models p(x|z) given the decoder's output."""

import math

import torch
import torch.nn.functional as F
from torch import nn


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
