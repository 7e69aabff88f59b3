"""Issue 27: per-epoch curves of the pendulum fit, and candidate changes to the prior's training.

Fits ``VHPEstimator(n_components=2, random_state=seed)`` (the defaults of the
pendulum demo, ``examples/plot_pendulum_angle.py``: 12,000 training renders
of ``make_pendulum(15000, random_state=seed)``, the last 3,000 held out) and,
after every epoch, measures

* ``angle``: the held-out angle error of a linear regression from the
  posterior means to ``(cos θ, sin θ)`` (the demo's metric), fitted on the
  training codes;
* ``agg_kl``: ``KL(q_agg || p)`` of the aggregate posterior of the held-out
  rows (a mixture of their ``q(z|x)``) to the prior, from 500 of its
  samples, ``log p(z)`` by the importance-weighted bound with 256 samples of
  ``ζ`` (an upper bound of the KL, tight to ~0.01 nat here): how well the
  prior fits the codes;
* ``on_ring``: the share of 2,000 prior samples within 15 % of the codes'
  mean radius (``benchmarks/table1_pendulum.py``'s column);
* β, the phase, κ and the epoch's mean KL term, from ``history_``;

with the fit's own time (the time spent measuring is subtracted). The
measurements take nothing from the fit's random streams. Candidates
(``--config``) patch the training engine from outside, without touching the
package, so that every one runs on the same code:

* ``base``: the package as it is.
* ``nodecay``: a constant step size (the package before issue 27; since
  then ``max_iter="auto"`` decays it over the last third of the fit).
* ``k4`` / ``k1``: ``n_importance=4`` / ``1`` (cheaper steps, looser bound).
* ``plr3``: the prior's networks take Adam steps 3x as long as the rest's.
* ``always``: the prior is trained from the first iteration (also in REWO's
  initial phase, where its KL term has weight ``β_init``), its
  standardisation fitted to the PCA start's codes.
* ``pre300``: when REWO hands over to the main phase, the prior alone is
  first fitted to the current codes (300 Adam steps on ``log p(z)`` of
  ``z ~ q(z|x)`` of shuffled batches).
* ``epochsN``: ``max_iter=N`` (e.g. ``epochs35``).
* ``decayF_P``: the step size decays geometrically to ``F`` times its value
  over the last fraction ``P`` of the fit's iterations (``decay0.1_0.33``).

Usage (one torch thread; one JSON line per run appended to ``--out``)::

    OMP_NUM_THREADS=1 python benchmarks/pendulum_curves.py --config base --seed 0
    OMP_NUM_THREADS=1 python benchmarks/pendulum_curves.py --config always pre300 --seed 0 1
"""

import argparse
import contextlib
import json
import math
import time

import numpy as np
import torch
from sklearn.linear_model import LinearRegression

from sklearn_vhp import VHPEstimator, _adam, _schedules, _settings, _training
from sklearn_vhp.datasets import make_pendulum
from sklearn_vhp.metrics import angle_targets, angular_error

RING_TOLERANCE = 0.15


def prior_on_ring(latent, prior_samples):
    centre = latent.mean(0)
    radius = np.linalg.norm(latent - centre, axis=1).mean()
    dist = np.linalg.norm(prior_samples - centre, axis=1)
    return float(np.mean(np.abs(dist - radius) <= RING_TOLERANCE * radius))


