"""Data access: what ``fit`` reads of ``X`` and how.

One pass over the data (:func:`scan_rows`: finite values, bounds, binary),
the bounded subsample a streamed ``fit`` derives its settings from
(:func:`subsample_rows`), the validation rows of early stopping
(:func:`split_validation` in memory, :func:`held_out_rows` when streaming),
and the decision to stream and its block sizes (:func:`streams`,
:func:`stream_blocks`). Numpy only, no torch; the settings' rules live in
:mod:`._settings`, whose :func:`~._settings.chunk_rows` sizes the blocks.
"""

import math
from dataclasses import dataclass

import numpy as np
from sklearn import get_config
from sklearn.utils import assert_all_finite

from ._settings import chunk_rows

#: Streamed ``fit``: rows of the bounded subsample the settings, the PCA
#: start, the noise-variance calibration and the prior's standardisation are
#: computed from (fewer when ``working_memory`` does not hold them as
#: float64, but at least ``SUBSAMPLE_ROWS[0]``), and the most validation
#: rows early stopping holds out.
SUBSAMPLE_ROWS = (1000, 10000)
STREAM_VALIDATION_ROWS = 10000
#: Streamed ``fit``: blocks per shuffle buffer, and buffers per memory budget
#: (three exist at a time: one trains, one waits, one is being read).
BUFFER_BLOCKS, BUDGET_BUFFERS = 8, 4


def split_validation(est, X, seed):
    """``(X_train, X_val)``: the early-stopping split, or ``(X, None)``."""
    if not est.early_stopping:
        return X, None
    n = X.shape[0]
    n_val = int(math.ceil(est.validation_fraction * n))
    if n_val < 2 or n - n_val < 1:
        raise ValueError(
            f"The validation set for early stopping is too small: validation_fraction="
            f"{est.validation_fraction} of {n} samples gives {n_val} validation and "
            f"{n - n_val} training rows (need at least 2 and 1). Increase "
            "validation_fraction or the number of samples, or set early_stopping=False."
        )
    perm = np.random.RandomState(seed).permutation(n)
    return X[np.sort(perm[n_val:])], X[np.sort(perm[:n_val])]


def streams(X):
    """Whether ``fit`` streams ``X`` from host memory instead of copying it to the device.

    For a numeric 2-D numpy array (a memmap included) whose float32 copy is
    larger than scikit-learn's ``working_memory``; other inputs are
    validated into memory as usual.
    """
    return (
        isinstance(X, np.ndarray)
        and X.ndim == 2
        and X.dtype.kind in "biuf"
        and X.size * 4 > get_config()["working_memory"] * 2**20
    )


def stream_blocks(n_features, batch_size):
    """``(block_rows, buffer_blocks)`` of a streamed ``fit``: a buffer is a
    :data:`BUDGET_BUFFERS`-th of ``working_memory`` as float32 (at least a batch)."""
    buffer_rows = max(batch_size, chunk_rows(4 * n_features) // BUDGET_BUFFERS)
    return max(1, buffer_rows // BUFFER_BLOCKS), BUFFER_BLOCKS


#: Bytes of ``X`` per block of :func:`scan_rows`: a block stays in the CPU's
#: cache while its checks run, so the data are read from memory once.
SCAN_BLOCK_BYTES = 2**21


@dataclass
class Scan:
    """What one pass over the data found: its ``(low, high)`` bounds and whether it is binary."""

    low: float
    high: float
    binary: bool


def scan_rows(X, binary=True):
    """Bounds of ``X`` and whether every value is 0 or 1, in one pass of cache-sized blocks.

    Float rows are checked to be finite on the way (a NaN or infinity shows
    in a block's bounds; then ``ValueError`` as scikit-learn's validation
    raises it). ``binary=False`` skips the 0/1 test (``binary`` is then
    ``False``). One sequential pass: the in-memory data's checks (three
    passes and temporaries of the whole data before) and a streamed
    ``fit``'s, which must not read a memmap twice.
    """
    low, high = math.inf, -math.inf
    step = max(1, SCAN_BLOCK_BYTES // max(1, X.itemsize * X.shape[1]))
    for start in range(0, X.shape[0], step):
        block = X[start : start + step]
        lo, hi = float(block.min()), float(block.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            assert_all_finite(block, input_name="X")
        low, high = min(low, lo), max(high, hi)
        # Binary iff in [0, 1] and every nonzero entry is a 1.
        binary = binary and low >= 0 and high <= 1
        binary = binary and np.count_nonzero(block) == np.count_nonzero(block == 1)
    if X.size == 0:
        low = high = 0.0
    return Scan(low, high, binary)


def subsample_rows(X, seed):
    """A bounded random subsample of the rows of ``X``, in order, as float64.

    :data:`SUBSAMPLE_ROWS` rows at most (all rows when there are no more);
    what a streamed ``fit`` derives its settings from.
    """
    n = X.shape[0]
    low, high = SUBSAMPLE_ROWS
    size = min(n, max(low, min(high, chunk_rows(8 * X.shape[1]))))
    if size == n:
        return np.asarray(X, dtype=np.float64)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    return np.asarray(X[rows], dtype=np.float64)


def held_out_rows(est, n, seed):
    """Early stopping's validation rows of a streamed ``fit`` (sorted indices).

    ``validation_fraction`` of the rows, at most :data:`STREAM_VALIDATION_ROWS`,
    drawn without a permutation of all rows.
    """
    n_val = min(int(math.ceil(est.validation_fraction * n)), STREAM_VALIDATION_ROWS)
    if n_val < 2 or n - n_val < 1:
        raise ValueError(
            f"The validation set for early stopping is too small: validation_fraction="
            f"{est.validation_fraction} of {n} samples gives {n_val} validation rows "
            "(need at least 2). Increase validation_fraction or set early_stopping=False."
        )
    return np.sort(np.random.default_rng(seed).choice(n, size=n_val, replace=False))
