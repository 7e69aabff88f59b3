"""Model selection with the cheap ``score``: ranking against 5000 importance samples.

``GridSearchCV`` scores each held-out fold with ``VHPEstimator.score``, which
uses ``n_score_samples`` importance samples per row (``"auto"``: 100) instead
of ``score_samples``' ``n_eval_samples`` (1000). This script runs one small
``GridSearchCV`` on ``load_digits`` (/16, the 1,347-row training split:
``n_components`` × ``prior``, ``cv=3``) and scores every fitted fold with
several sample counts and with the reference (5000, the paper's), timing each
``score`` call. It prints, per sample count, the time per call, the rank
correlation of the candidates' mean scores (and of the single fold scores)
with the reference's, and whether the best candidate is the same; then the
fit and score times of a default digits fit.

    python benchmarks/model_selection.py            # 9 candidates x 3 folds
    python benchmarks/model_selection.py --quick    # a smoke run (seconds)

Timings are for one torch thread (``--threads``); compare them as ratios
within one run.
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

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split

from sklearn_vhp import VHPEstimator


def digits():
    X = load_digits().data / 16.0
    return train_test_split(X, test_size=0.25, random_state=0)


def timed_scorer(n_samples, times, dtype=None):
    """A scorer: ``score`` at ``n_samples`` samples per row, its wall time appended."""

    def scorer(est, X, y=None):
        X = X if dtype is None else np.asarray(X, dtype=dtype)
        est.set_params(n_score_samples=n_samples)
        start = time.perf_counter()
        value = est.score(X)
        times.append(time.perf_counter() - start)
        return value

    return scorer


def search(X, grid, counts, reference, max_iter, hidden):
    times = {}
    scoring = {}
    for name, n, dtype in [(f"S={n}", n, None) for n in counts] + [
        ("S=100, float32", 100, np.float32),
        (f"S={reference}", reference, None),
    ]:
        times[name] = []
        scoring[name] = timed_scorer(n, times[name], dtype)
    est = VHPEstimator(max_iter=max_iter, hidden_layer_sizes=hidden, random_state=0)
    gs = GridSearchCV(est, grid, cv=3, scoring=scoring, refit=False, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs.fit(X)
    return gs.cv_results_, times


def rank_rows(results, times, reference, n_folds=3):
    ref = f"S={reference}"
    ref_mean = results[f"mean_test_{ref}"]
    ref_folds = np.concatenate([results[f"split{k}_test_{ref}"] for k in range(n_folds)])
    best = int(np.argmax(ref_mean))
    rows = []
    for name in times:
        mean = results[f"mean_test_{name}"]
        folds = np.concatenate([results[f"split{k}_test_{name}"] for k in range(n_folds)])
        rows.append(
            (
                name,
                float(np.mean(times[name])),
                float(np.mean(times[ref]) / np.mean(times[name])),
                spearmanr(mean, ref_mean).statistic,
                kendalltau(mean, ref_mean).statistic,
                spearmanr(folds, ref_folds).statistic,
                int(np.argmax(mean)) == best,
                float(np.mean(mean - ref_mean)),
            )
        )
    return rows, results["params"][best]


def default_fit(X_train, X_test, max_iter):
    est = VHPEstimator(random_state=0, max_iter=max_iter)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_train)
    t_fit = time.perf_counter() - start
    start = time.perf_counter()
    est.score(X_test)
    t_score = time.perf_counter() - start
    start = time.perf_counter()
    est.score_samples(X_test)
    t_samples = time.perf_counter() - start
    start = time.perf_counter()
    est.score_samples(X_test.astype(np.float32))
    t_samples32 = time.perf_counter() - start
    return est, t_fit, t_score, t_samples, t_samples32


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-iter", type=int, default=30, help="epochs of each search fit")
    parser.add_argument("--reference", type=int, default=5000)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 30, 100, 300])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X_train, X_test = digits()
    grid = {"n_components": [2, 5, 10], "prior": ["vhp", "standard", "vamp"]}
    hidden, default_iter = "auto", "auto"
    if args.quick:
        X_train, X_test = X_train[:300], X_test[:100]
        grid = {"n_components": [2, 5], "prior": ["vhp", "standard"]}
        args.max_iter, args.reference, args.counts, hidden = 2, 300, [10, 100], (16,)
        default_iter = 2
    results, times = search(X_train, grid, args.counts, args.reference, args.max_iter, hidden)
    rows, best = rank_rows(results, times, args.reference)
    est, t_fit, t_score, t_samples, t_samples32 = default_fit(X_train, X_test, default_iter)

    print(
        f"# Model selection scores · {datetime.date.today()} · "
        f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
        f"torch {torch.__version__} · {torch.get_num_threads()} thread(s) · "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print()
    n_cand = len(results["params"])
    print(
        f"GridSearchCV(cv=3) over {grid} ({n_cand} candidates, max_iter={args.max_iter}) "
        f"on {len(X_train)} digits rows; each held-out fold ({len(X_train) // 3} rows) "
        f"scored with S importance samples per row. Reference: S={args.reference}; "
        f"its best candidate: {best}."
    )
    print()
    print(
        "| S per row | time per score [s] | × faster than reference | Spearman "
        "(candidates) | Kendall (candidates) | Spearman (all folds) | same best | "
        "mean − reference [nats] |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, t, speed, rho, tau, rho_f, same, shift in rows:
        label = f"{name} (default)" if name == "S=100" else name
        print(
            f"| {label} | {t:.3f} | {speed:.1f} | {rho:.3f} | {tau:.3f} | {rho_f:.3f} | "
            f"{'yes' if same else 'no'} | {shift:+.3f} |"
        )
    print()
    print(
        f"Default fit (max_iter={default_iter!r}, {est.n_iter_} epochs, hidden "
        f"{est.hidden_layer_sizes_}) on {len(X_train)} rows, scored on {len(X_test)} rows:"
    )
    print()
    print("| call | time [s] | ratio to fit |")
    print("|---|---|---|")
    for name, t in [
        ("fit", t_fit),
        ("score (n_score_samples='auto': 100)", t_score),
        ("score_samples (n_eval_samples=1000), float64 rows", t_samples),
        ("score_samples (n_eval_samples=1000), float32 rows", t_samples32),
    ]:
        print(f"| {name} | {t:.2f} | {t / t_fit:.2f} |")
    return rows


if __name__ == "__main__":
    main()
