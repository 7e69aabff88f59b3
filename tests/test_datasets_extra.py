"""OpenML loaders, dynamic binarisation and Omniglot, without the network."""

import numpy as np
import pytest
from scipy.io import savemat
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import validate_data

import sklearn_vhp.datasets._openml as openml_mod
from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import (
    DynamicBinarizer,
    fetch_dynamic_mnist,
    fetch_fashion_mnist,
    load_omniglot,
)


# ------------------------------------------------------------ OpenML loaders
@pytest.fixture
def fake_openml(monkeypatch):
    """Replace fetch_openml by a fake 700 x 784 dataset (600 training rows).

    The real ones have 70,000 rows, 60,000 for training; the split sizes are
    scaled down by 100 to keep the test light. Returns the list of calls.
    """
    calls = []

    def fake(name, *, version, data_home, return_X_y, as_frame):
        calls.append(dict(name=name, version=version, data_home=data_home))
        assert return_X_y and as_frame is False
        rng = np.random.RandomState(0)
        X = rng.randint(0, 256, size=(700, 784)).astype(np.float64)
        X[:, 0] = np.arange(700) % 256  # marks the row order
        y = np.array([str(i % 10) for i in range(700)], dtype=object)
        return X, y

    monkeypatch.setattr(openml_mod, "fetch_openml", fake)
    small = {key: (name, n_train // 100) for key, (name, n_train) in openml_mod._DATASETS.items()}
    monkeypatch.setattr(openml_mod, "_DATASETS", small)
    return calls


@pytest.mark.parametrize(
    "fetch, name", [(fetch_dynamic_mnist, "mnist_784"), (fetch_fashion_mnist, "Fashion-MNIST")]
)
def test_fetch_openml_scales_splits_and_caches(fetch, name, fake_openml, tmp_path):
    with pytest.raises(FileNotFoundError, match="download_if_missing=False") as info:
        fetch(data_home=tmp_path, download_if_missing=False)
    assert str(tmp_path) in str(info.value)
    assert not fake_openml

    bunch = fetch(data_home=tmp_path)
    assert fake_openml == [dict(name=name, version=1, data_home=tmp_path)]
    assert bunch.data.shape == (600, 784) and bunch.data.dtype == np.float64
    assert bunch.data.min() >= 0 and bunch.data.max() <= 1 and bunch.data.max() > 0.99
    assert bunch.images.shape == (600, 28, 28)
    assert bunch.target.dtype == np.int64 and set(np.unique(bunch.target)) == set(range(10))
    np.testing.assert_allclose(bunch.data[:3, 0] * 255, [0, 1, 2])

    # Later calls read the cache: no download, even when downloading is off.
    X_test, y_test = fetch("test", data_home=tmp_path, download_if_missing=False, return_X_y=True)
    assert len(fake_openml) == 1
    assert X_test.shape == (100, 784) and y_test.shape == (100,)
    np.testing.assert_allclose(X_test[0, 0] * 255, 600 % 256)
    assert fetch("all", data_home=tmp_path, return_X_y=True)[0].shape == (700, 784)


def test_fetch_rejects_bad_subset(tmp_path):
    with pytest.raises(ValueError, match="subset"):
        fetch_dynamic_mnist("valid", data_home=tmp_path)


# ------------------------------------------------------------ DynamicBinarizer
class _SquashingBinarizer(DynamicBinarizer):
    """Maps the checks' non-negative random data into [0, 1) before drawing.

    DynamicBinarizer rejects values above 1, which most of scikit-learn's
    random check data have; everything else is the real class.
    """

    def _check(self, X, reset):
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        if X.size and X.min() < 0:
            raise ValueError("Negative values in data passed to _SquashingBinarizer.")
        return X / (1 + X)


@parametrize_with_checks([_SquashingBinarizer(random_state=0)])
def test_dynamic_binarizer_sklearn_compatible(estimator, check):
    check(estimator)


def test_dynamic_binarizer_draws_bernoulli_anew_each_call():
    p = np.linspace(0, 1, 11)
    X = np.tile(p, (4000, 1))
    binarizer = DynamicBinarizer(random_state=0).fit(X)
    first, second = binarizer.transform(X), binarizer.transform(X)
    assert set(np.unique(first)) == {0.0, 1.0} and first.dtype == np.float64
    assert not np.array_equal(first, second)  # a new draw per call
    np.testing.assert_allclose(first.mean(axis=0), p, atol=0.03)
    assert (first[:, 0] == 0).all() and (first[:, -1] == 1).all()
    # fit restarts the sequence: reproducible.
    np.testing.assert_array_equal(binarizer.fit(X).transform(X), first)
    assert binarizer.transform(X.astype(np.float32)).dtype == np.float32


def test_dynamic_binarizer_rejects_non_probabilities():
    with pytest.raises(ValueError, match="Negative values"):
        DynamicBinarizer().fit(-np.ones((3, 2)))
    binarizer = DynamicBinarizer().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="divide 8-bit pixels by 255"):
        binarizer.transform(np.full((3, 2), 255.0))


def test_dynamic_binarizer_in_a_pipeline_feeds_binary_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(60, 16))
    pipe = make_pipeline(
        DynamicBinarizer(random_state=0),
        VHPEstimator(hidden_layer_sizes=(8,), max_iter=1, n_eval_samples=8, random_state=0),
    ).fit(X)
    assert pipe[-1].likelihood_ == "bernoulli"  # it saw binary data
    assert pipe.transform(X).shape == (60, 2)


# ------------------------------------------------------------ Omniglot
def test_load_omniglot_reads_chardata_in_iwae_layout(tmp_path):
    rng = np.random.RandomState(0)
    train = rng.uniform(size=(5, 28, 28))
    test = rng.uniform(size=(3, 28, 28))
    # chardata.mat stores one image per column, each flattened column-major.
    store = lambda imgs: imgs.transpose(0, 2, 1).reshape(len(imgs), 784).T  # noqa: E731
    savemat(tmp_path / "chardata.mat", {"data": store(train), "testdata": store(test)})
    X = load_omniglot(data_home=tmp_path)
    assert X.shape == (5, 784) and X.dtype == np.float64
    np.testing.assert_allclose(X.reshape(-1, 28, 28), train)
    np.testing.assert_allclose(load_omniglot("test", data_home=tmp_path).reshape(-1, 28, 28), test)


def test_load_omniglot_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="chardata.mat") as info:
        load_omniglot(data_home=tmp_path)
    assert str(tmp_path / "chardata.mat") in str(info.value)
