"""Time to a good model (issue 27): validation NLL against wall-clock budgets.

Each contender trains on static binarized MNIST (50,000 rows) with the
network and settings of ``benchmarks/peers.py`` (MLP 784-512-40, tanh,
batch 100, Adam 1e-3, this package's models built by ``peers.our_estimator``,
pythae's by ``peers.pythae_models``), in its own process with ``--threads``
torch threads. When its training time reaches each budget of ``--budgets``
(minutes; default 1, 10 and 60), the clock stops, the validation NLL of the
model as it is is estimated (``--n-val`` validation rows, ``--eval-samples``
importance samples from ``q(z|x)``: 1,000 and 5,000 by default; this
package's models by ``log p(x)`` of the package, pythae's by
``peers.pythae_log_marginal``, the same estimator), and the clock restarts;
after the last budget the run stops. The training time counts everything
the fitting call does (model construction, the PCA start, data handling),
not the evaluations.

Contenders (``--contenders``): ``vhp`` (VHP + REWO, this package),
``vamp`` (this package's VampPrior, 500 pseudo-inputs, β = 1) and
``pythae-vamp`` (pythae's VampPrior; skipped when pythae is not importable).

It prints a table (NLL at each budget, per contender and thread count),
saves it as ``time_to_quality.md`` with the raw numbers
(``time_to_quality.json``) and a figure of NLL against training time
(``time_to_quality.png``) under ``--out``.

Usage::

    python benchmarks/time_to_quality.py --quick                  # smoke run, < 1 min
    python benchmarks/time_to_quality.py                          # 1, 10, 60 min; 1 and 2 threads
    python benchmarks/time_to_quality.py --budgets 0.5 2 --threads 1
    python benchmarks/time_to_quality.py --jobs 2 --threads 1     # two contenders at once

The full run trains each of 3 contenders × 2 thread counts for 60 minutes
(6 hours with ``--jobs 1``, plus the evaluations).
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (the contenders' networks and pythae's scoring)

try:
    import sklearn_vhp  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONTENDERS = {
    "vhp": ("sklearn-vhp", "vhp", "VHP + REWO"),
    "vamp": ("sklearn-vhp", "vamp", "VampPrior (this package)"),
    "pythae-vamp": ("pythae", "vamp", "VampPrior (pythae)"),
}


class _Stop(Exception):
    """Raised from a training hook after the last budget."""


class Checkpoints:
    """Stops the training clock at each budget and records the model's validation NLL."""

    def __init__(self, budgets_s, evaluate):
        self.budgets = sorted(budgets_s)
        self.evaluate = evaluate
        self.rows, self.eval_time, self.start, self.steps = [], 0.0, None, 0

    def begin(self):
        self.start = time.perf_counter()

    def after_step(self, epochs):
        """Called after every training iteration; raises :class:`_Stop` after the last budget."""
        self.steps += 1
        now = time.perf_counter()
        spent = now - self.start - self.eval_time
        if spent < self.budgets[len(self.rows)]:
            return
        nll = self.evaluate()
        self.rows.append(
            dict(
                budget_s=self.budgets[len(self.rows)],
                train_s=spent,
                iterations=self.steps,
                epochs=epochs(self.steps),
                nll=nll,
            )
        )
        print(json.dumps(self.rows[-1]), file=sys.stderr, flush=True)
        self.eval_time += time.perf_counter() - now
        if len(self.rows) == len(self.budgets):
            raise _Stop


def run_ours(job, X, V):
    import numpy as np
    import torch

    from sklearn_vhp import _adam, _inference

    est = peers.our_estimator(dict(job, epochs=100000))
    Vf = np.asarray(V, dtype=np.float32)

    def evaluate():
        module = est.module_
        training = module.training
        module.eval()
        try:
            log_p = _inference.log_marginal_rows(
                module, Vf, job["n_eval_samples"], seed=job["seed"], device=torch.device("cpu")
            )
        finally:
            module.train(training)
        return -float(np.mean(log_p))

    marks = Checkpoints(job["budgets_s"], evaluate)
    steps_per_epoch = X.shape[0] // peers.BATCH
    original = _adam.FusedAdam.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self is est._optimizer:
            marks.after_step(lambda n: n / steps_per_epoch)
        return out

    _adam.FusedAdam.step = step
    try:
        marks.begin()
        est.fit(X)
    except _Stop:
        pass
    finally:
        _adam.FusedAdam.step = original
    return marks.rows


