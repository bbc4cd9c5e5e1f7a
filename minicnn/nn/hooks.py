"""Module hooks with PyTorch's semantics: forward pre-hooks, forward hooks, full backward hooks.

``Module.__call__`` runs ``forward`` directly while a module has no hook; with hooks it calls
:func:`call_with_hooks`, which follows ``torch.nn.Module._call_impl``:

1. forward pre-hooks, in registration order: ``hook(module, args)`` (or, registered
   ``with_kwargs=True``, ``hook(module, args, kwargs)``); a result that is not None replaces the
   arguments (a non-tuple result becomes a one-element tuple);
2. with backward hooks, the tensor arguments pass through an identity :class:`BackwardHookFunction`
   whose backward collects d loss / d input (see :class:`BackwardHook`);
3. ``forward(*args, **kwargs)``;
4. forward hooks, in registration order: ``hook(module, args, output)`` (or
   ``hook(module, args, kwargs, output)``); a result that is not None replaces the output;
5. with backward hooks, the tensor outputs pass through another identity whose backward
   collects d loss / d output.

Each registration returns a :class:`RemovableHandle`. Hooks live in the module's own ordered
dicts; there are no global hooks.
"""
import weakref

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor


class RemovableHandle:
    """What ``register_*_hook`` returns: ``handle.remove()`` unregisters the hook (again: no-op).

    Also a context manager: ``with m.register_forward_hook(f): ...`` removes it on exit.
    """

    def __init__(self, hooks_dict, module):
        self._hooks_ref = weakref.ref(hooks_dict)
        self._module_ref = weakref.ref(module)

    def remove(self):
        hooks = self._hooks_ref()
        if hooks is not None:
            hooks.pop(self, None)
        module = self._module_ref()
        if module is not None:
            update_hook_flag(module)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


#: the per-module ordered dicts of hooks (handle -> (hook, options)), created by Module.__init__
HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks")


def update_hook_flag(module):
    """Set ``module._has_hooks``, the one attribute ``Module.__call__`` reads to skip the hook path."""
    d = module.__dict__
    d["_has_hooks"] = any(d[name] for name in HOOK_DICTS)


def add_hook(module, dict_name, hook, prepend=False, **options):
    """Store ``hook`` (and its options) in ``module.<dict_name>`` under a new handle; returns the handle."""
    if not callable(hook):
        raise TypeError(f"{type(module).__name__}.register hook: expected a callable, got {type(hook).__name__}")
    hooks_dict = getattr(module, dict_name)
    handle = RemovableHandle(hooks_dict, module)
    hooks_dict[handle] = (hook, options)
    if prepend:
        hooks_dict.move_to_end(handle, last=False)
    update_hook_flag(module)
    return handle


def call_with_hooks(module, args, kwargs):
    """Run ``module.forward(*args, **kwargs)`` with the module's hooks (steps in the module docstring)."""
    bw_hook = None
    if module._backward_hooks or module._backward_pre_hooks:
        bw_hook = BackwardHook(module, [h for h, _ in module._backward_hooks.values()],
                               [h for h, _ in module._backward_pre_hooks.values()])
    for hook, options in list(module._forward_pre_hooks.values()):
        if options.get("with_kwargs"):
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"forward pre-hook of {type(module).__name__} registered with_kwargs=True must "
                                       f"return None or a tuple (new_args, new_kwargs), got {type(result).__name__}")
                args, kwargs = result
                args = args if isinstance(args, tuple) else (args,)
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    if bw_hook is not None:
        args = bw_hook.setup_input_hook(args)
    output = module.forward(*args, **kwargs)
    for hook, options in list(module._forward_hooks.values()):
        result = hook(module, args, kwargs, output) if options.get("with_kwargs") else hook(module, args, output)
        if result is not None:
            output = result
    if bw_hook is not None:
        output = bw_hook.setup_output_hook(output)
    return output


class BackwardHookFunction(Function):
    """Identity ``y_i = x_i`` on several tensors whose backward hands ``(gy_1, ..., gy_n)`` to a
    callback and passes on what it returns (the hooks' replacement gradients, or the same)."""

    @staticmethod
    def forward(ctx, *xs, on_backward=None):
        ctx.on_backward = on_backward
        return tuple(xs)

    @staticmethod
    def backward(ctx, *gys):
        return tuple(ctx.on_backward(gys))


