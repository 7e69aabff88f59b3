"""
Procedural chairs seen from many views
======================================

The paper's last experiment (Klushyn et al. 2019, Sec. 4.4) trains on renders
of 3-D chairs, 31 azimuths x 2 elevations each. That data set cannot be
downloaded here, so :func:`~sklearn_vhp.datasets.make_chairs` builds chairs
from boxes with random proportions (seat, four legs, a backrest, optional
armrests and stretchers) and ray-casts them, shaded by Lambert's law, with
every image's chair, azimuth and elevation known.

This script renders eight chairs at the paper's views and shows every fourth
azimuth at both elevations, then times the renderer. It runs in a second.
"""

import os
import time

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sklearn_vhp.datasets import make_chairs

chairs = make_chairs(n_chairs=8, random_state=0)
print(chairs.DESCR)
n_az, n_el = len(chairs.azimuths), len(chairs.elevations)
images = chairs.images.reshape(8, n_el, n_az, 64, 64)

# %%
# Rows: chairs; columns: every fourth azimuth, at 20 deg then 30 deg.
shown = np.arange(0, n_az, 4)
fig, axes = plt.subplots(8, 2 * len(shown), figsize=(2 * len(shown), 8.4))
for c in range(8):
    for e in range(n_el):
        for j, a in enumerate(shown):
            ax = axes[c, e * len(shown) + j]
            ax.imshow(images[c, e, a], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_title(
                    f"{chairs.azimuths[a]:.0f}°\nel {chairs.elevations[e]:.0f}°", fontsize=7
                )
fig.suptitle("make_chairs: 8 chairs, every fourth of 31 azimuths, 2 elevations")
fig.tight_layout()

# %%
# The ground truth travels with the images: each row's chair, azimuth and
# elevation, and each chair's shape parameters.
names = chairs.shape_param_names
for c in range(3):
    p = dict(zip(names, chairs.shape_params[c]))
    print(
        f"chair {c}: seat {p['seat_width']:.2f} x {p['seat_depth']:.2f} at "
        f"{p['seat_height']:.2f}, back style {p['back_style']:.0f}, "
        f"armrests {p['armrests']:.0f}, stretchers {p['stretchers']:.0f}"
    )

# %%
# Rendering speed (all 62 views of 20 chairs).
t0 = time.perf_counter()
more = make_chairs(n_chairs=20, random_state=1)
dt = time.perf_counter() - t0
print(f"{len(more.data)} images in {dt:.2f} s: {len(more.data) / dt:.0f} images/s")

if __name__ == "__main__":
    fig.savefig("chairs.png", dpi=80)
    plt.show()
