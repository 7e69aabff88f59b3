"""β schedules: plain Python objects, no torch.

Every schedule is told the batch constraint value ``C`` after each training
iteration (:meth:`BetaSchedule.step`) and exposes

``beta``            the weight of the KL term for the next iteration,
``constraint_avg``  the running average ``Ĉ_t = (1-α) C + α Ĉ_{t-1}``,
``phase``           ``"initial"`` or ``"main"``,
``train_prior``     whether the prior's networks are trained now.

The constraint ``C`` is the mean per-element squared error between ``x`` and
the decoder mean, so ``κ`` is an RMS reconstruction tolerance: ``C ≤ κ²``.
"""

import math

#: Bounds of ``β`` for REWO (below; above it is 1) and GECO (both). Without a
#: floor a large violation ``ν (Ĉ_t - κ²)`` underflows ``β`` to exactly 0,
#: where the multiplicative update can never move it again; without the
#: clipping ``math.exp`` overflows when ``κ²`` is large (data far from [0, 1]).
BETA_MIN = 1e-30  # still a normal float32
BETA_MAX = 1e10


class BetaSchedule:
    """Base class: keeps the running average of the constraint."""

    def __init__(self, *, alpha=0.99):
        self.alpha = alpha
        self.constraint_avg = None
        self.phase = "main"
        self.beta = 1.0

    @property
    def train_prior(self):
        return self.phase == "main"

    def _update_average(self, constraint):
        if self.constraint_avg is None:
            self.constraint_avg = float(constraint)
        else:
            self.constraint_avg = (1.0 - self.alpha) * constraint + self.alpha * self.constraint_avg
        return self.constraint_avg

    def step(self, constraint):
        """Record one iteration's constraint value and update ``beta``."""
        self._update_average(constraint)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class ConstantSchedule(BetaSchedule):
    """``β`` fixed (``β = 1`` is the ELBO); the constraint is only recorded."""

    def __init__(self, beta=1.0, *, alpha=0.99):
        super().__init__(alpha=alpha)
        self.beta = float(beta)


def rewo_f(beta, delta, tau):
    """``f_β(β, δ; τ) = (1 - H(δ)) tanh(τ (β - 1)) - H(δ)`` (paper Eq. 13).

    ``H`` is the Heaviside step. When the constraint is violated (δ > 0),
    ``f = -1`` and ``β`` falls; when it holds (δ ≤ 0), ``f = tanh(τ(β-1)) ≤ 0``
    which, multiplied by ``δ ≤ 0``, raises ``β`` ever more slowly toward 1.
    """
    if delta > 0:
        return -1.0
    return math.tanh(tau * (beta - 1.0))


class REWOSchedule(BetaSchedule):
    """Reconstruction-error-based weighting (paper Alg. 1, Eq. 12–13).

    Initial phase: ``β = beta_init`` and only encoder and decoder are trained,
    until the running average ``Ĉ_t`` first drops below ``κ²``. The switch is
    permanent. Main phase: all networks are trained and after each iteration::

        β ← β · exp(ν · f_β(β, Ĉ_t - κ²; τ) · (Ĉ_t - κ²))

    so ``β`` falls while the constraint is violated and rises toward 1 while
    it holds; it never exceeds 1 and never falls below ``BETA_MIN``.

    With ``plateau_window`` (the estimator's ``kappa="auto"``), ``κ`` follows
    what the model can reach, checked every ``plateau_window`` iterations:

    * the initial phase also ends when ``Ĉ_t`` stops falling — less than
      ``plateau_tol`` (relative) below its value one window earlier — and
      then ``κ²`` becomes ``plateau_margin · Ĉ_t``, a tolerance the model has
      shown it can meet;
    * in the main phase, when the constraint holds ``β`` back — ``β`` is below
      1 and less than ``plateau_tol`` (relative) above its value one window
      earlier, and ``Ĉ_t`` exceeded ``κ²`` during the window — ``κ²`` is
      raised to ``plateau_margin`` times the window's largest ``Ĉ_t``, so that
      ``β`` ends at 1.

    ``kappa`` holds the value in force.
    """

    def __init__(
        self,
        kappa,
        *,
        nu=5.0,
        tau=3.0,
        alpha=0.99,
        beta_init=1e-3,
        plateau_window=None,
        plateau_tol=0.1,
        plateau_margin=1.5,
    ):
        super().__init__(alpha=alpha)
        self.kappa = kappa
        self.nu = nu
        self.tau = tau
        self.beta_init = beta_init
        self.beta = float(beta_init)
        self.phase = "initial"
        self.plateau_window = plateau_window
        self.plateau_tol = plateau_tol
        self.plateau_margin = plateau_margin
        self.t = 0
        self.plateau_ref = None  # Ĉ_t (initial phase) or β (main) a window ago
        self.window_max = None  # main phase: the largest Ĉ_t of the window

    def _window_end(self, value):
        """At the end of a window: the value one window earlier (else ``None``)."""
        if self.plateau_window is None:
            return None
        self.t += 1
        if self.t % self.plateau_window:
            return None
        ref, self.plateau_ref = self.plateau_ref, value
        return ref

    def _relax(self, c_hat):
        self.kappa = math.sqrt(max(self.kappa**2, self.plateau_margin * c_hat))

    def step(self, constraint):
        c_hat = self._update_average(constraint)
        delta = c_hat - self.kappa**2
        if self.phase == "initial":
            ref = self._window_end(c_hat)
            if delta < 0:
                self.phase = "main"
            elif ref is not None and c_hat > (1.0 - self.plateau_tol) * ref:
                self._relax(c_hat)
                self.phase = "main"
            if self.phase == "main":
                self.plateau_ref = None  # the main phase compares β
            return
        if self.plateau_window is not None:
            self.window_max = max(c_hat, self.window_max or c_hat)
            ref = self._window_end(self.beta)
            if self.t % self.plateau_window == 0:  # a window ended
                held_back = ref is not None and self.beta < min(1.0, (1 + self.plateau_tol) * ref)
                if held_back and self.window_max > self.kappa**2:
                    self._relax(self.window_max)
                    delta = c_hat - self.kappa**2
                self.window_max = None
        step = self.nu * rewo_f(self.beta, delta, self.tau) * delta  # log β increment
        if step >= -math.log(self.beta):
            self.beta = 1.0
        else:
            self.beta = min(1.0, max(BETA_MIN, self.beta * math.exp(step)))


