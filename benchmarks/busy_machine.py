"""fit and score_samples beside busy processes: 1 thread, torch's default, the new rule.

torch runs each operation on ``torch.get_num_threads()`` OpenMP threads that
wait for each other; when another process holds a core, a small network's
many small operations keep waiting for a descheduled thread. Each public
method of ``VHPEstimator`` now lowers the thread count for its call to the
idle cores (``/proc/loadavg``'s runnable tasks; see the user guide's
"Threads" section). This script times a digits fit (``load_digits`` / 16,
1,347 rows, default settings but ``--max-iter`` epochs) and
``score_samples`` of 450 rows (``n_eval_samples=1000``), each in a fresh
process, with

* ``1 thread``: ``torch.set_num_threads(1)``;
* ``torch default, rule off``: torch's own count, every call keeps it (the
  behaviour before the rule; the child replaces ``busy_cores``, the rule's
  one reading of the machine, by 0);
* ``new default``: torch's own count and the rule;

on the machine as it is ("quiet") and beside ``--busy`` processes running
``while True: pass``. Runs alternate; ratios are to the 1-thread run of the
same condition.

    python benchmarks/busy_machine.py              # 20 epochs, 2 repeats
    python benchmarks/busy_machine.py --quick      # a smoke run
    python benchmarks/busy_machine.py --busy 2 --max-iter auto
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = {"1": "1 thread", "off": "torch default, rule off", "auto": "new default"}


def child(mode, max_iter, score_rows, n_eval, rows):
    """One measurement in this (fresh) process; prints a JSON line."""
    import warnings

    import torch

    try:
        import sklearn_vhp  # noqa: F401
    except ImportError:  # pragma: no cover - source checkout
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from sklearn_vhp import VHPEstimator

    if mode == "1":
        torch.set_num_threads(1)
    elif mode == "off":
        from sklearn_vhp import _settings

        _settings.busy_cores = lambda: 0  # the rule sees an idle machine: torch's count
    X_train, X_test = train_test_split(load_digits().data / 16.0, test_size=0.25, random_state=0)
    X_train = X_train[:rows]
    est = VHPEstimator(
        max_iter=max_iter if max_iter == "auto" else int(max_iter),
        n_eval_samples=n_eval,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_train)
    t_fit = time.perf_counter() - start
    start = time.perf_counter()
    scores = est.score_samples(X_test[:score_rows])
    t_score = time.perf_counter() - start
    print(
        json.dumps(
            dict(
                fit=t_fit,
                score=t_score,
                threads=torch.get_num_threads(),
                loss=float(est.history_["loss"][-1]),
                mean_score=float(scores.mean()),
            )
        )
    )


def run_child(mode, args):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)  # torch's own default in the child
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, __file__, "--child", mode, "--max-iter", str(args.max_iter)]
    cmd += ["--score-rows", str(args.score_rows), "--n-eval", str(args.n_eval)]
    cmd += ["--rows", str(args.rows)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_busy(n):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(1.0)
    return procs


def stop(procs):
    for p in procs:
        p.kill()
        p.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-iter", default="20", help="epochs of the fit, or 'auto'")
    parser.add_argument("--rows", type=int, default=1347, help="training rows (at most 1347)")
    parser.add_argument("--score-rows", type=int, default=450)
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.max_iter, args.score_rows, args.n_eval, args.rows)
    if args.quick:
        args.max_iter, args.rows, args.score_rows, args.n_eval = "1", 200, 50, 50
        args.repeats = 1
    results = {}
    for condition in ("quiet", "busy"):
        procs = start_busy(args.busy) if condition == "busy" else []
        try:
            loads = []
            for rep in range(args.repeats):
                order = list(MODES) if rep % 2 == 0 else list(MODES)[::-1]
                for mode in order:
                    loads.append(os.getloadavg()[0])
                    results.setdefault((condition, mode), []).append(run_child(mode, args))
        finally:
            stop(procs)
        results[condition, "load"] = statistics.mean(loads)

    import torch

    print(
        f"# Busy machine · {datetime.date.today()} · "
        f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
        f"torch {torch.__version__} (default {torch.get_num_threads()} threads)"
    )
    print()
    print(
        f"Digits fit ({min(args.rows, 1347)} rows, max_iter={args.max_iter}) and score_samples of "
        f"{args.score_rows} rows (n_eval_samples={args.n_eval}), each in a fresh process; "
        f"busy: {args.busy} × `while True: pass`; median of {args.repeats} alternating runs; "
        "ratio: time / the 1-thread time of the same condition."
    )
    print()
    print(
        "| condition (mean 1-min load) | threads | fit [s] | fit ratio | score_samples [s] "
        "| score ratio | same fit as 1 thread | same scores as 1 thread |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for condition in ("quiet", "busy"):
        base = results[condition, "1"]
        fit1 = statistics.median(r["fit"] for r in base)
        score1 = statistics.median(r["score"] for r in base)
        for mode, label in MODES.items():
            runs = results[condition, mode]
            fit = statistics.median(r["fit"] for r in runs)
            score = statistics.median(r["score"] for r in runs)
            same_fit = all(r["loss"] == base[0]["loss"] for r in runs)
            same_score = all(r["mean_score"] == base[0]["mean_score"] for r in runs)
            print(
                f"| {condition} ({results[condition, 'load']:.1f}) | {label} | {fit:.2f} | "
                f"{fit / fit1:.2f} | {score:.2f} | {score / score1:.2f} | "
                f"{'yes' if same_fit else 'no'} | {'yes' if same_score else 'no'} |"
            )
    return results


if __name__ == "__main__":
    main()
