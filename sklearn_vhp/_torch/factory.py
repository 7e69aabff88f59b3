"""Construction, not a module: build a :class:`VAE` from plain settings.

``build_vae`` turns picklable settings into the networks, likelihood and
prior and initialises them reproducibly (``reset_parameters``); the
estimator and the loader of pickled models call it, nothing else does.
"""

import math

import torch
from torch import nn

from .conv import ConvGaussianEncoder, DeconvDecoder, GatedDecoder
from .likelihoods import BernoulliLikelihood, GaussianLikelihood
from .networks import MLP, GaussianHead, GaussianMLP
from .paper_conv import PaperConvEncoder, PaperDeconvDecoder
from .priors import HierarchicalPrior, StandardNormalPrior, VampPrior
from .vae import VAE

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def build_vae(
    *,
    n_features,
    n_components,
    prior,
    likelihood,
    hidden_layer_sizes,
    activation="tanh",
    noise_variance=None,
    encoder_variance="amortized",
    n_pseudo_inputs=None,
    architecture="mlp",
    image_shape=None,
    generator=None,
):
    """Construct a VAE from plain (picklable) settings.

    Parameters are initialised from ``generator`` (PyTorch's default scheme:
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) so that the global random state is
    neither used nor changed. ``prior`` is ``"vhp"``, ``"standard"`` or
    ``"vamp"``; the VampPrior has ``n_pseudo_inputs`` pseudo-inputs (zeros
    until set, e.g. to training rows) and uses ``encoder`` for its components.
    ``architecture`` picks the encoder and decoder: ``"mlp"``, or for images
    of shape ``image_shape`` (``(H, W)`` or ``(C, H, W)``) ``"conv"``
    (conv/deconv) or ``"gated_conv"`` (gated conv encoder, gated dense
    decoder); see :mod:`.conv`; ``"paper_conv"`` is the paper's network for
    faces and chairs (:mod:`.paper_conv`), whose fully connected layers have
    ``hidden_layer_sizes[0]`` units. The hierarchical prior's networks are MLPs
    whatever the architecture.
    """
    act = ACTIVATIONS[activation]
    hidden = tuple(hidden_layer_sizes)
    shared = encoder_variance == "shared"
    if architecture != "mlp" and image_shape is None:
        raise ValueError(f"architecture={architecture!r} needs image_shape.")
    with torch.random.fork_rng(devices=[]):  # module constructors draw from it
        if architecture == "mlp":
            encoder = GaussianMLP(
                n_features, hidden, n_components, activation=act, shared_variance=shared
            )
            decoder = MLP(n_components, hidden[::-1], n_features, activation=act)
        elif architecture in ("conv", "gated_conv"):
            gated = architecture == "gated_conv"
            encoder = ConvGaussianEncoder(
                image_shape,
                hidden,
                n_components,
                gated=gated,
                activation=act,
                shared_variance=shared,
            )
            if encoder.n_in != n_features:
                raise ValueError(
                    f"image_shape={tuple(image_shape)!r} has {encoder.n_in} pixels, "
                    f"not n_features={n_features}."
                )
            if gated:
                decoder = GatedDecoder(n_components, hidden[::-1], image_shape)
            else:
                decoder = DeconvDecoder(n_components, hidden[::-1], image_shape, activation=act)
        elif architecture == "paper_conv":
            trunk = PaperConvEncoder(image_shape, hidden[0], activation=act)
            encoder = ConvGaussianEncoder(
                image_shape, hidden, n_components, shared_variance=shared, trunk=trunk
            )
            if encoder.n_in != n_features:
                raise ValueError(
                    f"image_shape={tuple(image_shape)!r} has {encoder.n_in} pixels, "
                    f"not n_features={n_features}."
                )
            decoder = PaperDeconvDecoder(
                n_components, image_shape, hidden[0], activation=act, shortcut=True
            )
        else:
            raise ValueError(f"Unknown architecture {architecture!r}.")
        if likelihood == "bernoulli":
            lik = BernoulliLikelihood()
        else:
            lik = GaussianLikelihood(noise_variance)
        if prior == "vhp":
            pri = HierarchicalPrior(n_components, n_components, hidden, activation=act)
        elif prior == "vamp":
            if not n_pseudo_inputs:
                raise ValueError("prior='vamp' needs n_pseudo_inputs >= 1.")
            pri = VampPrior(encoder, n_pseudo_inputs, n_features)
        elif prior == "standard":
            pri = StandardNormalPrior(n_components)
        else:
            raise ValueError(f"Unknown prior {prior!r}.")
        vae = VAE(encoder, decoder, lik, pri, hidden_layer_sizes=hidden)
    if generator is not None:
        reset_parameters(vae, generator)
    return vae


@torch.no_grad()
def reset_parameters(module, generator):
    """Re-draw every linear and conv layer with ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    ``fan_in`` is ``weight[0].numel()``: the input width of a linear layer,
    ``in_channels * kernel size`` of a convolution (PyTorch's convention,
    also for transposed convolutions).
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            bound = 1.0 / math.sqrt(max(1, m.weight[0].numel()))
            m.weight.uniform_(-bound, bound, generator=generator)
            if m.bias is not None:
                m.bias.uniform_(-bound, bound, generator=generator)
    # Gaussian encoders start with unit variances.
    for m in module.modules():
        if isinstance(m, GaussianHead):
            m.reset_variance()
