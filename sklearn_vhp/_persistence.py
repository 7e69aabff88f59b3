"""Persistence of a VHPEstimator: its state for pickle, joblib and ``skops.io``.

The weights and Adam's state are stored as numpy arrays (no torch pickles),
with the package version, a state format number and SHA-256 checksums of the
whole state -- every attribute: weights, Adam's moments, ``history_``, the β
schedule, the seeds, the network configuration, the constructor's
parameters -- so that loading can tell a model saved by an incompatible
version, or damaged, from a good one. The checksums are computed from a
canonical byte encoding of each attribute (:func:`_canonical`: arrays and
tensors by dtype, shape and bytes, floats by their IEEE bytes, containers
and objects element by element, objects by their class and
``__getstate__``), so anything the state holds, a user's torch module
included, is covered without a special case. ``VHPEstimator.__getstate__``
and ``__setstate__`` delegate here.

A user's network (the ``encoder`` and ``decoder`` parameters, and the
fitted configuration that refers to them) is saved as a :class:`SavedModule`:
pickle and joblib pickle the module itself; ``skops.io`` stores it as a tree
of its classes, plain attributes and numpy arrays (:func:`module_tree`), so
that the only types to trust are this package's, the module classes (the
user's and ``torch.nn``'s) and what their attributes hold. The trained
weights go, as for the built-in networks, through the numpy weights; the
whole-state checksums cover the saved module too.
"""

import hashlib
import io
import struct
import warnings
from numbers import Integral

import numpy as np
import torch
from torch import nn

from ._torch.factory import build_vae
from ._training import make_adam

#: Version of the layout of ``VHPEstimator.__getstate__``. 1: the torch state
#: as ``torch.save`` bytes (before 0.1.0.dev0 recorded versions); 2: numpy
#: arrays with a checksum of the weights and Adam's arrays; 3: the same with a
#: checksum of every attribute (``_state_checksum``).
STATE_FORMAT = 3

#: What the attributes of the state are, in the damage report.
PART_NAMES = {
    "module_": "the weights",
    "_optimizer_state": "Adam's state",
    "history_": "the training history",
    "schedule_": "the β schedule",
    "_module_config": "the network configuration",
    "_seed_stream": "the random state",
}

#: Fitted attributes a loaded model needs to predict and to continue training.
FITTED_STATE = (
    "n_features_in_",
    "_module_config",
    "likelihood_",
    "kappa_",
    "schedule_",
    "history_",
    "n_iter_",
    "learning_rate_",
    "_eval_seed",
    "_seed_stream",
    "device_",
)

#: Buffers added to the module after models were first saved, whose default
#: values reproduce the models saved without them.
NEW_BUFFERS = (
    "prior.input_loc",
    "prior.input_scale",
    "likelihood.offsets",
    "likelihood.shrinkage",
    "likelihood.scale_log_weights",
    "likelihood.log_scales",
)


#: Entries of the state that may hold a user's network: directly, or as values of a dict.
MODULE_ENTRIES = ("encoder", "decoder")
MODULE_DICTS = ("_module_config", "_structure")


class SavedModule:
    """A torch module inside a saved state (see the module's docstring).

    ``key`` numbers the modules of one state: a module referred to several
    times (the parameter, the fitted configuration, the warm-start record)
    is loaded as one object, whether or not the format keeps shared
    references.
    """

    def __init__(self, module, key):
        self.module, self.key = module, key

    def __reduce_ex__(self, protocol):  # pickle, joblib, copy: the module pickles itself
        return (SavedModule, (self.module, self.key))

    def _checksum_state(self):  # what the whole-state checksum covers: the module itself
        return {"key": self.key, "module": self.module}

    def __getstate__(self):  # skops.io: classes, plain values and numpy arrays
        return {"key": self.key, "tree": module_tree(self.module)}

    def __setstate__(self, state):
        self.key, self.module = state["key"], tree_module(state["tree"])


