"""
Human motion: a 2-D map of exercises and interpolated movements
================================================================

The paper's Sec. 4.2 (Figs 5-7) on real motion capture: recordings of the
CMU Graphics Lab Motion Capture Database, subjects doing an exercise routine
(jumping jacks, jogging, squats, knee raises, arm circles, twists, toe
touches). :func:`~sklearn_vhp.datasets.load_cmu_mocap` reads each frame as
the paper's 50 joint angles with the exercise annotated for every 0.1 s.

A VHP with REWO is fitted to three recordings of subject 13 (angles
standardised); the fourth, subject 14's, is held out. Its frames are mapped
to the 2-D latent space, and :class:`~sklearn_vhp.ManifoldInterpolator`
finds a path through the learned prior between a frame of one exercise and a
frame of another, drawn as stick figures with the database's skeleton
(:func:`~sklearn_vhp.datasets.read_asf`, :func:`~sklearn_vhp.plotting.plot_pose_strip`).

The full comparison with a VampPrior and an IWAE (smoothness per joint, the
paper's Fig. 8) is ``benchmarks/mocap.py``; see the "Human motion" section of
the benchmarks.
"""

import os
from pathlib import Path

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_vhp import ManifoldInterpolator, VHPEstimator
from sklearn_vhp.datasets import features_to_channels, load_cmu_mocap, read_asf
from sklearn_vhp.metrics import smoothness_factor
from sklearn_vhp.plotting import plot_latent_graph, plot_pose_strip

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast: then
# the recordings are read at 10 frames per second instead of 30.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None
fps = 10 if epochs else 30


def find_data():
    """The recordings: ``$SKLEARN_VHP_MOCAP``, else ``shared/data/cmu_mocap``
    beside the repository (as the project's CI lays it out)."""
    if "SKLEARN_VHP_MOCAP" in os.environ:
        return Path(os.environ["SKLEARN_VHP_MOCAP"])
    here = [Path.cwd()]
    if "__file__" in globals():
        here.insert(0, Path(__file__).resolve().parent)
    for base in here:
        for up in (base, *base.parents):
            folder = up / "shared" / "data" / "cmu_mocap"
            if folder.is_dir():
                return folder
    raise FileNotFoundError("no cmu_mocap folder found; set SKLEARN_VHP_MOCAP")


folder = find_data()
train = load_cmu_mocap(sorted(folder.glob("13_*.amc.gz")), fps=fps)
held = load_cmu_mocap(folder / "14_14.amc.gz", fps=fps)
skeleton = read_asf(folder / "12.asf")
print(f"{len(train.data)} training frames, {len(held.data)} held-out frames, {fps} fps")

scaler = StandardScaler().fit(train.data)
X_train, X_held = scaler.transform(train.data), scaler.transform(held.data)

# %%
# Fit the VAE with the package defaults and a 2-D latent space.
vhp = VHPEstimator(n_components=2, random_state=0)
if epochs:
    vhp.set_params(max_iter=epochs)
vhp.fit(X_train)
z_train, z_held = vhp.transform(X_train), vhp.transform(X_held)
knn = KNeighborsClassifier(n_neighbors=5).fit(z_train, train.target)
print(
    f"exercise of held-out frames, 5-NN in the latent space: {knn.score(z_held, held.target):.2f}"
)

# %%
# The latent map: training frames coloured by exercise, the learned prior's
# samples beside them (the paper's Fig. 5).
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
for t in np.unique(train.target):
    m = train.target == t
    ax1.scatter(*z_train[m].T, s=3, label=train.target_names[t])
ax1.legend(markerscale=3, fontsize="small")
ax1.set_title("approximate posterior (training frames)")
ax2.scatter(*vhp.sample_latent(2000, random_state=0).T, s=3, color="0.3")
ax2.set(xlim=ax1.get_xlim(), ylim=ax1.get_ylim(), title="samples of the learned prior")
fig.tight_layout()

# %%
# A graph through the learned prior and a path from a jumping jack to a squat
# of the held-out subject (the paper's Figs 6 and 7).
interp = ManifoldInterpolator(vhp, prefit=True, n_nodes=2530, n_neighbors=15, random_state=0).fit(
    X_train
)
names = list(held.target_names)
start = np.flatnonzero(held.target == names.index("JumpJack"))[5]
end = np.flatnonzero(held.target == names.index("Squat"))[5]
path = interp.interpolate(X_held[start], X_held[end])
print(f"{len(path.latent)} points, smoothness factor {smoothness_factor(path.decoded):.3f}")

fig, ax = plt.subplots(figsize=(5, 4.5))
plot_latent_graph(interp, path, ax=ax, node_kw={"s": 1})
ax.set_title("graph of prior samples and the path")

degrees = scaler.inverse_transform(path.decoded)
frames = features_to_channels(degrees, train.feature_names, train.channel_names, train.fill_values)
fig, ax = plt.subplots(figsize=(12, 2.2))
plot_pose_strip(skeleton, frames, train.channel_names, ax, n_frames=12, title="JumpJack → Squat")
plt.show()
