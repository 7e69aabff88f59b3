"""
Interpolating along the learned manifold: graph paths vs straight lines
=======================================================================

The paper's interpolation experiment (Klushyn et al. 2019, Sec. 2.3 and
Fig. 3): a VAE with a learned hierarchical prior is fitted to pendulum images,
whose only factor of variation is the angle, so the data lie on a circle.
:class:`~sklearn_vhp.ManifoldInterpolator` samples 1000 latent points from the
learned prior, joins them into a k-nearest-neighbour graph and interpolates
between two images along the shortest path through that graph. The straight
line between the same two latent codes cuts across the ring, through latent
regions the decoder was never trained on; its decoded frames blur and jump.

The smoothness factor (RMS of the second-order finite difference, paper
Sec. 4.2) is computed on the decoded frames and on the pendulum's angle
read off every frame by template matching against a pendulum drawn with a
thicker rod and a larger bob; the same angles show how far each step turns.
*Realism* is each frame's best cosine similarity to a clean pendulum image at
any angle (1 = a clean pendulum): the straight line's frames inside the ring
are cross-fades of two pendulums. A cross-fade changes linearly, so it has a
*small* frame-space smoothness factor although no real pendulum looks like
it: on this data the smoothness factor favours the straight line, and the
largest turn and the realism show where it is worse.

How well the graph follows the ring depends on the fitted VAE: prior samples
that fall inside the ring, or a latent curve that folds back close to itself,
give the graph short cuts (see ``docs/interpolation_notes.md``).
"""

import os
import time

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sklearn_vhp import ManifoldInterpolator, VHPEstimator
from sklearn_vhp.datasets import make_pendulum
from sklearn_vhp.metrics import smoothness_factor
from sklearn_vhp.plotting import plot_frames, plot_latent_graph

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None

X, angles = make_pendulum(n_samples=15000, random_state=0)

# %%
# Fit the VAE and build the latent graph in one go.
vhp = VHPEstimator(n_components=2, random_state=0)
if epochs:
    vhp.set_params(max_iter=epochs)
interp = ManifoldInterpolator(vhp, n_nodes=1000, n_neighbors=18, random_state=0)
start = time.perf_counter()
interp.fit(X)
print(
    f"fit (VAE + graph): {time.perf_counter() - start:.0f} s, "
    f"graph built with {interp.neighbors_} neighbours, "
    f"{interp.n_connected_components_} connected component(s)"
)


# %%
# Read the angle of a frame by template matching with a *different* renderer.
def template_similarity(frames):
    """Cosine similarity of each frame to clean renders every 0.5 degrees."""
    from sklearn_vhp.datasets._pendulum import render_pendulum

    templates = render_pendulum(GRID, line_width=1.8, bob_radius=2.2, length=0.75)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    frames = frames / np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-12)
    return frames @ templates.T


GRID = np.deg2rad(np.arange(0.0, 360.0, 0.5))


def read_angles(frames):
    return GRID[np.argmax(template_similarity(frames), axis=1)]


def realism(frames):
    """Worst frame's best similarity to a clean pendulum image."""
    return template_similarity(frames).max(axis=1).min()


def describe(name, decoded, a, b):
    read = read_angles(decoded)
    steps = np.rad2deg(np.abs(np.angle(np.exp(1j * np.diff(read)))))
    arc = np.rad2deg(abs(np.angle(np.exp(1j * (b - a)))))
    # Smoothness of the pendulum's motion itself: the unwrapped angle sequence.
    motion = np.rad2deg(np.unwrap(read))
    print(
        f"{name:>13}: {len(decoded):3d} frames, smoothness factor "
        f"{smoothness_factor(decoded):.4f} (frames) / "
        f"{smoothness_factor(motion):5.1f} deg (angles), largest turn "
        f"{steps.max():5.1f} deg, total turning {steps.sum():5.1f} deg "
        f"(short arc {arc:.1f} deg), realism {realism(decoded):.3f}"
    )
    return smoothness_factor(decoded)


# %%
# Interpolate between two images about 160 degrees apart, along the graph and
# along the straight line with the same number of points.
i_start = int(np.argmin(np.abs(angles - np.deg2rad(20))))
i_end = int(np.argmin(np.abs(angles - np.deg2rad(180))))
path = interp.interpolate(X[i_start], X[i_end])
t = np.linspace(0.0, 1.0, len(path.latent))[:, None]
line = (1 - t) * path.latent[0] + t * path.latent[-1]
line_decoded = interp.inverse_transform(line)

