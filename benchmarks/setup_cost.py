"""Set-up cost of ``fit``: the time before its first iteration, as a share of the whole fit.

One epoch of ``VHPEstimator.fit`` on static binarised MNIST (50,000 rows by
default; the network of ``benchmarks/peers.py``: MLP 784-512-40, batch 100,
constant β, one thread), each repeat in a fresh process (a first fit pays
the one-off costs a user meets). The set-up is the time from the call to the
first ``training_loss``: validation, checks, the resolved settings, the PCA
start, the module, the optimiser and the data's copy. Target: ≤ 5 %.

    python benchmarks/setup_cost.py                 # 3 fresh processes
    python benchmarks/setup_cost.py --quick         # 10,000 rows, 1 process
    python benchmarks/setup_cost.py --prior vamp --rows 20000
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings


def worker(prior, rows):
    import torch

    torch.set_num_threads(1)
    from sklearn_vhp import VHPEstimator
    from sklearn_vhp._torch.vae import VAE
    from sklearn_vhp.datasets import load_binarized_mnist

    X = load_binarized_mnist("train", data_home=os.environ.get("SKLEARN_VHP_DATA"))[:rows]
    first = []
    original = VAE.training_loss

    def timed(self, *args, **kwargs):
        if not first:
            first.append(time.perf_counter())
        return original(self, *args, **kwargs)

    VAE.training_loss = timed
    est = VHPEstimator(
        n_components=40,
        hidden_layer_sizes=(512,),
        batch_size=100,
        prior=prior,
        schedule="constant",
        max_iter=1,
        random_state=0,
    )
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    est.fit(X)
    return dict(setup=first[0] - start, total=time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--prior", default="standard", choices=["standard", "vamp", "vhp"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.prior, args.rows)))
        return
    if args.quick:
        args.rows, args.repeats = 10000, 1
    os.environ.setdefault("SKLEARN_VHP_DATA", "/work/shared/data")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", "--rows", str(args.rows), "--prior", args.prior]
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    setup = statistics.median(r["setup"] for r in runs)
    total = statistics.median(r["total"] for r in runs)
    share = statistics.median(r["setup"] / r["total"] for r in runs)
    print(
        f"one epoch of {args.rows} MNIST rows, prior={args.prior}, one thread, "
        f"median of {args.repeats} fresh processes\n"
    )
    print("| set-up (s) | whole fit (s) | set-up share |")
    print("|---|---|---|")
    print(f"| {setup:.2f} | {total:.2f} | **{100 * share:.1f} %** (target ≤ 5 %) |")


if __name__ == "__main__":
    main()
