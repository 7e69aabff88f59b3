"""Speed and likelihood against a peer package: pythae (``pip install .[bench]``).

Both packages train the same network on static binarised MNIST: an MLP
784-512-40 with tanh (encoder: one hidden layer of 512, heads for the mean
and log-variance; decoder 40-512-784, Bernoulli logits), batch 100, Adam
1e-3, one thread each. pythae runs out of the box (its ``TrainingPipeline``
and ``BaseTrainer`` defaults, checkpoints and logs written to a temporary
directory); this package runs ``VHPEstimator`` with its defaults but for the
settings above (``schedule="constant"`` for the models pythae has).

1. **Fit throughput** (default): the whole fitting call (model construction,
   data handling, the PCA start, optimiser, training) of every model both
   have (VAE, IWAE with K = 16, VampPrior with 500 pseudo-inputs), in
   iterations per second. Each measurement runs in its own fresh process,
   the contenders alternate, and the table shows the median of
   ``--repeats``. For the VAE and the IWAE a hand-written loop of the same
   network (``bare``: no checks, no statistics, fused Adam) runs too: the
   ceiling of eager PyTorch, against which both packages' overheads show.
2. **Equal wall-clock budget** (``--budget-s 600``): pythae's VampPrior,
   this package's VampPrior and VHP + REWO each train for ``--budget-s``
   seconds on 50,000 rows (an alarm interrupts training; this package keeps
   its last completed epoch), then their validation log-likelihood is
   estimated on 1,000 validation rows with 5,000 importance samples from
   ``q(z|x)``. pythae's model is scored by the same estimator, computed here
   from its trained encoder, decoder and pseudo-inputs (``log_weights``
   below; pythae's own ``get_nll`` is the same estimator but loops over
   rows one at a time). ``--jobs 2`` runs two contenders at once (one core
   each on a quiet 2-core machine).

    python benchmarks/peers.py --quick              # about a minute
    python benchmarks/peers.py                      # fit throughput, 5 repeats
    python benchmarks/peers.py --budget-s 600 --jobs 2   # + NLL at 10 min each
    python benchmarks/peers.py --budget-s 600 --jobs 2 --skip-fit   # the NLL part only

A peer that is not installed is skipped, and the table says so.
"""

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

DATA_HOME = os.environ.get("SKLEARN_VHP_DATA", "/work/shared/data")
LATENT, HIDDEN, BATCH, LR, K, PSEUDO = 40, 512, 100, 1e-3, 16, 500
MODELS = ("vae", "iwae", "vamp")
BARE = ("vae", "iwae")  # the models of the hand-written loop (bare)
# The first two (the comparison the issue asks for) run side by side with --jobs 2.
NLL_CONTENDERS = (("pythae", "vamp"), ("sklearn-vhp", "vhp"), ("sklearn-vhp", "vamp"))


# ---------------------------------------------------------------- the workers
def load(n_train, n_val=0):
    import numpy as np

    from sklearn_vhp.datasets import load_binarized_mnist

    X = load_binarized_mnist("train", data_home=DATA_HOME)[:n_train]
    V = load_binarized_mnist("valid", data_home=DATA_HOME)[:n_val] if n_val else None
    return np.asarray(X), V


@contextlib.contextmanager
def alarm(seconds):
    """Raise KeyboardInterrupt after ``seconds`` (the equal wall-clock budget)."""
    if not seconds:
        yield
        return

    def interrupt(*_):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def our_estimator(job):
    """This package's estimator for ``job`` (the network and settings above)."""
    from sklearn_vhp import VHPEstimator

    model = job["model"]
    return VHPEstimator(
        n_components=LATENT,
        hidden_layer_sizes=(HIDDEN,),
        batch_size=BATCH,
        learning_rate=LR,
        prior="standard" if model in ("vae", "iwae") else model,
        objective="iwae" if model == "iwae" else "elbo",
        n_importance=K,
        n_pseudo_inputs=PSEUDO,
        schedule="rewo" if model == "vhp" else "constant",
        encoder_variance=job.get("encoder_variance", "shared"),
        max_iter=job["epochs"],
        n_eval_samples=job.get("n_eval_samples", 5000),
        random_state=job["seed"],
        device="cpu",
    )


