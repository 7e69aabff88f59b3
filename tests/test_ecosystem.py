"""The estimators in the scikit-learn ecosystem: pandas output, feature names,
nested parameters, cloning, HTML display and a grid search on a dask cluster."""

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import estimator_html_repr
from sklearn.utils.validation import check_is_fitted
from test_interpolation import TINY  # the same tiny, fast model

from sklearn_vhp import ManifoldInterpolator, VHPEstimator


@pytest.fixture(scope="module")
def digits_frame():
    """120 digits in [0, 1] as a DataFrame with named pixel columns."""
    X = load_digits(as_frame=True).data.iloc[:120] / 16.0
    X.index = X.index + 1000  # a non-default index, to check it is kept
    return X


# ------------------------------------------------------------ pandas output
def test_vhp_set_output_pandas_columns_are_feature_names_out(digits_frame):
    vhp = VHPEstimator(n_components=3, **TINY).set_output(transform="pandas")
    Z = vhp.fit_transform(digits_frame)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == list(vhp.get_feature_names_out())
    assert list(Z.columns) == ["vhpestimator0", "vhpestimator1", "vhpestimator2"]
    assert Z.index.equals(digits_frame.index)
    Z2 = vhp.transform(digits_frame)
    assert isinstance(Z2, pd.DataFrame)
    np.testing.assert_allclose(Z2.to_numpy(), Z.to_numpy())


def test_dataframe_input_keeps_feature_names_in(digits_frame):
    vhp = VHPEstimator(**TINY).fit(digits_frame)
    np.testing.assert_array_equal(vhp.feature_names_in_, digits_frame.columns.to_numpy())
    assert vhp.n_features_in_ == digits_frame.shape[1]
    # Columns in another order are refused, as by every scikit-learn estimator.
    with pytest.raises(ValueError, match="feature names"):
        vhp.transform(digits_frame[digits_frame.columns[::-1]])


def test_global_pandas_output_config(digits_frame):
    with config_context(transform_output="pandas"):
        Z = VHPEstimator(**TINY).fit_transform(digits_frame)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == ["vhpestimator0", "vhpestimator1"]


def test_pipeline_set_output_pandas(digits_frame):
    pipe = make_pipeline(MinMaxScaler(), VHPEstimator(**TINY)).set_output(transform="pandas")
    Z = pipe.fit_transform(digits_frame)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == list(pipe.get_feature_names_out())
    assert list(Z.columns) == ["vhpestimator0", "vhpestimator1"]
    # The scaler hands a DataFrame on: the VAE sees the pixel names.
    np.testing.assert_array_equal(pipe[-1].feature_names_in_, digits_frame.columns.to_numpy())


def test_manifold_interpolator_set_output_pandas(digits_frame):
    interp = ManifoldInterpolator(VHPEstimator(**TINY), n_nodes=40, n_neighbors=5, random_state=0)
    interp.set_output(transform="pandas")
    Z = interp.fit_transform(digits_frame)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == list(interp.get_feature_names_out())
    assert list(Z.columns) == ["manifoldinterpolator0", "manifoldinterpolator1"]
    np.testing.assert_array_equal(interp.feature_names_in_, digits_frame.columns.to_numpy())
    # interpolate accepts a row of the DataFrame.
    path = interp.interpolate(digits_frame.iloc[[0]], digits_frame.iloc[[1]])
    assert path.decoded.shape[1] == digits_frame.shape[1]


# ----------------------------------------------------- parameters and clone
def test_nested_params_change_the_fitted_model(digits_frame):
    X = digits_frame.to_numpy()
    pipe = Pipeline([("scale", MinMaxScaler()), ("vhp", VHPEstimator(**TINY))])
    params = pipe.get_params(deep=True)
    for name in ("vhp__kappa", "vhp__n_components", "vhp__schedule", "vhp__random_state"):
        assert name in params
    assert params["vhp__kappa"] == "auto"

    # n_components: the width of the transform.
    pipe.set_params(vhp__n_components=3).fit(X)
    assert pipe.transform(X).shape == (len(X), 3)
    assert pipe.named_steps["vhp"].n_components == 3

    # kappa: with a huge tolerance REWO leaves its initial phase at once and
    # raises β; with a tiny one it never does and β stays at beta_init.
    pipe.set_params(vhp__kappa=10.0).fit(X)
    vhp = pipe.named_steps["vhp"]
    assert vhp.kappa_ == 10.0
    assert vhp.history_["phase"][-1] == "main"
    assert vhp.beta_ > 1e-3
    pipe.set_params(vhp__kappa=1e-4).fit(X)
    vhp = pipe.named_steps["vhp"]
    assert vhp.kappa_ == 1e-4
    assert set(vhp.history_["phase"]) == {"initial"}
    assert vhp.beta_ == pytest.approx(1e-3)

    # schedule: GECO starts at β = 1 and trains the prior from the start.
    pipe.set_params(vhp__schedule="geco", vhp__kappa=10.0).fit(X)
    vhp = pipe.named_steps["vhp"]
    assert vhp.history_["phase"][0] == "main"
    assert vhp.beta_ > 1.0


