"""``Module`` and ``Parameter``: the PyTorch-style way to hold weights and compose layers.

A Module keeps three ordered registries, filled by plain attribute assignment:

- ``_parameters``: :class:`Parameter` (trainable tensors; ``parameters()`` yields them);
- ``_buffers``: state that is saved but not trained (BatchNorm's running statistics);
- ``_modules``: sub-modules; names join with dots (``features.0.weight``) in
  ``named_parameters()`` and ``state_dict()``, exactly as PyTorch names them, so a
  PyTorch state_dict loads name for name.
"""
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from ..device import get_device
from ..tensor import Tensor, to_host
from .hooks import HOOK_DICTS, add_hook, call_with_hooks


class Parameter(Tensor):
    """A Tensor that is a module's trainable weight (``requires_grad=True`` by default)."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            super().__init__(data.data, requires_grad=requires_grad, device=data.device)
        else:
            super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _to_numpy(value):
    """A NumPy array from a minicnn Tensor, a NumPy/CuPy array, or (duck-typed) a torch tensor."""
    if not isinstance(value, Tensor) and all(hasattr(value, a) for a in ("detach", "cpu", "numpy")):
        return value.detach().cpu().numpy()  # a torch.Tensor; torch is never imported here
    return to_host(value)


class Module:
    """Base class of layers and models: subclass, assign sub-modules and Parameters in
    ``__init__``, write ``forward``; call the module to run it.

    Example::

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(784, 10)

            def forward(self, x):
                return self.fc(x)
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        for name in HOOK_DICTS:
            object.__setattr__(self, name, OrderedDict())
        object.__setattr__(self, "_has_hooks", False)  # any hook registered (kept by minicnn.nn.hooks)

    # ---- registration through attributes -------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(an nn.Parameter or None expected)")
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (a Tensor or None expected)")
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(an nn.Module or None expected)")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Add ``param`` (a Parameter or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: saved in ``state_dict`` (unless ``persistent=False``), moved by ``to``,
        not returned by ``parameters()``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    register_module = add_module

    # ---- running ---------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        if self._has_hooks:
            return call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ---- hooks (PyTorch's semantics; see minicnn.nn.hooks) ----------------------------------
    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before every ``forward``; ``args`` is the tuple of positional
        arguments. A result that is not None replaces them (a single value becomes ``(value,)``).
        With ``with_kwargs=True``: ``hook(module, args, kwargs)`` returning None or
        ``(new_args, new_kwargs)``. Hooks run in registration order (``prepend=True``: first).

        Returns:
            a :class:`~minicnn.nn.hooks.RemovableHandle`; ``handle.remove()`` unregisters the hook.
        """
        return add_hook(self, "_forward_pre_hooks", hook, prepend, with_kwargs=with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args, output)`` after every ``forward`` (``args``: the positional
        arguments forward received, after the pre-hooks); a result that is not None replaces the
        output. With ``with_kwargs=True``: ``hook(module, args, kwargs, output)``. Returns a handle."""
        return add_hook(self, "_forward_hooks", hook, prepend, with_kwargs=with_kwargs)

    def register_full_backward_hook(self, hook, *, prepend=False):
        """Call ``hook(module, grad_input, grad_output)`` in backward, once the gradients w.r.t.
        all of the module's tensor inputs of a call are computed.

        ``grad_input``: one entry per positional argument of the call, d loss / d argument as a
        Tensor, None where the argument is not a tensor or needs no gradient; ``grad_output``:
        one entry per output (a single output counts as a tuple of one). A result that is not None
        (a tuple of the same length) replaces ``grad_input`` in the rest of backward. Gradients
        w.r.t. the module's parameters are not part of ``grad_input`` (as in PyTorch). Returns a handle.
        """
        return add_hook(self, "_backward_hooks", hook, prepend)

    def register_full_backward_pre_hook(self, hook, *, prepend=False):
        """Call ``hook(module, grad_output)`` in backward when the gradients w.r.t. the module's
        outputs of a call are known, before the module's own backward; a result that is not None
        (a tuple of the same length) replaces ``grad_output``. Returns a handle."""
        return add_hook(self, "_backward_pre_hooks", hook, prepend)

    # ---- traversal -------------------------------------------------------------------------
    def named_modules(self, prefix="", memo=None):
        """(dotted name, module) for this module and every descendant, each module once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse):
        """(dotted name, tensor) of ``registry`` (``"_parameters"`` or ``"_buffers"``) over this
        module and, with ``recurse``, every descendant; a tensor shared by two modules once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, t in getattr(m, registry).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix="", recurse=True):
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module (children first) and on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes, gradients, devices ----------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active, BatchNorm uses batch statistics); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of every parameter (``None``, or zeros with set_to_none=False)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor._from_array(p.device.xp.zeros_like(p.data), p.device)

    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``, in
        place (the Parameter objects stay the same, so an optimizer keeps working); returns self.

        ``to("cuda")``, ``to(np.float64)`` and ``to("cpu", np.float32)`` all work.
        """
        if device is not None and not isinstance(device, str) and not hasattr(device, "xp"):
            device, dtype = None, device  # to(dtype)
        dev = get_device(device) if device is not None else None
        for t in list(self.parameters()) + list(self.buffers()):
            _move_tensor(t, dev, dtype)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self, prefix=""):
        """OrderedDict of dotted name → Tensor (parameters and persistent buffers), PyTorch's
        names (``0.weight``, ``bn1.running_mean``, ``bn1.num_batches_tracked``). The tensors
        share memory with the module (like PyTorch's); copy before modifying."""
        out = OrderedDict()
        for mod_prefix, m in self.named_modules(prefix=prefix.rstrip(".")):
            dot = f"{mod_prefix}." if mod_prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[dot + name] = p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[dot + name] = b.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters and buffers of the same dotted names.

        Values may be minicnn Tensors, NumPy arrays or PyTorch tensors (converted with
        ``.detach().cpu().numpy()``; torch is not imported). With ``strict=True`` missing or
        unexpected keys raise; shape mismatches always raise. A missing BatchNorm
        ``num_batches_tracked`` is tolerated (older PyTorch checkpoints lack it).

        Returns:
            (missing_keys, unexpected_keys) as a named tuple-like pair.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append("missing keys: " + ", ".join(missing))
            if unexpected:
                errors.append("unexpected keys: " + ", ".join(unexpected))
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = _to_numpy(state_dict[k])
            if tuple(value.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {k}: the checkpoint has shape {tuple(value.shape)}, "
                              f"the model has {tuple(target.shape)}")
                continue
            if not errors:
                target.data[...] = target.device.from_numpy(value.astype(target.dtype, copy=False))
        if errors:
            raise RuntimeError(f"load_state_dict for {type(self).__name__}: " + "; ".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Save the state_dict as a NumPy ``.npz`` archive at exactly ``path`` (no suffix is
        added): one array per dotted name, host copies of the parameters and buffers."""
        arrays = {k: v.numpy() for k, v in self.state_dict().items()}
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def load(self, path, strict=True):
        """Load a ``.npz`` written by :meth:`save` (or any ``.npz`` of dotted names) through
        :meth:`load_state_dict`; returns self.

        Raises:
            ValueError: ``path`` is not a readable ``.npz`` archive of arrays (a ``.npy`` file,
                text, a truncated or corrupted archive, pickled objects).
            RuntimeError: the names or shapes do not match this module (see ``load_state_dict``).
        """
        self.load_state_dict(_read_npz(path), strict=strict)
        return self

    # ---- printing ----------------------------------------------------------------------------
    def extra_repr(self):
        """The text inside ``Name(...)``; layers override it (``in_features=784, ...``)."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def num_parameters(self, trainable_only=False):
        return int(sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only))


class _IncompatibleKeys(tuple):
    def __new__(cls, missing, unexpected):
        obj = super().__new__(cls, (missing, unexpected))
        obj.missing_keys, obj.unexpected_keys = missing, unexpected
        return obj

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


# What np.load raises for a file that is not a readable .npz of plain arrays (pickled data is
# refused, allow_pickle=False); a missing file keeps its FileNotFoundError.
_UNREADABLE = (ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _read_npz(path):
    """name -> array of the ``.npz`` archive at ``path``; ValueError naming the file if it is
    not one (np.load returns a bare array for a ``.npy`` file)."""
    expected = "expected a .npz archive of arrays, as Module.save writes"
    try:
        data = np.load(path, allow_pickle=False)
    except _UNREADABLE as e:
        raise ValueError(f"Module.load: {path} is not a .npz archive ({e}); {expected}") from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"Module.load: {path} holds a single array of shape {data.shape} "
                         f"(a .npy file); {expected}")
    with data:
        arrays = {}
        for name in data.files:
            try:
                arrays[name] = data[name]
            except _UNREADABLE as e:
                raise ValueError(f"Module.load: {path}: array {name!r} cannot be read ({e}); {expected}") from e
    return arrays


def _move_tensor(t, dev, dtype):
    """Move/cast ``t`` in place (same object), its gradient with it."""
    for holder in (t, t.grad):
        if holder is None:
            continue
        data = holder.data
        if dev is not None and dev != holder.device:
            data = dev.from_numpy(holder.device.to_numpy(data))
            holder.device = dev
        if dtype is not None and data.dtype.kind == "f":
            data = data.astype(dtype, copy=False)
        holder.data = data
