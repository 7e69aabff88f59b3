"""Fit time and held-out density of the defaults against ``GaussianMixture`` on image patches.

Issue 29's target: on 16,000 8 × 8 grey patches of ``load_sample_images()``
(/255; 4,000 held out) the defaults at ``n_components`` ≤ 16 reach the best
``GaussianMixture``'s held-out log-likelihood with a fit of at most three
times ``GaussianMixture(10)``'s. Each model is fitted ``--repeats`` times in
this process, in rounds of every model in turn (take the timings on an
idle machine);
the table gives the median fit time, its ratio to ``GaussianMixture(10)``'s,
and the mean held-out ``score_samples`` on the first ``--score-rows``
held-out rows (``n_eval_samples=1000`` importance samples for this
package).

Usage::

    python benchmarks/density_fit_time.py                  # 2 threads, 3 repeats
    python benchmarks/density_fit_time.py --threads 1 --n-components 2 8
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-components", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--gmm", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--score-rows", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch
    from density_table import load_patches
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    from sklearn_vhp import VHPEstimator

    torch.set_num_threads(args.threads)
    X_train, X_test = load_patches()
    X_score = X_test[: args.score_rows]
    models = [
        (f"GaussianMixture({k}, 'full')", lambda k=k: GaussianMixture(k, random_state=0))
        for k in args.gmm
    ]
    models += [
        (
            f"VHPEstimator(n_components={d})",
            lambda d=d: VHPEstimator(n_components=d, random_state=0),
        )
        for d in args.n_components
    ]
    times = {name: [] for name, _ in models}
    fitted = {}
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Rounds of every model in turn: the machine's speed drifts over
        # minutes, and each model gets its share of every phase of it.
        for _ in range(args.repeats):
            for name, make in models:
                fitted[name] = make()
                start = time.perf_counter()
                fitted[name].fit(X_train)
                times[name].append(time.perf_counter() - start)
        rows = [
            (name, statistics.median(times[name]), float(np.mean(model.score_samples(X_score))))
            for name, model in fitted.items()
        ]
    reference = dict((n, t) for n, t, _ in rows).get("GaussianMixture(10, 'full')")
    print(
        f"# Patches 16,000 x 64 · {platform.machine()} · {os.cpu_count()} CPUs · "
        f"torch {torch.__version__} · {args.threads} thread(s) · median of {args.repeats} fits\n"
    )
    print("| model | fit [s] | × GaussianMixture(10) | held-out nats per patch |")
    print("|---|---|---|---|")
    for name, t, score in rows:
        ratio = f"{t / reference:.2f}" if reference else "—"
        print(f"| {name} | {t:.1f} | {ratio} | {score:.2f} |")


if __name__ == "__main__":
    main()
