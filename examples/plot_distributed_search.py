"""
Grid search on a dask cluster
=============================

:class:`~sklearn.model_selection.GridSearchCV` runs its fits through joblib,
and joblib can hand them to a `dask <https://distributed.dask.org>`_
cluster instead of local processes: wrap the search in
``joblib.parallel_config(backend="dask")`` while a
:class:`distributed.Client` is connected. This example searches
:class:`~sklearn_vhp.VHPEstimator`'s ``n_components`` on the
digits with a :class:`distributed.LocalCluster` of two worker processes —
on a real cluster only the line that creates the cluster changes — and
checks that the result is the same as without dask.

**One torch thread per worker process.** PyTorch runs every fit with
``torch.get_num_threads()`` threads, by default one per core. Several worker
processes that each use all cores fight over them, so start workers as
*processes* (``processes=True``) with ``threads_per_worker=1``: each then
trains one model at a time, and dask's nanny starts each worker with
``OMP_NUM_THREADS=1`` (``distributed.nanny.pre-spawn-environ``), which torch
reads at start-up. The example asks the workers to confirm it.

**GPUs.** Give each worker process one GPU and let every estimator use
``device="cuda"``, which is then *that worker's* GPU: `dask-cuda
<https://docs.rapids.ai/api/dask-cuda/stable/>`_'s
``LocalCUDACluster()`` starts one worker per GPU and sets a different
``CUDA_VISIBLE_DEVICES`` for each; by hand, start one ``dask worker`` per GPU
with ``CUDA_VISIBLE_DEVICES=0``, ``CUDA_VISIBLE_DEVICES=1``, …. The rest of
the code stays as below, with ``VHPEstimator(device="cuda")``.

**The** ``if __name__ == "__main__":`` **guards.** dask starts its workers as
fresh Python processes (multiprocessing's ``spawn``), and each of them
imports the script that started the cluster. The guards keep those imports
from starting clusters of their own: needed when the example runs as
``python examples/plot_distributed_search.py``.
"""

import os
import time

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import joblib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from distributed import Client, LocalCluster, get_task_stream
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_vhp import VHPEstimator

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast: then
# smaller networks, fewer epochs and fewer importance samples per score.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None
X = load_digits().data / 16.0  # 1797 images of 64 pixels, in [0, 1]
if epochs:
    # 600 rows, and enough steps for REWO to reach its main phase (with
    # fewer, fit warns that the prior was never trained): batches of 32 and
    # five times the gallery's epochs, 40 at its default of 8.
    X = X[:600]
    params = dict(
        max_iter=5 * epochs, batch_size=32, hidden_layer_sizes=(64, 64), n_eval_samples=100
    )
else:
    params = dict(max_iter=100, hidden_layer_sizes=(256, 256), n_eval_samples=1000)

# What to search: the model (see the grid search example), not REWO's
# tolerance kappa, whose default follows the data.
param_grid = {"n_components": [2, 8]}


def make_search(n_jobs):
    """The same search every time: fixed random_state, 3-fold CV."""
    return GridSearchCV(VHPEstimator(random_state=0, **params), param_grid, cv=3, n_jobs=n_jobs)


# %%
# Search on the cluster
# ---------------------
# ``n_jobs=-1`` lets joblib use every worker thread of the cluster (two
# here). The data are sent to the workers once; each task trains one
# candidate on one fold and returns its scores. The refit of the best
# candidate on all rows runs in this process. ``get_task_stream`` records
# which worker ran what, for the figure below. Leaving the ``with`` block
# closes the client and shuts the cluster down.
if __name__ == "__main__":
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        threads = client.run(torch.get_num_threads)
        print(f"{len(threads)} workers, torch threads per worker: {sorted(threads.values())}")
        search = make_search(n_jobs=-1)
        start = time.perf_counter()
        with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
            search.fit(X)
        dask_time = time.perf_counter() - start
        t0 = min(s["start"] for task in stream.data for s in task["startstops"])
        tasks = [
            (task["worker"], s["start"] - t0, s["stop"] - s["start"])
            for task in stream.data
            for s in task["startstops"]
            if s["action"] == "compute"
        ]
    print(f"dask: {dask_time:.1f} s, best parameters {search.best_params_}")

# %%
# The same search without dask
# ----------------------------
# Every fit is seeded by ``random_state`` and runs on one thread wherever it
# runs, so the cluster changes where the fits run, not what they compute.
if __name__ == "__main__":
    local = make_search(n_jobs=1)
    start = time.perf_counter()
    local.fit(X)
    print(f"one process: {time.perf_counter() - start:.1f} s, best parameters {local.best_params_}")
    same = np.allclose(
        search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], rtol=1e-4
    )
    print(f"same cross-validation scores: {same}")
    results = pd.DataFrame(search.cv_results_)[
        ["param_n_components", "mean_test_score", "rank_test_score"]
    ]
    results["mean_test_score (no dask)"] = local.cv_results_["mean_test_score"]
    print(results.round(3).to_string(index=False))

# %%
# Who ran what
# ------------
# Each bar is one task (one candidate on one fold, or a batch of them) on
# one worker process: the two workers train in parallel.
if __name__ == "__main__":
    workers = sorted({worker for worker, _, _ in tasks})
    fig, ax = plt.subplots(figsize=(7, 2.2))
    for worker, begin, length in tasks:
        ax.barh(
            workers.index(worker), length, left=begin, height=0.6, color="C0", edgecolor="white"
        )
    ax.set_yticks(range(len(workers)), [f"worker {i}" for i in range(len(workers))])
    ax.set_xlabel("seconds since the first task started")
    ax.set_title(f"{len(tasks)} tasks of GridSearchCV on a LocalCluster", fontsize="medium")
    fig.tight_layout()
    plt.show()
