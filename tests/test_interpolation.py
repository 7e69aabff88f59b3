"""Tests of ManifoldInterpolator: graph, paths, pickling, lazy imports, checks."""

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse.csgraph import dijkstra
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import (
    check_set_output_transform,
    check_transformer_get_feature_names_out,
    parametrize_with_checks,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from sklearn_vhp import ManifoldInterpolator, VHPEstimator
from sklearn_vhp._interpolation import (
    _EXACT_MAX_NODES,
    _TREE_MAX_DIM,
    InterpolationPath,
    _knn_exact,
    _resolve_neighbors,
    _symmetric_knn_graph,
)
from sklearn_vhp.datasets import make_pendulum
from sklearn_vhp.datasets._pendulum import render_pendulum
from sklearn_vhp.metrics import smoothness_factor

TINY = dict(
    hidden_layer_sizes=(16,),
    max_iter=2,
    n_importance=4,
    n_eval_samples=16,
    batch_size=32,
    random_state=0,
)


class _IdentityVAE(TransformerMixin, BaseEstimator):
    """Stand-in VAE whose latent space is the data space.

    ``sample_latent`` returns rows of ``points`` (cycled), so a test decides
    exactly where the graph's nodes are.
    """

    def __init__(self, points=None):
        self.points = points

    def fit(self, X, y=None):
        X = validate_data(self, X)
        self.n_components = X.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32])

    def inverse_transform(self, Z):
        return np.asarray(Z)

    def sample_latent(self, n_samples=1, random_state=None):
        points = np.asarray(self.points, dtype=np.float64)
        return points[np.arange(n_samples) % len(points)]


@pytest.fixture(scope="module")
def pendulum():
    X, angles = make_pendulum(n_samples=200, random_state=0)
    return X, angles


@pytest.fixture(scope="module")
def fitted(pendulum):
    X, _ = pendulum
    # The paper's Euclidean path costs; edge_power=2 (the default) is tested separately.
    return ManifoldInterpolator(
        VHPEstimator(**TINY), n_nodes=300, n_neighbors=10, edge_power=1.0, random_state=0
    ).fit(X)


# --------------------------------------------------------------------- graph


def test_graph_is_undirected_with_euclidean_weights(fitted):
    G = fitted.graph_
    assert sp.issparse(G) and G.format == "csr"
    assert G.shape == (fitted.n_nodes, fitted.n_nodes)
    assert abs(G - G.T).max() == 0
    assert G.diagonal().max() == 0
    rows, cols = G.nonzero()
    expected = np.linalg.norm(fitted.nodes_[rows] - fitted.nodes_[cols], axis=1)
    assert_allclose(G[rows, cols].A1, expected, rtol=1e-12)
    # Every node keeps at least its n_neighbors out-edges.
    assert np.diff(G.indptr).min() >= fitted.n_neighbors
    assert fitted.neighbors_ == "exact"
    assert fitted.nodes_.shape == (fitted.n_nodes, fitted.estimator_.n_components)


@pytest.mark.parametrize("neighbors", ["exact", "pynndescent"])
def test_zero_distance_duplicates_stay_linked(neighbors):
    rng = np.random.RandomState(0)
    base = rng.normal(size=(60, 3))
    points = np.concatenate([base, base[:10]])  # 10 exact duplicates
    interp = ManifoldInterpolator(
        _IdentityVAE(points),
        n_nodes=len(points),
        n_neighbors=5,
        neighbors=neighbors,
        random_state=0,
    ).fit(base)
    G = interp.graph_
    for i in range(10):
        assert G[i, 60 + i] > 0 and G[60 + i, i] > 0
        assert G[i, 60 + i] < 1e-300
    # A path between two duplicates has length zero.
    path = interp.interpolate(base[3], base[3])
    assert path.length == 0.0


