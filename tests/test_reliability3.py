"""Reliability III (issue 23): damage anywhere in a saved model, and the new surfaces.

Damage that pickle itself does not catch must raise an error that says the
file is damaged, wherever it falls (weights, Adam's moments, ``history_``,
the schedule, seeds, settings, constructor parameters); ``partial_fit``
validates its parameters as ``fit`` does; degenerate data and interrupted
or poisoned calls give sane models and errors that name the cause.
"""

import pickle
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sklearn_vhp import VHPEstimator
from sklearn_vhp._compat import InvalidParameterError
from sklearn_vhp._persistence import _checksum, state_checksums


def E(**kw):
    params = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0, device="cpu")
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


@pytest.fixture(scope="module", params=["vhp", "vamp"])
def fitted(request, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return E(prior=request.param, n_pseudo_inputs=5, early_stopping=True).fit(X)


def _load_state(state):
    est = VHPEstimator.__new__(VHPEstimator)
    est.__setstate__(state)
    return est


def _fingerprint(est):
    """Checksums of everything a model saves: equal iff the saved states are equal."""
    state = est.__getstate__()
    state.pop("_state_checksum")
    return state_checksums(state)


def _outcome(blob, reference):
    """``"detected"``, ``"pickle"`` (pickle's own error), ``"same"`` or ``"SILENT"``."""
    try:
        loaded = pickle.loads(blob)
    except ValueError as exc:
        if "damaged" in str(exc):
            return "detected"
        return "pickle"
    except Exception:  # noqa: BLE001 -- pickle's own errors, whatever they are
        return "pickle"
    if not isinstance(loaded, VHPEstimator):  # damage to pickle's own opcodes: another object
        return "pickle"
    return "same" if _fingerprint(loaded) == reference else "SILENT"


# ------------------------------------------------------------- persistence
def test_zeroed_64_bytes_anywhere_in_a_pickle_never_load_silently(fitted):
    blob = pickle.dumps(fitted)
    reference = _fingerprint(fitted)
    outcomes = {}
    for at in np.linspace(0, len(blob) - 64, 150).astype(int):
        if not any(blob[at : at + 64]):
            continue  # already zeros: nothing is damaged
        damaged = blob[:at] + bytes(64) + blob[at + 64 :]
        outcomes[int(at)] = _outcome(damaged, reference)
    assert "SILENT" not in outcomes.values(), [k for k, v in outcomes.items() if v == "SILENT"]
    assert list(outcomes.values()).count("detected") > 10
    # The case: 64 zero bytes in the middle of the pickle.
    middle = len(blob) // 2
    assert _outcome(blob[:middle] + bytes(64) + blob[middle + 64 :], reference) != "SILENT"


def test_bit_flips_outside_the_weights_are_detected(fitted):
    blob = pickle.dumps(fitted)
    reference = _fingerprint(fitted)
    weights = [v.numpy().tobytes() for v in fitted.module_.state_dict().values()]
    inside = np.zeros(len(blob), bool)
    for w in weights:
        at = blob.find(w)
        if at >= 0 and len(w) > 8:
            inside[at : at + len(w)] = True
    rng = np.random.RandomState(0)
    positions = rng.choice(np.flatnonzero(~inside), size=300, replace=False)
    counts = {}
    for at in positions:
        damaged = bytearray(blob)
        damaged[at] ^= 1 << rng.randint(8)
        result = _outcome(bytes(damaged), reference)
        counts[result] = counts.get(result, 0) + 1
    assert "SILENT" not in counts, counts
    assert counts.get("detected", 0) > 30, counts


EDITS = {
    "Adam's moments": lambda s: s["_optimizer_state"]["state"]["0"]["exp_avg"].flat.__setitem__(
        0, 1.0
    ),
    "Adam's step count": lambda s: s["_optimizer_state"]["state"]["0"].__setitem__(
        "step", s["_optimizer_state"]["state"]["0"]["step"] + 1
    ),
    "Adam's learning rate": lambda s: s["_optimizer_state"]["param_groups"][0].__setitem__(
        "lr", 0.5
    ),
    "history_ loss": lambda s: s["history_"]["loss"].__setitem__(0, 0.0),
    "history_ phase": lambda s: s["history_"]["phase"].__setitem__(0, "main"),
    "schedule tau": lambda s: setattr(s["schedule_"], "tau", 30.0),
    "schedule kappa": lambda s: setattr(s["schedule_"], "kappa", 3.0),
    "pseudo-inputs or prior weights": lambda s: s["module_"][
        "prior.pseudo_inputs" if "prior.pseudo_inputs" in s["module_"] else "prior.p_z.net.out.bias"
    ].__iadd__(1.0),
    "activation": lambda s: s["_module_config"].__setitem__("activation", "relu"),
    "constructor parameter": lambda s: s.__setitem__("n_components", 3),
    "objective": lambda s: s.__setitem__("objective", "e|bo"),
    "seed stream": lambda s: s["_seed_stream"].random_sample(),
    "eval seed": lambda s: s.__setitem__("_eval_seed", s["_eval_seed"] + 1),
    "validation scores": lambda s: s["validation_scores_"].append(1.0),
    "version string": lambda s: s.__setitem__("_sklearn_vhp_version", "0.0.1"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_of_any_part_of_the_saved_state_is_detected(fitted, edit):
    state = pickle.loads(pickle.dumps(fitted.__getstate__()))  # a deep copy
    EDITS[edit](state)
    with pytest.raises(ValueError, match="file is damaged.*checksums"):
        _load_state(state)


def test_the_damage_report_names_the_part(fitted):
    state = pickle.loads(pickle.dumps(fitted.__getstate__()))
    state["_module_config"]["activation"] = "relu"
    with pytest.raises(ValueError, match="in the network configuration\\. Load an undamaged"):
        _load_state(state)
    state = pickle.loads(pickle.dumps(fitted.__getstate__()))
    state["history_"]["kl"][-1] += 1e-9
    with pytest.raises(ValueError, match="in the training history"):
        _load_state(state)


def test_an_unfitted_model_is_covered_too():
    est = E(n_components=3)
    state = est.__getstate__()
    state["n_components"] = 4
    with pytest.raises(ValueError, match="damaged"):
        _load_state(state)
    assert pickle.loads(pickle.dumps(est)).n_components == 3


def test_format_2_pickles_still_load_and_check_their_weights(fitted, X):
    state = fitted.__getstate__()
    del state["_state_checksum"]
    state["_state_format"] = 2
    state["_weights_checksum"] = _checksum(state["module_"], state["_optimizer_state"]["state"])
    loaded = _load_state(pickle.loads(pickle.dumps(state)))
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    # Its weights are still checked as they were.
    state = pickle.loads(pickle.dumps(state))
    next(iter(state["module_"].values())).flat[0] += 1.0
    with pytest.raises(ValueError, match="weights .* are damaged.*checksum"):
        _load_state(state)
    # A state format no version wrote is damage, not a newer version.
    bad = fitted.__getstate__()
    del bad["_state_checksum"]
    bad["_state_format"] = 0
    with pytest.raises(ValueError, match="damaged.*state format 0"):
        _load_state(bad)


def test_saving_and_loading_is_identical_and_cheap_to_check(fitted, X):
    loaded = pickle.loads(pickle.dumps(fitted))
    assert _fingerprint(loaded) == _fingerprint(fitted)
    np.testing.assert_array_equal(loaded.score_samples(X[:5]), fitted.score_samples(X[:5]))
    # Loading twice, or resaving a loaded model, gives the same checksums.
    assert (
        pickle.loads(pickle.dumps(loaded)).__getstate__()["_state_checksum"]
        == (fitted.__getstate__()["_state_checksum"])
    )


def test_an_edited_skops_file_is_detected(fitted, X, tmp_path):
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "m.skops"
    sio.dump(fitted, path)
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    # Rewrite the archive with one setting edited (valid zip, valid JSON).
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    schema = files["schema.json"].decode()
    assert schema.count('\\"tanh\\"') >= 1
    files["schema.json"] = schema.replace('\\"tanh\\"', '\\"relu\\"').encode()
    edited = tmp_path / "edited.skops"
    with zipfile.ZipFile(edited, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.raises(ValueError, match="file is damaged"):
        sio.load(edited, trusted=sio.get_untrusted_types(file=edited))
    # A flipped byte in an array of the archive.
    npy = next(n for n in files if n.endswith(".npy") and len(files[n]) > 200)
    data = bytearray(files[npy])
    data[-5] ^= 0x10
    flipped = tmp_path / "flipped.skops"
    with zipfile.ZipFile(flipped, "w") as z:
        for name, blob in {**files, npy: bytes(data)}.items():
            z.writestr(name, blob if name != "schema.json" else schema.encode())
    with pytest.raises(ValueError, match="file is damaged"):
        sio.load(flipped, trusted=sio.get_untrusted_types(file=flipped))


# ------------------------------------------- partial_fit validates its params
def _observable(est, X):
    return (
        est.n_iter_,
        len(est.history_["loss"]),
        est.learning_rate_,
        est.transform(X).tobytes(),
        est.score_samples(X[:5]).tobytes(),
    )


@pytest.mark.parametrize(
    "bad",
    [
        dict(learning_rate=-0.01),
        dict(learning_rate=0.0),
        dict(batch_size=0),
        dict(batch_size=-5),
        dict(n_importance=0),
        dict(n_importance=1.5),
        dict(objective="IWAE"),
        dict(verbose="x"),
    ],
    ids=str,
)
def test_partial_fit_on_a_fitted_model_validates_parameters_before_anything_changes(X, bad):
    est = E().partial_fit(X[:60])
    before, params = _observable(est, X), est.get_params()
    est.set_params(**bad)
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"The '{name}' parameter of VHPEstimator must be") as exc:
        est.partial_fit(X[60:])
    assert isinstance(exc.value, InvalidParameterError)  # as fit raises it
    assert _observable(est.set_params(**params), X) == before
    with pytest.raises(ValueError, match=f"The '{name}' parameter"):
        E(**bad).fit(X)  # the same error as fit


# --------------------------------------------- identical rows outside [0, 1]
def test_identical_rows_outside_the_unit_interval_give_a_sane_model():
    Xd = np.repeat(np.random.RandomState(0).randn(1, 20), 200, axis=0)
    assert 0 < np.var(Xd, axis=0).mean() < 1e-25  # rounding, not spread
    est = VHPEstimator(max_iter=1, random_state=0).fit(Xd)
    # The automatic scale falls back to 1 (before: 1e-15, so κ 6e-16,
    # a noise variance of 1e-34 and a score of -5e19 on the training rows).
    assert est.kappa_ == pytest.approx(0.05)
    assert est.noise_variance_ >= 1e-6 * (1 - 1e-6)  # (the floor, held in float32)
    assert np.isfinite(est.score(Xd)) and est.score(Xd) > 0
    # As the same row scaled into [0, 1].
    lo, hi = Xd.min(), Xd.max()
    unit = VHPEstimator(max_iter=1, random_state=0).fit((Xd - lo) / (hi - lo))
    assert unit.kappa_ == est.kappa_
    # Identical float32 rows too; real spread keeps its scale.
    assert VHPEstimator(max_iter=1, random_state=0).fit(Xd.astype(np.float32)).kappa_ == 0.05
    spread = Xd + np.random.RandomState(1).randn(*Xd.shape) * 1e-3
    assert VHPEstimator(max_iter=1, random_state=0).fit(spread).kappa_ < 1e-3


# --------------------------------------------------------------- poor errors
def test_integer_data_spanning_6e18_asks_to_scale_the_data_up_front(X):
    from sklearn_vhp import DivergenceWarning

    est = E().fit(X)
    before = _observable(est, X)
    huge = np.random.RandomState(0).randint(-3 * 10**18, 3 * 10**18, size=(200, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)  # no training at all
        with pytest.raises(ValueError, match="X spans [56].*e\\+18.*overflow float32.*Scale"):
            E().fit(huge)
        with pytest.raises(ValueError, match="X spans [56].*e\\+18.*Scale the data"):
            est.set_params(warm_start=True).fit(X * 6e18)
    assert _observable(est, X) == before


def test_ctrl_c_in_partial_fit_advises_partial_fit(X, monkeypatch):
    from sklearn_vhp._torch.vae import VAE

    est = E().partial_fit(X[:60])
    real, calls = VAE.training_loss, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(VAE, "training_loss", interrupted)
    with pytest.warns(UserWarning, match="interrupted.*Call partial_fit again to continue"):
        est.partial_fit(X[60:])
    assert est.n_iter_ == 1
    monkeypatch.undo()
    est.partial_fit(X[60:])
    assert est.n_iter_ == 2


def test_nan_written_into_a_streamed_memmap_is_blamed_on_the_data(tmp_path, monkeypatch):
    from sklearn import config_context

    import sklearn_vhp._data as data_mod

    path = tmp_path / "X.npy"
    np.save(path, (np.random.RandomState(0).rand(600, 20) > 0.6).astype(np.float32))
    X = np.load(path, mmap_mode="r")
    est = E(batch_size=32, hidden_layer_sizes=(16,), max_iter=2)
    with config_context(working_memory=0.01):  # 600 x 20 float32 rows stream
        est.fit(X)
        before = _observable(est, np.asarray(X))
        real_scan = data_mod.scan_rows

        def scan_then_poison(rows, *args, **kwargs):
            scan = real_scan(rows, *args, **kwargs)
            writer = np.load(path, mmap_mode="r+")
            writer[::7, 3] = np.nan  # after the one-pass check
            writer.flush()
            return scan

        monkeypatch.setattr(data_mod, "scan_rows", scan_then_poison)
        with pytest.raises(ValueError, match="NaN or infinite values in its data.*changed"):
            est.set_params(warm_start=True).fit(X)
    monkeypatch.undo()
    assert est.n_iter_ == before[0]  # the model after the last completed epoch
    assert np.isfinite(est.transform(np.zeros((2, 20)))).all()