def ours(job):
    import torch

    X, V = load(job["n_train"], job.get("n_val", 0))
    est = our_estimator(job)
    start = time.perf_counter()
    with warnings.catch_warnings(), alarm(job.get("budget_s")):
        warnings.simplefilter("ignore")
        est.fit(X)
    seconds = time.perf_counter() - start
    result = dict(seconds=seconds, iterations=len(est.history_["loss"]))
    if V is not None:
        with torch.no_grad():
            result["nll"] = -float(est.score(V))
        result["epochs_done"] = est.n_iter_
    return result


def pythae_models(job):
    """pythae's model for ``job`` with the same MLP (and a scoring view of it)."""
    import torch
    from pythae.models import IWAE, VAE, VAMP, IWAEConfig, VAEConfig, VAMPConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(784, HIDDEN), nn.Tanh())
            self.head = nn.Linear(HIDDEN, 2 * LATENT)

        def forward(self, x):
            mean, log_var = self.head(self.body(x.reshape(x.shape[0], -1))).chunk(2, dim=-1)
            return ModelOutput(embedding=mean, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 784))

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    common = dict(input_dim=(784,), latent_dim=LATENT, reconstruction_loss="bce")
    model = job["model"]
    if model == "vae":
        return VAE(VAEConfig(**common), encoder=Encoder(), decoder=Decoder())
    if model == "iwae":
        return IWAE(IWAEConfig(**common, number_samples=K), encoder=Encoder(), decoder=Decoder())
    config = VAMPConfig(**common, number_components=PSEUDO)
    return VAMP(config, encoder=Encoder(), decoder=Decoder())


def pythae_log_marginal(vae, X, n_samples, seed, rows_per_chunk=10):
    """``log p(x)`` by importance sampling from ``q(z|x)``, the estimator ``score`` uses.

    ``log p(x) ≈ logsumexp_s [log p(x|z_s) + log p(z_s) - log q(z_s|x)] - log S``,
    in float64, Bernoulli ``log p(x|z)`` from the decoder's logits; the
    VampPrior's ``log p(z)`` exact over its pseudo-inputs.
    """
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    log2pi = math.log(2 * math.pi)
    with torch.no_grad():
        if hasattr(vae, "pseudo_inputs"):
            C = vae.number_components
            u = vae.pseudo_inputs(vae.idle_input).reshape(C, -1)
            out = vae.encoder(u)
            pm, plv = out.embedding.double(), out.log_covariance.double()
            # Σ_j (z_j - m_kj)² / v_kj expanded into matrix products, in float64.
            inv_var = torch.exp(-plv)
            A, Bm = inv_var.T, (pm * inv_var).T
            c = (pm * pm * inv_var + plv + log2pi).sum(-1)
        out = []
        for start in range(0, X.shape[0], rows_per_chunk):
            x = X[start : start + rows_per_chunk]
            enc = vae.encoder(x)
            mu, lv = enc.embedding, enc.log_covariance
            acc = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
            for s0 in range(0, n_samples, 500):
                S = min(500, n_samples - s0)
                eps = torch.randn(x.shape[0], S, LATENT, generator=gen)
                z = mu[:, None] + torch.exp(0.5 * lv)[:, None] * eps
                logits = vae.decoder.net(z)
                log_px = -F.binary_cross_entropy_with_logits(
                    logits, x[:, None].expand_as(logits), reduction="none"
                ).sum(-1)
                log_q = -0.5 * (eps**2 + lv[:, None] + log2pi).sum(-1)
                z64 = z.double()
                if hasattr(vae, "pseudo_inputs"):
                    comp = -0.5 * ((z64 * z64) @ A - 2.0 * (z64 @ Bm) + c)
                    log_pz = torch.logsumexp(comp, -1) - math.log(C)
                else:
                    log_pz = -0.5 * (z64**2 + log2pi).sum(-1)
                log_w = log_px.double() + log_pz - log_q.double()
                acc = torch.logaddexp(acc, torch.logsumexp(log_w, 1))
            out.append(acc - math.log(n_samples))
    return torch.cat(out)


