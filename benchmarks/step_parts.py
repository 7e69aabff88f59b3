"""Where a VAE step's time goes beyond a hand-written loop's, part by part.

One process, one thread, the network of ``benchmarks/peers.py`` (MLP
784-512-40, batch 100, static MNIST), the variants taking turns:

* ``bare``: the step a researcher writes by hand with pythae's network;
* ``+ shortcuts``: the same with this package's linear shortcuts beside
  encoder and decoder (what the PCA start is built on);
* ``+ statistics``: and the values ``fit`` records every step (loss,
  reconstruction, KL and the squared error the REWO/GECO constraint needs);
* ``sklearn-vhp``: this package's own step (``VAE.training_loss``, backward,
  its fused Adam).

All use the same Adam kernel (``sklearn_vhp._adam.FusedAdam``).

    python benchmarks/step_parts.py
    python benchmarks/step_parts.py --steps 50 --repeats 3
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from step_rate import fitted
from torch import nn

from sklearn_vhp._adam import FusedAdam
from sklearn_vhp.datasets import load_binarized_mnist


class Net(nn.Module):
    """``Linear``-tanh-``Linear``, with or without a linear shortcut beside it."""

    def __init__(self, n_in, hidden, n_out, shortcut):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))
        self.shortcut = nn.Linear(n_in, n_out, bias=False) if shortcut else None

    def forward(self, x):
        y = self.body(x)
        return y if self.shortcut is None else y + self.shortcut(x)


def hand_written(shortcut, record):
    enc, dec = Net(784, 512, 80, shortcut), Net(40, 512, 784, shortcut)
    opt = FusedAdam([*enc.parameters(), *dec.parameters()], lr=1e-3)

    def step(x):
        mean, log_var = enc(x).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = dec(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        kl = 0.5 * (mean**2 + log_var.exp() - log_var - 1.0).sum(-1)
        loss = (rec + kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if record:
            with torch.no_grad():
                sq_err = ((torch.sigmoid(logits) - x) ** 2).mean()
                return torch.stack([loss.detach(), rec.mean(), sq_err, kl.mean()])

    return step


def ours(X):
    module = fitted("vae", X).module_.train()
    opt = FusedAdam(module.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step(x):
        loss, nll, kl, sq_err = module.training_loss(
            x, beta=1.0, n_importance=1, generator=gen, objective="elbo"
        )
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return torch.stack([loss.detach(), nll.mean(), sq_err, kl.mean()])

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per turn")
    parser.add_argument("--repeats", type=int, default=5, help="turns of each variant")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    X = load_binarized_mnist("train", data_home="/work/shared/data")[:20000]
    data = torch.as_tensor(X, dtype=torch.float32)
    variants = {
        "bare (pythae's network)": hand_written(False, False),
        "+ shortcuts": hand_written(True, False),
        "+ statistics": hand_written(True, True),
        "sklearn-vhp": ours(X),
    }
    perm = torch.randperm(data.shape[0])
    batches = [data[perm[i : i + 100]] for i in range(0, 100 * args.steps, 100)]
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, step in variants.items():
            for x in batches[:5]:
                step(x)  # warm-up
            t = time.perf_counter()
            for x in batches:
                step(x)
            times[name].append((time.perf_counter() - t) / len(batches))
    base = statistics.median(times["bare (pythae's network)"])
    print(f"one thread, batch 100, median of {args.repeats} turns of {args.steps} steps\n")
    print("| step | ms/step | × bare |")
    print("|---|---|---|")
    for name, values in times.items():
        sec = statistics.median(values)
        print(f"| {name} | {1e3 * sec:.2f} | {sec / base:.3f} |")


if __name__ == "__main__":
    main()
