"""Smoke runs of the performance benchmarks (seconds each): they run and print their tables."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nll_eval_quick_prints_fraction(capsys):
    fraction = _load("nll_eval").main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    assert 0 < fraction < 2
    assert "fraction of float32 matmul" in out and "float64 rows" in out


def test_import_time_reports_increment_without_numba(capsys):
    increment, numba, pynnd = _load("import_time").main(repeats=1)
    assert increment > 0
    assert not numba and not pynnd
    assert "sklearn_vhp on top" in capsys.readouterr().out
