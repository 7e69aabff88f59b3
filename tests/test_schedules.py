import math

import numpy as np
import pytest

from sklearn_vhp._schedules import (
    ConstantSchedule,
    GECOSchedule,
    REWOSchedule,
    WarmupSchedule,
    rewo_f,
)


def test_rewo_f_signs():
    # Violated constraint: f = -1 whatever beta.
    assert rewo_f(0.5, 1e-3, 3.0) == -1.0
    # Constraint holds: f = tanh(tau (beta - 1)) <= 0, and 0 at beta = 1.
    assert rewo_f(0.5, -1e-3, 3.0) == pytest.approx(math.tanh(-1.5))
    assert rewo_f(1.0, -1e-3, 3.0) == 0.0


def test_rewo_initial_phase_keeps_beta_until_kappa_reached():
    s = REWOSchedule(kappa=0.1, beta_init=1e-3, alpha=0.0)
    for c in [0.5, 0.3, 0.02]:  # above kappa^2 = 0.01
        s.step(c)
        assert s.phase == "initial" and s.beta == 1e-3 and not s.train_prior
    s.step(0.005)  # first time below kappa^2: switch, permanently
    assert s.phase == "main" and s.train_prior
    s.step(0.5)
    assert s.phase == "main"


def test_rewo_beta_falls_when_violated_rises_when_satisfied_and_ends_at_one():
    s = REWOSchedule(kappa=0.1, nu=50.0, beta_init=0.5, alpha=0.0)
    s.step(0.001)  # switch
    betas = [s.beta]
    for _ in range(50):  # violated: beta must fall
        s.step(0.02)
        betas.append(s.beta)
    assert np.all(np.diff(betas) < 0)
    low = s.beta
    betas = [low]
    for _ in range(20000):  # satisfied: beta rises, never above 1
        s.step(0.0)
        betas.append(s.beta)
    assert np.all(np.diff(betas) >= 0) and max(betas) <= 1.0
    assert betas[1] > low
    assert s.beta == pytest.approx(1.0, abs=1e-3)


def test_running_average():
    s = ConstantSchedule(alpha=0.9)
    s.step(1.0)
    s.step(0.0)
    assert s.constraint_avg == pytest.approx(0.9)
    assert s.beta == 1.0 and s.train_prior


def test_geco_multiplier_direction_and_no_cap():
    s = GECOSchedule(kappa=0.1, nu=10.0, alpha=0.0)
    s.step(0.5)  # violated: lambda grows, beta = 1 / lambda falls
    assert s.beta < 1.0
    s = GECOSchedule(kappa=0.1, nu=10.0, alpha=0.0)
    for _ in range(100):
        s.step(0.0)  # satisfied: beta grows past 1 (no cap, unlike REWO)
    assert s.beta > 1.0


def test_warmup_linear():
    s = WarmupSchedule(10)
    betas = []
    for _ in range(15):
        s.step(0.0)
        betas.append(s.beta)
    assert betas[4] == pytest.approx(0.5) and betas[9] == 1.0 and betas[-1] == 1.0


def test_rewo_plateau_ends_the_initial_phase_with_a_reachable_kappa():
    # kappa = 0.1 (κ² = 0.01) is out of reach: C levels off at 0.05.
    s = REWOSchedule(kappa=0.1, alpha=0.0, plateau_window=10, plateau_tol=0.1, plateau_margin=1.5)
    for t in range(19):
        s.step(0.05)
        assert s.phase == "initial", t  # the first window only sets the reference
    s.step(0.05)  # end of the second window: no 10 % fall, a plateau
    assert s.phase == "main" and s.train_prior
    assert s.kappa == pytest.approx(math.sqrt(1.5 * 0.05))
    for _ in range(5000):  # C = 0.05 < κ² = 0.075 now: β rises to 1
        s.step(0.05)
    assert s.beta == pytest.approx(1.0, abs=1e-3)


def test_rewo_no_plateau_while_the_error_keeps_falling():
    s = REWOSchedule(kappa=0.01, alpha=0.0, plateau_window=10, plateau_tol=0.1)
    c = 1.0
    for _ in range(200):
        c *= 0.98  # 18 % lower every window
        s.step(c)
    assert s.phase == "initial" and s.kappa == 0.01
    s.step(1e-5)  # κ² reached first: the switch keeps κ
    assert s.phase == "main" and s.kappa == 0.01


def test_rewo_without_plateau_window_keeps_a_fixed_kappa():
    s = REWOSchedule(kappa=0.1, alpha=0.0)
    for _ in range(10000):
        s.step(0.05)
    assert s.phase == "initial" and s.kappa == 0.1


def test_rewo_auto_kappa_relaxes_when_beta_is_held_back():
    # After the switch, C at β ≈ 1 (0.05) exceeds κ² (0.04): β falls, and
    # with a plateau window κ² is raised until β can reach 1.
    def run(window):
        noise = np.random.RandomState(0).uniform(-0.002, 0.002, 5000)
        s = REWOSchedule(kappa=0.2, nu=50.0, alpha=0.0, plateau_window=window)
        s.step(0.01)  # below κ² = 0.04: main phase
        for e in noise:
            s.step(0.01 + 0.04 * s.beta + e)  # the error grows with β
        return s

    fixed = run(None)
    assert fixed.kappa == 0.2 and fixed.beta < 0.9
    auto = run(50)
    assert auto.kappa**2 >= 0.05 and auto.beta == pytest.approx(1.0, abs=1e-3)
    # κ² was raised to 1.5 times an error the model had reached.
    assert auto.kappa**2 <= 1.5 * 0.052
