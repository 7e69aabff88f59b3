"""Dynamic binarisation: binary images drawn anew from grey levels."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._compat import fit_context as _fit_context


class DynamicBinarizer(TransformerMixin, BaseEstimator):
    """Draw binary data ``x ~ Bernoulli(p)`` from probabilities ``p`` in [0, 1].

    The "dynamic binarisation" of MNIST-like benchmarks (Salakhutdinov &
    Murray, 2008; the VampPrior and IWAE papers): grey levels are read as
    pixel probabilities and every call to :meth:`transform` draws a *new*
    binary sample, so a model that sees the data through this transformer
    sees a fresh binarisation each time. The sequence of draws is
    reproducible: :meth:`fit` (re)starts it from ``random_state``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Seeds the draws. With an int, ``fit`` restarts the same sequence;
        the n-th ``transform`` after a ``fit`` is then always the same.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.preprocessing.Binarizer : Deterministic thresholding.

    Notes
    -----
    In a :class:`~sklearn.pipeline.Pipeline` the binarisation is drawn once
    per ``fit``, so a model trained for many epochs in one ``fit`` sees one
    static draw. For a new draw every epoch, as the benchmarks do, train in
    one-epoch chunks::

        vhp = VHPEstimator(max_iter=1, warm_start=True)
        binarizer = DynamicBinarizer(random_state=0).fit(X)
        for epoch in range(n_epochs):
            vhp.fit(binarizer.transform(X))

    Not deterministic by design (tag ``non_deterministic``), so scikit-learn's
    checks that compare repeated transforms are skipped. Values outside
    [0, 1] are rejected with a ``ValueError``. scikit-learn's
    ``check_estimator`` feeds random non-negative data, mostly above 1: it
    passes on a subclass that first maps such data into [0, 1) (see
    ``tests/test_datasets_extra.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_vhp.datasets import DynamicBinarizer
    >>> X = np.array([[0.0, 0.5, 1.0]] * 4)
    >>> binarizer = DynamicBinarizer(random_state=0).fit(X)
    >>> first, second = binarizer.transform(X), binarizer.transform(X)
    >>> bool(np.isin(first, [0, 1]).all()), first[:, [0, 2]].tolist() == [[0, 1]] * 4
    (True, True)
    """

    _parameter_constraints = {"random_state": ["random_state"]}

    def __init__(self, *, random_state=None):
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check ``X`` and (re)start the random sequence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Probabilities in [0, 1].
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : DynamicBinarizer
            The fitted transformer.
        """
        self._check(X, reset=True)
        # A private copy: the user's RandomState instance is not advanced.
        rng = check_random_state(self.random_state)
        self._rng = np.random.RandomState(rng.randint(2**31 - 1))
        return self

    def transform(self, X):
        """Draw a new binary sample with ``P(x_ij = 1) = X_ij``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Probabilities in [0, 1].

        Returns
        -------
        X_bin : ndarray of shape (n_samples, n_features)
            Zeros and ones, in the dtype of ``X`` (float32 or float64).
        """
        check_is_fitted(self)
        X = self._check(X, reset=False)
        draw = self._rng.random_sample(X.shape)
        return (draw < X).astype(X.dtype)

    def _check(self, X, reset):
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        if X.size and X.min() < 0:
            raise ValueError(
                f"Negative values in data passed to DynamicBinarizer (min {X.min():g}); "
                "it needs probabilities in [0, 1]."
            )
        if X.size and X.max() > 1:
            raise ValueError(
                "DynamicBinarizer needs probabilities in [0, 1]; got values up to "
                f"{X.max():g}. Scale the data first (e.g. divide 8-bit pixels by 255)."
            )
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.requires_fit = True
        return tags
