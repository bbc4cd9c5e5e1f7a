"""``minicnn.summary(model, input_shape)``: one forward pass with hooks, and a table of the layers.

Per module call, one row: dotted name (indented by depth), type, output shape, parameters,
multiply-adds, and the receptive field of the output w.r.t. the model's input.

Multiply-adds count the products with weights, per call on the whole batch:

- ``Conv1d``/``Conv2d``: N · C_in/groups · ∏k · C_out · ∏(output size);
- ``ConvTranspose2d``: N · C_in · C_out/groups · ∏k · ∏(input size) (every input pixel meets the kernel);
- ``Linear``: (input elements / in_features) · in_features · out_features;
- everything else 0: bias additions, normalisation, activations, pooling, resampling are not counted.

A container's row shows the sum over the calls made inside it; ``total_mult_adds`` is the sum over
the rows of modules without children. Ops a ``forward`` calls directly (a residual ``+``,
``F.interpolate``, ``flatten``) are not modules and count 0.

Receptive field, per spatial axis, as (size r, jump j, start s) (Araujo et al. 2019; Dumoulin &
Visin 2016): input pixel i sits at coordinate i, so the input has (1, 1, 0); output pixel o of a
layer sees input pixels ``s + o·j ± (r − 1)/2``. A convolution or pooling with kernel k, stride t,
padding p (before) and dilation d, k_eff = d·(k − 1) + 1, maps
``r ← r + (k_eff − 1)·j,  j ← j·t,  s ← s + ((k_eff − 1)/2 − p)·j``. Adaptive pools whose input size
is a multiple of the output size are the pooling with k = t = in/out. The field is tracked per
tensor: pointwise layers (activations, normalisation treated as pointwise, dropout, identity)
pass it on; any other module or op is followed through the autograd graph of the pass, where
elementwise ops and channel concatenation take the union of their inputs' fields (inputs must
have the output's spatial size and the same jump; constants such as weights are ignored).
Anything else (transposed convolution, upsampling, unpooling, reshapes, broadcasting a pooled
vector over a map) ends the chain: "—".
"""
import math

import numpy as np

from .autograd import enable_grad
from .device import get_device
from .kernels.geometry import as_tuple
from .nn import activation as _act, conv as _conv, dropout as _drop, linear as _lin, norm as _norm, pooling as _pool
from .nn.module import Module
from .tensor import Tensor

_NOT_CHAIN = "not a chain"  # a field that is not (r, j, s) per axis; None: does not depend on the input

_POINTWISE = (_act.ReLU, _act.LeakyReLU, _act.Hardtanh, _act.Hardsigmoid, _act.Hardswish, _act.Sigmoid,
              _act.Tanh, _act.GELU, _norm._NormBase, _norm.LayerNorm, _norm.GroupNorm, _norm.LocalResponseNorm,
              _drop._DropoutNd, _lin.Identity)
# autograd Functions that keep each spatial position's dependence (elementwise ops, channel concat)
_ELEMENTWISE_OPS = {
    "BackwardHookFunction", "ReLU", "LeakyReLU", "Hardtanh", "Hardsigmoid", "Hardswish", "Sigmoid", "Tanh",
    "GELUExact", "GELUTanh", "Add", "Sub", "Mul", "Div", "Maximum", "Where", "Clip", "Abs", "Neg", "Exp", "Log",
    "Pow", "Sqrt", "Dropout", "ToDevice", "Normalize", "BatchNorm", "BatchNormEval", "Cat", "Split",
}


