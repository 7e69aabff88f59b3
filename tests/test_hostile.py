"""Reliability II (issue 14): hostile use of fitted models.

No silent wrong answers and no broken state: any array layout, out-of-support
rows, the caller's grad mode, parameters changed after fit, failed fits,
memory bounds, threads, degenerate data, raw errors, persistence.
"""

import pickle
import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import ManifoldInterpolator, VHPEstimator

pd = pytest.importorskip("pandas")


def E(**kw):
    """The issue's tiny estimator."""
    params = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0, device="cpu")
    params.update(kw)
    return VHPEstimator(**params)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).rand(120, 6)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return E(n_eval_samples=16).fit(X)


def _state(est):
    """Everything a user can observe of a fitted model, for before/after checks."""
    Xp = np.random.RandomState(1).rand(5, est.n_features_in_)
    return (
        est.n_features_in_,
        est.n_iter_,
        est.transform(Xp),
        est.score_samples(Xp),
        est.sample(3, random_state=0),
        list(est.get_feature_names_out()),
    )


def _assert_same_state(a, b):
    assert a[:2] == b[:2] and a[5] == b[5]
    for u, v in zip(a[2:5], b[2:5]):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------ 1. any array layout
LAYOUTS = {
    "reversed rows": lambda A: A[::-1],
    "np.flip both": lambda A: np.flip(A),
    "reversed columns": lambda A: A[:, ::-1],
    "fortran": np.asfortranarray,
    "every other row": lambda A: np.repeat(A, 2, axis=0)[::2],
    "read-only": lambda A: np.lib.stride_tricks.as_strided(A, writeable=False),
    "reversed DataFrame": lambda A: pd.DataFrame(A).iloc[::-1],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_layout_gives_the_contiguous_answer(fitted, X, layout):
    view = LAYOUTS[layout]
    ref = np.ascontiguousarray(view(X) if layout != "reversed DataFrame" else X[::-1])
    A = view(X)
    np.testing.assert_array_equal(fitted.transform(A), fitted.transform(ref))
    np.testing.assert_array_equal(fitted.score_samples(A), fitted.score_samples(ref))
    Z = fitted.transform(ref)
    Zv = view(Z) if layout != "reversed columns" else Z[::-1]
    Zr = np.ascontiguousarray(Zv if layout != "reversed DataFrame" else Z[::-1])
    np.testing.assert_array_equal(fitted.inverse_transform(Zv), fitted.inverse_transform(Zr))
    a, b = E().fit(A), E().fit(ref)
    np.testing.assert_array_equal(a.transform(ref), b.transform(ref))


def test_interpolator_accepts_negative_strides(X):
    interp = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5, random_state=0)
    interp.fit(X[::-1])
    ref = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5, random_state=0)
    ref.fit(np.ascontiguousarray(X[::-1]))
    np.testing.assert_array_equal(interp.transform(X[::-1]), ref.transform(X[::-1].copy()))
    path = interp.interpolate(X[0, ::-1], X[1, ::-1])
    ref_path = ref.interpolate(X[0, ::-1].copy(), X[1, ::-1].copy())
    np.testing.assert_array_equal(path.decoded, ref_path.decoded)
    np.testing.assert_array_equal(
        interp.geodesic_distances(X[:4][::-1]), ref.geodesic_distances(X[:4][::-1].copy())
    )
