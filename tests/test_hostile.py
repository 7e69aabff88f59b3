"""Reliability II (issue 14): hostile use of fitted models.

No silent wrong answers and no broken state: any array layout, out-of-support
rows, the caller's grad mode, parameters changed after fit, failed fits,
memory bounds, threads, degenerate data, raw errors, persistence.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from _numerics import assert_same_log_likelihood, assert_same_values
from _threads import run_concurrently
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import ManifoldInterpolator, VHPEstimator

pd = pytest.importorskip("pandas")


def E(**kw):
    """The issue's tiny estimator."""
    params = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0, device="cpu")
    params.update(kw)
    return VHPEstimator(**params)


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).rand(120, 6)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return E(n_eval_samples=16).fit(X)


def _state(est):
    """Everything a user can observe of a fitted model, for before/after checks."""
    Xp = np.random.RandomState(1).rand(5, est.n_features_in_)
    return (
        est.n_features_in_,
        est.n_iter_,
        est.transform(Xp),
        est.score_samples(Xp),
        est.sample(3, random_state=0),
        list(est.get_feature_names_out()),
    )


def _assert_same_state(a, b):
    assert a[:2] == b[:2] and a[5] == b[5]
    for u, v in zip(a[2:5], b[2:5]):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------ 1. any array layout
LAYOUTS = {
    "reversed rows": lambda A: A[::-1],
    "np.flip both": lambda A: np.flip(A),
    "reversed columns": lambda A: A[:, ::-1],
    "fortran": np.asfortranarray,
    "every other row": lambda A: np.repeat(A, 2, axis=0)[::2],
    "read-only": lambda A: np.lib.stride_tricks.as_strided(A, writeable=False),
    "reversed DataFrame": lambda A: pd.DataFrame(A).iloc[::-1],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_layout_gives_the_contiguous_answer(fitted, X, layout):
    view = LAYOUTS[layout]
    ref = np.ascontiguousarray(view(X) if layout != "reversed DataFrame" else X[::-1])
    A = view(X)
    np.testing.assert_array_equal(fitted.transform(A), fitted.transform(ref))
    np.testing.assert_array_equal(fitted.score_samples(A), fitted.score_samples(ref))
    Z = fitted.transform(ref)
    Zv = view(Z) if layout != "reversed columns" else Z[::-1]
    Zr = np.ascontiguousarray(Zv if layout != "reversed DataFrame" else Z[::-1])
    np.testing.assert_array_equal(fitted.inverse_transform(Zv), fitted.inverse_transform(Zr))
    a, b = E().fit(A), E().fit(ref)
    np.testing.assert_array_equal(a.transform(ref), b.transform(ref))


def test_interpolator_accepts_negative_strides(X):
    interp = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5, random_state=0)
    interp.fit(X[::-1])
    ref = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5, random_state=0)
    ref.fit(np.ascontiguousarray(X[::-1]))
    np.testing.assert_array_equal(interp.transform(X[::-1]), ref.transform(X[::-1].copy()))
    path = interp.interpolate(X[0, ::-1], X[1, ::-1])
    ref_path = ref.interpolate(X[0, ::-1].copy(), X[1, ::-1].copy())
    np.testing.assert_array_equal(path.decoded, ref_path.decoded)
    np.testing.assert_array_equal(
        interp.geodesic_distances(X[:4][::-1]), ref.geodesic_distances(X[:4][::-1].copy())
    )


# ------------------------------------------------------- 3. grad mode
GRAD_MODES = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
    "set_grad_enabled(False)": lambda: torch.set_grad_enabled(False),
}


@pytest.mark.parametrize("mode", GRAD_MODES)
def test_fit_trains_whatever_the_grad_mode_and_restores_it(X, mode):
    ref = E().fit(X)
    with GRAD_MODES[mode]():
        est = E().fit(X)
        assert not torch.is_grad_enabled()
        if mode == "inference_mode":
            assert torch.is_inference_mode_enabled()
        # The predictions made in the caller's mode are the ordinary ones.
        np.testing.assert_array_equal(est.transform(X), ref.transform(X))
        est.set_params(warm_start=True).fit(X)  # a warm start too
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    np.testing.assert_array_equal(
        est.history_["loss"][: len(ref.history_["loss"])], ref.history_["loss"]
    )
    # A model fitted (or loaded) in inference mode trains on outside it.
    with torch.inference_mode():
        loaded = pickle.loads(pickle.dumps(ref))
    loaded.set_params(warm_start=True).fit(X)
    assert loaded.n_iter_ == 2


