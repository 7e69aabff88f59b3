"""Convolutional encoders and decoders for images (paper App. F).

Two families, with the interfaces of :mod:`.networks`: the encoders behave
like :class:`~.networks.GaussianMLP` (``forward(x) -> (mean, logvar)``,
softly bounded log-variances, optional shared variance,
:meth:`set_linear_mean`) and the decoders like :class:`~.networks.MLP`
(``forward(z)`` -> one output per pixel, :meth:`set_linear`). Inputs and
outputs are flattened images of ``C * H * W`` features (row-major, channels
first); any leading dimensions are kept.

``"conv"``
    The conv/deconv stack used for faces and chairs: strided convolutions
    that halve the image (4 x 4 kernels for even sizes, 3 x 3 for odd ones,
    so any image size is exact), fully connected layers, and the mirrored
    transposed convolutions.
``"gated_conv"``
    The gated networks used for MNIST-like data (VampPrior, Tomczak & Welling
    2018): gated convolutions ``h = conv_a(x) * sigmoid(conv_b(x))`` in the
    encoder and gated fully connected layers in the decoder, optionally
    followed by gated 3 x 3 convolutions at full resolution.

Every network keeps a linear shortcut from its (flattened) input to its
output, as the MLPs do, so that it can start as a known affine map (PCA)
while the nonlinear branch starts at zero.
"""

import math

import torch
from torch import nn

from .networks import GatedLinear, GaussianHead, dense_stack

#: Encoder convolutions of the gated network: (channels, kernel, stride),
#: the VampPrior's MNIST encoder (28 x 28 -> 6 x 7 x 7 features).
GATED_ENCODER_LAYERS = ((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1))
#: Channels of the strided convolutions of the conv/deconv network.
CONV_CHANNELS = (32, 32, 64, 64)


def as_chw(image_shape):
    """``(H, W)`` or ``(C, H, W)`` as a ``(C, H, W)`` tuple of ints."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {image_shape!r}.")
    return shape


class GatedConv2d(nn.Module):
    """Gated convolution ``conv_a(x) * sigmoid(conv_b(x))`` (one fused conv)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return a * torch.sigmoid(b)


