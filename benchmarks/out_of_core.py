"""Data bigger than memory: streaming ``fit`` from a memmap, ``partial_fit``, dask scoring.

Binarized MNIST (50,000 training rows) is tiled into uint8 ``.npy`` files of
``--sizes-gb`` gigabytes (6 GB: 7.65 M rows) in a temporary directory, one
at a time, written in chunks (never held in memory) and deleted after its
run (also on error or Ctrl-C). Four measurements, printed as one markdown
table:

1. **Streaming fit** over each file (``np.load(path, mmap_mode="r")`` under
   ``sklearn.config_context(working_memory=--working-memory)``, which makes
   ``fit`` stream), against the **in-memory fit** of the first 50,000 rows
   (float32 in RAM). Each fit runs in a fresh subprocess at 1 torch thread; a
   thread samples its ``/proc/self/status`` every 20 ms for ``RssAnon`` (the
   process's own memory: the file's page cache does not count) and ``VmRSS``
   (the total, mapped file pages included), and ``VmHWM`` is read at the end.
   *Fixed iterations*: an epoch of a 6 GB file is 120,000 Adam steps, so every
   fit (``max_iter`` epochs enough for it) is stopped after ``--iterations``
   steps by a global ``torch.optim`` step hook, which also takes the times
   (throughput in rows/s from step 50 to the last, so the set-up and its
   subsample are reported apart) and, at the last step, the validation NLL.
   Both fits are stopped the same way, so the comparison is at equal steps
   (the table gives REWO's phase and beta there: while beta climbs after the
   switch to the main phase, the NLL moves fast, so compare fits in the same
   state; the default 6,000 steps are 7.7 epochs of 50,000 rows);
   their ``max_iter`` gives a budget of at least 4,000 steps, so that
   ``kappa="auto"``'s plateau window (1/8 of the budget, at most 500 steps) is
   the same in all.
2. **Model quality**: validation NLL (``-score`` on ``--eval-rows`` rows of the
   binarized MNIST validation set, ``n_eval_samples=--eval-samples``) after
   those equal steps; target: streaming within 1 nat of in-memory.
3. **partial_fit** over 10 equal chunks of the first ``--pf-rows`` rows, for
   ``--pf-epochs`` passes, against ``fit`` on their concatenation with
   ``max_iter=--pf-epochs``: validation NLL of both (target: within 1 nat).
4. **dask scoring** of ``--dask-rows`` rows (1 M) of the first file: a
   2-worker ``distributed.LocalCluster`` (processes, 1 thread each) running
   ``score_samples`` with ``map_blocks`` over blocks read from the file by
   path, against one process scoring the same blocks in turn; rows/s of both
   (``n_eval_samples=--dask-eval-samples``, small, to keep it minutes).

5. **Memory against the budget** (``--memory-table``, issue 23): peak
   ``RssAnon`` of a streamed ``fit`` over float32 memmaps of
   ``--memory-sizes-gb`` (0.6, 1.2, 6 GB) at each of ``--memory-budgets``
   (``working_memory`` 64 and 1024 MiB; a file smaller than the budget is
   fitted in memory, from its file-backed pages), Bernoulli likelihood, 8
   components, ``batch_size=1024``, four hidden layers of 256, stopped after
   ``--memory-steps`` Adam steps (the set-up, a one-pass scan of the whole
   file and its subsample, runs in full), against the same fit on the first
   2,000 rows in memory (one step: an epoch). The bound checked: peak
   ``RssAnon`` minus the in-memory fit's <= 3 x ``working_memory`` + 100 MiB.

    python benchmarks/out_of_core.py                    # 1, 3, 6 GB: tens of minutes
    python benchmarks/out_of_core.py --quick            # smoke run: minutes
    python benchmarks/out_of_core.py --sizes-gb 1 --skip dask
    python benchmarks/out_of_core.py --memory-table     # 5. only: 0.6-6 GB float32 files

Targets (issue 16): peak RssAnon <= 1.5 GB whatever the file's size,
streaming throughput >= 0.8x in-memory, NLL within 1 nat in 2 and 3.
Timings on a busy machine are only comparable as ratios within one run.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

ROW = 784
MNIST_ROWS = 50_000


# -------------------------------------------------------------- the files
def write_tiled(path, n_rows, base, chunk_rows=MNIST_ROWS, dtype=np.uint8):
    """Write ``n_rows`` rows of ``base`` tiled as a ``dtype`` ``.npy``, chunk by chunk."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": (int(n_rows), base.shape[1]),
    }
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n_rows, chunk_rows):
            stop = min(n_rows, start + chunk_rows)
            idx = np.arange(start, stop) % base.shape[0]
            f.write(np.ascontiguousarray(base[idx], dtype=dtype).tobytes())
    return path


