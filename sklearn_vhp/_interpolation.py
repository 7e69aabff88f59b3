"""Graph-based interpolation on the learned latent manifold (paper Sec. 2.3).

The hierarchical prior concentrates its mass on the part of the latent space
that the data occupy. Following Klushyn et al. (2019, Sec. 2.3), a
k-nearest-neighbour graph over samples of the learned prior approximates that
manifold; the shortest path through the graph between two encoded points,
decoded back to data space, is an interpolation that stays on the manifold
instead of cutting across holes the way a straight line does.

pynndescent (and with it numba) is imported only when a graph is actually
built with it, so ``import sklearn_vhp`` stays fast.
"""

import math
import warnings
from copy import deepcopy
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from ._compat import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)
from ._compat import fit_context as _fit_context

__all__ = ["InterpolationPath", "ManifoldInterpolator"]

# Where ``neighbors="auto"`` switches from exact neighbours to pynndescent.
# Measured with ``benchmarks/graph.py`` (see ``docs/interpolation_notes.md``):
# pynndescent compiles its numba kernels for ~27 s in every fresh process and
# is faster than exact brute force (which grows as n**2) from ~10k nodes on
# once compiled; the two tie at ~100k nodes in a fresh process. 70k nodes
# evens out the worst loss of either choice (~15 s): exact neighbours at 70k
# cost ~17 s, pynndescent ~31 s fresh and ~3 s warm.
_EXACT_MAX_NODES = 70_000
# Up to this many latent dimensions a k-d tree gives exact neighbours in
# O(n log n) and beats pynndescent at every graph size we measured.
_TREE_MAX_DIM = 4
# Floats per block of ``geodesic_distances``' work arrays.
_GEODESIC_BLOCK = 2**24


class InterpolationPath(NamedTuple):
    """A path through the latent graph, decoded to data space.

    Returned by :meth:`ManifoldInterpolator.interpolate`.

    Attributes
    ----------
    latent : ndarray of shape (n_points, n_components)
        Latent points along the path: the encoded start point, the graph nodes
        visited, the encoded end point; or, for a path resampled at even
        steps (``n_frames`` or ``spacing``), points at equal arc length along
        that polyline.
    nodes : ndarray of shape (n_points,), dtype int64
        Index of each point in ``ManifoldInterpolator.nodes_``; ``-1`` for
        points that are not graph nodes: the two encoded end points, and every
        point of a resampled path.
    decoded : ndarray of shape (n_points, n_features)
        Decoder means of ``latent``, in the units of the data given to
        :meth:`ManifoldInterpolator.fit` (see
        :meth:`ManifoldInterpolator.inverse_transform`).
    length : float
        Length in latent space of the graph path: the sum of the Euclidean
        lengths of its edges (resampling does not change the polyline).
    """

    latent: np.ndarray
    nodes: np.ndarray
    decoded: np.ndarray
    length: float


def _knn_exact(points, n_neighbors, n_jobs):
    """Exact k nearest neighbours of every point among the others."""
    algorithm = "kd_tree" if points.shape[1] <= _TREE_MAX_DIM else "brute"
    nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm=algorithm, n_jobs=n_jobs).fit(points)
    distances, indices = nn.kneighbors()
    return indices, distances


def _knn_pynndescent(points, n_neighbors, n_jobs, random_state):
    """Approximate k nearest neighbours of every point among the others."""
    from pynndescent import NNDescent  # lazy: pulls in numba, compiles

    index = NNDescent(
        points,
        metric="euclidean",
        n_neighbors=n_neighbors + 1,  # the neighbour graph includes the point
        random_state=random_state,
        n_jobs=n_jobs,
        low_memory=True,
        verbose=False,
    )
    indices, _ = index.neighbor_graph
    # Only the graph is kept: a fitted NNDescent segfaults when loaded with
    # ``joblib.load(..., mmap_mode="r")``.
    del index
    indices = np.asarray(indices, dtype=np.int64)
    # Drop each point from its own list. With duplicates the point itself need
    # not come first, so drop its first occurrence wherever it is, and the
    # last (farthest) column where it is missing.
    n = indices.shape[0]
    is_self = indices == np.arange(n)[:, None]
    drop = is_self & (np.cumsum(is_self, axis=1) == 1)
    drop[~drop.any(axis=1), -1] = True
    keep = ~drop
    indices = indices[keep].reshape(n, n_neighbors)
    # pynndescent computes in float32 and may leave unfilled slots (-1):
    # recompute the distances in float64 so edge weights are exact.
    safe = np.where(indices >= 0, indices, 0)
    distances = np.empty(indices.shape)
    for start in range(0, n, 4096):
        rows = slice(start, start + 4096)
        diff = points[safe[rows]] - points[rows, None, :]
        distances[rows] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    distances[indices < 0] = np.inf
    return indices, distances


