"""Smoke run of benchmarks/chairs.py (``--quick``) and its pose measures."""

import json

import numpy as np
import pytest


def test_chairs_quick_runs(tmp_path, load_benchmark):
    pytest.importorskip("matplotlib")
    chairs = load_benchmark("chairs")
    summary = chairs.main(["--quick", "--out", str(tmp_path)])
    table = (tmp_path / "chairs.md").read_text(encoding="utf-8")
    assert "| measure | paper (pictures only) | VHP + REWO | IWAE |" in table
    for label in ("realism", "sharpness", "smoothness factor", "turns the short way"):
        assert label in table
    raw = json.loads((tmp_path / "chairs.json").read_text(encoding="utf-8"))
    for name in ("VHP + REWO", "IWAE"):
        rec = raw["results"][name]
        assert len(rec["a"]["turn"]) == len(rec["b"]["smoothness"]) == 3
        s = summary[name]
        assert 0 < s["realism_rms"]["both"] < 1 and s["sharpness"]["both"] > 0
    assert (tmp_path / "chairs_interpolations.png").stat().st_size > 0


def test_turn_stats_reads_short_and_long_ways(load_benchmark):
    chairs = load_benchmark("chairs")
    step = 360 / 31
    short = np.array([350.0, 0.0, 10.0, 20.0, 40.0, 60.0, 80.0])  # +90 across 0
    t = chairs.turn_stats(short, step)
    assert t["short_way"] and t["net_turn"] == pytest.approx(90.0)
    assert t["max_step_views"] == pytest.approx(20 / step)
    long = 350.0 - np.linspace(0, 270, 10)  # -270: the long way round
    t = chairs.turn_stats(long, step)
    assert not t["short_way"] and t["net_turn"] == pytest.approx(-270.0)
    jump = np.array([0.0, 0.0, 90.0])  # short way, in one jump
    t = chairs.turn_stats(jump, step)
    assert t["short_way"] and t["max_step_views"] > 7


def test_resample_is_equally_spaced_by_arc_length(load_benchmark):
    chairs = load_benchmark("chairs")
    poly = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 1.0]])
    pts = chairs.resample(poly, 5)
    np.testing.assert_allclose(pts, [[0, 0], [1, 0], [2, 0], [3, 0], [3, 1]])
