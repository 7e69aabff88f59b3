"""The compatibility module: scikit-learn's private validation or our fallback.

``sklearn_vhp._compat`` imports scikit-learn's private parameter validation
when it exists and otherwise falls back to its own. Both ways are tested: the
fallback against scikit-learn's implementation on this package's own
constraints, and the whole package in a fresh interpreter in which the private
helpers are gone.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError as SklearnInvalidParameterError
from sklearn.utils._param_validation import validate_parameter_constraints

from sklearn_vhp import ManifoldInterpolator, VHPEstimator, _compat
from sklearn_vhp.datasets._binarize import DynamicBinarizer

ROOT = Path(__file__).resolve().parents[1]


def test_compat_uses_sklearn_validation_when_present():
    assert _compat.SKLEARN_PARAM_VALIDATION
    assert _compat.InvalidParameterError is SklearnInvalidParameterError
    with pytest.raises(SklearnInvalidParameterError, match="'n_components' parameter"):
        VHPEstimator(n_components=0).fit(np.zeros((4, 3)))


def _fallback_constraints(constraints):
    """The same constraints built from the fallback's classes."""
    converted = {}
    for name, options in constraints.items():
        out = []
        for c in options:
            kind = type(c).__name__
            if kind == "Interval":
                c = _compat._FallbackInterval(c.type, c.left, c.right, closed=c.closed)
            elif kind == "StrOptions":
                c = _compat._FallbackStrOptions(c.options)
            elif kind == "HasMethods":
                c = _compat._FallbackHasMethods(c.methods)
            out.append(c)
        converted[name] = out
    return converted


CANDIDATES = [
    None,
    True,
    False,
    np.True_,
    0,
    1,
    2,
    -1,
    2**33,
    np.int64(3),
    0.0,
    0.5,
    1.0,
    1.5,
    -0.5,
    np.float32(0.25),
    float("nan"),
    float("inf"),
    "auto",
    "vhp",
    "mlp",
    "cpu",
    "bogus",
    "",
    (64, 64),
    [8],
    np.array([4, 4]),
    np.random.RandomState(0),
    VHPEstimator(),
    object(),
]


@pytest.mark.parametrize(
    "owner", [VHPEstimator, ManifoldInterpolator, DynamicBinarizer], ids=lambda c: c.__name__
)
def test_fallback_validation_agrees_with_sklearn(owner):
    """Accepted values and error messages match scikit-learn's, parameter by
    parameter, on every constraint this package declares."""
    constraints = owner._parameter_constraints
    fallback = _fallback_constraints(constraints)
    n_rejected = 0
    for name in constraints:
        for value in CANDIDATES:
            try:
                validate_parameter_constraints(constraints, {name: value}, owner.__name__)
                expected = None
            except SklearnInvalidParameterError as exc:
                expected = str(exc)
            try:
                _compat._fallback_validate_parameter_constraints(
                    fallback, {name: value}, owner.__name__
                )
                got = None
            except _compat._FallbackInvalidParameterError as exc:
                got = str(exc)
                assert isinstance(exc, ValueError) and isinstance(exc, TypeError)
            assert got == expected, (name, value)
            n_rejected += expected is not None
    assert n_rejected > 0


