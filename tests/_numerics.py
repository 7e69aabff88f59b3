"""What holds between the same rows computed in other blocks or at other thread counts.

A row's estimate uses the same importance-sampling noise whatever block it is
in (common random numbers), but the matrix products of the networks are not
bit-reproducible across shapes: BLAS (MKL, oneDNN, OpenBLAS) picks its kernel
by the number of rows (one row: a matrix-vector kernel; a few rows: a
small-matrix kernel), by the CPU's instruction set and, at more than one
thread, by how it splits the work, and each kernel rounds in its own order.
So a row scored in a 7-row block and in a 600-row block agrees to rounding,
not bit for bit (1.5e-6 nats apart on one 2-core machine, 0 on another).

The bound promised (docs/user_guide/out_of_core.rst, docs/reliability_notes.md)
is :data:`ROUNDING` relative: for ``score_samples``,
``|Δ log p(x)| ≤ r (|log p(x)| + n_features)`` nats (a sum of ``n_features``
rounded terms), for codes, decoder means and samples
``|Δ| ≤ r (|v| + max |v|)``. Measured worst cases on this project's machine
(AMD EPYC, AVX-512, torch 2.13 with MKL 2024.2), blocks of 1 to 250 rows
against one block, 1 and 2 threads: below 1e-7 for ``score_samples`` and 1.2e-7
for codes in float32; 1.6e-16 in float64.

Exact equality stays where it is a guarantee: the same rows in the same
shapes at the same thread count (every test process runs at one torch thread,
conftest.py, and the package only ever lowers a caller's count).
"""

import numpy as np

#: Relative bound of a float's rounding differences between blocks and thread counts.
ROUNDING = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _bound(dtype):
    return ROUNDING[np.dtype(dtype)]


def assert_same_log_likelihood(got, expected, n_features, dtype=np.float32):
    """``score_samples`` of the same rows in other blocks or at other thread counts.

    ``dtype``: the precision the networks ran in (the rows' dtype).
    """
    r = _bound(dtype)
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    # -inf (rows outside the support) must match exactly.
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    np.testing.assert_array_equal(got[~np.isfinite(got)], expected[~np.isfinite(expected)])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=r, atol=r * n_features)


def assert_same_values(got, expected, dtype=np.float32):
    """Codes, decoder means or samples of the same rows in other blocks or thread counts."""
    r = _bound(dtype)
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=r, atol=r * scale)