def rows_for_gb(size_gb):
    return int(size_gb * 1e9) // ROW


# -------------------------------------------------- the worker (a subprocess)
class _Stop(BaseException):
    """Raised from the step hook to end a fit after the fixed number of steps."""


class MemorySampler(threading.Thread):
    """Peak ``RssAnon`` and ``VmRSS`` of this process, read from /proc every ``interval`` s."""

    def __init__(self, interval=0.02):
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, {"RssAnon": 0, "VmRSS": 0}, False

    @staticmethod
    def status():
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024  # kB
        return out

    def sample(self):
        s = self.status()
        for key in self.peak:
            self.peak[key] = max(self.peak[key], s.get(key, 0))

    def run(self):
        while not self._done:
            self.sample()
            time.sleep(self.interval)

    def stop(self):
        self._done = True
        self.sample()
        return {**self.peak, "VmHWM": self.status().get("VmHWM", 0)}


def _estimator(cfg, **extra):
    from sklearn_vhp import VHPEstimator

    params = dict(
        batch_size=cfg["batch_size"],
        n_eval_samples=cfg["eval_samples"],
        random_state=cfg["seed"],
        device="cpu",
    )
    return VHPEstimator(**{**params, **extra})


def _nll(est, X_val):
    return -float(np.mean(est.score_samples(X_val)))


def _after_each_step(hook):
    """Call ``hook(optimizer, args, kwargs)`` after every Adam step of a fit; returns a handle.

    The estimator's Adam (``sklearn_vhp._adam.FusedAdam``) is not a
    ``torch.optim`` optimiser (so that a first fit does not import
    ``torch._dynamo``), and torch's global step hooks do not see it: its
    ``step`` is wrapped instead. The fallback ``torch.optim.Adam`` gets the hook.
    """
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from sklearn_vhp import _adam

    original = _adam.FusedAdam.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        hook(self, args, kwargs)
        return out

    _adam.FusedAdam.step = step
    torch_handle = register_optimizer_step_post_hook(hook)

    class Handle:
        def remove(self):
            _adam.FusedAdam.step = original
            torch_handle.remove()

    return Handle()


def _fit_until_stopped(est, X, hook, working_memory=None):
    """Fit ``est`` on ``X`` with ``hook`` after every step until it raises :class:`_Stop`.

    ``working_memory``: scikit-learn's budget for the fit (``None``: as
    configured). Returns the ``time.perf_counter()`` at the start of ``fit``.
    """
    from sklearn import config_context

    handle = _after_each_step(hook)
    start = time.perf_counter()
    try:
        with config_context(working_memory=working_memory):
            est.fit(X)
    except _Stop:
        pass
    finally:
        handle.remove()
    return start


