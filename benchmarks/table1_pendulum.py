"""Paper Table 1: the pendulum angle from a 2-D latent space, method by method.

Every method maps pendulum images (``make_pendulum``) to two numbers; a
``LinearRegression`` on top predicts ``(cos θ, sin θ)`` and the table reports
the held-out mean absolute angle error (``Pipeline(method, LinearRegression())``),
the fit time and the final ``β``. All rows of one seed see the same data and
the same epoch budget; each seed draws new data and new initialisations, and
the table gives mean ± std over the seeds.

Rows (``--methods`` picks a subset; keys in brackets):

* ``[rewo]``   VHP + REWO: ``VHPEstimator(n_components=2, random_state=seed)``,
  the package defaults.
* ``[geco]``   VHP + GECO (``schedule="geco"``).
* ``[beta1]``  VHP with ``β = 1`` throughout (``schedule="constant"``).
* ``[wu20]``   VHP + linear KL warm-up over 20 epochs.
* ``[wu200]``  VHP + warm-up "200 epochs": 200 epochs do not fit in a budget
  under 250 epochs, so the warm-up is scaled to 80 % of the budget (the label
  says by how much) and β still reaches 1 before the end.
* ``[iwae]``   IWAE (L=1): standard-normal prior, ``objective="iwae"`` with
  ``K = n_importance`` samples, ``β = 1``.
* ``[iwae2]``  IWAE (L=2): the VHP model ``x ← z ← ζ`` trained with the joint
  IWAE bound, ``β = 1`` (not run by default).
* ``[vamp]``   VampPrior, ``β = 1`` (the plain ELBO).
* ``[pca]``    PCA(2).
* ``[isomap]`` Isomap(2) with 20 neighbours (the default 5 leaves the kNN
  graph of the pendulum images disconnected), fitted on at most 4000
  training rows (its cost grows quadratically).

Each VAE row also gets the share of its prior's samples that lie on the
ring of encoded images (``prior_on_ring``): the angle regression reads the
encoder, this column the learned prior (the paper's Fig. 18).

Besides the table (printed, and saved as ``table1_pendulum.md`` with the
date, machine and settings, plus the raw numbers as ``.json``) it saves two
figures of the first seed: ``table1_pendulum_latents.png`` (each method's
held-out latent codes coloured by angle, with samples of the learned prior in
grey, as the paper's Fig. 18) and ``table1_pendulum_beta.png`` (``β`` against
epochs, as the paper's Fig. 2 right).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/table1_pendulum.py            # full
    python benchmarks/table1_pendulum.py --quick                      # < 1 min
    python benchmarks/table1_pendulum.py --seeds 0 1 2 --epochs 100 --out results/
    python benchmarks/table1_pendulum.py --methods rewo pca --seeds 0
    python benchmarks/table1_pendulum.py --n-jobs 2   # 2 processes × 1 thread
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import sklearn_vhp  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.manifold import Isomap
from sklearn.pipeline import Pipeline

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import make_pendulum
from sklearn_vhp.metrics import angle_targets, angular_error

PAPER_LONG_WARMUP = 200
SHORT_WARMUP = 20
ISOMAP_MAX_ROWS = 4000
ISOMAP_NEIGHBORS = 20
DEFAULT_METHODS = ["rewo", "geco", "beta1", "wu20", "wu200", "iwae", "vamp", "pca", "isomap"]


def warmup_lengths(epochs):
    """Warm-up epochs of the short and the long warm-up rows for a budget.

    The paper's 20 and 200 epochs when the budget has room for 200 (at 80 %
    of it); otherwise both are scaled by the same factor, the long one to 80 %
    of the budget, so the two rows stay distinct (10:1) and β reaches 1.
    """
    if epochs >= PAPER_LONG_WARMUP / 0.8:
        return SHORT_WARMUP, PAPER_LONG_WARMUP
    long = max(1, round(0.8 * epochs))
    short = max(1, round(long * SHORT_WARMUP / PAPER_LONG_WARMUP))
    return short, long


def make_methods(epochs, vae_kwargs):
    """``key -> (label, factory(seed) -> first pipeline step, is_vae)``."""
    short, long = warmup_lengths(epochs)
    k = vae_kwargs.get("n_importance", VHPEstimator().get_params()["n_importance"])
    scaled = long != PAPER_LONG_WARMUP
    long_label = f"VHP + WU(200→{long}, scaled)" if scaled else f"VHP + WU({long})"
    short_label = f"VHP + WU(20→{short}, scaled)" if scaled else f"VHP + WU({short})"

    def vhp(**kw):
        return lambda seed: VHPEstimator(n_components=2, random_state=seed, **{**vae_kwargs, **kw})

    return {
        "rewo": ("VHP + REWO", vhp(), True),
        "geco": ("VHP + GECO", vhp(schedule="geco"), True),
        "beta1": ("VHP, β = 1", vhp(schedule="constant"), True),
        "wu20": (short_label, vhp(schedule="warmup", warmup_epochs=short), True),
        "wu200": (long_label, vhp(schedule="warmup", warmup_epochs=long), True),
        "iwae": (
            f"IWAE (L=1, K={k})",
            vhp(prior="standard", objective="iwae", schedule="constant"),
            True,
        ),
        "iwae2": (
            f"IWAE (L=2, K={k})",
            vhp(prior="vhp", objective="iwae", schedule="constant"),
            True,
        ),
        "vamp": ("VampPrior", vhp(prior="vamp", schedule="constant"), True),
        "pca": ("PCA(2)", lambda seed: PCA(n_components=2, random_state=seed), False),
        "isomap": (
            f"Isomap(2) (≤{ISOMAP_MAX_ROWS} rows)",
            lambda seed: Isomap(n_components=2, n_neighbors=ISOMAP_NEIGHBORS),
            False,
        ),
    }


def warm_up():
    """One throw-away fit so that one-off start-up costs are not in a row's time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        VHPEstimator(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(
            make_pendulum(n_samples=64, random_state=0)[0]
        )


