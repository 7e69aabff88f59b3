"""VHPEstimator: scikit-learn glue around the hierarchical-prior VAE.

Validation, resolved settings and public methods that delegate: the rules
in :mod:`._settings`, the training loop in :mod:`._training`, the estimates
on numpy rows in :mod:`._inference` (over the model's own, in
:class:`._torch.vae.VAE`) and the persistence in :mod:`._persistence`.
"""

import copy
import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch, check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _data, _inference, _persistence, _settings
from ._compat import fit_context as _fit_context
from ._compat import validate_parameter_constraints
from ._schedules import make_schedule
from ._settings import to_tensor as _to_tensor
from ._torch.factory import build_vae
from ._torch.vae import forget_precisions, in_precision
from ._training import (
    DivergenceWarning,
    EarlyStopping,
    ShuffledBatches,
    StreamedBatches,
    Trainer,
    global_random_state,
    make_adam,
)

__all__ = ["VHPEstimator", "DivergenceWarning"]


class VHPEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DensityMixin, BaseEstimator):
    """Variational auto-encoder with a learned hierarchical prior (VHP).

    Implements *Learning Hierarchical Priors in VAEs* (Klushyn et al., 2019):
    the prior is a continuous mixture ``p(z) = ∫ p(z|ζ) p(ζ) dζ``, and the
    KL term's weight ``β`` follows REWO (reconstruct first, then move toward
    the ELBO while the reconstruction error stays below ``κ²``). The paper's
    baselines are options: ``prior``, ``objective="iwae"``, ``schedule``.
    See :ref:`model` and :ref:`schedules`.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent code ``z`` (and of ``ζ``).
    prior : {"vhp", "standard", "vamp"}, default="vhp"
        The learned hierarchical prior, ``N(0, I)``, or the VampPrior
        (Tomczak & Welling, 2018): a mixture of the encoder's posteriors at
        ``n_pseudo_inputs`` learned pseudo-inputs (starting as random rows).
    objective : {"elbo", "iwae"}, default="elbo"
        Training objective. ``"elbo"``: the (β-weighted) ELBO, one sample of
        ``z`` per row. ``"iwae"``: the importance-weighted bound of Burda et
        al. (2016) with ``K = n_importance`` samples, over ``z`` (standard and
        Vamp priors: IWAE (L=1)) or ``(z, ζ)`` jointly (``"vhp"``: IWAE
        (L=2)); ``β`` tempers each importance weight, see
        :ref:`iwae_beta`. The paper's IWAE rows use ``schedule="constant"``.
    n_pseudo_inputs : int, default=500
        Number of pseudo-inputs of the VampPrior (``prior="vamp"``), capped at
        the number of training samples; ignored by the other priors.
    schedule : {"rewo", "geco", "warmup", "constant"}, default="rewo"
        How ``β`` evolves during training (see :mod:`sklearn_vhp._schedules`).
    kappa : float or "auto", default="auto"
        Constraint tolerance ``κ``: the constraint is ``C ≤ κ²`` with ``C``
        the mean per-element squared reconstruction error, so ``κ`` is an RMS
        error in data units. A number keeps ``κ`` fixed (the paper's way).
        ``"auto"`` follows the data: ``κ₀`` (0.05 for Gaussian, 0.2 for
        binary data, in units of the data's scale), relaxed to 1.5 times an
        error the model has reached when ``Ĉ_t`` stops falling in REWO's
        initial phase or the constraint holds ``β`` back in the main phase
        (see :ref:`defaults`). The value in force is ``kappa_``.
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
        Importance samples ``K``: of ``q(ζ|z)`` in the hierarchical prior's
        bound on ``log p(z)``, or of the IWAE bound (see ``objective``).
    n_eval_samples : int, default=1000
        Importance samples per row in :meth:`score_samples` (paper: 5000);
        read when ``score_samples`` runs.
    n_score_samples : int or "auto", default="auto"
        Importance samples per row in :meth:`score`, the score that
        ``GridSearchCV`` and ``cross_val_score`` use by default: a cheaper
        estimate of the same held-out log-likelihood for model selection.
        ``"auto"``: ``min(100, n_eval_samples)``, a tenth of the cost of
        :meth:`score_samples` by default and, in
        ``benchmarks/model_selection.py``, the same ranking of 9 digits
        candidates as 5000 samples, about 0.2 nats lower (see
        :ref:`scikit_learn`). Read when ``score`` runs.
    likelihood : {"auto", "bernoulli", "gaussian"}, default="auto"
        ``"auto"`` picks Bernoulli when every value is 0 or 1.
    noise_variance : float or "auto", default="auto"
        Variance of the Gaussian likelihood. A number fixes it, for training
        and for the fitted model. ``"auto"`` trains with 0.01 times the
        squared data scale and calibrates ``noise_variance_`` to the
        maximum-likelihood variance of the trained networks afterwards (see
        :ref:`defaults`). Ignored by the Bernoulli likelihood.
    decoder_variance : {"auto", "scalar", "feature", "amortized", "full", "full_trained"}, \
            default="auto"
        Noise model of the Gaussian likelihood (see :ref:`decoder_variance`).
        ``"scalar"``: one variance for all features and codes (as described
        under ``noise_variance``). ``"feature"``: one learned variance per
        feature, calibrated per feature after training when
        ``noise_variance="auto"``. ``"amortized"``: a variance per feature
        given the code, from a small network the package adds beside the
        decoder (a custom ``decoder`` still returns means only). ``"full"``:
        a Gaussian mixture of full-covariance noise around the decoder's
        mean (components with means of their own, each at one scale or as a
        scale mixture of five; 1 to 16 components, the scales and the
        covariances' shrinkage chosen by held-out residuals), fitted in
        closed form (EM) to the trained networks' residuals, as the scalar
        variance is calibrated: the codes are the scalar model's, the
        density describes correlated residuals whose size and shape vary
        from row to row (image patches: 195.5 against 83 nats; see
        :ref:`density_comparison`). ``"full_trained"``: the same
        mixture, refitted after every epoch of the main phase so that the
        networks train against it: a slightly better density (patches, 8
        components, before the components had means and were chosen on
        held-out rows: 190.8 against ``"full"``'s 188.1), codes that carry
        less (digits' 5-NN accuracy 0.61 against 0.91). Learned
        variances stay above 1e-4 times the training variance. ``"auto"``:
        ``"full"`` up to 128 features when ``noise_variance`` is ``"auto"``,
        else ``"scalar"``. The choice is ``decoder_variance_``. Ignored by
        the Bernoulli likelihood.
    architecture : {"mlp", "gated_mlp", "conv", "gated_conv", "paper_conv"}, \
            default="mlp"
        Network family of encoder and decoder (paper App. F; the prior's
        networks are MLPs): fully connected ``"mlp"``; ``"gated_mlp"``, fully
        connected with gated hidden layers ``a(h) * sigmoid(b(h))`` (the
        VampPrior paper's MLP; ``activation`` then applies to the prior's
        networks only); ``"conv"``, strided
        convolutions (32, 32, 64, 64 channels) mirrored in the decoder;
        ``"gated_conv"``, gated convolutions and gated dense layers (the
        VampPrior paper's MNIST network); ``"paper_conv"``, the paper's
        network for faces and chairs (App. F, Table 3: eight convolutions
        of 32 to 96 channels, 5 x 5 stride 2 alternating with 3 x 3, and
        one fully connected layer; the decoder its reverse). The last three
        need ``image_shape``; the dense layers of ``"conv"`` and ``"gated_conv"``
        follow ``hidden_layer_sizes``, those of ``"paper_conv"`` have
        ``hidden_layer_sizes[0]`` units (the paper: 256). Ignored for a
        network given as ``encoder`` or ``decoder``.
    image_shape : tuple of int or None, default=None
        ``(height, width)`` or ``(channels, height, width)`` of one image (a
        row of ``X`` flattened in C order) for the convolutional
        architectures; one entry may be ``-1`` (inferred, as in
        :func:`numpy.reshape`). Checked but ignored with ``"mlp"``. A
        custom ``encoder`` sees rows reshaped to ``(batch, *image_shape)``.
    encoder : torch.nn.Module, callable or None, default=None
        Your own encoder network in place of the built-in one of
        ``architecture`` (see :ref:`custom_networks`): a module mapping a
        float32 batch of rows, ``(batch, n_features)`` or ``(batch,
        *image_shape)``, to features ``(batch, ...)``; the package adds the
        Gaussian head (``encoder_variance``) and the linear shortcut the PCA
        start sets. A module is copied at ``fit`` (yours is never trained)
        and keeps its weights; a class or other callable is called with the
        arguments its signature names among ``n_features``,
        ``n_components`` and ``image_shape`` (bind others with
        :func:`functools.partial`) under a seed from ``random_state``.
        Checked at ``fit`` by one forward pass on two rows.
    decoder : torch.nn.Module, callable or None, default=None
        Your own decoder in place of the built-in one: maps a float32 batch
        of codes ``(batch, n_components)`` to ``(batch, n_features)`` (or
        ``(batch, *image_shape)``) means (Gaussian likelihood) or logits
        (Bernoulli likelihood). Copied or built as ``encoder``. ``init="pca"``
        calls its ``set_linear(weight, bias)`` if it has one; otherwise it
        keeps its own initialisation.
    hidden_layer_sizes : tuple of int or "auto", default="auto"
        Widths of the hidden layers of every built-in network (the prior's
        networks too, also with a custom ``encoder`` and ``decoder``). ``"auto"``: four
        layers of ``n_samples / 16`` units, within 32–256 (the paper's
        4 × 256 from 4,096 rows on; see :ref:`defaults`), and within 32–64
        on data of at most 128 features; the widths used are
        ``hidden_layer_sizes_``.
    activation : {"tanh", "relu", "elu", "silu"}, default="tanh"
        Hidden-layer activation.
    decoder_dropout : float in [0, 1), default=0.0
        Dropout rate after each fully connected hidden layer of the built-in
        decoder, during training only (scores, codes and reconstructions
        use the whole network). A regulariser for fits long enough to
        overfit: on binarized MNIST (``"gated_mlp"``, 50,000 rows) the gap
        between training and validation NLL grows to about 6 nats in 236
        epochs without it and to 4.5 in 214 epochs with 0.1 (see
        :ref:`decoder_dropout_notes`). Drawn from torch's
        global random state, seeded from ``random_state`` during ``fit``
        and restored afterwards (fits run concurrently in threads of one
        process share that state, and are then not reproducible). Not with
        a custom ``decoder`` (put :class:`torch.nn.Dropout` in your network
        instead).
    init : {"pca", "random"}, default="pca"
        ``"pca"`` starts the encoder mean as the whitened PCA projection (a
        linear shortcut beside the MLP, whose output starts at zero), as
        t-SNE and UMAP start from a spectral layout; ``"random"`` does not.
        It applies to a custom ``encoder`` too (through the package's head),
        and to a custom ``decoder`` that has ``set_linear``.
    encoder_variance : {"shared", "amortized"}, default="shared"
        Covariance of ``q(z|x)``: one learned diagonal variance for all
        inputs (``"shared"``, which makes the ELBO prefer an isometric
        latent layout, see :ref:`pendulum_defaults`) or the usual per-input
        variance (``"amortized"``, which can give higher likelihoods).
    batch_size : int or "auto", default="auto"
        Mini-batch size (capped at the number of samples). ``"auto"``: 64
        (the paper's), and on data of at most 128 features one row in 64 of
        the training rows, within 64 and 256 (fewer, larger steps for tabular
        data of tens of thousands of rows); the value used is
        ``batch_size_``.
    max_iter : int or "auto", default="auto"
        Number of epochs of each ``fit`` call. ``"auto"``: at least 25
        epochs and 4,000 iterations (Adam steps; with ``batch_size="auto"``
        as many rows as 4,000 batches of 64), at most 200 epochs (25 for
        10,240 rows and more; see :ref:`defaults` and
        :ref:`pendulum_defaults`), and over the last third of each ``fit``
        call's iterations the step size decays geometrically to a tenth of
        ``learning_rate_`` (the last iterate of a constant step size is as
        noisy as any). An integer keeps the step size constant.
    learning_rate : float, default=1e-3
        Adam step size. After a non-finite loss, ``fit`` restores the last
        completed epoch, halves the step size (``learning_rate_``), warns
        with :class:`DivergenceWarning` and repeats the epoch; after 3 failed
        recoveries in a row it raises ``FloatingPointError``.
    early_stopping : bool, default=False
        As in :class:`~sklearn.neural_network.MLPRegressor`: hold out
        ``validation_fraction`` of the rows, score the negative ELBO (``β =
        1``; the IWAE bound with ``objective="iwae"``) on them after each
        epoch, stop after ``n_iter_no_change`` epochs without improvement and
        restore the best epoch (weights, optimiser, schedule).
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
        ``> 0``: a progress bar on :meth:`fit` and :meth:`partial_fit`
        (phase, ``β``, ``Ĉ_t``); ``>= 2``: also a line per epoch (loss,
        ``Ĉ_t``, ``β``, phase, step size, validation) and a progress bar on
        :meth:`score_samples` and :meth:`score`, which a grid search calls
        for every fold.
    warm_start : bool, default=False
        Continue training the fitted model (and its schedule, ``history_``
        and step size) on ``fit``; a fit stopped by Ctrl-C keeps its last
        completed epoch, so a warm start continues from there. A change of a
        parameter the fitted model fixes (networks, likelihood, device,
        schedule and its settings) is refused with ``ValueError``. A ``fit``
        that fails before training leaves the estimator as it was.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained :class:`~sklearn_vhp._torch.VAE`.
    schedule_ : object
        The β schedule, with its state (``beta``, ``constraint_avg``, ``phase``).
    beta_ : float
        ``β`` at the end of training.
    kappa_ : float
        The tolerance ``κ`` in force at the end of training (see ``kappa``).
    batch_size_ : int
        The mini-batch size of the last ``fit`` or ``partial_fit`` call
        (``"auto"`` resolved).
    hidden_layer_sizes_ : tuple of int
        The hidden widths used (``"auto"`` resolved).
    noise_variance_ : float or None
        The fitted Gaussian likelihood's variance; with learned variances
        (``decoder_variance_`` ``"feature"`` or ``"amortized"``) their mean
        over the features and the training rows' codes, with ``"full"`` or
        ``"full_trained"`` the noise mixture's mean variance per feature: a
        summary; ``None`` for Bernoulli.
    decoder_variance_ : str or None
        The noise model used (``"auto"`` resolved): ``"scalar"``,
        ``"feature"``, ``"amortized"``, ``"full"`` or ``"full_trained"``;
        ``None`` for Bernoulli.
    likelihood_ : str
        The likelihood used (``"auto"`` resolved).
    history_ : dict of ndarray
        Per training iteration of the completed epochs: ``loss``,
        ``reconstruction`` (``-log p(x|z)`` per row), ``constraint`` (batch
        ``C``), ``constraint_avg`` (``Ĉ_t``), ``kl``, ``beta``, ``phase``,
        ``epoch``, ``lr`` (with IWAE, averages over the ``K`` samples).
    n_iter_ : int
        Epochs completed (over all calls with ``warm_start``); each
        :meth:`partial_fit` call counts as one.
    learning_rate_ : float
        Adam's step size: ``learning_rate``, halved at each divergence (before
        the decay of ``max_iter="auto"``; ``history_["lr"]`` has the step
        size of each iteration).
    divergences_ : list of dict
        One entry per recovery from a non-finite loss: ``epoch``,
        ``iteration``, ``loss`` (NaN for non-finite parameters), ``lr``.
    validation_scores_ : list of float or None
        Validation ELBO per row after each epoch (higher is better); ``None``
        unless ``early_stopping=True``.
    best_validation_score_ : float or None
        The best validation score, that of the weights kept.
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

    #: Test hook: iterations between host syncs in ``fit`` (``None``: the device's
    #: default). Not a parameter: tests set it to check that syncs change nothing.
    _sync_every = None
    #: Test hook: rows per block of a streamed ``fit`` (``None``: from the
    #: memory budget). Tests set it to the number of rows to stream one block.
    _stream_block_rows = None

    _parameter_constraints = _settings.PARAMETER_CONSTRAINTS

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
        n_score_samples="auto",
        likelihood="auto",
        noise_variance="auto",
        decoder_variance="auto",
        architecture="mlp",
        image_shape=None,
        encoder=None,
        decoder=None,
        hidden_layer_sizes="auto",
        activation="tanh",
        decoder_dropout=0.0,
        init="pca",
        encoder_variance="shared",
        batch_size="auto",
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
        self.n_score_samples = n_score_samples
        self.likelihood = likelihood
        self.noise_variance = noise_variance
        self.decoder_variance = decoder_variance
        self.architecture = architecture
        self.image_shape = image_shape
        self.encoder = encoder
        self.decoder = decoder
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.decoder_dropout = decoder_dropout
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
    @_settings.limit_threads
    def fit(self, X, y=None):
        """Train the model on ``X``.

        ``X`` goes to the device as one float32 tensor, unless it is a
        numeric numpy array (a read-only ``np.memmap`` or
        ``np.load(..., mmap_mode="r")`` included) whose float32 copy is
        larger than scikit-learn's ``working_memory`` (``with
        sklearn.config_context(working_memory=64)``: at most 64 MiB of it
        on the device at once). Such an ``X`` is streamed from host memory
        and never read whole: a random order of contiguous blocks, rows
        shuffled within a buffer of several blocks (a quarter of the budget),
        each converted to float32 (uint8 or bool data block by block) while
        the previous buffer trains. It is checked in one sequential pass
        (finite values, range); the automatic settings, the PCA start, the
        noise-variance calibration and the prior's standardisation use a
        random subsample of at most 10,000 rows, and early stopping holds
        out ``validation_fraction`` of the rows but at most 10,000. The
        batch order differs from the in-memory one, so a streamed fit is not
        bit-equal to an in-memory fit at the same ``random_state``; it sees
        each row once per epoch (but fewer than ``batch_size`` rows of the
        last buffer). See :ref:`architecture`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (binary data get the Bernoulli likelihood).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VHPEstimator
            The fitted estimator.
        """
        # Training needs autograd whatever the caller's mode (restored on exit).
        with torch.inference_mode(False), torch.enable_grad():
            self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @_settings.limit_threads
    def partial_fit(self, X, y=None):
        """Train the model on one chunk of data: one pass of Adam over ``X``.

        As scikit-learn's ``MLPRegressor.partial_fit``: the first call
        initialises the model from its chunk (resolved settings such as
        ``likelihood="auto"``, ``kappa="auto"`` and the hidden widths, the
        PCA start, the VampPrior's pseudo-inputs), each call makes one epoch
        over its chunk (shuffled mini-batches, the ragged last one dropped),
        and the optimiser, the β schedule (REWO's ``β``, ``Ĉ_t`` and phase),
        the step size and ``history_`` carry over from call to call, as in a
        ``fit`` with ``warm_start=True`` and ``max_iter=1`` on each chunk.
        ``n_iter_`` grows by one per call. ``max_iter`` and ``warm_start``
        are not used; the plateau window of ``kappa="auto"`` is the one a
        ``fit`` on the first chunk would use. A chunk larger than the memory
        budget is streamed as in :meth:`fit`. After a fitted ``fit``, a call
        continues that model. Parameters the fitted model fixes (see
        ``warm_start``) may not change, and a chunk with another number of
        features is refused with ``ValueError``; a call that fails before
        training leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One chunk of training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : VHPEstimator
            The estimator, trained on one more chunk.

        Raises
        ------
        ValueError
            With ``early_stopping=True``: a validation score over chunks would
            compare different data (as in scikit-learn's MLP).
        """
        # scikit-learn's _fit_context validates partial_fit's parameters on the
        # first call only (and runs it with validation switched off); the
        # settings may change between calls (set_params), so they are checked
        # on every call, before anything changes.
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=self.__class__.__name__,
        )
        if self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: each call sees "
                "another chunk, so there is no fixed validation set. Hold out data "
                "and score it with score(), or use fit."
            )
        with torch.inference_mode(False), torch.enable_grad():
            self._fit(X, incremental=True)
        return self

    def _fit(self, X, incremental=False):
        # Set-up is all or nothing: a failure or Ctrl-C before training leaves
        # the estimator as it was (the previous model, or unfitted).
        saved = dict(self.__dict__)
        if "_seed_stream" in saved:  # advanced in place by the set-up
            saved["_seed_stream"] = copy.deepcopy(saved["_seed_stream"])
        try:
            source, val, calibration_rows = self._set_up_fit(X, incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        forget_precisions(self.module_)
        epochs = 1 if incremental else _settings.epochs(self, source.n_samples)
        decay = None
        if not incremental:
            decay = _settings.step_size_decay(self, epochs, source.steps_per_epoch)
        try:
            self._train(
                source,
                epochs,
                val,
                decay,
                warn=not incremental,
                resume=(
                    "Call partial_fit again to continue."
                    if incremental
                    else "Call fit with warm_start=True to continue."
                ),
            )
        finally:
            # Also after a FloatingPointError: the model kept (the last finite
            # state) gets its own variance, not the training one.
            if self.decoder_variance_ == "feature" and self.noise_variance == "auto":
                _inference.calibrated_feature_variances(
                    self.module_, calibration_rows, self._eval_seed
                )
            if self.decoder_variance_ in ("full", "full_trained"):
                self.noise_variance_ = _inference.fitted_noise_mixture(
                    self.module_, calibration_rows, self._eval_seed
                )
                # The numbers chosen: what a saved model is rebuilt with (one
                # scale is what older configurations mean).
                noise = self.module_.likelihood
                self._module_config["noise_components"] = noise.n_components
                self._module_config.pop("noise_scales", None)
                if noise.n_scales > 1:
                    self._module_config["noise_scales"] = noise.n_scales
            elif self.decoder_variance_ not in (None, "scalar"):
                self.noise_variance_ = _inference.mean_decoder_variance(
                    self.module_, calibration_rows, self._eval_seed
                )
            elif self.likelihood_ == "gaussian" and self.noise_variance == "auto":
                self.noise_variance_ = _inference.calibrated_noise_variance(
                    self.module_,
                    calibration_rows,
                    self._eval_seed,
                    self._module_config["noise_variance"],
                )
            forget_precisions(self.module_)

    def _set_up_fit(self, X, incremental=False):
        """Validate ``X`` and the settings, then (re)initialise: ``fit`` up to training.

        Returns the batch source, the validation rows (a tensor or ``None``)
        and the rows the noise variance is calibrated on (a tensor, or on a
        CPU the training rows as they are).
        """
        continuing = hasattr(self, "module_") and (self.warm_start or incremental)
        if continuing:
            _settings.check_warm_start(self)
        streamed = _data.streams(X)
        if streamed:  # X stays where it is; the settings follow a subsample
            X, sample = self._validate_streamed(X, continuing)
        else:  # finite values are checked by the scan below
            X = sample = validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                reset=not continuing,
                ensure_all_finite=False,
            )
        # One pass over X: finite values, bounds and (likelihood="auto") binary data.
        scan = _data.scan_rows(X, binary=not continuing and self.likelihood == "auto")
        hidden = _settings.hidden_layer_sizes(self, X.shape[0])
        _settings.check_fit_input(self, sample, continuing, scan)
        if not continuing:
            rng = check_random_state(self.random_state)
            if self.early_stopping:
                self._validation_seed = int(rng.randint(2**31 - 1))
        else:
            if self.early_stopping and not hasattr(self, "_validation_seed"):
                self._validation_seed = int(self._seed_stream.randint(2**31 - 1))
            if not self.early_stopping:
                # Scores of earlier fits would describe another training run.
                self.validation_scores_ = None
                self.best_validation_score_ = None
        if streamed:
            held_out = None
            if self.early_stopping:
                held_out = _data.held_out_rows(self, X.shape[0], self._validation_seed)
            X_train, X_val = sample, None if held_out is None else X[held_out]
            n_train = X.shape[0] - (0 if held_out is None else held_out.shape[0])
        else:
            X_train, X_val = self._split_validation(X)
            n_train = None
            if X_val is not None:  # the scan describes X, not X_train
                scan = None
        self.batch_size_ = _settings.batch_size(
            self, X_train.shape[0] if n_train is None else n_train
        )
        if not continuing:
            self._initialize(X_train, hidden, rng, n_train, scan)
        val = None if X_val is None else _to_tensor(X_val, torch.float32, self.device_)
        generator = torch.Generator(device=self.device_).manual_seed(
            int(self._seed_stream.randint(2**31 - 1))
        )
        if getattr(self, "_learning_rate_param", None) != self.learning_rate:
            # learning_rate changed before a warm start.
            self._learning_rate_param = self.learning_rate
            self.learning_rate_ = float(self.learning_rate)
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
        if streamed:  # the rows on the device are the subsample's
            rows = _to_tensor(sample, torch.float32, self.device_)
            block_rows, buffer_blocks = _data.stream_blocks(X.shape[1], self.batch_size_)
            source = StreamedBatches(
                X,
                self.batch_size_,
                generator,
                block_rows=self._stream_block_rows or block_rows,
                buffer_blocks=buffer_blocks,
                reference=rows[:: max(1, rows.shape[0] // 4096)],
                skip=held_out,
            )
        elif self.device_.type == "cpu":  # batches gathered from X itself: no copy of X
            rows = np.ascontiguousarray(X_train)
            source = ShuffledBatches(rows, self.batch_size_, generator)
        else:  # an accelerator gets X once
            rows = _to_tensor(X_train, torch.float32, self.device_)
            source = ShuffledBatches(rows, self.batch_size_, generator)
        return source, val, rows

    def _validate_streamed(self, X, continuing):
        """Check a streamed ``X`` without reading it into memory.

        Returns ``X`` (as given) and a bounded float64 subsample of its rows;
        sets ``n_features_in_`` (or checks it). Its values are checked by
        :func:`._data.scan_rows` in one pass.
        """
        # Two rows go through scikit-learn's validation: dimensions, dtype,
        # n_features_in_ (set, or checked when continuing), feature names.
        validate_data(self, X[:2], dtype=[np.float64, np.float32], reset=not continuing)
        stream = self._seed_stream if continuing else check_random_state(self.random_state)
        sample = _data.subsample_rows(X, [int(stream.randint(2**31 - 1)), 1])
        return X, sample

    def _split_validation(self, X):
        return _data.split_validation(self, X, getattr(self, "_validation_seed", None))

    def _initialize(self, X, hidden, rng, n_samples=None, scan=None):
        """Set all first-fit state: resolved settings, module, optimiser, schedule.

        ``X``: the training rows, or a subsample of the ``n_samples`` rows
        of a streamed ``fit``; ``scan``: the training data's
        :func:`._data.scan_rows`, if known.
        """
        resolved = _settings.resolve(self, X, hidden, n_samples, scan)
        self.device_, self.likelihood_ = resolved.device, resolved.likelihood
        self.decoder_variance_ = resolved.decoder_variance
        self.kappa_, self.hidden_layer_sizes_ = resolved.kappa, resolved.hidden_layer_sizes
        gaussian = self.likelihood_ == "gaussian"
        self.noise_variance_ = resolved.noise_variance if gaussian else None
        self._train_noise_variance = resolved.noise_variance  # lowered when auto κ is raised
        self._module_config = resolved.module_config
        self.schedule_ = make_schedule(self.schedule, **resolved.schedule_args)
        generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
        if self.encoder is not None or self.decoder is not None:
            # The user's networks are built (and their lazy layers drawn)
            # under a global torch seed from random_state; it takes nothing
            # from rng, so the rest of the fit draws what it would with the
            # built-in networks (the PCA rows, the evaluation noise...).
            self._module_config["network_seed"] = generator.initial_seed() + 1
        module = build_vae(**self._module_config, generator=generator)
        if self.init == "pca":
            module.init_from_projections(
                *_settings.pca_projections(X, self.n_components, self.likelihood_, rng)
            )
        if self.prior == "vamp":  # pseudo-inputs start as distinct random training rows
            rows = rng.choice(len(X), size=self._module_config["n_pseudo_inputs"], replace=False)
            module.prior.set_pseudo_inputs(np.asarray(X[rows], dtype=np.float32))
        self.module_ = module.to(self.device_)
        self._optimizer = make_adam(self.module_, self.learning_rate)
        self.history_, self.n_iter_, self._prior_scaled = {}, 0, False
        self._eval_seed = int(rng.randint(2**31 - 1))
        self._structure = _settings.structural_params(self)
        # Each fit draws its noise seed from this stream: a warm start continues
        # it (replaying the first fit's noise biased the gradients).
        self._seed_stream = np.random.RandomState(rng.randint(2**31 - 1))
        self.learning_rate_ = float(self.learning_rate)
        self._learning_rate_param = self.learning_rate
        self.divergences_ = []
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = None

    def _train(self, source, epochs, val, decay, warn, resume):
        """Hand the model and a batch source to the training engine; read its state back.

        ``decay``: the step size's decay over the run (:func:`._settings.step_size_decay`).
        """
        module = self.module_
        trainer = Trainer(
            module,
            self._optimizer,
            self.schedule_,
            objective=self.objective,
            n_importance=self.n_importance,
            learning_rate=self.learning_rate_,
            n_iter=self.n_iter_,
            sync_every=self._sync_every,
            train_noise_variance=self._train_noise_variance,
            lower_variance_with_kappa=self.likelihood_ == "gaussian"
            and self.noise_variance == "auto",
            prior_scaled=self._prior_scaled,
            divergences=self.divergences_,
            verbose=self.verbose,
            resume=resume,
            step_decay=decay,
        )
        early = None if val is None else self._early_stopping(val)
        # Dropout (the decoder's, or in a user's network) draws from torch's
        # global random state: seeded from the fit's own stream, then restored.
        draws = self._user_networks or self._module_config.get("decoder_dropout")
        seed = source.generator.initial_seed() + 1 if draws else None
        try:
            with global_random_state(seed, self.device_):
                trainer.run(source, epochs, early)
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
        if warn and schedule.phase == "initial" and schedule.constraint_avg is not None:
            warnings.warn(
                f"Training ended in REWO's initial phase: the running reconstruction "
                f"error Ĉ = {schedule.constraint_avg:.3g} never fell below "
                f"κ² = {self.kappa_**2:.3g}, so the prior was not trained. Increase "
                "max_iter or kappa.",
                ConvergenceWarning,
                stacklevel=2,
            )

    def _early_stopping(self, val):
        rows = min(self.batch_size_, val.shape[0])
        return EarlyStopping(
            val,
            seed=self._validation_seed,
            chunk=_inference.loss_chunk(self.module_, self.n_importance, rows, self.device_),
            n_iter_no_change=self.n_iter_no_change,
            scores=self.validation_scores_,
            objective=self.objective,
            n_importance=self.n_importance,
        )

    def _validation_score(self, X):
        """Test hook: the early-stopping score of the fitted model on ``X``'s validation rows."""
        _, X_val = self._split_validation(validate_data(self, X, reset=False))
        val = _to_tensor(X_val, torch.float32, self.device_)
        return self._early_stopping(val).score(self.module_)

    # ------------------------------------------------------------ inference
    def _module_for(self, dtype):
        """The module in the precision of the input (float64 for float64 data)."""
        return in_precision(self.module_, torch.float32 if dtype == np.float32 else torch.float64)

    def _validate(self, X):  # a fitted model's input
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    @_settings.limit_threads
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
        return _inference.map_rows(module.encode_mean, module, X, self._n_latent, self.device_)

    @_settings.limit_threads
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
        m = self._module_for(Z.dtype)
        return _inference.map_rows(m.decode_mean, m, Z, self.n_features_in_, self.device_)

    @_settings.limit_threads
    def score_samples(self, X):
        """Importance-sampled log-likelihood ``log p(x)`` of each row, in nats.

        ``log p(x) ≈ logsumexp_s log w_s - log S`` with ``S = n_eval_samples``
        samples from the joint proposal ``q(z|x) q(ζ|z)`` (``q(z|x)`` for the
        standard prior): a stochastic lower bound that tightens as ``S`` grows
        (see :ref:`model`). Every row sees the same noise, so a row's value
        does not depend on the other rows and repeated calls agree (to the
        rounding of float32 matrix products, whose kernels change with the
        number of rows scored together: within ``1e-5 (|log p| +
        n_features)`` nats, see :ref:`out_of_core`). The
        networks run in the precision of ``X`` (float32 is about twice as
        fast on a CPU, within ~1e-4 nats); the sum over samples is
        accumulated in float64. Rows and samples are chunked to fit
        scikit-learn's ``working_memory`` (at most 16 MiB on a CPU); with
        ``verbose >= 2`` a progress bar counts the rows.

        A row outside the Bernoulli likelihood's support (a value outside
        [0, 1]) gets ``-inf``, with a ``UserWarning`` that counts such rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``-inf`` for rows outside the likelihood's support.
        """
        X = self._validate(X)
        _settings.check_positive_int("n_eval_samples", self.n_eval_samples)
        return self._log_marginal(X, self.n_eval_samples)

    def _log_marginal(self, X, n_samples):
        """``score_samples`` of validated rows with ``n_samples`` importance samples each."""
        outside = _settings.outside_support(X, self.likelihood_)
        if outside is None:
            return self._score_rows(X, n_samples)
        out = np.full(X.shape[0], -np.inf)
        out[~outside] = self._score_rows(X[~outside], n_samples)
        return out

    def _score_rows(self, X, n_samples):
        """Log-likelihoods of validated rows inside the likelihood's support."""
        return _inference.log_marginal_rows(
            self._module_for(X.dtype),  # the networks run in the input's precision
            X,
            n_samples,
            seed=self._eval_seed,
            device=self.device_,
            # Scoring runs once per fold in a grid search: bars from verbose=2.
            verbose=self.verbose >= 2,
        )

    @_settings.limit_threads
    def score(self, X, y=None):
        """Mean log-likelihood of ``X``: the model-selection score.

        The mean of :meth:`score_samples` computed with ``n_score_samples``
        importance samples per row instead of ``n_eval_samples``: by default
        (``"auto"``) 100, a tenth of the cost. The estimate is a little lower (the bound is looser
        with fewer samples) and noisier, but ranks models as 5000 samples do
        in ``benchmarks/model_selection.py``; for a reported likelihood, use
        ``score_samples`` with ``n_eval_samples=5000`` (the paper's). As in
        ``score_samples``, float32 rows score about twice as fast as float64
        rows (``X.astype(np.float32)``), within ~1e-4 nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        float
            Mean estimated ``log p(x)`` in nats (higher is better, so
            ``GridSearchCV`` picks the best held-out likelihood).
        """
        X = self._validate(X)
        return float(np.mean(self._log_marginal(X, _settings.score_samples_count(self))))

    @_settings.limit_threads
    def sample_latent(self, n_samples=1, random_state=None):
        """Draw latent codes from the learned prior.

        ``ζ ~ N(0, I)``, ``z ~ p(z|ζ)`` (hierarchical prior); ``z ~ N(0, I)``
        (standard); ``z ~ q(z|u_k)`` at a uniformly chosen pseudo-input (Vamp).

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
        _settings.check_positive_int("n_samples", n_samples)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        gen = torch.Generator(device=self.device_).manual_seed(int(rng.randint(2**31 - 1)))
        return _inference.sample_latent(self._module_for(np.float64), n_samples, gen)

    @_settings.limit_threads
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

    @_settings.limit_threads
    def active_units(self, X, threshold=0.01):
        """Active latent units and per-dimension KL (paper App. D).

        A unit ``u`` is active when Burda et al.'s (2016) activity
        ``A_u = Cov_x(E_{q(u|x)}[u])``, the variance over the rows of ``X``
        of its posterior mean, exceeds ``threshold``; for ``ζ``
        (hierarchical prior only) the posterior mean is that of ``q(ζ|z)`` at
        ``z = E[z|x]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data over which the activity is measured (e.g. a held-out set).
        threshold : float, default=0.01
            Activity above which a unit counts as active (Burda et al.: 0.01).

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``z_activity`` (``A_u`` per dimension of ``z``), ``z_active``
            (``z_activity > threshold``), ``n_active_z`` (their number) and
            ``z_kl``, the mean over ``X`` of ``KL(q(z_j|x) || N(0, 1))`` per
            dimension (only for ``prior="standard"``, else ``None``: the other
            priors do not factorise over dimensions). ``zeta_activity``,
            ``zeta_active``, ``n_active_zeta`` and ``zeta_kl`` (the KL of
            ``q(ζ_j|z)`` to ``p(ζ) = N(0, I)`` at ``z = E[z|x]``): the same
            for ``ζ``, ``None`` unless ``prior="vhp"``.
        """
        if not isinstance(threshold, Real) or threshold < 0:
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}.")
        X = self._validate(X)
        if X.shape[0] < 2:
            raise ValueError("active_units needs at least 2 samples to measure a variance.")
        result = _inference.active_units(
            self._module_for(np.float64),
            X,
            self._n_latent,
            threshold,
            self.device_,
            factorised_kl=self._module_config["prior"] == "standard",
        )
        return Bunch(**result)

    # ----------------------------------------------------------- sklearn bits
    @property
    def _n_features_out(self):
        # NotFittedError is an AttributeError: get_feature_names_out's
        # check_is_fitted(self, "_n_features_out") then fails as it should.
        check_is_fitted(self)
        return self._n_latent

    @property
    def _user_networks(self):
        """Whether the fitted model has a user's encoder or decoder."""
        config = self._module_config
        return config.get("encoder") is not None or config.get("decoder") is not None

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