# pynndescent warns that it cannot fill k neighbours in such tiny sets; it does.
@pytest.mark.filterwarnings("ignore:Failed to correctly find n_neighbors")
@pytest.mark.parametrize("neighbors", ["exact", "pynndescent"])
@pytest.mark.parametrize("n_nodes", [2, 3, 7])
def test_tiny_graphs_with_more_neighbours_than_nodes(neighbors, n_nodes):
    points = np.random.RandomState(0).normal(size=(n_nodes, 3))
    interp = ManifoldInterpolator(
        _IdentityVAE(points), n_nodes=n_nodes, n_neighbors=18, neighbors=neighbors
    ).fit(points)
    # Complete graph: every pair of nodes is joined.
    assert interp.graph_.nnz == n_nodes * (n_nodes - 1)
    path = interp.interpolate(points[0] + 3, points[-1] - 3)
    assert path.nodes[0] == -1 and path.nodes[-1] == -1


def test_symmetric_graph_keeps_zero_edges_and_drops_missing():
    indices = np.array([[1, -1], [0, 2], [1, 0]])
    distances = np.array([[0.0, np.inf], [0.0, 1.0], [1.0, 2.0]])
    G = _symmetric_knn_graph(indices, distances, 3)
    assert G.nnz == 6  # 0-1 (zero length), 1-2, 0-2, both ways
    assert G[0, 1] > 0 and G[1, 0] > 0
    assert G[0, 2] == 2.0 and G[2, 0] == 2.0


def test_exact_knn_excludes_self_even_with_duplicates():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    indices, distances = _knn_exact(points, 2, None)
    for i in range(3):
        assert i not in indices[i]
        assert_array_equal(distances[i], 0.0)


def test_auto_switch_point():
    assert _resolve_neighbors("auto", 10_000, 32) == "exact"
    assert _resolve_neighbors("auto", _EXACT_MAX_NODES, 32) == "exact"
    assert _resolve_neighbors("auto", _EXACT_MAX_NODES + 1, 32) == "pynndescent"
    assert _resolve_neighbors("auto", 10**6, _TREE_MAX_DIM) == "exact"
    assert _resolve_neighbors("exact", 10**6, 32) == "exact"
    assert _resolve_neighbors("pynndescent", 10, 2) == "pynndescent"


# ---------------------------------------------------------------------- paths


def _brute_force_length(interp, z_start, z_end, power=1.0):
    """Shortest path on an explicitly augmented undirected graph (costs ‖Δz‖**power)."""
    nodes = np.vstack([interp.nodes_, z_start, z_end])
    n = interp.nodes_.shape[0]
    k = interp.n_neighbors
    G = sp.lil_matrix((n + 2, n + 2))
    G[:n, :n] = interp.graph_.power(power)
    radius = []
    for s, z in ((n, z_start), (n + 1, z_end)):
        d = np.linalg.norm(interp.nodes_ - z, axis=1)
        near = np.argsort(d)[:k]
        radius.append(d[near[-1]])
        for j in near:
            G[s, j] = G[j, s] = max(d[j] ** power, 1e-300)
    direct = np.linalg.norm(z_start - z_end)
    if direct <= max(radius):
        G[n, n + 1] = G[n + 1, n] = max(direct**power, 1e-300)
    dist = dijkstra(G.tocsr(), directed=False, indices=n)
    return dist[n + 1], nodes


def test_interpolate_path_structure(fitted, pendulum):
    X, _ = pendulum
    path = fitted.interpolate(X[0], X[1])
    assert isinstance(path, InterpolationPath)
    n_points = len(path.nodes)
    assert path.latent.shape == (n_points, fitted.estimator_.n_components)
    assert path.decoded.shape == (n_points, X.shape[1])
    assert path.nodes[0] == -1 and path.nodes[-1] == -1
    assert np.all(path.nodes[1:-1] >= 0)
    assert len(set(path.nodes[1:-1])) == n_points - 2
    Z = fitted.transform(X[:2])
    assert_allclose(path.latent[0], Z[0])
    assert_allclose(path.latent[-1], Z[1])
    assert_allclose(path.latent[1:-1], fitted.nodes_[path.nodes[1:-1]])
    assert_allclose(path.decoded, fitted.estimator_.inverse_transform(path.latent))
    # Interior hops are graph edges.
    for a, b in zip(path.nodes[1:-2], path.nodes[2:-1]):
        assert fitted.graph_[a, b] > 0