def test_ctrl_c_never_leaves_grad_mode_off(X, monkeypatch):
    from sklearn_vhp._torch.vae import VAE

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(VAE, "training_loss", interrupt)
    with pytest.warns(UserWarning, match="interrupted"):
        E().fit(X)
    assert torch.is_grad_enabled()
    # Also from the caller's no_grad, and from a Ctrl-C during set-up.
    monkeypatch.setattr(VHPEstimator, "_initialize", interrupt)
    with torch.no_grad():
        with pytest.raises(KeyboardInterrupt):
            E().fit(X)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


# ------------------------------------- 5. a failed fit damages nothing
def test_failed_refit_leaves_the_fitted_model_as_it_was(X):
    est = E().fit(X)
    before = _state(est)
    with pytest.raises(ValueError, match="validation set for early stopping is too small"):
        est.set_params(early_stopping=True).fit(X[:5, :3])
    est.set_params(early_stopping=False)
    _assert_same_state(_state(est), before)
    assert est.validation_scores_ is None
    # The same for a failed warm start.
    with pytest.raises(ValueError, match="validation set for early stopping is too small"):
        est.set_params(warm_start=True, early_stopping=True).fit(X[:5])
    est.set_params(early_stopping=False)
    _assert_same_state(_state(est), before)
    est.fit(X)  # the warm start that follows continues the same stream
    ref = E().fit(X).set_params(warm_start=True).fit(X)
    np.testing.assert_array_equal(est.transform(X), ref.transform(X))


def test_failed_first_fit_leaves_an_unfitted_estimator(X):
    from sklearn.exceptions import NotFittedError

    est = E(early_stopping=True)
    with pytest.raises(ValueError):
        est.fit(X[:5])
    assert not hasattr(est, "n_features_in_")
    with pytest.raises(NotFittedError):
        est.transform(X)


@pytest.mark.parametrize("where", ["_initialize", "_split_validation", "scan_rows"])
def test_ctrl_c_during_set_up_keeps_the_previous_model(X, monkeypatch, where):
    from sklearn.exceptions import NotFittedError

    import sklearn_vhp._estimator as mod

    est = E().fit(X)
    before = _state(est)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "scan_rows":  # the one pass over the data
        monkeypatch.setattr(mod._data, where, interrupt)
    else:
        monkeypatch.setattr(VHPEstimator, where, interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[:, :4])  # a refit on other data, interrupted before training
    fresh = E()
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X)
    monkeypatch.undo()
    _assert_same_state(_state(est), before)
    with pytest.raises(NotFittedError):
        fresh.transform(X)


# ------------------------------------- 4. fitted widths, not parameters
@pytest.mark.parametrize(
    "change",
    [dict(n_components=3), dict(prior="standard"), dict(likelihood="bernoulli"),
     dict(hidden_layer_sizes=(4, 4)), dict(architecture="conv", image_shape=(2, 3))],
)  # fmt: skip
def test_methods_after_fit_read_fitted_attributes(X, change):
    est = E(n_eval_samples=16).fit(X)
    before = _state(est)
    active = est.active_units(X)
    Z = est.transform(X[:4])
    est.set_params(**change)
    _assert_same_state(_state(est), before)
    assert list(est.get_feature_names_out()) == ["vhpestimator0", "vhpestimator1"]
    assert est.inverse_transform(Z).shape == (4, 6)
    assert est.sample(2).shape == (2, 6)
    after = est.active_units(X)
    for key, value in active.items():
        if value is None:
            assert after[key] is None
        else:
            np.testing.assert_array_equal(after[key], value)
    frame = est.set_output(transform="pandas").transform(X[:4])
    assert list(frame.columns) == ["vhpestimator0", "vhpestimator1"]
    np.testing.assert_array_equal(frame.to_numpy(), Z)