def test_clone_gives_unfitted_copy_with_same_params(digits_frame):
    X = digits_frame.to_numpy()
    pipe = make_pipeline(MinMaxScaler(), VHPEstimator(kappa=0.3, **TINY)).fit(X)
    copy = clone(pipe)
    assert copy.get_params(deep=True).keys() == pipe.get_params(deep=True).keys()
    assert copy.get_params()["vhpestimator__kappa"] == 0.3
    assert not hasattr(copy[-1], "module_")
    # Same parameters, same seed: the clone refits to the same model.
    np.testing.assert_allclose(copy.fit(X).transform(X), pipe.transform(X), rtol=1e-5, atol=1e-6)

    interp = ManifoldInterpolator(VHPEstimator(kappa=0.3, **TINY), n_nodes=30)
    params = clone(interp).get_params(deep=True)
    assert params["estimator__kappa"] == 0.3
    assert params["n_nodes"] == 30


def test_estimator_html_repr_names_the_classes():
    pipe = make_pipeline(MinMaxScaler(), VHPEstimator(n_components=3))
    html = estimator_html_repr(pipe)
    assert isinstance(html, str)
    assert "VHPEstimator" in html and "MinMaxScaler" in html
    html = estimator_html_repr(ManifoldInterpolator(VHPEstimator()))
    assert "ManifoldInterpolator" in html and "VHPEstimator" in html
    # Jupyter's hook is there too.
    assert "VHPEstimator" in VHPEstimator()._repr_html_()


# ------------------------------------------------------------------- dask
def test_grid_search_on_dask_local_cluster_matches_sequential():
    """GridSearchCV through joblib's dask backend on a real 2-process cluster."""
    distributed = pytest.importorskip("distributed")
    import joblib

    X = load_digits().data[:240] / 16.0
    grid = {"kappa": [0.05, 0.3], "n_components": [2, 3]}

    def search(n_jobs):
        return GridSearchCV(VHPEstimator(**TINY), grid, cv=2, n_jobs=n_jobs)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # Every worker process runs torch with one thread.
        threads = client.run(lambda: __import__("torch").get_num_threads())
        assert sorted(threads.values()) == [1, 1]
        on_dask = search(n_jobs=-1)
        with (
            distributed.get_task_stream(client) as stream,
            joblib.parallel_config(backend="dask"),
        ):
            on_dask.fit(X)
        # The fits did run on the cluster's workers.
        assert len(stream.data) > 0
        assert {task["worker"] for task in stream.data} <= set(threads)

    best = on_dask.best_estimator_
    check_is_fitted(best)
    assert best.score_samples(X[:7]).shape == (7,)
    assert np.all(np.isfinite(best.score_samples(X[:7])))
    assert best.transform(X[:7]).shape == (7, best.n_components)

    local = search(n_jobs=1).fit(X)
    assert on_dask.best_params_ == local.best_params_
    np.testing.assert_allclose(
        on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], rtol=1e-5
    )
    np.testing.assert_allclose(
        on_dask.best_estimator_.transform(X),
        local.best_estimator_.transform(X),
        rtol=1e-5,
        atol=1e-6,
    )


# ------------------------------------------------------------------- docs
def test_api_reference_lists_every_public_name():
    """docs/api.rst documents every public class and function."""
    import inspect
    from pathlib import Path

    import sklearn_vhp
    from sklearn_vhp import datasets, metrics, plotting

    api = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text(encoding="utf-8")
    listed = {line.strip() for line in api.splitlines()}
    public = {name for name in sklearn_vhp.__all__ if not name.startswith("_")}
    public |= set(datasets.__all__) | set(plotting.__all__) | {"InterpolationPath"}
    public |= {
        name
        for name, obj in vars(metrics).items()
        if inspect.isfunction(obj) and obj.__module__ == metrics.__name__ and name[0] != "_"
    }
    missing = sorted(public - listed)
    assert not missing, f"not in docs/api.rst: {missing}"