def worker_fit(cfg):
    """One fit, streaming from the file or in memory, stopped after ``cfg["iterations"]`` steps."""
    import torch

    torch.set_num_threads(1)
    sampler = MemorySampler()
    sampler.start()
    before = MemorySampler.status()
    X_val = np.load(cfg["valid"])[: cfg["eval_rows"]].astype(np.float32)
    X = np.load(cfg["path"], mmap_mode="r")
    if cfg["mode"] == "memory":
        X = np.asarray(X[: cfg["memory_rows"]], dtype=np.float32)
    n_steps, warm = cfg["iterations"], min(50, cfg["iterations"] // 4)
    steps_per_epoch = X.shape[0] // cfg["batch_size"]
    # Epochs enough for n_steps, and a budget of at least 4,000 steps in every
    # fit: kappa="auto"'s plateau window (an eighth of the budget, at most 500
    # steps) is then the same whatever the file's size.
    epochs = math.ceil(max(n_steps, 4000) / steps_per_epoch)
    est = _estimator(cfg, max_iter=epochs)
    times, result = [], {}

    def hook(optimizer, args, kwargs):
        times.append(time.perf_counter())
        if len(times) == n_steps:
            result["nll"] = _nll(est, X_val)  # the model as it is after n_steps steps
            schedule = est.schedule_  # REWO's phase and beta: what the NLL compares
            result["phase"], result["beta"] = str(schedule.phase), float(schedule.beta)
            raise _Stop

    budget = None if cfg["mode"] == "memory" else cfg["working_memory"]
    start = _fit_until_stopped(est, X, hook, working_memory=budget)
    memory = sampler.stop()
    if len(times) < n_steps:
        raise RuntimeError(f"fit ended after {len(times)} of {n_steps} steps")
    rows = (n_steps - warm) * cfg["batch_size"]
    return {
        **result,
        "rows_per_s": rows / (times[-1] - times[warm - 1]),
        "setup_s": times[0] - start,
        "rss_anon": memory["RssAnon"],
        "rss_total": memory["VmRSS"],
        "hwm": memory["VmHWM"],
        "rss_anon_before": before.get("RssAnon", 0),
        "file_rows": int(np.load(cfg["path"], mmap_mode="r").shape[0]),
    }


def worker_partial_fit(cfg):
    """``partial_fit`` over 10 chunks for ``pf_epochs`` passes vs ``fit`` on their concatenation."""
    import torch

    torch.set_num_threads(1)
    X_val = np.load(cfg["valid"])[: cfg["eval_rows"]].astype(np.float32)
    X = np.asarray(np.load(cfg["path"], mmap_mode="r")[: cfg["pf_rows"]], dtype=np.float32)
    epochs = cfg["pf_epochs"]
    out = {}
    _estimator(cfg, max_iter=1).fit(X[:256])  # the process's first fit pays torch's warm-up
    t = time.perf_counter()
    full = _estimator(cfg, max_iter=epochs).fit(X)
    out["fit_s"], out["fit_nll"] = time.perf_counter() - t, _nll(full, X_val)
    out["fit_steps"] = len(full.history_["loss"])
    est = _estimator(cfg, max_iter=epochs)
    if not hasattr(est, "partial_fit"):
        return {**out, "partial_fit_nll": None}
    t = time.perf_counter()
    for _ in range(epochs):
        for chunk in np.array_split(X, 10):
            est.partial_fit(chunk)
    out["partial_fit_s"], out["partial_fit_nll"] = time.perf_counter() - t, _nll(est, X_val)
    out["partial_fit_steps"] = len(est.history_["loss"])
    return out


def _read_block(path, start, stop):
    """Rows ``start:stop`` of the ``.npy`` at ``path`` as float32 (runs on a worker)."""
    return np.asarray(np.load(path, mmap_mode="r")[start:stop], dtype=np.float32)


def _score_block(block, est):
    return est.score_samples(block)


def worker_dask(cfg):
    """Score ``dask_rows`` rows of the file: one process in turn vs a 2-worker LocalCluster."""
    import dask
    import dask.array as da
    import distributed
    import torch

    torch.set_num_threads(1)
    path, n, block = cfg["path"], cfg["dask_rows"], cfg["dask_block"]
    fit_rows = np.asarray(np.load(path, mmap_mode="r")[:5000], dtype=np.float32)
    est = _estimator(cfg, max_iter=1, n_eval_samples=cfg["dask_eval_samples"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(fit_rows)
    bounds = [(s, min(n, s + block)) for s in range(0, n, block)]

    t = time.perf_counter()
    single = np.concatenate([_score_block(_read_block(path, *b), est) for b in bounds])
    single_s = time.perf_counter() - t

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(lambda: __import__("sklearn_vhp"))  # start-up is not scoring
        [model] = client.scatter([est], broadcast=True)
        blocks = [
            da.from_delayed(dask.delayed(_read_block)(path, *b), (b[1] - b[0], ROW), np.float32)
            for b in bounds
        ]
        dX = da.concatenate(blocks)
        log_p = dX.map_blocks(_score_block, model, drop_axis=1, dtype=np.float64)
        t = time.perf_counter()
        on_dask = log_p.compute()
        dask_s = time.perf_counter() - t
    return {
        "rows": n,
        "single_rows_per_s": n / single_s,
        "dask_rows_per_s": n / dask_s,
        "max_abs_diff": float(np.max(np.abs(on_dask - single))),
    }


def worker_memory(cfg):
    """Peak RssAnon of one fit (streamed, or the first rows in memory) stopped after some steps."""
    import torch

    torch.set_num_threads(1)
    X = np.load(cfg["path"], mmap_mode="r")
    if cfg["mode"] == "memory":
        X = np.asarray(X[: cfg["memory_rows"]], dtype=np.float32)
    est = _estimator(
        cfg,
        n_components=8,
        likelihood="bernoulli",
        batch_size=cfg["memory_batch"],
        hidden_layer_sizes=(256,) * 4,
        max_iter=1,
    )
    steps = []

    def hook(optimizer, args, kwargs):
        steps.append(time.perf_counter())
        if len(steps) >= cfg["memory_steps"]:
            raise _Stop

    before = MemorySampler.status()
    sampler = MemorySampler(interval=0.005)
    sampler.start()
    start = _fit_until_stopped(est, X, hook, working_memory=cfg["budget"])
    memory = sampler.stop()
    return {
        "rows": int(X.shape[0]),
        "steps": len(steps),
        "rss_anon": memory["RssAnon"],
        "rss_anon_before": before.get("RssAnon", 0),
        "setup_s": (steps[0] if steps else time.perf_counter()) - start,
        "streamed": X.size * 4 > cfg["budget"] * 2**20 and cfg["mode"] != "memory",
    }


def memory_table(args):
    """Table 5: peak RssAnon of streamed fits against the budget (float32 files)."""
    from sklearn_vhp.datasets import load_binarized_mnist

    train = load_binarized_mnist("train", data_home=args.data_home)
    cfg = {
        "seed": args.seed,
        "batch_size": args.memory_batch,
        "eval_samples": 10,
        "memory_batch": args.memory_batch,
        "memory_steps": args.memory_steps,
        "memory_rows": 2000,
    }
    results = {}
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="vhp_memory_") as tmp:
        small = write_tiled(Path(tmp) / "small.npy", 2000, train, dtype=np.float32)
        for budget in args.memory_budgets:
            print(f"in-memory fit, 2,000 rows, working_memory={budget:g} ...", flush=True)
            results[("memory", budget)] = run_worker(
                "memory", {**cfg, "path": str(small), "mode": "memory", "budget": budget}
            )
            print(f"  {results[('memory', budget)]}", flush=True)
        for size in args.memory_sizes_gb:
            path = Path(tmp) / f"f32_{size:g}gb.npy"
            print(f"writing {size:g} GB (float32) ...", flush=True)
            write_tiled(path, int(size * 1e9) // (ROW * 4), train, dtype=np.float32)
            try:
                for budget in args.memory_budgets:
                    print(f"fit, {size:g} GB, working_memory={budget:g} ...", flush=True)
                    r = run_worker(
                        "memory", {**cfg, "path": str(path), "mode": "stream", "budget": budget}
                    )
                    results[(size, budget)] = r
                    print(f"  {r}", flush=True)
            finally:
                path.unlink()
    mib = 2**20
    lines = [
        f"Peak RssAnon of a fit (Bernoulli, 8 components, batch {args.memory_batch}, "
        f"hidden 4 x 256) stopped after {args.memory_steps} steps, against the same fit "
        "on 2,000 rows in memory; 1 torch thread per process.",
        "",
        "| file (float32) | rows | working_memory (MiB) | path | peak RssAnon (MiB) "
        "| minus in-memory (MiB) | bound 3 x wm + 100 (MiB) | holds |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for (size, budget), r in results.items():
        base = results[("memory", budget)]["rss_anon"]
        over = (r["rss_anon"] - base) / mib
        bound = 3 * budget + 100
        name = "2,000 rows in memory" if size == "memory" else f"{size:g} GB"
        path = "streamed" if r["streamed"] else "in memory"
        holds = "" if size == "memory" else ("yes" if over <= bound else "**no**")
        lines.append(
            f"| {name} | {r['rows']:,} | {budget:g} | {path} | {r['rss_anon'] / mib:,.0f} "
            f"| {over:+,.0f} | {bound:,.0f} | {holds} |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    return results


WORKERS = {
    "fit": worker_fit,
    "partial_fit": worker_partial_fit,
    "dask": worker_dask,
    "memory": worker_memory,
}


def _worker_main(kind, cfg_json):
    cfg = json.loads(cfg_json)
    warnings.simplefilter("ignore")  # ConvergenceWarning of short fits
    result = WORKERS[kind](cfg)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # a streaming fit stopped by the hook may leave a prefetch thread


def run_worker(kind, cfg, timeout=None):
    """Run one measurement in a fresh subprocess at 1 thread; its RESULT line as a dict."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # The package from this checkout, installed or not.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, json.dumps(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{kind} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# -------------------------------------------------------------- the table
def _gb(n_bytes):
    return f"{n_bytes / 1e9:.2f}"


def markdown(fits, pf, dask_res, args):
    memory = fits.get("memory")
    lines = [
        f"Out-of-core benchmark: {args.iterations} Adam steps per fit, batch {args.batch_size}, "
        f"working_memory={args.working_memory} MiB, validation NLL on {args.eval_rows} rows "
        f"with n_eval_samples={args.eval_samples}; {platform.processor() or platform.machine()}, "
        "1 torch thread per process.",
        "",
        "| fit | rows | peak RssAnon (GB) | peak VmRSS (GB) | VmHWM (GB) | set-up (s) "
        "| rows/s | x in-memory | val. NLL | NLL - in-memory | phase, beta |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, r in fits.items():
        name = "in-memory (float32 rows in RAM)" if key == "memory" else f"streaming, {key} GB file"
        ratio = r["rows_per_s"] / memory["rows_per_s"] if memory else math.nan
        dnll = r["nll"] - memory["nll"] if memory else math.nan
        lines.append(
            f"| {name} | {r['file_rows'] if key != 'memory' else args.memory_rows:,} "
            f"| {_gb(r['rss_anon'])} | {_gb(r['rss_total'])} | {_gb(r['hwm'])} "
            f"| {r['setup_s']:.1f} | {r['rows_per_s']:,.0f} | {ratio:.2f} | {r['nll']:.2f} "
            f"| {dnll:+.2f} | {r.get('phase', '?')}, {r.get('beta', math.nan):.3g} |"
        )
    if pf:
        lines += [
            "",
            f"| {args.pf_rows:,} rows, {args.pf_epochs} epochs | steps | time (s) | val. NLL |",
            "|---|---:|---:|---:|",
            f"| fit on the concatenation | {pf['fit_steps']} | {pf['fit_s']:.1f} "
            f"| {pf['fit_nll']:.2f} |",
        ]
        if pf.get("partial_fit_nll") is None:
            lines.append("| partial_fit over 10 chunks | n/a (no partial_fit) | | |")
        else:
            lines.append(
                f"| partial_fit over 10 chunks | {pf['partial_fit_steps']} "
                f"| {pf['partial_fit_s']:.1f} | {pf['partial_fit_nll']:.2f} "
                f"(diff {pf['partial_fit_nll'] - pf['fit_nll']:+.2f}) |"
            )
    if dask_res:
        d = dask_res
        lines += [
            "",
            f"| score_samples, {d['rows']:,} rows, n_eval_samples={args.dask_eval_samples} "
            "| rows/s | x one process |",
            "|---|---:|---:|",
            f"| one process, blocks in turn | {d['single_rows_per_s']:,.0f} | 1.00 |",
            f"| dask LocalCluster, 2 workers x 1 thread | {d['dask_rows_per_s']:,.0f} "
            f"| {d['dask_rows_per_s'] / d['single_rows_per_s']:.2f} |",
            "",
            f"Largest difference between the two: {d['max_abs_diff']:.3g} nats.",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small files, minutes")
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[1.0, 3.0, 6.0])
    parser.add_argument("--iterations", type=int, default=6000, help="Adam steps per fit")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--working-memory", type=int, default=256, help="MiB; fit streams above")
    parser.add_argument("--memory-rows", type=int, default=MNIST_ROWS)
    parser.add_argument("--eval-rows", type=int, default=1000)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--pf-rows", type=int, default=MNIST_ROWS)
    parser.add_argument("--pf-epochs", type=int, default=5)
    parser.add_argument("--dask-rows", type=int, default=1_000_000)
    parser.add_argument("--dask-block", type=int, default=50_000)
    parser.add_argument("--dask-eval-samples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["partial_fit", "dask"])
    parser.add_argument("--data-home", default="/work/shared/data")
    parser.add_argument("--tmpdir", default=None, help="where the big files go (default: TMPDIR)")
    parser.add_argument("--memory-table", action="store_true", help="table 5 only")
    parser.add_argument("--memory-sizes-gb", type=float, nargs="+", default=[0.6, 1.2, 6.0])
    parser.add_argument("--memory-budgets", type=float, nargs="+", default=[64, 1024])
    parser.add_argument("--memory-steps", type=int, default=100)
    parser.add_argument("--memory-batch", type=int, default=1024)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(*args.worker)
    if args.memory_table:
        if args.quick:
            args.memory_sizes_gb, args.memory_budgets, args.memory_steps = [0.02], [4, 64], 5
        return memory_table(args)
    if args.quick:
        args.sizes_gb, args.working_memory = [0.05, 0.1], 16
        args.iterations, args.memory_rows = 200, 10_000
        args.eval_rows, args.eval_samples = 200, 20
        args.pf_rows, args.pf_epochs = 5_000, 2
        args.dask_rows, args.dask_block, args.dask_eval_samples = 20_000, 5_000, 4

    from sklearn_vhp.datasets import load_binarized_mnist

    train = load_binarized_mnist("train", data_home=args.data_home)
    cfg = {k: v for k, v in vars(args).items() if k not in ("worker", "skip", "sizes_gb")}
    fits, pf, dask_res = {}, None, None
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix="vhp_out_of_core_") as tmp:
        valid = Path(tmp) / "valid.npy"
        np.save(valid, load_binarized_mnist("valid", data_home=args.data_home))
        cfg["valid"] = str(valid)
        small = write_tiled(Path(tmp) / "train.npy", len(train), train)
        cfg["path"] = str(small)
        print("in-memory fit ...", flush=True)
        fits["memory"] = run_worker("fit", {**cfg, "mode": "memory"})
        print(f"  {fits['memory']}", flush=True)
        if "partial_fit" not in args.skip:
            print("partial_fit vs fit ...", flush=True)
            pf = run_worker("partial_fit", cfg)
            print(f"  {pf}", flush=True)
        for i, size in enumerate(args.sizes_gb):
            path = Path(tmp) / f"tiled_{size:g}gb.npy"
            print(f"writing {size:g} GB ...", flush=True)
            write_tiled(path, rows_for_gb(size), train)
            try:
                print(f"streaming fit, {size:g} GB ...", flush=True)
                fits[f"{size:g}"] = run_worker("fit", {**cfg, "path": str(path), "mode": "stream"})
                print(f"  {fits[f'{size:g}']}", flush=True)
                if i == 0 and "dask" not in args.skip:
                    n_rows = rows_for_gb(size)
                    if n_rows < args.dask_rows:
                        print(f"  (dask: the file has {n_rows:,} rows < --dask-rows)", flush=True)
                    print("dask scoring ...", flush=True)
                    dask_res = run_worker(
                        "dask", {**cfg, "path": str(path), "dask_rows": min(n_rows, args.dask_rows)}
                    )
                    print(f"  {dask_res}", flush=True)
            finally:
                path.unlink()
    table = markdown(fits, pf, dask_res, args)
    print()
    print(table)
    return fits, pf, dask_res


if __name__ == "__main__":
    main()