def _symmetric_knn_graph(indices, distances, n_nodes):
    """Undirected CSR graph from neighbour lists, keeping zero-length edges."""
    rows = np.repeat(np.arange(n_nodes), indices.shape[1])
    cols = indices.ravel()
    weights = np.asarray(distances, dtype=np.float64).ravel()
    valid = (cols >= 0) & (cols != rows) & np.isfinite(weights)
    rows, cols, weights = rows[valid], cols[valid], weights[valid]
    # Explicit zeros (duplicate nodes) would vanish under ``maximum``:
    # give them the smallest positive weight, which adds nothing to any sum
    # of real edge lengths.
    weights = np.maximum(weights, np.finfo(np.float64).tiny)
    graph = sp.csr_matrix((weights, (rows, cols)), shape=(n_nodes, n_nodes))
    graph = graph.maximum(graph.T).tocsr()
    graph.sort_indices()
    graph.indices = graph.indices.astype(np.int32, copy=False)
    graph.indptr = graph.indptr.astype(np.int32, copy=False)
    return graph


def _resolve_neighbors(method, n_nodes, n_dims):
    """The neighbour method ``"auto"`` picks for a graph of this size."""
    if method != "auto":
        return method
    if n_dims <= _TREE_MAX_DIM or n_nodes <= _EXACT_MAX_NODES:
        return "exact"
    return "pynndescent"


