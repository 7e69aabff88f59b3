"""The paper's pendulum target with default settings (minutes: marked slow)."""

import time

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import make_pendulum
from sklearn_vhp.metrics import angle_targets, angular_error


@pytest.mark.slow
@pytest.mark.parametrize("line_width, bob_radius", [(2.0, 2.0), (1.0, 1.5), (3.0, 0.0)])
def test_default_estimator_recovers_pendulum_angle(line_width, bob_radius):
    # Renderers other than the default, so nothing is tuned to one look.
    torch.set_num_threads(2)
    X, angles = make_pendulum(15000, random_state=7, line_width=line_width, bob_radius=bob_radius)
    model = make_pipeline(VHPEstimator(n_components=2, random_state=0), LinearRegression())
    start = time.perf_counter()
    model.fit(X[:12000], angle_targets(angles[:12000]))
    elapsed = time.perf_counter() - start
    error = angular_error(angles[12000:], model.predict(X[12000:]))
    vhp = model[0]
    print(f"lw={line_width} bob={bob_radius}: {error:.4f} rad in {elapsed:.0f} s")
    # The paper reports 0.054 rad; issue 17 keeps the defaults at <= 0.02 on every renderer
    # (2026-12-02: 0.0068, 0.0099, 0.0089 rad).
    assert error <= 0.02
    assert vhp.schedule_.phase == "main" and vhp.beta_ > 0.9
    assert np.isfinite(vhp.history_["loss"]).all()
