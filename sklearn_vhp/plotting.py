"""Matplotlib helpers for latent graphs and interpolation paths.

matplotlib is an optional dependency (``pip install sklearn-vhp[examples]``)
and is imported only inside these functions.
"""

import numpy as np

__all__ = ["plot_frames", "plot_latent_graph", "plot_pose", "plot_pose_strip"]


def _get_ax(ax):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("sklearn_vhp.plotting needs matplotlib: pip install matplotlib") from exc
    return plt.gca() if ax is None else ax


def _pick_frames(frames, n_frames):
    """``n_frames`` of ``frames``, evenly spaced with the first and last (all if ``None``)."""
    if n_frames is not None and n_frames < len(frames):
        frames = frames[np.round(np.linspace(0, len(frames) - 1, n_frames)).astype(int)]
    return frames


def plot_latent_graph(
    interpolator,
    path=None,
    ax=None,
    *,
    dims=(0, 1),
    show_edges=True,
    node_kw=None,
    edge_kw=None,
    path_kw=None,
):
    """Scatter the graph's latent nodes with their edges and, optionally, a path.

    Parameters
    ----------
    interpolator : ManifoldInterpolator
        A fitted interpolator; its ``nodes_`` and ``graph_`` are drawn.
    path : InterpolationPath or array-like of shape (n_points, n_components), \
            default=None
        A path to draw on top, e.g. the result of
        :meth:`ManifoldInterpolator.interpolate` or a straight line.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` uses the current axes.
    dims : tuple of two int, default=(0, 1)
        Latent dimensions to show when the latent space has more than two.
    show_edges : bool, default=True
        Whether to draw the graph's edges.
    node_kw, edge_kw, path_kw : dict, default=None
        Keyword arguments for the node ``scatter``, the edges'
        ``LineCollection`` and the path's ``plot`` call.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.
    """
    from matplotlib.collections import LineCollection

    ax = _get_ax(ax)
    dims = list(dims)
    nodes = np.asarray(interpolator.nodes_)[:, dims]
    if show_edges:
        graph = interpolator.graph_.tocoo()
        upper = graph.row < graph.col  # each undirected edge once
        segments = np.stack([nodes[graph.row[upper]], nodes[graph.col[upper]]], axis=1)
        kw = {"colors": "0.75", "linewidths": 0.3, "zorder": 1}
        kw.update(edge_kw or {})
        ax.add_collection(LineCollection(segments, **kw))
    kw = {"s": 4, "c": "0.35", "zorder": 2, "label": "graph nodes"}
    kw.update(node_kw or {})
    ax.scatter(nodes[:, 0], nodes[:, 1], **kw)
    if path is not None:
        latent = np.asarray(getattr(path, "latent", path))[:, dims]
        kw = {"color": "C3", "marker": "o", "markersize": 3, "linewidth": 1.5, "zorder": 3}
        kw.update(path_kw or {})
        ax.plot(latent[:, 0], latent[:, 1], **kw)
        ax.plot(*latent[0], "k^", zorder=4, markersize=6)
        ax.plot(*latent[-1], "ks", zorder=4, markersize=6)
    ax.set_xlabel(f"$z_{dims[0] + 1}$")
    ax.set_ylabel(f"$z_{dims[1] + 1}$")
    ax.autoscale_view()
    return ax


def plot_frames(decoded, image_shape, ax=None, *, n_frames=None, pad=1, cmap="gray", title=None):
    """Show decoded samples as a strip of images, left to right.

    Parameters
    ----------
    decoded : array-like of shape (n_points, n_features)
        Flattened images, e.g. ``InterpolationPath.decoded``.
    image_shape : tuple of int
        Shape of one image, ``(height, width)``.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` uses the current axes.
    n_frames : int, default=None
        Show this many frames evenly spaced along the path (always including
        the first and the last); ``None`` shows all.
    pad : int, default=1
        Pixels of padding between frames.
    cmap : str or Colormap, default="gray"
        Colour map of ``imshow``.
    title : str, default=None
        Axes title.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.
    """
    ax = _get_ax(ax)
    frames = np.asarray(decoded, dtype=np.float64)
    frames = _pick_frames(frames, n_frames)
    h, w = image_shape
    frames = frames.reshape(len(frames), h, w)
    strip = np.full((h, len(frames) * (w + pad) - pad), np.nan)
    for i, frame in enumerate(frames):
        strip[:, i * (w + pad) : i * (w + pad) + w] = frame
    ax.imshow(
        np.ma.masked_invalid(strip),
        cmap=cmap,
        interpolation="nearest",
        vmin=0.0,
        vmax=max(1.0, float(np.nanmax(frames))),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize="small", loc="left")
    return ax