def run_task(key, seed, data, epochs, vae_kwargs, n_prior_samples, threads):
    """One (method, seed) cell, safe to run in a worker process (``threads`` set)."""
    if threads:  # a worker process: its own start-up cost
        torch.set_num_threads(threads)
        warm_up()
    _, factory, is_vae = make_methods(epochs, vae_kwargs)[key]
    try:
        res, plot = run_one(key, factory, is_vae, seed, data, n_prior_samples)
    except (FloatingPointError, ValueError, RuntimeError) as exc:
        res, plot = {"error": float("nan"), "fit_time": float("nan"), "beta": None}, None
        res["failure"] = f"{type(exc).__name__}: {exc}"
    return key, seed, res, plot


def run_one(key, factory, is_vae, seed, data, n_prior_samples):
    """Fit ``Pipeline(method, LinearRegression())`` once; return numbers and plot data."""
    X_train, a_train, X_test, a_test = data
    if key == "isomap" and X_train.shape[0] > ISOMAP_MAX_ROWS:
        X_train, a_train = X_train[:ISOMAP_MAX_ROWS], a_train[:ISOMAP_MAX_ROWS]
    pipe = Pipeline([("embed", factory(seed)), ("regress", LinearRegression())])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if key == "isomap":  # disconnected-graph and scipy sparse-efficiency chatter
            warnings.simplefilter("ignore", UserWarning)
            warnings.filterwarnings("ignore", module="scipy.sparse")
        pipe.fit(X_train, angle_targets(a_train))
    fit_time = time.perf_counter() - start
    error = angular_error(a_test, pipe.predict(X_test))
    embed = pipe.named_steps["embed"]
    result = {"error": error, "fit_time": fit_time, "beta": None, "phase": None}
    plot = {"latent": embed.transform(X_test), "angles": a_test}
    if is_vae:
        result["beta"] = float(embed.beta_)
        result["phase"] = str(embed.schedule_.phase)
        result["active_z"] = int(embed.active_units(X_test).n_active_z)
        plot["prior"] = embed.sample_latent(n_prior_samples, random_state=seed)
        result["on_ring"] = prior_on_ring(plot["latent"], plot["prior"])
        hist = embed.history_
        per_epoch = max(1, int(np.sum(hist["epoch"] == hist["epoch"][0])))
        plot["beta"] = hist["beta"]
        plot["beta_epochs"] = np.arange(len(hist["beta"])) / per_epoch
    return result, plot


#: A prior sample is "on the ring" within this fraction of the ring's mean radius.
RING_TOLERANCE = 0.15


