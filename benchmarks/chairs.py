"""Paper Sec. 4.4 (Figs 9-10) on procedural chairs: graph interpolations, measured.

The paper trains a 32-D convolutional VHP + REWO and an IWAE on renders of
1,393 CAD chairs x 62 views and shows, as pictures only, that graph-based
interpolations along VHP's learned manifold are sharper and smoother than
the IWAE's. Here the chairs come from :func:`sklearn_vhp.datasets.make_chairs`,
so every render's chair and pose are known and the pictures become numbers.

Setup (paper App. F): both models use the paper's network for chairs
(``architecture="paper_conv"``: eight convolutions and FC 256, the decoder its
reverse, ReLU), a Bernoulli likelihood, 32-D latent space, Adam with batches
of 64 and the same number of epochs.

* VHP + REWO: hierarchical prior (prior networks 2 x 256), ``kappa=0.2``,
  ``K=16`` importance samples of the prior's bound.
* IWAE: standard-normal prior, the IWAE bound with ``K=16``, ``beta=1``.

Each model gets a :class:`~sklearn_vhp.ManifoldInterpolator` with the paper's
graph: 8,637 nodes drawn from its prior, 18 neighbours. Paths run between
renders of *held-out* chairs (drawn with another seed, never trained on):

(a) one chair turning: azimuth ``a`` to ``a + 90`` degrees at one elevation
    (the end render is made at exactly ``a + 90``, between the grid's views);
(b) two different held-out chairs at the same view.

Each path's latent polyline is resampled at ``--frames`` points equally
spaced by arc length and decoded, so that paths of both models have the same
number of frames. Every frame is measured against the renders:

* realism: RMS distance (per pixel) to the nearest training render;
* sharpness: the frame's mean gradient magnitude over that render's
  (1 = as sharp as a render);
* pose: the chair and azimuth of the nearest render among the training
  renders and the held-out chairs' renders at the grid's views. A turning
  path (a) "turns the short way" when the azimuths it passes through add up
  to ``+90`` degrees (within 1.5 views), not ``-270``; its largest step is
  the largest azimuth change between consecutive frames, in views
  (360/31 degrees);
* the smoothness factor (:func:`~sklearn_vhp.metrics.smoothness_factor`) of
  the decoded frames.

Two reference graphs tell whether a failure to turn lies with the prior or
with the latent space (:class:`GivenNodes`): the same (a) paths through a
graph whose nodes are the model's codes of the training renders (the nodes
the best possible prior would give), and through a graph over the training
renders themselves, by pixel distance (no model at all).

Prints a table (the paper's qualitative claims beside our numbers) and saves
``chairs.md`` (table, command, machine, sizes), ``chairs.json`` (raw
numbers) and ``chairs_interpolations.png`` (strips of both models one above
the other, as Figs 9-10, with the true turn under the (a) strips).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/chairs.py          # default size (see below)
    python benchmarks/chairs.py --quick                    # smoke run, < 1 min
    python benchmarks/chairs.py --train-chairs 24 --epochs 10 --out results/

Default size: 80 training chairs (4,960 renders), 20 held-out chairs, 10
epochs, 64 x 64. The IWAE's 16 decoder passes per image dominate: on two
idle cores the default size runs in 37-42 minutes (VHP + REWO's fit
169-293 s, the IWAE's 1,960-2,171 s; ``docs/benchmarks/chairs.md``).
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

try:
    import sklearn_vhp  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.metrics import pairwise_distances_argmin_min

from sklearn_vhp import ManifoldInterpolator, VHPEstimator
from sklearn_vhp.datasets import make_chairs
from sklearn_vhp.metrics import smoothness_factor

PAPER_NODES, PAPER_NEIGHBORS = 8637, 18
TURN_DEGREES = 90.0
#: Tolerance of "the short way": the net turn read from the nearest renders
#: must be within this many views of +90 degrees (end points quantised).
SHORT_WAY_TOLERANCE = 1.5
MAX_STEP_VIEWS = 2.0
MODELS = ("VHP + REWO", "IWAE")


def make_models(epochs, image_size, seed, n_components=32, iwae_epochs=None):
    """The two contenders of the paper's Sec. 4.4 (IWAE epochs default to ``epochs``)."""
    common = dict(
        n_components=n_components,
        architecture="paper_conv",
        image_shape=(image_size, image_size),
        hidden_layer_sizes=(256, 256),
        activation="relu",
        likelihood="bernoulli",
        n_importance=16,
        batch_size=64,
        max_iter=epochs,
        n_eval_samples=16,
        random_state=seed,
    )
    return {
        "VHP + REWO": VHPEstimator(prior="vhp", schedule="rewo", kappa=0.2, **common),
        "IWAE": VHPEstimator(
            prior="standard",
            objective="iwae",
            schedule="constant",
            **{**common, "max_iter": iwae_epochs or epochs},
        ),
    }


