"""The paper's network for faces and chairs (``architecture="paper_conv"``)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_vhp import VHPEstimator
from sklearn_vhp._torch.paper_conv import PaperConvEncoder, PaperDeconvDecoder
from sklearn_vhp.datasets import make_chairs


@parametrize_with_checks(
    [
        VHPEstimator(
            architecture="paper_conv",
            image_shape=(1, -1),
            hidden_layer_sizes=(8,),
            max_iter=1,
            n_importance=4,
            n_eval_samples=16,
            batch_size=32,
        )
    ]
)
def test_sklearn_compatible_paper_conv(estimator, check):
    # Random check data has any number of features: (1, -1) reads a row as
    # a 1 x n_features image, so every check runs on the paper's network.
    check(estimator)


@pytest.fixture(scope="module")
def chairs():
    """Two chairs x 6 azimuths x 2 elevations, 32 x 32."""
    return make_chairs(2, azimuths=6, image_size=32, random_state=0)


def test_paper_table_3_layers_on_64x64():
    enc = PaperConvEncoder((64, 64))
    convs = [m for m in enc.conv if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 5, 2),
        (32, 3, 1),
        (48, 5, 2),
        (48, 3, 1),
        (64, 5, 2),
        (64, 3, 1),
        (96, 5, 2),
        (96, 3, 1),
    ]
    x = torch.rand(3, 64 * 64)
    assert enc(x).shape == (3, 256)
    assert enc.conv(x.reshape(3, 1, 64, 64)).shape == (3, 96, 4, 4)
    dec = PaperDeconvDecoder(32, (64, 64))
    # The decoder mirrors the encoder: 3 x 3 convs and 5 x 5 stride-2
    # transposed convs with the channels in reverse.
    chans = [
        m.out_channels
        for m in list(dec.deconv) + [dec.out]
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    assert chans == [96, 64, 64, 48, 48, 32, 32, 1]
    assert dec(torch.randn(2, 5, 32)).shape == (2, 5, 64 * 64)


@pytest.mark.parametrize("shape", [(28, 20), (3, 17, 9), (1, 1)])
def test_any_image_size_round_trips(shape):
    n = int(np.prod(shape))
    enc = PaperConvEncoder(shape)
    dec = PaperDeconvDecoder(4, shape, features=16)
    assert enc(torch.rand(2, n)).shape == (2, 256)
    assert dec(torch.randn(2, 4)).shape == (2, n)


def test_fit_chairs_transform_sample_pickle(chairs):
    X = chairs.data
    model = VHPEstimator(
        n_components=4,
        architecture="paper_conv",
        image_shape=(32, 32),
        hidden_layer_sizes=(32, 32),
        activation="relu",
        likelihood="bernoulli",
        max_iter=3,
        batch_size=24,
        n_importance=4,
        n_eval_samples=8,
        random_state=0,
    ).fit(X)
    Z = model.transform(X)
    assert Z.shape == (24, 4) and np.isfinite(Z).all()
    R = model.inverse_transform(Z)
    assert R.shape == X.shape and R.min() >= 0 and R.max() <= 1
    assert np.isfinite(model.score_samples(X[:4])).all()
    assert model.sample(3, random_state=0).shape == (3, 32 * 32)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.transform(X), Z, rtol=1e-5, atol=1e-6)
    # The image network was built: it differs from the default conv network.
    other = VHPEstimator(**{**model.get_params(), "architecture": "conv"}).fit(X)
    assert not np.allclose(other.transform(X), Z)


def test_paper_conv_needs_matching_image_shape(chairs):
    with pytest.raises(ValueError, match="image_shape"):
        VHPEstimator(architecture="paper_conv", max_iter=1).fit(chairs.data)
    with pytest.raises(ValueError):
        VHPEstimator(architecture="paper_conv", image_shape=(30, 30), max_iter=1).fit(chairs.data)
