"""Resolved settings: what ``fit`` checks and derives before anything is built.

Scikit-learn side (numpy, no torch modules). Each rule that turns an
``"auto"`` or a derived setting into a value lives here once, with its
constants: κ (:data:`DEFAULT_KAPPA`, the plateau rule), the noise variance
(:data:`DEFAULT_NOISE_VARIANCE`), the epoch budget (:func:`epochs`) and the
step size's decay over it (:func:`step_size_decay`), the
hidden widths (:func:`hidden_layer_sizes`), the data's scale
(:func:`data_scale`), the device, the likelihood and ``image_shape``.
:func:`resolve` applies them all and returns a :class:`Settings`. Also the
one chunk-sizing helper (:func:`chunk_rows`), the one entry of data into
torch (:func:`to_tensor`) and the torch threads of a call (:func:`call_threads`).
"""

import ctypes
import functools
import math
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from sklearn import get_config
from sklearn.utils.extmath import svd_flip
from threadpoolctl import ThreadpoolController

from ._compat import Interval, StrOptions, get_chunk_n_rows
from ._schedules import StepSizeDecay, check_beta_init
from ._torch.factory import DENSE_ARCHITECTURES
from ._torch.likelihoods import SELECT_COMPONENTS, SELECT_MIN_ROWS_PER_FEATURE

#: Default REWO tolerance ``κ`` (an RMS error per element, in units of the
#: data's scale) by likelihood: the first way out of REWO's initial phase.
DEFAULT_KAPPA = {"gaussian": 0.05, "bernoulli": 0.2}
#: Training variance of the Gaussian likelihood, in units of the squared scale.
DEFAULT_NOISE_VARIANCE = 0.01
#: ``decoder_variance="auto"`` with ``noise_variance="auto"``: ``"full"`` up to
#: this many features, else ``"scalar"`` (see :func:`decoder_variance`).
AUTO_FULL_MAX_FEATURES = 128
#: ``decoder_variance="full"`` or ``"full_trained"``: the mixture noise starts
#: with at most the largest count its choice after training considers, each
#: component with at least as many training rows per feature as that choice
#: needs (:meth:`~._torch.likelihoods.MixtureNoiseLikelihood.select`).
MAX_NOISE_COMPONENTS = max(SELECT_COMPONENTS)
NOISE_ROWS_PER_FEATURE = SELECT_MIN_ROWS_PER_FEATURE
#: ``kappa="auto"``: REWO's initial phase also ends when ``Ĉ_t`` fell by less
#: than ``plateau_tol`` over a window of iterations (an eighth of the budget,
#: within ``PLATEAU_WINDOW``); κ² is then ``plateau_margin`` times ``Ĉ_t``.
AUTO_KAPPA_PLATEAU = {"plateau_tol": 0.1, "plateau_margin": 1.5}
PLATEAU_WINDOW = (50, 500)
#: ``hidden_layer_sizes="auto"``: 4 layers of n_samples / 16 units, within these;
#: at most ``AUTO_TABULAR_WIDTH`` on data of at most ``AUTO_FULL_MAX_FEATURES`` features.
AUTO_WIDTH, AUTO_TABULAR_WIDTH = (32, 256), 64
#: ``max_iter="auto"``: at least 25 epochs and 4000 iterations, at most 200 epochs;
#: with ``batch_size="auto"`` at least ``AUTO_MIN_ITERATIONS`` batches of
#: ``AUTO_BATCH[0]`` rows (the same budget in rows seen, whatever the batch).
AUTO_EPOCHS, AUTO_MIN_ITERATIONS = (25, 200), 4000
#: ``batch_size="auto"``: ``AUTO_BATCH[0]`` rows, or on data of at most
#: ``AUTO_FULL_MAX_FEATURES`` features one batch per ``AUTO_BATCH_ROWS`` training
#: rows, within ``AUTO_BATCH``.
AUTO_BATCH, AUTO_BATCH_ROWS = (64, 256), 64
#: ``max_iter="auto"``: over the last third of a ``fit`` call's iterations
#: Adam's step size decays geometrically to a tenth of ``learning_rate_``
#: (:func:`step_size_decay`; issue 27: the pendulum's held-out angle error
#: went from 0.0110 to 0.0078 rad at the same epochs, docs/performance_notes.md).
AUTO_STEP_DECAY = {"fraction": 1.0 / 3.0, "final": 0.1}
#: Largest chunk (MiB of temporaries) of ``score_samples`` and early-stopping
#: validation on a CPU: chunks of a few MiB stay in cache (1.3-2x faster).
CPU_CHUNK_MIB = 16