def wrap_degrees(a):
    """Angles in degrees wrapped into (-180, 180]."""
    return 180.0 - np.mod(180.0 - np.asarray(a, dtype=np.float64), 360.0)


def turn_stats(azimuths, view_step, target=TURN_DEGREES, tolerance=SHORT_WAY_TOLERANCE):
    """Net turn, short way or not, and largest step (views) of a path's azimuths.

    ``azimuths`` are the frames' azimuths in degrees (read from their nearest
    renders); steps between consecutive frames are taken the short way round.
    """
    steps = wrap_degrees(np.diff(np.asarray(azimuths, dtype=np.float64)))
    net = float(steps.sum())
    return {
        "net_turn": net,
        "short_way": bool(abs(net - target) <= tolerance * view_step),
        "max_step_views": float(np.abs(steps).max() / view_step) if steps.size else 0.0,
    }


def mean_gradient(images):
    """Mean gradient magnitude of each image (rows of ``(n, s, s)``)."""
    gy, gx = np.gradient(images, axis=(1, 2))
    return np.sqrt(gx**2 + gy**2).mean(axis=(1, 2))


def resample(latent, n_frames):
    """Points equally spaced by arc length along a latent polyline."""
    seg = np.linalg.norm(np.diff(latent, axis=0), axis=1)
    s = np.r_[0.0, np.cumsum(seg)]
    if s[-1] == 0.0:
        return np.repeat(latent[:1], n_frames, axis=0)
    t = np.linspace(0.0, s[-1], n_frames)
    return np.stack([np.interp(t, s, latent[:, j]) for j in range(latent.shape[1])], axis=1)


def measure_frames(frames, train_X, ref_X, ref_chair, ref_azimuth, image_size):
    """Realism, sharpness and pose of decoded frames against the renders."""
    idx, dist = pairwise_distances_argmin_min(frames, train_X)
    rms = dist / math.sqrt(frames.shape[1])
    shape = (-1, image_size, image_size)
    sharp = mean_gradient(frames.reshape(shape)) / mean_gradient(train_X[idx].reshape(shape))
    j, _ = pairwise_distances_argmin_min(frames, ref_X)
    return rms, sharp, ref_chair[j], ref_azimuth[j]


class GivenNodes(TransformerMixin, BaseEstimator):
    """A fitted stand-in for a VAE whose prior samples are fixed nodes.

    :class:`~sklearn_vhp.ManifoldInterpolator` draws its graph's nodes from
    ``sample_latent``; this returns ``nodes`` instead, so that the same graph
    interpolation runs over reference nodes: a model's codes of the training
    renders (the nodes the best possible prior would give, an oracle), or the
    training renders themselves in pixel space (``encode``/``decode``
    ``None``: the identity; no model at all).
    """

    def __init__(self, nodes=None, encode=None, decode=None):
        self.nodes = nodes
        self.encode = encode
        self.decode = decode

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) if self.encode is None else self.encode(X)

    def inverse_transform(self, Z):
        return np.asarray(Z) if self.decode is None else self.decode(Z)

    def sample_latent(self, n_samples=1, random_state=None):
        return self.nodes[:n_samples]


def graph_frames(interp, pairs, n_frames):
    """Decoded frames of each pair's graph path, resampled at ``n_frames`` points."""
    frames = []
    for x0, x1 in pairs:
        path = interp.interpolate(x0, x1)
        frames.append(interp.inverse_transform(resample(path.latent, n_frames)))
    return np.stack(frames)


def reference_graph(given, fit_X, seed):
    """A ManifoldInterpolator with the paper's neighbours over a :class:`GivenNodes`' nodes."""
    n_nodes = len(given.nodes)
    return ManifoldInterpolator(
        given, prefit=True, n_nodes=n_nodes, n_neighbors=PAPER_NEIGHBORS, random_state=seed
    ).fit(fit_X)


