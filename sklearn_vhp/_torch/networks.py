"""Fully connected networks."""

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)

#: Log-variances are squashed softly into (-LOGVAR_BOUND, LOGVAR_BOUND):
#: unbounded log-variances made a beta ~ 1e-6 run diverge to NaN.
LOGVAR_BOUND = 6.0


def gaussian_log_density(sq, logvar):
    """The one diagonal-Gaussian log-density: ``sq`` is ``(x - mean)² / var``.

    Summed over the last axis. Every Gaussian ``log N(x; mean, exp(logvar))``
    of the package goes through here, given ``sq`` in whatever form is exact
    and cheapest for the caller (see :func:`gaussian_log_prob` and
    :func:`gaussian_log_prob_of_noise`).
    """
    return -0.5 * (sq + logvar + LOG_2PI).sum(-1)


def gaussian_log_prob(x, mean, logvar):
    """Log-density of a diagonal Gaussian, summed over the last axis."""
    return gaussian_log_density(((x - mean) ** 2) * torch.exp(-logvar), logvar)


def gaussian_log_prob_of_noise(eps, logvar):
    """Log-density of ``mean + exp(logvar / 2) * eps`` under ``N(mean, exp(logvar))``.

    From the reparametrisation noise directly (``sq = eps²``): exact and cheaper.
    """
    return gaussian_log_density(eps**2, logvar)


def log_mean_exp(log_w, dim):
    """``log(1/K Σ_k exp(log_w_k))`` over axis ``dim`` of ``K`` entries."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def standard_normal_log_prob(x):
    """Log-density of N(0, I), summed over the last axis."""
    return -0.5 * (x**2 + LOG_2PI).sum(-1)


def standard_normal_kl(mean, logvar):
    """``KL(N(mean, exp(logvar)) || N(0, 1))`` elementwise (not summed)."""
    return 0.5 * (mean**2 + torch.exp(logvar) - logvar - 1.0)


class GatedLinear(nn.Module):
    """Gated fully connected layer ``lin_a(x) * sigmoid(lin_b(x))`` (one fused linear)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, 2 * n_out)

    def forward(self, x):
        a, b = self.linear(x).chunk(2, dim=-1)
        return a * torch.sigmoid(b)