@torch.no_grad()
def measure(module, X_train_t, X_test_t, y_train, a_test):
    """The per-epoch measurements of the module as it is (own random streams)."""
    training = module.training
    module.eval()
    try:
        z_train = module.encode_mean(X_train_t).double().numpy()
        mean, logvar = module.encoder(X_test_t)
        z_test = mean.double().numpy()
        reg = LinearRegression().fit(z_train, y_train)
        angle = angular_error(a_test, reg.predict(z_test))
        gen = torch.Generator().manual_seed(12345)
        prior = module.prior
        samples = module.sample_latent(2000, gen).double().numpy()
        on_ring = prior_on_ring(z_test, samples)
        # Aggregate posterior of the held-out rows: z = mu_i + sigma_i e.
        rows = torch.randint(mean.shape[0], (500,), generator=gen)
        z = mean[rows] + torch.exp(0.5 * logvar[rows]) * torch.randn(
            500, mean.shape[1], generator=gen
        )
        var = torch.exp(logvar)
        log_q = (
            -0.5
            * (
                ((z[:, None, :] - mean[None]) ** 2) / var[None]
                + logvar[None]
                + math.log(2 * math.pi)
            )
        ).sum(-1)
        log_qagg = torch.logsumexp(log_q, 1) - math.log(mean.shape[0])
        n_aux = prior.n_aux
        if n_aux:
            eps = torch.randn(256, 500, n_aux, generator=gen)
            log_p = prior.log_prob(z, eps)
        else:
            with prior.frozen() as frozen:
                log_p = frozen.log_prob(z)
        agg_kl = float((log_qagg - log_p).mean())
    finally:
        module.train(training)
    return dict(angle=float(angle), agg_kl=agg_kl, on_ring=on_ring)


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def candidate(config, stack, est, steps):
    """Apply ``config``'s patches (entered on ``stack``) and estimator parameters.

    ``steps("fit")``: the fit's iterations (read once ``fit`` has begun).
    """
    if config == "base":
        return
    if config == "nodecay":  # a constant step size, as before issue 27
        stack.enter_context(patched(_settings, "step_size_decay", lambda *a: None))
        return
    if config.startswith("k") and config[1:].isdigit():
        est.set_params(n_importance=int(config[1:]))
        return
    if config.startswith("epochs"):
        est.set_params(max_iter=int(config[6:]))
        return
    if config.startswith("decay"):
        # decay<F>_<P>: the step size decays geometrically to F times its value
        # over the last fraction P of the fit's iterations (set after each step).
        final, part = (float(v) for v in config[5:].split("_"))
        original = _adam.FusedAdam.step
        count = [0]

        def step(self):
            out = original(self)
            if self is est._optimizer:
                count[0] += 1
                total = steps("fit")
                t = min(1.0, max(0.0, (count[0] / total - (1 - part)) / part))
                self.param_groups[0]["lr"] = est.learning_rate * final**t
            return out

        stack.enter_context(patched(_adam.FusedAdam, "step", step))
        return
    if config.startswith("plr"):
        factor = float(config[3:])
        original = _adam.FusedAdam.step

        def step(self):
            if self is not est._optimizer:
                return original(self)
            prior = [p for p in est.module_.prior_parameters() if p.grad is not None]
            old = [p.detach().clone() for p in prior]
            original(self)
            with torch.no_grad():
                for p, o in zip(prior, old):
                    p.copy_(o + factor * (p - o))

        stack.enter_context(patched(_adam.FusedAdam, "step", step))
        return
    if config == "always":
        stack.enter_context(
            patched(_schedules.REWOSchedule, "train_prior", property(lambda s: True))
        )
        return
    if config.startswith("pre"):
        n_steps = int(config[3:])
        original = _training.Trainer._standardise_prior

        def standardise(self, source):
            original(self, source)
            module = self.module
            params = module.prior_parameters()
            for p in params:
                p.requires_grad_(True)
            opt = _training.make_adam(module.prior, 1e-3)
            gen = source.generator
            done = 0
            while done < n_steps:
                for x in source.epoch():
                    with torch.no_grad():
                        mean, logvar = module.encoder(x)
                        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
                    eps = torch.randn(16, z.shape[0], module.prior.n_aux, generator=gen)
                    loss = -module.prior.log_prob(z, eps).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    done += 1
                    if done >= n_steps:
                        break

        stack.enter_context(patched(_training.Trainer, "_standardise_prior", standardise))
        return
    raise ValueError(f"unknown config {config!r}")


