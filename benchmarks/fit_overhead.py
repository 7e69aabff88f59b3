"""Training speed of ``VHPEstimator.fit`` against a bare PyTorch loop.

Both train the same network (the bare loop a copy of the ``module_`` of a
``VHPEstimator`` fitted for one epoch on a few rows: same hidden sizes, K,
batch size, data and thread count) with Adam for the same
number of iterations; the bare loop is what a researcher would write by hand:
a shuffled index per epoch, slicing a tensor, ``loss.backward()``,
``opt.step()``, nothing else. Each is timed ``--repeats`` times, alternating,
and the median iterations per second are compared (and, robust to drift of
the machine's speed, the median of the paired per-repeat ratios).

    python benchmarks/fit_overhead.py            # 2 threads, 12,000 rows
    python benchmarks/fit_overhead.py --quick    # seconds
"""

import argparse
import copy
import platform
import statistics
import time
import warnings

import torch

from sklearn_vhp import VHPEstimator


def the_network(X, *, hidden, n_importance, seed, **_):
    """The estimator's network (a torch module) for ``X``, through the public API."""
    est = VHPEstimator(
        schedule="constant",
        hidden_layer_sizes=hidden,
        n_importance=n_importance,
        max_iter=1,
        random_state=seed,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:64])
    return est.module_


def bare_loop(X, *, network, hidden, n_importance, batch_size, epochs, lr, seed):
    """A hand-written loop over the same model, with beta = 1."""
    gen = torch.Generator().manual_seed(seed)
    vae = copy.deepcopy(network).train()
    opt = torch.optim.Adam(vae.parameters(), lr=lr, fused=True)
    data = torch.as_tensor(X, dtype=torch.float32)
    n = data.shape[0]
    iters = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            x = data[perm[start : start + batch_size]]
            loss, *_ = vae.training_loss(x, beta=1.0, n_importance=n_importance, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            opt.step()
            iters += 1
    return iters


def estimator_fit(X, *, network, hidden, n_importance, batch_size, epochs, lr, seed):
    # schedule="constant": every network trains at every step, as in the bare
    # loop (REWO's initial phase freezes the prior and would flatter us).
    est = VHPEstimator(
        schedule="constant",
        hidden_layer_sizes=hidden,
        n_importance=n_importance,
        batch_size=batch_size,
        max_iter=epochs,
        learning_rate=lr,
        random_state=seed,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    return len(est.history_["beta"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.repeats = 640, 1, 2
    torch.set_num_threads(args.threads)
    from sklearn_vhp.datasets import make_pendulum

    X, _ = make_pendulum(args.rows, random_state=0)
    kw = dict(
        hidden=(256,) * 4, n_importance=16, batch_size=64, epochs=args.epochs, lr=1e-3, seed=0
    )
    kw["network"] = the_network(X, **kw)
    rates = {"bare torch loop": [], "VHPEstimator.fit": []}
    runners = {"bare torch loop": bare_loop, "VHPEstimator.fit": estimator_fit}
    for fn in runners.values():  # warm-up (allocator, first-call costs)
        fn(X[:640], **{**kw, "epochs": 1})
    for _ in range(args.repeats):
        for name, fn in runners.items():
            t = time.perf_counter()
            iters = fn(X, **kw)
            rates[name].append(iters / (time.perf_counter() - t))
    bare = statistics.median(rates["bare torch loop"])
    ours = statistics.median(rates["VHPEstimator.fit"])
    print(
        f"# fit overhead — {platform.machine()} {platform.processor() or ''}, "
        f"{args.threads} torch threads, {args.rows} rows, 4x256 MLPs, K=16, batch 64, "
        f"median of {args.repeats}"
    )
    print()
    print("| loop | iterations/s (median) | all repeats |")
    print("|---|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {statistics.median(r):.1f} | {', '.join(f'{v:.1f}' for v in r)} |")
    print(f"| **ratio ours / bare** | **{ours / bare:.3f}** | target ≥ 0.90 |")
    # The repeats alternate, so each (bare, ours) pair shares the machine's
    # state at that moment; the median of the paired ratios is robust to drift.
    paired = statistics.median(
        o / b for b, o in zip(rates["bare torch loop"], rates["VHPEstimator.fit"])
    )
    print(f"| ratio, median of the {args.repeats} paired repeats | {paired:.3f} | |")
    return ours / bare


if __name__ == "__main__":
    main()
