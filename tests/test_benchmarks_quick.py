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