def module_tree(module):
    """``module`` as nested dicts of its classes, plain attributes and numpy arrays.

    Tensors are listed once (``"tensors"``: array, and ``requires_grad`` for
    a parameter or ``None`` for a buffer) and referred to by index, and a
    submodule used twice is stored once, so shared weights stay shared.
    """
    tensors, tensor_index, seen = [], {}, {}

    def tensor(t, is_param):
        if isinstance(t, nn.parameter.UninitializedTensorMixin):
            raise ValueError(
                "A module has a lazy layer that was never run, which skops.io cannot "
                "store. Save with pickle or joblib, or pass a class that builds the module."
            )
        if id(t) not in tensor_index:
            tensor_index[id(t)] = len(tensors)
            grad = bool(t.requires_grad) if is_param else None
            tensors.append((t.detach().cpu().numpy(), grad))
        return tensor_index[id(t)]

    def node(m):
        if id(m) in seen:
            return {"same_as": seen[id(m)]}
        seen[id(m)] = len(seen)
        attrs = dict(vars(m))
        params, buffers = attrs.pop("_parameters"), attrs.pop("_buffers")
        children = attrs.pop("_modules")
        for name in [k for k in attrs if "hook" in k]:
            if attrs.pop(name):
                raise ValueError(
                    f"The {type(m).__name__} module has hooks ({name}: lazy layers "
                    "before their first forward pass, weight or spectral normalisation...), "
                    "which skops.io cannot store. Save the estimator with pickle or joblib, "
                    "or pass a class that builds the module."
                )
        return {
            "id": seen[id(m)],
            "cls": type(m),
            "attrs": attrs,
            "parameters": {k: None if p is None else tensor(p, True) for k, p in params.items()},
            "buffers": {k: None if b is None else tensor(b, False) for k, b in buffers.items()},
            "modules": {k: None if c is None else node(c) for k, c in children.items()},
        }

    root = node(module)
    return {"root": root, "tensors": tensors}


def tree_module(tree):
    """The module :func:`module_tree` describes (``__setstate__`` of its classes)."""
    tensors = [
        torch.tensor(np.array(a)) if grad is None else nn.Parameter(torch.tensor(np.array(a)), grad)
        for a, grad in tree["tensors"]
    ]
    built = {}

    def build(node):
        if "same_as" in node:
            return built[node["same_as"]]
        cls = node["cls"]
        module = cls.__new__(cls)
        built[node["id"]] = module
        nn.Module.__init__(module)  # the hooks' empty tables (not the class's own __init__)
        state = dict(node["attrs"])
        state["_parameters"] = {
            k: None if i is None else tensors[i] for k, i in node["parameters"].items()
        }
        state["_buffers"] = {
            k: None if i is None else tensors[i] for k, i in node["buffers"].items()
        }
        state["_modules"] = {k: None if c is None else build(c) for k, c in node["modules"].items()}
        module.__setstate__(state)
        return module

    return build(tree["root"])


def _save_modules(state):
    """Replace the user's networks in ``state`` (a copy) by :class:`SavedModule` s."""
    memo = {}

    def saved(value):
        if not isinstance(value, nn.Module):
            return value
        if id(value) not in memo:
            memo[id(value)] = SavedModule(value, len(memo))
        return memo[id(value)]

    for name in MODULE_ENTRIES:
        if name in state:
            state[name] = saved(state[name])
    for name in MODULE_DICTS:
        if isinstance(state.get(name), dict):
            state[name] = {k: saved(v) for k, v in state[name].items()}


def _load_modules(state):
    """Undo :func:`_save_modules` in ``state``: one module per key."""
    modules = {}

    def loaded(value):
        if not isinstance(value, SavedModule):
            return value
        return modules.setdefault(value.key, value.module)

    for name in MODULE_ENTRIES:
        if name in state:
            state[name] = loaded(state[name])
    for name in MODULE_DICTS:
        if isinstance(state.get(name), dict):
            state[name] = {k: loaded(v) for k, v in state[name].items()}


def get_state(state):
    """The picklable form of an estimator's ``__dict__`` ``state``."""
    from . import __version__

    state = {"_state_format": STATE_FORMAT, **state}
    _save_modules(state)
    state["_sklearn_vhp_version"] = __version__
    if "module_" in state:
        module, optimizer = state["module_"], state["_optimizer"]
        weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        opt = optimizer.state_dict()
        optimizer = {
            "state": {
                str(i): {k: _to_numpy(v) for k, v in entry.items()}
                for i, entry in opt["state"].items()
            },
            "param_groups": [dict(g) for g in opt["param_groups"]],
        }
        state["module_"] = weights
        state["_optimizer_state"] = optimizer
        state["device_"] = str(state["device_"])
        state.pop("_optimizer", None)
    # Object arrays (the phase column, feature names) as lists: numpy rebuilds
    # an object array from its pickle without checking its length against its
    # shape, so one damaged byte there crashed the interpreter before any check.
    if isinstance(state.get("history_"), dict):
        state["history_"] = {k: _object_list(v) for k, v in state["history_"].items()}
    if "feature_names_in_" in state:
        state["feature_names_in_"] = _object_list(state["feature_names_in_"])
    # Last in the pickle, far from the format number at its start: damage to
    # one cannot also hide the other.
    state["_state_checksum"] = state_checksums(state)
    return state