def summary(model, input_shape=None, device="cpu", dtype=np.float32, batch_size=1, input_data=None):
    """Run ``model`` once on zeros of shape ``(batch_size, *input_shape)`` (or on ``input_data``)
    and describe every module call.

    The pass runs in eval mode (restored afterwards; BatchNorm's running statistics are not
    touched) with forward hooks on every module; the model is not moved or changed.

    Args:
        model: an ``nn.Module`` whose parameters are on ``device``.
        input_shape: the shape of one input without the batch axis, e.g. ``(3, 224, 224)``; a
            list of such shapes for a model with several inputs.
        device: where the zero input is made: ``"cpu"``, ``"cuda-emu"``, ``"cuda"``.
        dtype: the zero input's dtype.
        batch_size: N of the zero input.
        input_data: a Tensor or array (or a tuple of them) to run instead of zeros.

    Returns:
        :class:`ModelSummary`: ``str()`` is the table; ``rows`` (one dict per call: ``name``,
        ``type``, ``depth``, ``is_leaf``, ``output_shape``, ``params``, ``trainable_params``,
        ``mult_adds``, ``receptive_field``: a tuple of (size, jump, start) per spatial axis or
        None), ``total_params``, ``trainable_params``, ``total_mult_adds``, ``activation_bytes``
        (the distinct tensors that modules output), ``param_bytes``, ``input_bytes``.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    dev = get_device(device)
    inputs = _make_inputs(input_shape, input_data, dev, dtype, batch_size)
    for name, p in model.named_parameters():
        if p.device != inputs[0].device:
            raise ValueError(f"summary: parameter {name!r} of shape {p.shape} is on {p.device.name}, the input on "
                             f"{inputs[0].device.name}; pass device={p.device.name!r} or move the model")
    tracer = _Tracer(model, inputs)
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        model.eval()
        for m in model.modules():
            handles += [m.register_forward_pre_hook(tracer.pre), m.register_forward_hook(tracer.post)]
        with enable_grad():  # the graph of the pass carries the receptive field through unhooked ops
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            object.__setattr__(m, "training", training)
    return ModelSummary(model, tracer, inputs)


def _make_inputs(input_shape, input_data, dev, dtype, batch_size):
    """The input tensors of the pass (float ones require grad, so the pass records its graph)."""
    if input_data is not None:
        data = input_data if isinstance(input_data, (tuple, list)) else (input_data,)
        tensors = [d if isinstance(d, Tensor) else Tensor(np.asarray(d), device=dev) for d in data]
    else:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
        if input_shape is None:
            raise ValueError("summary: give input_shape (one input without the batch axis, e.g. (3, 32, 32)) "
                             "or input_data")
        if isinstance(input_shape, (int, np.integer)):
            input_shape = (input_shape,)
        shapes = input_shape if input_shape and isinstance(input_shape[0], (tuple, list)) else [input_shape]
        tensors = []
        for shape in shapes:
            if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape):
                raise ValueError(f"summary: input_shape must be positive ints without the batch axis, got "
                                 f"{tuple(shape)!r}")
            tensors.append(Tensor(dev.xp.zeros((batch_size,) + tuple(int(s) for s in shape), dtype=dtype), device=dev))
    return [Tensor._from_array(t.data, t.device, requires_grad=t.dtype.kind == "f") for t in tensors]


def _tensors(value):
    """The Tensors in a module output (a Tensor, or tuples, lists, dicts of them), in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _shape_of(value):
    if isinstance(value, Tensor):
        return tuple(value.shape)
    if isinstance(value, dict):
        return {k: _shape_of(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(_shape_of(v) for v in value)
    return None


class _Tracer:
    """The hooks of one summary pass: rows in call order, the receptive field of every tensor."""

    def __init__(self, model, inputs):
        self.names = {id(m): name for name, m in model.named_modules()}
        self.rows, self.stack = [], []
        self.fields = {}  # id(tensor) -> (tensor, field); the tensor is held so its id stays unique
        self.outputs = {}  # id(tensor) -> tensor: every tensor a module returned
        for t in inputs:
            nsp = t.ndim - 2
            self.fields[id(t)] = (t, ((1, 1, 0.0),) * nsp if nsp >= 1 else None)

    def pre(self, module, args):
        name = self.names.get(id(module), "?")
        row = {"name": name, "type": type(module).__name__, "depth": 0 if name == "" else name.count(".") + 1,
               "is_leaf": not any(True for _ in module.children()), "output_shape": None,
               "params": sum(p.size for p in module.parameters()),
               "trainable_params": sum(p.size for p in module.parameters() if p.requires_grad),
               "mult_adds": 0, "receptive_field": None}
        self.rows.append(row)
        self.stack.append(row)

    def post(self, module, args, output):
        row = self.stack.pop()
        row["output_shape"] = _shape_of(output)
        outs = _tensors(output)
        for t in outs:
            self.outputs[id(t)] = t
        macs = _mult_adds(module, args, outs)
        if macs:
            row["mult_adds"] += macs
            for ancestor in self.stack:
                ancestor["mult_adds"] += macs
        if outs:
            field = self._field_of_output(module, args, outs[0])
            self.fields[id(outs[0])] = (outs[0], field)
            row["receptive_field"] = field if isinstance(field, tuple) else None

    # ---- receptive fields ------------------------------------------------------------------
    def _field_of_output(self, module, args, out):
        x = args[0] if args and isinstance(args[0], Tensor) else None
        geometry = _window_geometry(module, x, out) if x is not None else None
        if geometry is not None:
            return _chain(self.resolve(x), geometry)
        if isinstance(module, _POINTWISE) and x is not None:
            return _union([(self.resolve(x), x)], out)
        return self.resolve(out)

    def resolve(self, t):
        """The field of tensor ``t``: known (an input or a module's output), or derived through the
        autograd graph (iteratively: the unhooked ops between known tensors)."""
        stack = [t]
        while stack:
            u = stack[-1]
            if id(u) in self.fields:
                stack.pop()
                continue
            if u._node is None:  # a constant: a weight, a buffer, a tensor made inside forward
                self.fields[id(u)] = (u, None)
                stack.pop()
                continue
            ctx = u._node[0]
            todo = [v for v in ctx.inputs if id(v) not in self.fields]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            inputs = [(self.fields[id(v)][1], v) for v in ctx.inputs]
            if all(f is None for f, _ in inputs):
                field = None
            elif ctx.fn.__name__ in _ELEMENTWISE_OPS:
                field = _union(inputs, u)
            else:
                field = _NOT_CHAIN
            self.fields[id(u)] = (u, field)
        return self.fields[id(t)][1]


def _window_geometry(module, x, out):
    """(kernel, stride, padding before, dilation) per spatial axis of a sliding-window module, or None."""
    if isinstance(module, _conv._ConvNd) and not module.transposed:
        return tuple(zip(module.kernel_size, module.stride, [p for p, _ in module._padding_amounts()],
                         module.dilation))
    if isinstance(module, (_pool.MaxPool2d, _pool.AvgPool2d)):
        n, name = len(module.layout) - 2, type(module).__name__
        return tuple(zip(as_tuple(module.kernel_size, n, "kernel_size", name),
                         as_tuple(module.stride, n, "stride", name), as_tuple(module.padding, n, "padding", name),
                         as_tuple(getattr(module, "dilation", 1), n, "dilation", name)))
    if isinstance(module, (_pool.AdaptiveAvgPool2d, _pool.AdaptiveMaxPool2d)) and x.ndim == out.ndim >= 3:
        sizes = list(zip(x.shape[2:], out.shape[2:]))
        if all(i % o == 0 for i, o in sizes):  # bins of in/out pixels, no overlap: a plain pooling
            return tuple((i // o, i // o, 0, 1) for i, o in sizes)
    return None


def _chain(field, geometry):
    """The field after a sliding window: r + (k_eff − 1)·j, j·stride, s + ((k_eff − 1)/2 − p)·j."""
    if not isinstance(field, tuple) or len(field) != len(geometry):
        return _NOT_CHAIN if field is not None else None
    out = []
    for (r, j, s), (k, stride, p, d) in zip(field, geometry):
        k_eff = d * (k - 1) + 1
        out.append((r + (k_eff - 1) * j, j * stride, s + ((k_eff - 1) / 2 - p) * j))
    return tuple(out)


def _union(inputs, out):
    """The field of an elementwise result: per axis the smallest interval holding every input's
    window, when the inputs share the output's spatial size and their jumps; else not a chain."""
    fields = [(f, t) for f, t in inputs if f is not None]
    if not fields:
        return None
    nsp = out.ndim - 2
    for f, t in fields:
        if not isinstance(f, tuple) or t.ndim != out.ndim or len(f) != nsp or t.shape[2:] != out.shape[2:]:
            return _NOT_CHAIN
    result = []
    for axis in range(nsp):
        per_axis = [f[axis] for f, _ in fields]
        if len({j for _, j, _ in per_axis}) != 1:
            return _NOT_CHAIN
        lo = min(s - (r - 1) / 2 for r, _, s in per_axis)
        hi = max(s + (r - 1) / 2 for r, _, s in per_axis)
        result.append((int(round(hi - lo)) + 1, per_axis[0][1], (lo + hi) / 2))
    return tuple(result)


def _mult_adds(module, args, outs):
    """Multiply-adds of one call (the conventions of the module docstring)."""
    x = args[0] if args and isinstance(args[0], Tensor) else None
    if x is None or not outs:
        return 0
    y = outs[0]
    if isinstance(module, _conv._ConvNd):
        k = math.prod(module.kernel_size)
        if module.transposed:
            return y.shape[0] * module.in_channels * (module.out_channels // module.groups) * k * math.prod(x.shape[2:])
        return y.shape[0] * (module.in_channels // module.groups) * k * module.out_channels * math.prod(y.shape[2:])
    if isinstance(module, _lin.Linear):
        return x.size // module.in_features * module.in_features * module.out_features
    return 0


class ModelSummary:
    """What :func:`summary` returns; ``str()`` gives the table, the attributes the numbers."""

    def __init__(self, model, tracer, inputs):
        self.model_name = type(model).__name__
        self.rows = tracer.rows
        params = list(model.parameters())
        self.total_params = int(sum(p.size for p in params))
        self.trainable_params = int(sum(p.size for p in params if p.requires_grad))
        self.total_mult_adds = int(sum(r["mult_adds"] for r in self.rows if r["is_leaf"]))
        self.activation_bytes = int(sum(t.data.nbytes for t in tracer.outputs.values()))
        self.param_bytes = int(sum(p.data.nbytes for p in params))
        self.input_bytes = int(sum(t.data.nbytes for t in inputs))
        self.input_shapes = [tuple(t.shape) for t in inputs]

    def __str__(self):
        head = ("Layer", "Type", "Output shape", "Param #", "Mult-adds", "RF size", "RF jump", "RF start")
        body = []
        for r in self.rows:
            name = r["name"] if r["name"] else self.model_name
            rf = r["receptive_field"]
            cols = ["—"] * 3 if rf is None else [_per_axis(v) for v in zip(*rf)]
            body.append(("  " * r["depth"] + name, r["type"], _shape_text(r["output_shape"]), f"{r['params']:,}",
                         f"{r['mult_adds']:,}", *cols))
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]

        def line(row):
            left = [row[i].ljust(widths[i]) for i in range(3)]
            right = [row[i].rjust(widths[i]) for i in range(3, len(head))]
            return "  ".join(left + right).rstrip()

        rule = "=" * len(line(head))
        lines = [rule, line(head), rule] + [line(row) for row in body] + [rule]
        lines += [
            f"Input shape(s): {', '.join(str(s) for s in self.input_shapes)}",
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total mult-adds: {self.total_mult_adds:,} ({self.total_mult_adds / 1e6:.2f} M)",
            f"Input size: {_bytes(self.input_bytes)}",
            f"Activations (module outputs): {_bytes(self.activation_bytes)}",
            f"Parameters: {_bytes(self.param_bytes)}",
            rule,
            "Mult-adds: products with weights (conv, linear; no bias adds, norms, activations, pooling).",
            "RF: receptive field w.r.t. the input per spatial axis (H×W): size, jump, start (input pixel i at i);",
            "    output pixel o sees input pixels start + o·jump ± (size − 1)/2; — where it is not a chain.",
        ]
        return "\n".join(lines)

    __repr__ = __str__


def _per_axis(values):
    """``16`` when every axis agrees, else ``16×14``; starts printed without a useless ``.0``."""
    text = [f"{v:g}" for v in values]
    return text[0] if len(set(text)) == 1 else "×".join(text)


def _shape_text(shape):
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in shape.items()) + "}"
    if isinstance(shape, tuple) and shape and isinstance(shape[0], (tuple, dict)):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "—" if shape is None else "(" + ", ".join(str(s) for s in shape) + ")"


def _bytes(n):
    return f"{n:,} bytes ({n / 2 ** 20:.2f} MiB)"
