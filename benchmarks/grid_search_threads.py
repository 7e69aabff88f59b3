"""GridSearchCV with ``n_jobs=1`` against ``n_jobs=2``: no oversubscription.

joblib's process workers set ``OMP_NUM_THREADS`` to ``cpu_count // n_jobs``
before torch starts in them, and torch sizes its thread pool from it, so
``n_jobs=2`` on 2 cores runs two 1-thread fits instead of two 2-thread fits
fighting for the cores. This script times the same search (``kappa`` × 2,
``cv=3``: 6 fits and a refit on pendulum images) both ways, in the same run,
and prints the threads each fit saw and the wall-time ratio (target: n_jobs=2
not slower than n_jobs=1).

    python benchmarks/grid_search_threads.py
    python benchmarks/grid_search_threads.py --quick
"""

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from pathlib import Path

try:
    import sklearn_vhp  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from sklearn.model_selection import GridSearchCV

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import make_pendulum


class ThreadRecordingVHP(VHPEstimator):
    """VHPEstimator that remembers how many torch threads its fit ran with."""

    def fit(self, X, y=None):
        self.fit_threads_ = torch.get_num_threads()
        return super().fit(X, y)


def search(X, n_jobs, epochs, hidden):
    est = ThreadRecordingVHP(
        hidden_layer_sizes=hidden, max_iter=epochs, n_eval_samples=100, random_state=0
    )
    grid = GridSearchCV(est, {"kappa": [0.05, 0.1]}, cv=3, n_jobs=n_jobs, return_train_score=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid.fit(X)
    return time.perf_counter() - start, grid


def worker_threads(n_jobs):
    """torch threads in each of joblib's worker processes (the pool GridSearchCV uses)."""
    from joblib import Parallel, delayed

    return sorted(set(Parallel(n_jobs=n_jobs)(delayed(torch.get_num_threads)() for _ in range(4))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    hidden = (256,) * 4
    if args.quick:
        args.rows, args.epochs, hidden = 300, 1, (16,)
    X, _ = make_pendulum(n_samples=args.rows, random_state=0)
    # Warm up the parent and a first pool of workers outside the timings.
    search(X[:100], 2, 1, (8,))
    t1, g1 = search(X, 1, args.epochs, hidden)
    t2, g2 = search(X, 2, args.epochs, hidden)
    same = g1.best_params_ == g2.best_params_
    print(
        f"# GridSearchCV threads · {datetime.date.today()} · "
        f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
        f"torch {torch.__version__}"
    )
    print()
    print(
        f"6 fits + refit of VHPEstimator(hidden {hidden}, {args.epochs} epochs) on "
        f"{args.rows} pendulum images; torch threads in the parent: {torch.get_num_threads()}."
    )
    print()
    print("| n_jobs | wall time [s] | torch threads in the refit | best kappa |")
    print("|---|---|---|---|")
    print(f"| 1 | {t1:.1f} | {g1.best_estimator_.fit_threads_} | {g1.best_params_['kappa']} |")
    print(f"| 2 | {t2:.1f} | {g2.best_estimator_.fit_threads_} | {g2.best_params_['kappa']} |")
    print()
    print(f"torch threads in the n_jobs=2 worker processes: {worker_threads(2)}")
    print()
    print(f"**n_jobs=1 / n_jobs=2 wall time: {t1 / t2:.2f}** (≥ 1: n_jobs=2 not slower)")
    print(f"Same best parameters both ways: {same}")
    return t1, t2


if __name__ == "__main__":
    main()
