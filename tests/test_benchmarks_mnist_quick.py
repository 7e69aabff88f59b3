"""Smoke run of the Table-2 benchmark script (``--quick``: tiny data, < 60 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sklearn_vhp.datasets import load_binarized_mnist

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "mnist_nll.py"
# Where the script looks by default (the project's shared data).
SHARED = ROOT.parent / "shared" / "data"


def _have_static_mnist():
    try:
        load_binarized_mnist("valid", data_home=SHARED)
    except FileNotFoundError:
        return False
    return True


def run(*args, timeout=60):
    """Run the script with ``--quick`` and ``args`` in its own process, one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.skipif(not _have_static_mnist(), reason="static binarized MNIST files not found")
def test_mnist_nll_quick_runs(tmp_path):
    first = tmp_path / "first"
    # Two processes, as two cores would run them: the second merges the first's rows.
    # The default device="auto" must resolve without CUDA.
    run("--methods", "rewo", "geco", "vamp", "iwae1", "iwae2", "--out", str(first))
    run(
        "--methods",
        "vae",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
        "--merge",
        str(first / "mnist_nll.json"),
    )
    table = (tmp_path / "mnist_nll.md").read_text(encoding="utf-8")
    assert table.index("VHP + REWO") < table.index("| VAE")
    for label in ("VHP + REWO", "VHP + GECO", "VampPrior", "IWAE (L=1", "IWAE (L=2", "VAE"):
        assert f"| {label}" in table
    assert 'encoder_variance="amortized"' in table and "thread(s)" in table
    results = json.loads((tmp_path / "mnist_nll.json").read_text(encoding="utf-8"))
    assert len(results["results"]) == 6
    for res in results["results"].values():
        assert "failure" not in res, res
        assert 0 < res["nll"] < 800 and res["epochs"] == 1


@pytest.mark.skipif(not _have_static_mnist(), reason="static binarized MNIST files not found")
def test_mnist_nll_budget_curves_of_the_gated_mlp(tmp_path):
    args = ["--methods", "rewo", "--architecture", "gated_mlp", "--budget-minutes", "0.05"]
    args += ["--final-learning-rate", "1e-4", "--curve-every", "2", "--decoder-dropout", "0.2"]
    run(*args, "--out", str(tmp_path), timeout=120)
    table = (tmp_path / "mnist_nll.md").read_text(encoding="utf-8")
    assert "architecture `gated_mlp`" in table and "decoder dropout 0.2" in table
    res = json.loads((tmp_path / "mnist_nll.json").read_text(encoding="utf-8"))["results"]["rewo"]
    curve = res["curve"]
    # A point every second epoch, on the budget's clock, the step size decaying.
    assert [p["epoch"] for p in curve] == list(range(2, res["epochs"] + 1, 2))
    times = [p["fit_time"] for p in curve]
    assert times == sorted(times) and times[-1] <= res["fit_time"]
    steps = [p["learning_rate"] for p in curve]
    assert steps == sorted(steps, reverse=True) and steps[0] > steps[-1]
    # NLLs in nats (finite and positive; a tiny network early on may be worse than uniform).
    assert all(0 < p["train_nll"] < 1e4 and 0 < p["eval_nll"] < 1e4 for p in curve)


def test_final_learning_rate_decays_geometrically_over_the_last_third(load_benchmark):
    import argparse

    decayed = load_benchmark("mnist_nll").decayed_learning_rate
    args = argparse.Namespace(learning_rate=1e-3, final_learning_rate=1e-4)
    assert decayed(args, 0.0) == decayed(args, 2 / 3) == 1e-3
    assert decayed(args, 5 / 6) == pytest.approx(10**-3.5)
    assert decayed(args, 1.0) == pytest.approx(1e-4) == decayed(args, 1.5)
    spent = [i / 100 for i in range(101)]
    assert all(decayed(args, a) >= decayed(args, b) for a, b in zip(spent, spent[1:]))
    # --decay-fraction 0.5: constant for the first half, then the same decay.
    args.decay_fraction = 0.5
    assert decayed(args, 0.5) == 1e-3 and decayed(args, 0.75) == pytest.approx(10**-3.5)
    args.final_learning_rate = None
    assert {decayed(args, t) for t in spent} == {1e-3}
