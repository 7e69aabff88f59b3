"""Smoke run of the Table-1 benchmark script (``--quick``: tiny data, < 60 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "table1_pendulum.py"


def test_table1_quick_runs(tmp_path):
    # The subprocess' own timeout keeps this test under a minute.
    pytest.importorskip("matplotlib")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "table1_pendulum.md").read_text(encoding="utf-8")
    for label in ("VHP + REWO", "VHP + GECO", "VHP, β = 1", "IWAE (L=1, K=", "VampPrior", "PCA(2)"):
        assert f"| {label}" in table
    assert "scaled" in table  # the long warm-up says it was scaled to the budget
    assert "| prior on ring |" in table
    results = json.loads((tmp_path / "table1_pendulum.json").read_text(encoding="utf-8"))
    assert all(not any("failure" in run for run in runs) for runs in results["results"].values())
    assert (tmp_path / "table1_pendulum_latents.png").stat().st_size > 0
    assert (tmp_path / "table1_pendulum_beta.png").stat().st_size > 0


def test_prior_on_ring_tells_a_ring_from_a_disc(load_benchmark):
    module = load_benchmark("table1_pendulum")
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, 2 * np.pi, 2000)
    ring = 3.0 * np.c_[np.cos(theta), np.sin(theta)] + [5.0, -1.0]
    disc = 3.0 * np.sqrt(rng.uniform(0, 1, (2000, 1))) * np.c_[np.cos(theta), np.sin(theta)]
    assert module.prior_on_ring(ring, ring) == 1.0
    # A uniform disc of the ring's radius: the share with radius ≥ 0.85 R is 1 − 0.85².
    assert module.prior_on_ring(ring, disc + [5.0, -1.0]) == pytest.approx(1 - 0.85**2, abs=0.03)
    assert module.prior_on_ring(ring, disc + [50.0, 0.0]) == 0.0


def test_pendulum_curves_measure_each_epoch_and_apply_a_candidate(load_benchmark):
    # The curves script reads the package's own budget rules (batch_size="auto"
    # is resolved by fit): three epochs of 256 renders, the decay candidate
    # reaching a tenth of the step size at the last iteration.
    import torch

    curves = load_benchmark("pendulum_curves")
    threads = torch.get_num_threads()
    try:
        result = curves.run("decay0.1_0.5", 0, n_samples=400, n_train=256, max_iter=3)
    finally:
        torch.set_num_threads(threads)
    assert [row["epoch"] for row in result["curve"]] == [1, 2, 3]
    assert result["n_iter"] == 3 and 0 <= result["angle"] <= np.pi
    assert result["curve"][0]["lr"] == pytest.approx(1e-3)
    assert result["curve"][-1]["lr"] == pytest.approx(1e-4, rel=1e-6)


def test_defaults_suite_quick_runs(tmp_path, load_benchmark):
    suite = load_benchmark("defaults_suite")
    (row,) = suite.main(["--quick", "--datasets", "wine", "--out", str(tmp_path)])
    table = (tmp_path / "defaults_suite.md").read_text(encoding="utf-8")
    assert "| wine | 133 × 13 |" in table and "* wine: " in table
    assert row["pca_score"] is not None and row["kind"] == "class"
    # The density table: the defaults against GMM / KDE / PPCA, with fit times.
    assert "| data set | VHP defaults | fit [s] | GMM (best k) |" in table
    density = row["density"]
    assert {"gmm", "kde", "ppca"} <= set(density)
    assert all(np.isfinite(density[m]["score"]) for m in ("gmm", "kde", "ppca"))
    assert density["ppca"]["score"] == pytest.approx(row["pca_score"])


def test_defaults_suite_verdict_names_each_failed_criterion(load_benchmark):
    verdict = load_benchmark("defaults_suite").verdict
    good = dict(
        phase="main",
        beta=1.0,
        converged=True,
        score=-10.0,
        standard_score=-10.3,
        pca_score=-12.0,
        vhp_knn=0.9,
        pca_knn=0.8,
    )
    assert verdict(good) == []
    assert verdict({**good, "beta": 0.5}) == ["prior not trained to β = 1"]
    assert verdict({**good, "standard_score": -9.4}) == ["log-lik. below the standard prior's"]
    assert verdict({**good, "pca_score": -9.0}) == ["log-lik. below PCA's"]
    assert verdict({**good, "vhp_knn": 0.7}) == ["5-NN below PCA(2)'s"]
    assert verdict({**good, "pca_score": None, "vhp_knn": None}) == []


def test_time_to_quality_stops_the_clock_at_each_budget(load_benchmark):
    ttq = load_benchmark("time_to_quality")
    evaluated = []

    def evaluate():
        evaluated.append(True)
        return 100.0 - len(evaluated)

    marks = ttq.Checkpoints([0.0, 0.05], evaluate)
    marks.begin()
    marks.after_step(lambda n: n / 10)  # the first budget (0 s) is reached at once
    assert [row["nll"] for row in marks.rows] == [99.0]
    with pytest.raises(ttq._Stop):
        for _ in range(10**7):  # until 0.05 s of training have passed
            marks.after_step(lambda n: n / 10)
    assert [row["budget_s"] for row in marks.rows] == [0.0, 0.05]
    assert marks.rows[1]["train_s"] >= 0.05 and marks.rows[1]["iterations"] > 1


def test_time_to_quality_quick_runs(tmp_path):
    pytest.importorskip("matplotlib")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    script = ROOT / "benchmarks" / "time_to_quality.py"
    cmd = [sys.executable, str(script), "--quick", "--contenders", "vamp", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "time_to_quality.md").read_text(encoding="utf-8")
    assert "| VampPrior (this package) | 1 |" in table and "failed" not in table
    (result,) = json.loads((tmp_path / "time_to_quality.json").read_text())["results"]
    assert [row["budget_s"] for row in result["rows"]] == [3.0, 6.0]
    assert all(np.isfinite(row["nll"]) and row["nll"] > 0 for row in result["rows"])
    assert (tmp_path / "time_to_quality.png").stat().st_size > 0


def test_gpu_check_dry_run_lists_every_step_within_eight_minutes(tmp_path):
    # The MNIST step is listed where the data are: a folder that has them
    # (a dry run reads no file), wherever the checkout lies.
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "binarized_mnist_train.npz").touch()
    script = ROOT / "benchmarks" / "gpu_check.py"
    cmd = [sys.executable, str(script), "--dry-run", "--out", str(out)]
    env = {**os.environ, "SKLEARN_VHP_DATA": str(data)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in ("env", "cuda_tests", "fit_rate", "nll_eval", "mnist_nll"):
        assert f"[{step}, " in proc.stdout
    assert "--device cuda" in proc.stdout and "-k 'cuda or gpu'" in proc.stdout
    total = int(proc.stdout.split("total limit ")[1].split(" s")[0])
    assert total <= 8 * 60
    assert not out.exists() or not any(out.iterdir())  # a dry run writes nothing


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_step_on_the_cpu(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), "--tiny", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["rc"] for s in summary] == [0] * len(summary)
    assert json.loads((tmp_path / "fit_rate.json").read_text())["rows"]
