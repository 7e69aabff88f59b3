"""Smoke runs of the performance benchmarks (seconds each): they run and print their tables."""

import numpy as np
import pytest


def test_nll_eval_quick_prints_fraction(capsys, load_benchmark):
    fraction = load_benchmark("nll_eval").main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    assert 0 < fraction < 2
    assert "fraction of float32 matmul" in out and "float64 rows" in out


def test_import_time_reports_increment_without_numba(capsys, load_benchmark):
    increment, numba, pynnd = load_benchmark("import_time").main(repeats=1)
    assert increment > 0
    assert not numba and not pynnd
    assert "sklearn_vhp on top" in capsys.readouterr().out


def test_grid_search_workers_run_torch_with_their_share_of_threads(capsys, load_benchmark):
    import os

    module = load_benchmark("grid_search_threads")
    # joblib gives each of n_jobs process workers cpu_count // n_jobs threads;
    # torch in the worker must follow, or n_jobs=2 oversubscribes the cores.
    assert module.worker_threads(2) == [max(1, (os.cpu_count() or 1) // 2)]
    module.main(["--quick"])
    assert "n_jobs=1 / n_jobs=2 wall time" in capsys.readouterr().out


def test_out_of_core_files_are_the_training_rows_tiled(tmp_path, load_benchmark):
    """The benchmark's big files: uint8 .npy of the rows repeated, written chunk by chunk."""
    module = load_benchmark("out_of_core")
    base = np.random.RandomState(0).randint(0, 2, size=(7, 5)).astype(np.uint8)
    path = module.write_tiled(tmp_path / "tiled.npy", 23, base, chunk_rows=3)
    X = np.load(path, mmap_mode="r")
    assert X.dtype == np.uint8 and X.shape == (23, 5)
    np.testing.assert_array_equal(X, np.tile(base, (4, 1))[:23])
    assert module.rows_for_gb(6) == 7_653_061  # 6 GB of 784-byte rows


@pytest.mark.slow
def test_out_of_core_quick_prints_its_tables(capsys, load_benchmark):
    fits, pf, dask_res = load_benchmark("out_of_core").main(["--quick"])
    out = capsys.readouterr().out
    assert "peak RssAnon (GB)" in out and "partial_fit over 10 chunks" in out
    assert set(fits) == {"memory", "0.05", "0.1"}
    assert all(np.isfinite(r["nll"]) and r["rss_anon"] > 0 for r in fits.values())
    assert dask_res["max_abs_diff"] == 0.0  # dask scores = one process's, row for row


@pytest.mark.slow
def test_out_of_core_memory_table_checks_the_budget(capsys, load_benchmark):
    results = load_benchmark("out_of_core").main(["--memory-table", "--quick"])
    out = capsys.readouterr().out
    assert "bound 3 x wm + 100 (MiB)" in out and "**no**" not in out
    assert results[(0.02, 4)]["streamed"] and not results[(0.02, 64)]["streamed"]


def test_model_selection_quick_prints_the_ranking_table(capsys, load_benchmark):
    rows = load_benchmark("model_selection").main(["--quick"])
    out = capsys.readouterr().out
    assert "S=100 (default)" in out and "Spearman (candidates)" in out
    assert "score (n_score_samples='auto': 100)" in out
    reference = rows[-1]
    assert reference[0] == "S=300" and reference[3] == 1.0 and reference[6]
