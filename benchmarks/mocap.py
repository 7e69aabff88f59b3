"""Paper Sec. 4.2 (Figs 5-8): human motion on real CMU recordings.

Three models are fitted on the joint angles of CMU recordings (the paper's 50
features per frame, :func:`sklearn_vhp.datasets.load_cmu_mocap`), standardised
with a :class:`~sklearn.preprocessing.StandardScaler` fitted on the training
frames, with one recording held out (default ``14_14``; trained on 13_29,
13_30, 13_31):

* VHP + REWO, the hierarchical prior;
* VampPrior with 64 pseudo-inputs, ``β = 1``;
* IWAE with ``K = 32`` importance samples, ``β = 1``.

Two settings (``--settings``):

* ``paper``: the paper's App. F Table 3, four 256-unit ReLU layers in every
  network (``hidden_layer_sizes=(256,) * 4, activation="relu"``), Gaussian
  likelihood, 2-D latent, the usual per-input encoder variance
  (``encoder_variance="amortized"``) and random initialisation
  (``init="random"``); Euclidean shortest paths (``edge_power=1``).
* ``defaults``: what a user gets, ``VHPEstimator(n_components=2)`` (the
  baselines change only ``prior``/``objective``/``schedule`` and their
  ``n_pseudo_inputs``/``n_importance``); the interpolator's default
  squared edge lengths.

For each model: 10 graphs (``ManifoldInterpolator`` with 2,530 nodes and 15
neighbours, each a new draw of the prior) × 100 interpolations between random
pairs of frames of the held-out recording. The smoothness factor (RMS of the
second difference along the path, :func:`sklearn_vhp.metrics.smoothness_factor`)
is computed per joint on the decoded *standardised* angles (as the issue's
table does), then averaged over the joints: the paper's Fig. 8. The table
also gives the 5-NN accuracy of the exercise from the 2-D latent (trained on
the training frames' codes, scored on the held-out recording's), the held-out
log-likelihood per frame (importance-sampled, standardised units), the fit
time, and the pairs that found a path (connected graphs).

Outputs in ``--out``: ``mocap_<setting>.json`` (raw numbers),
``mocap_<setting>_latents.png`` (Fig. 5: approximate posterior and prior of
each model, coloured by exercise), ``mocap_<setting>_graph.png`` (Fig. 6: a
graph with one path within an exercise and one between two),
``mocap_<setting>_strips.png`` (Fig. 7: those paths as stick figures),
``mocap_<setting>_smoothness.png`` (Fig. 8: per-joint smoothness, mean and
standard deviation). ``--report`` merges every ``mocap_*.json`` in ``--out``
into ``mocap.md``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/mocap.py --settings paper --out docs/benchmarks
    OMP_NUM_THREADS=1 python benchmarks/mocap.py --settings defaults --out docs/benchmarks
    python benchmarks/mocap.py --report --out docs/benchmarks
    python benchmarks/mocap.py --quick --out /tmp/mocap      # smoke run, < 1 min
"""

import argparse
import json
import os
import pickle
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import Bunch  # noqa: E402

from sklearn_vhp import ManifoldInterpolator, VHPEstimator  # noqa: E402
from sklearn_vhp.datasets import features_to_channels, load_cmu_mocap, read_asf  # noqa: E402
from sklearn_vhp.metrics import smoothness_factor  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("SKLEARN_VHP_DATA", ROOT.parent / "shared" / "data"))
MODELS = ("vhp", "vamp", "iwae")
LABELS = {"vhp": "VHP + REWO", "vamp": "VampPrior", "iwae": "IWAE"}


def make_model(key, setting, seed, max_iter, quick):
    """The estimator of one row: paper App. F or the package defaults."""
    kw = {"n_components": 2, "random_state": seed}
    if setting == "paper":
        kw.update(
            hidden_layer_sizes=(16,) * 2 if quick else (256,) * 4,
            activation="relu",
            likelihood="gaussian",
            encoder_variance="amortized",
            init="random",
        )
    elif quick:
        kw.update(hidden_layer_sizes=(16,) * 2)
    if max_iter is not None:
        kw["max_iter"] = max_iter
    if key == "vamp":
        kw.update(prior="vamp", n_pseudo_inputs=64, schedule="constant")
    elif key == "iwae":
        kw.update(prior="standard", objective="iwae", n_importance=32, schedule="constant")
    return VHPEstimator(**kw)