def test_length_is_sum_of_edges_and_shortest(fitted, pendulum):
    X, _ = pendulum
    Z = fitted.transform(X[:6])
    for i, j in [(0, 1), (2, 3), (4, 5), (0, 5)]:
        path = fitted.interpolate(X[i], X[j])
        edges = np.linalg.norm(np.diff(path.latent, axis=0), axis=1)
        assert path.length == pytest.approx(edges.sum(), rel=1e-12)
        expected, _ = _brute_force_length(fitted, Z[i], Z[j])
        assert path.length == pytest.approx(expected, rel=1e-9)
    D = fitted.geodesic_distances(X[:3], X[3:6])
    assert D.shape == (3, 3)
    assert D[1, 0] == pytest.approx(fitted.interpolate(X[1], X[3]).length, rel=1e-12)
    D_self = fitted.geodesic_distances(X[:4])
    assert_allclose(np.diag(D_self), 0.0)
    assert_allclose(D_self, D_self.T, rtol=1e-9)


def test_edge_power_path_minimises_powered_cost(fitted, pendulum):
    """edge_power=2: paths minimise Σ‖Δz‖², found exactly; graph_ stays Euclidean."""
    X, _ = pendulum
    squared = clone(fitted).set_params(edge_power=2.0).fit(X)
    assert_allclose(squared.graph_.toarray(), fitted.graph_.toarray())
    Z = squared.transform(X[:6])
    hops = []
    for i, j in [(0, 1), (2, 3), (4, 5), (0, 5)]:
        path = squared.interpolate(X[i], X[j])
        edges = np.linalg.norm(np.diff(path.latent, axis=0), axis=1)
        assert path.length == pytest.approx(edges.sum(), rel=1e-12)  # still Euclidean
        expected, _ = _brute_force_length(squared, Z[i], Z[j], power=2.0)
        assert (edges**2).sum() == pytest.approx(expected, rel=1e-9)
        D = squared.geodesic_distances(X[[i]], X[[j]])
        assert D[0, 0] == pytest.approx(expected, rel=1e-9)
        hops.append((len(path.nodes), len(fitted.interpolate(X[i], X[j]).nodes)))
    # Squared costs favour more, shorter hops.
    assert sum(h2 for h2, _ in hops) >= sum(h1 for _, h1 in hops)


def test_geodesic_distances_in_blocks(fitted, pendulum, monkeypatch):
    X, _ = pendulum
    expected = fitted.geodesic_distances(X[:7], X[7:10])
    monkeypatch.setattr("sklearn_vhp._interpolation._GEODESIC_BLOCK", 1)
    assert_allclose(fitted.geodesic_distances(X[:7], X[7:10]), expected)


def test_interpolate_accepts_rows_and_rejects_batches(fitted, pendulum):
    X, _ = pendulum
    a = fitted.interpolate(X[0], X[1])
    b = fitted.interpolate(X[[0]], X[1:2].tolist())
    assert_array_equal(a.nodes, b.nodes)
    assert a.length == b.length
    with pytest.raises(ValueError, match="single sample"):
        fitted.interpolate(X[:2], X[2])
    with pytest.raises(ValueError, match="features"):
        fitted.interpolate(X[0, :10], X[1])


def test_neighbouring_end_points_are_joined_directly():
    points = np.random.RandomState(0).normal(size=(50, 2))
    interp = ManifoldInterpolator(_IdentityVAE(points), n_nodes=50, n_neighbors=4).fit(points)
    start, end = np.array([10.0, 10.0]), np.array([10.1, 10.0])
    path = interp.interpolate(start, end)
    assert_array_equal(path.nodes, [-1, -1])
    assert path.length == pytest.approx(0.1)


def test_disconnected_graph_error_names_the_fix():
    rng = np.random.RandomState(0)
    points = np.concatenate([rng.normal(size=(30, 2)), 100 + rng.normal(size=(30, 2))])
    interp = ManifoldInterpolator(_IdentityVAE(points), n_nodes=60, n_neighbors=3).fit(points)
    assert interp.n_connected_components_ >= 2
    with pytest.raises(ValueError, match="n_neighbors or n_nodes"):
        interp.interpolate(points[0], points[40])
    D = interp.geodesic_distances(points[[0]], points[[1, 40]])
    assert np.isfinite(D[0, 0]) and np.isinf(D[0, 1])


