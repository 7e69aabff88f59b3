"""The user's own networks, wrapped so that the VAE sees the built-in interfaces.

A custom encoder maps rows to features; :class:`CustomGaussianEncoder` puts
the package's Gaussian head on top (a linear layer to the mean and
log-variance, the linear shortcut from the input that the PCA start sets,
and the shared variance), so it behaves like
:class:`~.networks.GaussianMLP`. A custom decoder maps codes to the
likelihood's parameters; :class:`CustomDecoder` flattens its output and
keeps the leading dimensions the VAE passes (``(B, S, d)`` codes).

:func:`make_network` turns what the user gave (a module, copied, or what
builds one) into a module; the wrappers check it on a tiny batch (one
forward pass) with errors that name the expected and actual shapes, and
measure the activations a row needs (for the memory budgets).
"""

import copy
import inspect
import math

import torch
from torch import nn

from .networks import GaussianHead

#: Rows of the batch that checks a custom network at construction.
PROBE_ROWS = 2
#: Keyword arguments a builder may take (by name) from the data.
BUILDER_ARGUMENTS = ("n_features", "n_components", "image_shape")


def make_network(spec, what, **known):
    """A fresh module from ``spec``: a deep copy of a module, or what a builder returns.

    A builder (a class or any callable) is called with those of ``known``
    (``n_features``, ``n_components``, ``image_shape``) that its signature
    names, or all of them if it takes ``**kwargs``. ``what`` names the
    network in errors (``"encoder"`` or ``"decoder"``).
    """
    if isinstance(spec, nn.Module):
        module = copy.deepcopy(spec)
    elif callable(spec):
        module = spec(**builder_kwargs(spec, known))
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"{what}={spec!r} must build a torch.nn.Module; it returned "
                f"{type(module).__name__}."
            )
    else:
        raise TypeError(
            f"{what} must be None, a torch.nn.Module or a callable that builds one, "
            f"got {type(spec).__name__}."
        )
    check_tensors(module, what)
    return module.to("cpu")


def builder_kwargs(builder, known):
    """The entries of ``known`` that ``builder``'s signature accepts."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # no signature (some builtins): nothing passed
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(known)
    ok = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {k: v for k, v in known.items() if k in params and params[k].kind in ok}


def check_tensors(module, what):
    """Refuse parameters and buffers the package cannot train: meta tensors, non-float32."""
    for kind, named in (("parameter", module.named_parameters), ("buffer", module.named_buffers)):
        for name, t in named():
            if isinstance(t, nn.parameter.UninitializedTensorMixin):
                continue  # a lazy module: materialised by the first forward pass
            if t.is_meta:
                raise ValueError(
                    f"The {what}'s {kind} {name!r} is on the meta device (it has no "
                    "data). Pass a module with materialised weights, e.g. "
                    "module.to_empty(device='cpu') and initialise it."
                )
            if t.is_floating_point() and t.dtype != torch.float32:
                raise ValueError(
                    f"The {what}'s {kind} {name!r} is {t.dtype}; the model is trained "
                    "in torch.float32 (and copied to float64 for float64 inputs). "
                    "Convert the module with module.float()."
                )


class _ActivationCounter:
    """Floats per row of the outputs of a module's leaves during one forward pass."""

    def __init__(self, module, rows):
        self.rows, self.floats = rows, 0
        leaves = [m for m in module.modules() if next(m.children(), None) is None]
        self.handles = [m.register_forward_hook(self._hook) for m in leaves]

    def _hook(self, module, inputs, output):
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if torch.is_tensor(t):
                self.floats += t.numel() // max(1, self.rows)

    def remove(self):
        for h in self.handles:
            h.remove()


def probe(module, x, what, expected):
    """Run ``module`` once on ``x`` in eval mode; the output and floats per row.

    Eval mode and no gradients: dropout draws nothing and batch
    normalisation's running statistics are left alone. ``expected``
    describes the output in errors.
    """
    training = module.training
    counter = _ActivationCounter(module, x.shape[0])
    module.eval()
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:
        raise ValueError(
            f"The {what} failed on a batch of shape {tuple(x.shape)} (float32): "
            f"{type(exc).__name__}: {exc}. It must map {expected}."
        ) from exc
    finally:
        counter.remove()
        module.train(training)
    if not torch.is_tensor(out):
        hint = ""
        if what == "encoder" and isinstance(out, (tuple, list, dict)):
            hint = (
                " (return the features alone, not a mean and a variance: the package "
                "adds the Gaussian head that computes them)"
            )
        raise ValueError(
            f"The {what} must return one tensor; it returned {type(out).__name__}{hint}. "
            f"It must map {expected}."
        )
    if out.dtype != torch.float32:
        raise ValueError(
            f"The {what} returned {out.dtype} for float32 input; it must return "
            f"torch.float32 (the precision of its input). It must map {expected}."
        )
    return out, counter.floats + out[0].numel()