def joint_groups(feature_names):
    """``joint -> column indices`` in feature order (24 joints for the 50 features)."""
    groups = {}
    for k, name in enumerate(feature_names):
        groups.setdefault(name.split(".")[0], []).append(k)
    return groups


def per_joint_smoothness(decoded, groups):
    return np.array([smoothness_factor(decoded[:, cols]) for cols in groups.values()])


def run_model(key, args, train, held, groups):
    if args.reuse is not None:
        # Evaluate a model pickled by an earlier run (its fit time from that run's json).
        with open(args.reuse / f"mocap_{args.settings}_{key}.pkl", "rb") as fh:
            model = pickle.load(fh)
        previous = args.reuse / f"mocap_{args.settings}.json"
        fit_time = None
        if previous.exists():
            old = json.loads(previous.read_text(encoding="utf-8"))["results"].get(key, {})
            fit_time = old.get("fit_time")
    else:
        model = make_model(key, args.settings, args.seed, args.max_iter, args.quick)
        t0 = time.perf_counter()
        model.fit(train.X)
        fit_time = time.perf_counter() - t0
    z_train = model.transform(train.X)
    z_held = model.transform(held.X)
    knn = KNeighborsClassifier(n_neighbors=5).fit(z_train, train.target)
    knn_acc = float(np.mean(knn.predict(z_held) == held.target))
    t0 = time.perf_counter()
    model.set_params(n_eval_samples=args.n_eval_samples)
    loglik = float(np.mean(model.score_samples(held.X)))
    score_time = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    pairs = rng.integers(0, len(held.X), size=(args.n_graphs, args.n_pairs, 2))
    smooth, lengths, points, found, components, per_pair = [], [], [], 0, [], []
    paths = {}
    t0 = time.perf_counter()
    for g in range(args.n_graphs):
        interp = ManifoldInterpolator(
            model,
            prefit=True,
            n_nodes=args.n_nodes,
            n_neighbors=args.n_neighbors,
            edge_power=1.0 if args.settings == "paper" else 2.0,
            random_state=args.seed + g,
        ).fit(train.X)
        components.append(int(interp.n_connected_components_))
        for i, j in pairs[g]:
            try:
                path = interp.interpolate(held.X[i], held.X[j])
            except ValueError:
                continue
            found += 1
            smooth.append(per_joint_smoothness(path.decoded, groups))
            lengths.append(path.length)
            points.append(len(path.latent))
            per_pair.append([g, int(i), int(j), float(smooth[-1].mean()), len(path.latent)])
        if g == 0:
            first_graph = interp
    interp_time = time.perf_counter() - t0
    smooth = np.array(smooth).reshape(-1, len(groups))
    # Figure paths on the first graph: within one exercise and between two.
    for name, (i, j) in example_pairs(held).items():
        try:
            paths[name] = first_graph.interpolate(held.X[i], held.X[j])
        except ValueError:
            paths[name] = None
    result = {
        "label": LABELS[key],
        "params": {k: repr(v) for k, v in model.get_params().items()},
        "fit_time": fit_time,
        "epochs": int(model.n_iter_),
        "hidden_layer_sizes": list(model.hidden_layer_sizes_),
        "noise_variance": model.noise_variance_,
        "beta": float(model.beta_),
        "knn5": knn_acc,
        "loglik": loglik,
        "score_time": score_time,
        "interp_time": interp_time,
        "pairs": int(pairs.shape[0] * pairs.shape[1]),
        "found": found,
        "components": components,
        "smooth_mean": float(smooth.mean()) if len(smooth) else None,
        "smooth_path_std": float(smooth.mean(axis=1).std()) if len(smooth) else None,
        "smooth_joint_mean": smooth.mean(axis=0).tolist() if len(smooth) else None,
        "smooth_joint_std": smooth.std(axis=0).tolist() if len(smooth) else None,
        "path_points_mean": float(np.mean(points)) if points else None,
        "path_length_mean": float(np.mean(lengths)) if lengths else None,
        "per_pair": per_pair,
    }
    plots = {
        "z_train": z_train,
        "z_held": z_held,
        "prior": model.sample_latent(2000, random_state=args.seed),
        "interp": first_graph,
        "paths": paths,
    }
    return model, result, plots