def state_checksums(state):
    """SHA-256 (hex) of each entry of ``state`` (a dict), by key, from :func:`_canonical`.

    Each digest covers its key too: pickle stores a key string once for the
    state and its checksums, so damage to it renames both.
    """
    out = {}
    for key, value in state.items():
        digest = hashlib.sha256()
        _canonical(key, digest.update, set())
        _canonical(value, digest.update, set())
        out[key] = digest.hexdigest()
    return out


def _check_state(state, saved_by):
    """Raise ``ValueError`` naming the damaged parts unless ``state`` matches its checksums."""
    saved = state.pop("_state_checksum", None)
    try:
        found = state_checksums(state)
    except Exception:  # noqa: BLE001 -- a value no saved state holds: damage
        found = None
    if isinstance(saved, dict) and found == saved:
        return
    if not isinstance(saved, dict) or found is None:
        parts = ["the checksums themselves" if found is not None else "an unreadable value"]
    else:
        keys = sorted(set(saved) | set(found), key=str)
        parts = [
            PART_NAMES.get(k, repr(k)) if isinstance(k, str) else repr(k)
            for k in keys
            if saved.get(k) != found.get(k)
        ]
    raise ValueError(
        f"This VHPEstimator file is damaged (saved by {saved_by}): the SHA-256 checksums "
        "saved with its state do not match its content, in "
        f"{', '.join(parts[:6])}{' ...' if len(parts) > 6 else ''}. Load an undamaged "
        "copy or refit the model."
    )


