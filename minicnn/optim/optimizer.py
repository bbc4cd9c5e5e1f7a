"""The optimizer base: parameter groups, per-parameter state, zero_grad, state_dict.

Updates run under ``no_grad`` on the raw arrays (``p.data``), in place, so the Parameter
objects a model holds stay the same. Each update is one fused kernel per parameter
(``device.kernels.sgd_step`` / ``adam_step`` / ``rmsprop_step``) that reads the gradient and
rewrites the parameter and its state arrays in one pass, with no temporaries.

``param_groups`` is a list of dicts (``params`` plus hyper-parameters such as ``lr``), so
per-group learning rates work as in PyTorch::

    optim.SGD([{"params": model.features.parameters()},
               {"params": model.classifier.parameters(), "lr": 1e-3}], lr=1e-2, momentum=0.9)
"""
import copy

from ..autograd import no_grad
from ..tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> dict of arrays / numbers
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {group['lr']} (must be >= 0)")

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = Tensor._from_array(p.device.xp.zeros_like(p.data), p.device)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            from ..autograd import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state.setdefault(id(p), {})
                    self._update(p, p.grad.data, state, group)
        return loss

    def _update(self, p, g, state, group):  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- helpers of the fused updates ---------------------------------------------------------
    def _kernel_arrays(self, p, g):
        """``(x, g)`` for an in-place kernel: ``x`` is ``p.data`` itself when it is C-contiguous, else
        a contiguous copy that :meth:`_write_back` puts back; ``g`` the gradient as a C-contiguous
        array of ``p``'s dtype (a copy only where it is not one already)."""
        x = p.data if p.data.flags.c_contiguous else p.data.copy(order="C")
        if g.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: the gradient's shape {tuple(g.shape)} differs from the "
                             f"parameter's {tuple(x.shape)}")
        if not g.flags.c_contiguous or g.dtype != x.dtype:
            g = g.astype(x.dtype, order="C")  # astype keeps a 0-d shape
        return x, g

    @staticmethod
    def _write_back(p, x):
        """Copy the updated ``x`` into ``p.data`` where :meth:`_kernel_arrays` had to copy it."""
        if x is not p.data:
            p.data[...] = x

    def _state_array(self, state, key, p, zeros=True):
        """``state[key]`` as a C-contiguous array of ``p``'s shape and dtype, and whether it was just
        made: zeros (or uninitialised, ``zeros=False``) when missing or None; a loaded array of
        another dtype or layout is converted once and stored back."""
        xp = p.device.xp
        a = state.get(key)
        if a is None:
            a = state[key] = (xp.zeros if zeros else xp.empty)(p.data.shape, p.data.dtype)
            return a, True
        if a.shape != p.data.shape:
            raise ValueError(f"{type(self).__name__}: state {key!r} has shape {tuple(a.shape)}, the parameter "
                             f"{tuple(p.data.shape)}")
        if a.dtype != p.data.dtype or not a.flags.c_contiguous:
            a = state[key] = a.astype(p.data.dtype, order="C")
        return a, False

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}`` like PyTorch:
        parameters are numbered in group order."""
        index, groups = {}, []
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                entry["params"].append(index[id(p)])
            groups.append(entry)
        state = {index[pid]: copy.deepcopy(s) for pid, s in self.state.items() if pid in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the parameter groups do not match this optimizer's")
        by_index = {}
        for saved, group in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], group["params"]):
                by_index[i] = p
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[id(p)] = {k: (p.device.xp.asarray(v) if hasattr(v, "shape") and getattr(v, "ndim", 0) else v)
                                 for k, v in copy.deepcopy(s).items()}

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"
