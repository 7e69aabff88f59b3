"""The one place that imports scikit-learn's private helpers.

Parameter validation (``Interval``, ``StrOptions``, ``HasMethods``,
``validate_params``, ``_fit_context`` and ``InvalidParameterError``) lives in
scikit-learn's private ``sklearn.utils._param_validation`` and
``sklearn.base``. They are used when they import, so that error messages,
``check_estimator``'s parameter-validation check and the global
``skip_parameter_validation`` setting behave exactly as for scikit-learn's own
estimators. Should a future scikit-learn move or drop them, the small
implementation below takes over with the same semantics and messages, so
that this package keeps working without an upper pin on scikit-learn.

Everything else this package needs from scikit-learn is public API
(``validate_data``, ``__sklearn_tags__``, ``get_config``), available from the
oldest supported version, 1.6, on.
"""

import functools
import inspect
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn import config_context, get_config
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "SKLEARN_PARAM_VALIDATION",
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "fit_context",
    "get_chunk_n_rows",
    "validate_parameter_constraints",
    "validate_params",
]


def get_chunk_n_rows(row_bytes, *, max_n_rows=None, working_memory=None):
    """Rows of ``row_bytes`` bytes each that fit in ``working_memory`` MiB.

    scikit-learn's ``sklearn.utils.get_chunk_n_rows`` (private since 1.8):
    ``working_memory=None`` reads ``sklearn.get_config()["working_memory"]``;
    at least one row, with a warning when a single row does not fit.
    """
    if working_memory is None:
        working_memory = get_config()["working_memory"]
    n_rows = int(working_memory * 2**20 // row_bytes)
    if max_n_rows is not None:
        n_rows = min(n_rows, max_n_rows)
    if n_rows < 1:
        warnings.warn(
            "Could not adhere to working_memory config. Currently "
            f"{working_memory:.0f}MiB, {np.ceil(row_bytes * 2**-20):.0f}MiB required.",
            stacklevel=2,
        )
        n_rows = 1
    return n_rows


# --- the fallback: scikit-learn's parameter validation, reduced to what this
# --- package's constraints use. Defined unconditionally so that it is tested
# --- against scikit-learn's own implementation.


class _FallbackInvalidParameterError(ValueError, TypeError):
    """A parameter of a class, method or function has an invalid type or value.

    Subclasses both ``ValueError`` and ``TypeError``, as scikit-learn's
    ``InvalidParameterError`` does.
    """


class _FallbackInterval:
    """Numbers of ``type`` (``Integral`` or ``Real``) between two bounds."""

    def __init__(self, type, left, right, *, closed):
        if type not in (Integral, Real):
            raise ValueError(f"type must be Integral or Real; got {type!r}.")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(
                f"closed must be 'left', 'right', 'both' or 'neither'; got {closed!r}."
            )
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, val):
        if not isinstance(val, self.type):
            return False
        if not isinstance(val, Integral) and np.isnan(val):
            return False
        left = -np.inf if self.left is None else self.left
        right = np.inf if self.right is None else self.right
        low_ok = val >= left if self.closed in ("left", "both") else val > left
        high_ok = val <= right if self.closed in ("right", "both") else val < right
        return bool(low_ok and high_ok)

    def __str__(self):
        kind = "an int" if self.type is Integral else "a float"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        if self.type is not Integral:
            left = left if self.left is None else float(left)
            right = right if self.right is None else float(right)
        open_ = "[" if self.closed in ("left", "both") else "("
        close = "]" if self.closed in ("right", "both") else ")"
        return f"{kind} in the range {open_}{left}, {right}{close}"


class _FallbackStrOptions:
    """One of a set of strings."""

    def __init__(self, options, *, deprecated=None):
        self.options = options
        self.deprecated = deprecated or set()

    def is_satisfied_by(self, val):
        return isinstance(val, str) and val in self.options

    def __str__(self):
        marked = [f"{o!r} (deprecated)" if o in self.deprecated else repr(o) for o in self.options]
        return f"a str among {{{', '.join(marked)}}}"


class _FallbackHasMethods:
    """An object with the given methods."""

    def __init__(self, methods):
        self.methods = [methods] if isinstance(methods, str) else list(methods)

    def is_satisfied_by(self, val):
        return all(callable(getattr(val, method, None)) for method in self.methods)

    def __str__(self):
        names = [repr(m) for m in self.methods]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"an object implementing {listed}"


class _Check:
    """A constraint given as a predicate and its description."""

    def __init__(self, predicate, description):
        self.is_satisfied_by, self.description = predicate, description

    def __str__(self):
        return self.description


def _is_arraylike_not_scalar(val):
    arraylike = hasattr(val, "__len__") or hasattr(val, "shape") or hasattr(val, "__array__")
    return arraylike and not np.isscalar(val)


def _type_name(t):
    module = t.__module__
    if module == "builtins":
        return t.__qualname__
    if t is Real:
        return "float"
    if t is Integral:
        return "int"
    return f"{module}.{t.__qualname__}"


