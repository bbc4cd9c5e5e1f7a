"""Reverse-mode automatic differentiation.

A :class:`Function` has a static ``forward(ctx, *arrays, **params)`` that computes output
arrays from input arrays, and a static ``backward(ctx, *gys)`` that maps the gradients of the
outputs to the gradients of the inputs (vector-Jacobian products). Both work on raw arrays of
the device (``ctx.xp`` is numpy or cupy, ``ctx.kernels`` the device's kernels), so an op's
math is written once for every device.

``Function.apply(*inputs, **params)`` wraps tensors, runs ``forward`` and, when gradients are
wanted, records a :class:`Context` node whose parents are the input tensors.

``Tensor.backward()`` visits the nodes in reverse topological order. Why a topological order
and not a plain depth-first walk: a node used twice (``b = a + a; c = b + b``) must receive the
gradient of *all* its consumers before it passes its own gradient on; otherwise ``a`` would be
visited with a partial gradient.

As in PyTorch, a node drops what forward saved and its input tensors as soon as its backward has
run (``retain_graph=False``, the default): the activations of a network are freed layer by layer
during the backward pass instead of all at its end (a training step's peak memory is then that
of the activations still needed, not of all of them plus all the gradients). A second backward
through such a node raises a RuntimeError; ``backward(retain_graph=True)`` keeps the graph.
"""
import contextlib
import threading

import numpy as np


_state = threading.local()