def set_state(state):
    """An estimator's ``__dict__`` from :func:`get_state`'s form, checked."""
    from . import __version__

    saved_version = state.get("_sklearn_vhp_version")
    state_format = state.get("_state_format", 1)
    saved_by = (
        f"sklearn-vhp {saved_version}"
        if isinstance(saved_version, str)
        else "a sklearn-vhp older than 0.1.0.dev0 (which did not record its version)"
    )
    if isinstance(state_format, Integral) and state_format > STATE_FORMAT:
        raise ValueError(
            f"This VHPEstimator was saved by {saved_by} in state format {state_format!r}; "
            f"sklearn-vhp {__version__} reads formats up to {STATE_FORMAT}. Upgrade "
            "sklearn-vhp to load it."
        )
    if state_format == STATE_FORMAT or "_state_checksum" in state:
        _check_state(state, saved_by)  # before anything is read
    elif state_format not in (1, 2) or isinstance(state_format, bool):
        raise ValueError(
            f"This VHPEstimator file is damaged (saved by {saved_by}): its state format "
            f"{state_format!r} is not one sklearn-vhp ever wrote. Load an undamaged copy "
            "or refit the model."
        )
    _load_modules(state)  # the user's networks, once their checksums held
    if isinstance(state.get("history_"), dict):  # object arrays were saved as lists
        state["history_"] = {k: _object_array(v) for k, v in state["history_"].items()}
    if "feature_names_in_" in state:
        state["feature_names_in_"] = _object_array(state["feature_names_in_"])
    state.pop("_sklearn_vhp_version", None)
    state.pop("_state_format", None)
    checksum = state.pop("_weights_checksum", None)
    optimizer_state = state.pop("_optimizer_state", None)
    blob = state.get("module_")
    if blob is None:  # not fitted
        return state
    missing = [k for k in FITTED_STATE if k not in state]
    if missing:
        raise ValueError(
            f"This fitted VHPEstimator was saved by {saved_by}, whose state lacks "
            f"{', '.join(missing)} (sklearn-vhp {__version__} needs them to predict and "
            "to continue training). Refit the model, or load it with the version that "
            "saved it."
        )
    device = torch.device(state["device_"])
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"This model was fitted on {device} but CUDA is not available; "
            "it is loaded on the CPU.",
            UserWarning,
            stacklevel=3,
        )
        device = torch.device("cpu")
    if isinstance(blob, bytes):  # format 1: torch.save bytes
        try:
            saved = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"The weights of this VHPEstimator (saved by {saved_by}) are damaged and "
                f"cannot be read ({type(exc).__name__}: {exc}). Load an undamaged copy "
                "or refit the model."
            ) from exc
        weights, optimizer_state = saved["module"], saved["optimizer"]
    else:
        # Format 2 checked its weights and Adam's arrays only; format 3 was
        # checked whole above.
        if state_format == 2 and (
            checksum is None or checksum != _checksum(blob, optimizer_state["state"])
        ):
            raise ValueError(
                f"The weights of this VHPEstimator (saved by {saved_by}) are damaged: "
                "their SHA-256 checksum does not match the one saved with them. Load an "
                "undamaged copy or refit the model."
            )
        weights = {k: torch.tensor(np.array(v)) for k, v in blob.items()}
        optimizer_state = {
            "state": {
                int(i): {k: _from_numpy(v) for k, v in entry.items()}
                for i, entry in optimizer_state["state"].items()
            },
            "param_groups": [dict(g) for g in optimizer_state["param_groups"]],
        }
    module = build_vae(**state["_module_config"])
    expected = module.state_dict()
    # Buffers added since: their defaults reproduce the older models.
    for key in [k for k in NEW_BUFFERS if k in expected and k not in weights]:
        weights[key] = expected[key]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(
        k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape
    )
    if missing or unexpected or shapes:
        details = "; ".join(
            f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for what, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("other shapes", shapes),
            )
            if keys
        )
        raise ValueError(
            f"This VHPEstimator was saved by {saved_by}, whose model layout differs "
            f"from that of sklearn-vhp {__version__} ({details}). Refit the model, or "
            "load it with the version that saved it."
        )
    module.load_state_dict(weights)
    module.to(device).eval()
    optimizer = make_adam(module, state.get("learning_rate", 1e-3))
    try:
        optimizer.load_state_dict(optimizer_state)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"The optimiser state of this VHPEstimator (saved by {saved_by}) does not "
            f"fit its model ({exc}); it cannot continue training. Refit the model."
        ) from exc
    state["module_"] = module
    state["_optimizer"] = optimizer
    state["device_"] = device
    # Training state added since: these defaults continue older models as they trained.
    state.setdefault("divergences_", [])
    state.setdefault("_train_noise_variance", state["_module_config"].get("noise_variance"))
    state.setdefault("_prior_scaled", True)
    if isinstance(state.get("batch_size"), int):  # before batch_size="auto"
        state.setdefault("batch_size_", state["batch_size"])
    # Models saved before learned decoder variances had one scalar variance.
    gaussian = state.get("likelihood_") == "gaussian"
    state.setdefault("decoder_variance", "scalar")
    state.setdefault("decoder_variance_", "scalar" if gaussian else None)
    # ... and before decoder_dropout, none.
    state.setdefault("decoder_dropout", 0.0)
    if isinstance(state.get("_structure"), dict):
        state["_structure"].setdefault("decoder_variance", "scalar")
        state["_structure"].setdefault("decoder_dropout", 0.0)
    return state


def _object_list(value):
    """A 1-D object array as a list (see :func:`get_state`); anything else as it is."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1:
        return value.tolist()
    return value


def _object_array(value):
    """Undo :func:`_object_list`."""
    if isinstance(value, list):
        out = np.empty(len(value), dtype=object)
        out[:] = value
        return out
    return value


def _to_numpy(value):
    return value.detach().cpu().numpy() if torch.is_tensor(value) else value


def _from_numpy(value):
    return torch.tensor(np.array(value)) if isinstance(value, np.ndarray) else value


def _checksum(weights, optimizer_state):
    """SHA-256 of the weights and Adam's arrays: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()

    def add(name, value):
        arr = np.ascontiguousarray(value)
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())

    for key in sorted(weights):
        add(key, weights[key])
    for i in sorted(optimizer_state, key=str):
        for key in sorted(optimizer_state[i]):
            value = optimizer_state[i][key]
            if isinstance(value, np.ndarray):
                add(f"{i}.{key}", value)
    return digest.hexdigest()


