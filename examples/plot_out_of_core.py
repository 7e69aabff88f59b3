"""
Training from a memory-mapped file and scoring with dask
========================================================

Data that do not fit in memory stay on disk: written once as a ``.npy``
file, chunk by chunk, and opened with ``np.load(path, mmap_mode="r")``, which
reads nothing until rows are used. When such an array's float32 copy is
larger than scikit-learn's ``working_memory``,
:meth:`~sklearn_vhp.VHPEstimator.fit` *streams* it: blocks of rows in a
random order, shuffled within a buffer, read by a background thread while the
previous buffer trains (see :ref:`out_of_core`). Here the data are small
pendulum images (the paper's first experiment) and a tiny
``working_memory`` forces the streaming path.

The fitted model then encodes and scores the same file with dask, block by
block, on a :class:`distributed.LocalCluster` of two worker processes — on a
real cluster, only the line that creates the cluster changes — and the
results equal the in-memory calls on the same rows.
"""

import os
import tempfile
import warnings
from pathlib import Path

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import make_pendulum

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None
n_chunks, chunk = (5, 2000) if epochs else (10, 3000)
if epochs:  # smaller networks, fewer importance samples per score
    params = dict(max_iter=epochs, hidden_layer_sizes=(64, 64), n_eval_samples=100)
else:
    params = dict(max_iter=30, n_eval_samples=1000)


# %%
# Write the data to disk, one chunk at a time
# -------------------------------------------
# The header says how many rows will follow; each chunk of images is
# generated, appended and forgotten, so the whole array is never in memory.
# The angles are small: they stay in memory, for the figure. The file lives in
# a temporary directory, deleted at the end.
def write_pendulum(path, n_chunks, chunk):
    """Write ``n_chunks * chunk`` pendulum images to ``path``; return their angles."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (n_chunks * chunk, 16 * 16)}
    angles = []
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for i in range(n_chunks):
            X_chunk, a = make_pendulum(n_samples=chunk, random_state=i)
            f.write(X_chunk.astype(np.float32).tobytes())
            angles.append(a)
    return np.concatenate(angles)


# dask's worker processes import this script: the guards keep them from
# running it (see the distributed grid search example).
if __name__ == "__main__":
    tmp = tempfile.TemporaryDirectory(prefix="vhp_out_of_core_")
    path = Path(tmp.name) / "pendulum.npy"
    angles = write_pendulum(path, n_chunks, chunk)
    X = np.load(path, mmap_mode="r")
    n_rows, n_features = X.shape
    print(f"{n_rows:,} rows on disk ({X.nbytes / 2**20:.1f} MiB), a {type(X).__name__}")

# %%
# Fit by streaming
# ----------------
# ``working_memory`` (MiB) is the budget: the file's float32 size is larger,
# so ``fit`` streams it instead of copying it. On real data, keep the default
# (1024 MiB) or whatever the device can spare.
if __name__ == "__main__":
    vhp = VHPEstimator(n_components=2, random_state=0, **params)
    with config_context(working_memory=4), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short gallery fits
        vhp.fit(X)
    steps = len(vhp.history_["loss"])
    print(f"{vhp.n_iter_} epochs, {steps} Adam steps, final beta {vhp.beta_:.2f}")


# %%
# Encode and score with dask
# --------------------------
# The workers read their blocks from the file themselves (a memmap sent to a
# worker would be pickled with all its data), the model is sent to each worker
# once (``scatter``), and ``map_blocks`` runs ``transform`` and
# ``score_samples`` on every block. ``transform`` changes the width of a
# block, ``score_samples`` drops it: the output's blocks are given
# explicitly.
def read_rows(path, start, stop):
    return np.asarray(np.load(path, mmap_mode="r")[start:stop])


def encode(block, model):
    return model.transform(block)


def log_likelihood(block, model):
    return model.score_samples(block)


if __name__ == "__main__":
    blocks = [
        da.from_delayed(
            dask.delayed(read_rows)(str(path), s, s + chunk), (chunk, n_features), np.float32
        )
        for s in range(0, n_rows, chunk)
    ]
    dX = da.concatenate(blocks)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        [model] = client.scatter([vhp], broadcast=True)
        Z = dX.map_blocks(encode, model, chunks=(dX.chunks[0], (2,)), dtype=np.float32)
        log_p = dX.map_blocks(log_likelihood, model, drop_axis=1, dtype=np.float64)
        Z, log_p = dask.compute(Z, log_p)

    # The same rows in this process: equal, row for row.
    rows = slice(0, 2 * chunk)
    print("transform equal:", np.array_equal(Z[rows], vhp.transform(X[rows])))
    print("score_samples equal:", np.array_equal(log_p[rows], vhp.score_samples(X[rows])))
    print(f"mean log-likelihood: {log_p.mean():.1f} nats per image")
    tmp.cleanup()

# %%
# The latent space
# ----------------
# The pendulum's images vary only in its angle, so the streamed model should
# lay them out on a ring, the angle going once around it (left); right, the
# training loss, Adam step by Adam step over the streamed blocks.
if __name__ == "__main__":
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    sc = ax1.scatter(Z[:, 0], Z[:, 1], c=angles, cmap="twilight", s=2)
    fig.colorbar(sc, ax=ax1, label="angle (rad)")
    ax1.set(xlabel="$z_1$", ylabel="$z_2$", title="codes computed with dask", aspect="equal")
    ax2.plot(vhp.history_["loss"], lw=0.5)
    ax2.set(xlabel="Adam step", ylabel="loss", title="streaming fit")
    fig.tight_layout()
    plt.show()