class BackwardHook:
    """The state of one call of a module with full backward hooks (PyTorch's ``BackwardHook``).

    The tensor arguments that require grad and the tensor outputs that require grad pass through
    a :class:`BackwardHookFunction`. In backward the output identity runs first (it is downstream):
    it records ``grad_output`` (one entry per output, None for a non-tensor or an output that needs
    no grad) and runs the backward pre-hooks ``hook(module, grad_output)``. The input identity
    runs once the gradients w.r.t. all of the module's inputs are summed (the topological order
    puts it after every op of the module that reads them); it calls
    ``hook(module, grad_input, grad_output)``, ``grad_input`` having one entry per positional
    argument (None where the argument is not a tensor or needs no grad). A hook may return a
    replacement tuple of the same length. When no input requires grad the hooks run from the
    output identity with ``grad_input`` all None, and must return None.
    """

    def __init__(self, module, hooks, pre_hooks):
        self.module = module
        self.hooks, self.pre_hooks = hooks, pre_hooks
        self.n_inputs = self.n_outputs = 0
        self.inputs = None  # (positions, (shape, dtype, device) each) of the wrapped arguments
        self.outputs = None
        self.grad_outputs = None

    # ---- forward: wrap ---------------------------------------------------------------------
    @staticmethod
    def _wrap(values, on_backward):
        """(values with each tensor that requires grad replaced by its identity's output,
        (their positions, their (shape, dtype, device))), or (values, None) when none is wrapped."""
        index = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v.requires_grad]
        if not index or not is_grad_enabled():
            return values, None
        olds = [values[i] for i in index]
        news = BackwardHookFunction.apply(*olds, on_backward=on_backward)
        values = list(values)
        for i, old, new in zip(index, olds, news):
            new._version = old._version  # the identity's output aliases its input's memory
            values[i] = new
        return tuple(values), (index, [(t.shape, t.dtype, t.device) for t in olds])

    def setup_input_hook(self, args):
        self.n_inputs = len(args)
        args, self.inputs = self._wrap(args, self._input_backward)
        return args

    def setup_output_hook(self, output):
        single = not isinstance(output, tuple)
        outs = (output,) if single else output
        self.n_outputs = len(outs)
        outs, self.outputs = self._wrap(outs, self._output_backward)
        return outs[0] if single else outs

    # ---- backward: collect, call, unpack ---------------------------------------------------
    @staticmethod
    def _pack(wrapped, grads, n):
        """A tuple of n entries: the gradients (as Tensors) at the wrapped positions, None elsewhere."""
        packed = [None] * n
        if wrapped is not None:
            for i, (_, _, device), g in zip(*wrapped, grads):
                packed[i] = None if g is None else Tensor._from_array(g, device)
        return tuple(packed)

    def _unpack(self, wrapped, packed, what):
        """The arrays at the wrapped positions of a hook's tuple, shapes checked, dtype cast."""
        arrays = []
        for i, (shape, dtype, device) in zip(*wrapped):
            g = packed[i]
            if g is None:
                arrays.append(None)
                continue
            a = g.data if isinstance(g, Tensor) else device.xp.asarray(g)
            if tuple(a.shape) != tuple(shape):
                raise ValueError(f"backward hook of {type(self.module).__name__}: {what}[{i}] has shape "
                                 f"{tuple(a.shape)}, expected {tuple(shape)}")
            arrays.append(a.astype(dtype, copy=False))
        return arrays

    def _checked(self, result, expected, what):
        if not isinstance(result, (tuple, list)) or len(result) != expected:
            got = len(result) if isinstance(result, (tuple, list)) else type(result).__name__
            raise RuntimeError(f"backward hook of {type(self.module).__name__} returned an invalid number of "
                               f"{what}, got {got}, but expected {expected}")
        return tuple(result)

    def _output_backward(self, gys):
        grad_outputs = self._pack(self.outputs, gys, self.n_outputs)
        changed = False
        for hook in self.pre_hooks:
            result = hook(self.module, grad_outputs)
            if result is not None:
                grad_outputs = self._checked(result, self.n_outputs, "grad_output")
                changed = True
        self.grad_outputs = grad_outputs
        if self.inputs is None:  # no input requires grad: the hooks run now, with grad_input all None
            grad_input = (None,) * self.n_inputs
            for hook in self.hooks:
                result = hook(self.module, grad_input, grad_outputs)
                if result is not None and not all(g is None for g in result):
                    raise RuntimeError(f"backward hook of {type(self.module).__name__}: no input requires "
                                       "gradient, so the hook must return None or None for every gradient")
            self.grad_outputs = None
        return self._unpack(self.outputs, grad_outputs, "grad_output") if changed else gys

    def _input_backward(self, gys):
        if self.grad_outputs is None:  # the gradient reached the inputs without passing the outputs
            return gys
        grad_input = self._pack(self.inputs, gys, self.n_inputs)
        changed = False
        for hook in self.hooks:
            result = hook(self.module, grad_input, self.grad_outputs)
            if result is not None:
                grad_input = self._checked(result, self.n_inputs, "grad_input")
                changed = True
        self.grad_outputs = None
        return self._unpack(self.inputs, grad_input, "grad_input") if changed else gys
