"""Property-based tests (hypothesis): β schedules and input validation."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sklearn_vhp import VHPEstimator
from sklearn_vhp._schedules import GECOSchedule, REWOSchedule

# ---------------------------------------------------------------- schedules
# C is a mean squared error: non-negative; the range covers data far from [0, 1].
constraints = st.lists(
    st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=300,
)
kappas = st.floats(min_value=1e-4, max_value=1e3)
rates = st.floats(min_value=1e-3, max_value=1e4)  # ν
taus = st.floats(min_value=1e-2, max_value=100.0)
alphas = st.floats(min_value=0.0, max_value=0.999)
SCHEDULE_SETTINGS = settings(max_examples=200, deadline=None)
# Every REWOSchedule argument, for the properties that hold whatever they are.
REWO_PARAMS = dict(
    kappa=kappas,
    nu=rates,
    tau=taus,
    alpha=alphas,
    beta_init=st.floats(min_value=1e-8, max_value=1.0),
)


@SCHEDULE_SETTINGS
@given(cs=constraints, **REWO_PARAMS)
def test_rewo_beta_stays_in_unit_interval(cs, kappa, nu, tau, alpha, beta_init):
    s = REWOSchedule(kappa, nu=nu, tau=tau, alpha=alpha, beta_init=beta_init)
    for c in cs:
        s.step(c)
        assert 0.0 < s.beta <= 1.0 and math.isfinite(s.beta)


@SCHEDULE_SETTINGS
@given(cs=constraints, **REWO_PARAMS)
def test_rewo_keeps_beta_until_first_constraint_below_kappa(cs, kappa, nu, tau, alpha, beta_init):
    s = REWOSchedule(kappa, nu=nu, tau=tau, alpha=alpha, beta_init=beta_init)
    reached = False
    for c in cs:
        s.step(c)
        if not reached:
            # β and the phase only move once Ĉ_t < κ² has been seen; β itself
            # changes from the iteration after the switch on.
            assert s.beta == beta_init
            reached = s.constraint_avg < kappa**2
            assert s.phase == ("main" if reached else "initial")
            assert s.train_prior == reached


@SCHEDULE_SETTINGS
@given(
    cs=constraints,
    kappa=kappas,
    nu=rates,
    alpha=alphas,
    beta_init=st.floats(min_value=1e-6, max_value=1e6),
)
def test_geco_multiplier_stays_positive_and_finite(cs, kappa, nu, alpha, beta_init):
    s = GECOSchedule(kappa, nu=nu, alpha=alpha, beta_init=beta_init)
    for c in cs:
        previous = s.beta
        s.step(c)
        assert s.beta > 0 and math.isfinite(s.beta)
        multiplier = 1.0 / s.beta  # λ
        assert multiplier > 0 and math.isfinite(multiplier)
        # λ grows while the (averaged) constraint is violated, shrinks otherwise.
        # (Up to rounding where β is clipped at its bounds.)
        if s.constraint_avg > kappa**2:
            assert s.beta <= previous * (1 + 1e-9)
        else:
            assert s.beta >= previous * (1 - 1e-9)


# --------------------------------------------------------- input validation
TINY = dict(hidden_layer_sizes=(4,), max_iter=1, n_importance=2, n_eval_samples=4, random_state=0)
dtypes = st.sampled_from(
    [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex128,
     np.str_, object]
)  # fmt: skip
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
# Finite values of a moderate size, plus the special ones validation must catch.
values = st.one_of(
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]),
)


@st.composite
def arrays(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    data = draw(hnp.arrays(np.float64, shape, elements=values))
    if dtype is np.str_:
        return data.astype(str)
    if dtype is object:
        out = data.astype(object)
        if out.size and draw(st.booleans()):
            out.flat[0] = draw(st.sampled_from([None, "a", [1.0]]))
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        return data.astype(dtype)


def _call_rejects_only_cleanly(fn, X):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(X)
    except (ValueError, TypeError):  # incl. InvalidParameterError, NotFittedError
        pass


@pytest.fixture(scope="module")
def fitted():
    X = np.random.RandomState(0).rand(40, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VHPEstimator(**TINY).fit(X)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=arrays(), early_stopping=st.booleans())
def test_fit_raises_only_value_or_type_errors(X, early_stopping):
    est = VHPEstimator(**TINY, early_stopping=early_stopping)
    _call_rejects_only_cleanly(est.fit, X)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(X=arrays(), method=st.sampled_from(["transform", "score_samples", "inverse_transform"]))
def test_predict_methods_raise_only_value_or_type_errors(fitted, X, method):
    _call_rejects_only_cleanly(getattr(fitted, method), X)
    if method == "transform" and X.ndim == 2 and X.shape[1] == 5 and X.shape[0] > 0:
        try:
            out = fitted.transform(X)
        except (ValueError, TypeError):
            return
        assert out.shape == (X.shape[0], 2) and np.isfinite(out).all()