@pytest.mark.parametrize(
    "change",
    [dict(n_components=3), dict(prior="vamp"), dict(likelihood="bernoulli"),
     dict(architecture="conv", image_shape=(2, 3)), dict(hidden_layer_sizes=(4,)),
     dict(activation="relu"), dict(decoder_dropout=0.1), dict(encoder_variance="amortized"),
     dict(schedule="geco"), dict(kappa=0.5), dict(noise_variance=0.5), dict(device="meta")],
)  # fmt: skip
def test_warm_start_refuses_a_changed_structural_parameter(X, change):
    est = E(warm_start=True).fit(X)
    before = _state(est)
    est.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"warm_start=True.*{name} changed.*warm_start=False"):
        est.fit(X)
    _assert_same_state(_state(est), before)
    # Setting it back continues; warm_start=False fits a new model with it.
    est.set_params(**E().get_params()).set_params(warm_start=True).fit(X)
    assert est.n_iter_ == 2


def test_warm_start_accepts_training_settings(X):
    est = E(warm_start=True).fit(X)
    est.set_params(max_iter=2, learning_rate=1e-4, batch_size=16, n_importance=3,
                   objective="iwae", verbose=0, n_eval_samples=8, beta_init=0.5,
                   hidden_layer_sizes=[8], init="random").fit(X)  # fmt: skip
    assert est.n_iter_ == 3


# ----------------------------------------- 2. rows outside the support
def test_bernoulli_rows_outside_the_support_score_minus_infinity(X):
    XB = (X > 0.5).astype(float)
    est = E(n_eval_samples=16).fit(XB)
    inside = est.score_samples(XB)
    assert np.isfinite(inside).all()
    mixed = XB.copy()
    mixed[::3] -= 3  # every third row outside [0, 1]
    mixed[1, 0] = 1.5  # one value is enough
    with pytest.warns(UserWarning, match="41 of 120 rows.*outside \\[0, 1\\].*-inf"):
        scores = est.score_samples(mixed)
    out = np.zeros(len(XB), bool)
    out[::3] = out[1] = True
    assert np.all(scores[out] == -np.inf)
    # The inside rows were scored as a block of their own: equal to rounding.
    assert_same_log_likelihood(scores[~out], inside[~out], XB.shape[1], XB.dtype)
    with pytest.warns(UserWarning, match="outside"):
        assert est.score(mixed) == -np.inf
    with pytest.warns(UserWarning, match="outside"):
        assert np.all(est.score_samples(XB - 3) == -np.inf)
    # Fractional values inside [0, 1] are in the support (as in fit).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(est.score_samples(np.full((2, 6), 0.5))).all()