#: The profiler's hook (see :mod:`minicnn.profiler`): None unless a profile is active in some
#: thread, so an op pays one global read when nothing is profiled. When set, it has
#: ``forward(cls, ctx, arrays, params)`` and ``backward(ctx, gys)``, which run the op's
#: ``forward``/``backward`` and time them.
_profiler_hook = None


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context in which ops record no graph (inference, optimizer updates)."""
    prev = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = prev


@contextlib.contextmanager
def enable_grad():
    prev = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = prev


class Context:
    """One node of the graph: the function, its inputs, whatever forward saved."""

    def __init__(self, fn, device, inputs):
        self.fn = fn
        self.device = device
        self.xp = device.xp
        self.inputs = inputs  # the input Tensors
        # the nodes that made them, taken now: an in-place op later re-points a tensor's ``_node``
        # at itself (see Function.apply_inplace), but this op consumed the value before it
        self.parents = tuple([t._node for t in inputs])
        self.needs_input_grad = tuple([t.requires_grad for t in inputs])
        self.saved = ()
        self.n_outputs = 1
        self.output_shapes = ()
        self.output_dtypes = ()
        self.saved_versions = ()  # (counter, value at forward, what it is) of tensors aliasing ctx.saved
        self.freed = False  # backward ran without retain_graph: saved arrays and inputs dropped

    def free(self):
        """Drop what backward needed (saved arrays, input tensors): after a backward without
        ``retain_graph``, so that activations are freed as soon as their node is done."""
        self.saved = self.saved_versions = ()
        self.inputs = ()
        self.freed = True

    @property
    def kernels(self):
        return self.device.kernels

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def needs_grads(self, n):
        """``needs_input_grad`` padded with False to ``n`` entries: which of an op's ``n`` possible
        inputs want a gradient when the trailing optional ones (a bias) were not given."""
        return self.needs_input_grad + (False,) * (n - len(self.needs_input_grad))

    @property
    def name(self):
        return self.fn.__name__


class Function:
    """Base class of differentiable ops; see the module docstring.

    ``fresh_grads``: set it to True on an op whose ``backward`` returns only arrays it has just
    allocated (a kernel's ``np.empty``/``zeros`` output, a matmul result), never an incoming
    gradient, a saved or input array, a view of any of those, or one array for two inputs. The
    engine then hands such a gradient to a leaf's ``.grad`` without copying it (for a 64×64×32×32
    max pool the copy cost 1.6 ms of a 4.7 ms forward+backward, measured); see :func:`_handed_over`.
    """

    fresh_grads = False
    #: ``float_inputs``: the op computes float math (exp, mean, normalisation…): integer and bool
    #: inputs are promoted to float32 first, as PyTorch promotes ``torch.sigmoid(int_tensor)``
    #: (NumPy would give int zeros, float16, or cast ``eps`` to 0).
    float_inputs = False

    @staticmethod
    def forward(ctx, *args, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *gys):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        # plain loops and no per-call import: this runs once per op (forward + bookkeeping of a
        # 4-element add: 11.2 µs with generator expressions and the import, measured 2026-12-07)
        T = _tensor_module or _load_tensor_module()
        Tensor = T.Tensor
        ref = None
        for t in inputs:
            if isinstance(t, Tensor):
                ref = t
                break
        if ref is None:
            raise TypeError(f"{cls.__name__}: expected at least one Tensor input")
        device = ref.device
        tensors = []
        for i, t in enumerate(inputs):
            if isinstance(t, Tensor):
                if t.device is not device and t.device != device:
                    raise ValueError(
                        f"{cls.__name__}: input {i} is on {t.device.name}, input 0 on "
                        f"{device.name}; move them to one device with .to()"
                    )
                if t._node is not None and t._version.rebased != t._rebase_seen and is_grad_enabled():
                    _raise_stale(cls.__name__, i, t)
                tensors.append(t)
            else:
                tensors.append(T.as_tensor_like(t, ref))
        if cls.float_inputs:
            tensors = [T.float_promoted(t) for t in tensors]
        tensors = tuple(tensors)
        ctx = Context(cls, device, tensors)
        arrays = [t.data for t in tensors]
        hook = _profiler_hook
        if hook is None:
            out = cls.forward(ctx, *arrays, **params)
        else:
            out = hook.forward(cls, ctx, tuple(arrays), params)
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        record = is_grad_enabled() and True in ctx.needs_input_grad
        results = []
        for k, a in enumerate(outs):
            differentiable = record and a.dtype.kind == "f"
            # outputs live on ctx.device: the inputs' device, unless forward moved them (ToDevice)
            version = _view_version(a, tensors)
            t = Tensor._from_array(a, ctx.device, requires_grad=differentiable, version=version)
            if differentiable:
                t._node = (ctx, k)
                if version is not None and version.rebased:
                    t._rebase_seen = version.rebased
            results.append(t)
        if record:
            ctx.n_outputs = len(outs)
            ctx.output_shapes = tuple([a.shape for a in outs])
            ctx.output_dtypes = tuple([a.dtype for a in outs])
            if ctx.saved:
                ctx.saved_versions = _versions_of_saved(ctx, tensors, results)
        else:
            ctx.inputs = ctx.parents = ()  # nothing will walk back through this node
        return tuple(results) if multi else results[0]

    @classmethod
    def apply_inplace(cls, target, *inputs, op_name=None, **params):
        """``cls`` applied to ``(target, *inputs)``, its output written into ``target``'s memory, and
        ``target`` becoming that output in the graph (PyTorch's ``relu_``, ``add_``).

        The op's ``forward`` receives ``inplace=True`` and must return its first input array,
        changed. ``target`` then stands for the new value: its node is the op's, its version counter
        (shared with every view of its memory) is bumped, so an op that saved the old value for its
        backward raises there instead of computing a wrong gradient. Ops recorded before still
        consume the old value (each node holds the nodes of its inputs as they were,
        ``Context.parents``). As in PyTorch, a leaf that requires grad cannot change in place
        while gradients are recorded (the error names ``op_name``, default the op's)."""
        Tensor = (_tensor_module or _load_tensor_module()).Tensor
        if target.requires_grad and target._node is None and is_grad_enabled():
            raise RuntimeError(f"{op_name or cls.__name__ + ' (in place)'}: a leaf tensor that requires grad cannot "
                               f"change in place while gradients are recorded; use the out-of-place op, or wrap it "
                               f"in minicnn.no_grad()")
        if target._node is not None and is_grad_enabled():
            leaf = _viewed_leaf(target)
            if leaf is not None:
                raise RuntimeError(
                    f"{op_name or cls.__name__ + ' (in place)'}: a view (shape {tuple(target.shape)}) of a leaf tensor "
                    f"that requires grad (shape {tuple(leaf.shape)}) cannot change in place while gradients are "
                    f"recorded; use the out-of-place op, or wrap it in minicnn.no_grad()")
        # the value before the op: the same memory, node and version counter, as the op's input
        before = Tensor._from_array(target.data, target.device, requires_grad=target.requires_grad,
                                    version=target._version)
        before._node, before._rebase_seen = target._node, target._rebase_seen
        target._version.value += 1  # before the op: its own saved arrays are recorded at the new version
        out = cls.apply(before, *inputs, inplace=True, **params)
        if out.data is not target.data:
            raise RuntimeError(f"{cls.__name__}.forward(inplace=True) did not return its input array")
        if is_grad_enabled():  # under no_grad the tensor keeps its place in the graph (PyTorch's rule)
            target._node, target.requires_grad = out._node, out.requires_grad
            if out._node is not None:  # recorded: other tensors of this memory keep stale nodes
                target._version.rebased += 1
                target._rebase_seen = target._version.rebased
        return target


_tensor_module = None


def _raise_stale(op, i, t):
    """The error for a graph input whose memory an in-place op on another tensor changed (see
    ``VersionCounter.rebased``). PyTorch rewrites the graph of a view's base there (CopySlices);
    this engine does not, and raises rather than compute a gradient without that op."""
    raise RuntimeError(
        f"{op}: input {i} (shape {tuple(t.shape)}) was changed by an in-place op on another tensor that shares "
        f"its memory (a view of it, or its base), which the graph recorded on that tensor only: gradients "
        f"through this one would miss the change. Use the tensor the in-place op was applied to, or apply "
        f"the op out of place (or to a clone())")


def _load_tensor_module():
    """``minicnn.tensor`` (imported on first use: it imports this module)."""
    global _tensor_module
    import importlib

    _tensor_module = importlib.import_module(".tensor", __package__)  # (``minicnn.tensor`` is also a function)
    return _tensor_module


def _view_version(a, inputs):
    """The version counter an op's output array ``a`` shares: that of the input whose memory it
    is or views (``reshape``, ``detach``, an in-place op), as PyTorch's views share their base's;
    None (a new counter) for fresh memory. One or two attribute reads per input."""
    owner = getattr(a, "base", None)
    if owner is None:
        for t in inputs:
            if t.data is a:
                return t._version
        return None
    for t in inputs:
        if _memory_owner(t.data) is owner:
            return t._version
    return None


def _viewed_leaf(t):
    """The leaf that requires grad whose memory the non-leaf ``t`` views (``x[:, ::2]``,
    ``x.reshape(...)``, in-place ops on those), found by walking back through the ops whose input
    shares ``t``'s memory; None when the memory was made by an op (or the leaf needs no grad)."""
    owner = _memory_owner(t.data)
    while t._node is not None:
        t = next((u for u in t._node[0].inputs if _memory_owner(u.data) is owner), None)
        if t is None:
            return None
    return t if t.requires_grad else None


def _memory_owner(a):
    """The object that owns ``a``'s memory (NumPy and CuPy point a view's ``base`` at the owner)."""
    base = getattr(a, "base", None)
    return a if base is None else base


def _versions_of_saved(ctx, inputs, outputs):
    """``(counter, value now, "input"/"output", index)`` for each input and output whose memory a
    saved array shares: backward computes from ``ctx.saved``, so an in-place change of one of them
    in between would silently change the gradient (:func:`_check_versions` raises instead).
    Sharing is decided by the owner of the memory (a view and its base share): two attribute
    reads per array, not a memory-range test, since this runs for every recorded op."""
    owners = {id(_memory_owner(a)) for a in ctx.saved if hasattr(a, "dtype")}
    found = [(t._version, t._version.value, "input", i) for i, t in enumerate(inputs)
             if id(_memory_owner(t.data)) in owners]
    found += [(t._version, t._version.value, "output", i) for i, t in enumerate(outputs)
              if id(_memory_owner(t.data)) in owners]
    return tuple(found)


def _check_versions(ctx):
    for counter, value, what, i in ctx.saved_versions:
        if counter.value != value:
            shape = ctx.inputs[i].shape if what == "input" else ctx.output_shapes[i]
            raise RuntimeError(
                f"backward: one of the tensors needed for the gradient has been modified by an in-place "
                f"operation: {what} {i} of {ctx.name} (shape {tuple(shape)}) is at version {counter.value}; "
                f"expected version {value}. Use an out-of-place op, or change it only after backward")


def check_root_grad(root, grad):
    """``grad`` given to ``root.backward(grad)`` as an array of ``root``'s device, dtype and layout;
    a ValueError (as PyTorch's "Mismatch in shape") unless it has exactly ``root``'s shape. Kernels
    trust the shapes of the gradients they receive, so this is checked before any of them runs."""
    xp = root.device.xp
    if root.device.name == "cuda" or type(grad).__module__.startswith("cupy"):
        from .device import device_of_array

        if device_of_array(grad) != root.device and hasattr(grad, "shape"):
            raise ValueError(f"backward: grad is on {device_of_array(grad).name}, the output on {root.device.name}")
    g = xp.asarray(grad)
    if tuple(g.shape) != tuple(root.shape):
        raise ValueError(f"backward: grad has shape {tuple(g.shape)}, but the output has shape {tuple(root.shape)}")
    if g.dtype.kind not in "fiub":
        raise TypeError(f"backward: grad must be a real number array, got dtype {g.dtype}")
    return xp.asarray(g, dtype=root.dtype, order="C")  # (ascontiguousarray would make a 0-d grad 1-d)


def unbroadcast(xp, g, shape):
    """Sum ``g`` down to ``shape``: the gradient of NumPy broadcasting ``shape -> g.shape``."""
    if g.shape == tuple(shape):
        return g
    ndiff = g.ndim - len(shape)
    if ndiff > 0:
        g = g.sum(axis=tuple(range(ndiff)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _topological_order(root_ctx):
    """Nodes reachable from ``root_ctx``, each after every node that consumes its outputs."""
    order, seen = [], set()
    stack = [(root_ctx, False)]
    while stack:  # iterative DFS post-order, so deep graphs do not hit the recursion limit
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if parent is not None and id(parent[0]) not in seen:
                stack.append((parent[0], False))
    return order[::-1]


def _handed_over(ctx, gx, gxs, gys):
    """True when ``gx`` (a gradient ``ctx.fn.backward`` returned) may become a leaf's ``.grad``
    without a copy: the op declares ``fresh_grads``, and the checks that cost nothing agree: ``gx``
    owns its memory (not a view), is not an incoming gradient (a user's array passed to
    ``backward(gy)``), a saved or input array, nor returned for two inputs. Otherwise the leaf
    copies it, so that changing one ``.grad`` in place (``clip_grad_value_``, an optimizer) cannot
    change another gradient or the user's array."""
    if not ctx.fn.fresh_grads or getattr(gx, "base", None) is not None:
        return False
    if not getattr(getattr(gx, "flags", None), "owndata", False):
        return False
    if sum(g is gx for g in gxs) > 1:
        return False
    return not any(a is gx for a in (*gys, *ctx.saved, *(t.data for t in ctx.inputs)))


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad; without
    ``retain_graph``, each node visited frees its saved arrays and inputs after its backward."""
    xp = root.device.xp
    if root._node is None:
        if root.requires_grad:  # a leaf: d root / d root = 1
            if grad is None:
                root._accumulate(xp.ones_like(root.data), owned=True)
            else:
                root._accumulate(grad)  # the caller's array: copied
            return
        raise RuntimeError("backward: this tensor does not require grad and has no graph")
    if root._version.rebased != root._rebase_seen:
        _raise_stale("backward", 0, root)
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implied only for a single-element output, got shape {root.shape}"
            )
        grad = xp.ones_like(root.data)
    grads = {}  # id(ctx) -> list of output gradients
    # (id(ctx), output index) of the pending gradients that only the engine holds (a kernel's fresh
    # array, ``_handed_over``, or a sum the engine made): a second contribution is added into them
    # in place, where a new array per sum cost a pass and fresh pages at every residual block
    mutable = set()
    root_ctx, k = root._node
    grads[id(root_ctx)] = [None] * root_ctx.n_outputs
    grads[id(root_ctx)][k] = grad
    for ctx in _topological_order(root_ctx):
        gys = grads.pop(id(ctx), None)
        if gys is None:
            continue
        for j in range(len(gys)):
            mutable.discard((id(ctx), j))
        if ctx.freed:
            raise RuntimeError(
                f"backward: trying to backward through the graph a second time: {ctx.name}'s saved values "
                "were freed after the first backward; call backward(retain_graph=True) the first time to keep them"
            )
        if ctx.saved_versions:
            _check_versions(ctx)
        # an output that received no gradient contributes zeros; integer outputs (argmax
        # indices) are not differentiable and get None
        gys = [
            (xp.zeros(s, dtype=d) if d.kind == "f" else None) if g is None else g
            for g, s, d in zip(gys, ctx.output_shapes, ctx.output_dtypes)
        ]
        hook = _profiler_hook
        gxs = ctx.fn.backward(ctx, *gys) if hook is None else hook.backward(ctx, gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(ctx.inputs):
            raise RuntimeError(
                f"{ctx.name}.backward returned {len(gxs)} gradients for {len(ctx.inputs)} inputs"
            )
        for i, (t, parent, gx) in enumerate(zip(ctx.inputs, ctx.parents, gxs)):
            if gx is None or not ctx.needs_input_grad[i]:
                continue
            if tuple(gx.shape) != tuple(t.shape):
                raise RuntimeError(
                    f"{ctx.name}.backward: gradient of input {i} has shape {tuple(gx.shape)}, "
                    f"the input has shape {tuple(t.shape)}"
                )
            owned = gx.dtype != t.dtype  # astype below makes a new array
            if owned:
                gx = gx.astype(t.dtype)
            if parent is None:
                t._accumulate(gx, owned=owned or _handed_over(ctx, gx, gxs, gys))
            else:
                if t._retain_grad:  # (copies gx: before gx may become a sum below)
                    t._accumulate(gx)
                parent, j = parent
                slot = grads.setdefault(id(parent), [None] * parent.n_outputs)
                key, held = (id(parent), j), slot[j]
                gx_owned = owned or _handed_over(ctx, gx, gxs, gys)
                if held is None:
                    slot[j] = gx
                    if gx_owned:
                        mutable.add(key)
                elif key in mutable:
                    held += gx
                elif gx_owned:
                    gx += held
                    slot[j] = gx
                    mutable.add(key)
                else:
                    slot[j] = held + gx
                    mutable.add(key)
        if not retain_graph:
            ctx.free()