def prior_on_ring(latent, prior_samples, tolerance=RING_TOLERANCE):
    """Share of prior samples near the ring of encoded images.

    The ring is summarised by its centre (the mean code) and mean radius
    ``R``; a sample counts when its distance from the centre is within
    ``tolerance * R`` of ``R``. A prior that has learned the pendulum's 1-D
    manifold puts most samples there; one that fills the disc does not.
    """
    centre = latent.mean(axis=0)
    radius = np.linalg.norm(latent - centre, axis=1).mean()
    dist = np.linalg.norm(prior_samples - centre, axis=1)
    return float(np.mean(np.abs(dist - radius) <= tolerance * radius))


def fmt(values, digits=3):
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        return "—"
    if np.all(np.isnan(values)):
        return "failed"
    if values.size == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}"


def markdown_table(labels, results):
    lines = [
        "| method | angle error [rad] | fit time [s] | final β | active units (z) "
        "| prior on ring |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in labels.items():
        runs = results[key]
        errs = [r["error"] for r in runs]
        times = [r["fit_time"] for r in runs]
        betas = [r["beta"] for r in runs]
        active = [r.get("active_z") for r in runs]
        ring = [r.get("on_ring") for r in runs]
        lines.append(
            f"| {label} | {fmt(errs, 4)} | {fmt(times, 1)} | {fmt(betas, 3)} | {fmt(active, 1)} "
            f"| {fmt(ring, 2)} |"
        )
    return "\n".join(lines)


def save_figures(labels, plots, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figures.", file=sys.stderr)
        return []
    keys = [k for k in labels if k in plots]
    if not keys:
        return []
    ncols = min(4, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(keys) :]:
        ax.set_axis_off()
    for ax, key in zip(axes.flat, keys):
        p = plots[key]
        if "prior" in p:
            ax.scatter(*p["prior"].T, s=2, c="0.75", label="prior samples", rasterized=True)
        sc = ax.scatter(
            *p["latent"].T,
            s=3,
            c=p["angles"],
            cmap="twilight",
            vmin=0,
            vmax=2 * np.pi,
            rasterized=True,
        )
        ax.set_title(labels[key], fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="angle θ [rad]", shrink=0.8)
    latents_path = out / "table1_pendulum_latents.png"
    fig.savefig(latents_path, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        p = plots[key]
        if "beta" in p:
            ax.plot(p["beta_epochs"], np.clip(p["beta"], 1e-4, None), label=labels[key], lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("β (clipped at 1e-4)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    beta_path = out / "table1_pendulum_beta.png"
    fig.savefig(beta_path, dpi=120)
    plt.close(fig)
    return [latents_path, beta_path]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, 1 seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of every VAE row (default: 25, VHPEstimator's max_iter='auto' on 12,000 rows)",
    )
    parser.add_argument("--n-samples", type=int, default=None, help="default: 15000")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--methods", nargs="+", default=None, help=f"default: {DEFAULT_METHODS}")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="a previous run's table1_pendulum.json: its (method, seed) cells whose "
        "label is unchanged are reused, the others are run",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="cells (method, seed) run in parallel processes, each with "
        "cpu_count // n_jobs torch threads (default 1: in this process)",
    )
    args = parser.parse_args(argv)

    if args.quick:
        seeds = args.seeds or [0]
        epochs = args.epochs or 2
        n_samples = args.n_samples or 500
        vae_kwargs = {}
        n_prior_samples = 200
    else:
        seeds = args.seeds or [0, 1, 2]
        # max_iter="auto" trains 25 epochs on the 12,000 training images of the
        # default 15,000; every row gets the same budget explicitly.
        epochs = args.epochs or 25
        n_samples = args.n_samples or 15000
        vae_kwargs = {}
        n_prior_samples = 2000
    vae_kwargs["max_iter"] = epochs
    all_methods = make_methods(epochs, vae_kwargs)
    keys = args.methods or DEFAULT_METHODS
    unknown = sorted(set(keys) - set(all_methods))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {sorted(all_methods)}")
    labels = {k: all_methods[k][0] for k in keys}
    n_test = max(1, round(args.test_fraction * n_samples))
    n_train = n_samples - n_test

    results = {k: [] for k in keys}
    plots = {}
    warm_up()
    t_total = time.perf_counter()
    data = {}  # the same data for every row of a seed
    for seed in seeds:
        X, angles = make_pendulum(n_samples=n_samples, random_state=seed)
        data[seed] = (X[:n_train], angles[:n_train], X[n_train:], angles[n_train:])
    reused, previous_time = set(), 0.0
    if args.resume is not None:
        old = json.loads(args.resume.read_text(encoding="utf-8"))
        previous_time = float(old.get("total_time", 0.0))
        for key, runs in old["results"].items():
            if key in labels and old["labels"].get(key) == labels[key]:
                for run in runs:
                    if run["seed"] in seeds:
                        results[key].append(run)
                        reused.add((key, run["seed"]))
    tasks = [(key, seed) for seed in seeds for key in keys if (key, seed) not in reused]
    common = (epochs, vae_kwargs, n_prior_samples)
    threads = max(1, (os.cpu_count() or 1) // args.n_jobs)
    if args.n_jobs == 1:
        cells = (run_task(key, seed, data[seed], *common, None) for key, seed in tasks)
    else:
        from joblib import Parallel, delayed

        cells = Parallel(n_jobs=args.n_jobs, return_as="generator")(
            delayed(run_task)(key, seed, data[seed], *common, threads) for key, seed in tasks
        )
    for key, seed, res, plot in cells:
        results[key].append({"seed": seed, **res})
        if plot is not None and seed == seeds[0]:
            plots[key] = plot
        print(
            f"seed {seed} {labels[key]:28s} error {res['error']:.4f} rad  "
            f"fit {res['fit_time']:.1f} s  β {res['beta']}"
            + (f"  [{res['failure']}]" if "failure" in res else ""),
            file=sys.stderr,
            flush=True,
        )
    elapsed = time.perf_counter() - t_total + previous_time
    for runs in results.values():
        runs.sort(key=lambda run: seeds.index(run["seed"]))

    short, long = warmup_lengths(epochs)
    parallel = (
        f"{torch.get_num_threads()} threads"
        if args.n_jobs == 1
        else f"{args.n_jobs} processes × {threads} threads"
    )
    machine = (
        f"{platform.node() or 'unknown host'}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({parallel}), Python {platform.python_version()}"
    )
    header = [
        f"Pendulum angle from a 2-D latent space (paper Table 1), "
        f"{datetime.date.today().isoformat()}.",
        "",
        f"* Data: `make_pendulum(n_samples={n_samples})` per seed, first {n_train} rows "
        f"train, last {n_test} test; seeds {seeds} (mean ± std over seeds).",
        f"* Every VAE row: {epochs} epochs"
        + (
            " (what VHPEstimator's max_iter='auto' gives on 12,000 training rows)"
            if args.epochs is None and not args.quick
            else ""
        )
        + ", other parameters at the package defaults"
        + (f" except {vae_kwargs}" if {k for k in vae_kwargs} - {"max_iter"} else "")
        + ". IWAE and VampPrior train with β = 1.",
        f"* Warm-up rows: {short} and {long} epochs"
        + (
            f" (the paper's 20 and 200 epochs, both scaled so that the long one takes 80 % "
            f"of the {epochs}-epoch budget and β reaches 1)."
            if long != PAPER_LONG_WARMUP
            else "."
        ),
        f"* Isomap uses {ISOMAP_NEIGHBORS} neighbours and at most {ISOMAP_MAX_ROWS} "
        "training rows. Fit times include the linear regression.",
        f"* Prior on ring: share of {n_prior_samples} samples of the learned prior whose "
        "distance from the centre of the held-out codes is within "
        f"{RING_TOLERANCE:.0%} of the codes' mean radius (1 = the prior lies on the "
        "pendulum's circle, low = it fills the disc).",
        f"* Machine: {machine}. Total time {elapsed:.0f} s."
        + (" `--quick` run." if args.quick else "")
        + (
            f" {len(reused)} cells reused from `{args.resume.name}` (its run time included);"
            f" the figures show the rows run here ({', '.join(sorted(plots)) or 'none'})."
            if args.resume is not None
            else ""
        ),
        "",
        "",
    ]
    table = markdown_table(labels, results)
    text = "\n".join(header) + table + "\n"
    print(text)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table1_pendulum.md").write_text(text, encoding="utf-8")
    (args.out / "table1_pendulum.json").write_text(
        json.dumps(
            {
                "labels": labels,
                "results": results,
                "total_time": elapsed,
                "settings": vars(args)
                | {"seeds": seeds, "epochs": epochs, "n_samples": n_samples, "out": str(args.out)},
            },
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    for path in save_figures(labels, plots, args.out):
        print(f"saved {path}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