def _check_edge_power(edge_power, lengths, n_nodes):
    """Refuse an ``edge_power`` whose path costs float64 cannot represent.

    ``length ** edge_power`` of the graph's edges must stay a normal positive
    float (no underflow to 0, which made every geodesic distance 0 at
    ``edge_power=1e3``) and a path of ``n_nodes`` of them must not overflow.
    """
    finfo = np.finfo(np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    lengths = lengths[(lengths > finfo.tiny) & (lengths != 1.0)]  # tiny: duplicate nodes
    if lengths.size == 0 or edge_power == 1:
        return
    logs = np.log(lengths)
    bound = np.where(logs < 0, np.log(finfo.tiny), np.log(finfo.max / max(1, n_nodes)))
    limit = float(np.min(bound / logs))
    if edge_power > limit:
        short, long_ = float(lengths.min()), float(lengths.max())
        raise ValueError(
            f"edge_power={edge_power!r} is too large for this graph: its edge lengths "
            f"range from {short:.3g} to {long_:.3g}, and length ** edge_power would "
            "underflow to 0 or overflow in double precision, so every path would cost 0 "
            f"(or inf). Use edge_power at most {limit:.3g} here."
        )


def _resample_polyline(points, n_points):
    """``n_points`` points at equal arc length along a polyline, ends included."""
    points = np.asarray(points, dtype=np.float64)
    segments = np.sqrt(np.sum(np.diff(points, axis=0) ** 2, axis=1))
    cumulative = np.concatenate([[0.0], np.cumsum(segments)])
    total = cumulative[-1]
    if points.shape[0] < 2 or total == 0:
        return np.repeat(points[:1], n_points, axis=0)
    targets = np.linspace(0.0, total, n_points)
    # The last segment starting at or before each target: skips zero-length ones.
    seg = np.clip(np.searchsorted(cumulative, targets, side="right") - 1, 0, len(segments) - 1)
    frac = (targets - cumulative[seg]) / np.where(segments[seg] > 0, segments[seg], 1.0)
    out = points[seg] + np.clip(frac, 0.0, 1.0)[:, None] * (points[seg + 1] - points[seg])
    out[0], out[-1] = points[0], points[-1]
    return out


def _vae_step(estimator):
    """The VAE at the end of (possibly nested) pipelines, and its parameter prefix."""
    prefix = ""
    while isinstance(estimator, Pipeline):
        name, estimator = estimator.steps[-1]
        prefix += f"{name}__"
    return estimator, prefix


def _steps_without_inverse(pipeline):
    """Names of the steps before the VAE that have no ``inverse_transform``."""
    missing = [
        name
        for name, step in pipeline.steps[:-1]
        if step is not None
        and not (isinstance(step, str) and step == "passthrough")
        and not hasattr(step, "inverse_transform")
    ]
    name, last = pipeline.steps[-1]
    if isinstance(last, Pipeline):
        missing += [f"{name}__{inner}" for inner in _steps_without_inverse(last)]
    return missing


_VAE_METHODS = ["fit", "transform", "inverse_transform", "sample_latent"]


def _euclidean(a, b):
    """Euclidean distances between the rows of ``a`` and ``b`` (exact zeros)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty((a.shape[0], b.shape[0]))
    for i, row in enumerate(a):
        diff = b - row
        out[i] = np.sqrt(np.einsum("jk,jk->j", diff, diff))
    return out


class ManifoldInterpolator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Interpolate along the latent manifold learned by a VAE.

    Implements the graph-based interpolation of Klushyn et al. (2019,
    Sec. 2.3): ``n_nodes`` latent points are drawn from the learned prior
    (paper Eq. 14), joined into an undirected k-nearest-neighbour graph with
    Euclidean edge weights, and two data points are interpolated by encoding
    them, linking the codes to their nearest graph nodes and decoding the
    shortest path between them (by default with squared edge lengths as
    path costs, see ``edge_power``). With a hierarchical prior the graph follows
    the data's topology, so the decoded path changes smoothly where a straight
    line in latent space would cross regions the decoder never saw.

    Parameters
    ----------
    estimator : estimator object or Pipeline, default=None
        A VAE with ``fit``, ``transform`` (posterior means),
        ``inverse_transform`` (decoder means) and ``sample_latent`` (draws
        from the learned prior), such as
        :class:`~sklearn_vhp.VHPEstimator`, or a
        :class:`~sklearn.pipeline.Pipeline` whose last step is such a VAE
        (e.g. ``make_pipeline(MinMaxScaler(), VHPEstimator())``). ``None``
        means ``VHPEstimator()`` with its defaults.

        With a pipeline, samples (``X``, the end points of
        :meth:`interpolate`) go through the steps before the VAE, the graph's
        nodes are the VAE's prior samples, and decoded points come back in the
        units of ``X`` through those steps' ``inverse_transform``, applied in
        reverse order. If a step has no ``inverse_transform`` (e.g.
        :class:`~sklearn.preprocessing.PolynomialFeatures`), :meth:`fit`
        warns and decoded points stay in the space the VAE sees (the output
        of the steps before it); encoding, the graph and
        :meth:`geodesic_distances` are unaffected.
    prefit : bool, default=False
        Whether ``estimator`` (with a pipeline: all its steps) is already
        fitted. If ``True`` it is copied, not refitted, and :meth:`fit` only
        builds the graph; ``X`` then serves to check the number of features.
    n_nodes : int, default=1000
        Number of latent samples drawn from the prior as graph nodes. More
        nodes give shorter, finer paths at the cost of a larger graph.
    n_neighbors : int, default=18
        Neighbours per node in the kNN graph, and graph nodes each encoded
        end point is linked to. Raise it (or ``n_nodes``) if the graph falls
        apart into several components.
    neighbors : {"auto", "exact", "pynndescent"}, default="auto"
        How the neighbour graph is built. ``"exact"`` uses
        :class:`~sklearn.neighbors.NearestNeighbors` (a k-d tree in up to four
        dimensions, brute force above); ``"pynndescent"`` uses approximate
        nearest-neighbour descent, which costs 20-40 s of numba compilation
        in each new process but scales to large graphs. ``"auto"`` uses
        exact neighbours in up to four latent dimensions or up to 70,000
        nodes, pynndescent otherwise (the switch point measured by
        ``benchmarks/graph.py``).
    edge_power : float, default=2.0
        Shortest paths minimise the sum of ``‖Δz‖ ** edge_power`` over their
        edges. ``1`` is the paper's Euclidean shortest path. Larger powers
        make long hops expensive, so paths take many short hops through
        densely sampled regions of the prior instead of cutting across a
        sparse one (power-weighted shortest paths; Alamgir & von Luxburg,
        2012). The default 2 is a deviation from the paper: on pendulum
        models where a few prior samples sit between two arcs of the latent
        ring, Euclidean paths cut across them (per-frame turns up to 38°)
        and squared ones do not (≤ 7°). ``graph_`` keeps Euclidean distances
        either way.
    n_jobs : int, default=None
        Parallel jobs for the neighbour search. ``None`` means 1 for
        scikit-learn's search and pynndescent's own default (numba's threads)
        for pynndescent.
    random_state : int, RandomState instance or None, default=None
        Seeds the prior samples and pynndescent's random projections. It does
        not seed the wrapped estimator: set that estimator's own
        ``random_state`` for a reproducible fit.

    Attributes
    ----------
    estimator_ : estimator object or Pipeline
        The fitted VAE (or pipeline): a clone of ``estimator`` fitted on
        ``X``, or a copy of it when ``prefit=True``.
    nodes_ : ndarray of shape (n_nodes, n_components)
        Latent samples from the learned prior: the graph's nodes.
    graph_ : scipy.sparse.csr_matrix of shape (n_nodes, n_nodes)
        Symmetric adjacency matrix; entry ``(i, j)`` is the Euclidean distance
        between nodes ``i`` and ``j`` when they are neighbours. Duplicate
        nodes are joined by an edge of weight ``numpy.finfo(float).tiny``.
    neighbors_ : str
        The neighbour method used, ``"exact"`` or ``"pynndescent"``.
    n_connected_components_ : int
        Connected components of ``graph_``; interpolation works only within
        one.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has feature
        names that are all strings.

    See Also
    --------
    sklearn_vhp.VHPEstimator : The VAE with a hierarchical prior.
    sklearn_vhp.metrics.smoothness_factor : Compares interpolation paths.

    References
    ----------
    .. [1] A. Klushyn, N. Chen, R. Kurle, B. Cseke, P. van der Smagt.
       "Learning Hierarchical Priors in VAEs". NeurIPS 2019.

    Examples
    --------
    >>> from sklearn_vhp import VHPEstimator, ManifoldInterpolator
    >>> from sklearn_vhp.datasets import make_pendulum
    >>> X, angles = make_pendulum(n_samples=200, random_state=0)
    >>> vae = VHPEstimator(hidden_layer_sizes=(16,), max_iter=2, random_state=0)
    >>> interp = ManifoldInterpolator(vae, n_nodes=200, random_state=0).fit(X)
    >>> path = interp.interpolate(X[0], X[1])
    >>> path.decoded.shape[1]
    256
    >>> int(path.nodes[0]), int(path.nodes[-1])
    (-1, -1)
    """

    _parameter_constraints: dict = {
        # A pipeline's last step is checked in fit.
        "estimator": [HasMethods(_VAE_METHODS), Pipeline, None],
        "prefit": ["boolean"],
        "n_nodes": [Interval(Integral, 2, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "neighbors": [StrOptions({"auto", "exact", "pynndescent"})],
        "edge_power": [Interval(Real, 0, None, closed="neither")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        prefit=False,
        n_nodes=1000,
        n_neighbors=18,
        neighbors="auto",
        edge_power=2.0,
        n_jobs=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.prefit = prefit
        self.n_nodes = n_nodes
        self.n_neighbors = n_neighbors
        self.neighbors = neighbors
        self.edge_power = edge_power
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _get_estimator(self):
        if self.estimator is not None:
            return self.estimator
        from ._estimator import VHPEstimator  # lazy: avoids an import cycle

        return VHPEstimator()

    @_fit_context(
        # The wrapped estimator validates its own parameters when fitted.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None):
        """Fit the VAE (unless prefit), sample graph nodes and build the graph.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data for the wrapped estimator.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted interpolator.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        vae, vae_prefix = _vae_step(self._get_estimator())
        if not HasMethods(_VAE_METHODS).is_satisfied_by(vae):
            raise InvalidParameterError(
                "The last step of the pipeline given as the 'estimator' parameter of "
                f"ManifoldInterpolator must be {HasMethods(_VAE_METHODS)} (a VAE such as "
                f"VHPEstimator). Got {vae!r} instead."
            )
        if self.prefit:
            if self.estimator is None:
                raise ValueError("prefit=True needs a fitted estimator; got estimator=None.")
            try:
                check_is_fitted(vae)
            except NotFittedError as exc:
                raise NotFittedError(
                    "prefit=True but the estimator is not fitted; fit it first or use prefit=False."
                ) from exc
            estimator = deepcopy(self.estimator)
            n_expected = getattr(estimator, "n_features_in_", X.shape[1])
            if n_expected != X.shape[1]:
                raise ValueError(
                    f"X has {X.shape[1]} features, but the prefit estimator "
                    f"was fitted with {n_expected} features."
                )
        rng = check_random_state(self.random_state)
        if not self.prefit:
            estimator = clone(self._get_estimator())
            # As sklearn's ensembles do: an unseeded VAE takes its seed from
            # this random_state, so the whole interpolator is reproducible.
            if _vae_step(estimator)[0].get_params().get("random_state", 0) is None:
                seed = rng.randint(np.iinfo(np.int32).max)
                estimator.set_params(**{f"{vae_prefix}random_state": seed})
            estimator.fit(X)
        self.estimator_ = estimator
        if isinstance(estimator, Pipeline):
            missing = _steps_without_inverse(estimator)
            if missing:
                warnings.warn(
                    f"The pipeline's step(s) {missing} have no inverse_transform: decoded "
                    "points (InterpolationPath.decoded, inverse_transform) are in the space "
                    "the VAE sees, the output of the steps before it, not in the units of X.",
                    UserWarning,
                    stacklevel=2,
                )

        nodes = _vae_step(estimator)[0].sample_latent(
            self.n_nodes, random_state=rng.randint(np.iinfo(np.int32).max)
        )
        nodes = np.ascontiguousarray(nodes, dtype=np.float64)
        if nodes.ndim != 2 or nodes.shape[0] != self.n_nodes:
            raise ValueError(
                "estimator.sample_latent(n) must return an array of shape "
                f"(n, n_components); got shape {nodes.shape} for n={self.n_nodes}."
            )
        if not np.all(np.isfinite(nodes)):
            raise ValueError("The prior samples contain NaN or infinity.")

        n_neighbors = min(self.n_neighbors, self.n_nodes - 1)
        method = _resolve_neighbors(self.neighbors, self.n_nodes, nodes.shape[1])
        if method == "exact":
            indices, distances = _knn_exact(nodes, n_neighbors, self.n_jobs)
        else:
            indices, distances = _knn_pynndescent(
                nodes,
                n_neighbors,
                self.n_jobs,
                rng.randint(np.iinfo(np.int32).max),
            )
        graph = _symmetric_knn_graph(indices, distances, self.n_nodes)
        _check_edge_power(self.edge_power, graph.data, self.n_nodes)
        self.nodes_ = nodes
        self.graph_ = graph
        # What the graph was built with: read by every method after fit
        # (parameters changed later do not apply to this graph).
        self._fitted_settings = {"edge_power": self.edge_power, "n_neighbors": self.n_neighbors}
        self.neighbors_ = method
        self.n_connected_components_ = int(
            connected_components(self.graph_, directed=False, return_labels=False)
        )
        return self

    def transform(self, X):
        """Encode ``X`` to latent codes (posterior means of the estimator).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Latent codes, in the floating dtype of ``X``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.estimator_.transform(self._for_estimator(X))

    def inverse_transform(self, Z):
        """Decode latent codes to data space (decoder means).

        With a pipeline as ``estimator``, the VAE's decoder means go back
        through the ``inverse_transform`` of the steps before it, in reverse
        order, so that they are in the units of ``X``; if one of those steps
        has none, they stay in the space the VAE sees (:meth:`fit` warned).

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_components)
            Latent codes.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Decoded data: ``n_features_in_`` columns, except for a pipeline
            whose steps cannot all be inverted.
        """
        check_is_fitted(self)
        return self._decode(Z)

    def _decode(self, Z):
        if hasattr(self.estimator_, "inverse_transform"):  # a pipeline: all steps invertible
            return np.asarray(self.estimator_.inverse_transform(Z))
        return np.asarray(_vae_step(self.estimator_)[0].inverse_transform(Z))

    def _estimator_has_score(self):
        return hasattr(self._get_estimator(), "score")

    @available_if(_estimator_has_score)
    def score(self, X, y=None):
        """The wrapped estimator's score: for a VAE, the held-out log-likelihood.

        Lets :class:`~sklearn.model_selection.GridSearchCV` select the VAE's
        parameters (``estimator__...``) without a ``scoring`` argument.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            ``estimator_.score(X)``: for :class:`~sklearn_vhp.VHPEstimator`
            (and a pipeline ending with it) the mean ``log p(x)`` in nats, in
            the space the VAE sees.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return float(self.estimator_.score(self._for_estimator(X)))

    @property
    def _n_features_out(self):
        return self.nodes_.shape[1]

    def _setting(self, name):
        """A setting of the fitted graph (the parameter, for older pickles)."""
        return getattr(self, "_fitted_settings", {}).get(name, getattr(self, name))

    def _for_estimator(self, X):
        """Validated rows as the wrapped estimator was fitted: with its feature
        names when it has them, so that it does not warn about their absence."""
        names = getattr(self.estimator_, "feature_names_in_", None)
        if names is None or len(names) != X.shape[1]:
            return X
        import pandas as pd  # the estimator was fitted on a DataFrame

        return pd.DataFrame(X, columns=names, copy=False)

    def _encode_points(self, X, name):
        if np.ndim(X) == 1:
            if hasattr(X, "to_frame"):  # a pandas Series: one row, named by its index
                X = X.to_frame().T
            else:
                X = np.asarray(X).reshape(1, -1)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        if name is not None and X.shape[0] != 1:
            raise ValueError(
                f"{name} must be a single sample (a 1-D array or one row); got {X.shape[0]} rows."
            )
        return np.asarray(self.estimator_.transform(self._for_estimator(X)))

    def _link(self, z):
        """Nearest graph nodes of each latent point: (indices, distances)."""
        k = min(self._setting("n_neighbors"), self.nodes_.shape[0])
        dist = _euclidean(z, self.nodes_)
        idx = np.argpartition(dist, k - 1, axis=1)[:, :k]
        d = np.take_along_axis(dist, idx, axis=1)
        order = np.argsort(d, axis=1, kind="stable")
        return np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)

    def _search(self, z_from, link_idx, link_dist):
        """Dijkstra from extra source nodes linked to the graph.

        Returns distances (n_sources, n_nodes) and predecessors with the
        source rows marked by index ``n_nodes + s``.
        """
        graph = self.graph_
        n = graph.shape[0]
        m = z_from.shape[0]
        k = link_idx.shape[1]
        # Append one row per source with directed edges into the graph; the
        # stored graph is symmetric, so a directed search is exact.
        weights = np.maximum(self._cost(link_dist), np.finfo(np.float64).tiny)
        indptr = np.concatenate(
            [
                np.asarray(graph.indptr, dtype=np.int64),
                graph.nnz + k * np.arange(1, m + 1, dtype=np.int64),
            ]
        )
        indices = np.concatenate([np.asarray(graph.indices, dtype=np.int64), link_idx.ravel()])
        data = np.concatenate(
            [self._cost(np.asarray(graph.data, dtype=np.float64)), weights.ravel()]
        )
        augmented = sp.csr_matrix((data, indices, indptr), shape=(n + m, n + m))
        dist, pred = dijkstra(
            augmented,
            directed=True,
            indices=np.arange(n, n + m),
            return_predecessors=True,
        )
        return dist[:, :n], pred

    def _cost(self, lengths):
        """Path cost of edges of these Euclidean lengths (``length ** edge_power``)."""
        power = self._setting("edge_power")
        return lengths if power == 1 else lengths**power

    def _geodesic(self, z_from, z_to):
        """Graph path costs and the best final hop between two sets of codes."""
        src_idx, src_dist = self._link(z_from)
        dst_idx, dst_dist = self._link(z_to)
        dist, pred = self._search(z_from, src_idx, src_dist)
        # Cost through each linked node of the target: (m, p, k).
        via = dist[:, dst_idx] + self._cost(dst_dist)[None, :, :]
        best_k = np.argmin(via, axis=2)
        geo = np.take_along_axis(via, best_k[:, :, None], axis=2)[:, :, 0]
        last = dst_idx[np.arange(dst_idx.shape[0])[None, :], best_k]
        # A direct edge when the two codes are neighbours of each other.
        direct = _euclidean(z_from, z_to)
        reach = np.maximum(src_dist[:, -1][:, None], dst_dist[:, -1][None, :])
        use_direct = (direct <= reach) & (self._cost(direct) <= geo)
        geo = np.where(use_direct, self._cost(direct), geo)
        last = np.where(use_direct, -1, last)
        return geo, last, pred

    def _disconnected_error(self, what):
        return ValueError(
            f"{what} are not connected in the latent k-nearest-neighbour graph "
            f"({self.n_connected_components_} connected components with "
            f"n_neighbors={self._setting('n_neighbors')}, n_nodes={self.nodes_.shape[0]}). "
            "Increase "
            "n_neighbors or n_nodes so that the graph covers the path."
        )

    def interpolate(self, x_start, x_end, *, n_frames=None, spacing=None):
        """Shortest path through the latent graph between two samples.

        Both samples are encoded (posterior means), added to the graph as
        nodes linked to their ``n_neighbors`` nearest graph nodes (and to each
        other when they are that close), and the shortest path between them is
        found with Dijkstra's algorithm and decoded.

        By default the path is the paper's: the end points and the graph
        nodes in between, one point per node. Where the prior's samples are
        dense its steps are tiny, and between two clusters of the prior there
        is one long hop, so as an animation it stalls, then jumps. With
        ``n_frames`` or ``spacing`` the same path is resampled at equal arc
        length in latent space and every resampled point is decoded: frames
        at even steps along the manifold. A long hop between two clusters
        then spreads over several frames, but stays a hop across a region the
        prior does not cover (see the :ref:`interpolation guide
        <interpolation>`).

        Parameters
        ----------
        x_start : array-like of shape (n_features,) or (1, n_features)
            Sample where the path starts.
        x_end : array-like of shape (n_features,) or (1, n_features)
            Sample where the path ends.
        n_frames : int, default=None
            Resample the path at this many points (at least 2, the end points
            included) at equal latent arc length.
        spacing : float, default=None
            Resample the path at equal latent arc length, with consecutive
            points at most ``spacing`` apart along the path:
            ``ceil(length / spacing) + 1`` points. At most one of
            ``n_frames`` and ``spacing`` may be given; with neither, the
            path is node to node.

        Returns
        -------
        path : InterpolationPath
            ``latent`` (points on the path), ``nodes`` (graph node indices,
            ``-1`` for the two end points and for resampled points),
            ``decoded`` (their decoder means) and ``length`` (sum of the graph
            path's Euclidean edge lengths in latent space).

        Raises
        ------
        ValueError
            If the two end points lie in different connected components of the
            graph; more neighbours or nodes fix that.
        """
        check_is_fitted(self)
        validate_parameter_constraints(
            {
                "n_frames": [Interval(Integral, 2, None, closed="left"), None],
                "spacing": [Interval(Real, 0, None, closed="neither"), None],
            },
            {"n_frames": n_frames, "spacing": spacing},
            caller_name="ManifoldInterpolator.interpolate",
        )
        if n_frames is not None and spacing is not None:
            raise ValueError(
                "Give at most one of n_frames and spacing; got "
                f"n_frames={n_frames!r} and spacing={spacing!r}."
            )
        z_start = self._encode_points(x_start, "x_start")
        z_end = self._encode_points(x_end, "x_end")
        geo, last, pred = self._geodesic(z_start, z_end)
        if not np.isfinite(geo[0, 0]):
            raise self._disconnected_error("The two end points")
        n = self.nodes_.shape[0]
        hops = []
        node = int(last[0, 0])
        while 0 <= node < n:
            hops.append(node)
            node = int(pred[0, node])
        hops.reverse()
        nodes = np.array([-1, *hops, -1], dtype=np.int64)
        dtype = z_start.dtype if z_start.dtype.kind == "f" else np.float64
        latent = np.concatenate(
            [z_start, self.nodes_[np.asarray(hops, dtype=np.intp)], z_end]
        ).astype(dtype, copy=False)
        steps = np.diff(latent.astype(np.float64), axis=0)
        length = float(np.sum(np.sqrt(np.sum(steps**2, axis=1))))
        if spacing is not None:
            n_frames = max(2, math.ceil(length / spacing) + 1)
        if n_frames is not None:
            latent = _resample_polyline(latent, n_frames).astype(dtype, copy=False)
            nodes = np.full(n_frames, -1, dtype=np.int64)
        decoded = self._decode(latent)
        return InterpolationPath(latent=latent, nodes=nodes, decoded=decoded, length=length)

    def geodesic_distances(self, X, Y=None):
        """Lengths of the shortest graph paths between encoded samples.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
            Samples where paths start.
        Y : array-like of shape (n_samples_Y, n_features), default=None
            Samples where paths end; ``None`` means ``X``.

        Returns
        -------
        distances : ndarray of shape (n_samples_X, n_samples_Y)
            Path costs: the sum of ``‖Δz‖ ** edge_power`` over each shortest
            path's edges, which for ``edge_power=1`` is the latent length that
            :meth:`interpolate` reports; ``inf`` between samples in different
            connected components.
        """
        check_is_fitted(self)
        z_x = self._encode_points(X, None)
        z_y = z_x if Y is None else self._encode_points(Y, None)
        # One Dijkstra run per row of X; bound the (rows, nodes) and
        # (rows, n_samples_Y, n_neighbors) work arrays to ~2**24 floats.
        width = max(self.nodes_.shape[0], z_y.shape[0] * self._setting("n_neighbors"))
        chunk = max(1, _GEODESIC_BLOCK // width)
        out = np.empty((z_x.shape[0], z_y.shape[0]))
        for start in range(0, z_x.shape[0], chunk):
            rows = slice(start, start + chunk)
            out[rows] = self._geodesic(z_x[rows], z_y)[0]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __getstate__(self):
        # The graph as plain arrays: skops.io then trusts nothing but this
        # package's types (it does not trust scipy.sparse matrices by default).
        state = dict(super().__getstate__())
        graph = state.get("graph_")
        if sp.issparse(graph):
            state["graph_"] = {
                "data": graph.data,
                "indices": graph.indices,
                "indptr": graph.indptr,
                "shape": tuple(int(n) for n in graph.shape),
            }
        return state

    def __setstate__(self, state):
        state = dict(state)
        graph = state.get("graph_")
        if isinstance(graph, dict):
            state["graph_"] = sp.csr_matrix(
                (graph["data"], graph["indices"], graph["indptr"]), shape=tuple(graph["shape"])
            )
        super().__setstate__(state)
