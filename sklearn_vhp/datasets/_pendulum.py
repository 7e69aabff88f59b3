"""Synthetic pendulum images (Klushyn et al. 2019, Sec. 4.1)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

from .._compat import Interval, validate_params


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "image_size": [Interval(Integral, 4, None, closed="left")],
        "random_state": ["random_state"],
        "line_width": [Interval(Real, 0, None, closed="neither")],
        "bob_radius": [Interval(Real, 0, None, closed="left")],
        "length": [Interval(Real, 0, 1, closed="right")],
        "supersampling": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def make_pendulum(
    n_samples=15000,
    image_size=16,
    random_state=None,
    *,
    line_width=1.0,
    bob_radius=1.5,
    length=0.8,
    supersampling=4,
):
    """Render grey-scale images of a pendulum at uniformly random angles.

    The pendulum is a rod hinged at the image centre with a disc (the bob)
    at its free end, drawn anti-aliased by supersampling. The only factor of
    variation is the joint angle, so the images lie on a closed
    one-dimensional manifold: a circle (paper Sec. 4.1).

    Parameters
    ----------
    n_samples : int, default=15000
        Number of images.
    image_size : int, default=16
        Images are ``image_size x image_size`` pixels.
    random_state : int, RandomState instance or None, default=None
        Seeds the angles.
    line_width : float, default=1.0
        Width of the rod, in pixels.
    bob_radius : float, default=1.5
        Radius of the bob, in pixels (0 draws no bob).
    length : float, default=0.8
        Rod length as a fraction of half the image width.
    supersampling : int, default=4
        Sub-pixels per pixel side used for anti-aliasing.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size**2), dtype float64
        Row-major flattened images with values in [0, 1].
    angles : ndarray of shape (n_samples,)
        Joint angles in [0, 2*pi), measured anti-clockwise from the
        downward vertical.

    Examples
    --------
    >>> from sklearn_vhp.datasets import make_pendulum
    >>> X, angles = make_pendulum(n_samples=10, random_state=0)
    >>> X.shape, float(X.min()) >= 0.0, float(X.max()) <= 1.0
    ((10, 256), True, True)
    """
    rng = check_random_state(random_state)
    angles = rng.uniform(0.0, 2.0 * np.pi, size=n_samples)
    return render_pendulum(
        angles,
        image_size=image_size,
        line_width=line_width,
        bob_radius=bob_radius,
        length=length,
        supersampling=supersampling,
    ), angles


def render_pendulum(
    angles,
    *,
    image_size=16,
    line_width=1.0,
    bob_radius=1.5,
    length=0.8,
    supersampling=4,
):
    """Render pendulum images for the given angles (see :func:`make_pendulum`)."""
    angles = np.asarray(angles, dtype=np.float64).ravel()
    s = supersampling
    # Sub-pixel centres in pixel units, origin at the image centre, y down.
    coords = (np.arange(image_size * s) + 0.5) / s - image_size / 2.0
    px, py = np.meshgrid(coords, coords)  # (H*s, W*s), row = y
    px, py = px.ravel(), py.ravel()
    rod = length * image_size / 2.0
    out = np.empty((angles.shape[0], image_size * image_size))
    chunk = max(1, 2**22 // px.size)
    for start in range(0, angles.shape[0], chunk):
        a = angles[start : start + chunk, None]
        # Bob position: angle 0 hangs straight down (+y in image rows).
        ex, ey = rod * np.sin(a), rod * np.cos(a)
        # Distance of each sub-pixel to the segment from the pivot to the bob.
        t = np.clip((px * ex + py * ey) / rod**2, 0.0, 1.0)
        d_rod = np.hypot(px - t * ex, py - t * ey)
        d_bob = np.hypot(px - ex, py - ey)
        inside = (d_rod <= line_width / 2.0) | (d_bob <= bob_radius)
        img = inside.reshape(-1, image_size, s, image_size, s).mean(axis=(2, 4))
        out[start : start + chunk] = img.reshape(len(a), -1)
    return out