def example_pairs(held):
    """Two frame pairs of the held-out recording, fixed by its labels: the
    first and last frame of its longest single-exercise stretch, and the
    middles of the two longest stretches of different exercises."""
    t = held.target
    edges = np.flatnonzero(np.diff(t)) + 1
    starts = np.r_[0, edges]
    ends = np.r_[edges, len(t)]
    order = np.argsort(starts - ends)  # longest first
    s, e = starts[order[0]], ends[order[0]] - 1
    within = (s + (e - s) // 4, e - (e - s) // 4)
    other = next(k for k in order[1:] if t[starts[k]] != t[s])
    between = ((s + e) // 2, (starts[other] + ends[other]) // 2)
    return {
        f"within {held.target_names[t[s]]}": within,
        f"{held.target_names[t[s]]} → {held.target_names[t[starts[other]]]}": between,
    }


def load(args):
    folder = args.data / "cmu_mocap"
    files = sorted(folder.glob("*.amc.gz"))
    held_files = [f for f in files if f.name.startswith(args.holdout)]
    train_files = [f for f in files if not f.name.startswith(args.holdout)]
    train = load_cmu_mocap(train_files, fps=args.fps)
    held = load_cmu_mocap(held_files, fps=args.fps)
    if args.quick:
        train = subset(train, slice(None, None, 8))
        held = subset(held, slice(None, None, 8))
    scaler = StandardScaler().fit(train.data)
    train.X = scaler.transform(train.data)
    held.X = scaler.transform(held.data)
    return train, held, scaler, read_asf(folder / "12.asf")


def subset(bunch, rows):
    out = Bunch(**bunch)
    for key in ("data", "target", "sequence", "frame"):
        out[key] = bunch[key][rows]
    return out


# -------------------------------------------------------------- figures
def save_figures(args, train, held, scaler, skeleton, plots, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_vhp.plotting import plot_latent_graph, plot_pose_strip

    keys = list(plots)
    names = held.target_names
    present = np.unique(np.r_[train.target, held.target])
    cmap = plt.get_cmap("tab10")
    colours = {t: cmap(k) for k, t in enumerate(present)}
    out = args.out
    tag = args.settings

    # Fig. 5: posterior (training codes, coloured) and prior samples.
    fig, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys), 7), squeeze=False)
    for c, key in enumerate(keys):
        p = plots[key]
        ax = axes[0, c]
        for t in present:
            m = train.target == t
            ax.scatter(*p["z_train"][m].T, s=2, color=colours[t], label=names[t])
        ax.set_title(f"{LABELS[key]}: q(z|x), training frames", fontsize="small")
        ax2 = axes[1, c]
        ax2.scatter(*p["prior"].T, s=2, color="0.3")
        ax2.set_xlim(ax.get_xlim())
        ax2.set_ylim(ax.get_ylim())
        ax2.set_title(f"{LABELS[key]}: samples of p(z)", fontsize="small")
    axes[0, 0].legend(markerscale=4, fontsize="x-small", loc="best")
    fig.tight_layout()
    fig.savefig(out / f"mocap_{tag}_latents.png", dpi=90)
    plt.close(fig)

    # Fig. 6: the first graph with the two example paths.
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4), squeeze=False)
    for c, key in enumerate(keys):
        ax = axes[0, c]
        p = plots[key]
        for t in present:
            m = held.target == t
            ax.scatter(*p["z_held"][m].T, s=3, color=colours[t], zorder=0, alpha=0.6)
        plot_latent_graph(p["interp"], ax=ax, node_kw={"s": 1, "c": "0.5"})
        for k, (name, path) in enumerate(p["paths"].items()):
            if path is not None:
                ax.plot(*path.latent.T, "-o", ms=2, lw=1.5, color=f"C{3 + k}", label=name)
        ax.set_title(
            f"{LABELS[key]} ({results[key]['components'][0]} components)", fontsize="small"
        )
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(out / f"mocap_{tag}_graph.png", dpi=90)
    plt.close(fig)

    # Fig. 7: stick figures along the example paths.
    path_names = list(plots[keys[0]]["paths"])
    fig, axes = plt.subplots(
        len(keys) * len(path_names), 1, figsize=(12, 1.6 * len(keys) * len(path_names))
    )
    axes = np.atleast_1d(axes)
    for r, (name, key) in enumerate((n, k) for n in path_names for k in keys):
        path = plots[key]["paths"][name]
        ax = axes[r]
        if path is None:
            ax.set_axis_off()
            ax.set_title(f"{LABELS[key]}, {name}: no path", fontsize="small", loc="left")
            continue
        degrees = scaler.inverse_transform(path.decoded)
        frames = features_to_channels(
            degrees, train.feature_names, train.channel_names, train.fill_values
        )
        plot_pose_strip(
            skeleton,
            frames,
            train.channel_names,
            ax,
            n_frames=12,
            spacing=25.0,
            title=f"{LABELS[key]}, {name} ({len(path.latent)} points)",
        )
        ax.set_xlim(-15.0, 12 * 25.0)  # strips of fewer points keep the scale
    fig.tight_layout()
    fig.savefig(out / f"mocap_{tag}_strips.png", dpi=90)
    plt.close(fig)

    # Fig. 8: per-joint smoothness, mean ± std over paths.
    joints = list(joint_groups(train.feature_names))
    fig, ax = plt.subplots(figsize=(12, 3.5))
    width = 0.8 / len(keys)
    x = np.arange(len(joints))
    for c, key in enumerate(keys):
        r = results[key]
        if r["smooth_joint_mean"] is None:
            continue
        ax.bar(
            x + (c - (len(keys) - 1) / 2) * width,
            r["smooth_joint_mean"],
            width,
            yerr=r["smooth_joint_std"],
            label=f"{LABELS[key]} (mean {r['smooth_mean']:.3f}, {r['found']}/{r['pairs']} paths)",
            error_kw={"lw": 0.5},
        )
    ax.set_xticks(x, joints, rotation=60, fontsize="x-small")
    ax.set_ylabel("smoothness factor (std. units)")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(out / f"mocap_{tag}_smoothness.png", dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- report
def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def common_pairs(results):
    """Mean smoothness of each model on the (graph, pair) every model connects."""
    if not all(r.get("per_pair") for r in results.values()):
        return None
    sets = [{(g, i, j): m for g, i, j, m, _ in r["per_pair"]} for r in results.values()]
    shared = set.intersection(*(set(s) for s in sets))
    if not shared or all(len(s) == len(shared) for s in sets):
        return None
    out = {k: float(np.mean([s[p] for p in shared])) for k, s in zip(results, sets)}
    out["n"] = len(shared)
    return out


def report(out):
    runs = []
    for path in sorted(out.glob("mocap_*.json")):
        runs.append(json.loads(path.read_text(encoding="utf-8")))
    lines = []
    for run in runs:
        meta = run["meta"]
        lines += [
            f"### Setting `{meta['settings']}`",
            "",
            f"`{meta['command']}` — {meta['date']}, {meta['machine']}. "
            f"Trained on {meta['n_train']} frames ({', '.join(meta['train'])}), "
            f"end points and scores on {meta['n_held']} frames of {meta['holdout']}, "
            f"{meta['fps']} fps; {meta['n_graphs']} graphs × {meta['n_pairs']} pairs, "
            f"{meta['n_nodes']} nodes, {meta['n_neighbors']} neighbours.",
            "",
            "| | " + " | ".join(r["label"] for r in run["results"].values()) + " |",
            "|---|" + "---|" * len(run["results"]),
        ]
        rows = [
            ("mean per-joint smoothness factor (std. angles)", "smooth_mean", 3),
            ("std over paths of a path's mean", "smooth_path_std", 3),
            ("pairs with a path", None, None),
            ("… of them direct (2 points, factor 0)", "direct", None),
            ("exercise, 5-NN from the 2-D latent (held out)", "knn5", 3),
            ("held-out log-likelihood per frame (nats, std. units)", "loglik", 2),
            ("fit time (s)", "fit_time", 0),
            ("epochs", "epochs", 0),
            ("final β", "beta", 3),
            ("mean points per path", "path_points_mean", 1),
        ]
        common = common_pairs(run["results"])
        if common is not None:
            rows.insert(2, ("… on the pairs every model connects", common, 3))
        for name, key, d in rows:
            if key is None:
                cells = [f"{r['found']} / {r['pairs']}" for r in run["results"].values()]
            elif key == "direct":
                # End points linked directly: 2 points, no second difference, factor 0.
                cells = [
                    str(sum(1 for *_, n in r.get("per_pair", []) if n < 3))
                    for r in run["results"].values()
                ]
            elif isinstance(key, dict):
                cells = [f"{fmt(key[k], d)} ({key['n']})" for k in run["results"]]
            else:
                cells = [fmt(r[key], d) for r in run["results"].values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [""]
    text = "\n".join(lines)
    (out / "mocap.md").write_text(text, encoding="utf-8")
    print(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data and networks")
    parser.add_argument("--settings", choices=("paper", "defaults"), default="paper")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--holdout", default="14_14", help="recording held out (end points)")
    parser.add_argument(
        "--fps", type=int, default=60, help="frames per second kept (the issue: 60)"
    )
    parser.add_argument("--max-iter", type=int, default=None, help="epochs (default: estimator's)")
    parser.add_argument("--n-graphs", type=int, default=10)
    parser.add_argument("--n-pairs", type=int, default=100)
    parser.add_argument("--n-nodes", type=int, default=2530)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--n-eval-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--report", action="store_true", help="merge mocap_*.json into mocap.md")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="folder of an earlier run: evaluate its pickled models instead of fitting",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        return report(args.out)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.quick:
        args.max_iter = args.max_iter or 2
        args.n_graphs, args.n_pairs = min(args.n_graphs, 2), min(args.n_pairs, 5)
        args.n_nodes, args.n_eval_samples = min(args.n_nodes, 300), min(args.n_eval_samples, 10)
    train, held, scaler, skeleton = load(args)
    groups = joint_groups(train.feature_names)
    results, plots = {}, {}
    for key in args.models:
        print(f"[{args.settings}] fitting {LABELS[key]} ...", flush=True)
        model, results[key], plots[key] = run_model(key, args, train, held, groups)
        r = results[key]
        print(
            f"  fit {fmt(r['fit_time'], 0)} s ({r['epochs']} epochs, β={r['beta']:.3f}), "
            f"smoothness {fmt(r['smooth_mean'])}, paths {r['found']}/{r['pairs']}, "
            f"5-NN {r['knn5']:.3f}, log-lik {r['loglik']:.2f}, "
            f"components {r['components']}",
            flush=True,
        )
        if not args.quick and args.reuse is None:
            with open(args.out / f"mocap_{args.settings}_{key}.pkl", "wb") as fh:
                pickle.dump(model, fh)
    meta = {
        "settings": args.settings,
        "command": "python benchmarks/mocap.py " + " ".join(argv if argv else sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        "train": sorted(set(train.sequence)),
        "holdout": args.holdout,
        "n_train": len(train.X),
        "n_held": len(held.X),
        "fps": args.fps,
        "n_graphs": args.n_graphs,
        "n_pairs": args.n_pairs,
        "n_nodes": args.n_nodes,
        "n_neighbors": args.n_neighbors,
        "n_eval_samples": args.n_eval_samples,
        "max_iter": args.max_iter,
        "joints": list(groups),
    }
    (args.out / f"mocap_{args.settings}.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1), encoding="utf-8"
    )
    if not args.no_figures:
        save_figures(args, train, held, scaler, skeleton, plots, results)
    return report(args.out)


if __name__ == "__main__":
    main()