def _project(positions, azimuth):
    """Orthographic view of ``(..., 3)`` positions (y up), turned ``azimuth`` degrees about y."""
    a = np.deg2rad(azimuth)
    x = positions[..., 0] * np.cos(a) + positions[..., 2] * np.sin(a)
    return np.stack([x, positions[..., 1]], axis=-1)


def _pose_segments(skeleton, frames, channel_names, fill):
    positions = skeleton.forward_kinematics(
        np.atleast_2d(np.asarray(frames, dtype=np.float64)), channel_names, fill=fill
    )
    pairs = np.asarray(skeleton.segments)
    return positions, pairs


def plot_pose(
    skeleton,
    frame,
    channel_names=None,
    ax=None,
    *,
    fill=None,
    azimuth=30.0,
    offset=0.0,
    color="C0",
    linewidth=1.5,
):
    """Draw one motion-capture frame as a stick figure.

    The skeleton's forward kinematics (Acclaim conventions) place every joint
    in 3-D; the figure is drawn at the origin with heading 0 (the root's
    channels are ignored) and shown in an orthographic view turned
    ``azimuth`` degrees about the vertical axis.

    Parameters
    ----------
    skeleton : Skeleton
        From :func:`sklearn_vhp.datasets.read_asf`.
    frame : array-like of shape (n_channels,)
        Channel values in degrees, e.g. a row of
        :func:`~sklearn_vhp.datasets.load_cmu_mocap`'s ``data`` (50 features)
        or a decoded row.
    channel_names : list of str, default=None
        ``"joint.dof"`` of each value (e.g. ``Bunch.feature_names``);
        ``None`` means the skeleton's own channels.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` uses the current axes.
    fill : dict of str to float, default=None
        Values of channels absent from ``channel_names`` (``Bunch.fill_values``);
        others are 0.
    azimuth : float, default=30.0
        View direction, degrees about the vertical axis (0: from the front).
    offset : float, default=0.0
        Horizontal shift of the figure, in the skeleton's length unit.
    color : color, default="C0"
        Line colour.
    linewidth : float, default=1.5
        Line width.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.
    """
    return plot_pose_strip(
        skeleton,
        np.atleast_2d(frame),
        channel_names,
        ax,
        fill=fill,
        azimuth=azimuth,
        offset=offset,
        colors=[color],
        linewidth=linewidth,
    )


def plot_pose_strip(
    skeleton,
    frames,
    channel_names=None,
    ax=None,
    *,
    fill=None,
    n_frames=None,
    spacing=None,
    azimuth=30.0,
    offset=0.0,
    colors=None,
    linewidth=1.2,
    title=None,
):
    """Draw a sequence of frames as stick figures side by side (paper Fig. 7).

    Parameters
    ----------
    skeleton : Skeleton
        From :func:`sklearn_vhp.datasets.read_asf`.
    frames : array-like of shape (n_points, n_channels)
        E.g. ``InterpolationPath.decoded`` mapped back to degrees.
    channel_names : list of str, default=None
        ``"joint.dof"`` of each column; ``None`` means the skeleton's channels.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` uses the current axes.
    fill : dict of str to float, default=None
        Values of channels absent from ``channel_names``.
    n_frames : int, default=None
        Draw this many frames evenly spaced along the sequence (always the
        first and the last); ``None`` draws all.
    spacing : float, default=None
        Horizontal distance between figures; ``None``: 1.1 times the widest
        figure.
    azimuth : float, default=30.0
        View direction, degrees about the vertical axis.
    offset : float, default=0.0
        Horizontal shift of the first figure.
    colors : list of colors, default=None
        One per drawn frame (cycled); ``None`` shades from dark to light blue.
    linewidth : float, default=1.2
        Line width.
    title : str, default=None
        Axes title.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on.
    """
    from matplotlib.collections import LineCollection

    ax = _get_ax(ax)
    frames = np.atleast_2d(np.asarray(frames, dtype=np.float64))
    frames = _pick_frames(frames, n_frames)
    positions, pairs = _pose_segments(skeleton, frames, channel_names, fill)
    flat = _project(positions, azimuth)  # (n, joints, 2)
    flat[..., 0] -= flat[:, :1, 0]  # each figure centred on its root
    if spacing is None:
        spacing = 1.1 * float(np.max(np.ptp(flat[..., 0], axis=1))) if len(flat) else 1.0
    if colors is None:
        import matplotlib.pyplot as plt

        colors = plt.get_cmap("Blues")(np.linspace(0.95, 0.5, len(flat)))
    for i, pose in enumerate(flat):
        shifted = pose + [offset + i * spacing, 0.0]
        ax.add_collection(
            LineCollection(
                shifted[pairs],
                colors=[colors[i % len(colors)]],
                linewidths=linewidth,
                capstyle="round",
            )
        )
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize="small", loc="left")
    return ax
