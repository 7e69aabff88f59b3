"""Paper Table 2 (static MNIST column): validation NLL of the VHP and its baselines.

Every row is a ``VHPEstimator`` trained on static binarized MNIST
(``load_binarized_mnist``: 50,000 training rows) and scored on the validation
split (10,000 rows) by ``-mean(score_samples)``, the importance-sampled
negative log-likelihood in nats (the paper: 5,000 samples, on the test split;
the test split is never used here: tune on train and validation only).

Rows (``--methods`` picks a subset; keys in brackets), all with
``n_components=40``, ``hidden_layer_sizes=--hidden``, batch 100, Adam 1e-3:

* ``[rewo]``  VHP + REWO: the package's defaults for the schedule and ``κ``.
* ``[geco]``  VHP + GECO (``schedule="geco"``).
* ``[vamp]``  VampPrior (``prior="vamp"``, 500 pseudo-inputs, ``β = 1``).
* ``[iwae1]`` IWAE (L=1): standard prior, ``objective="iwae"``, ``β = 1``.
* ``[iwae2]`` IWAE (L=2): the two-layer model ``x ← z ← ζ`` trained with the
  joint IWAE bound (``prior="vhp", objective="iwae"``), ``β = 1``.
* ``[vae]``   plain VAE: standard prior, ELBO, ``β = 1``.

The encoders use ``encoder_variance="amortized"`` (a per-input posterior
variance, the usual VAE encoder): the package default ``"shared"`` targets
latent geometry (Table 1, interpolation), not likelihood.

Budgets: ``--epochs N`` trains every row for N epochs; ``--budget-minutes M``
gives every row the same wall-clock budget, trained in 1-epoch ``warm_start``
chunks until the budget is spent (the last epoch may overrun it). With
``--final-learning-rate`` the step size decays geometrically from
``--learning-rate`` to that value over the last third of the budget (or
the share ``--decay-fraction``), set before each chunk from the time spent
so far (the estimator restarts Adam's step size, not its moments, when
``learning_rate`` changes). With
``--curve-every N`` a budgeted row also records, every N epochs and off the
clock, the NLL of the first 500 training and evaluation rows (200
importance samples): the curves that show whether more epochs would help or
only widen the gap between the two.

``--architecture``: Table 2's MLP (``mlp``), the same widths with gated
hidden layers (``gated_mlp``, the VampPrior paper's MLP) or the gated
convolutional network (``gated_conv``, 28 x 28 images).
``--decoder-dropout p``: the estimator's ``decoder_dropout`` (dropout after
each hidden layer of the decoder, a regulariser for long budgets).

The table (printed, and saved as ``mnist_nll.md`` with the date, machine and
settings, plus ``mnist_nll.json``) has per row: validation NLL, epochs, fit
time, evaluation time, final β and REWO phase, and active units of ``z``
(Burda et al.'s statistic on the evaluation rows).

Usage::

    python benchmarks/mnist_nll.py --quick                    # smoke run, < 1 min
    python benchmarks/mnist_nll.py --epochs 20                # equal epochs
    python benchmarks/mnist_nll.py --budget-minutes 30 --methods rewo vae
    python benchmarks/mnist_nll.py --budget-minutes 30 --methods rewo --final-learning-rate 1e-4
    python benchmarks/mnist_nll.py --architecture gated_mlp --budget-minutes 60 --threads 2 \
        --methods rewo --eval-rows 1000 --final-learning-rate 1e-4 \
        --decoder-dropout 0.1 --decay-fraction 0.5          # issue 27's best hour: 85.61
    python benchmarks/mnist_nll.py --architecture gated_conv --epochs 5 --device cuda
"""

import argparse
import datetime
import json
import math
import platform
import resource
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
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import load_binarized_mnist