def run_pythae(job, X, V):
    import logging
    import tempfile

    import torch

    logging.disable(logging.INFO)
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    Vt = torch.as_tensor(V, dtype=torch.float32)
    model = None

    def evaluate():
        training = model.training
        model.eval()
        try:
            nll = -peers.pythae_log_marginal(model, Vt, job["n_eval_samples"], job["seed"])
        finally:
            model.train(training)
        return float(nll.mean())

    marks = Checkpoints(job["budgets_s"], evaluate)
    steps_per_epoch = X.shape[0] / peers.BATCH
    with tempfile.TemporaryDirectory() as out:
        marks.begin()
        torch.manual_seed(job["seed"])
        model = peers.pythae_models(job)
        # The check runs before each training forward: after the previous step.
        calls = [0]

        def pre_hook(*_):
            calls[0] += 1
            if calls[0] > 1:
                marks.after_step(lambda n: n / steps_per_epoch)

        model.register_forward_pre_hook(pre_hook)
        config = BaseTrainerConfig(
            output_dir=out,
            num_epochs=100000,
            per_device_train_batch_size=peers.BATCH,
            learning_rate=peers.LR,
            no_cuda=True,
            seed=job["seed"],
        )
        try:
            TrainingPipeline(model=model, training_config=config)(train_data=X)
        except _Stop:
            pass
    return marks.rows


def worker(job):
    import torch

    torch.set_num_threads(job["threads"])
    X, V = peers.load(job["n_train"], job["n_val"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if job["peer"] == "pythae":
            return run_pythae(job, X, V)
        return run_ours(job, X, V)


def launch(job):
    threads = str(job["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    env["OPENBLAS_NUM_THREADS"] = threads
    return peers.spawn([sys.executable, __file__, "--worker", json.dumps(job)], env)


def collect(proc):
    code, out, err = peers.finished(proc)
    if code:
        return {"failure": err[-2000:]}
    return {"rows": json.loads(out.strip().splitlines()[-1])}


def markdown(results, args, meta):
    budgets = args.budgets
    head = " | ".join(f"NLL at {b:g} min (epochs)" for b in budgets)
    lines = [
        f"Time to quality, {meta['date']} · {meta['machine']} · torch {meta['torch']}.",
        "",
        f"Static binarized MNIST, {args.n_train} training rows; validation NLL (nats) of "
        f"{args.n_val} validation rows, {args.eval_samples} importance samples; MLP "
        f"784-{peers.HIDDEN}-{peers.LATENT}, batch {peers.BATCH}, Adam {peers.LR:g}. "
        f"Command: `{meta['command']}`.",
        "",
        f"| contender | threads | {head} |",
        "|---|---|" + "---|" * len(budgets),
    ]
    for r in results:
        label = CONTENDERS[r["contender"]][2]
        if "failure" in r:
            cells = ["failed"] * len(budgets)
        else:
            by_budget = {row["budget_s"]: row for row in r["rows"]}
            cells = []
            for b in budgets:
                row = by_budget.get(b * 60)
                cells.append("–" if row is None else f"{row['nll']:.2f} ({row['epochs']:.2f})")
        lines.append(f"| {label} | {r['threads']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        if "rows" not in r or not r["rows"]:
            continue
        t = [row["train_s"] / 60 for row in r["rows"]]
        nll = [row["nll"] for row in r["rows"]]
        style = "-o" if r["threads"] == 1 else "--s"
        ax.plot(t, nll, style, label=f"{CONTENDERS[r['contender']][2]}, {r['threads']} thr.")
    ax.set_xscale("log")
    ax.set_xlabel("training time [min]")
    ax.set_ylabel("validation NLL [nats]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 10, 60], help="minutes")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS)
    )
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--eval-samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, < 1 min")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    if args.quick:
        args.budgets, args.threads = [0.05, 0.1], [1]
        args.n_train, args.n_val, args.eval_samples = 2000, 20, 50
    contenders = list(args.contenders)
    if "pythae-vamp" in contenders and importlib.util.find_spec("pythae") is None:
        print("pythae is not importable (pip install .[bench]): its rows are skipped.")
        contenders.remove("pythae-vamp")
    import torch

    meta = dict(
        date=datetime.datetime.now().isoformat(timespec="minutes"),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        torch=torch.__version__,
        command="python benchmarks/time_to_quality.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    )
    jobs = [
        dict(
            contender=c,
            peer=CONTENDERS[c][0],
            model=CONTENDERS[c][1],
            threads=t,
            budgets_s=[b * 60 for b in args.budgets],
            n_train=args.n_train,
            n_val=args.n_val,
            n_eval_samples=args.eval_samples,
            seed=args.seed,
        )
        for t in args.threads
        for c in contenders
    ]
    results, running = [], []
    for job in jobs:
        while len(running) >= args.jobs:
            j, proc = running.pop(0)
            results.append(dict(j, **collect(proc)))
        running.append((job, launch(job)))
    results += [dict(j, **collect(proc)) for j, proc in running]
    table = markdown(results, args, meta)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "time_to_quality.md").write_text(table, encoding="utf-8")
    (args.out / "time_to_quality.json").write_text(
        json.dumps(dict(meta=meta, results=results), indent=1), encoding="utf-8"
    )
    figure(results, args.out / "time_to_quality.png")
    return results


if __name__ == "__main__":
    main()