def _make_constraint(constraint):
    """scikit-learn's ``make_constraint`` for the forms this package uses."""
    if isinstance(constraint, (_FallbackInterval, _FallbackStrOptions, _FallbackHasMethods)):
        return constraint
    if constraint is None:
        return _Check(lambda v: v is None, "None")
    if isinstance(constraint, type):
        return _Check(
            lambda v: isinstance(v, constraint), f"an instance of {_type_name(constraint)!r}"
        )
    if constraint is callable:
        return _Check(callable, "a callable")
    named = {
        "array-like": _Check(_is_arraylike_not_scalar, "an array-like"),
        "boolean": _Check(
            lambda v: isinstance(v, (bool, np.bool_)),
            "an instance of 'bool' or an instance of 'numpy.bool'",
        ),
        "verbose": _Check(
            lambda v: (
                isinstance(v, (bool, np.bool_))
                or _FallbackInterval(Integral, 0, None, closed="left").is_satisfied_by(v)
            ),
            "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'",
        ),
        "random_state": _Check(
            lambda v: (
                v is None
                or isinstance(v, np.random.RandomState)
                or _FallbackInterval(Integral, 0, 2**32 - 1, closed="both").is_satisfied_by(v)
            ),
            "an int in the range [0, 4294967295], an instance of "
            "'numpy.random.mtrand.RandomState' or None",
        ),
    }
    if isinstance(constraint, str) and constraint in named:
        return named[constraint]
    raise ValueError(f"Unknown constraint type: {constraint}")


def _fallback_validate_parameter_constraints(parameter_constraints, params, caller_name):
    """Raise ``InvalidParameterError`` for the first parameter no constraint admits."""
    for name, value in params.items():
        if name not in parameter_constraints or parameter_constraints[name] == "no_validation":
            continue
        constraints = [_make_constraint(c) for c in parameter_constraints[name]]
        if any(c.is_satisfied_by(value) for c in constraints):
            continue
        described = [str(c) for c in constraints]
        if len(described) > 1:
            described = [f"{', '.join(described[:-1])} or {described[-1]}"]
        raise _FallbackInvalidParameterError(
            f"The {name!r} parameter of {caller_name} must be {described[0]}. "
            f"Got {value!r} instead."
        )


def _fallback_validate_params(parameter_constraints, *, prefer_skip_nested_validation):
    """Decorator validating a function's arguments (scikit-learn's ``validate_params``)."""

    def decorator(func):
        func._skl_parameter_constraints = parameter_constraints
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            global_skip = get_config()["skip_parameter_validation"]
            if global_skip:
                return func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            variadic = {
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            }
            params = {
                k: v for k, v in bound.arguments.items() if k not in variadic | {"self", "cls"}
            }
            _fallback_validate_parameter_constraints(
                parameter_constraints, params, caller_name=func.__qualname__
            )
            with config_context(skip_parameter_validation=prefer_skip_nested_validation):
                return func(*args, **kwargs)

        return wrapper

    return decorator


def _fallback_fit_context(*, prefer_skip_nested_validation):
    """Decorator of ``fit`` methods (scikit-learn's ``sklearn.base._fit_context``).

    Validates the estimator's ``_parameter_constraints`` against its
    parameters (not again on ``partial_fit`` of a fitted estimator), then
    runs the method with nested validation skipped if preferred.
    """

    def decorator(fit_method):
        @functools.wraps(fit_method)
        def wrapper(estimator, *args, **kwargs):
            global_skip = get_config()["skip_parameter_validation"]
            refit = fit_method.__name__ == "partial_fit" and _is_fitted(estimator)
            if not global_skip and not refit:
                _fallback_validate_parameter_constraints(
                    getattr(estimator, "_parameter_constraints", {}),
                    estimator.get_params(deep=False),
                    caller_name=type(estimator).__name__,
                )
            with config_context(
                skip_parameter_validation=prefer_skip_nested_validation or global_skip
            ):
                return fit_method(estimator, *args, **kwargs)

        return wrapper

    return decorator


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


try:
    from sklearn.base import _fit_context as fit_context
    from sklearn.utils._param_validation import (
        HasMethods,
        Interval,
        InvalidParameterError,
        StrOptions,
        validate_parameter_constraints,
        validate_params,
    )
except ImportError:  # pragma: no cover - exercised by tests/test_compat.py
    SKLEARN_PARAM_VALIDATION = False
    HasMethods = _FallbackHasMethods
    Interval = _FallbackInterval
    InvalidParameterError = _FallbackInvalidParameterError
    StrOptions = _FallbackStrOptions
    fit_context = _fallback_fit_context
    validate_parameter_constraints = _fallback_validate_parameter_constraints
    validate_params = _fallback_validate_params
else:
    #: Whether scikit-learn's own (private) parameter validation is in use.
    SKLEARN_PARAM_VALIDATION = True
