"""The prepared GPU check (issue 27, point 4): CUDA tests, throughput and NLL in < 8 minutes.

One command for the day a GPU is lent: it runs, in order, each step in its
own process with its own time limit (a failing or slow step is recorded and
the next one runs), and writes every step's output and a summary
(``summary.md``, ``summary.json``) under ``$OUT`` (the device tool's output
folder) or ``--out``:

1. ``env``: ``nvidia-smi`` and torch's view of the device.
2. ``cuda_tests``: the tests that need a CUDA device (skipped on a CPU):
   ``tests/test_custom_networks.py`` and ``tests/test_reliability.py``,
   ``-k "cuda or gpu"``.
3. ``fit_rate``: fit throughput (iterations/s, the second of two fits so
   that CUDA's start-up is not counted) of the MLP 784-512-40 of
   ``benchmarks/peers.py`` (batch 100) for the VAE, the VampPrior (500
   pseudo-inputs) and VHP + REWO on static binarized MNIST, and for VHP +
   REWO also at batch 1,000 (a GPU's regime).
4. ``nll_eval``: ``benchmarks/nll_eval.py`` (``score_samples`` throughput in
   (row, sample) pairs per second; 1,000 rows × 5,000 samples) for the VHP
   and the VampPrior. Its "fraction of matmul" column compares with the
   CPU's matmul: on a GPU read the pairs/s.
5. ``mnist_nll``: ``benchmarks/mnist_nll.py --budget-minutes`` for VHP +
   REWO and the VampPrior on the device: the validation NLL (1,000 rows,
   5,000 importance samples) after an equal wall-clock budget.

The MNIST files are looked up by :func:`data_home`: on the device tool's
machine (which gets the working tree, not ``../shared``) copy them first,
``mkdir -p shared && cp -r ../shared/data shared/`` (2 MB); without them the
throughput runs on random bits and the ``mnist_nll`` step is skipped.

Sizes (H100, estimated): 1 + 1 + 1.5 + 1 + 3 minutes, with limits that
stop the whole at 8 minutes. ``--tiny`` runs every step with tiny sizes on
the CPU (under two minutes; the check that the script works, see
``tests/test_benchmarks_quick.py``); ``--dry-run`` prints the commands only.

Usage (from the repository root)::

    python benchmarks/gpu_check.py                 # on the GPU machine, writes under $OUT
    python benchmarks/gpu_check.py --tiny --out /tmp/gpu_check
    python benchmarks/gpu_check.py --dry-run
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_home():
    """The first folder with static binarized MNIST: ``$SKLEARN_VHP_DATA``,
    ``shared/data`` in the checkout (where the device tool puts a copy) or
    beside it; ``None`` if none has it."""
    homes = [os.environ.get("SKLEARN_VHP_DATA"), ROOT / "shared" / "data"]
    homes.append(ROOT.parent / "shared" / "data")
    for home in filter(None, homes):
        if (Path(home) / "binarized_mnist_train.npz").is_file():
            return Path(home)
    return None


#: Step name -> time limit in seconds (full run); the sum stays under 8 minutes.
LIMITS = {"env": 30, "cuda_tests": 90, "fit_rate": 100, "nll_eval": 70, "mnist_nll": 170}


def steps(args):
    """The ``(name, command, limit_s)`` of each step."""
    py = sys.executable
    tiny = args.tiny
    device = "cpu" if tiny else "cuda"
    fit_rate = [py, __file__, "--fit-rate-worker", device, str(args.out / "fit_rate.json")]
    if tiny:
        fit_rate.append("--tiny")
    nll = [py, str(ROOT / "benchmarks" / "nll_eval.py")]
    nll += ["--quick", "--threads", "1"] if tiny else ["--rows", "1000", "--samples", "5000"]
    home = data_home()
    mnist = [py, str(ROOT / "benchmarks" / "mnist_nll.py"), "--device", device]
    mnist += ["--methods", "rewo", "vamp", "--out", str(args.out / "mnist_nll")]
    if home is None:  # nothing to train on: say so in the summary
        mnist = ["bash", "-c", "echo 'skipped: no binarized MNIST (see data_home)'; exit 3"]
    else:
        mnist += ["--data-home", str(home)]
    if home is None:
        pass
    elif tiny:
        mnist += ["--quick", "--epochs", "1", "--threads", "1"]
    else:
        mnist += ["--budget-minutes", "1", "--eval-rows", "1000", "--eval-samples", "5000"]
    env_cmd = (
        "nvidia-smi || true; "
        f'{shlex.quote(py)} -c "import torch; print(torch.__version__, '
        "torch.cuda.is_available(), torch.cuda.is_available() and "
        'torch.cuda.get_device_name(0))"'
    )
    tests = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or gpu"]
    tests += ["tests/test_custom_networks.py", "tests/test_reliability.py"]
    cmds = [
        ("env", ["bash", "-c", env_cmd]),
        ("cuda_tests", tests),
        ("fit_rate", fit_rate),
        ("nll_eval", nll + ["--prior", "vhp"]),
        ("nll_eval_vamp", nll + ["--prior", "vamp"]),
        ("mnist_nll", mnist),
    ]
    limits = dict(LIMITS, nll_eval_vamp=0)
    limits["nll_eval"] = limits["nll_eval_vamp"] = LIMITS["nll_eval"] / 2
    return [(name, cmd, 120 if tiny else limits[name]) for name, cmd in cmds]


def fit_rate_worker(device, out, tiny):
    """Iterations per second of ``fit`` (the second of two fits), written to ``out``."""
    import warnings

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from sklearn_vhp import VHPEstimator
    from sklearn_vhp.datasets import load_binarized_mnist

    if device == "cpu":
        torch.set_num_threads(1)
    home = data_home()
    if home is not None:
        X = load_binarized_mnist("train", data_home=home).astype(np.float32)
    else:  # the throughput does not depend on the data's values
        X = (np.random.default_rng(0).random((50000, 784)) < 0.13).astype(np.float32)
    X = X[: 1000 if tiny else 20000]
    rows = []
    cases = [
        ("vae", dict(prior="standard", schedule="constant"), 100),
        ("vamp", dict(prior="vamp", schedule="constant"), 100),
        ("vhp + rewo", dict(prior="vhp"), 100),
        ("vhp + rewo", dict(prior="vhp"), 1000),
    ]
    for name, kw, batch in cases:
        est = VHPEstimator(
            n_components=40,
            hidden_layer_sizes=(512,),
            batch_size=batch,
            n_pseudo_inputs=20 if tiny else 500,
            max_iter=1 if tiny else 2,
            device=device,
            random_state=0,
            **kw,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)  # start-up (CUDA context, kernels) not counted
            t = time.perf_counter()
            est.fit(X)
            seconds = time.perf_counter() - t
        iterations = len(est.history_["loss"])
        rows.append(
            dict(
                model=name,
                batch=batch,
                iterations=iterations,
                seconds=seconds,
                it_per_s=iterations / seconds,
                rows_per_s=iterations * batch / seconds,
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    Path(out).write_text(json.dumps(dict(device=device, rows=rows), indent=1), encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="default: $OUT, else ./gpu_check")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (< 2 min)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument(
        "--fit-rate-worker", nargs=2, metavar=("DEVICE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.fit_rate_worker:
        fit_rate_worker(*args.fit_rate_worker, tiny=args.tiny)
        return None
    args.out = (args.out or Path(os.environ.get("OUT") or "gpu_check")).resolve()
    plan = steps(args)
    if args.dry_run:
        for name, cmd, limit in plan:
            print(f"[{name}, ≤ {limit:.0f} s] {shlex.join(cmd)}")
        print(f"total limit {sum(limit for *_, limit in plan):.0f} s; output under {args.out}")
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    if args.tiny:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    summary = []
    for name, cmd, limit in plan:
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=limit, env=env, cwd=ROOT
            )
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc = "timeout"
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        seconds = time.perf_counter() - start
        (args.out / f"{name}.log").write_text(f"$ {shlex.join(cmd)}\n{out}\n--- stderr\n{err}")
        tail = (out.strip().splitlines() or [""])[-1][:200]
        summary.append(dict(step=name, rc=rc, seconds=round(seconds, 1), last_line=tail))
        print(f"{name}: rc={rc} in {seconds:.0f} s; {tail}", flush=True)
    lines = ["| step | exit | seconds | last line of output |", "|---|---|---|---|"]
    lines += [f"| {s['step']} | {s['rc']} | {s['seconds']} | {s['last_line']} |" for s in summary]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main()