def pythae(job):
    import logging

    import torch

    logging.disable(logging.INFO)
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    X, V = load(job["n_train"], job.get("n_val", 0))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        torch.manual_seed(job["seed"])
        model = pythae_models(job)
        steps = [0]  # training iterations (the budget may stop it mid-epoch)
        model.register_forward_pre_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
        config = BaseTrainerConfig(
            output_dir=out,
            num_epochs=job["epochs"],
            per_device_train_batch_size=BATCH,
            learning_rate=LR,
            no_cuda=True,
            seed=job["seed"],
        )
        with warnings.catch_warnings(), alarm(job.get("budget_s")):
            warnings.simplefilter("ignore")
            TrainingPipeline(model=model, training_config=config)(train_data=X)
        seconds = time.perf_counter() - start
    result = dict(seconds=seconds, iterations=steps[0])
    if V is not None:
        model.eval()
        Vt = torch.as_tensor(V, dtype=torch.float32)
        nll = -pythae_log_marginal(model, Vt, job.get("n_eval_samples", 5000), job["seed"])
        result["nll"] = float(nll.mean())
    return result


def bare(job):
    """The VAE or IWAE as a researcher writes it by hand: pythae's network, a plain loop.

    The ceiling of what eager PyTorch does with this network: no shortcuts,
    no checks, no statistics; the data converted to a float32 tensor once,
    a shuffled index per epoch, ``torch.optim.Adam(fused=True)``, whose
    one-off import of ``torch._dynamo`` is paid before the clock starts.
    """
    import torch
    import torch._dynamo  # noqa: F401  (imported by torch.optim; not counted here)
    import torch.nn.functional as F
    from torch import nn

    X, _ = load(job["n_train"])
    iwae = job["model"] == "iwae"
    start = time.perf_counter()
    torch.manual_seed(job["seed"])
    enc = nn.Sequential(nn.Linear(784, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 2 * LATENT))
    dec = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 784))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR, fused=True)
    data = torch.as_tensor(X, dtype=torch.float32)
    steps = 0
    for _ in range(job["epochs"]):
        perm = torch.randperm(data.shape[0])
        for i in range(0, data.shape[0] - BATCH + 1, BATCH):
            x = data[perm[i : i + BATCH]]
            mean, log_var = enc(x).chunk(2, dim=-1)
            if iwae:  # K samples per row, log-mean-exp of the weights
                eps = torch.randn(x.shape[0], K, LATENT)
                z = mean[:, None] + torch.exp(0.5 * log_var)[:, None] * eps
                logits = dec(z)
                log_px = -F.binary_cross_entropy_with_logits(
                    logits, x[:, None].expand_as(logits), reduction="none"
                ).sum(-1)
                log_w = log_px - 0.5 * (z**2 - eps**2 - log_var[:, None]).sum(-1)
                loss = -(torch.logsumexp(log_w, 1) - math.log(K)).mean()
            else:
                z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
                rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
                kl = 0.5 * (mean**2 + log_var.exp() - log_var - 1.0).sum(-1)
                loss = (rec + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    return dict(seconds=time.perf_counter() - start, iterations=steps)


def worker(job):
    import torch

    torch.set_num_threads(1)
    return {"pythae": pythae, "bare torch": bare}.get(job["peer"], ours)(job)


# ---------------------------------------------------------------- the driver
def run(job, wait=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = spawn([sys.executable, __file__, "--worker", json.dumps(job)], env)
    return collect(proc) if wait else proc


def spawn(cmd, env):
    """Start a worker whose output goes to temporary files, not pipes.

    A worker's pipe that nobody reads while the driver waits on another
    worker fills up (pythae's progress bars: 64 KiB in seconds), and the
    worker then stalls on its next write with its clock running.
    """
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
    proc.outputs = out, err
    return proc


def finished(proc):
    """``(returncode, stdout, stderr)`` of a worker from :func:`spawn`, once it ends."""
    proc.wait()
    texts = []
    for f in proc.outputs:
        f.seek(0)
        texts.append(f.read())
        f.close()
    return proc.returncode, texts[0], texts[1]


def collect(proc):
    code, out, err = finished(proc)
    if code:
        # stderr (pythae's progress bars) is shown only when a worker fails.
        raise RuntimeError(f"worker failed ({code}): {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def fit_table(args, peers):
    rows = []
    for model in args.models:
        # The hand-written loop is the ceiling eager PyTorch sets.
        contenders = peers + (["bare torch"] if model in BARE else [])
        rates = {p: [] for p in contenders}
        for r in range(args.repeats):
            order = contenders if r % 2 == 0 else contenders[::-1]  # alternate who goes first
            for peer in order:
                job = dict(
                    peer=peer,
                    model=model,
                    n_train=args.n_train,
                    epochs=args.epochs,
                    seed=r,
                    encoder_variance=args.encoder_variance,
                )
                res = run(job)
                rates[peer].append(res["iterations"] / res["seconds"])
        rows.append((model, {p: statistics.median(v) for p, v in rates.items()}))
    return rows


def nll_table(args, peers):
    jobs = [
        dict(
            peer=p,
            model=m,
            n_train=args.nll_train,
            n_val=args.n_val,
            n_eval_samples=args.eval_samples,
            epochs=100000,
            budget_s=args.budget_s,
            seed=0,
            encoder_variance=args.encoder_variance,
        )
        for p, m in NLL_CONTENDERS
        if p in peers and (args.contenders is None or f"{p}:{m}" in args.contenders)
    ]
    results, running = [], []
    for job in jobs:
        while len(running) >= args.jobs:
            j, proc = running.pop(0)
            results.append((j, collect(proc)))
        running.append((job, run(job, wait=False)))
    results += [(j, collect(proc)) for j, proc in running]
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1 epoch of 5,000 rows, 1 repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=20000, help="rows of the fit timing")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the fit timing")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--budget-s", type=float, default=0, help="NLL at equal wall clock")
    parser.add_argument("--nll-train", type=int, default=50000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--eval-samples", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=1, help="NLL contenders run at once")
    parser.add_argument("--skip-fit", action="store_true", help="only the NLL part")
    parser.add_argument(
        "--encoder-variance",
        choices=["shared", "amortized"],
        default="shared",
        help="this package's q(z|x) variance (its default: shared; pythae's is per input)",
    )
    parser.add_argument(
        "--contenders",
        nargs="+",
        default=None,
        help="NLL contenders as peer:model (default: all of "
        + ", ".join(f"{p}:{m}" for p, m in NLL_CONTENDERS)
        + ")",
    )
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        args.repeats, args.n_train, args.epochs = 1, 5000, 1
        args.n_val, args.eval_samples = min(args.n_val, 100), min(args.eval_samples, 500)
    peers = ["sklearn-vhp"]
    if importlib.util.find_spec("pythae") is None:
        print("pythae is not installed (pip install .[bench]): its rows are skipped.\n")
    else:
        peers.insert(0, "pythae")
    import torch

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one "
        f"thread per process; {args.epochs} epoch(s) of {args.n_train} rows, batch {BATCH}, "
        f"median of {args.repeats} fresh processes, alternating\n"
    )
    if not args.skip_fit:
        names = [*peers, "bare torch"]
        header = " | ".join(f"{p} (it/s)" for p in names)
        print(f"| model | {header} | sklearn-vhp / pythae |")
        print("|---|" + "---|" * (len(names) + 1))
        for model, rate in fit_table(args, peers):
            ratio = rate["sklearn-vhp"] / rate["pythae"] if "pythae" in rate else math.nan
            cells = " | ".join(f"{rate[p]:.1f}" if p in rate else "–" for p in names)
            print(f"| {model} | {cells} | {ratio:.2f}x |", flush=True)
    if args.budget_s:
        print(
            f"\nValidation NLL (nats; {args.n_val} rows, {args.eval_samples} importance "
            f"samples) after {args.budget_s:g} s of training on {args.nll_train} rows, "
            f"{args.jobs} at a time; encoder_variance={args.encoder_variance!r}\n"
        )
        print("| package | model | epochs | iterations | NLL |")
        print("|---|---|---|---|---|")
        for job, res in nll_table(args, peers):
            epochs = res.get("epochs_done", res["iterations"] * BATCH / job["n_train"])
            print(
                f"| {job['peer']} | {job['model']} | {epochs:.3g} | {res['iterations']} "
                f"| {res['nll']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
