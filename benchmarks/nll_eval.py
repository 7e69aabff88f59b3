"""Throughput of ``score_samples`` against the machine's float32 matmul rate.

``score_samples`` runs the decoder (and the prior's networks) once per
(row, importance sample) pair. This script fits a small-budget MLP
``VHPEstimator`` on 784-d binary data (static binarized MNIST when
``../shared/data`` has it, random bits otherwise: the throughput does not
depend on the weights), then, in the same run:

1. counts the floating-point operations of one ``score_samples`` call with
   ``torch.utils.flop_counter.FlopCounterMode`` (matrix products only, on a
   small call, per pair);
2. times ``score_samples`` on ``--rows`` float32 rows with
   ``n_eval_samples = --samples`` (median of ``--repeats``), and on float64
   rows for comparison;
3. times ``torch.mm`` on square float32 matrices (``--mm-size``) doing the
   same number of operations, in the same threads: the machine's float32
   matmul rate.

It prints pairs per second, the achieved GFLOP/s and its fraction of the
matmul rate (target ≥ 50 %).

    python benchmarks/nll_eval.py                     # all cores
    python benchmarks/nll_eval.py --threads 1 --rows 100
"""

import argparse
import datetime
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

try:
    import sklearn_vhp  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import load_binarized_mnist


def load_data(n, seed):
    data_home = Path(__file__).resolve().parents[2] / "shared" / "data"
    try:
        X = load_binarized_mnist("valid", data_home=data_home)[:n]
        source = "static binarized MNIST (validation rows)"
    except (FileNotFoundError, OSError):
        X = (np.random.default_rng(seed).random((n, 784)) < 0.13).astype(np.float64)
        source = "random bits (MNIST files not found)"
    return X.astype(np.float32), source


def flops_per_pair(est, X, samples):
    """Matrix-product FLOPs of ``score_samples`` per (row, sample) pair."""
    est.set_params(n_eval_samples=samples)
    counter = FlopCounterMode(display=False)
    with counter:
        est.score_samples(X)
    return counter.get_total_flops() / (X.shape[0] * samples)


def matmul_rate(total_flops, size, repeats):
    """GFLOP/s of float32 ``torch.mm`` on square matrices, ``total_flops`` per timing."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    per_mm = 2 * size**3
    n_mm = max(1, round(total_flops / per_mm))
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n_mm):
            torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return n_mm * per_mm / statistics.median(times) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's")
    parser.add_argument("--n-components", type=int, default=40)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256, 256])
    parser.add_argument("--prior", default="vhp", choices=["vhp", "standard", "vamp"])
    parser.add_argument("--mm-size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="seconds: tiny sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.samples, args.repeats, args.hidden = 20, 100, 1, [64]
        args.mm_size = 256
    if args.threads:
        torch.set_num_threads(args.threads)

    X, source = load_data(max(args.rows, 500), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = VHPEstimator(
            n_components=args.n_components,
            prior=args.prior,
            hidden_layer_sizes=tuple(args.hidden),
            encoder_variance="amortized",
            n_pseudo_inputs=100,
            max_iter=1,
            random_state=0,
        ).fit(X)
    X = X[: args.rows]
    per_pair = flops_per_pair(est, X[:10], 50)
    est.set_params(n_eval_samples=args.samples)
    pairs = args.rows * args.samples

    def timed(data):
        est.score_samples(data[:2])  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            est.score_samples(data)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    t32 = timed(X)
    t64 = timed(X.astype(np.float64))
    rate = matmul_rate(per_pair * pairs, args.mm_size, args.repeats)
    achieved32 = per_pair * pairs / t32 / 1e9
    achieved64 = per_pair * pairs / t64 / 1e9

    print(
        f"# score_samples throughput · {datetime.date.today()} · "
        f"{platform.processor() or platform.machine()} · torch {torch.__version__} · "
        f"{torch.get_num_threads()} thread(s)"
    )
    print()
    print(
        f"MLP {tuple(args.hidden)}, n_components={args.n_components}, prior={args.prior!r}, "
        f"{args.rows} rows × {args.samples} samples of {source}; "
        f"{per_pair / 1e6:.3f} MFLOP (matrix products) per pair; median of {args.repeats}."
    )
    print()
    print("| run | time [s] | pairs/s | GFLOP/s | fraction of float32 matmul |")
    print("|---|---|---|---|---|")
    print(f"| `torch.mm` {args.mm_size}² float32, same FLOPs | | | {rate:.1f} | 1.00 |")
    print(
        f"| score_samples, float32 rows | {t32:.2f} | {pairs / t32:,.0f} | {achieved32:.1f} "
        f"| **{achieved32 / rate:.2f}** (target ≥ 0.50) |"
    )
    print(
        f"| score_samples, float64 rows | {t64:.2f} | {pairs / t64:,.0f} | {achieved64:.1f} "
        f"| {achieved64 / rate:.2f} |"
    )
    return achieved32 / rate


if __name__ == "__main__":
    main()
