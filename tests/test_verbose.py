"""Progress bars: on fit and partial_fit from verbose=1, on scoring from 2.

A grid search scores every fold: bars there at ``verbose=1`` flooded logs.
"""

import numpy as np
import pytest

from sklearn_vhp import VHPEstimator

TINY = dict(
    hidden_layer_sizes=(8,),
    max_iter=2,
    n_importance=2,
    n_eval_samples=4,
    n_score_samples=4,
    batch_size=32,
    random_state=0,
)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).uniform(size=(64, 5))


def _bars(capsys):
    """Names of the progress bars written to stderr since the last call."""
    err = capsys.readouterr().err
    return {name for name in ("VHPEstimator", "score_samples") if name in err}


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_progress_bars_by_verbosity(X, capsys, verbose):
    est = VHPEstimator(verbose=verbose, **TINY)
    est.fit(X)
    assert _bars(capsys) == ({"VHPEstimator"} if verbose else set())
    est.partial_fit(X)
    assert _bars(capsys) == ({"VHPEstimator"} if verbose else set())
    scores = {verbose: est.score_samples(X)}
    assert _bars(capsys) == ({"score_samples"} if verbose >= 2 else set())
    est.score(X)
    assert _bars(capsys) == ({"score_samples"} if verbose >= 2 else set())
    est.sample(3, random_state=0)
    est.transform(X)
    assert _bars(capsys) == set()
    # The bar changes nothing but stderr.
    est.set_params(verbose=0)
    np.testing.assert_array_equal(est.score_samples(X), scores[verbose])
