"""Smoke run of the human-motion benchmark (``benchmarks/mocap.py --quick``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "mocap.py"
SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "cmu_mocap" / "14_14.amc.gz").exists(), reason="no shared data")
def test_mocap_quick_runs(tmp_path):
    pytest.importorskip("matplotlib")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--settings", "defaults", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "mocap.md").read_text(encoding="utf-8")
    assert "| | VHP + REWO | VampPrior | IWAE |" in table
    assert "| pairs with a path |" in table
    results = json.loads((tmp_path / "mocap_defaults.json").read_text(encoding="utf-8"))
    assert results["meta"]["holdout"] == "14_14" and "14_14" not in results["meta"]["train"]
    for run in results["results"].values():
        assert run["found"] <= run["pairs"]
        assert len(run["smooth_joint_mean"]) == len(results["meta"]["joints"]) == 24
        assert 0.0 <= run["knn5"] <= 1.0 and np.isfinite(run["loglik"])
    for fig in ("latents", "graph", "strips", "smoothness"):
        assert (tmp_path / f"mocap_defaults_{fig}.png").stat().st_size > 0


def test_per_joint_smoothness_groups_a_joints_channels(load_benchmark):
    mocap = load_benchmark("mocap")
    names = ["a.rx", "a.ry", "b.rx"]
    groups = mocap.joint_groups(names)
    assert groups == {"a": [0, 1], "b": [2]}
    t = np.arange(5.0)
    # a moves along a straight line (no second difference), b along a parabola.
    decoded = np.c_[t, 2 * t, t**2]
    np.testing.assert_allclose(mocap.per_joint_smoothness(decoded, groups), [0.0, 2.0])
