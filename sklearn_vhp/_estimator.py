"""VHPEstimator: scikit-learn glue around the hierarchical-prior VAE.

Validation, resolved settings and public methods that delegate: the
settings' rules live in :mod:`._settings`, the training loop in
:mod:`._training`, the estimates (``log p(x)``, memory per row) in the model
(:class:`._torch.vae.VAE`) and the persistence in :mod:`._persistence`.
"""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch, check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _persistence, _settings
from ._schedules import make_schedule
from ._settings import CPU_CHUNK_MIB, chunk_rows
from ._settings import to_tensor as _to_tensor
from ._torch.factory import build_vae
from ._torch.vae import forget_precisions, in_precision
from ._training import (
    HOST_SYNC_EVERY,
    DivergenceWarning,
    EarlyStopping,
    ShuffledBatches,
    Trainer,
    make_adam,
    set_learning_rate,
)

__all__ = ["VHPEstimator", "DivergenceWarning"]


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

    #: Test hook: iterations between host syncs in ``fit`` (``None``: the
    #: device's default, ``_training.HOST_SYNC_EVERY``). Not a parameter;
    #: tests set it on an instance to check that syncs change no result.
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
        # Training needs autograd whatever the caller's mode; the context
        # managers give it back on the way out, also on an exception or Ctrl-C.
        with torch.inference_mode(False), torch.enable_grad():
            self._fit(X)
        return self

    def _fit(self, X):
        # Set-up is all or nothing: a failure or Ctrl-C before the first
        # training step leaves the estimator as it was (the previous model,
        # or unfitted), never half-built.
        saved = dict(self.__dict__)
        if "_seed_stream" in saved:  # advanced in place by the set-up
            saved["_seed_stream"] = copy.deepcopy(saved["_seed_stream"])
        try:
            data, generator, val = self._set_up_fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if hasattr(self, "_optimizer"):
                set_learning_rate(self._optimizer, self.learning_rate_)
            raise
        forget_precisions(self.module_)
        try:
            self._train(data, generator, val)
        finally:
            # Also after a FloatingPointError: the model kept (the last finite
            # state) gets its own variance, not the training one.
            if self.likelihood_ == "gaussian" and self.noise_variance == "auto":
                self._calibrate_noise_variance(data)
            forget_precisions(self.module_)

    def _set_up_fit(self, X):
        """Validate ``X`` and the settings, then (re)initialise: ``fit`` up to training."""
        continuing = self.warm_start and hasattr(self, "module_")
        if continuing:
            _settings.check_warm_start(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not continuing)
        hidden = _settings.hidden_layer_sizes(self, X.shape[0])
        _settings.check_fit_input(self, X, continuing)
        if not continuing:
            rng = check_random_state(self.random_state)
            if self.early_stopping:
                self._validation_seed = int(rng.randint(2**31 - 1))
            X_train, X_val = self._split_validation(X)
            self._initialize(X_train, hidden, rng)
        else:
            if self.early_stopping and not hasattr(self, "_validation_seed"):
                self._validation_seed = int(self._seed_stream.randint(2**31 - 1))
            if not self.early_stopping:
                # Scores of earlier fits would describe another training run.
                self.validation_scores_ = None
                self.best_validation_score_ = None
            X_train, X_val = self._split_validation(X)
        data = _to_tensor(X_train, torch.float32, self.device_)
        val = None if X_val is None else _to_tensor(X_val, torch.float32, self.device_)
        generator = torch.Generator(device=self.device_).manual_seed(
            int(self._seed_stream.randint(2**31 - 1))
        )
        if getattr(self, "_learning_rate_param", None) != self.learning_rate:
            # learning_rate changed before a warm start.
            self._learning_rate_param = self.learning_rate
            self.learning_rate_ = float(self.learning_rate)
        set_learning_rate(self._optimizer, self.learning_rate_)
        if not hasattr(self, "divergences_"):
            self.divergences_ = []
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
        return data, generator, val

    def _split_validation(self, X):
        return _settings.split_validation(self, X, getattr(self, "_validation_seed", None))

    def _initialize(self, X, hidden, rng):
        """Set all first-fit state: resolved settings, module, optimiser, schedule."""
        resolved = _settings.resolve(self, X, hidden)
        self.device_, self.likelihood_ = resolved.device, resolved.likelihood
        self.kappa_, self.hidden_layer_sizes_ = resolved.kappa, resolved.hidden_layer_sizes
        gaussian = self.likelihood_ == "gaussian"
        self.noise_variance_ = resolved.noise_variance if gaussian else None
        self._train_noise_variance = resolved.noise_variance  # lowered when auto κ is raised
        self._module_config = resolved.module_config
        n = X.shape[0]
        self.schedule_ = make_schedule(
            self.schedule,
            kappa=self.kappa_,
            nu=self.nu,
            tau=self.tau,
            alpha=self.alpha,
            beta_init=self.beta_init,
            # Matches the training loop, which drops the ragged last batch.
            warmup_steps=self.warmup_epochs * (n // min(self.batch_size, n)),
            plateau=resolved.plateau,
        )
        generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
        module = build_vae(**self._module_config, generator=generator)
        if self.init == "pca":
            module.init_from_projections(
                *_settings.pca_projections(X, self.n_components, self.likelihood_, rng)
            )
        if self.prior == "vamp":  # pseudo-inputs start as distinct random training rows
            rows = rng.choice(n, size=self._module_config["n_pseudo_inputs"], replace=False)
            module.prior.set_pseudo_inputs(np.asarray(X[rows], dtype=np.float32))
        self.module_ = module.to(self.device_)
        self._optimizer = make_adam(self.module_, self.learning_rate)
        self.history_, self.n_iter_, self._prior_scaled = {}, 0, False
        self._eval_seed = int(rng.randint(2**31 - 1))
        self._structure = _settings.structural_params(self)
        # Each fit draws its noise seed from this stream, so a warm-started
        # fit continues it instead of replaying the first fit's batches and
        # noise (replayed noise biased the gradients and destabilised runs).
        self._seed_stream = np.random.RandomState(rng.randint(2**31 - 1))
        self.learning_rate_ = float(self.learning_rate)
        self._learning_rate_param = self.learning_rate
        self.divergences_ = []
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = None

    def _train(self, data, generator, val=None):
        """Hand the model to the training engine; read its state back."""
        module = self.module_
        source = ShuffledBatches(data, self.batch_size, generator)
        sync = self._sync_every or HOST_SYNC_EVERY.get(self.device_.type, HOST_SYNC_EVERY["gpu"])
        trainer = Trainer(
            module,
            self._optimizer,
            self.schedule_,
            objective=self.objective,
            n_importance=self.n_importance,
            learning_rate=self.learning_rate_,
            n_iter=self.n_iter_,
            sync_every=sync,
            train_noise_variance=getattr(
                self, "_train_noise_variance", self._module_config["noise_variance"]
            ),
            lower_variance_with_kappa=self.likelihood_ == "gaussian"
            and self.noise_variance == "auto",
            prior_scaled=getattr(self, "_prior_scaled", True),
            divergences=self.divergences_,
            verbose=self.verbose,
        )
        early = None if val is None else self._early_stopping(val)
        try:
            trainer.run(source, _settings.epochs(self, data.shape[0]), early)
        finally:
            self.n_iter_, self.learning_rate_ = trainer.n_iter, trainer.learning_rate
            self._train_noise_variance = trainer.train_noise_variance
            self._prior_scaled = trainer.prior_scaled
            self.history_ = trainer.record.extend(self.history_)
        if early is not None:
            self.best_validation_score_ = trainer.best_validation_score
        schedule = self.schedule_
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

    def _early_stopping(self, val):
        row = self.module_.memory_per_row("loss", n_samples=self.n_importance)
        cap = CPU_CHUNK_MIB if self.device_.type == "cpu" else None
        return EarlyStopping(
            val,
            seed=self._validation_seed,
            chunk=max(min(self.batch_size, val.shape[0]), chunk_rows(row, cap)),
            n_iter_no_change=self.n_iter_no_change,
            scores=self.validation_scores_,
            objective=self.objective,
            n_importance=self.n_importance,
        )

    def _validation_score(self, val):
        """Test hook: the early-stopping score of the fitted model on tensor ``val``."""
        return self._early_stopping(val).score(self.module_)

    def _calibrate_noise_variance(self, data):
        """Set ``noise_variance_`` to its maximum-likelihood value for the trained networks.

        The networks were trained with a fixed variance, which sets how much
        the KL term weighs against reconstruction (like β); ``score_samples``
        then measures them at their best variance.
        """
        # A perfect reconstruction (constant data) must not give a zero variance.
        self.noise_variance_ = self.module_.fit_noise_variance(
            data,
            seed=self._eval_seed,
            chunk=chunk_rows(self.module_.memory_per_row("squared_error")),
            floor=1e-4 * self._module_config["noise_variance"],
        )

    # ------------------------------------------------------------ inference
    def _module_for(self, dtype):
        """The module in the precision of the input (float64 for float64 data)."""
        return in_precision(self.module_, torch.float32 if dtype == np.float32 else torch.float64)

    def _validate(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _map_rows(self, fn, module, X, out_width):
        """Apply ``fn`` to row chunks of ``X`` without gradients; numpy out."""
        tdtype = torch.float64 if X.dtype == np.float64 else torch.float32
        chunk = chunk_rows(module.memory_per_row("map", n_out=out_width))
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                x = _to_tensor(X[start : start + chunk], tdtype, self.device_)
                out.append(fn(x).cpu().numpy())
        if not out:
            return np.empty((0, out_width), dtype=X.dtype)
        return np.concatenate(out).astype(X.dtype, copy=False)

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
        return self._map_rows(module.encode_mean, module, X, self._n_latent)

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
        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self._n_latent:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects "
                f"n_components={self._n_latent} latent features (the fitted model's width)."
            )
        module = self._module_for(Z.dtype)
        return self._map_rows(module.decode_mean, module, Z, self.n_features_in_)

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
        S = self.n_eval_samples
        if isinstance(S, bool) or not isinstance(S, Integral) or S < 1:
            raise ValueError(f"n_eval_samples must be a positive integer, got {S!r}.")
        module = self._module_for(X.dtype)  # the networks run in the input's precision
        tdtype = torch.float32 if X.dtype == np.float32 else torch.float64
        pair = module.memory_per_row("log_marginal", itemsize=X.dtype.itemsize)
        cap = CPU_CHUNK_MIB if self.device_.type == "cpu" else None
        s_chunk = min(S, max(1, chunk_rows(pair, cap) // 8))
        r_chunk = chunk_rows(pair * s_chunk, cap)
        out, bar = np.empty(X.shape[0]), None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=X.shape[0], desc="score_samples", unit="row")
        # A prior's frozen form (the VampPrior's components, computed once) is
        # held by this call alone: threads share the model, not their state.
        try:
            with torch.no_grad(), module.prior.frozen() as prior:
                for r0 in range(0, X.shape[0], r_chunk):
                    x = _to_tensor(X[r0 : r0 + r_chunk], tdtype, self.device_)
                    log_p = module.log_marginal(
                        x, S, seed=self._eval_seed, samples_per_chunk=s_chunk, prior=prior
                    )
                    out[r0 : r0 + x.shape[0]] = log_p.cpu().numpy()
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
        # The prior's networks run on chunks of rows that fit in working_memory
        # (800,000 rows at once peaked at 3.1 GB); the noise is drawn for all
        # rows first, so the draws do not depend on the chunks.
        with torch.no_grad():
            chunk = chunk_rows(module.memory_per_row("sample"))
            z = module.sample_latent(n_samples, gen, chunk=chunk)
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

        out = self._map_rows(stats, module, X.astype(np.float64), 2 * d + 2 * n_aux)
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
        """The estimator's state for pickle, joblib and ``skops.io`` (see :mod:`._persistence`)."""
        return _persistence.get_state(super().__getstate__())

    def __setstate__(self, state):
        # Loaded under the caller's torch.inference_mode, the weights would be
        # inference tensors that can never be trained again (warm start).
        with torch.inference_mode(False):
            super().__setstate__(_persistence.set_state(dict(state)))