def dense_stack(n_in, hidden, activation, *, gated=False, dropout=0.0):
    """Hidden layers ``Linear`` + ``activation`` (or :class:`GatedLinear`), and the last width.

    ``dropout > 0``: each hidden layer is followed by ``nn.Dropout(dropout)``
    (active in training mode only).
    """
    layers, width = [], n_in
    for h in hidden:
        layers += [GatedLinear(width, h)] if gated else [nn.Linear(width, h), activation()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    return layers, width


class MLP(nn.Module):
    """A stack of ``Linear`` + activation layers plus a linear output layer.

    With ``gated=True`` the hidden layers are :class:`GatedLinear` instead
    (the VampPrior's MNIST networks; ``activation`` is then unused). With
    ``shortcut=True`` a linear map from input to output is added to the
    network's output (a "linear + nonlinear" residual form): it can be
    initialised to a known linear solution such as PCA (see
    :meth:`set_linear`) while the nonlinear part starts from zero.
    ``dropout``: see :func:`dense_stack`.
    """

    def __init__(
        self,
        n_in,
        hidden,
        n_out,
        *,
        activation=nn.Tanh,
        shortcut=True,
        gated=False,
        dropout=0.0,
    ):
        super().__init__()
        layers, width = dense_stack(n_in, hidden, activation, gated=gated, dropout=dropout)
        self.body = nn.Sequential(*layers)
        # A gate holds 4 floats per unit where a plain layer holds 2 (for
        # the chunk sizes of VAE.memory_per_row, which counts the plain 2).
        self.floats_per_sample = 2 * sum(hidden) if gated else 0
        self.out = nn.Linear(width, n_out)
        self.shortcut = nn.Linear(n_in, n_out, bias=False) if shortcut else None

    def forward(self, x):
        y = self.out(self.body(x))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return y

    @torch.no_grad()
    def set_linear(self, weight, bias):
        """Make the network start as the affine map ``x @ weight.T + bias``.

        The nonlinear branch's output layer is zeroed (its hidden layers keep
        their random initialisation, so gradients still flow into them).
        """
        self.out.weight.zero_()
        self.out.bias.copy_(torch.as_tensor(bias))
        self.shortcut.weight.copy_(torch.as_tensor(weight))


class GaussianHead:
    """The Gaussian output of an encoder: ``(mean, logvar)`` from ``2 n_out`` outputs.

    Mixed into the encoders (:class:`GaussianMLP`, the convolutional ones),
    which set ``n_out`` and ``shared_logvar`` (a learned vector, or ``None``)
    and name their last layer and linear shortcut in :attr:`head_layers`.
    Log-variances are squashed softly into ``(-LOGVAR_BOUND, LOGVAR_BOUND)``.
    """

    @property
    def head_layers(self):
        """``(out, shortcut)``: the layers that produce the ``2 n_out`` outputs."""
        raise NotImplementedError

    def gaussian(self, hidden, flat):
        """``(mean, logvar)`` from the last hidden layer and the flattened input.

        The head's ``2 n_out`` outputs are the mean and the log-variance's
        pre-activation; with a shared variance only the mean's ``n_out`` rows
        of the last layer and the shortcut are computed (the other rows are
        unused: their gradient is zero and Adam leaves them as they are).
        """
        out, shortcut = self.head_layers
        n, shared = self.n_out, self.shared_logvar is not None
        if shared:
            y = F.linear(hidden, out.weight[:n], out.bias[:n])
            if shortcut is not None:
                y = y + F.linear(flat, shortcut.weight[:n])
            logvar = LOGVAR_BOUND * torch.tanh(self.shared_logvar / LOGVAR_BOUND)
            return y, logvar.expand_as(y)
        y = out(hidden)
        if shortcut is not None:
            y = y + shortcut(flat)
        mean, raw = y[..., :n], y[..., n:]
        return mean, LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)

    @torch.no_grad()
    def reset_variance(self):
        """Start with unit variances (zero pre-activation log-variances)."""
        self.head_layers[0].bias[self.n_out :] = 0.0
        if self.shared_logvar is not None:
            self.shared_logvar.zero_()

    @torch.no_grad()
    def set_linear_mean(self, weight, bias):
        """Start the mean as an affine map of the input (e.g. a PCA projection)."""
        out, shortcut = self.head_layers
        out.weight[: self.n_out].zero_()
        out.bias[: self.n_out] = torch.as_tensor(bias)
        shortcut.weight[: self.n_out] = torch.as_tensor(weight)
        shortcut.weight[self.n_out :].zero_()


class GaussianMLP(GaussianHead, nn.Module):
    """An MLP that outputs the mean and log-variance of a diagonal Gaussian."""

    def __init__(
        self,
        n_in,
        hidden,
        n_out,
        *,
        activation=nn.Tanh,
        shortcut=True,
        shared_variance=False,
        gated=False,
    ):
        super().__init__()
        self.n_out = n_out
        self.net = MLP(
            n_in, hidden, 2 * n_out, activation=activation, shortcut=shortcut, gated=gated
        )
        # With a shared variance the log-variance is one learned vector, the
        # same for every input (a homoscedastic posterior).
        self.shared_logvar = nn.Parameter(torch.zeros(n_out)) if shared_variance else None

    @property
    def head_layers(self):
        return self.net.out, self.net.shortcut

    @property
    def floats_per_row(self):
        """Temporaries of the gates beyond a plain layer's, per row (see :class:`MLP`)."""
        return self.net.floats_per_sample

    def forward(self, x):
        return self.gaussian(self.net.body(x), x)