print(
    f"graph path: {len(path.nodes)} points, latent length {path.length:.3f}; "
    f"straight line length {np.linalg.norm(line[-1] - line[0]):.3f}"
)
a, b = angles[i_start], angles[i_end]
s_graph = describe("graph path", path.decoded, a, b)
s_line = describe("straight line", line_decoded, a, b)

# %%
# The paper's path goes node to node, so its steps are as uneven as the
# prior's samples. ``n_frames`` resamples the same path at equal latent arc
# length: frames at even steps, for an animation. Compare it with the
# straight line at the same number of frames.
even = interp.interpolate(X[i_start], X[i_end], n_frames=20)
t20 = np.linspace(0.0, 1.0, 20)[:, None]
line20 = interp.inverse_transform((1 - t20) * path.latent[0] + t20 * path.latent[-1])
s_even = describe("even steps", even.decoded, a, b)
s_line20 = describe("line, 20", line20, a, b)

# Many random pairs: smoothness, largest turn and realism, graph vs straight line.
rng = np.random.RandomState(0)
ratios, turns, real = [], {"graph": [], "line": []}, {"graph": [], "line": []}
for i, j in rng.randint(len(X), size=(20, 2)):
    p = interp.interpolate(X[i], X[j])
    if len(p.latent) < 3:  # neighbours joined directly: nothing to compare
        continue
    tt = np.linspace(0.0, 1.0, len(p.latent))[:, None]
    straight = interp.inverse_transform((1 - tt) * p.latent[0] + tt * p.latent[-1])
    ratios.append(smoothness_factor(straight) / max(smoothness_factor(p.decoded), 1e-12))
    for name, frames in (("graph", p.decoded), ("line", straight)):
        step = np.abs(np.angle(np.exp(1j * np.diff(read_angles(frames)))))
        turns[name].append(np.rad2deg(step.max()))
        real[name].append(realism(frames))
print(
    f"{len(ratios)} random pairs: straight-line / graph smoothness factor, median "
    f"{np.median(ratios):.2f} (min {np.min(ratios):.2f}, max {np.max(ratios):.2f})"
)
for name in ("graph", "line"):
    print(
        f"{name:>5}: largest turn {max(turns[name]):5.1f} deg, worst-frame realism "
        f"{min(real[name]):.3f}"
    )

# %%
# The graph and both paths in latent space.
fig, ax = plt.subplots(figsize=(5.5, 5))
plot_latent_graph(interp, path, ax=ax, path_kw={"label": "graph path"})
# The encoded training images, coloured by angle: the ring the graph should follow.
Z = interp.transform(X[:3000])
ax.scatter(
    Z[:, 0], Z[:, 1], c=angles[:3000], cmap="twilight", s=2, zorder=2.5, label="encoded images"
)
ax.plot(line[:, 0], line[:, 1], "--", color="C0", label="straight line")
ax.set_aspect("equal", "datalim")
ax.legend(loc="lower right", fontsize="small")
ax.set_title("latent kNN graph over 1000 prior samples", fontsize="medium")
fig.tight_layout()
fig.savefig("pendulum_interpolation_latent.png", dpi=110)

# %%
# The decoded frames: the graph path node to node (every few nodes), the same
# path at 20 even steps, and the straight line at 20 steps.
n_show = min(20, len(path.latent))
fig, axes = plt.subplots(3, 1, figsize=(0.55 * 20 + 0.4, 2.8))
plot_frames(
    path.decoded,
    (16, 16),
    ax=axes[0],
    n_frames=n_show,
    title=f"graph path, node to node: {n_show} of its {len(path.decoded)} frames "
    f"(smoothness factor of all {s_graph:.3f})",
)
plot_frames(
    even.decoded,
    (16, 16),
    ax=axes[1],
    title=f"graph path at 20 even steps (smoothness factor {s_even:.3f})",
)
plot_frames(
    line20,
    (16, 16),
    ax=axes[2],
    title=f"straight line, 20 steps (smoothness factor {s_line20:.3f})",
)
fig.tight_layout()
fig.savefig("pendulum_interpolation_frames.png", dpi=110)
print("saved pendulum_interpolation_latent.png, pendulum_interpolation_frames.png")
plt.show()