#: Parameters fixed by the fitted model: its networks, likelihood, device and
#: β schedule. A warm start refuses a change to any of them (it would be
#: ignored); training settings (max_iter, learning_rate, batch_size,
#: objective, n_importance, early stopping...) may change between warm starts.
STRUCTURAL_PARAMS = (
    "n_components",
    "prior",
    "n_pseudo_inputs",
    "likelihood",
    "noise_variance",
    "decoder_variance",
    "architecture",
    "image_shape",
    "hidden_layer_sizes",
    "activation",
    "decoder_dropout",
    "encoder",
    "decoder",
    "encoder_variance",
    "device",
    "schedule",
    "kappa",
    "nu",
    "tau",
    "alpha",
    "warmup_epochs",
)


#: The constructor's parameters and what each accepts (``_parameter_constraints``).
PARAMETER_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "prior": [StrOptions({"vhp", "standard", "vamp"})],
    "objective": [StrOptions({"elbo", "iwae"})],
    "n_pseudo_inputs": [Interval(Integral, 1, None, closed="left")],
    "schedule": [StrOptions({"rewo", "geco", "warmup", "constant"})],
    "kappa": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "nu": [Interval(Real, 0, None, closed="neither")],
    "tau": [Interval(Real, 0, None, closed="neither")],
    "alpha": [Interval(Real, 0, 1, closed="left")],
    "beta_init": [Interval(Real, 0, None, closed="left"), None],
    "warmup_epochs": [Interval(Integral, 1, None, closed="left")],
    "n_importance": [Interval(Integral, 1, None, closed="left")],
    "n_eval_samples": [Interval(Integral, 1, None, closed="left")],
    "n_score_samples": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "likelihood": [StrOptions({"auto", "bernoulli", "gaussian"})],
    "noise_variance": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "decoder_variance": [
        StrOptions({"auto", "scalar", "feature", "amortized", "full", "full_trained"})
    ],
    "architecture": [StrOptions({"mlp", "gated_mlp", "conv", "gated_conv", "paper_conv"})],
    "encoder": [torch.nn.Module, callable, None],
    "decoder": [torch.nn.Module, callable, None],
    "image_shape": ["array-like", None],
    "hidden_layer_sizes": ["array-like", StrOptions({"auto"})],
    "activation": [StrOptions({"tanh", "relu", "elu", "silu"})],
    "decoder_dropout": [Interval(Real, 0, 1, closed="left")],
    "init": [StrOptions({"pca", "random"})],
    "encoder_variance": [StrOptions({"amortized", "shared"})],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "device": [str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
}


def normalised(name, value):
    """A parameter's value in a form that compares equal for equal settings."""
    if name in ("hidden_layer_sizes", "image_shape") and value is not None:
        try:
            return tuple(np.atleast_1d(np.asarray(value)).tolist())
        except (TypeError, ValueError):
            return value
    return value


def structural_params(est):
    """The values of :data:`STRUCTURAL_PARAMS`, normalised for comparison."""
    params = est.get_params(deep=False)
    return {name: normalised(name, params[name]) for name in STRUCTURAL_PARAMS}


def check_warm_start(est):
    """Refuse a warm start after a change of a parameter the fitted model fixes."""
    fitted = getattr(est, "_structure", None)
    if fitted is None:  # pickled before the structure was recorded
        return
    now = structural_params(est)
    ignored = {"n_pseudo_inputs"} if fitted["prior"] != "vamp" else set()
    if fitted["schedule"] != "warmup":
        ignored.add("warmup_epochs")
    # (models fitted before encoder and decoder existed had the built-in networks)
    changed = [
        n
        for n in STRUCTURAL_PARAMS
        if n not in ignored and now[n] is not fitted.get(n) and now[n] != fitted.get(n)
    ]
    if changed:
        what = ", ".join(f"{n} changed from {fitted[n]!r} to {now[n]!r}" for n in changed)
        raise ValueError(
            f"warm_start=True continues the fitted model, but {what} since it was "
            "fitted; the fitted networks, likelihood, device and schedule cannot take "
            "the new value, which would be ignored. Set it back to continue training, "
            "or set warm_start=False to fit a new model with it."
        )


#: Integer parameters: a bool passes ``Interval(Integral, ...)`` (bool is an
#: Integral) and reached torch as ``True``.
INTEGER_PARAMS = (
    "n_components",
    "n_pseudo_inputs",
    "warmup_epochs",
    "n_importance",
    "n_eval_samples",
    "n_score_samples",
    "batch_size",
    "max_iter",
    "n_iter_no_change",
)


