"""The network families beside the plain MLP, at tiny size: image networks
(``architecture="conv"`` / ``"gated_conv"``) and the gated MLP (``"gated_mlp"``)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_vhp import VHPEstimator
from sklearn_vhp._torch.conv import (
    ConvGaussianEncoder,
    DeconvDecoder,
    GatedConv2d,
    GatedDecoder,
)
from sklearn_vhp._torch.factory import build_vae
from sklearn_vhp._torch.networks import LOGVAR_BOUND, MLP, GatedLinear

ARCHS = ["conv", "gated_conv"]
#: Every architecture the tiny end-to-end tests fit, with the image shape it needs.
SHAPES = {"conv": (8, 8), "gated_conv": (8, 8), "gated_mlp": None}
TINY = dict(hidden_layer_sizes=(8,), max_iter=1, n_importance=4, n_eval_samples=16, batch_size=32)


@pytest.fixture(scope="module")
def digits():
    """8 x 8 digits scaled to [0, 1]."""
    return load_digits().data[:240] / 16.0


# Random check data has any number of features: (1, -1) reads a row as a
# 1 x n_features image, so every check runs on a real conv network.
@parametrize_with_checks(
    [VHPEstimator(architecture=arch, image_shape=(1, -1), **TINY) for arch in ARCHS]
    + [VHPEstimator(architecture="gated_mlp", **TINY)]
    + [VHPEstimator(architecture="gated_mlp", decoder_dropout=0.3, **TINY)]
)
def test_sklearn_compatible_conv(estimator, check):
    check(estimator)


@pytest.mark.parametrize("image_shape", [(8, 8), (1, 5), (3, 7, 6), (2, 1, 1)])
@pytest.mark.parametrize("arch", ARCHS)
def test_networks_shapes_and_leading_dims(arch, image_shape):
    n = int(np.prod(image_shape))
    vae = build_vae(
        n_features=n,
        n_components=3,
        prior="vhp",
        likelihood="bernoulli",
        hidden_layer_sizes=(8,),
        architecture=arch,
        image_shape=image_shape,
        generator=torch.Generator().manual_seed(0),
    )
    mean, logvar = vae.encoder(torch.rand(4, n))
    assert mean.shape == logvar.shape == (4, 3)
    # Extra leading dims, as the VAE passes z of shape (B, S, d).
    assert vae.decoder(torch.randn(4, 5, 3)).shape == (4, 5, n)
    assert vae.encoder(torch.rand(2, 4, n))[0].shape == (2, 4, 3)
    # Log-variance biases start at zero, as for the MLP encoder.
    assert (vae.encoder.out.bias[3:] == 0).all()


def test_gated_conv_is_conv_times_sigmoid_gate():
    torch.manual_seed(0)
    layer = GatedConv2d(2, 3, 3, 1, 1)
    x = torch.randn(4, 2, 5, 5)
    w_a, w_b = layer.conv.weight.chunk(2)
    b_a, b_b = layer.conv.bias.chunk(2)
    a = torch.nn.functional.conv2d(x, w_a, b_a, padding=1)
    b = torch.nn.functional.conv2d(x, w_b, b_b, padding=1)
    torch.testing.assert_close(layer(x), a * torch.sigmoid(b))


def test_gated_linear_is_linear_times_sigmoid_gate():
    torch.manual_seed(0)
    layer = GatedLinear(5, 3)
    x = torch.randn(4, 2, 5)
    w_a, w_b = layer.linear.weight.chunk(2)
    b_a, b_b = layer.linear.bias.chunk(2)
    torch.testing.assert_close(layer(x), (x @ w_a.T + b_a) * torch.sigmoid(x @ w_b.T + b_b))


@pytest.mark.parametrize("gated", [False, True])
def test_encoder_linear_init_bound_and_shared_variance(gated):
    torch.manual_seed(0)
    enc = ConvGaussianEncoder((6, 5), (8,), 2, gated=gated)
    W, b = torch.randn(2, 30), torch.randn(2)
    enc.set_linear_mean(W, b)
    x = torch.rand(7, 30)
    with torch.no_grad():
        mean, logvar = enc(x)
        torch.testing.assert_close(mean, x @ W.T + b)
        enc.out.bias[2:] = 100.0  # far outside the soft bound
        assert enc(x)[1].max() <= LOGVAR_BOUND
    shared = ConvGaussianEncoder((6, 5), (8,), 2, gated=gated, shared_variance=True)
    with torch.no_grad():
        shared.shared_logvar.copy_(torch.tensor([0.5, -1.0]))
        lv = shared(x)[1]
    assert torch.allclose(lv, lv[:1].expand_as(lv))


@pytest.mark.parametrize(
    "decoder",
    [
        DeconvDecoder(3, (8,), (2, 7, 6)),
        GatedDecoder(3, (8,), (7, 6)),
        GatedDecoder(3, (8,), (7, 6), conv_channels=(4, 4)),
        MLP(3, (8, 8), 42, gated=True),
    ],
    ids=["deconv", "gated_fc", "gated_fc_conv", "gated_mlp"],
)
def test_decoder_set_linear_is_affine(decoder):
    n = decoder(torch.zeros(1, 3)).shape[-1]
    W, b = torch.randn(n, 3), torch.randn(n)
    decoder.set_linear(W, b)
    z = torch.randn(4, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(decoder(z), z @ W.T + b)
    # The zeroed last layer still gets gradients, so training can move it.
    decoder(z).sum().backward()
    assert decoder.out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", SHAPES)
def test_fit_transform_score_sample_pickle(digits, arch):
    X = digits
    shape = SHAPES[arch]
    est = VHPEstimator(architecture=arch, image_shape=shape, random_state=0, **TINY).fit(X)
    assert est.transform(X[:5]).shape == (5, 2)
    scores = est.score_samples(X[:5])
    assert scores.shape == (5,) and np.isfinite(scores).all()
    samples = est.sample(3)
    assert samples.shape == (3, 64) and np.isfinite(samples).all()
    assert est.inverse_transform(est.transform(X[:4])).shape == (4, 64)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(clone.score_samples(X[:5]), scores)
    np.testing.assert_allclose(clone.transform(X[:5]), est.transform(X[:5]))
    # Same seed, same model: every conv layer is drawn from the local generator.
    again = VHPEstimator(architecture=arch, image_shape=shape, random_state=0, **TINY).fit(X)
    np.testing.assert_allclose(again.transform(X[:5]), est.transform(X[:5]))
    # Not the plain network under another name.
    plain = VHPEstimator(image_shape=shape, random_state=0, **TINY).fit(X)
    assert not np.allclose(plain.score_samples(X[:5]), scores)


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_other_priors_and_iwae_with_gated_conv(digits, prior):
    est = VHPEstimator(
        prior=prior,
        objective="iwae",
        schedule="constant",
        n_pseudo_inputs=5,
        architecture="gated_conv",
        image_shape=(1, 8, 8),
        random_state=0,
        **TINY,
    ).fit(digits)
    assert np.isfinite(est.score_samples(digits[:3])).all()


def test_image_shape_inference_and_errors(digits):
    est = VHPEstimator(architecture="gated_conv", image_shape=(8, -1), random_state=0, **TINY)
    ref = VHPEstimator(architecture="gated_conv", image_shape=(8, 8), random_state=0, **TINY)
    # -1 is inferred: the same model as with the full shape.
    Z, Z_ref = est.fit(digits).transform(digits), ref.fit(digits).transform(digits)
    np.testing.assert_array_equal(Z, Z_ref)
    with pytest.raises(ValueError, match="needs image_shape"):
        VHPEstimator(architecture="conv", **TINY).fit(digits)
    with pytest.raises(ValueError, match="prod\\(image_shape\\) must equal n_features"):
        VHPEstimator(architecture="conv", image_shape=(8, 9), **TINY).fit(digits)
    with pytest.raises(ValueError, match="not a multiple"):
        VHPEstimator(architecture="conv", image_shape=(3, -1), **TINY).fit(digits)
    for bad in [(8,), (0, 64), (-1, -1), (2.0, 32), (1, 1, 1, 64)]:
        with pytest.raises(ValueError, match="image_shape must be"):
            VHPEstimator(architecture="conv", image_shape=bad, **TINY).fit(digits)
    # Checked with the MLP too, so a wrong shape is never silently carried.
    with pytest.raises(ValueError, match="image_shape"):
        VHPEstimator(image_shape=(7, 7), **TINY).fit(digits)
    with pytest.raises(ValueError, match="architecture"):
        VHPEstimator(architecture="resnet", **TINY).fit(digits)