# ------------------------------------------------------- 7. thread safety
@pytest.mark.parametrize("prior", ["vhp", "standard", "vamp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concurrent_inference_equals_serial_bit_for_bit(X, prior, dtype):
    est = E(prior=prior, n_eval_samples=64).fit(X)
    A = X.astype(dtype)
    calls = {
        "score_samples": lambda: est.score_samples(A),
        "transform": lambda: est.transform(A),
        "inverse_transform": lambda: est.inverse_transform(est.transform(A)),
        "sample": lambda: est.sample(5, random_state=0),
    }
    for name, call in calls.items():
        serial = call()
        for result in run_concurrently(call, n_threads=4, repeats=4):
            np.testing.assert_array_equal(result, serial, err_msg=name)


# ----------------------------------------------------- 11. smaller ones
def test_float64_module_is_copied_once_until_the_weights_change(X, monkeypatch):
    import copy

    import sklearn_vhp._estimator as mod

    est = E(warm_start=True).fit(X)
    other = E(random_state=1).fit(X)
    copies = []
    real = copy.deepcopy

    def spy(obj, *args, **kwargs):
        if isinstance(obj, torch.nn.Module):
            copies.append(obj)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(mod.copy, "deepcopy", spy)
    first = est.transform(X)
    for _ in range(3):
        np.testing.assert_array_equal(est.transform(X), first)
        est.inverse_transform(first)
        est.score_samples(X[:2])
    assert len(copies) == 1
    # New weights, by a warm start or written into module_ directly: a new copy.
    est.fit(X)
    assert not np.array_equal(est.transform(X), first)
    np.testing.assert_array_equal(est.transform(X), pickle.loads(pickle.dumps(est)).transform(X))
    est.module_.load_state_dict(other.module_.state_dict())
    np.testing.assert_array_equal(est.transform(X), other.transform(X))
    # One per change; the pickled copy and `other` made their own.
    assert len(copies) == 5


# ------------------------------------------------------ 8. degenerate data
@pytest.mark.parametrize("offset", [0.0, 1e-9, 1e-7])
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_constant_and_near_constant_data_train_to_a_sane_model(offset, likelihood):
    rng = np.random.RandomState(0)
    C = np.full((120, 6), 0.3 if likelihood == "gaussian" else 1.0)
    C = C - offset * rng.rand(*C.shape)
    scores = {}
    for prior in ("vhp", "standard", "vamp"):
        est = E(prior=prior, likelihood=likelihood, max_iter=3, n_eval_samples=64).fit(C)
        assert np.isfinite(est.history_["loss"]).all()
        assert np.abs(est.history_["kl"]).max() < 100
        scores[prior] = est.score_samples(C[:20])
        assert np.isfinite(scores[prior]).all()
    # The learned priors are no worse than a few nats off the standard one
    # (before the fix: -600 against +8 nats per row).
    assert scores["vhp"].mean() > scores["standard"].mean() - 5
    assert scores["vamp"].mean() > scores["standard"].mean() - 5


# ------------------------------------------------------------ 9. raw errors
@pytest.mark.parametrize(
    "params, data, match",
    [
        (dict(kappa=1e200), None, "kappa=1e\\+200.*square.*not finite"),
        (dict(kappa=1e-200), None, "kappa=1e-200.*square.*underflows"),
        (dict(noise_variance=1e-50), None, "noise_variance=1e-50.*float32"),
        (dict(noise_variance=1e50), None, "noise_variance=1e\\+50.*float32"),
        (dict(), lambda X: X * 1e30, "spans [0-9.]+e\\+(29|30).*overflow float32.*Scale"),
        (dict(), lambda X: (X - 0.5) * 1e-20, "spans only [0-9.]+e-2[01].*underflow.*Scale"),
        (dict(n_components=True), None, "n_components.*bool"),
        (dict(max_iter=True), None, "max_iter.*bool"),
        (dict(n_importance=np.True_), None, "n_importance"),
    ],
)
def test_fit_names_the_cause(X, params, data, match):
    with pytest.raises(ValueError, match=match):
        E(**params).fit(X if data is None else data(X))


def test_tiny_positive_data_in_the_unit_interval_still_train(X):
    est = E().fit(X * 1e-20)
    assert np.isfinite(est.transform(X * 1e-20)).all()


@pytest.mark.parametrize("n", [True, False, np.True_])
@pytest.mark.parametrize("method", ["sample", "sample_latent"])
def test_sample_rejects_booleans(fitted, method, n):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        getattr(fitted, method)(n)
    assert getattr(fitted, method)(np.int64(2)).shape[0] == 2


# ------------------------------------------------------------ 10. persistence
def _legacy_state(est):
    """The state as sklearn-vhp saved it before it recorded versions (format 1)."""
    import io

    state = dict(est.__dict__)
    buf = io.BytesIO()
    torch.save({"module": est.module_.state_dict(), "optimizer": est._optimizer.state_dict()}, buf)
    state["module_"] = buf.getvalue()
    state["device_"] = str(est.device_)
    state.pop("_optimizer")
    return state


def _load_state(state):
    est = VHPEstimator.__new__(VHPEstimator)
    est.__setstate__(state)
    return est


def test_pickle_carries_version_and_checksum_and_detects_damage(fitted, X):
    import sklearn_vhp

    state = fitted.__getstate__()
    assert state["_sklearn_vhp_version"] == sklearn_vhp.__version__
    assert isinstance(state["_state_checksum"]["module_"], str)
    blob = pickle.dumps(fitted)
    # Flip one byte inside a weight array of the pickle.
    weight = fitted.module_.state_dict()["decoder.out.weight"].numpy().tobytes()
    at = blob.index(weight) + len(weight) // 2
    damaged = blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1 :]
    with pytest.raises(ValueError, match="file is damaged.*checksums.*in the weights"):
        pickle.loads(damaged)
    # Damaged torch bytes of an old-format pickle: an error that says so.
    legacy = _legacy_state(fitted)
    legacy["module_"] = legacy["module_"][: len(legacy["module_"]) // 2]
    with pytest.raises(ValueError, match="weights .* are damaged and cannot be read"):
        _load_state(legacy)


def test_old_and_incompatible_pickles(fitted, X):
    # A format-1 pickle whose layout matches still loads, identically.
    loaded = _load_state(_legacy_state(fitted))
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    # One from before the prior's standardisation existed: says so.
    legacy = _legacy_state(fitted)
    blob = torch.load(__import__("io").BytesIO(legacy["module_"]), weights_only=True)
    del blob["module"]["prior.loc"]
    buf = __import__("io").BytesIO()
    torch.save(blob, buf)
    legacy["module_"] = buf.getvalue()
    with pytest.raises(ValueError, match="older than 0.1.0.dev0.*layout differs.*prior.loc"):
        _load_state(legacy)
    # One from before the noise mixture had scales: one scale per component.
    legacy = _legacy_state(fitted)
    blob = torch.load(__import__("io").BytesIO(legacy["module_"]), weights_only=True)
    assert "likelihood.log_scales" in blob["module"]  # the fixture has mixture noise
    del blob["module"]["likelihood.log_scales"], blob["module"]["likelihood.scale_log_weights"]
    buf = __import__("io").BytesIO()
    torch.save(blob, buf)
    legacy["module_"] = buf.getvalue()
    np.testing.assert_array_equal(_load_state(legacy).score_samples(X), fitted.score_samples(X))
    # One from before decoder_dropout: none, and a warm start continues it.
    legacy = _legacy_state(fitted)
    legacy["_structure"] = dict(legacy["_structure"])  # (a copy: the fixture's stays)
    del legacy["decoder_dropout"], legacy["_structure"]["decoder_dropout"]
    old = _load_state(legacy)
    assert old.get_params()["decoder_dropout"] == 0.0
    epochs = old.n_iter_
    assert old.set_params(warm_start=True, max_iter=1).fit(X).n_iter_ == epochs + 1
    # One lacking what a warm start needs: says so at load, not at warm start.
    legacy = _legacy_state(fitted)
    del legacy["_seed_stream"]
    with pytest.raises(ValueError, match="lacks _seed_stream.*Refit"):
        _load_state(legacy)
    # A newer state format.
    state = fitted.__getstate__()
    state["_state_format"] = 99
    state["_sklearn_vhp_version"] = "9.0"
    with pytest.raises(ValueError, match="saved by sklearn-vhp 9.0 in state format 99.*Upgrade"):
        _load_state(state)


@pytest.mark.parametrize("prior", ["vhp", "vamp"])
def test_skops_round_trip_trusts_only_this_package(X, tmp_path, prior):
    sio = pytest.importorskip("skops.io")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    est = E(prior=prior, early_stopping=True, n_eval_samples=16).fit(frame)
    interp = ManifoldInterpolator(est, prefit=True, n_nodes=30, n_neighbors=5, random_state=0)
    interp.fit(frame)
    for obj in (est, interp):
        path = tmp_path / "model.skops"
        sio.dump(obj, path)
        untrusted = sio.get_untrusted_types(file=path)
        assert untrusted and all(t.startswith("sklearn_vhp.") for t in untrusted), untrusted
        loaded = sio.load(path, trusted=untrusted)
        np.testing.assert_array_equal(loaded.transform(frame), obj.transform(frame))
        if obj is est:
            np.testing.assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))
            np.testing.assert_array_equal(loaded.sample(3), est.sample(3))
            loaded.set_params(warm_start=True).fit(frame)  # and it trains on
        else:
            np.testing.assert_array_equal(
                loaded.geodesic_distances(frame[:4]), obj.geodesic_distances(frame[:4])
            )