def resolve_device(device):
    """``device`` as a ``torch.device``, or a ``ValueError`` that says why not."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(
            f"device={device!r} is not supported (device type {dev.type!r}); use "
            "'auto', 'cpu', 'cuda' or 'cuda:N'."
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; "
            "use device='cpu' or 'auto'."
        )
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested but only {torch.cuda.device_count()} "
            "CUDA device(s) are visible."
        )
    return dev


#: ``n_score_samples="auto"``: ``score`` (model selection) uses at most this many
#: importance samples per row (``benchmarks/model_selection.py``: the same
#: ranking of candidates as 5000 samples at a tenth of ``score_samples``' cost).
AUTO_SCORE_SAMPLES = 100


def score_samples_count(est):
    """Importance samples per row of ``score``: ``n_score_samples``, resolved and checked."""
    check_positive_int("n_eval_samples", est.n_eval_samples)
    n = est.n_score_samples
    if isinstance(n, str) and n == "auto":
        return min(AUTO_SCORE_SAMPLES, est.n_eval_samples)
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ValueError(f"n_score_samples must be a positive integer or 'auto', got {n!r}.")
    return n


def check_positive_int(name, value):
    """Refuse anything but a positive integer (bools included) for argument ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def outside_support(X, likelihood):
    """Rows of validated ``X`` outside the likelihood's support (a mask), with a warning.

    The Bernoulli likelihood's support is [0, 1] (fractional values included,
    as in ``fit``); the Gaussian one's is every real row (``None``).
    """
    if likelihood != "bernoulli" or not X.size:
        return None
    outside = ((X < 0) | (X > 1)).any(axis=1)
    if not outside.any():
        return None
    warnings.warn(
        f"{int(outside.sum())} of {X.shape[0]} rows have values outside [0, 1], "
        "the support of the Bernoulli likelihood this model was fitted with: "
        "their log-likelihood is -inf. Scale the data as the training data "
        "were (e.g. binarise it) to score them.",
        UserWarning,
        stacklevel=3,
    )
    return outside


def check_fit_input(est, X, continuing, scan):
    """Checks of ``fit``'s data and settings that parameter validation cannot do.

    ``scan``: :func:`scan_rows` of the data (of the whole data when ``X`` is
    a subsample of it, in a streamed ``fit``).
    """
    for name in INTEGER_PARAMS:
        value = getattr(est, name)
        if isinstance(value, bool):
            raise ValueError(
                f"{name}={value!r} is a bool, not an integer; pass an int (e.g. "
                f"{name}={int(value) or 1})."
            )
    if not continuing:
        resolve_device(est.device)
    low, high = scan.low, scan.high
    f32 = np.finfo(np.float32)
    limit = float(f32.max)
    if max(-low, high) > limit:
        raise ValueError(
            f"X has values up to {max(-low, high):g}, beyond the float32 range "
            f"(±{limit:.3g}) the model is trained in; scale the data, e.g. with "
            "sklearn.preprocessing.StandardScaler or MinMaxScaler."
        )
    span = high - low
    # A mini-batch's squared errors are summed in float32 (the constraint C).
    elements = max(1, min(batch_size(est, X.shape[0]), X.shape[0])) * max(1, X.shape[1])
    if span > math.sqrt(limit / elements):
        raise ValueError(
            f"X spans {span:.3g}: the squared reconstruction errors of a mini-batch "
            f"({elements:,} values, up to {span:.3g}² each; and the automatic noise "
            "variance and kappa, which scale with the data's spread) overflow float32 "
            f"(above {limit:.3g}), the precision the model is trained in. Scale the "
            "data, e.g. with sklearn.preprocessing.StandardScaler or MinMaxScaler."
        )
    variance = getattr(est, "_train_noise_variance", None) if continuing else None
    if variance and getattr(est, "likelihood_", None) == "gaussian":
        # A fitted model's Gaussian terms divide the squared errors by its
        # training variance, which followed the data it was fitted on.
        if span * span / variance > limit / elements:
            raise ValueError(
                f"X spans {span:.3g}: its squared reconstruction errors in units of this "
                f"model's training noise variance ({variance:.3g}, from the data it was "
                f"fitted on) overflow float32 (above {limit:.3g}). Scale X as the "
                "training data were scaled, or refit on data of this scale."
            )
    # The automatic settings' own rule (data_scale), so the check follows it.
    if (
        not continuing
        and est.noise_variance == "auto"
        and DEFAULT_NOISE_VARIANCE * data_scale(X, scan) ** 2 < float(f32.tiny)
    ):
        raise ValueError(
            f"X spans only {span:.3g}: the automatic noise variance and kappa, which scale "
            "with the data's spread, underflow float32 (below "
            f"{float(f32.tiny):.3g}), the precision the model is trained in. Scale the "
            "data, e.g. with sklearn.preprocessing.StandardScaler, or set noise_variance "
            "and kappa."
        )
    if not continuing:
        check_float_params(est)
    lik = getattr(est, "likelihood_", None) if continuing else est.likelihood
    if lik == "bernoulli" and (low < 0 or high > 1):
        raise ValueError(
            "likelihood='bernoulli' needs data in [0, 1]; got values in "
            f"[{low:g}, {high:g}]. Scale the data or use "
            "likelihood='gaussian'."
        )
    if not continuing:
        check_beta_init(est.schedule, est.beta_init)


