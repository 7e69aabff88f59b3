"""Procedural 3-D chairs rendered from many views (stand-in for Sec. 4.4 of the paper).

The paper trains on renders of 1,393 CAD chairs (Aubry et al. 2014), 31
azimuths x 2 elevations each, which cannot be downloaded here. This module
builds chairs from boxes with random proportions and ray-casts them, so every
image comes with its ground truth: which chair, seen from where.

Geometry (chair units, about one metre): ``x`` runs from the chair's left to
its right, ``y`` up, ``z`` from the back to the front. Every part is a box
aligned with these axes, and every chair is symmetric under ``x -> -x``.

Camera: a pinhole camera on a sphere around the chair's bounding-box centre,
looking at it, with the image's up direction in the vertical plane through the
camera. Azimuth 0 sees the chair from the front; the camera moves towards the
chair's right (+x) as the azimuth grows; elevation is the angle above the
horizontal. A light fixed to the camera (above it, in the camera's vertical
plane) shades each face by Lambert's law. Because chair, camera path and light
are all symmetric under the mirror ``x -> -x``, the render at azimuth ``-a``
is the left-right mirror image of the render at ``a``.
"""

from numbers import Integral

import numpy as np
from sklearn.utils import Bunch, check_random_state

from .._compat import Interval, validate_params

#: Names of the columns of ``shape_params`` (lengths in chair units).
SHAPE_PARAM_NAMES = (
    "seat_width",
    "seat_depth",
    "seat_height",
    "seat_thickness",
    "leg_thickness",
    "leg_inset",
    "back_height",
    "back_thickness",
    "back_width",
    "back_style",  # 0 solid panel, 1 two posts and two rails, 2 posts and slats
    "armrests",  # 0 or 1
    "arm_height",
    "stretchers",  # 0 none, 1 H-frame, 2 ring of four bars
    "stretcher_height",
)

#: Boxes per chair: seat 1, legs 4, back 5, armrests 4, stretchers 4.
N_BOXES = 18

#: Camera distance to the chair's centre and the half-width of the field of
#: view at unit distance (``tan(fov / 2)``); the largest chair fits at every
#: view with a margin.
CAMERA_DISTANCE = 3.2
HALF_FOV_TAN = 0.23
#: Ambient and diffuse weights, and the light's direction in camera
#: coordinates (right, up, towards the camera): above and in front.
AMBIENT, DIFFUSE = 0.25, 0.75
LIGHT_CAMERA = np.array([0.0, 0.55, 0.835])


def _sample_shapes(n_chairs, rng):
    """Random shape parameters, one row per chair (see SHAPE_PARAM_NAMES)."""
    u = rng.uniform
    p = np.empty((n_chairs, len(SHAPE_PARAM_NAMES)))
    p[:, 0] = u(0.38, 0.62, n_chairs)  # seat width
    p[:, 1] = u(0.36, 0.6, n_chairs)  # seat depth
    p[:, 2] = u(0.34, 0.56, n_chairs)  # seat height (top of the seat)
    p[:, 3] = u(0.025, 0.1, n_chairs)  # seat thickness
    p[:, 4] = u(0.025, 0.08, n_chairs)  # leg thickness
    p[:, 5] = u(0.0, 0.06, n_chairs)  # leg inset from the seat's corners
    p[:, 6] = u(0.22, 0.6, n_chairs)  # back height above the seat
    p[:, 7] = u(0.025, 0.08, n_chairs)  # back thickness
    p[:, 8] = u(0.55, 1.0, n_chairs)  # back width, fraction of the seat's
    p[:, 9] = rng.randint(0, 3, n_chairs)  # back style
    p[:, 10] = rng.uniform(size=n_chairs) < 0.35  # armrests
    p[:, 11] = u(0.16, 0.3, n_chairs)  # armrest height above the seat
    p[:, 12] = np.where(
        rng.uniform(size=n_chairs) < 0.4, rng.randint(1, 3, n_chairs), 0
    )  # stretchers
    p[:, 13] = u(0.25, 0.6, n_chairs)  # stretcher height, fraction of the legs'
    return p