class GECOSchedule(BetaSchedule):
    """GECO (Rezende & Viola 2018; paper Eq. 5) in its ``β = 1/λ`` form.

    ``λ ← λ · exp(ν (Ĉ_t - κ²))``, i.e. ``β ← β · exp(-ν (Ĉ_t - κ²))``: the
    Lagrange multiplier grows while the constraint is violated. Unlike REWO,
    ``β`` is not capped at 1 and all networks are trained from the start;
    it is kept in ``[BETA_MIN, BETA_MAX]`` so that ``λ`` stays finite.
    """

    def __init__(self, kappa, *, nu=5.0, alpha=0.99, beta_init=1.0):
        super().__init__(alpha=alpha)
        self.kappa = kappa
        self.nu = nu
        self.beta_init = beta_init
        self.beta = float(beta_init)

    def step(self, constraint):
        c_hat = self._update_average(constraint)
        step = -self.nu * (c_hat - self.kappa**2)  # log β increment
        log_beta = math.log(self.beta)
        step = min(max(step, math.log(BETA_MIN) - log_beta), math.log(BETA_MAX) - log_beta)
        self.beta *= math.exp(step)


class WarmupSchedule(BetaSchedule):
    """Linear KL warm-up: ``β`` rises from ``beta_init`` to 1 over ``n_steps``."""

    def __init__(self, n_steps, *, alpha=0.99, beta_init=0.0):
        super().__init__(alpha=alpha)
        self.n_steps = max(1, int(n_steps))
        self.beta_init = beta_init
        self.t = 0
        self.beta = float(beta_init)

    def step(self, constraint):
        self._update_average(constraint)
        self.t += 1
        frac = min(1.0, self.t / self.n_steps)
        self.beta = self.beta_init + (1.0 - self.beta_init) * frac


class StepSizeDecay:
    """The step size's factor along one run of ``n_steps`` iterations (a plain object).

    :meth:`factor` is 1 for the first ``1 - fraction`` of the run, then falls
    geometrically to ``final`` at its last iteration: Adam's step size times
    it is the one used at each iteration. A constant step size leaves the
    last iterate as noisy as any: on the pendulum (issue 27) the held-out
    angle error of successive epochs at ``β = 1`` varied between 0.008 and
    0.012 rad, and the fit ended wherever that noise left it.
    """

    def __init__(self, n_steps, *, fraction=1.0 / 3.0, final=0.1):
        self.n_steps = max(1, int(n_steps))
        self.fraction = float(fraction)
        self.final = float(final)

    def factor(self, t):
        """The factor at iteration ``t`` (0-based) of the run."""
        start = (1.0 - self.fraction) * self.n_steps
        if t <= start:
            return 1.0
        u = min(1.0, (t - start) / max(1.0, self.n_steps - start))
        return self.final**u

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


#: ``β`` at the start, by schedule, when ``beta_init`` is not given.
DEFAULT_BETA_INIT = {"rewo": 1e-3, "geco": 1.0, "warmup": 0.0, "constant": 1.0}


def check_beta_init(name, beta_init):
    """Refuse a ``beta_init`` the schedule ``name`` cannot start from."""
    if beta_init is None:
        return
    if name == "rewo" and not 0 < beta_init <= 1:
        raise ValueError(
            f"schedule='rewo' needs 0 < beta_init <= 1 (β stays in (0, 1]), got "
            f"beta_init={beta_init!r}."
        )
    if name == "geco" and beta_init <= 0:
        raise ValueError(
            "schedule='geco' needs beta_init > 0 (β = 1/λ for a Lagrange "
            f"multiplier λ), got beta_init={beta_init!r}."
        )


def make_schedule(name, *, kappa, nu, tau, alpha, beta_init=None, warmup_steps=0, plateau=None):
    """The schedule ``name`` (``"rewo"``, ``"geco"``, ``"warmup"``, ``"constant"``).

    Each schedule takes the arguments it uses: ``kappa`` (REWO, GECO), ``nu``
    (REWO, GECO), ``tau`` (REWO), ``warmup_steps`` (warm-up), ``plateau``
    (REWO's plateau rule: ``plateau_window``, ``plateau_tol``,
    ``plateau_margin``, or ``None``). ``beta_init=None`` starts at the
    schedule's default (:data:`DEFAULT_BETA_INIT`).
    """
    check_beta_init(name, beta_init)
    beta = DEFAULT_BETA_INIT[name] if beta_init is None else beta_init
    if name == "rewo":
        return REWOSchedule(kappa, nu=nu, tau=tau, alpha=alpha, beta_init=beta, **(plateau or {}))
    if name == "geco":
        return GECOSchedule(kappa, nu=nu, alpha=alpha, beta_init=beta)
    if name == "warmup":
        return WarmupSchedule(warmup_steps, alpha=alpha, beta_init=beta)
    if name == "constant":
        return ConstantSchedule(beta, alpha=alpha)
    raise ValueError(f"Unknown schedule {name!r}.")
