"""Metrics for latent spaces and interpolation paths."""

import numpy as np


def smoothness_factor(path):
    """Root mean square of the second-order finite difference along a path.

    The paper (Sec. 4.2) uses it to compare interpolations: a path whose
    consecutive steps change smoothly has a small factor; jumps raise it.

    Parameters
    ----------
    path : array-like of shape (n_points, n_features)
        Consecutive points, e.g. decoded frames of an interpolation. A 1-D
        array is taken as a path of scalars.

    Returns
    -------
    float
        ``sqrt(mean(||x[i+1] - 2 x[i] + x[i-1]||^2))``, 0.0 for paths of
        fewer than three points.
    """
    path = np.asarray(path, dtype=np.float64)
    if path.ndim == 1:
        path = path[:, None]
    if path.ndim != 2:
        raise ValueError(f"path must be 1-D or 2-D, got shape {path.shape}.")
    if path.shape[0] < 3:
        return 0.0
    d2 = path[2:] - 2.0 * path[1:-1] + path[:-2]
    return float(np.sqrt(np.mean(np.sum(d2**2, axis=1))))


def angle_targets(angles):
    """Embed angles on the unit circle: ``(cos a, sin a)``, shape (n, 2)."""
    angles = np.asarray(angles, dtype=np.float64)
    return np.column_stack([np.cos(angles), np.sin(angles)])


def angular_error(y_true, y_pred):
    """Mean absolute angle error between angles and predicted (cos, sin).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, 2)
        True angles in radians, or their ``(cos, sin)`` embedding.
    y_pred : array-like of shape (n_samples, 2)
        Predicted ``(cos, sin)`` pairs (need not be unit length).

    Returns
    -------
    float
        Mean absolute difference of the angles, wrapped to [0, pi].
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    a_true = y_true if y_true.ndim == 1 else np.arctan2(y_true[:, 1], y_true[:, 0])
    a_pred = np.arctan2(y_pred[:, 1], y_pred[:, 0])
    diff = np.angle(np.exp(1j * (a_pred - a_true)))
    return float(np.mean(np.abs(diff)))