def _chair_boxes(p):
    """Boxes of one chair: ``lo``, ``hi`` (N_BOXES x 3) and ``active`` (N_BOXES,).

    Every box is symmetric about x = 0 or has its mirror twin, so the chair
    is left/right symmetric exactly (bounds are built as ``+-`` the same
    number).
    """
    sw, sd, sh, st, lt, li, bh, bt, bwf, style, arms, ah, strs, sth = p
    hw, hd = sw / 2, sd / 2
    boxes, active = [], []

    def add(lo, hi, on=True):
        boxes.append((lo, hi))
        active.append(bool(on))

    def pair(x0, x1, y0, y1, z0, z1, on=True):
        """A box at x in [x0, x1] (x0 >= 0) and its mirror image."""
        add((x0, y0, z0), (x1, y1, z1), on)
        add((-x1, y0, z0), (-x0, y1, z1), on)

    leg_top = sh - st
    # Seat.
    add((-hw, leg_top, -hd), (hw, sh, hd))
    # Four legs.
    xo, zo = hw - li, hd - li
    pair(xo - lt, xo, 0.0, leg_top, zo - lt, zo)  # front
    pair(xo - lt, xo, 0.0, leg_top, -zo, -zo + lt)  # back
    # Backrest: at the back edge of the seat, from the seat up.
    bw = hw * bwf
    top = sh + bh
    zb0, zb1 = -hd, -hd + bt
    if style == 0:  # solid panel
        add((-bw, sh, zb0), (bw, top, zb1))
        for _ in range(4):
            add((0, 0, 0), (0, 0, 0), False)
    else:
        post = max(lt, 0.035)
        pair(bw - post, bw, sh, top, zb0, zb1)  # two posts
        rail = 0.18 * bh if style == 1 else 0.08 * bh
        add((-bw + post, top - rail, zb0), (bw - post, top, zb1))  # top rail
        if style == 1:  # a second rail halfway
            mid = sh + 0.45 * bh
            add((-bw + post, mid - rail, zb0), (bw - post, mid, zb1))
            add((0, 0, 0), (0, 0, 0), False)
        else:  # a central vertical slat and a bottom rail
            slat = 0.16 * bw
            add((-slat, sh, zb0), (slat, top - rail, zb1))
            add((-bw + post, sh, zb0), (bw - post, sh + rail, zb1))
    # Armrests: a bar along each side and a post at its front.
    arm_w, arm_t = 0.06, 0.035
    ay = sh + ah
    pair(hw - arm_w, hw, ay - arm_t, ay, -hd, 0.8 * hd, arms)
    pair(hw - arm_w + 0.015, hw - 0.015, sh, ay - arm_t, 0.8 * hd - 0.04, 0.8 * hd, arms)
    # Stretchers between the legs.
    sy = sth * leg_top
    s = 0.6 * lt
    # Side bars (both styles), front-to-back between the legs.
    pair(xo - lt / 2 - s / 2, xo - lt / 2 + s / 2, sy - s, sy, -zo + lt, zo - lt, strs > 0)
    if strs == 1:  # H-frame: one cross bar in the middle
        add((-xo + lt, sy - s, -s / 2), (xo - lt, sy, s / 2))
        add((0, 0, 0), (0, 0, 0), False)
    else:  # ring: front and back bars
        add((-xo + lt, sy - s, zo - lt / 2 - s / 2), (xo - lt, sy, zo - lt / 2 + s / 2), strs)
        add((-xo + lt, sy - s, -zo + lt / 2 - s / 2), (xo - lt, sy, -zo + lt / 2 + s / 2), strs)
    lo = np.array([b[0] for b in boxes], dtype=np.float64)
    hi = np.array([b[1] for b in boxes], dtype=np.float64)
    assert lo.shape == (N_BOXES, 3)
    return lo, hi, np.array(active)


