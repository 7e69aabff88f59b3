"""VHPEstimator: scikit-learn glue around the hierarchical-prior VAE."""

import contextlib
import copy
import hashlib
import io
import math
import warnings
import weakref
from numbers import Integral, Real

import numpy as np
import torch
from sklearn import get_config
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import svd_flip
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from . import _schedules
from ._torch.factory import build_vae

#: Default REWO tolerance ``κ`` (an RMS error per element, in units of the
#: data's scale) by likelihood: the first way out of REWO's initial phase.
_DEFAULT_KAPPA = {"gaussian": 0.05, "bernoulli": 0.2}
#: Training variance of the Gaussian likelihood, in units of the squared scale.
_DEFAULT_NOISE_VARIANCE = 0.01
#: ``kappa="auto"``: REWO's initial phase also ends when ``Ĉ_t`` fell by less
#: than ``plateau_tol`` over a window of iterations (an eighth of the budget,
#: within ``_PLATEAU_WINDOW``); κ² is then ``plateau_margin`` times ``Ĉ_t``.
_AUTO_KAPPA_PLATEAU = {"plateau_tol": 0.1, "plateau_margin": 1.5}
_PLATEAU_WINDOW = (50, 500)
#: ``hidden_layer_sizes="auto"``: 4 layers of n_samples / 16 units, within these.
_AUTO_WIDTH = (32, 256)
#: ``max_iter="auto"``: at least 25 epochs and 4000 iterations, at most 200 epochs.
_AUTO_EPOCHS, _AUTO_MIN_ITERATIONS = (25, 200), 4000
#: Largest chunk (MiB of float64 temporaries) of ``score_samples`` on a CPU.
_CPU_SCORE_CHUNK_MIB = 16


#: Recoveries from a non-finite loss (restore the last finite state, halve the
#: step size) tried in a row before ``fit`` gives up.
_MAX_RECOVERIES = 3

#: Training iterations between host syncs, by device type. Each sync brings
#: the iterations' loss statistics to Python, which checks them and steps the
#: β schedule (REWO and GECO update β from every iteration's constraint). On
#: a CPU a sync costs nothing and 1 gives β its most recent value (the loss
#: is checked before the step); on a GPU a sync per iteration stalls the kernel
#: queue, so β is updated from 32 iterations at once and lags by at most that
#: many, and a non-finite loss is caught at the next sync (the epoch is rolled
#: back either way).
_HOST_SYNC_EVERY = {"cpu": 1, "gpu": 32}  # "gpu": any device but the CPU


#: Parameters fixed by the fitted model: its networks, likelihood, device and
#: β schedule. A warm start refuses a change to any of them (it would be
#: ignored); training settings (max_iter, learning_rate, batch_size,
#: objective, n_importance, early stopping...) may change between warm starts.
_STRUCTURAL_PARAMS = (
    "n_components",
    "prior",
    "n_pseudo_inputs",
    "likelihood",
    "noise_variance",
    "architecture",
    "image_shape",
    "hidden_layer_sizes",
    "activation",
    "encoder_variance",
    "device",
    "schedule",
    "kappa",
    "nu",
    "tau",
    "alpha",
    "warmup_epochs",
)


def _normalised(name, value):
    """A parameter's value in a form that compares equal for equal settings."""
    if name in ("hidden_layer_sizes", "image_shape") and value is not None:
        try:
            return tuple(np.atleast_1d(np.asarray(value)).tolist())
        except (TypeError, ValueError):
            return value
    return value


#: Integer parameters: a bool passes ``Interval(Integral, ...)`` (bool is an
#: Integral) and reached torch as ``True``.
_INTEGER_PARAMS = (
    "n_components",
    "n_pseudo_inputs",
    "warmup_epochs",
    "n_importance",
    "n_eval_samples",
    "batch_size",
    "max_iter",
    "n_iter_no_change",
)

#: Floats of importance-sampling noise ``score_samples`` draws at once (8 MiB).
_NOISE_BLOCK_FLOATS = 2**20

#: float64 copies of fitted modules for float64 inference, by module (see
#: ``VHPEstimator._module_for``); an entry goes with its module.
_FLOAT64_MODULES = weakref.WeakKeyDictionary()


class DivergenceWarning(RuntimeWarning):
    """Training hit a non-finite loss and was rolled back with a smaller step.

    ``fit`` restored the last finite state (weights, optimiser and schedule),
    halved the learning rate and went on; the event is recorded in
    ``divergences_`` and in the ``lr`` column of ``history_``.
    """


def _resolve_device(device):
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


class VHPEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DensityMixin, BaseEstimator):
    """Variational auto-encoder with a learned hierarchical prior (VHP).

    Implements *Learning Hierarchical Priors in VAEs* (Klushyn et al., 2019).
    The prior over the latent code is a continuous mixture
    ``p(z) = ∫ p(z|ζ) p(ζ) dζ`` with ``p(ζ) = N(0, I)``, learned through an
    importance-weighted bound, and the weight ``β`` of the KL term follows
    the REWO schedule: reconstruct first, then tighten toward the ELBO
    (``β → 1``) while the reconstruction error stays below ``κ²``.

    The baselines of the paper are options of the same estimator: the
    standard-normal prior and the VampPrior (``prior``), the importance-weighted
    bound of IWAE (``objective="iwae"``) and the GECO, warm-up and constant-β
    schedules (``schedule``).

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent code ``z`` (and of ``ζ``).
    prior : {"vhp", "standard", "vamp"}, default="vhp"
        ``"vhp"``: the learned hierarchical prior. ``"standard"``: ``N(0, I)``.
        ``"vamp"``: the VampPrior (Tomczak & Welling, 2018), the mixture
        ``1/K Σ_k q(z|u_k)`` of the encoder's posteriors at
        ``n_pseudo_inputs`` learned pseudo-inputs ``u_k``, which start as
        random training rows (chosen with ``random_state``); its
        ``log p(z)`` is exact.
    objective : {"elbo", "iwae"}, default="elbo"
        Training objective. ``"elbo"``: the (β-weighted) ELBO with one
        sample of ``z`` per row. ``"iwae"``: the importance-weighted bound of
        Burda et al. (2016) with ``K = n_importance`` samples per row: over
        ``z`` for ``prior="standard"`` (the paper's IWAE (L=1) row) or
        ``"vamp"``, and over ``(z, ζ)`` jointly, one ``ζ ~ q(ζ|z)`` per ``z``,
        for ``prior="vhp"`` (the two-layer model ``x ← z ← ζ`` trained as
        IWAE: the paper's IWAE (L=2) row). With ``K = 1`` it is the ELBO.
        **β with IWAE**: the schedule still runs and records ``C`` and ``β``;
        ``β`` tempers the prior-to-posterior ratio inside every importance
        weight, ``w_k = p(x|z_k) (p(z_k) / q(z_k|x))^β``, so that ``K = 1``
        gives the β-ELBO exactly and ``β = 1`` the IWAE bound proper. The
        paper's IWAE rows correspond to ``schedule="constant"`` (``β = 1``);
        other schedules give a tempered IWAE, which is a bound on
        ``log p(x)`` only once ``β = 1``.
    n_pseudo_inputs : int, default=500
        Number of pseudo-inputs of the VampPrior (``prior="vamp"``), capped at
        the number of training samples; ignored by the other priors.
    schedule : {"rewo", "geco", "warmup", "constant"}, default="rewo"
        How ``β`` evolves during training (see :mod:`sklearn_vhp._schedules`).
    kappa : float or "auto", default="auto"
        Constraint tolerance ``κ``: the reconstruction constraint is
        ``C ≤ κ²`` with ``C`` the mean per-element squared error between the
        data and the decoder mean, so ``κ`` is an RMS error in data units.
        ``"auto"`` follows the data: REWO's initial phase ends when the
        running error ``Ĉ_t`` falls below ``κ₀²`` — ``κ₀`` is 0.05 for
        Gaussian data and 0.2 for binary data, in units of the data's scale
        (1 for data in [0, 1], else four standard deviations, the RMS over
        features) — or when ``Ĉ_t`` stops falling (less than 10 % lower than
        one window earlier; a window is an eighth of the iteration budget,
        kept within 50–500 iterations), whichever comes first. In the second
        case ``κ² = 1.5 Ĉ_t``: a tolerance the model has shown it can meet,
        so the prior is trained on data whose reconstruction error at
        ``n_components`` never gets near ``κ₀``. In the main phase, when the
        constraint holds ``β`` back (``β < 1`` rose by less than 10 % over a
        window in which ``Ĉ_t`` exceeded ``κ²``), ``κ²`` is raised to 1.5
        times the window's largest ``Ĉ_t``, so that training ends at the
        ELBO (``β = 1``). When ``κ`` is raised, a Gaussian likelihood's
        training variance is lowered to that error level if it was larger.
        The value in force at the end is ``kappa_``. A number keeps ``κ``
        fixed (the paper's way); with ``schedule="geco"``, ``"auto"`` is
        ``κ₀``.
    nu : float, default=5.0
        Update rate ``ν`` of REWO and GECO.
    tau : float, default=3.0
        Slope ``τ`` of REWO's ``f_β``.
    alpha : float, default=0.99
        Running-average factor of ``Ĉ_t``.
    beta_init : float or None, default=None
        Starting ``β``: ``None`` means 1e-3 for REWO, 1 for GECO and
        ``"constant"``, 0 for warm-up.
    warmup_epochs : int, default=20
        Length of the linear warm-up, in epochs (``schedule="warmup"``).
    n_importance : int, default=16
        Importance samples ``K``. With ``objective="elbo"``: samples of
        ``q(ζ|z)`` in the hierarchical prior's bound on ``log p(z)`` (unused
        by the standard and Vamp priors, whose ``log p(z)`` is exact). With
        ``objective="iwae"``: samples of the IWAE bound (see ``objective``).
    n_eval_samples : int, default=1000
        Importance samples per row in :meth:`score_samples` (the paper
        reports 5000). A setting of the call: read when ``score_samples``
        runs, so it may be changed on a fitted model.
    likelihood : {"auto", "bernoulli", "gaussian"}, default="auto"
        ``"auto"`` picks Bernoulli when every value is 0 or 1.
    noise_variance : float or "auto", default="auto"
        Variance of the Gaussian likelihood. A number fixes it, for training
        and for the fitted model. ``"auto"`` trains with 0.01 times the
        squared data scale (see ``kappa``), which sets how much the KL term
        weighs against reconstruction, and then calibrates the fitted model:
        ``noise_variance_`` becomes the maximum-likelihood variance given the
        trained networks (the decoder's mean squared error per feature under
        ``q(z|x)``, as :class:`~sklearn.decomposition.PCA` estimates its
        ``noise_variance_``), so that :meth:`score_samples` is a calibrated
        density. Ignored by the Bernoulli likelihood.
    architecture : {"mlp", "conv", "gated_conv"}, default="mlp"
        Network family of encoder and decoder (paper App. F); the
        hierarchical prior's networks are MLPs in every case.
        ``"mlp"``: fully connected networks. ``"conv"``: for images, strided
        convolutions (32, 32, 64, 64 channels, each halving the image) and
        ``hidden_layer_sizes`` dense layers in the encoder, mirrored by
        transposed convolutions in the decoder (the faces/chairs network).
        ``"gated_conv"``: gated convolutions
        ``conv_a(x) * sigmoid(conv_b(x))`` in the encoder and gated dense
        layers in the decoder (the MNIST network of the VampPrior paper).
        Both need ``image_shape`` and use ``hidden_layer_sizes`` for their
        dense layers; ``activation`` applies to the non-gated layers.
    image_shape : tuple of int or None, default=None
        Shape of one image, ``(height, width)`` or
        ``(channels, height, width)``, for ``architecture="conv"`` or
        ``"gated_conv"``: each row of ``X`` is an image flattened in row-major
        (C order) and ``prod(image_shape)`` must equal the number of
        features. One entry may be ``-1``, inferred from the number of
        features as in :func:`numpy.reshape`. Ignored (but checked) with
        ``architecture="mlp"``.
    hidden_layer_sizes : tuple of int or "auto", default="auto"
        Widths of the hidden layers of every network. ``"auto"``: four
        layers (the paper's depth) of ``n_samples / 16`` units, at least 32
        and at most 256 (the paper's 4 × 256 from 4,096 rows on): small data
        sets get networks they cannot simply memorise (measured on the
        defaults suite, see :ref:`defaults`). The widths used are
        ``hidden_layer_sizes_``.
    activation : {"tanh", "relu", "elu", "silu"}, default="tanh"
        Hidden-layer activation.
    init : {"pca", "random"}, default="pca"
        ``"pca"`` starts the encoder mean as the whitened PCA projection (a
        linear shortcut beside the MLP, whose output starts at zero), as
        t-SNE and UMAP start from a spectral layout; ``"random"`` does not.
    encoder_variance : {"shared", "amortized"}, default="shared"
        Covariance of ``q(z|x)``. ``"shared"``: one learned diagonal variance
        for all inputs. With a learned prior and ``"amortized"`` (per-input)
        variances the ELBO is, to first order, indifferent to how the latent
        manifold is parametrised (the optimal posterior width scales with the
        latent speed and cancels it), and the latent drifts out of shape; a
        shared variance makes the ELBO prefer constant latent speed, i.e. an
        isometric layout. ``"amortized"`` is the usual VAE encoder and can
        give higher likelihoods.
    batch_size : int, default=64
        Mini-batch size (capped at the number of samples).
    max_iter : int or "auto", default="auto"
        Number of epochs of each ``fit`` call. ``"auto"``: at least 25 epochs
        and at least 4,000 iterations (Adam steps), at most 200 epochs — 25
        epochs for 12,000 rows and more, 191 for the 1,347 rows of digits.
        On the pendulum (12,000 images) 25 epochs is where the angle
        recovered from the latent was best: the learned prior and the encoder
        keep co-adapting afterwards and slowly bend the latent ring (0.009 rad
        at 20 epochs, 0.018–0.029 rad at 50, measured), although the ELBO
        keeps improving; on small data 25 epochs are too few steps for REWO
        to leave its initial phase.
    learning_rate : float, default=1e-3
        Adam step size. When the loss becomes non-finite, ``fit`` restores
        the state after the last completed epoch, halves the step size (see
        ``learning_rate_``), warns with :class:`DivergenceWarning` and repeats
        the epoch; after 3 failed recoveries in a row it raises
        ``FloatingPointError``.
    early_stopping : bool, default=False
        Set aside ``validation_fraction`` of the training rows, evaluate the
        negative ELBO (``β = 1``; with ``objective="iwae"`` the negative IWAE
        bound) on them after every epoch, stop when it has not improved for
        more than ``n_iter_no_change`` consecutive epochs, and restore the
        weights (with optimiser and schedule state) of the best epoch. As in
        :class:`~sklearn.neural_network.MLPRegressor`. Without early stopping
        training runs for ``max_iter`` epochs (the β-weighted training loss
        moves with the schedule, so it is no stopping criterion).
    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping (at least 2 rows);
        the split is random (``random_state``) and the same in every warm
        start on the same data. Only used if ``early_stopping=True``.
    n_iter_no_change : int, default=10
        Epochs without a better validation score tolerated before stopping.
        Only used if ``early_stopping=True``.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, mini-batches and all sampling, through a local
        ``torch.Generator`` (the global seed is left alone).
    verbose : int, default=0
        ``> 0`` shows a progress bar with the phase, ``β`` and ``Ĉ_t``;
        ``>= 2`` also prints one line per epoch (mean loss, ``Ĉ_t``, ``β``,
        phase, step size and, with early stopping, the validation score).
    warm_start : bool, default=False
        Continue training the fitted model (and its schedule) on ``fit``.
        ``history_`` is appended to, ``β`` and ``Ĉ_t`` carry on, and so does
        the step size ``learning_rate_`` unless ``learning_rate`` was changed.
        A fit stopped by Ctrl-C (``KeyboardInterrupt``) keeps the model after
        its last completed epoch (with a warning), so a warm-started ``fit``
        continues from there. A warm start refuses (``ValueError``) a change
        of a parameter the fitted model fixes (its networks, likelihood,
        device, schedule and the schedule's settings) instead of ignoring it;
        set ``warm_start=False`` to fit a new model with it. A ``fit`` that
        fails before training starts leaves the estimator as it was.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained :class:`~sklearn_vhp._torch.VAE`.
    schedule_ : object
        The β schedule, with its state (``beta``, ``constraint_avg``, ``phase``).
    beta_ : float
        ``β`` at the end of training.
    kappa_ : float
        The tolerance ``κ`` in force at the end of training (with
        ``kappa="auto"``, set where REWO's initial phase ended; see
        ``kappa``).
    hidden_layer_sizes_ : tuple of int
        The hidden widths used (``"auto"`` resolved).
    noise_variance_ : float or None
        Variance of the Gaussian likelihood of the fitted model (calibrated
        with ``noise_variance="auto"``); ``None`` for the Bernoulli one.
    likelihood_ : str
        The likelihood used (``"auto"`` resolved).
    history_ : dict of ndarray
        One entry per training iteration: ``loss``, ``reconstruction``
        (``-log p(x|z)`` per row), ``constraint`` (batch ``C``),
        ``constraint_avg`` (``Ĉ_t``), ``kl``, ``beta``, ``phase``, ``epoch``,
        ``lr`` (Adam's step size). With ``objective="iwae"``,
        ``reconstruction`` and ``kl`` are averages over the ``K`` samples and
        ``loss`` is the negative bound. Only completed epochs are recorded
        (an epoch rolled back after a divergence or an interruption is not).
    n_iter_ : int
        Epochs completed (over all calls with ``warm_start``). With early
        stopping the weights are those of the best epoch, which may be earlier.
    learning_rate_ : float
        Adam's current step size: ``learning_rate``, halved after each
        recovery from a divergence.
    divergences_ : list of dict
        One entry per recovery from a non-finite loss: ``epoch``, ``iteration``
        (within the epoch), ``loss`` (the non-finite value; NaN when the
        parameters themselves became non-finite) and ``lr`` (the new step size).
    validation_scores_ : list of float or None
        Validation ELBO per row (minus the loss described under
        ``early_stopping``; higher is better) after each epoch, over all
        calls with ``warm_start``; ``None`` unless ``early_stopping=True``.
    best_validation_score_ : float or None
        The best validation score, that of the weights kept; ``None`` unless
        ``early_stopping=True``.
    device_ : torch.device
        Where the module lives.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    ManifoldInterpolator : Graph-based interpolation in the learned latent space.

    References
    ----------
    A. Klushyn, N. Chen, R. Kurle, B. Cseke, P. van der Smagt. *Learning
    Hierarchical Priors in VAEs*. NeurIPS 2019.

    Examples
    --------
    >>> from sklearn_vhp import VHPEstimator
    >>> from sklearn_vhp.datasets import make_pendulum
    >>> X, angles = make_pendulum(n_samples=200, random_state=0)
    >>> vhp = VHPEstimator(hidden_layer_sizes=(32,), max_iter=2, random_state=0)
    >>> vhp.fit_transform(X).shape
    (200, 2)
    """

    #: Iterations between host syncs in ``fit``; ``None`` uses the device's
    #: default (``_HOST_SYNC_EVERY``). Not a parameter: tests set it.
    _sync_every = None

    _parameter_constraints = {
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
        "likelihood": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "noise_variance": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "architecture": [StrOptions({"mlp", "conv", "gated_conv"})],
        "image_shape": ["array-like", None],
        "hidden_layer_sizes": ["array-like", StrOptions({"auto"})],
        "activation": [StrOptions({"tanh", "relu", "elu", "silu"})],
        "init": [StrOptions({"pca", "random"})],
        "encoder_variance": [StrOptions({"amortized", "shared"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
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

    def __init__(
        self,
        *,
        n_components=2,
        prior="vhp",
        objective="elbo",
        n_pseudo_inputs=500,
        schedule="rewo",
        kappa="auto",
        nu=5.0,
        tau=3.0,
        alpha=0.99,
        beta_init=None,
        warmup_epochs=20,
        n_importance=16,
        n_eval_samples=1000,
        likelihood="auto",
        noise_variance="auto",
        architecture="mlp",
        image_shape=None,
        hidden_layer_sizes="auto",
        activation="tanh",
        init="pca",
        encoder_variance="shared",
        batch_size=64,
        max_iter="auto",
        learning_rate=1e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.n_components = n_components
        self.prior = prior
        self.objective = objective
        self.n_pseudo_inputs = n_pseudo_inputs
        self.schedule = schedule
        self.kappa = kappa
        self.nu = nu
        self.tau = tau
        self.alpha = alpha
        self.beta_init = beta_init
        self.warmup_epochs = warmup_epochs
        self.n_importance = n_importance
        self.n_eval_samples = n_eval_samples
        self.likelihood = likelihood
        self.noise_variance = noise_variance
        self.architecture = architecture
        self.image_shape = image_shape
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.encoder_variance = encoder_variance
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the model on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Binary data suits the Bernoulli likelihood; other
            real data the Gaussian one.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VHPEstimator
            The fitted estimator.
        """
        # Training needs autograd whatever the caller's mode (``torch.no_grad``,
        # ``inference_mode``, ``set_grad_enabled(False)``); the context
        # managers give the caller's mode back on the way out, also on an
        # exception or Ctrl-C.
        with torch.inference_mode(False), torch.enable_grad():
            self._fit(X)
        return self

    def _fit(self, X):
        # Set-up is all or nothing: a failure or Ctrl-C before the first
        # training step leaves the estimator as it was (the previous model,
        # or unfitted), never half-built.
        saved = self._save_fit_state()
        try:
            data, generator, val = self._set_up_fit(X)
        except BaseException:
            self._restore_fit_state(saved)
            raise
        # Training changes the weights in place, and the fused Adam step does
        # not count in the tensors' _version: drop the float64 copy.
        _FLOAT64_MODULES.pop(self.module_, None)
        try:
            self._train(data, generator, val)
        finally:
            # Also after a FloatingPointError: the model kept (the last finite
            # state) gets its own variance, not the training one.
            if self.likelihood_ == "gaussian" and self.noise_variance == "auto":
                self._calibrate_noise_variance(data)
            _FLOAT64_MODULES.pop(self.module_, None)

    def _save_fit_state(self):
        saved = dict(self.__dict__)
        if "_seed_stream" in saved:  # advanced in place by the set-up
            saved["_seed_stream"] = copy.deepcopy(saved["_seed_stream"])
        return saved

    def _restore_fit_state(self, saved):
        self.__dict__.clear()
        self.__dict__.update(saved)
        if hasattr(self, "_optimizer"):
            self._set_learning_rate(self.learning_rate_)

    def _set_up_fit(self, X):
        """Validate ``X`` and the settings, then (re)initialise: ``fit`` up to training.

        Returns the training data, the training noise generator and the
        validation data (or ``None``) on the model's device.
        """
        continuing = self.warm_start and hasattr(self, "module_")
        if continuing:
            self._check_warm_start_structure()
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not continuing)
        hidden = self._check_hidden_layer_sizes(X.shape[0])
        self._check_fit_input(X, continuing)
        if not continuing:
            rng = check_random_state(self.random_state)
            if self.early_stopping:
                self._validation_seed = int(rng.randint(2**31 - 1))
            X_train, X_val = self._split_validation(X)
            self._initialize(X_train, hidden, rng)
            self._structure = self._structural_params()
            # Each fit draws its noise seed from this stream, so a warm-started
            # fit continues it instead of replaying the first fit's batches and
            # noise (replayed noise biased the gradients and destabilised runs).
            self._seed_stream = np.random.RandomState(rng.randint(2**31 - 1))
            self.learning_rate_ = float(self.learning_rate)
            self._learning_rate_param = self.learning_rate
            self.divergences_ = []
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = None
        else:
            if self.early_stopping and not hasattr(self, "_validation_seed"):
                self._validation_seed = int(self._seed_stream.randint(2**31 - 1))
            if not self.early_stopping:
                # Scores of earlier fits would describe another training run.
                self.validation_scores_ = None
                self.best_validation_score_ = None
            X_train, X_val = self._split_validation(X)
        device = self.device_
        data = _to_tensor(X_train, torch.float32, device)
        val = None if X_val is None else _to_tensor(X_val, torch.float32, device)
        generator = torch.Generator(device=device).manual_seed(
            int(self._seed_stream.randint(2**31 - 1))
        )
        if getattr(self, "_learning_rate_param", None) != self.learning_rate:
            # learning_rate changed before a warm start.
            self._learning_rate_param = self.learning_rate
            self.learning_rate_ = float(self.learning_rate)
        self._set_learning_rate(self.learning_rate_)
        if not hasattr(self, "divergences_"):
            self.divergences_ = []
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
        return data, generator, val

    def _structural_params(self):
        params = self.get_params(deep=False)
        return {name: _normalised(name, params[name]) for name in _STRUCTURAL_PARAMS}

    def _check_warm_start_structure(self):
        """Refuse a warm start after a change of a parameter the fitted model fixes."""
        fitted = getattr(self, "_structure", None)
        if fitted is None:  # pickled before the structure was recorded
            return
        now = self._structural_params()
        ignored = {"n_pseudo_inputs"} if fitted["prior"] != "vamp" else set()
        if fitted["schedule"] != "warmup":
            ignored.add("warmup_epochs")
        changed = [n for n in _STRUCTURAL_PARAMS if n not in ignored and now[n] != fitted[n]]
        if changed:
            what = ", ".join(f"{n} changed from {fitted[n]!r} to {now[n]!r}" for n in changed)
            raise ValueError(
                f"warm_start=True continues the fitted model, but {what} since it was "
                "fitted; the fitted networks, likelihood, device and schedule cannot take "
                "the new value, which would be ignored. Set it back to continue training, "
                "or set warm_start=False to fit a new model with it."
            )

    def _calibrate_noise_variance(self, data):
        """Set the likelihood's variance to its maximum-likelihood value on ``data``.

        The networks were trained with a fixed variance, which sets how much
        the KL term weighs against reconstruction (like β). Given the trained
        networks, the variance that maximises the ELBO is the mean squared
        error of the decoder under ``q(z|x)`` per feature, as probabilistic
        PCA's ``noise_variance_`` is its residual variance: ``score_samples``
        then measures the fitted networks at their best.
        """
        module = self.module_
        gen = torch.Generator(device=self.device_).manual_seed(self._eval_seed)
        n, d = data.shape
        chunk = _working_rows(2 * d + max(self._module_config["hidden_layer_sizes"], default=1))
        total = torch.zeros((), dtype=torch.float64, device=self.device_)
        with torch.no_grad():
            for start in range(0, n, chunk):
                x = data[start : start + chunk]
                eps = torch.randn(
                    x.shape[0], self.n_components, generator=gen, device=x.device, dtype=x.dtype
                )
                total += module.squared_error(x, eps).sum(dtype=torch.float64)
        trained = self._module_config["noise_variance"]
        # A perfect reconstruction (constant data) must not give a zero variance.
        self.noise_variance_ = max(float(total) / (n * d), 1e-4 * trained)
        module.set_noise_variance(self.noise_variance_)

    def _check_fit_input(self, X, continuing):
        """Checks of ``fit``'s data and settings that parameter validation cannot do."""
        for name in _INTEGER_PARAMS:
            value = getattr(self, name)
            if isinstance(value, bool):
                raise ValueError(
                    f"{name}={value!r} is a bool, not an integer; pass an int (e.g. "
                    f"{name}={int(value) or 1})."
                )
        if not continuing:
            _resolve_device(self.device)
        f32 = np.finfo(np.float32)
        limit = float(f32.max)
        if X.size and float(np.max(np.abs(X))) > limit:
            raise ValueError(
                f"X has values up to {float(np.max(np.abs(X))):g}, beyond the float32 range "
                f"(±{limit:.3g}) the model is trained in; scale the data, e.g. with "
                "sklearn.preprocessing.StandardScaler or MinMaxScaler."
            )
        span = float(np.ptp(X)) if X.size else 0.0
        if span > math.sqrt(limit):
            raise ValueError(
                f"X spans {span:.3g}: its squared reconstruction errors (and the automatic "
                f"noise variance and kappa, which scale with the data's range) overflow "
                f"float32 (above {limit:.3g}), the precision the model is trained in. "
                "Scale the data, e.g. with sklearn.preprocessing.StandardScaler or MinMaxScaler."
            )
        in_unit_interval = X.size == 0 or (X.min() >= 0 and X.max() <= 1)
        if (
            not continuing
            and self.noise_variance == "auto"
            and not in_unit_interval
            and 0 < span
            and _DEFAULT_NOISE_VARIANCE * span**2 < float(f32.tiny)
        ):
            raise ValueError(
                f"X spans only {span:.3g}: the automatic noise variance and kappa, which scale "
                "with the data's range, underflow float32 (below "
                f"{float(f32.tiny):.3g}), the precision the model is trained in. Scale the "
                "data, e.g. with sklearn.preprocessing.StandardScaler, or set noise_variance "
                "and kappa."
            )
        if not continuing:
            self._check_float_params()
        likelihood = getattr(self, "likelihood_", None) if continuing else self.likelihood
        if likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1]; got values in "
                f"[{X.min():g}, {X.max():g}]. Scale the data or use "
                "likelihood='gaussian'."
            )
        beta_init = self.beta_init
        if not continuing and beta_init is not None:
            if self.schedule == "rewo" and not 0 < beta_init <= 1:
                raise ValueError(
                    f"schedule='rewo' needs 0 < beta_init <= 1 (β stays in (0, 1]), got "
                    f"beta_init={beta_init!r}."
                )
            if self.schedule == "geco" and beta_init <= 0:
                raise ValueError(
                    "schedule='geco' needs beta_init > 0 (β = 1/λ for a Lagrange "
                    f"multiplier λ), got beta_init={beta_init!r}."
                )

    def _check_float_params(self):
        """``kappa`` and ``noise_variance`` must survive squaring and float32."""
        if self.kappa != "auto":
            try:
                square = float(self.kappa) ** 2
            except OverflowError:
                square = math.inf
            if not math.isfinite(square):
                raise ValueError(
                    f"kappa={self.kappa!r}: its square, the constraint threshold κ², is not "
                    "finite in double precision. kappa is an RMS reconstruction error in data "
                    "units: use a value on the scale of the data, or kappa='auto'."
                )
            if square == 0:
                raise ValueError(
                    f"kappa={self.kappa!r}: its square, the constraint threshold κ², "
                    "underflows to 0, so the constraint could never be met. Use a value on "
                    "the scale of the data, or kappa='auto'."
                )
        if self.noise_variance != "auto":
            f32 = np.finfo(np.float32)
            if not float(f32.tiny) <= float(self.noise_variance) <= float(f32.max):
                raise ValueError(
                    f"noise_variance={self.noise_variance!r} is outside the range of normal "
                    f"float32 numbers [{float(f32.tiny):.3g}, {float(f32.max):.3g}], the "
                    "precision the model is trained in. Scale the data and use a variance on "
                    "its (squared) scale, or noise_variance='auto'."
                )

    def _split_validation(self, X):
        """``(X_train, X_val)``: the early-stopping split, or ``(X, None)``."""
        if not self.early_stopping:
            return X, None
        n = X.shape[0]
        n_val = int(math.ceil(self.validation_fraction * n))
        if n_val < 2 or n - n_val < 1:
            raise ValueError(
                f"The validation set for early stopping is too small: validation_fraction="
                f"{self.validation_fraction} of {n} samples gives {n_val} validation and "
                f"{n - n_val} training rows (need at least 2 and 1). Increase "
                "validation_fraction or the number of samples, or set early_stopping=False."
            )
        perm = np.random.RandomState(self._validation_seed).permutation(n)
        return X[np.sort(perm[n_val:])], X[np.sort(perm[:n_val])]

    def _check_hidden_layer_sizes(self, n_samples):
        """The hidden widths: ``hidden_layer_sizes``, or its ``"auto"`` rule."""
        if isinstance(self.hidden_layer_sizes, str) and self.hidden_layer_sizes == "auto":
            low, high = _AUTO_WIDTH
            return (min(high, max(low, n_samples // 16)),) * 4
        hidden = np.atleast_1d(np.asarray(self.hidden_layer_sizes)).tolist()
        if not all(isinstance(h, Integral) and h > 0 for h in hidden):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers, "
                f"got {self.hidden_layer_sizes!r}."
            )
        return tuple(int(h) for h in hidden)

    def _check_image_shape(self, n_features):
        """``image_shape`` as a tuple of ints matching ``n_features`` (or None)."""
        if self.image_shape is None:
            if self.architecture != "mlp":
                raise ValueError(
                    f"architecture={self.architecture!r} needs image_shape, the shape "
                    "(height, width) or (channels, height, width) of one image; got "
                    "image_shape=None."
                )
            return None
        shape = np.atleast_1d(np.asarray(self.image_shape)).tolist()
        if not (
            len(shape) in (2, 3)
            and all(isinstance(s, Integral) and (s > 0 or s == -1) for s in shape)
            and shape.count(-1) <= 1
        ):
            raise ValueError(
                "image_shape must be (height, width) or (channels, height, width) "
                f"with positive integers (at most one -1), got {self.image_shape!r}."
            )
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if n_features % known:
                raise ValueError(
                    f"image_shape={self.image_shape!r} does not fit X with "
                    f"{n_features} features: {n_features} is not a multiple of {known}."
                )
            shape[shape.index(-1)] = n_features // known
        elif known != n_features:
            raise ValueError(
                f"image_shape={self.image_shape!r} has {known} pixels, but X has "
                f"{n_features} features; prod(image_shape) must equal n_features."
            )
        return tuple(int(s) for s in shape)

    def _resolve_likelihood(self, X):
        binary = bool(np.all((X == 0) | (X == 1)))
        if self.likelihood == "auto":
            return "bernoulli" if binary else "gaussian"
        if self.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1]; got values in "
                f"[{X.min():g}, {X.max():g}]. Scale the data or use "
                "likelihood='gaussian'."
            )
        return self.likelihood

    def _initialize(self, X, hidden, rng):
        """Resolve settings, build the module, the optimiser and the schedule."""
        self.device_ = _resolve_device(self.device)
        self.likelihood_ = self._resolve_likelihood(X)
        scale = _data_scale(X)
        self.kappa_ = (
            _DEFAULT_KAPPA[self.likelihood_] * scale if self.kappa == "auto" else float(self.kappa)
        )
        # The variance the networks are trained with; with "auto" the fitted
        # model's variance is then calibrated to its reconstructions (_calibrate).
        noise_variance = (
            _DEFAULT_NOISE_VARIANCE * scale**2
            if self.noise_variance == "auto"
            else float(self.noise_variance)
        )
        self.noise_variance_ = noise_variance if self.likelihood_ == "gaussian" else None
        self._train_noise_variance = noise_variance  # lowered at an auto-κ plateau
        self.hidden_layer_sizes_ = hidden
        self._module_config = dict(
            n_features=X.shape[1],
            n_components=self.n_components,
            prior=self.prior,
            likelihood=self.likelihood_,
            hidden_layer_sizes=hidden,
            activation=self.activation,
            noise_variance=noise_variance,
            encoder_variance=self.encoder_variance,
            n_pseudo_inputs=min(self.n_pseudo_inputs, X.shape[0]) if self.prior == "vamp" else None,
            architecture=self.architecture,
            image_shape=self._check_image_shape(X.shape[1]),
        )
        generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
        module = build_vae(**self._module_config, generator=generator)
        if self.init == "pca":
            self._init_pca(module, X, rng)
        if self.prior == "vamp":
            # Pseudo-inputs start as distinct random training rows.
            k = self._module_config["n_pseudo_inputs"]
            rows = rng.choice(X.shape[0], size=k, replace=False)
            module.prior.set_pseudo_inputs(np.asarray(X[rows], dtype=np.float32))
        self.module_ = module.to(self.device_)
        self._optimizer = _make_adam(self.module_, self.learning_rate)
        self.schedule_ = self._make_schedule(X.shape[0])
        self.history_ = {}
        self.n_iter_ = 0
        self._prior_scaled = False  # see _standardise_prior
        self._eval_seed = int(rng.randint(2**31 - 1))

    def _init_pca(self, module, X, rng):
        """Start the encoder mean at the whitened PCA projection of ``X``."""
        n = X.shape[0]
        rows = rng.choice(n, size=min(n, 10000), replace=False) if n > 10000 else slice(None)
        Xs = np.asarray(X[rows], dtype=np.float64)
        mean = Xs.mean(axis=0)
        # LAPACK's singular vectors change with the BLAS thread count, in
        # their last bits and in their signs (which flipped the whole initial
        # latent): one BLAS thread and a fixed sign convention make the start
        # depend on random_state alone.
        with threadpool_limits(limits=1, user_api="blas"):
            u, s, vt = np.linalg.svd(Xs - mean, full_matrices=False)
        _, vt = svd_flip(u, vt, u_based_decision=False)
        k = min(self.n_components, vt.shape[0])
        std = s[:k] / math.sqrt(max(1, Xs.shape[0] - 1))
        weight = np.zeros((self.n_components, X.shape[1]))
        ok = std > 1e-8 * max(1.0, float(std.max()) if k else 1.0)
        weight[:k][ok] = vt[:k][ok] / std[ok, None]
        dtype = torch.float32
        module.encoder.set_linear_mean(
            torch.as_tensor(weight, dtype=dtype), torch.as_tensor(-weight @ mean, dtype=dtype)
        )
        # The decoder starts as the PCA reconstruction (Gaussian data) or at
        # the mean pixel probabilities (Bernoulli data, in logits).
        decoder_weight = np.zeros((X.shape[1], self.n_components))
        if self.likelihood_ == "gaussian":
            decoder_weight[:, :k][:, ok] = (vt[:k][ok] * std[ok, None]).T
            bias = mean
        else:
            bias = _logit(mean)
        with torch.no_grad():
            module.decoder.set_linear(
                torch.as_tensor(decoder_weight, dtype=dtype), torch.as_tensor(bias, dtype=dtype)
            )

    def _make_schedule(self, n_samples):
        beta_init = self.beta_init
        if self.schedule == "rewo":
            plateau = {}
            if self.kappa == "auto":
                steps = self._epochs(n_samples) * (n_samples // min(self.batch_size, n_samples))
                window = min(max(steps // 8, _PLATEAU_WINDOW[0]), _PLATEAU_WINDOW[1])
                plateau = dict(_AUTO_KAPPA_PLATEAU, plateau_window=window)
            return _schedules.REWOSchedule(
                self.kappa_,
                nu=self.nu,
                tau=self.tau,
                alpha=self.alpha,
                beta_init=1e-3 if beta_init is None else beta_init,
                **plateau,
            )
        if self.schedule == "geco":
            return _schedules.GECOSchedule(
                self.kappa_,
                nu=self.nu,
                alpha=self.alpha,
                beta_init=1.0 if beta_init is None else beta_init,
            )
        if self.schedule == "warmup":
            # Matches the training loop, which drops the ragged last batch.
            steps = self.warmup_epochs * (n_samples // min(self.batch_size, n_samples))
            return _schedules.WarmupSchedule(
                steps, alpha=self.alpha, beta_init=0.0 if beta_init is None else beta_init
            )
        return _schedules.ConstantSchedule(
            1.0 if beta_init is None else beta_init, alpha=self.alpha
        )

    def _epochs(self, n_samples):
        """Epochs of one ``fit`` call: ``max_iter``, or its ``"auto"`` rule."""
        if self.max_iter != "auto":
            return self.max_iter
        steps = n_samples // min(self.batch_size, n_samples)  # the ragged batch is dropped
        low, high = _AUTO_EPOCHS
        return min(high, max(low, math.ceil(_AUTO_MIN_ITERATIONS / steps)))

    def _standardise_prior(self, data):
        """Fit the prior's latent standardisation to the current codes.

        Called once, when the prior starts training (REWO's switch, or the
        first iteration of the other schedules): by then the encoder may have
        spread the latent far beyond unit scale.
        """
        rows = data[:: max(1, data.shape[0] // 4096)]
        with torch.no_grad():
            self.module_.standardise_prior(rows)
        self._prior_scaled = True

    def _train(self, data, generator, val=None):
        """Run ``max_iter`` epochs of Adam on ``data``, robust to divergence and Ctrl-C.

        The training state (module, optimiser, schedule) is copied in memory
        after every completed epoch (about three times the parameters' size,
        on their device). A non-finite loss or non-finite parameters roll the
        epoch back to that copy and retry it with half the step size; Ctrl-C
        rolls back to it and returns. With ``val``, early stopping keeps the
        copy of the best epoch and restores it at the end.
        """
        module, opt, schedule = self.module_, self._optimizer, self.schedule_
        device = self.device_
        n = data.shape[0]
        batch = min(self.batch_size, n)
        max_iter = self._epochs(n)
        prior_params = module.prior_parameters()
        early = val is not None
        records = {k: [] for k in ("beta", "constraint_avg", "phase", "epoch", "lr")}
        stats = []
        mark = 0  # len(stats) at the end of the last completed epoch
        snapshot = self._snapshot()  # state after the last completed epoch
        best, best_score, no_improvement = None, -math.inf, 0
        if early and self.n_iter_ > 0:
            # Warm start: the starting model is the one to beat.
            best, best_score = snapshot, self._validation_score(val)
        failures = 0
        epochs_done = 0
        sync_every = self._sync_every or _HOST_SYNC_EVERY.get(device.type, _HOST_SYNC_EVERY["gpu"])
        epoch = self.n_iter_ + 1
        last_epoch = self.n_iter_ + max_iter
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_iter, desc="VHPEstimator", unit="epoch")
        # Train with the training variance (a warm start follows a calibration).
        module.set_noise_variance(
            getattr(self, "_train_noise_variance", self._module_config["noise_variance"])
        )
        module.train()
        try:
            while epochs_done < max_iter:
                epoch = self.n_iter_ + 1
                lr = self.learning_rate_
                bad = None
                pending = []  # iterations whose statistics are still on the device
                perm = torch.randperm(n, generator=generator, device=device)
                for start in range(0, n, batch):
                    idx = perm[start : start + batch]
                    if idx.shape[0] < batch and start > 0:
                        continue  # drop the ragged last batch
                    train_prior = schedule.train_prior
                    if train_prior and not getattr(self, "_prior_scaled", True):
                        self._standardise_prior(data)
                    for p in prior_params:
                        p.requires_grad_(train_prior)
                    x = data[idx]
                    beta = schedule.beta
                    loss_rows, nll, kl, sq_err = module.training_loss(
                        x,
                        beta=beta,
                        n_importance=self.n_importance,
                        generator=generator,
                        objective=self.objective,
                    )
                    loss = loss_rows.mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    row = torch.stack(
                        [loss.detach(), nll.detach().mean(), sq_err, kl.detach().mean()]
                    )
                    pending.append((row, beta, schedule.phase))
                    if len(pending) >= sync_every:
                        bad = self._flush(pending, epoch, lr, stats, records, mark)
                        if bad is not None:
                            break
                    opt.step()
                if bad is None and pending:
                    bad = self._flush(pending, epoch, lr, stats, records, mark)
                if bad is None and not self._state_is_finite():
                    # A finite loss with an overflowing gradient can leave
                    # non-finite weights or Adam moments behind.
                    bad = (len(stats) - mark, None)
                if bad is not None:
                    del stats[mark:]
                    for v in records.values():
                        del v[mark:]
                    self._restore(snapshot)
                    failures += 1
                    self._handle_divergence(epoch, *bad, failures)
                    continue
                failures = 0
                score = self._validation_score(val) if early else None
                snapshot = self._snapshot()
                prev_mark = mark
                self.n_iter_, mark = epoch, len(stats)
                epochs_done += 1
                if early:
                    self.validation_scores_.append(score)
                    if score > best_score:
                        best, best_score, no_improvement = snapshot, score, 0
                    else:
                        no_improvement += 1
                if bar is not None:
                    bar.update(1)
                    postfix = dict(
                        phase=schedule.phase,
                        beta=f"{schedule.beta:.3g}",
                        C=f"{schedule.constraint_avg:.3g}",
                    )
                    if early:
                        postfix["val"] = f"{score:.4g}"
                    bar.set_postfix(postfix)
                if self.verbose >= 2:
                    losses = [row[0] for row in stats[prev_mark:mark]]
                    line = (
                        f"Epoch {epoch}/{last_epoch}: "
                        f"loss={np.mean(losses) if losses else math.nan:.6g}, "
                        f"C={_or_nan(schedule.constraint_avg):.4g}, "
                        f"beta={schedule.beta:.4g}, phase={schedule.phase}, lr={lr:.3g}"
                    )
                    if early:
                        line += f", validation={score:.6g}"
                    print(line, flush=True)
                if early and no_improvement > self.n_iter_no_change:
                    if self.verbose:
                        print(
                            f"Validation score did not improve for {no_improvement} "
                            f"consecutive epochs; stopping at epoch {epoch}, keeping "
                            f"the best ({best_score:.6g})."
                        )
                    break
        except KeyboardInterrupt:
            del stats[mark:]
            for v in records.values():
                del v[mark:]
            self._restore(snapshot)
            warnings.warn(
                f"Training interrupted (KeyboardInterrupt) during epoch {epoch}; the "
                f"estimator holds the model after epoch {self.n_iter_}, the last "
                "completed one. Call fit with warm_start=True to continue.",
                UserWarning,
                stacklevel=4,
            )
        finally:
            if bar is not None:
                bar.close()
            for p in prior_params:
                p.requires_grad_(True)
            module.eval()
            self._append_history(stats, records)
        if early:
            if best is not None and best is not snapshot:
                self._restore(best)
            self.best_validation_score_ = None if best is None else float(best_score)
        self.beta_ = float(schedule.beta)
        self.kappa_ = float(getattr(schedule, "kappa", self.kappa_))
        if schedule.phase == "initial" and schedule.constraint_avg is not None:
            warnings.warn(
                f"Training ended in REWO's initial phase: the running reconstruction "
                f"error Ĉ = {schedule.constraint_avg:.3g} never fell below "
                f"κ² = {self.kappa_**2:.3g}, so the prior was not trained. Increase "
                "max_iter or kappa.",
                ConvergenceWarning,
                stacklevel=2,
            )

    def _flush(self, pending, epoch, lr, stats, records, mark):
        """Bring the pending iterations' statistics to the host, in one sync.

        Checks them for non-finite values and feeds the constraint values to
        the β schedule in order. Returns ``None``, or ``(iteration, values)``
        of the first non-finite iteration of the epoch (the caller rolls the
        epoch back).
        """
        schedule = self.schedule_
        rows = torch.stack([p[0] for p in pending]).tolist()
        for values, (_, beta, phase) in zip(rows, pending):
            if not all(math.isfinite(v) for v in values):
                return len(stats) - mark + 1, values
            stats.append(values)
            records["beta"].append(beta)
            records["phase"].append(phase)
            records["epoch"].append(epoch)
            records["lr"].append(lr)
            kappa = getattr(schedule, "kappa", None)
            schedule.step(values[2])
            records["constraint_avg"].append(schedule.constraint_avg)
            if kappa is not None and schedule.kappa != kappa:
                self._on_kappa_raised(schedule.kappa**2 / schedule.plateau_margin)
        pending.clear()
        return None

    def _on_kappa_raised(self, level):
        """``kappa="auto"`` raised κ² to 1.5 times an error ``level`` the model reached.

        (On a plateau of the initial phase, or when the constraint held β
        back.) A Gaussian likelihood trained with a variance above that level
        makes β = 1 ask for a coarser reconstruction than the tolerance, and
        β settles below 1: the training variance is lowered to the level.
        """
        if self.likelihood_ == "gaussian" and self.noise_variance == "auto":
            self._train_noise_variance = min(self._train_noise_variance, float(level))
            self.module_.set_noise_variance(self._train_noise_variance)

    def _handle_divergence(self, epoch, iteration, values, failures):
        """Halve the step size and warn, or raise after too many failures."""
        if values is None:
            what, loss = "the parameters or Adam's moments became non-finite", math.nan
        else:
            what, loss = f"the loss is not finite (loss={values[0]}, C={values[2]})", values[0]
        if failures > _MAX_RECOVERIES:
            raise FloatingPointError(
                f"Training diverged at epoch {epoch}, iteration {iteration}: {what}, "
                f"and {_MAX_RECOVERIES} recoveries (restoring the last finite state and "
                f"halving the step size, now {self.learning_rate_:.3g}) did not help. "
                "The estimator holds the model after the last completed epoch. Lower "
                "learning_rate, scale the data (e.g. to [0, 1] or with StandardScaler) "
                "or set noise_variance."
            )
        self.learning_rate_ /= 2.0
        self._set_learning_rate(self.learning_rate_)
        self.divergences_.append(
            {"epoch": epoch, "iteration": iteration, "loss": loss, "lr": self.learning_rate_}
        )
        warnings.warn(
            f"Training diverged at epoch {epoch}, iteration {iteration}: {what}. Restored "
            f"the state after epoch {epoch - 1}, halved the step size to "
            f"{self.learning_rate_:.3g} and repeated the epoch (recovery {failures} of "
            f"at most {_MAX_RECOVERIES}). A smaller learning_rate or scaled data avoid this.",
            DivergenceWarning,
            stacklevel=5,
        )

    def _set_learning_rate(self, lr):
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    def _snapshot(self):
        """Copy of the training state: module and optimiser tensors, schedule."""
        module_state = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
        return (
            module_state,
            copy.deepcopy(self._optimizer.state_dict()),
            copy.deepcopy(vars(self.schedule_)),
        )

    def _restore(self, snapshot):
        """Load a :meth:`_snapshot` in place, keeping the current step size."""
        module_state, optimizer_state, schedule_state = snapshot
        self.module_.load_state_dict(module_state)
        # load_state_dict may adopt the given tensors: hand it a copy so that
        # the snapshot survives for a later restore.
        self._optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        self._set_learning_rate(self.learning_rate_)
        vars(self.schedule_).update(copy.deepcopy(schedule_state))
        variance = getattr(self.module_.likelihood, "variance", None)
        if variance is not None:  # an epoch that lowered it (_on_kappa_raised) is undone
            self._train_noise_variance = float(variance)

    def _state_is_finite(self):
        """Whether every parameter and every Adam moment is finite (one sync)."""
        tensors = list(self.module_.parameters())
        for state in self._optimizer.state.values():
            tensors += [t for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
        if not tensors:
            return True
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    def _validation_score(self, data):
        """Validation ELBO per row: minus the module's own loss at ``β = 1``.

        The noise is the same at every call (common random numbers), so
        scores of successive epochs differ only through the weights.
        """
        module = self.module_
        n = data.shape[0]
        # Floats per row: K samples through the decoder and the prior's nets.
        hidden = sum(self._module_config.get("hidden_layer_sizes", ())) or 1
        width = data.shape[1] + 2 * hidden + getattr(module.decoder, "floats_per_sample", 0)
        cap = _CPU_SCORE_CHUNK_MIB if self.device_.type == "cpu" else None
        chunk = max(min(self.batch_size, n), _working_rows(self.n_importance * width, cap))
        gen = torch.Generator(device=self.device_).manual_seed(self._validation_seed)
        total = torch.zeros((), dtype=torch.float64, device=self.device_)
        training = module.training
        module.eval()
        try:
            with torch.no_grad():
                for start in range(0, n, chunk):
                    loss, *_ = module.training_loss(
                        data[start : start + chunk],
                        beta=1.0,
                        n_importance=self.n_importance,
                        generator=gen,
                        objective=self.objective,
                    )
                    total += loss.sum(dtype=torch.float64)
        finally:
            module.train(training)
        return -float(total) / n

    def _append_history(self, stats, records):
        arr = np.asarray(stats, dtype=np.float64).reshape(-1, 4)
        new = {
            "loss": arr[:, 0],
            "reconstruction": arr[:, 1],
            "constraint": arr[:, 2],
            "kl": arr[:, 3],
            "constraint_avg": np.asarray(records["constraint_avg"], dtype=np.float64),
            "beta": np.asarray(records["beta"], dtype=np.float64),
            "phase": np.asarray(records["phase"], dtype=object),
            "epoch": np.asarray(records["epoch"], dtype=np.int64),
            "lr": np.asarray(records["lr"], dtype=np.float64),
        }
        old = self.history_
        n_old = len(old.get("loss", ()))
        # A model pickled before a column existed gets NaN for its old rows.
        self.history_ = {
            k: np.concatenate([old[k] if k in old else np.full(n_old, np.nan), v])
            for k, v in new.items()
        }

    # ------------------------------------------------------------ inference
    def _module_for(self, dtype):
        """The module in the precision of the input (float64 for float64 data).

        The float64 copy is made once and reused until the weights change:
        ``fit`` drops it, and anything written into ``module_`` in place (e.g.
        ``load_state_dict``) is caught by the tensors' ``_version`` counters.
        It lives beside the estimator (``_FLOAT64_MODULES``), not in it: it
        is never pickled, and inference leaves the estimator's ``__dict__``
        unchanged. Threads that build it at the same time each get a correct
        copy; the last one is kept.
        """
        module = self.module_
        if dtype == np.float32:
            return module
        versions = tuple(t._version for t in module.state_dict(keep_vars=True).values())
        cached = _FLOAT64_MODULES.get(module)
        if cached is not None and cached[0] == versions:
            return cached[1]
        # Outside the caller's inference_mode: a copy made there would hold
        # inference tensors.
        with torch.inference_mode(False), torch.no_grad():
            copy64 = copy.deepcopy(module).to(torch.float64)
        copy64.eval()
        _FLOAT64_MODULES[module] = (versions, copy64)
        return copy64

    def _validate(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _map_rows(self, fn, X, dtype, out_width):
        """Apply ``fn`` to row chunks of ``X`` without gradients; numpy out."""
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        width = out_width + max(self._module_config["hidden_layer_sizes"], default=1)
        # Image networks state their activations per row (feature maps).
        width += max(
            getattr(self.module_.encoder, "floats_per_row", 0),
            getattr(self.module_.decoder, "floats_per_sample", 0),
        )
        chunk = max(1, _working_rows(width))
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                x = _to_tensor(X[start : start + chunk], tdtype, self.device_)
                out.append(fn(x).cpu().numpy())
        if not out:
            return np.empty((0, out_width), dtype=dtype)
        return np.concatenate(out).astype(dtype, copy=False)

    def transform(self, X):
        """Encode ``X`` as posterior means ``E[z|x]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, in the dtype of ``X`` (float32 or float64).
        """
        X = self._validate(X)
        module = self._module_for(X.dtype)
        return self._map_rows(module.encode_mean, X, X.dtype, self._n_latent)

    def inverse_transform(self, X):
        """Decode latent codes to decoder means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Decoder means (probabilities for the Bernoulli likelihood).
        """
        check_is_fitted(self)
        from sklearn.utils import check_array

        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self._n_latent:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects "
                f"n_components={self._n_latent} latent features (the fitted model's width)."
            )
        module = self._module_for(Z.dtype)
        return self._map_rows(module.decode_mean, Z, Z.dtype, self.n_features_in_)

    def score_samples(self, X):
        """Importance-sampled log-likelihood ``log p(x)`` of each row, in nats.

        ``log p(x) ≈ logsumexp_s log w_s - log S`` with ``S = n_eval_samples``
        samples from the joint proposal ``q(z|x) q(ζ|z)`` (for the standard
        prior, ``q(z|x)``). The estimate is a stochastic lower bound that
        tightens as ``S`` grows. Every row sees the same noise, so a row's
        value does not depend on the other rows and repeated calls agree.

        The networks run in the precision of ``X``: float64 data (numpy's
        default) is scored in float64; float32 data in float32, about twice
        as fast on a CPU, with a difference of order 1e-4 nats on MNIST-sized
        rows. The sum over samples (``logsumexp``) is accumulated in float64
        either way.

        The work is split into chunks of rows and of samples whose
        temporaries fit in scikit-learn's ``working_memory`` setting (in MiB,
        ``sklearn.config_context``; default 1024), so ``S = 5000`` on many
        rows runs in bounded memory. On a CPU the chunks are kept to at most
        16 MiB, which stay in cache. With ``verbose > 0`` a progress bar
        counts the scored rows.

        Rows outside the support of the likelihood have probability zero: with
        the Bernoulli likelihood, a row with any value outside [0, 1] gets
        ``-inf`` (with a ``UserWarning`` that counts them) instead of a
        number the model was never trained to give. Values inside [0, 1] are
        in the support, fractional ones included (as in ``fit``). The
        Gaussian likelihood's support is every real row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``-inf`` for rows outside the likelihood's support.
        """
        X = self._validate(X)
        if self.likelihood_ == "bernoulli" and X.size:
            outside = ((X < 0) | (X > 1)).any(axis=1)
            if outside.any():
                warnings.warn(
                    f"{int(outside.sum())} of {X.shape[0]} rows have values outside [0, 1], "
                    "the support of the Bernoulli likelihood this model was fitted with: "
                    "their log-likelihood is -inf. Scale the data as the training data "
                    "were (e.g. binarise it) to score them.",
                    UserWarning,
                    stacklevel=2,
                )
                out = np.full(X.shape[0], -np.inf)
                out[~outside] = self._score_rows(X[~outside])
                return out
        return self._score_rows(X)

    def _score_rows(self, X):
        """``score_samples`` of validated rows inside the likelihood's support."""
        # The networks run in the input's precision; the sum over samples is
        # float64 either way.
        module = self._module_for(X.dtype)
        tdtype = torch.float32 if X.dtype == np.float32 else torch.float64
        dev, S = self.device_, self.n_eval_samples
        if isinstance(S, bool) or not isinstance(S, Integral) or S < 1:
            raise ValueError(f"n_eval_samples must be a positive integer, got {S!r}.")
        d, n_aux = self._n_latent, module.prior.n_aux
        # The noise comes in fixed blocks of samples, each from its own seed,
        # so that it never needs more than ~8 MiB at once (4e7 samples took
        # 1.2 GB) and does not depend on the chunk sizes below. One block
        # (S <= 2**20 / (d + n_aux), e.g. 13,107 samples for d = 40) is the
        # noise of earlier versions, bit for bit.
        block = max(1, _NOISE_BLOCK_FLOATS // (d + n_aux))
        n_blocks = -(-S // block)

        def noise(b):
            gen = torch.Generator(device=dev).manual_seed(self._eval_seed + b)
            size = min(block, S - b * block)
            # Drawn in float64 and rounded, so both precisions see the same noise.
            kw = dict(generator=gen, device=dev, dtype=torch.float64)
            eps_z = torch.randn(size, d, **kw).to(tdtype)
            eps_aux = torch.randn(size, n_aux, **kw).to(tdtype) if n_aux else None
            return eps_z, eps_aux

        first = noise(0) if n_blocks == 1 else None
        # Floats per (row, sample) pair: decoder activations and outputs.
        width = 3 * self.n_features_in_ + 2 * max(
            self._module_config["hidden_layer_sizes"], default=1
        )
        itemsize = X.dtype.itemsize
        # The VampPrior's log p(z) holds its K component densities per pair,
        # always in float64 (8 bytes, counted in units of ``itemsize``).
        width += 2 * (self._module_config.get("n_pseudo_inputs") or 0) * 8 // itemsize
        # Image decoders state their activations per sample (feature maps).
        width += getattr(module.decoder, "floats_per_sample", 0)
        # On a CPU, chunks of a few MiB stay in cache: 1.3-2x faster than 1 GiB ones.
        cap = _CPU_SCORE_CHUNK_MIB if dev.type == "cpu" else None
        s_chunk = min(S, max(1, _working_rows(width, cap, itemsize) // 8))
        r_chunk = max(1, _working_rows(width * s_chunk, cap, itemsize))
        out = np.empty(X.shape[0])
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=X.shape[0], desc="score_samples", unit="row")
        # The VampPrior's components, computed once, in a copy of the prior
        # that this call alone holds (calls from several threads share the
        # model, not their state).
        frozen = getattr(module.prior, "frozen", None)
        frozen = frozen() if frozen is not None else contextlib.nullcontext(module.prior)
        try:
            with torch.no_grad(), frozen as prior:
                for r0 in range(0, X.shape[0], r_chunk):
                    x = _to_tensor(X[r0 : r0 + r_chunk], tdtype, dev)
                    acc = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=dev)
                    for b in range(n_blocks):
                        eps_z, eps_aux = first if first is not None else noise(b)
                        for s0 in range(0, eps_z.shape[0], s_chunk):
                            aux = eps_aux[s0 : s0 + s_chunk] if n_aux else None
                            log_w = module.log_weights(x, eps_z[s0 : s0 + s_chunk], aux, prior)
                            acc = torch.logaddexp(acc, torch.logsumexp(log_w.double(), dim=1))
                    out[r0 : r0 + x.shape[0]] = (acc - math.log(S)).cpu().numpy()
                    if bar is not None:
                        bar.update(x.shape[0])
        finally:
            if bar is not None:
                bar.close()
        return out

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` (see :meth:`score_samples`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        float
            Mean of :meth:`score_samples`; higher is better, so model
            selection by ``GridSearchCV`` picks the best held-out likelihood.
            ``-inf`` when a row lies outside the likelihood's support (see
            :meth:`score_samples`).
        """
        return float(np.mean(self.score_samples(X)))

    def sample_latent(self, n_samples=1, random_state=None):
        """Draw latent codes from the learned prior.

        Hierarchical prior: ``ζ ~ N(0, I)``, ``z ~ p(z|ζ)``; standard prior:
        ``z ~ N(0, I)``; VampPrior: a uniformly chosen pseudo-input ``u_k``,
        then ``z ~ q(z|u_k)``.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(self.random_state if random_state is None else random_state)
        gen = torch.Generator(device=self.device_).manual_seed(int(rng.randint(2**31 - 1)))
        module = self._module_for(np.float64)
        # The prior's networks run on chunks of rows that fit in
        # working_memory (800,000 rows at once peaked at 3.1 GB); the noise is
        # drawn for all rows first, so the draws do not depend on the chunks.
        cfg = self._module_config
        width = 4 * sum(cfg["hidden_layer_sizes"]) + 6 * self._n_latent
        if cfg["prior"] == "vamp":
            width += self.n_features_in_ + getattr(module.encoder, "floats_per_row", 0)
        with torch.no_grad():
            z = module.sample_latent(n_samples, gen, chunk=_working_rows(width))
        return z.cpu().numpy()

    def sample(self, n_samples=1, random_state=None):
        """Generate data: decoder means of codes drawn from the learned prior.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
        """
        return self.inverse_transform(self.sample_latent(n_samples, random_state))

    def active_units(self, X, threshold=0.01):
        """Active latent units and per-dimension KL (paper App. D).

        The activity of a latent unit ``u`` is Burda et al.'s (2016) statistic
        ``A_u = Cov_x(E_{q(u|x)}[u])``, the variance over the rows of ``X`` of
        its posterior mean; the unit is active when ``A_u > threshold``. For
        ``z`` the posterior mean is ``E[z|x]``; for ``ζ`` (hierarchical prior
        only) it is the mean of ``q(ζ|z)`` at ``z = E[z|x]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data over which the activity is measured (e.g. a held-out set).
        threshold : float, default=0.01
            Activity above which a unit counts as active (Burda et al.: 0.01).

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``z_activity`` : ndarray of shape (n_components,)
                ``A_u`` of each dimension of ``z``.
            ``z_active`` : ndarray of bool, shape (n_components,)
                ``z_activity > threshold``.
            ``n_active_z`` : int
                Number of active dimensions of ``z``.
            ``z_kl`` : ndarray of shape (n_components,) or None
                Mean over ``X`` of ``KL(q(z_j|x) || N(0, 1))`` per dimension:
                the (analytic) KL term of the ELBO split by dimension, given
                only for ``prior="standard"`` (the other priors do not
                factorise over dimensions).
            ``zeta_activity``, ``zeta_active``, ``n_active_zeta`` :
                The same for ``ζ``; ``None`` unless ``prior="vhp"``.
            ``zeta_kl`` : ndarray of shape (n_components,) or None
                Mean over ``X`` of ``KL(q(ζ_j|z) || N(0, 1))`` at
                ``z = E[z|x]``, per dimension (``p(ζ) = N(0, I)``);
                ``None`` unless ``prior="vhp"``.
        """
        if not isinstance(threshold, Real) or threshold < 0:
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}.")
        X = self._validate(X)
        if X.shape[0] < 2:
            raise ValueError("active_units needs at least 2 samples to measure a variance.")
        module = self._module_for(np.float64)
        d = self._n_latent
        n_aux = module.prior.n_aux if hasattr(module.prior, "aux_posterior") else 0

        def stats(x):
            z_mean, z_kl, zeta_mean, zeta_kl = module.latent_statistics(x)
            parts = [z_mean, z_kl] + ([zeta_mean, zeta_kl] if n_aux else [])
            return torch.cat(parts, dim=1)

        out = self._map_rows(stats, X.astype(np.float64), np.float64, 2 * d + 2 * n_aux)
        z_activity = out[:, :d].var(axis=0)
        result = Bunch(
            z_activity=z_activity,
            z_active=z_activity > threshold,
            n_active_z=int(np.sum(z_activity > threshold)),
            z_kl=out[:, d : 2 * d].mean(axis=0)
            if self._module_config["prior"] == "standard"
            else None,
            zeta_activity=None,
            zeta_active=None,
            n_active_zeta=None,
            zeta_kl=None,
        )
        if n_aux:
            zeta_activity = out[:, 2 * d : 2 * d + n_aux].var(axis=0)
            result.update(
                zeta_activity=zeta_activity,
                zeta_active=zeta_activity > threshold,
                n_active_zeta=int(np.sum(zeta_activity > threshold)),
                zeta_kl=out[:, 2 * d + n_aux :].mean(axis=0),
            )
        return result

    # ----------------------------------------------------------- sklearn bits
    @property
    def _n_features_out(self):
        # NotFittedError is an AttributeError: get_feature_names_out's
        # check_is_fitted(self, "_n_features_out") then fails as it should.
        check_is_fitted(self)
        return self._n_latent

    @property
    def _n_latent(self):
        """The fitted model's latent width (``n_components`` at fit time)."""
        return self._module_config["n_components"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        """The estimator's state for pickle, joblib and ``skops.io``.

        The weights and Adam's state are stored as numpy arrays (no torch
        pickles), with the package version, a state format number and a
        SHA-256 checksum of those arrays, so that loading can tell a model
        saved by an incompatible version, or damaged, from a good one.
        """
        from . import __version__

        state = dict(super().__getstate__())  # object.__getstate__ is __dict__ itself
        state["_sklearn_vhp_version"] = __version__
        state["_state_format"] = _STATE_FORMAT
        if "module_" in state:
            weights = {k: v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()}
            opt = self._optimizer.state_dict()
            optimizer = {
                "state": {
                    str(i): {k: _to_numpy(v) for k, v in entry.items()}
                    for i, entry in opt["state"].items()
                },
                "param_groups": [dict(g) for g in opt["param_groups"]],
            }
            state["module_"] = weights
            state["_optimizer_state"] = optimizer
            state["_weights_checksum"] = _checksum(weights, optimizer["state"])
            state["device_"] = str(self.device_)
            state.pop("_optimizer", None)
        return state

    def __setstate__(self, state):
        # Loaded under the caller's torch.inference_mode, the weights would be
        # inference tensors that can never be trained again (warm start).
        with torch.inference_mode(False):
            self._set_state(dict(state))

    def _set_state(self, state):
        from . import __version__

        saved_version = state.pop("_sklearn_vhp_version", None)
        state_format = state.pop("_state_format", 1)
        checksum = state.pop("_weights_checksum", None)
        optimizer_state = state.pop("_optimizer_state", None)
        saved_by = (
            f"sklearn-vhp {saved_version}"
            if saved_version
            else "a sklearn-vhp older than 0.1.0.dev0 (which did not record its version)"
        )
        if not isinstance(state_format, Integral) or state_format > _STATE_FORMAT:
            raise ValueError(
                f"This VHPEstimator was saved by {saved_by} in state format {state_format!r}; "
                f"sklearn-vhp {__version__} reads formats up to {_STATE_FORMAT}. Upgrade "
                "sklearn-vhp to load it."
            )
        blob = state.get("module_")
        if blob is None:  # not fitted
            super().__setstate__(state)
            return
        missing = [k for k in _FITTED_STATE if k not in state]
        if missing:
            raise ValueError(
                f"This fitted VHPEstimator was saved by {saved_by}, whose state lacks "
                f"{', '.join(missing)} (sklearn-vhp {__version__} needs them to predict and "
                "to continue training). Refit the model, or load it with the version that "
                "saved it."
            )
        device = torch.device(state["device_"])
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                f"This model was fitted on {device} but CUDA is not available; "
                "it is loaded on the CPU.",
                UserWarning,
                stacklevel=3,
            )
            device = torch.device("cpu")
        if isinstance(blob, bytes):  # format 1: torch.save bytes
            try:
                saved = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
            except Exception as exc:
                raise ValueError(
                    f"The weights of this VHPEstimator (saved by {saved_by}) are damaged and "
                    f"cannot be read ({type(exc).__name__}: {exc}). Load an undamaged copy "
                    "or refit the model."
                ) from exc
            weights, optimizer_state = saved["module"], saved["optimizer"]
        else:
            if checksum is None or checksum != _checksum(blob, optimizer_state["state"]):
                raise ValueError(
                    f"The weights of this VHPEstimator (saved by {saved_by}) are damaged: "
                    "their SHA-256 checksum does not match the one saved with them. Load an "
                    "undamaged copy or refit the model."
                )
            weights = {k: torch.tensor(np.array(v)) for k, v in blob.items()}
            optimizer_state = {
                "state": {
                    int(i): {k: _from_numpy(v) for k, v in entry.items()}
                    for i, entry in optimizer_state["state"].items()
                },
                "param_groups": [dict(g) for g in optimizer_state["param_groups"]],
            }
        module = build_vae(**state["_module_config"])
        expected = module.state_dict()
        # Buffers added since: their defaults reproduce the older models.
        for key in [k for k in _NEW_BUFFERS if k in expected and k not in weights]:
            weights[key] = expected[key]
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        shapes = sorted(
            k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape
        )
        if missing or unexpected or shapes:
            details = "; ".join(
                f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for what, keys in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("other shapes", shapes),
                )
                if keys
            )
            raise ValueError(
                f"This VHPEstimator was saved by {saved_by}, whose model layout differs "
                f"from that of sklearn-vhp {__version__} ({details}). Refit the model, or "
                "load it with the version that saved it."
            )
        module.load_state_dict(weights)
        module.to(device).eval()
        optimizer = _make_adam(module, state.get("learning_rate", 1e-3))
        try:
            optimizer.load_state_dict(optimizer_state)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"The optimiser state of this VHPEstimator (saved by {saved_by}) does not "
                f"fit its model ({exc}); it cannot continue training. Refit the model."
            ) from exc
        state["module_"] = module
        state["_optimizer"] = optimizer
        state["device_"] = device
        super().__setstate__(state)


#: Version of the layout of ``VHPEstimator.__getstate__``. 1: the torch state
#: as ``torch.save`` bytes (before 0.1.0.dev0 recorded versions); 2: numpy
#: arrays with a checksum.
_STATE_FORMAT = 2

#: Fitted attributes a loaded model needs to predict and to continue training.
_FITTED_STATE = (
    "n_features_in_",
    "_module_config",
    "likelihood_",
    "kappa_",
    "schedule_",
    "history_",
    "n_iter_",
    "learning_rate_",
    "_eval_seed",
    "_seed_stream",
    "device_",
)

#: Buffers added to the module after models were first saved, whose default
#: values reproduce the models saved without them.
_NEW_BUFFERS = ("prior.input_loc", "prior.input_scale")


def _to_numpy(value):
    return value.detach().cpu().numpy() if torch.is_tensor(value) else value


def _from_numpy(value):
    return torch.tensor(np.array(value)) if isinstance(value, np.ndarray) else value


def _checksum(weights, optimizer_state):
    """SHA-256 of the weights and Adam's arrays: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()

    def add(name, value):
        arr = np.ascontiguousarray(value)
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())

    for key in sorted(weights):
        add(key, weights[key])
    for i in sorted(optimizer_state, key=str):
        for key in sorted(optimizer_state[i]):
            value = optimizer_state[i][key]
            if isinstance(value, np.ndarray):
                add(f"{i}.{key}", value)
    return digest.hexdigest()


def _make_adam(module, lr):
    """Adam, fused into one kernel where this torch build supports it.

    The per-parameter loop of the default implementation cost ~3 ms of a
    ~18 ms VHP step on 2 CPU threads.
    """
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(module.parameters(), lr=lr)


def _or_nan(value):
    return math.nan if value is None else value


def _to_tensor(a, dtype, device):
    """Copy a validated numpy array (or a chunk of one) to a tensor.

    The one place where data enter torch. scikit-learn's validation accepts
    every layout numpy has (negative strides from ``X[::-1]`` or
    ``np.flip``, Fortran order, strided or read-only views), and torch
    refuses negative strides: the copy goes through a C-contiguous array,
    which costs nothing for data that already is one.
    """
    return torch.tensor(np.ascontiguousarray(a), dtype=dtype, device=device)


def _data_scale(X):
    """Unit of ``κ`` and of the noise variance: 1 for data in [0, 1], else 4 RMS stds.

    Four standard deviations is about the span of a feature scaled to [0, 1],
    so standardised data and [0, 1] images get comparable settings.
    """
    if X.size == 0 or (X.min() >= 0 and X.max() <= 1):
        return 1.0
    spread = 4.0 * math.sqrt(float(np.mean(np.var(X, axis=0))))
    return spread if spread > 0 else 1.0


def _logit(p, eps=1e-4):
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def _working_rows(floats_per_row, max_mib=None, itemsize=8):
    """Rows whose work fits in sklearn's ``working_memory`` (MiB).

    ``max_mib`` lowers the budget further (never raises it); ``itemsize`` is
    the bytes per float (8 for float64, 4 for float32).
    """
    mib = get_config()["working_memory"]
    if max_mib is not None:
        mib = min(mib, max_mib)
    return max(1, int(mib * 2**20 // (itemsize * max(1, floats_per_row))))