# -------------------------------------------------------------- fit variants


def test_prefit_uses_the_fitted_estimator(pendulum):
    X, _ = pendulum
    vae = VHPEstimator(**TINY).fit(X)
    interp = ManifoldInterpolator(vae, prefit=True, n_nodes=50, random_state=0).fit(X)
    assert interp.estimator_ is not vae
    assert_allclose(interp.transform(X[:5]), vae.transform(X[:5]))
    with pytest.raises(NotFittedError, match="prefit"):
        ManifoldInterpolator(VHPEstimator(**TINY), prefit=True).fit(X)
    with pytest.raises(ValueError, match="features"):
        ManifoldInterpolator(vae, prefit=True, n_nodes=50).fit(X[:, :10])


def test_random_state_makes_nodes_reproducible(pendulum):
    X, _ = pendulum
    vae = VHPEstimator(**TINY).fit(X)
    a = ManifoldInterpolator(vae, prefit=True, n_nodes=50, random_state=1).fit(X)
    b = ManifoldInterpolator(vae, prefit=True, n_nodes=50, random_state=1).fit(X)
    c = ManifoldInterpolator(vae, prefit=True, n_nodes=50, random_state=2).fit(X)
    assert_array_equal(a.nodes_, b.nodes_)
    assert not np.allclose(a.nodes_, c.nodes_)


def test_ends_a_pipeline(pendulum):
    X, _ = pendulum
    pipe = make_pipeline(
        FunctionTransformer(feature_names_out="one-to-one"),
        ManifoldInterpolator(VHPEstimator(**TINY), n_nodes=40, random_state=0),
    )
    Z = pipe.fit_transform(X)
    assert Z.shape == (X.shape[0], 2)
    assert_array_equal(
        pipe.get_feature_names_out(),
        ["manifoldinterpolator0", "manifoldinterpolator1"],
    )


def test_nested_params_reach_the_estimator(pendulum):
    X, _ = pendulum
    interp = ManifoldInterpolator(VHPEstimator(**TINY), n_nodes=40)
    interp.set_params(estimator__n_components=3)
    interp.fit(X)
    assert interp.nodes_.shape == (40, 3)
    assert clone(interp).get_params()["estimator__n_components"] == 3


# --------------------------------------------------------- pickling, imports


def test_joblib_mmap_roundtrip_with_pynndescent(pendulum, tmp_path):
    X, _ = pendulum
    interp = ManifoldInterpolator(
        VHPEstimator(**TINY),
        n_nodes=200,
        n_neighbors=8,
        neighbors="pynndescent",
        random_state=0,
    ).fit(X)
    assert interp.neighbors_ == "pynndescent"
    before = interp.interpolate(X[0], X[7])
    path = tmp_path / "interp.joblib"
    joblib.dump(interp, path)
    loaded = joblib.load(path, mmap_mode="r")
    after = loaded.interpolate(X[0], X[7])
    assert_array_equal(before.nodes, after.nodes)
    assert after.length == pytest.approx(before.length)
    assert_allclose(loaded.transform(X[:5]), interp.transform(X[:5]))
    # No live NNDescent object is kept anywhere in the fitted state.
    assert not any(type(v).__module__.startswith("pynndescent") for v in vars(interp).values())


def _run_python(code):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lazy_imports():
    _run_python(
        """
        import sys
        import sklearn_vhp
        from sklearn_vhp import ManifoldInterpolator
        import sklearn_vhp.plotting
        for name in ("numba", "pynndescent", "matplotlib"):
            assert name not in sys.modules, name
        import numpy as np
        from sklearn.decomposition import PCA
        # An exact graph never touches pynndescent.
        from sklearn_vhp._interpolation import _knn_exact, _symmetric_knn_graph
        idx, dist = _knn_exact(np.random.rand(100, 2), 5, None)
        _symmetric_knn_graph(idx, dist, 100)
        assert "pynndescent" not in sys.modules and "numba" not in sys.modules
        """
    )


