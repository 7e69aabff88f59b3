"""Construction, not a module: build a :class:`VAE` from plain settings.

``build_vae`` turns picklable settings into the networks, likelihood and
prior and initialises them reproducibly (``reset_parameters``); the
estimator and the loader of pickled models call it, nothing else does.
"""

import math

import torch
from torch import nn

from .conv import ConvGaussianEncoder, DeconvDecoder, GatedDecoder
from .custom import CustomDecoder, CustomGaussianEncoder, input_shape_of, make_network, user_modules
from .likelihoods import (
    BernoulliLikelihood,
    GaussianLikelihood,
    LearnedGaussianLikelihood,
    MixtureNoiseLikelihood,
    VarianceDecoder,
)
from .networks import MLP, GaussianHead, GaussianMLP
from .paper_conv import PaperConvEncoder, PaperDeconvDecoder
from .priors import HierarchicalPrior, StandardNormalPrior, VampPrior
from .vae import VAE

#: Learned decoder variances stay above this fraction of the training
#: variance (1e-6 times the squared data scale by default: about the
#: quantisation noise of 8-bit data scaled to [0, 1], ``(1/255)² / 12``),
#: the floor the calibrated scalar variance has too.
VARIANCE_FLOOR = 1e-4

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}

#: Architectures of fully connected networks: they take rows, no ``image_shape``.
DENSE_ARCHITECTURES = ("mlp", "gated_mlp")


def build_vae(
    *,
    n_features,
    n_components,
    prior,
    likelihood,
    hidden_layer_sizes,
    activation="tanh",
    noise_variance=None,
    decoder_variance="scalar",
    noise_components=1,
    noise_scales=1,
    encoder_variance="amortized",
    n_pseudo_inputs=None,
    architecture="mlp",
    image_shape=None,
    decoder_dropout=0.0,
    encoder=None,
    decoder=None,
    network_seed=0,
    generator=None,
):
    """Construct a VAE from plain (picklable) settings.

    Parameters are initialised from ``generator`` (PyTorch's default scheme:
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) so that the global random state is
    neither used nor changed. ``prior`` is ``"vhp"``, ``"standard"`` or
    ``"vamp"``; the VampPrior has ``n_pseudo_inputs`` pseudo-inputs (zeros
    until set, e.g. to training rows) and uses ``encoder`` for its components.
    ``architecture`` picks the encoder and decoder: ``"mlp"``, ``"gated_mlp"``
    (its hidden layers gated, :class:`~.networks.GatedLinear`), or for images
    of shape ``image_shape`` (``(H, W)`` or ``(C, H, W)``) ``"conv"``
    (conv/deconv) or ``"gated_conv"`` (gated conv encoder, gated dense
    decoder); see :mod:`.conv`; ``"paper_conv"`` is the paper's network for
    faces and chairs (:mod:`.paper_conv`), whose fully connected layers have
    ``hidden_layer_sizes[0]`` units. The hierarchical prior's networks are MLPs
    whatever the architecture. ``decoder_dropout > 0`` puts dropout after each
    fully connected hidden layer of the built-in decoder.

    ``encoder`` and ``decoder``, when not ``None``, replace the built-in
    networks by the user's (see :mod:`.custom`): a module (deep-copied) or
    what builds one, built and checked under the global torch seed
    ``network_seed`` (the global random state is restored afterwards); the
    encoder's features get the package's Gaussian head. Their own weights
    are kept: ``generator`` draws the package's layers only.

    ``decoder_variance`` (Gaussian likelihood): ``"scalar"``, one variance
    ``noise_variance`` (a buffer, set from outside); ``"feature"``, a
    learned variance per feature; ``"amortized"``, a learned variance per
    feature given the code (:class:`~.likelihoods.VarianceDecoder` beside
    the decoder). Learned variances start at ``noise_variance`` and stay
    above :data:`VARIANCE_FLOOR` times it. ``"full"``: Gaussian mixture
    noise with full covariances (:class:`~.likelihoods.MixtureNoiseLikelihood`,
    ``noise_components`` of them at ``noise_scales`` scales each), fitted in
    closed form after training;
    ``"full_trained"``: the same, also trained against in the main phase.
    """
    act = ACTIVATIONS[activation]
    hidden = tuple(hidden_layer_sizes)
    shared = encoder_variance == "shared"
    builtin = encoder is None or decoder is None
    if architecture not in DENSE_ARCHITECTURES and image_shape is None and builtin:
        raise ValueError(f"architecture={architecture!r} needs image_shape.")
    with torch.random.fork_rng(devices=[]):  # module constructors draw from it
        if encoder is not None or decoder is not None:
            torch.manual_seed(network_seed)
            encoder, decoder = _custom_networks(
                encoder, decoder, n_features, n_components, image_shape, shared
            )
        if builtin:
            enc, dec = _builtin_networks(
                architecture,
                n_features,
                n_components,
                hidden,
                act,
                shared,
                image_shape,
                encoder=encoder is None,
                decoder=decoder is None,
                dropout=decoder_dropout,
            )
            encoder = enc if encoder is None else encoder
            decoder = dec if decoder is None else decoder
        if likelihood == "bernoulli":
            lik = BernoulliLikelihood()
        elif decoder_variance == "scalar":
            lik = GaussianLikelihood(noise_variance)
        elif decoder_variance in ("feature", "amortized"):
            amortized = decoder_variance == "amortized"
            floor = VARIANCE_FLOOR * noise_variance
            lik = LearnedGaussianLikelihood(n_features, noise_variance, floor, amortized)
            if amortized:
                width = hidden[0] if hidden else 32
                decoder = VarianceDecoder(decoder, n_components, n_features, width, act)
        elif decoder_variance in ("full", "full_trained"):
            floor = VARIANCE_FLOOR * noise_variance
            trained = decoder_variance == "full_trained"
            lik = MixtureNoiseLikelihood(
                n_features,
                noise_variance,
                floor,
                noise_components,
                trained=trained,
                n_scales=noise_scales,
            )
        else:
            raise ValueError(f"Unknown decoder_variance {decoder_variance!r}.")
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