def turns(frames, ref_X, ref_az, view_step):
    """:func:`turn_stats` of each path's frames, azimuths read from the nearest render."""
    j, _ = pairwise_distances_argmin_min(frames.reshape(-1, frames.shape[-1]), ref_X)
    return [turn_stats(a, view_step) for a in ref_az[j].reshape(len(frames), -1)]


def make_pairs(test, n_pairs, rng):
    """Start/end specs of the (a) turning and (b) two-chair paths."""
    n_chairs = test.shape_params.shape[0]
    n_az, n_el = test.azimuths.size, test.elevations.size
    n_views = n_az * n_el
    turn = []
    for _ in range(n_pairs):
        c, e, k = rng.randint(n_chairs), rng.randint(n_el), rng.randint(n_az)
        turn.append((c, e, k))
    two = []
    for _ in range(n_pairs):
        c1, c2 = rng.choice(n_chairs, 2, replace=False)
        two.append((int(c1), int(c2), rng.randint(n_views)))
    return turn, two


def run(args):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    rng = np.random.RandomState(args.seed)
    s = args.image_size
    t0 = time.perf_counter()
    train = make_chairs(args.train_chairs, image_size=s, random_state=args.seed)
    test = make_chairs(args.test_chairs, image_size=s, random_state=args.seed + 1000)
    render_s = time.perf_counter() - t0
    n_az, n_el = train.azimuths.size, train.elevations.size
    view_step = 360.0 / n_az
    # Pose references: training renders and the held-out chairs' grid renders
    # (held-out chairs numbered after the training ones).
    ref_X = np.vstack([train.data, test.data])
    ref_chair = np.r_[train.chair, test.chair + args.train_chairs]
    ref_az = np.r_[train.azimuth, test.azimuth]
    turn, two = make_pairs(test, args.pairs, rng)
    n_views = n_az * n_el

    def test_row(c, v):
        return test.data[c * n_views + v]

    # (a) end renders at exactly a + 90 degrees.
    ends = []
    for c, e, k in turn:
        end = make_chairs(
            shape_params=test.shape_params[[c]],
            azimuths=[train.azimuths[k] + TURN_DEGREES],
            elevations=[train.elevations[e]],
            image_size=s,
        )
        ends.append(end.data[0])
    a_pairs = [(test_row(c, e * n_az + k), end) for (c, e, k), end in zip(turn, ends)]
    b_pairs = [(test_row(c1, v), test_row(c2, v)) for c1, c2, v in two]

    results, strips = {}, {}
    models = make_models(args.epochs, s, args.seed, iwae_epochs=args.iwae_epochs)
    for name, model in models.items():
        t = time.perf_counter()
        model.fit(train.data)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        interp = ManifoldInterpolator(
            model,
            prefit=True,
            n_nodes=args.nodes,
            n_neighbors=PAPER_NEIGHBORS,
            random_state=args.seed,
        ).fit(train.data[:2])
        graph_s = time.perf_counter() - t
        rec = {"fit_s": fit_s, "graph_s": graph_s, "epochs": int(model.n_iter_)}
        rec["beta"] = float(model.beta_)
        rec["components"] = int(interp.n_connected_components_)
        frames_by_kind = {
            kind: graph_frames(interp, pairs, args.frames)
            for kind, pairs in (("a", a_pairs), ("b", b_pairs))
        }
        # The same paths over the model's codes of the training renders: what
        # the best prior could give this latent space.
        oracle = GivenNodes(model.transform(train.data), model.transform, model.inverse_transform)
        oracle = reference_graph(oracle, train.data[:2], args.seed)
        codes_frames = graph_frames(oracle, a_pairs, args.frames)
        rec["codes_turn"] = turns(codes_frames, ref_X, ref_az, view_step)
        for kind, frames in frames_by_kind.items():
            flat = frames.reshape(-1, s * s)
            rms, sharp, chair, az = measure_frames(flat, train.data, ref_X, ref_chair, ref_az, s)
            n = len(frames)
            rec[kind] = {
                "realism_rms": rms.reshape(n, -1).mean(axis=1).tolist(),
                "sharpness": sharp.reshape(n, -1).mean(axis=1).tolist(),
                "smoothness": [smoothness_factor(f) for f in frames],
            }
            if kind == "a":
                stats = [turn_stats(a, view_step) for a in az.reshape(n, -1)]
                own = args.train_chairs + np.array([c for c, _, _ in turn])
                rec[kind]["turn"] = stats
                rec[kind]["same_chair"] = (chair.reshape(n, -1) == own[:, None]).mean(1).tolist()
        results[name] = rec
        strips[name] = {k: v[: args.show] for k, v in frames_by_kind.items()}
        print(f"{name}: fit {fit_s:.0f} s, graph {graph_s:.1f} s", flush=True)

    # No model: the graph over the training renders themselves (pixel distances).
    pixels = reference_graph(GivenNodes(train.data), train.data[:2], args.seed)
    render_frames = graph_frames(pixels, a_pairs, args.frames)
    results["renders"] = {"turn": turns(render_frames, ref_X, ref_az, view_step)}

    truth = []
    for (c, e, k), _ in zip(turn[: args.show], range(args.show)):
        az = train.azimuths[k] + np.linspace(0.0, TURN_DEGREES, args.frames)
        truth.append(
            make_chairs(
                shape_params=test.shape_params[[c]],
                azimuths=az,
                elevations=[train.elevations[e]],
                image_size=s,
            ).data
        )
    return results, strips, np.array(truth), render_s