def test_fallback_fit_context_and_validate_params():
    """The fallback decorators validate (or skip under the global setting)."""
    import sklearn

    with pytest.raises(ValueError, match="Integral or Real"):
        _compat._FallbackInterval(int, 1, None, closed="left")

    from numbers import Integral

    calls = []

    class Small(VHPEstimator):
        _parameter_constraints = {
            "n_components": [_compat._FallbackInterval(Integral, 1, None, closed="left")]
        }

        @_compat._fallback_fit_context(prefer_skip_nested_validation=True)
        def fit(self, X, y=None):
            calls.append(sklearn.get_config()["skip_parameter_validation"])
            return self

    with pytest.raises(_compat._FallbackInvalidParameterError, match="'n_components' parameter"):
        Small(n_components=0).fit(None)
    Small(n_components=2).fit(None)
    assert calls == [True]
    with sklearn.config_context(skip_parameter_validation=True):
        Small(n_components=0).fit(None)

    @_compat._fallback_validate_params(
        {"n": [_compat._FallbackInterval(Integral, 1, None, closed="left")]},
        prefer_skip_nested_validation=True,
    )
    def make(n, *, scale=1.0):
        return n * scale

    assert make(2, scale=3.0) == 6.0
    with pytest.raises(
        _compat._FallbackInvalidParameterError, match=r"'n' parameter of .*make must be an int"
    ):
        make(0)


def test_get_chunk_n_rows():
    assert _compat.get_chunk_n_rows(2**20, working_memory=8) == 8
    assert _compat.get_chunk_n_rows(2**20, working_memory=8, max_n_rows=3) == 3
    with pytest.warns(UserWarning, match="working_memory"):
        assert _compat.get_chunk_n_rows(2**30, working_memory=1) == 1


_WITHOUT_PRIVATE = textwrap.dedent(
    """
    import numpy as np
    import sklearn.base
    import sklearn.utils._param_validation as pv

    # scikit-learn's own modules keep what they imported at load time.
    import sklearn.datasets, sklearn.decomposition, sklearn.linear_model  # noqa: E401
    import sklearn.metrics, sklearn.model_selection, sklearn.neighbors  # noqa: E401
    import sklearn.pipeline, sklearn.preprocessing, sklearn.utils.extmath  # noqa: E401

    # A scikit-learn that no longer has the private helpers: later imports of
    # the two modules see stand-ins without them (scikit-learn's own modules,
    # loaded above, keep working).
    import sys
    import types

    def without(module, names):
        stub = types.ModuleType(module.__name__)
        stub.__dict__.update({k: v for k, v in vars(module).items() if k not in names})
        sys.modules[module.__name__] = stub

    without(sklearn.base, {"_fit_context"})
    without(pv, {"Interval", "StrOptions", "HasMethods", "validate_params",
                 "InvalidParameterError", "validate_parameter_constraints"})

    from sklearn_vhp import ManifoldInterpolator, VHPEstimator, _compat
    from sklearn_vhp.datasets import make_pendulum

    assert not _compat.SKLEARN_PARAM_VALIDATION
    X, _ = make_pendulum(64, image_size=8, random_state=0)

    def refused(call, match):
        try:
            call()
        except ValueError as exc:
            assert isinstance(exc, TypeError), type(exc)
            assert type(exc).__name__ == "_FallbackInvalidParameterError", type(exc)
            assert match in str(exc), str(exc)
        else:
            raise AssertionError(f"no error for {match}")

    refused(lambda: VHPEstimator(n_components=0).fit(X),
            "The 'n_components' parameter of VHPEstimator must be an int in the range [1, inf)")
    refused(lambda: VHPEstimator(kappa="bogus").fit(X), "'kappa' parameter")
    refused(lambda: ManifoldInterpolator(n_nodes=1).fit(X), "'n_nodes' parameter")
    refused(lambda: ManifoldInterpolator(estimator=object()).fit(X), "'estimator' parameter")
    refused(lambda: make_pendulum(0), "'n_samples' parameter of make_pendulum")
    vae = VHPEstimator(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X)
    vae.partial_fit(X)
    path = ManifoldInterpolator(vae, prefit=True, n_nodes=20, random_state=0).fit(X)
    assert path.interpolate(X[0], X[1]).decoded.shape[1] == X.shape[1]
    print("fallback ok")
    """
)


def test_package_works_without_sklearn_private_validation():
    """In a fresh interpreter whose scikit-learn lacks the private helpers,
    the package imports, validates with the fallback, and fits."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PRIVATE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fallback ok" in result.stdout