# --------------------------------------------------------------- sklearn API


def _instances():
    yield ManifoldInterpolator(VHPEstimator(**TINY), n_nodes=30, n_neighbors=5, random_state=0)
    yield ManifoldInterpolator(
        VHPEstimator(**TINY),
        n_nodes=30,
        n_neighbors=5,
        neighbors="pynndescent",
        random_state=0,
    )


@parametrize_with_checks(list(_instances()))
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("instance", list(_instances()), ids=["exact", "pynndescent"])
def test_set_output_and_feature_names(instance):
    name = type(instance).__name__
    check_set_output_transform(name, instance)
    check_transformer_get_feature_names_out(name, clone(instance))


# ------------------------------------------------------------------- quality


def read_angles(frames, image_size=16):
    """Angle of each pendulum frame, read with a different renderer.

    Templates drawn with a thicker rod and a larger bob than
    ``make_pendulum``'s defaults, every 0.5 degrees; each frame takes the
    angle of the template with the highest cosine similarity.
    """
    grid = np.deg2rad(np.arange(0.0, 360.0, 0.5))
    templates = render_pendulum(
        grid, image_size=image_size, line_width=1.8, bob_radius=2.2, length=0.75
    )
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    frames = np.asarray(frames, dtype=np.float64)
    frames = frames / np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-12)
    return grid[np.argmax(frames @ templates.T, axis=1)]


def turning(angles):
    """Per-step turning (wrapped to (-pi, pi]) of a sequence of angles."""
    return np.angle(np.exp(1j * np.diff(angles)))


@pytest.mark.parametrize("line_width, bob_radius", [(1.0, 1.5), (2.0, 2.0), (3.0, 0.0)])
def test_angle_reader_reads_other_renderers(line_width, bob_radius):
    angles = np.random.RandomState(0).uniform(0, 2 * np.pi, 200)
    read = read_angles(render_pendulum(angles, line_width=line_width, bob_radius=bob_radius))
    err = np.abs(np.angle(np.exp(1j * (read - angles))))
    assert np.rad2deg(err).max() < 6


@pytest.mark.slow
@pytest.mark.parametrize("line_width, bob_radius", [(2.0, 2.0), (3.0, 0.0)])
def test_pendulum_paths_turn_smoothly_the_short_way(line_width, bob_radius):
    """Done-when criterion of the issue, with the default-fitted estimator.

    Trained on renderers other than ``make_pendulum``'s default, read with
    yet another one (:func:`read_angles`).
    """
    X, _ = make_pendulum(
        n_samples=15000, random_state=7, line_width=line_width, bob_radius=bob_radius
    )
    interp = ManifoldInterpolator(VHPEstimator(random_state=0), random_state=0).fit(X)
    rng = np.random.RandomState(1)
    for a, b in rng.uniform(0, 2 * np.pi, size=(20, 2)):
        ends = render_pendulum([a, b], line_width=line_width, bob_radius=bob_radius)
        path = interp.interpolate(ends[0], ends[1])
        steps = np.rad2deg(np.abs(turning(read_angles(path.decoded))))
        short_arc = np.rad2deg(abs(np.angle(np.exp(1j * (b - a)))))
        assert steps.max() <= 25
        assert steps.sum() <= short_arc + 20
        assert np.isfinite(smoothness_factor(path.decoded))


def test_unseeded_estimator_is_seeded_by_the_interpolator():
    """check_fit_idempotent failed for an unseeded inner VAE: it now takes its
    seed from the interpolator's random_state, as sklearn's ensembles do."""
    X = np.random.RandomState(0).rand(60, 6)
    unseeded = VHPEstimator(hidden_layer_sizes=(8,), max_iter=2)
    a = ManifoldInterpolator(unseeded, n_nodes=40, n_neighbors=5, random_state=0).fit(X)
    b = ManifoldInterpolator(unseeded, n_nodes=40, n_neighbors=5, random_state=0).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.nodes_, b.nodes_)
    assert unseeded.random_state is None  # the user's estimator is left alone