def _cameras(azimuths, elevations):
    """Camera position, forward/right/up vectors and light for each view (degrees)."""
    a, e = np.deg2rad(azimuths), np.deg2rad(elevations)
    back = np.stack([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)], axis=-1)
    forward = -back
    # right = forward x (0, 1, 0), normalised; up = right x forward.
    right = np.stack([-forward[:, 2], np.zeros_like(a), forward[:, 0]], axis=-1)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    up = np.cross(right, forward)
    light = LIGHT_CAMERA[1] * up + LIGHT_CAMERA[2] * back
    light /= np.linalg.norm(light, axis=-1, keepdims=True)
    return CAMERA_DISTANCE * back, forward, right, up, light


def _render_chair(lo, hi, azimuths, elevations, image_size, supersampling, out):
    """Ray-cast one chair (boxes ``lo``, ``hi``) at every view into ``out``.

    Vectorised over all views and boxes at once, casting only the rays that
    can hit a box: each box's projected corners bound a rectangle of rays,
    and every (ray, box) pair in these rectangles gets the slab test. The
    nearest hit of each ray wins (a z-buffer) and its face is shaded by
    Lambert's law with the camera's light. ``out`` has shape
    ``(n_views, image_size**2)``.
    """
    n, s = image_size, supersampling
    m = n * s  # rays per side
    n_views, n_boxes = len(azimuths), len(lo)
    centre = (lo.min(axis=0) + hi.max(axis=0)) / 2
    centre[0] = 0.0  # symmetric by construction; keep it exact
    lo = lo - centre
    hi = hi - centre
    eye, forward, right, up, light = _cameras(azimuths, elevations)
    # Ray offsets in the image plane at unit distance: exact binary fractions,
    # symmetric about 0 (ray j and m - 1 - j are negatives of each other).
    g = ((np.arange(m) + 0.5) / m - 0.5) * (2.0 * HALF_FOV_TAN)
    # Each box's bounding rectangle of rays, from its 8 projected corners.
    corners = np.stack(
        [np.where(np.array(bits, dtype=bool), hi, lo) for bits in np.ndindex(2, 2, 2)],
        axis=1,
    )  # (boxes, 8, 3)
    rel = corners[None] - eye[:, None, None, :]  # (views, boxes, 8, 3)
    depth = rel @ forward[:, :, None][:, None]  # (views, boxes, 8, 1)
    sx = (rel @ right[:, :, None][:, None] / depth)[..., 0]
    sy = (rel @ up[:, :, None][:, None] / depth)[..., 0]
    scale = m / (2.0 * HALF_FOV_TAN)
    c0 = np.floor(sx.min(-1) * scale + m / 2 - 0.5).astype(np.intp)
    c1 = np.ceil(sx.max(-1) * scale + m / 2 - 0.5).astype(np.intp) + 1
    r0 = np.floor(-sy.max(-1) * scale + m / 2 - 0.5).astype(np.intp)
    r1 = np.ceil(-sy.min(-1) * scale + m / 2 - 0.5).astype(np.intp) + 1
    c0, r0 = np.clip(c0, 0, m), np.clip(r0, 0, m)
    c1, r1 = np.clip(c1, c0, m), np.clip(r1, r0, m)
    w = (c1 - c0).ravel()
    area = w * (r1 - r0).ravel()
    # All (ray, box) pairs of the rectangles: view, box, row and column.
    pair = np.repeat(np.arange(n_views * n_boxes), area)
    k = np.arange(area.sum()) - np.repeat(np.cumsum(area) - area, area)
    wp = w[pair]
    row = r0.ravel()[pair] + k // wp
    col = c0.ravel()[pair] + k % wp
    view, box = np.divmod(pair, n_boxes)
    # Slab test of each pair, float32.
    f32 = np.float32
    gx, gy = g.astype(f32)[col], -g.astype(f32)[row]
    rel_lo = (lo[None] - eye[:, None, :]).astype(f32)  # (views, boxes, 3)
    rel_hi = (hi[None] - eye[:, None, :]).astype(f32)
    near = far = None
    nears, dirs = [], []
    for i in range(3):
        d = forward[:, i].astype(f32)[view] + gx * right[:, i].astype(f32)[view]
        d += gy * up[:, i].astype(f32)[view]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t_lo = rel_lo[view, box, i] * inv
            t_hi = rel_hi[view, box, i] * inv
        n_i = np.minimum(t_lo, t_hi)
        f_i = np.maximum(t_lo, t_hi)
        near = n_i if near is None else np.maximum(near, n_i)
        far = f_i if far is None else np.minimum(far, f_i)
        nears.append(n_i)
        dirs.append(d)
    hit = near < far
    # Z-buffer: the nearest hit of each ray.
    ray = (view * m + row) * m + col
    ray, near = ray[hit], near[hit]
    zbuf = np.full(n_views * m * m, np.inf, dtype=f32)
    np.minimum.at(zbuf, ray, near)
    win = np.flatnonzero(hit)[near == zbuf[ray]]
    # The face the winning ray enters through, its outward normal
    # (-sign of the ray along that axis) and Lambert's law.
    face = np.where(
        nears[0][win] >= np.maximum(nears[1][win], nears[2][win]),
        0,
        np.where(nears[1][win] >= nears[2][win], 1, 2),
    )
    d_face = np.choose(face, [dirs[0][win], dirs[1][win], dirs[2][win]])
    lam = light[view[win], face] * np.where(d_face > 0, -1.0, 1.0)
    img = np.zeros(n_views * m * m)
    img[(view[win] * m + row[win]) * m + col[win]] = AMBIENT + DIFFUSE * np.maximum(lam, 0.0)
    img = img.reshape(n_views, n, s, n, s).mean(axis=(2, 4))
    out[...] = img.reshape(n_views, -1)