#: The project's shared data, beside the checkout (the --data-home default).
_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: The paper's Table 2, static MNIST, test NLL with 5000 importance samples.
PAPER_TEST_NLL = {"rewo": 82.74, "geco": 96.32, "vamp": 84.02, "iwae1": 84.46, "iwae2": 82.83}

METHODS = {
    "rewo": ("VHP + REWO", {}),
    "geco": ("VHP + GECO", {"schedule": "geco"}),
    "vamp": ("VampPrior", {"prior": "vamp", "schedule": "constant"}),
    "iwae1": ("IWAE (L=1)", {"prior": "standard", "objective": "iwae", "schedule": "constant"}),
    "iwae2": ("IWAE (L=2)", {"prior": "vhp", "objective": "iwae", "schedule": "constant"}),
    "vae": ("VAE", {"prior": "standard", "schedule": "constant", "n_importance": 1}),
}


def make_estimator(key, args, seed):
    kw = dict(
        n_components=40,
        hidden_layer_sizes=args.hidden,
        encoder_variance="amortized",
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        n_eval_samples=args.eval_samples,
        n_pseudo_inputs=args.pseudo_inputs,
        architecture=args.architecture,
        image_shape=(28, 28) if args.architecture == "gated_conv" else None,
        decoder_dropout=args.decoder_dropout,
        device=args.device,
        random_state=seed,
    )
    kw.update(METHODS[key][1])
    if args.budget_minutes is not None:
        kw.update(max_iter=1, warm_start=True)
    else:
        kw.update(max_iter=args.epochs)
    return VHPEstimator(**kw)


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (Linux: KiB units)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


#: Fraction of a wall budget, at its end, over which --final-learning-rate
#: applies (``--decay-fraction``'s default).
DECAY_FRACTION = 1 / 3


def decayed_learning_rate(args, spent):
    """Step size after ``spent`` (a fraction) of the budget: constant, then geometric."""
    if args.final_learning_rate is None:
        return args.learning_rate
    fraction = getattr(args, "decay_fraction", DECAY_FRACTION)
    t = min(1.0, max(0.0, (spent - (1 - fraction)) / fraction))
    return args.learning_rate * (args.final_learning_rate / args.learning_rate) ** t


#: Rows and importance samples of each point of ``--curve-every``'s curves.
CURVE_ROWS, CURVE_SAMPLES = 500, 200


def curve_point(est, X_train, X_eval, fit_time):
    """NLL of the first training and evaluation rows now (a point of the curves)."""
    samples = est.n_eval_samples
    est.set_params(n_eval_samples=CURVE_SAMPLES)
    point = {
        "epoch": int(est.n_iter_),
        "fit_time": fit_time,
        "learning_rate": float(est.learning_rate),
        "train_nll": float(-np.mean(est.score_samples(X_train[:CURVE_ROWS]))),
        "eval_nll": float(-np.mean(est.score_samples(X_eval[:CURVE_ROWS]))),
    }
    est.set_params(n_eval_samples=samples)
    return point


def run_row(key, args, X_train, X_eval, seed):
    est = make_estimator(key, args, seed)
    curve = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if args.budget_minutes is None:
            start = time.perf_counter()
            est.fit(X_train)
            fit_time = time.perf_counter() - start
        else:
            budget, fit_time = 60.0 * args.budget_minutes, 0.0
            while fit_time < budget:
                lr = decayed_learning_rate(args, fit_time / budget)
                start = time.perf_counter()
                est.set_params(learning_rate=lr).fit(X_train)
                fit_time += time.perf_counter() - start
                # The curves' measurements are not on the clock.
                if args.curve_every and est.n_iter_ % args.curve_every == 0:
                    curve.append(curve_point(est, X_train, X_eval, fit_time))
    start = time.perf_counter()
    scores = est.score_samples(X_eval)
    eval_time = time.perf_counter() - start
    hist = est.history_
    return {
        "nll": float(-np.mean(scores)),
        "nll_sem": float(np.std(scores) / math.sqrt(len(scores))),
        "epochs": int(est.n_iter_),
        "iterations": int(len(hist["loss"])),
        "fit_time": fit_time,
        "eval_time": eval_time,
        "beta": float(est.beta_),
        "phase": str(est.schedule_.phase),
        "constraint_avg": float(hist["constraint_avg"][-1]),
        "kappa": float(est.kappa_),
        "active_z": int(est.active_units(X_eval).n_active_z),
        "peak_rss_mib": peak_rss_mib(),
        "curve": curve,
    }


