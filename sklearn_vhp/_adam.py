"""Adam without ``torch.optim``: the same fused kernel, state and numbers, no ``torch._dynamo``.

Every ``torch.optim`` optimiser imports ``torch._dynamo`` the first time one
is built (``Optimizer.add_param_group`` and ``step`` are wrapped for the
compiler): 0.9-1.7 s on a quiet core and 7.4 s on a loaded one, the largest
part of a first ``fit``'s set-up. :class:`FusedAdam` calls the kernel
``torch.optim.Adam(fused=True)`` calls (``torch._fused_adam_``), keeps its
state under the same names and reads and writes the same ``state_dict``, so
training gives the same numbers bit for bit and saved models load either way.
"""

import torch

#: torch.optim.Adam's defaults (the estimator changes only ``lr``).
DEFAULTS = dict(
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    maximize=False,
    foreach=None,
    capturable=False,
    differentiable=False,
    fused=True,
    decoupled_weight_decay=False,
)


def available():
    """Whether this torch build has the fused Adam kernel."""
    return hasattr(torch, "_fused_adam_")


class FusedAdam:
    """Adam on one group of parameters of one device and dtype, one fused kernel per step.

    The members the training engine and persistence use, as in
    :class:`torch.optim.Adam`: ``param_groups`` (one group, whose ``"lr"``
    may be changed between steps), ``state`` (per parameter: ``step``,
    ``exp_avg``, ``exp_avg_sq``), :meth:`zero_grad`, :meth:`step`,
    :meth:`state_dict` and :meth:`load_state_dict`.
    """

    def __init__(self, params, lr):
        self.param_groups = [dict(DEFAULTS, lr=lr, params=list(params))]
        self.state = {}

    def zero_grad(self, set_to_none=True):
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self):
        """One Adam step of the parameters that have a gradient."""
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        states = [self.state.get(p) or self._new_state(p) for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            steps,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            amsgrad=False,
            maximize=False,
        )

    def _new_state(self, p):
        state = self.state[p] = dict(
            step=torch.zeros((), dtype=torch.float32, device=p.device),
            exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
            exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format),
        )
        return state

    def state_dict(self):
        """``torch.optim.Adam``'s form: state by parameter index, the group's settings."""
        group = self.param_groups[0]
        index = {id(p): i for i, p in enumerate(group["params"])}
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        state = dict(sorted(state.items()))
        settings = {k: v for k, v in group.items() if k != "params"}
        return {"state": state, "param_groups": [dict(settings, params=sorted(index.values()))]}

    def load_state_dict(self, state_dict):
        """Load :meth:`state_dict`'s (or ``torch.optim.Adam``'s) form; refuse another model's."""
        params = self.param_groups[0]["params"]
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise ValueError("the saved parameter groups do not match the model's parameters")
        state = {}
        for i, entry in state_dict["state"].items():
            p = params[int(i)]
            entry = dict(entry)
            for name in ("exp_avg", "exp_avg_sq"):
                t = torch.as_tensor(entry[name])
                if t.shape != p.shape:
                    raise ValueError(
                        f"saved {name} of parameter {i} has shape {tuple(t.shape)}, "
                        f"the parameter {tuple(p.shape)}"
                    )
                entry[name] = t.to(device=p.device, dtype=p.dtype)
            step = torch.as_tensor(entry["step"], dtype=torch.float32)
            entry["step"] = step.to(p.device).reshape(())
            state[p] = entry
        saved = {k: v for k, v in groups[0].items() if k != "params"}
        self.param_groups = [dict(DEFAULTS, **saved, params=params)]
        self.param_groups[0]["betas"] = tuple(self.param_groups[0]["betas"])
        self.state = state