def _views(spec, default_start, name):
    """Angles in degrees from an int (evenly spaced) or an array."""
    if isinstance(spec, Integral):
        if spec < 1:
            raise ValueError(f"{name} must be >= 1, got {spec}.")
        return default_start + 360.0 * np.arange(spec) / spec
    arr = np.asarray(spec, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a positive int or a non-empty array of finite degrees.")
    return arr


@validate_params(
    {
        "n_chairs": [Interval(Integral, 1, None, closed="left")],
        "azimuths": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "elevations": ["array-like"],
        "image_size": [Interval(Integral, 8, None, closed="left")],
        "supersampling": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "shape_params": ["array-like", None],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_chairs(
    n_chairs=100,
    *,
    azimuths=31,
    elevations=(20.0, 30.0),
    image_size=64,
    supersampling=2,
    random_state=None,
    shape_params=None,
    return_X_y=False,
):
    """Render procedural 3-D chairs from many views, with their ground truth.

    A stand-in for the rendered CAD chairs of the paper's Sec. 4.4 (Aubry et
    al. 2014: 1,393 chairs x 31 azimuths x 2 elevations), which cannot be
    downloaded here. Each chair is built from axis-aligned boxes with random
    proportions: a seat, four legs, a backrest (a solid panel, two posts with
    two rails, or posts with a central slat), and optionally armrests and
    stretchers (an H-frame or a ring) between the legs. Chairs are
    left/right symmetric. Each view is ray-cast with a pinhole camera
    looking at the chair's centre (occlusion by nearest hit), shaded by
    Lambert's law with a light fixed above the camera, on a black background
    and anti-aliased by supersampling.

    Parameters
    ----------
    n_chairs : int, default=100
        Number of chairs (ignored when ``shape_params`` is given).
    azimuths : int or array-like of float, default=31
        Azimuths in degrees, or their number, evenly spaced from 0 (the
        paper's 31). Azimuth 0 sees the chair from the front; the camera
        moves towards the chair's right as the azimuth grows.
    elevations : array-like of float, default=(20.0, 30.0)
        Elevations of the camera above the horizontal, in degrees (the
        paper's two).
    image_size : int, default=64
        Images are ``image_size x image_size`` pixels.
    supersampling : int, default=2
        Rays per pixel side (anti-aliasing); 1 casts one ray per pixel.
    random_state : int, RandomState instance or None, default=None
        Seeds the chairs' shapes. Rendering itself is deterministic.
    shape_params : array-like of shape (n_chairs, 14), default=None
        Render these chairs (rows of a previous result's ``shape_params``)
        instead of drawing new ones.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes (one row per image; images
        are ordered by chair, then elevation, then azimuth):

        data : ndarray of shape (n_chairs * n_views, image_size**2)
            Grey images in [0, 1], flattened row-major (float64).
        images : ndarray of shape (n_chairs * n_views, image_size, image_size)
            The same images as a view of ``data``.
        target : ndarray of shape (n_chairs * n_views,)
            The chair of each image (0 to ``n_chairs - 1``), as ``chair``.
        chair : ndarray of shape (n_chairs * n_views,), dtype int
            The same as ``target``.
        azimuth : ndarray of shape (n_chairs * n_views,)
            Azimuth of each image's camera, degrees.
        elevation : ndarray of shape (n_chairs * n_views,)
            Elevation of each image's camera, degrees.
        shape_params : ndarray of shape (n_chairs, 14)
            Each chair's parameters; columns named in ``shape_param_names``
            (lengths in chair units, about metres; ``back_style``,
            ``armrests`` and ``stretchers`` are categories).
        shape_param_names : list of str
            Names of the columns of ``shape_params``.
        azimuths : ndarray
            The views' azimuths, degrees.
        elevations : ndarray
            The views' elevations, degrees.
        DESCR : str
            A one-line description of the data.

    (data, target) : tuple if ``return_X_y`` is True
        ``target`` is the chair of each image.

    Notes
    -----
    A Bunch rather than the ``(X, y)`` tuple of scikit-learn's other
    ``make_*`` functions, because an image has three ground truths (chair,
    azimuth, elevation) plus the chairs' shapes; ``return_X_y=True`` gives
    the usual tuple.

    Rendering casts only the rays that can hit a box (each box's projected
    bounding rectangle) and tests all of them against their box at once;
    at the defaults (64 x 64, 2 x 2 rays per pixel) it makes about 1,000
    images per second on one core (see ``docs/benchmarks/chairs.md``).

    Examples
    --------
    >>> from sklearn_vhp.datasets import make_chairs
    >>> chairs = make_chairs(n_chairs=2, azimuths=4, elevations=[30], random_state=0)
    >>> chairs.data.shape, chairs.azimuth[:4].tolist()
    ((8, 4096), [0.0, 90.0, 180.0, 270.0])
    """
    az = _views(azimuths, 0.0, "azimuths")
    el = np.asarray(elevations, dtype=np.float64).ravel()
    if el.size == 0 or not np.all(np.abs(el) < 90.0):
        raise ValueError(f"elevations must be in (-90, 90) degrees, got {elevations!r}.")
    if shape_params is None:
        params = _sample_shapes(n_chairs, check_random_state(random_state))
    else:
        params = np.asarray(shape_params, dtype=np.float64)
        if params.ndim != 2 or params.shape[1] != len(SHAPE_PARAM_NAMES):
            raise ValueError(
                f"shape_params must have shape (n_chairs, {len(SHAPE_PARAM_NAMES)}), "
                f"got {params.shape}."
            )
    n_chairs = params.shape[0]
    view_el = np.repeat(el, az.size)
    view_az = np.tile(az, el.size)
    n_views = view_az.size
    X = np.empty((n_chairs * n_views, image_size * image_size))
    for c in range(n_chairs):
        lo, hi, active = _chair_boxes(params[c])
        _render_chair(
            lo[active],
            hi[active],
            view_az,
            view_el,
            image_size,
            supersampling,
            X[c * n_views : (c + 1) * n_views],
        )
    chair = np.repeat(np.arange(n_chairs), n_views)
    if return_X_y:
        return X, chair
    return Bunch(
        data=X,
        images=X.reshape(-1, image_size, image_size),
        target=chair,
        chair=chair,
        azimuth=np.tile(view_az, n_chairs),
        elevation=np.tile(view_el, n_chairs),
        shape_params=params,
        shape_param_names=list(SHAPE_PARAM_NAMES),
        azimuths=az,
        elevations=el,
        DESCR=(
            "Procedural chairs (sklearn_vhp.datasets.make_chairs): "
            f"{n_chairs} chairs x {az.size} azimuths x {el.size} elevations, "
            f"{image_size} x {image_size} grey renders in [0, 1]."
        ),
    )