def _halving(size):
    """Kernel and output size of a stride-2, padding-1 conv that halves ``size``.

    Even sizes use a 4-wide kernel (exactly ``size / 2``), odd ones a 3-wide
    kernel (``(size + 1) / 2``); the transposed conv with the same kernel,
    stride and padding maps the output size back to ``size`` exactly.
    """
    return (4, size // 2) if size % 2 == 0 else (3, (size + 1) // 2)


class _ConvTrunk(nn.Module):
    """Image -> flat features: convolutions, then fully connected layers."""

    def __init__(self, image_shape, hidden, *, gated, activation):
        super().__init__()
        c, h, w = image_shape
        layers, floats = [], 0
        if gated:
            for ch, k, s in GATED_ENCODER_LAYERS:
                layers.append(GatedConv2d(c, ch, k, s, k // 2))
                h, w = (h - 1) // s + 1, (w - 1) // s + 1
                c = ch
                floats += 3 * c * h * w
        else:
            for ch in CONV_CHANNELS:
                (kh, h), (kw, w) = _halving(h), _halving(w)
                layers += [nn.Conv2d(c, ch, (kh, kw), 2, 1), activation()]
                c = ch
                floats += 2 * c * h * w
        self.conv = nn.Sequential(*layers)
        dense, width = dense_stack(c * h * w, hidden, activation, gated=gated)
        self.dense = nn.Sequential(*dense)
        self.n_hidden_out = width
        self.floats_per_row = floats + 3 * sum(hidden)

    def forward(self, x):
        return self.dense(self.conv(x).flatten(1))


class ConvGaussianEncoder(GaussianHead, nn.Module):
    """Convolutional encoder of a diagonal Gaussian ``q(z|x)``.

    A :class:`~.networks.GaussianHead`, like :class:`~.networks.GaussianMLP`: ``forward(x)`` returns
    ``(mean, logvar)`` with log-variances squashed softly into
    ``(-LOGVAR_BOUND, LOGVAR_BOUND)``; with ``shared_variance`` the
    log-variance is one learned vector for all inputs.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)`` or ``(C, H, W)``; inputs have ``C * H * W`` features.
    hidden : tuple of int
        Widths of the fully connected layers after the convolutions.
    n_out : int
        Dimension of the Gaussian.
    gated : bool, default=False
        Gated convolutions and gated dense layers (``"gated_conv"``) instead
        of strided convolutions with ``activation`` (``"conv"``).
    activation : type of nn.Module, default=nn.Tanh
        Activation of the non-gated layers.
    shortcut : bool, default=True
        Add a linear map from the flattened input to the output.
    shared_variance : bool, default=False
        One learned log-variance vector instead of a per-input one.
    trunk : nn.Module, default=None
        Image -> features network to use instead of the built-in one (with
        ``n_hidden_out``; ``hidden``, ``gated`` and ``activation`` are then
        unused), e.g. :class:`~.paper_conv.PaperConvEncoder`.
    """

    def __init__(
        self,
        image_shape,
        hidden,
        n_out,
        *,
        gated=False,
        activation=nn.Tanh,
        shortcut=True,
        shared_variance=False,
        trunk=None,
    ):
        super().__init__()
        self.image_shape = as_chw(image_shape)
        self.n_in = math.prod(self.image_shape)
        self.n_out = n_out
        if trunk is None:
            trunk = _ConvTrunk(self.image_shape, tuple(hidden), gated=gated, activation=activation)
        self.trunk = trunk
        self.out = nn.Linear(self.trunk.n_hidden_out, 2 * n_out)
        self.shortcut = nn.Linear(self.n_in, 2 * n_out, bias=False) if shortcut else None
        self.shared_logvar = nn.Parameter(torch.zeros(n_out)) if shared_variance else None

    @property
    def floats_per_row(self):
        """Rough number of activations per input row (for memory budgets)."""
        return getattr(self.trunk, "floats_per_row", 0)

    def forward(self, x):
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.n_in)
        mean, logvar = self.gaussian(self.trunk(flat.reshape(-1, *self.image_shape)), flat)
        return mean.reshape(*lead, self.n_out), logvar.reshape(*lead, self.n_out)

    @property
    def head_layers(self):
        return self.out, self.shortcut


class _ImageDecoder(nn.Module):
    """Shared parts of the image decoders: leading dims, shortcut, pixel bias.

    Subclasses define ``self.out`` (the last layer, without bias) and
    ``_nonlinear(z)`` mapping ``(N, n_in)`` to ``(N, n_out)``; the output is
    ``_nonlinear(z) + shortcut(z) + bias`` with one bias per output pixel.
    """

    def __init__(self, n_in, image_shape, shortcut):
        super().__init__()
        self.image_shape = as_chw(image_shape)
        self.n_in = n_in
        self.n_out = math.prod(self.image_shape)
        self.bias = nn.Parameter(torch.zeros(self.n_out))
        self.shortcut = nn.Linear(n_in, self.n_out, bias=False) if shortcut else None

    def forward(self, z):
        lead = z.shape[:-1]
        flat = z.reshape(-1, self.n_in)
        y = self._nonlinear(flat) + self.bias
        if self.shortcut is not None:
            y = y + self.shortcut(flat)
        return y.reshape(*lead, self.n_out)

    @torch.no_grad()
    def set_linear(self, weight, bias):
        """Make the network start as the affine map ``z @ weight.T + bias``.

        The nonlinear branch's last layer is zeroed (earlier layers keep their
        random initialisation, so gradients still flow into them).
        """
        self.out.weight.zero_()
        self.bias.copy_(torch.as_tensor(bias))
        self.shortcut.weight.copy_(torch.as_tensor(weight))


class DeconvDecoder(_ImageDecoder):
    """Conv/deconv decoder: dense layers, then transposed convolutions.

    Mirrors the ``"conv"`` encoder: fully connected layers (``hidden``),
    a dense map to the encoder's last feature map, and transposed
    convolutions that double the size back to the image.

    Parameters
    ----------
    n_in : int
        Dimension of ``z``.
    hidden : tuple of int
        Widths of the fully connected layers.
    image_shape : tuple of int
        ``(H, W)`` or ``(C, H, W)`` of the output.
    activation : type of nn.Module, default=nn.Tanh
    shortcut : bool, default=True
        Add a linear map from ``z`` to the output.
    dropout : float, default=0.0
        Dropout after each fully connected hidden layer (:func:`dense_stack`).
    """

    def __init__(
        self, n_in, hidden, image_shape, *, activation=nn.Tanh, shortcut=True, dropout=0.0
    ):
        super().__init__(n_in, image_shape, shortcut)
        c, h, w = self.image_shape
        sizes, kernels = [(h, w)], []
        for _ in CONV_CHANNELS:
            (kh, h), (kw, w) = _halving(h), _halving(w)
            kernels.append((kh, kw))
            sizes.append((h, w))
        dense, width = dense_stack(n_in, tuple(hidden), activation, dropout=dropout)
        top = CONV_CHANNELS[-1]
        self.top_shape = (top, h, w)
        self.dense = nn.Sequential(*dense, nn.Linear(width, top * h * w), activation())
        layers, floats = [], 3 * sum(hidden) + 2 * top * h * w
        in_ch = top
        # From the smallest feature map back up; the last layer makes pixels.
        for i in range(len(CONV_CHANNELS) - 1, 0, -1):
            ch = CONV_CHANNELS[i - 1]
            layers += [nn.ConvTranspose2d(in_ch, ch, kernels[i], 2, 1), activation()]
            in_ch = ch
            floats += 2 * ch * sizes[i][0] * sizes[i][1]
        self.deconv = nn.Sequential(*layers)
        self.out = nn.ConvTranspose2d(in_ch, c, kernels[0], 2, 1, bias=False)
        self.floats_per_sample = floats + 3 * self.n_out

    def _nonlinear(self, z):
        h = self.dense(z).reshape(-1, *self.top_shape)
        return self.out(self.deconv(h)).flatten(1)


class GatedDecoder(_ImageDecoder):
    """Gated decoder of the VampPrior's MNIST models.

    Gated dense layers (``hidden``); then either a linear map to the pixels
    (``conv_channels=()``, the gated fully connected decoder) or a gated
    dense map to a full-size image refined by gated 3 x 3 convolutions with
    ``conv_channels`` channels and a 1 x 1 convolution to the pixels.

    Parameters
    ----------
    n_in : int
        Dimension of ``z``.
    hidden : tuple of int
        Widths of the gated dense layers.
    image_shape : tuple of int
        ``(H, W)`` or ``(C, H, W)`` of the output.
    conv_channels : tuple of int, default=()
        Channels of the full-resolution gated convolutions (VampPrior:
        ``(64, 64, 64, 64)``; costly on a CPU).
    shortcut : bool, default=True
        Add a linear map from ``z`` to the output.
    dropout : float, default=0.0
        Dropout after each gated dense hidden layer (:func:`dense_stack`).
    """

    def __init__(self, n_in, hidden, image_shape, *, conv_channels=(), shortcut=True, dropout=0.0):
        super().__init__(n_in, image_shape, shortcut)
        dense, width = dense_stack(n_in, tuple(hidden), None, gated=True, dropout=dropout)
        c, h, w = self.image_shape
        floats = 3 * sum(hidden)
        conv_channels = tuple(conv_channels)
        if conv_channels:
            dense.append(GatedLinear(width, self.n_out))
            layers, in_ch = [], c
            for ch in conv_channels:
                layers.append(GatedConv2d(in_ch, ch, 3, 1, 1))
                in_ch = ch
                floats += 3 * ch * h * w
            self.conv = nn.Sequential(*layers)
            self.out = nn.Conv2d(in_ch, c, 1, bias=False)
        else:
            self.conv = None
            self.out = nn.Linear(width, self.n_out, bias=False)
        self.dense = nn.Sequential(*dense)
        self.floats_per_sample = floats + 3 * self.n_out

    def _nonlinear(self, z):
        h = self.dense(z)
        if self.conv is None:
            return self.out(h)
        h = self.conv(h.reshape(-1, *self.image_shape))
        return self.out(h).flatten(1)