# ------------------------------------------------------------ 6. memory bounds
@pytest.mark.parametrize("prior", ["vhp", "vamp", "standard"])
def test_sample_and_score_samples_work_in_chunks_with_the_same_answer(X, prior, monkeypatch):
    from sklearn import config_context

    from sklearn_vhp._torch.networks import MLP

    est = E(prior=prior, n_eval_samples=3000).fit(X)
    big = est.sample(5000, random_state=0), est.score_samples(X[:3])
    seen = []
    forward = MLP.forward

    def spy(self, x):
        seen.append(x.shape[:-1].numel())
        return forward(self, x)

    monkeypatch.setattr(MLP, "forward", spy)
    with config_context(working_memory=0.05):  # ~52 KB
        small = est.sample(5000, random_state=0), est.score_samples(X[:3])
    # Networks saw bounded batches: rows (x samples) far below 5000 (x 3000).
    assert seen and max(seen) <= 1000
    # The same noise; the networks ran on other chunk sizes (equal to rounding).
    assert_same_values(small[0], big[0], np.float64)
    assert_same_log_likelihood(small[1], big[1], X.shape[1], X.dtype)


def test_score_samples_noise_is_drawn_in_bounded_blocks(fitted, X, monkeypatch):
    import sklearn_vhp._torch.vae as mod  # the model draws the noise of its estimate

    ref = fitted.set_params(n_eval_samples=50).score_samples(X[:2])
    sizes = []
    randn = torch.randn

    def spy(*args, **kwargs):
        out = randn(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(mod.torch, "randn", spy)
    monkeypatch.setattr(mod, "NOISE_BLOCK_FLOATS", 40)  # blocks of 10 samples
    blocked = fitted.score_samples(X[:2])
    fitted.set_params(n_eval_samples=16)
    assert sizes and max(sizes) <= 40
    # Other noise than one block of 50 samples, the same estimate up to noise.
    assert not np.array_equal(blocked, ref)
    np.testing.assert_allclose(blocked, ref, atol=5.0)


def test_huge_edge_power_is_refused_not_silently_zero(X):
    interp = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5, edge_power=1e3, random_state=0)
    with pytest.raises(ValueError, match="edge_power=1000.0 .*(overflow|underflow).*at most"):
        interp.fit(X)
    ok = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5, edge_power=2.0, random_state=0)
    ok.fit(X)
    D = ok.geodesic_distances(X[:5])
    assert np.all(D[~np.eye(5, dtype=bool)] > 0)
    # Parameters changed after fit are not read: the fitted graph's settings are.
    path = ok.interpolate(X[0], X[1])
    ok.set_params(edge_power=1e3, n_neighbors=1)
    np.testing.assert_array_equal(ok.geodesic_distances(X[:5]), D)
    np.testing.assert_array_equal(ok.interpolate(X[0], X[1]).nodes, path.nodes)


