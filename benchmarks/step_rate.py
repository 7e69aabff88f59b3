"""Share of the machine's float32 matmul rate that a fit step reaches.

For each model of ``benchmarks/peers.py`` (the MLP 784-512-40, batch 100,
one thread), a training step as ``fit`` runs it (loss, backward, Adam) is
timed on MNIST batches, its floating-point operations (forward and backward)
are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix
products only), and the rate is compared with float32 ``torch.mm`` on square
matrices of ``--mm-size`` doing the same FLOPs. A share well below 1 is time
spent outside matrix products: elementwise work, small kernels, Python.

    python benchmarks/step_rate.py --quick
    python benchmarks/step_rate.py --models vamp --steps 200
"""

import argparse
import statistics
import time
import warnings

import torch
from nll_eval import matmul_rate  # the same reference as the scoring benchmark
from torch.utils.flop_counter import FlopCounterMode

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import load_binarized_mnist

MODELS = {
    "vae": dict(prior="standard"),
    "iwae": dict(prior="standard", objective="iwae"),
    "vamp": dict(prior="vamp"),
    "vhp": dict(prior="vhp"),
}


def fitted(model, X):
    """A fitted estimator (one epoch on a few rows) and its module, optimiser-ready."""
    est = VHPEstimator(
        n_components=40,
        hidden_layer_sizes=(512,),
        batch_size=100,
        schedule="constant",
        n_importance=16,
        max_iter=1,
        random_state=0,
        device="cpu",
        **MODELS[model],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:1000])
    return est


def step_fn(est):
    module = est.module_.train()
    opt = torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(0)

    def step(x):
        loss, *_ = module.training_loss(
            x, beta=1.0, n_importance=est.n_importance, generator=gen, objective=est.objective
        )
        opt.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt.step()

    return step


def mm_rate(flops, size, repeats=5):
    """FLOP/s of float32 ``torch.mm`` doing ``flops`` (``nll_eval.py``'s reference)."""
    return matmul_rate(flops, size, repeats) * 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=100, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mm-size", type=int, default=512)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 20, 3
    torch.set_num_threads(1)
    X = load_binarized_mnist("train", data_home="/work/shared/data")[:20000]
    data = torch.as_tensor(X, dtype=torch.float32)
    print(f"one thread, batch 100, MLP 784-512-40; median of {args.repeats} x {args.steps} steps\n")
    print("| model | GFLOP/step | ms/step | GFLOP/s | mm GFLOP/s | share of mm rate |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        step = step_fn(fitted(model, X))
        batches = [data[i * 100 : (i + 1) * 100] for i in range(args.steps)]
        with FlopCounterMode(display=False) as counter:
            step(batches[0])
        flops = counter.get_total_flops()
        for x in batches[:5]:
            step(x)  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for x in batches:
                step(x)
            times.append((time.perf_counter() - t) / args.steps)
        sec = statistics.median(times)
        mm = mm_rate(flops * args.steps, args.mm_size)
        print(
            f"| {model} | {flops / 1e9:.3f} | {1e3 * sec:.2f} | {flops / sec / 1e9:.1f} "
            f"| {mm / 1e9:.1f} | {flops / sec / mm:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
