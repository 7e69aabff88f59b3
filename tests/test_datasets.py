from pathlib import Path

import numpy as np
import pytest

from sklearn_vhp.datasets import load_binarized_mnist, make_pendulum
from sklearn_vhp.datasets._pendulum import render_pendulum
from sklearn_vhp.metrics import angle_targets, angular_error, smoothness_factor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_make_pendulum_shapes_range_and_reproducibility():
    X, angles = make_pendulum(n_samples=50, image_size=12, random_state=0)
    assert X.shape == (50, 144) and angles.shape == (50,)
    assert X.min() >= 0 and X.max() <= 1 and X.dtype == np.float64
    assert np.all((angles >= 0) & (angles < 2 * np.pi))
    X2, angles2 = make_pendulum(n_samples=50, image_size=12, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(angles, angles2)


def test_pendulum_is_antialiased_and_rotates():
    img = render_pendulum([0.3], line_width=1.3)[0]
    # Anti-aliasing gives grey edge pixels, not just 0/1.
    assert np.any((img > 0.05) & (img < 0.95))
    # Angle 0 hangs down: the bob is in the bottom half of the image.
    down = render_pendulum([0.0])[0].reshape(16, 16)
    assert down[8:].sum() > 5 * down[:8].sum()
    # A half turn mirrors the image through the centre (point symmetry).
    a = render_pendulum([1.0])[0].reshape(16, 16)
    b = render_pendulum([1.0 + np.pi])[0].reshape(16, 16)
    np.testing.assert_allclose(a, b[::-1, ::-1], atol=1e-12)


def test_angle_metrics():
    angles = np.array([0.1, 3.0, 6.2])
    assert angular_error(angles, angle_targets(angles)) == pytest.approx(0.0, abs=1e-12)
    # Errors wrap around 2 pi: 6.2 vs 0.1 is 0.183 rad apart, not 6.1.
    assert angular_error([6.2], angle_targets([0.1])) == pytest.approx(2 * np.pi - 6.1)
    assert smoothness_factor(np.arange(10.0)[:, None] * [1.0, 2.0]) == pytest.approx(0.0)
    assert smoothness_factor([0.0, 1.0, 0.0]) == pytest.approx(2.0)


def test_load_binarized_mnist_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="binarized_mnist_valid"):
        load_binarized_mnist("valid", data_home=tmp_path)


def test_load_binarized_mnist_npz_and_amat(tmp_path):
    rng = np.random.RandomState(0)
    X = (rng.rand(5, 784) > 0.8).astype(np.uint8)
    np.savez(tmp_path / "binarized_mnist_train.npz", X=np.packbits(X, axis=1))
    np.testing.assert_array_equal(load_binarized_mnist("train", data_home=tmp_path), X)
    np.savetxt(tmp_path / "binarized_mnist_test.amat", X, fmt="%d")
    np.testing.assert_array_equal(load_binarized_mnist("test", data_home=tmp_path), X)


@pytest.mark.skipif(not (SHARED / "binarized_mnist_valid.npz").exists(), reason="no shared data")
def test_load_shared_binarized_mnist():
    X = load_binarized_mnist("valid", data_home=SHARED)
    assert X.shape == (10000, 784)
    assert set(np.unique(X)) == {0.0, 1.0}
    assert X.mean() == pytest.approx(0.1311, abs=1e-3)