def summarise(rec):
    """Means of a model's per-path numbers (both kinds, and each)."""
    out = {}
    for m in ("realism_rms", "sharpness", "smoothness"):
        a, b = np.mean(rec["a"][m]), np.mean(rec["b"][m])
        out[m] = {"a": float(a), "b": float(b), "both": float((a + b) / 2)}
    out.update(turn_summary(rec["a"]["turn"]))
    out["codes"] = turn_summary(rec["codes_turn"])
    out["same_chair"] = float(np.mean(rec["a"]["same_chair"]))
    return out


def turn_summary(turn):
    """Share of (a) paths the short way, of those also without a step > 2 views, median step."""
    ok = [t["short_way"] and t["max_step_views"] <= MAX_STEP_VIEWS for t in turn]
    return {
        "short_way": float(np.mean([t["short_way"] for t in turn])),
        "turn_ok": float(np.mean(ok)),
        "median_max_step": float(np.median([t["max_step_views"] for t in turn])),
    }


def markdown_table(results):
    s = {name: summarise(results[name]) for name in MODELS}
    s["renders"] = turn_summary(results["renders"]["turn"])
    v, i = s["VHP + REWO"], s["IWAE"]
    rows = [
        "| measure | paper (pictures only) | VHP + REWO | IWAE |",
        "|---|---|---|---|",
    ]
    for key, label, claim in (
        ("realism_rms", "realism: RMS to nearest training render (lower is better)", "—"),
        ("sharpness", "sharpness: gradient / nearest render's (1 = as sharp)", "VHP sharper"),
        ("smoothness", "smoothness factor (lower is smoother)", "VHP smoother"),
    ):
        for kind in ("a", "b", "both"):
            tag = {"a": "(a) turn", "b": "(b) two chairs", "both": "mean of (a), (b)"}[kind]
            rows.append(
                f"| {label}, {tag} | {claim if kind == 'both' else ''} | "
                f"{v[key][kind]:.4f} | {i[key][kind]:.4f} |"
            )
    rows += [
        f"| (a) turns the short way | VHP turns | {v['short_way']:.0%} | {i['short_way']:.0%} |",
        f"| (a) short way and no step > {MAX_STEP_VIEWS:.0f} views | — | "
        f"{v['turn_ok']:.0%} | {i['turn_ok']:.0%} |",
        f"| (a) median largest step (views) | — | {v['median_max_step']:.2f} | "
        f"{i['median_max_step']:.2f} |",
        f"| (a) frames whose nearest render is the same chair | — | {v['same_chair']:.0%} | "
        f"{i['same_chair']:.0%} |",
        f"| (a) short way and no step > {MAX_STEP_VIEWS:.0f} views, graph over the model's "
        f"codes of the training renders (the best any prior could do) | — | "
        f"{v['codes']['turn_ok']:.0%} | {i['codes']['turn_ok']:.0%} |",
    ]
    for key, label, fmt in (
        ("epochs", "epochs", "{}"),
        ("fit_s", "fit time (s)", "{:.0f}"),
        ("beta", "final β", "{:.3f}"),
        ("components", "graph components", "{}"),
    ):
        rows.append(
            f"| {label} | — | {fmt.format(results['VHP + REWO'][key])} | "
            f"{fmt.format(results['IWAE'][key])} |"
        )
    r = s["renders"]
    rows += [
        "",
        f"Without a model: the same (a) paths through a graph over the training renders "
        f"themselves ({PAPER_NEIGHBORS} neighbours by pixel distance) turn the short way "
        f"on {r['short_way']:.0%}, and also with no step > {MAX_STEP_VIEWS:.0f} views on "
        f"{r['turn_ok']:.0%} (median largest step {r['median_max_step']:.2f} views).",
    ]
    return "\n".join(rows), s


