"""Latent kNN graph: build + one shortest path, exact vs pynndescent.

For each node count, latent dimension and neighbour method a fresh Python
process (``--child``) imports the package, builds a ``ManifoldInterpolator``
graph over Gaussian latent samples and finds one path; it then repeats the
same work in the same process (``warm``: pynndescent's numba kernels are
compiled by then). ``fresh process`` is the child's wall time from the start
of the script (after the interpreter's own start-up, ~0.05 s) to the path
found: imports (sklearn_vhp pulls in torch), graph build with numba
compilation, and the path. The table also lists the neighbour
recall of pynndescent against exact neighbours (``--recall``, n <= 20k).

Usage::

    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python benchmarks/graph.py
    python benchmarks/graph.py --quick              # smoke run, < 1 min
    python benchmarks/graph.py --sizes 20000 50000 --dims 32 --methods exact

The neighbour method ``ManifoldInterpolator(neighbors="auto")`` picks is
marked ``*``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

T_START = time.perf_counter()


def auto_neighbors(n_nodes, n_dims):
    """The method ``ManifoldInterpolator(neighbors="auto")`` picks, as documented.

    Exact neighbours in up to four latent dimensions or up to 70,000 nodes,
    pynndescent otherwise (the ``neighbors`` parameter's docstring; a fitted
    interpolator reports its choice in ``neighbors_``).
    """
    return "exact" if n_dims <= 4 or n_nodes <= 70_000 else "pynndescent"


def _child(n_nodes, n_dims, method, n_neighbors, recall):
    """Run in a fresh process: print timings as one JSON line."""
    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.neighbors import NearestNeighbors

    from sklearn_vhp import ManifoldInterpolator

    t_import = time.perf_counter() - T_START

    class GaussianLatent(TransformerMixin, BaseEstimator):
        """Identity 'VAE' with a standard-normal prior: the graph alone."""

        def fit(self, X, y=None):
            self.n_features_in_ = X.shape[1]
            self.n_components = X.shape[1]
            return self

        def transform(self, X):
            return np.asarray(X, dtype=np.float64)

        def inverse_transform(self, Z):
            return np.asarray(Z)

        def sample_latent(self, n_samples=1, random_state=None):
            rng = np.random.default_rng(random_state)
            return rng.standard_normal((n_samples, n_dims))

    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, n_dims))
    vae = GaussianLatent().fit(X)

    def run():
        t0 = time.perf_counter()
        interp = ManifoldInterpolator(
            vae,
            prefit=True,
            n_nodes=n_nodes,
            n_neighbors=n_neighbors,
            neighbors=method,
            random_state=0,
        ).fit(X)
        t1 = time.perf_counter()
        path = interp.interpolate(X[0], X[1])
        t2 = time.perf_counter()
        return interp, path, t1 - t0, t2 - t1

    interp, path, build, search = run()
    fresh = time.perf_counter() - T_START
    _, _, warm_build, warm_search = run()
    out = dict(
        n_nodes=n_nodes,
        n_dims=n_dims,
        method=method,
        import_s=t_import,
        fresh_s=fresh,
        fresh_build_s=build,
        fresh_path_s=search,
        warm_build_s=warm_build,
        warm_path_s=warm_search,
        path_points=len(path.nodes),
        path_length=path.length,
        auto=auto_neighbors(n_nodes, n_dims),
    )
    if recall and method == "pynndescent" and n_nodes <= 20_000:
        k = min(n_neighbors, n_nodes - 1)
        exact = NearestNeighbors(n_neighbors=k).fit(interp.nodes_).kneighbors()[1]
        graph = interp.graph_
        hits = sum(
            np.isin(exact[i], graph.indices[graph.indptr[i] : graph.indptr[i + 1]]).sum()
            for i in range(n_nodes)
        )
        out["recall"] = hits / exact.size
    print(json.dumps(out), flush=True)


def _spawn(n_nodes, n_dims, method, n_neighbors, recall, timeout):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        str(n_nodes),
        str(n_dims),
        method,
        str(n_neighbors),
    ]
    if recall:
        cmd.append("--recall")
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(n_nodes=n_nodes, n_dims=n_dims, method=method, error=f"timeout {timeout}s")
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return dict(
            n_nodes=n_nodes, n_dims=n_dims, method=method, error=res.stderr.strip().splitlines()[-1]
        )
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["process_s"] = wall
    return row


def _fmt(x, digits=2):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.3f}" if x < 0.1 else f"{x:.{digits}f}"
    return str(x)


def _print_table(rows):
    header = (
        "| nodes | dims | method | fresh process (s) | imports (s) "
        "| fresh build + path (s) | warm build (s) | warm path (s) | recall |"
    )
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        if "error" in r:
            print(f"| {r['n_nodes']:,} | {r['n_dims']} | {r['method']} | {r['error']} | | | | | |")
            continue
        mark = "*" if r["auto"] == r["method"] else ""
        print(
            f"| {r['n_nodes']:,} | {r['n_dims']} | {r['method']}{mark} "
            f"| {_fmt(r['fresh_s'])} | {_fmt(r['import_s'])} "
            f"| {_fmt(r['fresh_build_s'])} + {_fmt(r['fresh_path_s'])} "
            f"| {_fmt(r['warm_build_s'])} | {_fmt(r['warm_path_s'])} "
            f"| {_fmt(r.get('recall'))} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--child", nargs=4, metavar=("N", "D", "METHOD", "K"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1k and 10k nodes, 2-d and 32-d, exact only plus one pynndescent run",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 2])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["exact", "pynndescent"],
        choices=["exact", "pynndescent", "auto"],
    )
    parser.add_argument("--n-neighbors", type=int, default=18)
    parser.add_argument(
        "--recall", action="store_true", help="also measure pynndescent's neighbour recall"
    )
    parser.add_argument(
        "--table", metavar="FILE", help="only print the table of JSON rows saved from stderr"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per child process")
    args = parser.parse_args(argv)

    if args.child:
        n, d, method, k = args.child
        _child(int(n), int(d), method, int(k), args.recall)
        return

    if args.table:
        with open(args.table) as f:
            rows = [json.loads(line) for line in f if line.startswith("{")]
        for r in rows:  # the auto column follows the documented switch point
            r["auto"] = auto_neighbors(r["n_nodes"], r["n_dims"])
        _print_table(rows)
        return

    if args.quick:
        configs = [(n, d, "exact") for d in (32, 2) for n in (1_000, 10_000)]
        configs.append((1_000, 32, "pynndescent"))
    else:
        configs = [(n, d, m) for d in args.dims for n in args.sizes for m in args.methods]

    threads = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    print(
        f"# kNN graph benchmark: k={args.n_neighbors}, {os.cpu_count()} CPUs, threads {threads}",
        flush=True,
    )
    rows = []
    for n, d, method in configs:
        row = _spawn(n, d, method, args.n_neighbors, args.recall, args.timeout)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    _print_table(rows)


if __name__ == "__main__":
    main()