def run(config, seed, n_samples=15000, n_train=12000, max_iter="auto"):
    torch.set_num_threads(1)
    X, angles = make_pendulum(n_samples=n_samples, random_state=seed)
    X_train, X_test = X[:n_train], X[n_train:]
    y_train, a_test = angle_targets(angles[:n_train]), angles[n_train:]
    Xtr = torch.as_tensor(X_train, dtype=torch.float32)
    Xte = torch.as_tensor(X_test, dtype=torch.float32)
    est = VHPEstimator(n_components=2, random_state=seed, max_iter=max_iter)
    curve, state, budget = [], dict(steps=0, eval_time=0.0, start=None), {}

    def steps(span):
        """Iterations of one ``"epoch"`` or of the whole ``"fit"``, by the
        package's rules: ``fit`` resolves ``batch_size="auto"``, so they are
        read at its first step, once."""
        if not budget:
            per_epoch = _settings.steps_per_epoch(est, n_train)
            budget.update(epoch=per_epoch, fit=_settings.epochs(est, n_train) * per_epoch)
        return budget[span]

    def hook():
        steps_per_epoch = steps("epoch")
        state["steps"] += 1
        if state["steps"] % steps_per_epoch:
            return
        t0 = time.perf_counter()
        row = measure(est.module_, Xtr, Xte, y_train, a_test)
        sched = est.schedule_
        row.update(
            epoch=state["steps"] // steps_per_epoch,
            time=t0 - state["start"] - state["eval_time"],
            beta=float(sched.beta),
            phase=sched.phase,
            kappa=float(getattr(sched, "kappa", math.nan)),
            lr=float(est._optimizer.param_groups[0]["lr"]),
        )
        curve.append(row)
        state["eval_time"] += time.perf_counter() - t0

    original = _adam.FusedAdam.step
    with contextlib.ExitStack() as stack:
        candidate(config, stack, est, steps)
        inner = _adam.FusedAdam.step

        def step(self, *a, **k):
            out = inner(self, *a, **k)
            if self is est._optimizer:  # not the pre-training's own Adam
                hook()
            return out

        stack.enter_context(patched(_adam.FusedAdam, "step", step))
        state["start"] = time.perf_counter()
        est.fit(X_train)
        total = time.perf_counter() - state["start"] - state["eval_time"]
    assert _adam.FusedAdam.step is original
    # The epoch's mean KL term and the switch to the main phase, from history_.
    h = est.history_
    for row in curve:
        sel = h["epoch"] == row["epoch"]
        row["kl"] = float(np.mean(h["kl"][sel])) if sel.any() else math.nan
        row["C"] = float(np.mean(h["constraint"][sel])) if sel.any() else math.nan
    switch = np.flatnonzero(h["phase"] == "main")
    pipe_err = angular_error(
        a_test,
        LinearRegression().fit(est.transform(X_train), y_train).predict(est.transform(X_test)),
    )
    return dict(
        config=config,
        seed=seed,
        fit_time=total,
        angle=float(pipe_err),
        switch_iteration=int(switch[0]) if switch.size else None,
        n_iter=int(est.n_iter_),
        beta=float(est.beta_),
        kappa=float(est.kappa_),
        curve=curve,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", nargs="+", default=["base"])
    parser.add_argument("--seed", nargs="+", type=int, default=[0])
    parser.add_argument("--out", default="pendulum_curves.jsonl")
    args = parser.parse_args()
    for seed in args.seed:
        for config in args.config:
            result = run(config, seed)
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
            last = result["curve"][-1] if result["curve"] else {}
            print(
                f"{config:>10s} seed {seed}: angle {result['angle']:.4f} rad, fit "
                f"{result['fit_time']:.0f} s, switch at it. {result['switch_iteration']}, "
                f"beta {result['beta']:.3g}, agg KL {last.get('agg_kl', math.nan):.3f}, "
                f"on ring {last.get('on_ring', math.nan):.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