def check_float_params(est):
    """``kappa`` and ``noise_variance`` must survive squaring and float32."""
    if est.kappa != "auto":
        try:
            square = float(est.kappa) ** 2
        except OverflowError:
            square = math.inf
        if not math.isfinite(square):
            raise ValueError(
                f"kappa={est.kappa!r}: its square, the constraint threshold κ², is not "
                "finite in double precision. kappa is an RMS reconstruction error in data "
                "units: use a value on the scale of the data, or kappa='auto'."
            )
        if square == 0:
            raise ValueError(
                f"kappa={est.kappa!r}: its square, the constraint threshold κ², "
                "underflows to 0, so the constraint could never be met. Use a value on "
                "the scale of the data, or kappa='auto'."
            )
    if est.noise_variance != "auto":
        f32 = np.finfo(np.float32)
        if not float(f32.tiny) <= float(est.noise_variance) <= float(f32.max):
            raise ValueError(
                f"noise_variance={est.noise_variance!r} is outside the range of normal "
                f"float32 numbers [{float(f32.tiny):.3g}, {float(f32.max):.3g}], the "
                "precision the model is trained in. Scale the data and use a variance on "
                "its (squared) scale, or noise_variance='auto'."
            )


def hidden_layer_sizes(est, n_samples):
    """The hidden widths: ``hidden_layer_sizes``, or its ``"auto"`` rule."""
    if isinstance(est.hidden_layer_sizes, str) and est.hidden_layer_sizes == "auto":
        low, high = AUTO_WIDTH
        if est.n_features_in_ <= AUTO_FULL_MAX_FEATURES:
            # Tens of features: the mean needs no wider networks (patches:
            # the same density with 64 units as with 128, at 1.6x the time).
            high = AUTO_TABULAR_WIDTH
        return (min(high, max(low, n_samples // 16)),) * 4
    hidden = np.atleast_1d(np.asarray(est.hidden_layer_sizes)).tolist()
    if not all(isinstance(h, Integral) and h > 0 for h in hidden):
        raise ValueError(
            "hidden_layer_sizes must be a sequence of positive integers, "
            f"got {est.hidden_layer_sizes!r}."
        )
    return tuple(int(h) for h in hidden)


def decoder_variance(est, likelihood, n_features, n_samples):
    """``decoder_variance``, or its ``"auto"`` rule; ``None`` for the Bernoulli likelihood.

    ``"auto"``: ``"scalar"`` when ``noise_variance`` is a number (the user
    fixed the variance); else ``"full"`` up to
    :data:`AUTO_FULL_MAX_FEATURES` features (tabular data, image patches:
    the mixture's ``D²`` per sample costs less than the networks) and
    ``"scalar"`` beyond (images, where the codes, not the noise, carry the
    structure, and a covariance per component would need many more rows).
    """
    if likelihood != "gaussian":
        return None
    if est.decoder_variance != "auto":
        return est.decoder_variance
    if est.noise_variance != "auto" or n_features > AUTO_FULL_MAX_FEATURES:
        return "scalar"
    return "full"


def noise_components(n_features, n_samples):
    """Components of ``decoder_variance="full"``'s mixture noise: as many as the rows support."""
    per_component = NOISE_ROWS_PER_FEATURE * n_features
    return int(min(MAX_NOISE_COMPONENTS, max(1, n_samples // per_component)))


def image_shape(est, n_features):
    """``image_shape`` as a tuple of ints matching ``n_features`` (or None)."""
    if est.image_shape is None:
        builtin = est.encoder is None or est.decoder is None
        if est.architecture not in DENSE_ARCHITECTURES and builtin:
            raise ValueError(
                f"architecture={est.architecture!r} needs image_shape, the shape "
                "(height, width) or (channels, height, width) of one image; got "
                "image_shape=None."
            )
        return None
    shape = np.atleast_1d(np.asarray(est.image_shape)).tolist()
    if not (
        len(shape) in (2, 3)
        and all(isinstance(s, Integral) and (s > 0 or s == -1) for s in shape)
        and shape.count(-1) <= 1
    ):
        raise ValueError(
            "image_shape must be (height, width) or (channels, height, width) "
            f"with positive integers (at most one -1), got {est.image_shape!r}."
        )
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if n_features % known:
            raise ValueError(
                f"image_shape={est.image_shape!r} does not fit X with "
                f"{n_features} features: {n_features} is not a multiple of {known}."
            )
        shape[shape.index(-1)] = n_features // known
    elif known != n_features:
        raise ValueError(
            f"image_shape={est.image_shape!r} has {known} pixels, but X has "
            f"{n_features} features; prod(image_shape) must equal n_features."
        )
    return tuple(int(s) for s in shape)


def likelihood(est, X, scan=None):
    """``likelihood``, or with ``"auto"`` Bernoulli for binary data, else Gaussian.

    ``scan``: :func:`scan_rows` of ``X`` (or of data that contain it), if
    known; else ``X`` is scanned.
    """
    if est.likelihood == "auto":
        from ._data import scan_rows  # (_data sizes its blocks with chunk_rows, from here)

        return "bernoulli" if (scan or scan_rows(X)).binary else "gaussian"
    return est.likelihood


def pca_projections(X, n_components, likelihood, rng):
    """The whitened PCA projection of ``X`` and its reconstruction: the PCA start.

    Returns ``(encoder_weight, encoder_bias, decoder_weight, decoder_bias)``
    for :meth:`VAE.init_from_projections`: the encoder mean starts at the
    whitened projection, the decoder at the PCA reconstruction (Gaussian
    data) or at the mean pixel probabilities (Bernoulli data, in logits).
    """
    n = X.shape[0]
    # A bounded subsample: at most PCA_MAX_FLOATS values (at least
    # PCA_MIN_ROWS rows), so the start costs a few percent of an epoch. Sorted
    # rows: a gather in memory order (3x faster on a Fortran-ordered X).
    size = max(PCA_MIN_ROWS, PCA_MAX_FLOATS // max(1, X.shape[1]))
    rows = np.sort(rng.choice(n, size=size, replace=False)) if n > size else slice(None)
    Xs = np.asarray(X[rows], dtype=np.float64)
    mean = Xs.mean(axis=0)
    std, vt = _leading_directions(Xs - mean, n_components)
    k = vt.shape[0]
    weight = np.zeros((n_components, X.shape[1]))
    top = float(std.max()) if k else 0.0
    ok = std > max(1e-8 * max(1.0, top), PCA_RTOL * top)
    weight[:k][ok] = vt[:k][ok] / std[ok, None]
    decoder_weight = np.zeros((X.shape[1], n_components))
    if likelihood == "gaussian":
        decoder_weight[:, :k][:, ok] = (vt[:k][ok] * std[ok, None]).T
        bias = mean
    else:
        bias = logit(mean)
    return weight, -weight @ mean, decoder_weight, bias


#: The PCA start's subsample: about this many values of X (rows x features),
#: and at least PCA_MIN_ROWS rows (2,551 MNIST rows, 7,812 pendulum images).
PCA_MAX_FLOATS = 2_000_000
PCA_MIN_ROWS = 2000

#: Directions of the PCA start whose standard deviation is below this fraction
#: of the largest one are left out (and those below 1e-8, or 1e-8 of the
#: largest): the Gram matrix that finds them holds squared singular values,
#: which resolve only ~1e-8 of the largest.
PCA_RTOL = 1e-6


@functools.cache
def _threadpools():
    """The process's thread pools, found once (each search takes ~15 ms of file lookups)."""
    return ThreadpoolController()


def _leading_directions(Xc, k):
    """Standard deviations and unit directions of the ``k`` leading principal axes.

    ``Xc`` is centred, ``(rows, features)``. The exact leading eigenpairs of
    the smaller Gram matrix (``Xcᵀ Xc`` for tall data, ``Xc Xcᵀ`` for wide
    data): one matrix product and a partial symmetric eigensolver instead of
    a full SVD (1.2 s on 10,000 MNIST rows, 28.6 s and +760 MiB on
    1,500 × 20,000, for 40 directions). LAPACK's results change with the
    BLAS thread count, in their last bits and in their signs (which flipped
    the whole initial latent): one BLAS thread and a fixed sign convention
    make the start depend on ``random_state`` alone.
    """
    rows, features = Xc.shape
    k = min(k, rows, features)
    if k == 0:
        return np.zeros(0), np.zeros((0, features))
    wide = features > rows
    with _threadpools().limit(limits=1, user_api="blas"):
        gram = Xc @ Xc.T if wide else Xc.T @ Xc
        m = gram.shape[0]
        eigval, eigvec = scipy.linalg.eigh(gram, subset_by_index=[m - k, m - 1])
        eigval, eigvec = np.clip(eigval[::-1], 0.0, None), eigvec[:, ::-1]
        singular = np.sqrt(eigval)
        if wide:  # right singular vectors from the left ones: vᵢ = Xcᵀ uᵢ / sᵢ
            safe = np.where(singular > 0, singular, 1.0)
            vt = (eigvec.T @ Xc) / safe[:, None]
        else:
            vt = eigvec.T
    _, vt = svd_flip(None, vt, u_based_decision=False)
    return singular / math.sqrt(max(1, rows - 1)), vt


def batch_size(est, n_samples):
    """Rows per mini-batch of a ``fit`` call on ``n_samples`` rows: ``batch_size``, or its rule.

    ``"auto"``: 64 rows (the paper's batch, for images and binary data of
    many features), and on data of at most :data:`AUTO_FULL_MAX_FEATURES`
    features ``n_samples / 64`` rows within 64 and 256: tabular data of
    tens of thousands of rows takes fewer, larger steps (each step's cost
    is mostly fixed on a CPU for networks this small).
    """
    if est.batch_size != "auto":
        return est.batch_size
    low, high = AUTO_BATCH
    if est.n_features_in_ > AUTO_FULL_MAX_FEATURES:
        return low
    return int(min(high, max(low, n_samples // AUTO_BATCH_ROWS)))


def steps_per_epoch(est, n_samples):
    """Iterations of one epoch: the training loop drops the ragged last batch."""
    return n_samples // min(batch_size(est, n_samples), n_samples)


def epochs(est, n_samples):
    """Epochs of one ``fit`` call: ``max_iter``, or its ``"auto"`` rule."""
    if est.max_iter != "auto":
        return est.max_iter
    low, high = AUTO_EPOCHS
    iterations = AUTO_MIN_ITERATIONS
    if est.batch_size == "auto":  # the same rows seen as AUTO_MIN_ITERATIONS small batches
        iterations = math.ceil(AUTO_MIN_ITERATIONS * AUTO_BATCH[0] / batch_size(est, n_samples))
    return min(high, max(low, math.ceil(iterations / steps_per_epoch(est, n_samples))))


def step_size_decay(est, n_epochs, steps_per_epoch):
    """The step size's decay over one ``fit`` call, or ``None`` (a constant step size).

    With ``max_iter="auto"`` the package picks the training schedule: the
    epoch budget (:func:`epochs`) and, over its last third
    (:data:`AUTO_STEP_DECAY`), a geometric decay of the step size to a tenth.
    An explicit ``max_iter`` keeps the step size constant, as it always was
    (a fixed number of epochs is the setting of equal-epoch comparisons).
    ``partial_fit`` calls do not ask: their run has no known end.
    """
    if est.max_iter != "auto":
        return None
    return StepSizeDecay(n_epochs * steps_per_epoch, **AUTO_STEP_DECAY)


def to_tensor(a, dtype, device):
    """Copy a validated numpy array (or a chunk of one) to a tensor.

    The one place where data enter torch. scikit-learn's validation accepts
    every layout numpy has (negative strides from ``X[::-1]`` or
    ``np.flip``, Fortran order, strided or read-only views), and torch
    refuses negative strides: the copy goes through a C-contiguous array,
    which costs nothing for data that already is one. The conversion to
    ``dtype`` happens in the same pass (a Fortran-ordered float64 ``X``, as
    from ``check_array`` on a pandas frame or a transposed array, was copied
    twice, in C order and then in float32), and the array that torch adopts
    never shares memory with ``a``.
    """
    c = np.ascontiguousarray(a, dtype=str(dtype).removeprefix("torch."))
    if np.may_share_memory(c, a):
        c = c.copy()
    return torch.from_numpy(c).to(device)


#: :func:`data_scale`: a standard deviation of at most this many units in the
#: last place of the data's largest magnitude is rounding, not spread.
ROUNDING_SPREAD = 64


def data_scale(X, scan=None):
    """Unit of ``κ`` and of the noise variance: 1 for data in [0, 1], else 4 RMS stds.

    Four standard deviations is about the span of a feature scaled to [0, 1],
    so standardised data and [0, 1] images get comparable settings.
    ``scan``: :func:`scan_rows` of ``X`` (or of data that contain it), if known.

    Constant data fall back to 1: a variance at the rounding level of the
    values (a standard deviation below :data:`ROUNDING_SPREAD` ulps of the
    largest magnitude) is no spread. Identical rows of values that floats
    do not represent exactly have a variance of ~1e-30, not 0, and gave a
    scale of 1e-15 (κ 6e-16, a noise variance of 1e-34, a training score
    of -5e19).
    """
    if X.size == 0:
        return 1.0
    low, high = (scan.low, scan.high) if scan is not None else (X.min(), X.max())
    if low >= 0 and high <= 1:
        return 1.0
    std = math.sqrt(float(np.mean(np.var(X, axis=0))))
    eps = float(np.finfo(X.dtype if X.dtype.kind == "f" else np.float64).eps)
    if std <= ROUNDING_SPREAD * eps * max(abs(float(low)), abs(float(high))):
        return 1.0
    return 4.0 * std


def logit(p, eps=1e-4):
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def chunk_rows(row_bytes, max_mib=None):
    """Rows whose temporaries (``row_bytes`` each) fit in ``working_memory``.

    The one chunk-sizing helper (``score_samples``, early-stopping
    validation, ``transform``/``inverse_transform``, sampling), on
    :func:`sklearn.utils.get_chunk_n_rows`; ``max_mib`` lowers scikit-learn's
    ``working_memory`` budget further (never raises it). At least one row.
    """
    mib = get_config()["working_memory"]
    if max_mib is not None:
        mib = min(mib, max_mib)
    row_bytes = max(1, int(row_bytes))
    if row_bytes > mib * 2**20:  # get_chunk_n_rows would warn: a row is the least
        return 1
    return get_chunk_n_rows(row_bytes, working_memory=mib)


@dataclass
class Settings:
    """What :func:`resolve` derives: fitted attributes and the module's configuration."""

    device: torch.device
    likelihood: str
    decoder_variance: str  # None for the Bernoulli likelihood
    kappa: float
    noise_variance: float
    hidden_layer_sizes: tuple
    module_config: dict
    schedule_args: dict  # make_schedule's keyword arguments


def resolve(est, X, hidden, n_samples=None, scan=None):
    """Turn ``"auto"`` and derived settings into values, once, before anything is built.

    ``n_samples``: the number of training rows when ``X`` is a subsample of
    them (a streamed ``fit``); the epoch budget and the rules that count
    iterations follow it, the rest follows ``X``. ``scan``: :func:`scan_rows`
    of ``X`` or, for a subsample, of the data it was drawn from (if known).
    """
    device = resolve_device(est.device)
    lik = likelihood(est, X, scan)
    scale = data_scale(X, scan)
    kappa = DEFAULT_KAPPA[lik] * scale if est.kappa == "auto" else float(est.kappa)
    # The variance the networks are trained with; with "auto" the fitted
    # model's variance is then calibrated to its reconstructions.
    noise_variance = (
        DEFAULT_NOISE_VARIANCE * scale**2
        if est.noise_variance == "auto"
        else float(est.noise_variance)
    )
    n = X.shape[0] if n_samples is None else n_samples
    variance_kind = decoder_variance(est, lik, X.shape[1], n)
    plateau = None
    if est.schedule == "rewo" and est.kappa == "auto":
        steps = epochs(est, n) * steps_per_epoch(est, n)
        window = min(max(steps // 8, PLATEAU_WINDOW[0]), PLATEAU_WINDOW[1])
        plateau = dict(AUTO_KAPPA_PLATEAU, plateau_window=window)
    module_config = dict(
        n_features=X.shape[1],
        n_components=est.n_components,
        prior=est.prior,
        likelihood=lik,
        hidden_layer_sizes=hidden,
        activation=est.activation,
        noise_variance=noise_variance,
        encoder_variance=est.encoder_variance,
        # (X's rows start them: a subsample's, when streaming)
        n_pseudo_inputs=min(est.n_pseudo_inputs, n, X.shape[0]) if est.prior == "vamp" else None,
        architecture=est.architecture,
        image_shape=image_shape(est, X.shape[1]),
    )
    if variance_kind not in (None, "scalar"):  # (a scalar variance: as it always was)
        module_config["decoder_variance"] = variance_kind
    if variance_kind in ("full", "full_trained"):
        module_config["noise_components"] = noise_components(X.shape[1], n)
    # The user's networks (as given: build_vae copies or builds them); the
    # built-in ones leave the configuration as it always was.
    for name in ("encoder", "decoder"):
        if getattr(est, name) is not None:
            module_config[name] = getattr(est, name)
    if est.decoder_dropout:
        if est.decoder is not None:
            raise ValueError(
                f"decoder_dropout={est.decoder_dropout!r} applies to the built-in "
                "decoder, and a custom decoder is given: put torch.nn.Dropout in "
                "your decoder instead, or set decoder_dropout=0."
            )
        module_config["decoder_dropout"] = float(est.decoder_dropout)
    schedule_args = dict(
        kappa=kappa,
        nu=est.nu,
        tau=est.tau,
        alpha=est.alpha,
        beta_init=est.beta_init,
        warmup_steps=est.warmup_epochs * steps_per_epoch(est, n),
        plateau=plateau,
    )
    return Settings(
        device, lik, variance_kind, kappa, noise_variance, hidden, module_config, schedule_args
    )


# ----------------------------------------------------------------- threads
# torch runs its parallel regions with OpenMP threads that wait for each
# other at every operation: when another process holds a core, each small
# operation waits for a descheduled thread, and a 2-thread fit beside one
# busy process ran 10x slower than a 1-thread fit (docs/performance_notes.md).


def available_cores():
    """Cores this process may run on (its CPU affinity where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_cores():
    """Cores that other work keeps busy now.

    Linux: the runnable tasks (:func:`runnable_tasks`) less the calling
    thread and this process's runnable native threads
    (:func:`native_runnable_threads`); the fewest of three reads. Not the
    native threads: torch's OpenMP workers keep spinning for a while after
    each parallel region, and a call right after a 2-thread call counted
    them as another program's and ran with 1 thread. This process's other
    Python threads do count (concurrent calls share the cores). The fewest
    reads: a task woken for an instant is not a busy core, and a program
    that holds a core is runnable in every read. Elsewhere: the 1-minute
    load average (which also counts this process's own recent work), 0
    where unknown.
    """
    try:
        others = min(runnable_tasks() for _ in range(3)) - 1
        if others > 0:  # (each thread's state costs a read of /proc: only when needed)
            others -= native_runnable_threads()
        return max(0, others)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0


def runnable_tasks():
    """The machine's runnable tasks now (Linux: ``/proc/loadavg``), the caller included."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[0])


def native_runnable_threads():
    """This process's runnable threads (state ``R``) that Python did not start (Linux).

    Those of the OpenMP, BLAS and allocator pools of torch and numpy; not
    the calling thread nor any :class:`threading.Thread`. A thread that ends
    while it is read is skipped.
    """
    python = {t.native_id for t in threading.enumerate()}
    n = 0
    for task in os.scandir("/proc/self/task"):
        if int(task.name) in python:
            continue
        try:
            with open(os.path.join(task.path, "stat"), "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        n += state == b"R"
    return n


def call_threads():
    """torch threads for a call: the caller's count, at most the idle cores.

    The caller's count (:func:`torch.get_num_threads` in the calling thread)
    already follows ``torch.set_num_threads``, ``OMP_NUM_THREADS`` and a
    ``threadpoolctl`` limit; this only lowers it, to the cores no other
    work holds (:func:`available_cores` minus :func:`busy_cores`), at least 1.
    """
    current = torch.get_num_threads()
    if current == 1:
        return 1
    return max(1, min(current, available_cores() - busy_cores()))


@functools.cache
def _per_thread_setters():
    """Setters of the calling thread's OpenMP and MKL thread counts in torch's libraries.

    ``torch.set_num_threads`` also sets the process default that every
    thread adopts at its first torch operation, so a count lowered for one
    call leaked into threads started (or first using torch) meanwhile, for
    good. ``omp_set_num_threads`` (the OpenMP runtime torch runs on) and
    ``MKL_Set_Num_Threads_Local`` (its BLAS) set the calling thread's count
    alone; ``torch.get_num_threads`` reads the former. ``(omp, mkl)``, ``mkl``
    ``None`` in builds without MKL; ``None`` where torch's CPU library does
    not export them (then ``torch.set_num_threads``, documented as such).
    """
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        omp = lib.omp_set_num_threads
    except (OSError, AttributeError):
        return None
    omp.argtypes, omp.restype = [ctypes.c_int], None
    mkl = getattr(lib, "MKL_Set_Num_Threads_Local", None)
    if mkl is not None:
        mkl.argtypes, mkl.restype = [ctypes.c_int], ctypes.c_int
    return omp, mkl


@contextmanager
def torch_threads():
    """Run the block with :func:`call_threads` threads; the caller's count is restored.

    Only the calling thread's count changes (:func:`_per_thread_setters`):
    concurrent calls from several Python threads each set and restore their
    own, and threads that start meanwhile get the process default.
    """
    previous = torch.get_num_threads()  # (also torch's per-thread start-up)
    n = call_threads()
    if n >= previous:
        yield
        return
    setters = _per_thread_setters()
    if setters is None:
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(previous)
        return
    omp, mkl = setters
    omp(n)
    mkl_before = mkl(n) if mkl is not None else None
    try:
        yield
    finally:
        omp(previous)
        if mkl is not None:
            mkl(mkl_before)


def limit_threads(method):
    """Decorator: the method runs under :func:`torch_threads`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch_threads():
            return method(*args, **kwargs)

    return wrapper