def device_name(device):
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} ({dev})"
    return f"CPU: {platform.processor() or platform.machine()}"


def markdown(results, args, meta):
    budget = (
        f"{args.budget_minutes:g} min per row (1-epoch warm-start chunks)"
        if args.budget_minutes is not None
        else f"{args.epochs} epoch(s) per row"
    )
    if args.final_learning_rate is not None:
        budget += f", step size decayed geometrically to {args.final_learning_rate:g} over " + (
            "the last third of the budget"
            if args.decay_fraction == DECAY_FRACTION
            else f"the last {args.decay_fraction:.0%} of the budget"
        )
    lines = [
        "## Static binarized MNIST: validation NLL (paper Table 2)",
        "",
        f"{meta['date']} · {meta['device']} · torch {meta['torch']} · "
        f"{meta['threads']} thread(s) · {meta['platform']}",
        "",
        f"Training: {meta['n_train']} rows, {budget}; architecture `{args.architecture}`, "
        f"hidden {tuple(args.hidden)}, decoder dropout {args.decoder_dropout:g}, "
        f"n_components = 40, batch {args.batch_size}, "
        f'Adam {args.learning_rate:g}, `encoder_variance="amortized"` (the package '
        'default `"shared"` targets latent geometry, not likelihood), κ and schedules '
        "at the package defaults. "
        f"NLL = −mean `score_samples` on {meta['n_eval']} validation rows with "
        f"{args.eval_samples} importance samples (± its standard error over rows). "
        "Paper column: *test* NLL, 5000 samples, the authors' networks and budgets.",
        "",
        "| model | val NLL [nats] | paper (test) | epochs | fit time [s] | eval time [s] "
        "| final β | phase | active units (z) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in (k for k in METHODS if k in results):
        res = results[key]
        label = METHODS[key][0]
        if key in ("iwae1", "iwae2"):
            label += f", K = {meta['n_importance']}"
        paper = f"{PAPER_TEST_NLL[key]:.2f}" if key in PAPER_TEST_NLL else "—"
        if "failure" in res:
            lines.append(f"| {label} | failed: {res['failure']} | {paper} | | | | | | |")
            continue
        lines.append(
            f"| {label} | {res['nll']:.2f} ± {res['nll_sem']:.2f} | {paper} | {res['epochs']} "
            f"| {res['fit_time']:.1f} | {res['eval_time']:.1f} | {res['beta']:.3g} "
            f"| {res['phase']} | {res['active_z']} |"
        )
    peak = max((r.get("peak_rss_mib", 0) for r in results.values()), default=0)
    lines += ["", f"Peak resident memory of the run: {peak:.0f} MiB.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, < 1 min")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="equal epochs (default 10)")
    budget.add_argument("--budget-minutes", type=float, default=None, help="equal wall budget")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--architecture", choices=["mlp", "gated_mlp", "gated_conv"], default="mlp")
    parser.add_argument(
        "--hidden", type=lambda s: tuple(int(h) for h in s.split(",")), default=(300, 300)
    )
    parser.add_argument(
        "--decoder-dropout",
        type=float,
        default=0.0,
        help="the estimator's decoder_dropout (regularises long budgets)",
    )
    parser.add_argument("--eval-samples", type=int, default=5000)
    parser.add_argument("--eval-rows", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--train-rows", type=int, default=None, help="default: all 50,000")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--final-learning-rate",
        type=float,
        default=None,
        help="with --budget-minutes: decay the step size to this over the last third",
    )
    parser.add_argument(
        "--decay-fraction",
        type=float,
        default=DECAY_FRACTION,
        help="with --final-learning-rate: the decay's share of the budget (default a third)",
    )
    parser.add_argument("--pseudo-inputs", type=int, default=500)
    parser.add_argument(
        "--curve-every",
        type=int,
        default=0,
        help="with --budget-minutes: every N epochs, off the clock, the NLL of the first "
        f"{CURVE_ROWS} training and evaluation rows with {CURVE_SAMPLES} importance "
        "samples (the 'curve' of each row in mnist_nll.json)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-home",
        type=Path,
        # The project's shared data beside the checkout; the library's own
        # default (scikit-learn's data home) otherwise.
        default=_SHARED_DATA if _SHARED_DATA.is_dir() else None,
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=[],
        help="mnist_nll.json files of runs with the same settings (e.g. the other "
        "rows, run in a parallel process): their rows join this table",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.train_rows = args.train_rows or 300
        args.eval_rows = args.eval_rows or 100
        args.eval_samples = 50
        args.hidden = (32,)
        args.pseudo_inputs = 20
        if args.budget_minutes is None:
            args.epochs = 1
    if args.epochs is None and args.budget_minutes is None:
        args.epochs = 10
    if args.final_learning_rate is not None and args.budget_minutes is None:
        parser.error("--final-learning-rate needs --budget-minutes")
    if not 0 < args.decay_fraction <= 1:
        parser.error("--decay-fraction must be in (0, 1]")
    torch.set_num_threads(args.threads)

    X_train = load_binarized_mnist("train", data_home=args.data_home).astype(np.float32)
    # float32 rows: score_samples runs its networks in float32 (about 2x faster).
    X_eval = load_binarized_mnist("valid", data_home=args.data_home).astype(np.float32)
    X_train = X_train[: args.train_rows]
    X_eval = X_eval[: args.eval_rows]
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "device": device_name(args.device),
        "platform": f"{platform.system()} {platform.machine()}",
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "n_train": int(X_train.shape[0]),
        "n_eval": int(X_eval.shape[0]),
        "n_importance": VHPEstimator().get_params()["n_importance"],
        "args": {
            k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
        },
    }
    # One throw-away fit: one-off start-up costs stay out of the first row's time.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        VHPEstimator(hidden_layer_sizes=(8,), max_iter=1, device=args.device).fit(X_train[:64])

    results = {}
    same = (
        "epochs",
        "budget_minutes",
        "final_learning_rate",
        "decay_fraction",
        "eval_samples",
        "eval_rows",
        "train_rows",
        "hidden",
        "decoder_dropout",
    )
    for path in args.merge:
        other = json.loads(path.read_text(encoding="utf-8"))
        theirs, ours = other["meta"]["args"], meta["args"]
        # (runs saved before --decoder-dropout existed had none)
        theirs = {"decoder_dropout": 0.0, "decay_fraction": DECAY_FRACTION, **theirs}
        differ = [k for k in same if theirs.get(k) != ours.get(k)]
        if differ:
            parser.error(f"{path} was run with different settings: {differ}")
        for key, res in other["results"].items():
            if key not in args.methods:
                results[key] = res
    for key in args.methods:
        print(f"{METHODS[key][0]} ...", flush=True)
        try:
            res = run_row(key, args, X_train, X_eval, args.seed)
        except (FloatingPointError, RuntimeError, ValueError) as exc:
            res = {"failure": f"{type(exc).__name__}: {exc}"}
        results[key] = res
        print(f"  {json.dumps(res)}", flush=True)

    table = markdown(results, args, meta)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mnist_nll.md").write_text(table, encoding="utf-8")
    payload = {"meta": meta, "results": results}
    text = json.dumps(payload, indent=2, default=str)
    (args.out / "mnist_nll.json").write_text(text, encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