def save_figure(strips, truth, path, image_size):
    import matplotlib.pyplot as plt

    show = len(truth)
    n_frames = truth.shape[1]
    blocks = []
    for k in range(show):
        blocks.append((f"(a) turn {k + 1}", "a", k, truth[k]))
    for k in range(show):
        blocks.append((f"(b) two chairs {k + 1}", "b", k, None))
    n_rows = sum(3 if t is not None else 2 for *_, t in blocks)
    fig, axes = plt.subplots(n_rows, n_frames, figsize=(n_frames * 0.8, n_rows * 0.85))
    axes = np.atleast_2d(axes)
    r = 0
    for title, kind, k, tr in blocks:
        rows = [(name, strips[name][kind][k]) for name in MODELS]
        if tr is not None:
            rows.append(("true turn", tr))
        for label, frames in rows:
            for j in range(n_frames):
                ax = axes[r, j]
                ax.imshow(frames[j].reshape(image_size, image_size), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r, 0].set_ylabel(f"{title}\n{label}" if label == MODELS[0] else label, fontsize=6)
            r += 1
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, < 1 min")
    parser.add_argument("--train-chairs", type=int, default=None, help="default 80")
    parser.add_argument("--test-chairs", type=int, default=None, help="default 20")
    parser.add_argument("--epochs", type=int, default=None, help="default 10 (both models)")
    parser.add_argument(
        "--iwae-epochs",
        type=int,
        default=None,
        help="epochs of the IWAE if not --epochs (its steps cost ~10x VHP's: equal time)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="default 64")
    parser.add_argument("--nodes", type=int, default=None, help=f"default {PAPER_NODES}")
    parser.add_argument("--pairs", type=int, default=None, help="paths of each kind, default 100")
    parser.add_argument("--frames", type=int, default=12, help="frames per path (default 12)")
    parser.add_argument("--show", type=int, default=3, help="paths of each kind in the figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    quick = dict(train_chairs=3, test_chairs=3, epochs=1, image_size=32, nodes=300, pairs=3)
    full = dict(train_chairs=80, test_chairs=20, epochs=10, image_size=64, nodes=PAPER_NODES)
    for key, value in {**full, "pairs": 100, **(quick if args.quick else {})}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.show = min(args.show, args.pairs)

    t0 = time.perf_counter()
    results, strips, truth, render_s = run(args)
    total = time.perf_counter() - t0
    table, summary = markdown_table(results)
    command = "python benchmarks/chairs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    threads = torch.get_num_threads()
    header = (
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
        f"`{command.strip()}`; {platform.machine()} {platform.processor() or ''}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {threads} thread(s); "
        f"total {total / 60:.1f} min (rendering {render_s:.1f} s).\n\n"
        f"Data: {args.train_chairs} training chairs and {args.test_chairs} held-out "
        f"chairs x 31 azimuths x 2 elevations, {args.image_size} x {args.image_size}; "
        f"{args.epochs} epochs (IWAE: {args.iwae_epochs or args.epochs}); graph of "
        f"{args.nodes} nodes, {PAPER_NEIGHBORS} neighbours; {args.pairs} paths of each "
        f"kind, {args.frames} frames each."
    )
    print(header)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chairs.md").write_text(header + "\n\n" + table + "\n", encoding="utf-8")
    raw = {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary}
    raw["results"] = results
    (args.out / "chairs.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    try:
        save_figure(strips, truth, args.out / "chairs_interpolations.png", args.image_size)
    except ImportError:
        print("matplotlib is not installed: no figure.")
    return summary


if __name__ == "__main__":
    main()