def test_no_spurious_feature_name_warnings(X):
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    est = E().fit(frame)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*feature names")
        interp = ManifoldInterpolator(est, prefit=True, n_nodes=30, n_neighbors=5).fit(frame)
        interp.transform(frame)
        interp.interpolate(frame.iloc[0], frame.iloc[1])  # Series rows
        interp.interpolate(frame.iloc[[0]], frame.iloc[[1]])
        interp.geodesic_distances(frame[:3], frame[3:5])
        unprefit = ManifoldInterpolator(E(), n_nodes=30, n_neighbors=5).fit(frame)
        unprefit.interpolate(frame.iloc[0], frame.iloc[1])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        interp.transform(X)  # the warning is still given where it is due


def test_turning_early_stopping_off_clears_validation_scores(X):
    est = E(early_stopping=True, warm_start=True).fit(X)
    assert len(est.validation_scores_) == 1 and est.best_validation_score_ is not None
    est.set_params(early_stopping=False).fit(X)
    assert est.validation_scores_ is None and est.best_validation_score_ is None


def test_verbose_2_prints_a_line_per_epoch(X, capsys):
    E(max_iter=3, verbose=1).fit(X)
    one = capsys.readouterr()
    E(max_iter=3, verbose=2).fit(X)
    two = capsys.readouterr()
    lines = [ln for ln in two.out.splitlines() if ln.startswith("Epoch ")]
    assert len(lines) == 3 and "loss" in lines[0] and "beta" in lines[0]
    assert not [ln for ln in one.out.splitlines() if ln.startswith("Epoch ")]


def test_mnist_default_data_home_follows_sklearn(monkeypatch, tmp_path):
    from sklearn_vhp.datasets import load_binarized_mnist

    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "skl"))
    monkeypatch.chdir(tmp_path)
    (tmp_path.parent / "shared" / "data").mkdir(parents=True, exist_ok=True)
    expected = tmp_path / "skl" / "sklearn_vhp" / "binarized_mnist_valid.npz"
    with pytest.raises(FileNotFoundError) as info:
        load_binarized_mnist("valid")
    assert str(expected) in str(info.value)
    assert "shared" not in str(info.value)  # nothing relative to the working directory
    rng = np.random.RandomState(0)
    Xb = (rng.rand(3, 784) > 0.5).astype(np.uint8)
    expected.parent.mkdir(parents=True, exist_ok=True)
    np.savez(expected, X=np.packbits(Xb, axis=1))
    np.testing.assert_array_equal(load_binarized_mnist("valid"), Xb)