class CustomGaussianEncoder(GaussianHead, nn.Module):
    """A user's feature network with the package's Gaussian head.

    ``forward(x)`` reshapes rows of ``n_in`` features to ``input_shape``,
    runs ``features`` (any module mapping ``(B, *input_shape)`` to
    ``(B, ...)``, flattened to ``(B, n_features_out)``) and the head: a
    linear layer to ``2 n_out`` outputs plus the linear shortcut from the
    flattened input (the PCA start sets it), log-variances softly bounded,
    optionally one shared variance, as in :class:`~.networks.GaussianMLP`.
    The width of the features is found by one forward pass on zeros.

    Parameters
    ----------
    features : nn.Module
        The user's network (owned: a copy).
    n_in : int
        Features of a row.
    n_out : int
        Dimension of the Gaussian.
    input_shape : tuple of int or None
        The shape of one row for ``features`` (``image_shape``), or ``None``
        for flat rows.
    shortcut : bool, default=True
    shared_variance : bool, default=False
    """

    def __init__(
        self, features, n_in, n_out, *, input_shape=None, shortcut=True, shared_variance=False
    ):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.input_shape = (n_in,) if input_shape is None else tuple(input_shape)
        shape = (PROBE_ROWS, *self.input_shape)
        expected = (
            f"a float32 batch of shape {shape} (rows of X"
            f"{', reshaped to image_shape' if input_shape is not None else ''}) to "
            f"float32 features of shape ({PROBE_ROWS}, n_encoder_features) or "
            f"({PROBE_ROWS}, ...)"
        )
        out, floats = probe(features, torch.zeros(shape), "encoder", expected)
        if out.dim() < 2 or out.shape[0] != PROBE_ROWS or out[0].numel() == 0:
            raise ValueError(
                f"The encoder mapped a batch of shape {shape} to shape {tuple(out.shape)}; "
                f"it must map {expected}, one non-empty row of features per input row."
            )
        self.n_hidden_out = out[0].numel()
        self.floats_per_row = self.measured_floats_per_row = floats + 3 * 2 * n_out
        self.features = features
        self.out = nn.Linear(self.n_hidden_out, 2 * n_out)
        self.shortcut = nn.Linear(n_in, 2 * n_out, bias=False) if shortcut else None
        self.shared_logvar = nn.Parameter(torch.zeros(n_out)) if shared_variance else None

    @property
    def head_layers(self):
        return self.out, self.shortcut

    @property
    def user_module(self):
        return self.features

    def forward(self, x):
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.n_in)
        hidden = self.features(flat.reshape(-1, *self.input_shape)).flatten(1)
        mean, logvar = self.gaussian(hidden, flat)
        return mean.reshape(*lead, self.n_out), logvar.reshape(*lead, self.n_out)


class CustomDecoder(nn.Module):
    """A user's decoder: codes ``(B, n_in)`` to ``(B, n_out)`` likelihood parameters.

    The user's network ``net`` maps ``(B, n_in)`` to ``(B, n_out)`` or to
    ``(B, *output_shape)`` (flattened); leading dimensions beyond the batch
    (the VAE's ``(B, S, d)`` samples) are folded into it. Checked by one
    forward pass on zeros. The PCA start calls ``net.set_linear(weight,
    bias)`` if ``net`` has it (the built-in decoders' protocol); else the
    decoder keeps its own initialisation.
    """

    def __init__(self, net, n_in, n_out, *, output_shape=None):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        shapes = [(PROBE_ROWS, n_out)]
        if output_shape is not None and tuple(output_shape) != (n_out,):
            shapes.append((PROBE_ROWS, *output_shape))
        want = " or ".join(str(s) for s in shapes)
        expected = (
            f"a float32 batch of codes of shape ({PROBE_ROWS}, {n_in}) (n_components) to "
            f"float32 means or logits of the rows, of shape {want}"
        )
        out, floats = probe(net, torch.zeros(PROBE_ROWS, n_in), "decoder", expected)
        if tuple(out.shape) not in shapes:
            raise ValueError(
                f"The decoder mapped a batch of codes of shape ({PROBE_ROWS}, {n_in}) to "
                f"shape {tuple(out.shape)}; it must map {expected}."
            )
        self.floats_per_sample = self.measured_floats_per_sample = floats + 2 * n_out
        self.net = net

    @property
    def user_module(self):
        return self.net

    def forward(self, z):
        lead = z.shape[:-1]
        out = self.net(z.reshape(-1, self.n_in))
        return out.reshape(*lead, self.n_out)

    @torch.no_grad()
    def set_linear(self, weight, bias):
        """The PCA start: delegated to the user's network if it has ``set_linear``."""
        set_linear = getattr(self.net, "set_linear", None)
        if set_linear is not None:
            set_linear(weight, bias)


def user_modules(module):
    """Every submodule of ``module`` that belongs to a user's network."""
    found = []
    for m in module.modules():
        if isinstance(m, (CustomGaussianEncoder, CustomDecoder)):
            found += list(m.user_module.modules())
    return found


def input_shape_of(image_shape, n_features):
    """The shape of one row for a custom encoder: ``image_shape`` or flat."""
    if image_shape is None:
        return None
    shape = tuple(int(s) for s in image_shape)
    if math.prod(shape) != n_features:
        raise ValueError(f"image_shape={shape!r} has {math.prod(shape)} values, not {n_features}.")
    return shape
