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


def test_graph_turns_a_chair_where_pose_is_a_circle_not_in_pixel_space(load_benchmark):
    # The reference graphs' machinery on one chair's renders at fine azimuths.
    # Codes that are the azimuth on a circle: the path from azimuth a to
    # a + 90 passes through the views between, read as a short turn in small
    # steps. The renders themselves in pixel space: a view 90 degrees away is
    # among a render's 18 nearest, so the path jumps there in one hop, as it
    # does on the benchmark's chairs (docs/benchmarks/chairs.md).
    chairs = load_benchmark("chairs")
    from sklearn.metrics import pairwise_distances_argmin

    from sklearn_vhp.datasets import make_chairs

    fine = make_chairs(1, azimuths=124, elevations=[20], image_size=32, random_state=3)
    grid = make_chairs(1, azimuths=31, elevations=[20], image_size=32, random_state=3)
    angle = np.deg2rad(fine.azimuth)
    circle = np.c_[np.cos(angle), np.sin(angle)]
    pose = chairs.GivenNodes(
        circle,
        encode=lambda X: circle[pairwise_distances_argmin(X, fine.data)],
        decode=lambda Z: fine.data[pairwise_distances_argmin(Z, circle)],
    )
    start, end = fine.data[8], fine.data[8 + 31]  # +90 degrees
    for nodes, turns_smoothly in ((pose, True), (chairs.GivenNodes(fine.data), False)):
        interp = chairs.reference_graph(nodes, fine.data[:2], 0)
        frames = chairs.graph_frames(interp, [(start, end)], 12)
        (t,) = chairs.turns(frames, grid.data, grid.azimuth, 360 / 31)
        assert t["short_way"]
        assert (t["max_step_views"] <= chairs.MAX_STEP_VIEWS) == turns_smoothly