def _custom_networks(encoder, decoder, n_features, n_components, image_shape, shared):
    """The user's networks, wrapped (``None`` where the built-in one is used)."""
    known = dict(n_features=n_features, n_components=n_components)
    known["image_shape"] = None if image_shape is None else tuple(image_shape)
    shape = input_shape_of(image_shape, n_features)
    if encoder is not None:
        encoder = CustomGaussianEncoder(
            make_network(encoder, "encoder", **known),
            n_features,
            n_components,
            input_shape=shape,
            shared_variance=shared,
        )
    if decoder is not None:
        decoder = CustomDecoder(
            make_network(decoder, "decoder", **known),
            n_components,
            n_features,
            output_shape=shape,
        )
    return encoder, decoder


def _builtin_networks(
    architecture,
    n_features,
    n_components,
    hidden,
    act,
    shared,
    image_shape,
    *,
    encoder,
    decoder,
    dropout=0.0,
):
    """The built-in encoder and decoder of ``architecture`` (those asked for, else ``None``).

    ``dropout``: the decoder's, after each of its fully connected hidden layers.
    """
    enc = dec = None
    if architecture in DENSE_ARCHITECTURES:
        gated = architecture == "gated_mlp"
        if encoder:
            enc = GaussianMLP(
                n_features,
                hidden,
                n_components,
                activation=act,
                shared_variance=shared,
                gated=gated,
            )
        if decoder:
            dec = MLP(
                n_components,
                hidden[::-1],
                n_features,
                activation=act,
                gated=gated,
                dropout=dropout,
            )
    elif architecture in ("conv", "gated_conv"):
        gated = architecture == "gated_conv"
        if encoder:
            enc = ConvGaussianEncoder(
                image_shape,
                hidden,
                n_components,
                gated=gated,
                activation=act,
                shared_variance=shared,
            )
            if enc.n_in != n_features:
                raise ValueError(
                    f"image_shape={tuple(image_shape)!r} has {enc.n_in} pixels, "
                    f"not n_features={n_features}."
                )
        if decoder:
            if gated:
                dec = GatedDecoder(n_components, hidden[::-1], image_shape, dropout=dropout)
            else:
                dec = DeconvDecoder(
                    n_components, hidden[::-1], image_shape, activation=act, dropout=dropout
                )
    elif architecture == "paper_conv":
        if encoder:
            trunk = PaperConvEncoder(image_shape, hidden[0], activation=act)
            enc = ConvGaussianEncoder(
                image_shape, hidden, n_components, shared_variance=shared, trunk=trunk
            )
            if enc.n_in != n_features:
                raise ValueError(
                    f"image_shape={tuple(image_shape)!r} has {enc.n_in} pixels, "
                    f"not n_features={n_features}."
                )
        if decoder:
            dec = PaperDeconvDecoder(
                n_components,
                image_shape,
                hidden[0],
                activation=act,
                shortcut=True,
                dropout=dropout,
            )
    else:
        raise ValueError(f"Unknown architecture {architecture!r}.")
    return enc, dec


@torch.no_grad()
def reset_parameters(module, generator):
    """Re-draw every linear and conv layer with ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    ``fan_in`` is ``weight[0].numel()``: the input width of a linear layer,
    ``in_channels * kernel size`` of a convolution (PyTorch's convention,
    also for transposed convolutions).

    The user's own networks (see :mod:`.custom`) keep their weights, but
    their linear and conv layers are drawn too, into scratch tensors: the
    package's layers get the values they would get beside built-in
    networks of the same layers, so a user's network built like a built-in
    one, with its weights, gives the built-in model.
    """
    users = {id(m) for m in user_modules(module)}
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            weight, bias = m.weight, m.bias
            if id(m) in users:  # drawn, not written
                weight = torch.empty_like(weight)
                bias = None if bias is None else torch.empty_like(bias)
            bound = 1.0 / math.sqrt(max(1, weight[0].numel()))
            weight.uniform_(-bound, bound, generator=generator)
            if bias is not None:
                bias.uniform_(-bound, bound, generator=generator)
    # Gaussian encoders start with unit variances, learned decoder variances
    # at the training variance.
    for m in module.modules():
        if isinstance(m, GaussianHead):
            m.reset_variance()
        if isinstance(m, VarianceDecoder):
            m.reset_log_variance()
