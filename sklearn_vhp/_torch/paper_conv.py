"""The paper's convolutional networks for faces and chairs (App. F, Table 3).

Encoder: eight convolutions, alternating a 5 x 5 stride-2 convolution that
halves the image and a 3 x 3 convolution that keeps its size, with
32, 32, 48, 48, 64, 64, 96, 96 channels, then one fully connected layer
(256 units). On 64 x 64 images the feature maps are 32, 16, 8 and 4 pixels
wide. Decoder: the reverse (a fully connected layer of 256 units, one to the
96 x 4 x 4 map, then 3 x 3 convolutions and 5 x 5 stride-2 transposed
convolutions back to the image).

Both are plain modules with the interface of the package's custom networks:

* :class:`PaperConvEncoder` maps images ``(N, C, H, W)`` (rows reshaped to
  ``image_shape``) to ``(N, features)``: the package adds the Gaussian head.
* :class:`PaperDeconvDecoder` maps codes ``(N, n_components)`` to
  ``(N, C * H * W)`` logits (or means) of the flattened rows; any leading
  dimensions are kept. With ``shortcut=True`` it is also a built-in decoder
  (a linear shortcut from the code and one bias per pixel, so that it can
  start as PCA, see :meth:`~.conv._ImageDecoder.set_linear`).

Any image size works: a 5 x 5 stride-2 convolution with padding 2 maps a
side ``h`` to ``ceil(h / 2)``, and each transposed convolution takes the
output padding that gives the encoder's size back exactly.
"""

import math

from torch import nn

from .conv import _ImageDecoder, as_chw

#: (channels, kernel, stride) of the encoder's eight convolutions.
PAPER_CONV_LAYERS = (
    (32, 5, 2),
    (32, 3, 1),
    (48, 5, 2),
    (48, 3, 1),
    (64, 5, 2),
    (64, 3, 1),
    (96, 5, 2),
    (96, 3, 1),
)
#: Width of the fully connected layer of the encoder and of the decoder.
PAPER_FEATURES = 256


def _sizes(h, w):
    """Feature-map sizes after each encoder layer, starting with the image's."""
    sizes = [(h, w)]
    for _, _, s in PAPER_CONV_LAYERS:
        h, w = (h - 1) // s + 1, (w - 1) // s + 1
        sizes.append((h, w))
    return sizes


class PaperConvEncoder(nn.Module):
    """The paper's image encoder (App. F, Table 3): eight convolutions and FC 256.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)`` or ``(C, H, W)`` of the input images.
    features : int, default=256
        Width of the fully connected layer (the output).
    activation : type of nn.Module, default=nn.ReLU
        Activation after every layer, the last included.

    Inputs are ``(N, C, H, W)``; flat rows ``(N, C * H * W)`` are reshaped.
    """

    def __init__(self, image_shape, features=PAPER_FEATURES, *, activation=nn.ReLU):
        super().__init__()
        self.image_shape = as_chw(image_shape)
        c, h, w = self.image_shape
        layers, floats = [], 0
        sizes = _sizes(h, w)
        for (ch, k, s), (oh, ow) in zip(PAPER_CONV_LAYERS, sizes[1:]):
            layers += [nn.Conv2d(c, ch, k, s, k // 2), activation()]
            c = ch
            floats += 2 * ch * oh * ow
        self.conv = nn.Sequential(*layers)
        oh, ow = sizes[-1]
        self.dense = nn.Sequential(nn.Linear(c * oh * ow, features), activation())
        #: Output width (the Gaussian head's input).
        self.n_hidden_out = features
        #: Rough activations per input row (memory budgets).
        self.floats_per_row = floats + 2 * features

    def forward(self, x):
        x = x.reshape(-1, *self.image_shape)
        return self.dense(self.conv(x).flatten(1))


class PaperDeconvDecoder(_ImageDecoder):
    """The paper's image decoder (App. F, Table 3): the encoder reversed.

    ``z`` -> FC ``features`` -> FC to the ``96 x h x w`` map -> 3 x 3 conv and
    5 x 5 stride-2 transposed conv per scale (96, 64, 48, 32 channels) -> one
    value per pixel (no activation on the output: logits or means).

    Parameters
    ----------
    n_components : int
        Dimension of ``z``.
    image_shape : tuple of int
        ``(H, W)`` or ``(C, H, W)`` of the output.
    features : int, default=256
        Width of the first fully connected layer.
    activation : type of nn.Module, default=nn.ReLU
    shortcut : bool, default=False
        Add a linear map from ``z`` to the output (the built-in decoders
        have it, so that they can start as PCA).
    dropout : float, default=0.0
        Dropout after the first fully connected layer.
    """

    def __init__(
        self,
        n_components,
        image_shape,
        features=PAPER_FEATURES,
        *,
        activation=nn.ReLU,
        shortcut=False,
        dropout=0.0,
    ):
        super().__init__(n_components, image_shape, shortcut)
        c, h, w = self.image_shape
        sizes = _sizes(h, w)
        top = PAPER_CONV_LAYERS[-1][0]
        self.top_shape = (top, *sizes[-1])
        self.dense = nn.Sequential(
            nn.Linear(n_components, features),
            activation(),
            *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(features, math.prod(self.top_shape)),
            activation(),
        )
        layers, in_ch, floats = [], top, 2 * features + 2 * math.prod(self.top_shape)
        # From the smallest map up: a 3 x 3 conv, then a transposed conv
        # that undoes the encoder's stride-2 conv of that scale.
        n = len(PAPER_CONV_LAYERS)
        for i in range(n - 1, -1, -2):
            ch, k3, _ = PAPER_CONV_LAYERS[i]
            (ih, iw), (oh, ow) = sizes[i], sizes[i - 1]
            layers += [nn.Conv2d(in_ch, ch, k3, 1, k3 // 2), activation()]
            _, k, s = PAPER_CONV_LAYERS[i - 1]
            out_ch = PAPER_CONV_LAYERS[i - 2][0] if i >= 3 else c
            pad = (oh - ((ih - 1) * s - 2 * (k // 2) + k), ow - ((iw - 1) * s - 2 * (k // 2) + k))
            deconv = nn.ConvTranspose2d(ch, out_ch, k, s, k // 2, output_padding=pad, bias=i >= 3)
            if i >= 3:
                layers += [deconv, activation()]
                floats += 2 * (ch * ih * iw + out_ch * oh * ow)
            else:
                self.out = deconv  # the last layer (zeroed by set_linear)
            in_ch = out_ch
        self.deconv = nn.Sequential(*layers)
        self.floats_per_sample = floats + 3 * self.n_out

    def _nonlinear(self, z):
        h = self.dense(z).reshape(-1, *self.top_shape)
        return self.out(self.deconv(h)).flatten(1)