def _canonical(obj, feed, active):
    """Feed a canonical byte encoding of ``obj`` to ``feed`` (a hash's ``update``).

    Equal states give equal bytes whatever their memory layout or the order
    of a dict's keys: arrays and tensors by dtype, shape and C-order bytes
    (object arrays element by element), floats by their IEEE-754 bytes,
    strings as UTF-8, containers element by element (a dict by sorted
    encoded keys), classes and functions by name, any other object by its
    class and its ``__getstate__()`` (a torch module: its parameters,
    buffers, submodules and settings). ``active``: ids of the containers
    being encoded (a reference cycle is encoded as a marker).
    """
    if obj is None or obj is Ellipsis:
        feed(b"N" if obj is None else b"E")
    elif isinstance(obj, bool | np.bool_):
        feed(b"B1" if obj else b"B0")
    elif isinstance(obj, Integral):
        feed(b"I%d;" % int(obj))
    elif isinstance(obj, float):
        feed(b"F" + struct.pack("<d", obj))
    elif isinstance(obj, complex):
        feed(b"C" + struct.pack("<dd", obj.real, obj.imag))
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        feed(b"S%d;" % len(data) + data)
    elif isinstance(obj, bytes | bytearray | memoryview):
        data = bytes(obj)
        feed(b"Y%d;" % len(data) + data)
    elif isinstance(obj, np.generic):  # a numpy scalar: a 0-d array
        _canonical(np.asarray(obj), feed, active)
    elif isinstance(obj, np.ndarray):
        header = f"A{obj.dtype.str}|{obj.dtype.descr if obj.dtype.fields else ''}|{obj.shape};"
        feed(header.encode())
        if obj.dtype.hasobject:
            items = obj.ravel(order="C").tolist()
            if all(type(item) is str for item in items):  # e.g. history_["phase"]: at once
                data = [item.encode("utf-8", "surrogatepass") for item in items]
                feed(b"s" + np.array([len(d) for d in data], dtype="<i8").tobytes())
                feed(b"".join(data))
            else:
                for item in items:
                    _canonical(item, feed, active)
        else:
            feed(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, nn.parameter.UninitializedTensorMixin):  # a lazy layer not yet run
        feed(f"U{type(obj).__name__};".encode())
    elif isinstance(obj, nn.parameter.UninitializedTensorMixin):  # a lazy layer not yet run
        feed(f"U{type(obj).__name__};".encode())
    elif torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        feed(f"T{type(obj).__name__}|{t.dtype}|{tuple(t.shape)};".encode())
        feed(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, torch.device | torch.dtype | np.dtype):
        feed(f"V{type(obj).__name__}|{obj};".encode())
    elif isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        name = f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
        feed(f"G{name};".encode())
    else:
        if id(obj) in active:
            feed(b"R")
            return
        active.add(id(obj))
        try:
            _canonical_container(obj, feed, active)
        finally:
            active.discard(id(obj))


def _canonical_container(obj, feed, active):
    """:func:`_canonical` of a container or an object with a state."""
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            parts = []
            _canonical(key, parts.append, active)
            items.append((b"".join(parts), value))
        items.sort(key=lambda item: item[0])
        feed(f"D{kind}|{len(items)};".encode())
        for key, value in items:
            feed(key)
            _canonical(value, feed, active)
    elif isinstance(obj, list | tuple):
        feed(f"L{kind}|{len(obj)};".encode())
        for item in obj:
            _canonical(item, feed, active)
    elif isinstance(obj, set | frozenset):
        encoded = []
        for item in obj:
            parts = []
            _canonical(item, parts.append, active)
            encoded.append(b"".join(parts))
        feed(f"Q{kind}|{len(encoded)};".encode())
        for item in sorted(encoded):
            feed(item)
    else:
        # An object's own checksum form first (a saved network: the module,
        # not the tree skops.io gets), then its pickled state; Python 3.10's
        # plain objects have no __getstate__: their __dict__.
        getstate = getattr(obj, "_checksum_state", None) or getattr(obj, "__getstate__", None)
        state = getstate() if getstate is not None else getattr(obj, "__dict__", None)
        if isinstance(obj, nn.Module):
            # Hooks are code, not data, and torch's pickle rewraps them
            # (_WrappedHook): the module's data is the rest.
            state = {k: v for k, v in state.items() if "hook" not in k}
        feed(f"O{kind};".encode())
        _canonical(state, feed, active)
