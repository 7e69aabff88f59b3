"""Graph paths node to node, at even steps, and straight lines: digits and pendulum.

For each data set a ``VHPEstimator(n_components=2, random_state=0)`` (the
package defaults otherwise) is fitted on the training rows and wrapped with
``ManifoldInterpolator(vae, prefit=True, random_state=0)`` (1000 nodes,
k = 18, ``edge_power=2``). Between held-out end points it compares

* ``graph``: the paper's path, node to node (``interpolate(a, b)``);
* ``even``: the same path resampled at equal latent arc length,
  ``interpolate(a, b, n_frames=F)``;
* ``line``: the straight line in latent space, ``F`` points at equal steps.

For each path: the smoothness factor of the decoded frames
(:func:`sklearn_vhp.metrics.smoothness_factor`, the paper's metric), and the
realism of its frames, measured as each frame's Euclidean distance to its
nearest training image (mean and max over the frames; smaller is more
realistic), and the length of the decoded path (the sum of the distances
between consecutive frames).

* digits: ``load_digits() / 16``, ``train_test_split(test_size=0.25,
  random_state=0)``; the first held-out 0 to the first held-out 6 (the
  issue's pair), then every held-out (0, 6) pair among the first five of each
  (25 pairs), ``F = 21``;
* pendulum: ``make_pendulum(15000, random_state=0)``, 12,000 training rows;
  20 random held-out pairs more than 90 degrees apart, ``F = 21``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/interpolation_even_steps.py            # both
    OMP_NUM_THREADS=1 python benchmarks/interpolation_even_steps.py --digits   # ~1 min
"""

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from sklearn_vhp import ManifoldInterpolator, VHPEstimator
from sklearn_vhp.datasets import make_pendulum
from sklearn_vhp.metrics import smoothness_factor

KINDS = ("graph", "even", "line")


def paths(interp, a, b, n_frames):
    """Decoded frames of the three paths between rows ``a`` and ``b``."""
    graph = interp.interpolate(a, b)
    even = interp.interpolate(a, b, n_frames=n_frames)
    z = interp.transform(np.vstack([a, b]))
    t = np.linspace(0.0, 1.0, n_frames)[:, None]
    line = interp.inverse_transform((1 - t) * z[0] + t * z[1])
    return {"graph": graph.decoded, "even": even.decoded, "line": line}


def measure(interp, X_train, pairs, n_frames):
    """Per path kind: smoothness factors and nearest-training-image distances."""
    nn = NearestNeighbors(n_neighbors=1).fit(X_train)
    out = {
        k: {"smooth": [], "mean_nn": [], "max_nn": [], "frames": [], "length": []} for k in KINDS
    }
    for a, b in pairs:
        for kind, frames in paths(interp, a, b, n_frames).items():
            d = nn.kneighbors(frames)[0][:, 0]
            rec = out[kind]
            rec["smooth"].append(smoothness_factor(frames))
            rec["mean_nn"].append(float(d.mean()))
            rec["max_nn"].append(float(d.max()))
            rec["frames"].append(frames.shape[0])
            rec["length"].append(float(np.linalg.norm(np.diff(frames, axis=0), axis=1).sum()))
    return out


def report(name, first, many):
    print(f"\n## {name}\n")
    print(
        "| path | frames | smoothness factor | nearest training image: mean / max over "
        "frames | length of the decoded path |"
    )
    print("|---|---|---|---|---|")
    for kind, rec in first.items():
        print(
            f"| {kind} | {rec['frames'][0]} | {rec['smooth'][0]:.3f} | "
            f"{rec['mean_nn'][0]:.3f} / {rec['max_nn'][0]:.3f} | {rec['length'][0]:.2f} |"
        )
    if many is None:
        return
    n = len(many["line"]["smooth"])
    print(f"\nOver {n} pairs (medians; 'wins' = pairs where even beats line):\n")
    print("| path | smoothness factor | mean NN distance | max NN distance |")
    print("|---|---|---|---|")
    for kind, rec in many.items():
        print(
            f"| {kind} | {np.median(rec['smooth']):.3f} | {np.median(rec['mean_nn']):.3f} | "
            f"{np.median(rec['max_nn']):.3f} |"
        )
    even, line = many["even"], many["line"]
    for key in ("smooth", "mean_nn", "max_nn"):
        wins = int(np.sum(np.asarray(even[key]) <= np.asarray(line[key])))
        print(f"even <= line by {key}: {wins} of {n} pairs")


def digits(n_frames):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    t = time.perf_counter()
    vae = VHPEstimator(n_components=2, random_state=0).fit(X_tr)
    print(f"digits: fit {time.perf_counter() - t:.0f} s, beta_ {vae.beta_:.3g}")
    interp = ManifoldInterpolator(vae, prefit=True, random_state=0).fit(X_tr)
    zeros, sixes = X_te[y_te == 0], X_te[y_te == 6]
    first = measure(interp, X_tr, [(zeros[0], sixes[0])], n_frames)
    many = measure(interp, X_tr, [(a, b) for a in zeros[:5] for b in sixes[:5]], n_frames)
    report("digits: held-out 0 -> held-out 6", first, many)


def pendulum(n_frames):
    X, angles = make_pendulum(15000, random_state=0)
    X_tr, X_te, a_te = X[:12000], X[12000:], angles[12000:]
    t = time.perf_counter()
    vae = VHPEstimator(n_components=2, random_state=0).fit(X_tr)
    print(f"pendulum: fit {time.perf_counter() - t:.0f} s, beta_ {vae.beta_:.3g}")
    interp = ManifoldInterpolator(vae, prefit=True, random_state=0).fit(X_tr)
    rng = np.random.RandomState(0)
    pairs = []
    while len(pairs) < 20:
        i, j = rng.randint(len(X_te), size=2)
        gap = abs(np.angle(np.exp(1j * (a_te[i] - a_te[j]))))
        if gap > np.pi / 2:
            pairs.append((X_te[i], X_te[j]))
    first = measure(interp, X_tr, pairs[:1], n_frames)
    many = measure(interp, X_tr, pairs, n_frames)
    report("pendulum: 20 held-out pairs > 90 degrees apart", first, many)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", action="store_true", help="digits only")
    parser.add_argument("--pendulum", action="store_true", help="pendulum only")
    parser.add_argument("--frames", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    both = not (args.digits or args.pendulum)
    if args.digits or both:
        digits(args.frames)
    if args.pendulum or both:
        pendulum(args.frames)


if __name__ == "__main__":
    main()
