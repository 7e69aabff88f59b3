"""``decoder_dropout``: dropout in the built-in decoder, in training only."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from sklearn_vhp import VHPEstimator

#: Every built-in architecture, with the image shape it needs for 8 x 8 digits.
SHAPES = {
    "mlp": None,
    "gated_mlp": None,
    "conv": (8, 8),
    "gated_conv": (8, 8),
    "paper_conv": (8, 8),
}
TINY = dict(
    n_components=2,
    hidden_layer_sizes=(16, 16),
    max_iter=2,
    n_importance=4,
    n_eval_samples=16,
    batch_size=32,
    random_state=0,
)


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:200] / 16.0


def _fit(X, **params):
    return VHPEstimator(**{**TINY, **params}).fit(X)


@pytest.mark.parametrize("architecture", list(SHAPES))
def test_dropout_trains_the_decoder_reproducibly(X, architecture):
    params = dict(architecture=architecture, image_shape=SHAPES[architecture])
    global_state = torch.get_rng_state()
    a = _fit(X, decoder_dropout=0.5, **params)
    # Its masks come from torch's global random state, seeded from
    # random_state during fit and restored afterwards.
    assert torch.equal(torch.get_rng_state(), global_state)
    b = _fit(X, decoder_dropout=0.5, **params)
    plain = _fit(X, **params)
    Z = a.transform(X[:20])
    recon = a.inverse_transform(Z)
    np.testing.assert_allclose(b.transform(X[:20]), Z, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.inverse_transform(Z), recon, rtol=1e-6, atol=1e-7)
    # Training saw the masks: the same seed without dropout learns another decoder.
    assert np.abs(plain.inverse_transform(Z) - recon).max() > 1e-4


def test_no_dropout_at_inference(X):
    est = _fit(X, decoder_dropout=0.5, architecture="gated_mlp")
    Z = est.transform(X[:10])
    np.testing.assert_array_equal(est.inverse_transform(Z), est.inverse_transform(Z))
    np.testing.assert_array_equal(est.score_samples(X[:10]), est.score_samples(X[:10]))
    # float64 inference runs a float64 copy of the networks: also without masks.
    recon64 = est.inverse_transform(Z)
    recon32 = est.inverse_transform(Z.astype(np.float32))
    np.testing.assert_allclose(recon64, recon32, atol=1e-5)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.score_samples(X[:10]), est.score_samples(X[:10]))


def test_partial_fit_and_warm_start_with_dropout(X):
    global_state = torch.get_rng_state()
    est = VHPEstimator(**{**TINY, "max_iter": 1}, decoder_dropout=0.2)
    est.partial_fit(X).partial_fit(X)
    est.set_params(warm_start=True).fit(X)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert est.n_iter_ == 3
    assert np.isfinite(est.score_samples(X[:10])).all()


def test_dropout_narrows_the_gap_between_training_and_held_out_rows():
    """The regulariser's purpose: a decoder that memorises few rows memorises less."""
    data = load_digits().data / 16.0
    train, held_out = data[:150], data[150:450]
    gaps, held_out_scores = {}, {}
    for rate in (0.0, 0.5):
        est = VHPEstimator(
            n_components=8,
            hidden_layer_sizes=(128, 128),
            max_iter=150,
            n_importance=4,
            n_eval_samples=64,
            random_state=0,
            decoder_dropout=rate,
        ).fit(train)
        held_out_scores[rate] = est.score(held_out)
        gaps[rate] = est.score(train) - held_out_scores[rate]
    # Seeds 0-4: gaps of 23-37 nats without dropout, 8-15 with 0.5, and
    # held-out scores 12-24 nats higher.
    assert gaps[0.0] > 0  # without it, the model overfits its 150 rows
    assert gaps[0.5] < 0.6 * gaps[0.0]
    assert held_out_scores[0.5] > held_out_scores[0.0]


def test_dropout_is_for_the_built_in_decoder(X):
    decoder = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 64))
    with pytest.raises(ValueError, match="decoder_dropout=0.1 applies to the built-in decoder"):
        _fit(X, decoder_dropout=0.1, decoder=decoder)
    # With a custom encoder the decoder is the built-in one: allowed.
    encoder = nn.Sequential(nn.Linear(64, 16), nn.Tanh())
    assert np.isfinite(_fit(X, decoder_dropout=0.1, encoder=encoder).score(X))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_outside_zero_one(X, rate):
    with pytest.raises(ValueError, match="decoder_dropout"):
        _fit(X, decoder_dropout=rate)
