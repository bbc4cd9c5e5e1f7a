"""The Tensor: an array on a device, its gradient, and the graph node that made it."""
import numpy as np

from . import autograd
from .device import device_of_array, get_device
from .dtypes import FLOAT_DTYPES as _FLOAT_DTYPES, is_kernel_float, promote_to_float

DEFAULT_DTYPE = np.float32


class VersionCounter:
    """How many in-place changes a tensor's memory has had (``Tensor._version``).

    Tensors that alias one array (``detach()``) share one counter, as in PyTorch. An op that
    saves an array for its backward records the counter of every input and output that array
    aliases; ``backward`` raises if any of them has moved since (see ``autograd``). Writes
    through the raw array (``t.data[...] = v``) are not counted, as PyTorch's ``.data`` is not.

    ``rebased`` counts the in-place ops on this memory that the graph recorded
    (``Function.apply_inplace``): each makes the tensor it was applied to the op's output in the
    graph; another tensor of the same memory (a view, or the base of a view) keeps a node that
    does not include the change, and an op that takes it in the graph raises (autograd).
    """

    __slots__ = ("value", "rebased")

    def __init__(self):
        self.value = 0
        self.rebased = 0


class Tensor:
    """An n-dimensional array on a device (``cpu``, ``cuda``, ``cuda-emu``) with autograd.

    Args:
        data: array-like (NumPy array, CuPy array, nested lists, scalar).
        requires_grad: record operations on this tensor so ``backward`` can fill ``.grad``.
        device: where the data lives; default: ``cuda`` for a CuPy array, else ``cpu``.
        dtype: default float32 for floating data from Python/NumPy float64 lists; kept as given
            for NumPy arrays of float32/float64/integer/bool type.
    """

    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__
    #: ``_version.rebased`` when this tensor's node was set (a class default of 0: set on the
    #: instance only where the counter has been rebased); see :class:`VersionCounter`
    _rebase_seen = 0

    def __init__(self, data, requires_grad=False, device=None, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        dev = get_device(device) if device is not None else device_of_array(data)
        xp = dev.xp
        if dtype is None and not hasattr(data, "dtype"):
            arr = np.asarray(data)
            if arr.dtype.kind == "f":
                arr = arr.astype(DEFAULT_DTYPE)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(np.int64)
            data = arr
        if dev.name == "cuda" or device_of_array(data).name == "cuda":
            data = xp.asarray(data) if dev.name == "cuda" else dev.to_numpy(data)
        else:
            data = np.asarray(data)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if not data.dtype.isnative:  # e.g. a big-endian '>f4' read from a file: the kernels need native
            data = data.astype(data.dtype.newbyteorder("="))
        self.data = data
        self.device = dev
        if requires_grad and self.data.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"only float32/float64 tensors can require grad, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None  # (Context, output index) for tensors made by an op
        self._retain_grad = False
        self._version = VersionCounter()

    @classmethod
    def _from_array(cls, a, device, requires_grad=False, version=None):
        t = cls.__new__(cls)
        t.data = a
        t.device = device
        t.requires_grad = requires_grad
        t.grad = None
        t._node = None
        t._retain_grad = False
        t._version = version if version is not None else VersionCounter()
        return t

    # ---- basic properties -------------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: int(self.data.size))
    is_leaf = property(lambda self: self._node is None)

    def __len__(self):
        return self.data.shape[0]

    def numel(self):
        return self.size

    def __repr__(self):
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device.name == "cpu" else f", device={self.device.name!r}"
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}{dev}, dtype={self.dtype}{extra})"

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array (a copy from the GPU; the array itself on CPU devices)."""
        return self.device.to_numpy(self.data)

    def item(self):
        return self.numpy().item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """A copy on ``device`` and/or of ``dtype``; differentiable (the gradient moves back)."""
        from .functional.basic import to_device

        return to_device(self, get_device(device) if device is not None else self.device, dtype)

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def detach(self):
        """The same data, cut from the graph (it shares this tensor's version counter)."""
        return Tensor._from_array(self.data, self.device, version=self._version)

    def clone(self):
        from .functional.basic import clone

        return clone(self)

    def requires_grad_(self, flag=True):
        self.requires_grad = bool(flag)
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor too."""
        self._retain_grad = True
        return self

    def zero_grad(self):
        self.grad = None

    # ---- in-place changes (counted: see VersionCounter) ---------------------------------------
    def _modify(self, op, change):
        """Apply ``change(array)`` in place and count it. Like PyTorch, a leaf that requires grad
        may change in place only under ``no_grad``; minicnn records no graph for in-place ops, so
        they are refused on any tensor that requires grad while gradients are recorded."""
        if self.requires_grad and autograd.is_grad_enabled():
            kind = "a leaf tensor" if self.is_leaf else "a tensor of the graph"
            raise RuntimeError(f"{op}: {kind} that requires grad cannot change in place while gradients "
                               f"are recorded; use the out-of-place op, or wrap it in minicnn.no_grad()")
        change(self.data)
        self._version.value += 1
        return self

    def _operand(self, value):
        return value.data if isinstance(value, Tensor) else value

    def __setitem__(self, index, value):
        index = index.data if isinstance(index, Tensor) else index
        self._modify("__setitem__", lambda a: a.__setitem__(index, self._operand(value)))

    def copy_(self, src):
        """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor."""
        return self._modify("copy_", lambda a: a.__setitem__(Ellipsis, self._operand(src)))

    def fill_(self, value):
        return self._modify("fill_", lambda a: a.fill(value))

    def zero_(self):
        return self.fill_(0)

    def add_(self, other, alpha=1):
        """``self += alpha · other``. While gradients are recorded and either side requires grad,
        the sum is recorded in the graph (``F.add_``: this tensor becomes the sum, as PyTorch's
        ``out += identity`` in a residual block); otherwise a plain counted in-place change."""
        if autograd.is_grad_enabled() and (self.requires_grad or getattr(other, "requires_grad", False)):
            return _F().add_(self, other if alpha == 1 else other * alpha)
        o = self._operand(other)
        return self._modify("add_", lambda a: a.__iadd__(o if alpha == 1 else alpha * o))

    def relu_(self):
        """``max(self, 0)`` in place (``F.relu_``); recorded in the graph when gradients are."""
        return _F().relu_(self)

    def sub_(self, other, alpha=1):
        return self.add_(-self._operand(other), alpha)

    def mul_(self, other):
        return self._modify("mul_", lambda a: a.__imul__(self._operand(other)))

    def div_(self, other):
        return self._modify("div_", lambda a: a.__itruediv__(self._operand(other)))

    def clamp_(self, min=None, max=None):
        return self._modify("clamp_", lambda a: self.device.xp.clip(a, min, max, out=a))

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate gradients of this tensor into every leaf that requires grad.

        ``grad`` (d loss / d self; implied 1 for a one-element tensor) must have exactly this
        tensor's shape (a ValueError otherwise, as PyTorch's "Mismatch in shape"); it is cast to
        this tensor's dtype. Like PyTorch, gradients *accumulate*: calling ``backward`` twice adds
        them twice, and each node of the graph frees what its backward needed once that has run
        (activations are released layer by layer), so a second backward through the same graph
        needs ``retain_graph=True`` on the first (a RuntimeError otherwise).
        A tensor that backward needs and that changed in place since the forward raises a
        RuntimeError (see :class:`VersionCounter`).
        """
        if grad is not None:
            grad = autograd.check_root_grad(self, grad.data if isinstance(grad, Tensor) else grad)
        autograd.backward(self, grad, retain_graph=retain_graph)

    def _accumulate(self, g, owned=False):
        """``grad ← grad + g`` as a new array (a ``.grad`` someone holds never changes under them).

        The first gradient is stored as a copy of ``g``, unless ``owned``: the engine hands over an
        array nobody else references (``autograd._handed_over``), which is then stored as is.
        """
        if self.grad is None:
            self.grad = Tensor._from_array(g if owned else g.copy(), self.device)
        else:
            self.grad = Tensor._from_array(self.grad.data + g, self.device)

    # ---- operators (the functional ops do the work) ----------------------------------------
    def __add__(self, o):
        return _F().add(self, o)

    def __radd__(self, o):
        return _F().add(o, self)

    def __sub__(self, o):
        return _F().sub(self, o)

    def __rsub__(self, o):
        return _F().sub(o, self)

    def __mul__(self, o):
        return _F().mul(self, o)

    def __rmul__(self, o):
        return _F().mul(o, self)

    def __truediv__(self, o):
        return _F().div(self, o)

    def __rtruediv__(self, o):
        return _F().div(o, self)

    def __neg__(self):
        return _F().neg(self)

    def __pow__(self, p):
        return _F().pow(self, p)

    def __matmul__(self, o):
        return _F().matmul(self, o)

    def __rmatmul__(self, o):
        return _F().matmul(o, self)

    def __getitem__(self, index):
        return _F().getitem(self, index)

    # comparisons give plain (non-differentiable) boolean tensors
    def _cmp(self, o, op):
        od = o.data if isinstance(o, Tensor) else o
        return Tensor._from_array(op(self.data, od), self.device)

    def __lt__(self, o):
        return self._cmp(o, lambda a, b: a < b)

    def __le__(self, o):
        return self._cmp(o, lambda a, b: a <= b)

    def __gt__(self, o):
        return self._cmp(o, lambda a, b: a > b)

    def __ge__(self, o):
        return self._cmp(o, lambda a, b: a >= b)

    def eq(self, o):
        return self._cmp(o, lambda a, b: a == b)

    __hash__ = object.__hash__

    # ---- method forms of common ops --------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _F().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _F().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _F().max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _F().min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return _F().var(self, axis, keepdims, correction)

    def argmax(self, axis=None):
        return Tensor._from_array(self.data.argmax(axis=axis), self.device)

    def reshape(self, *shape):
        return _F().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def transpose(self, dim0=None, dim1=None):
        return _F().transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _F().permute(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)

    def flatten(self, start_dim=0, end_dim=-1):
        return _F().flatten(self, start_dim, end_dim)

    @property
    def T(self):
        return _F().permute(self, tuple(range(self.ndim))[::-1])

    def exp(self):
        return _F().exp(self)

    def log(self):
        return _F().log(self)

    def sqrt(self):
        return _F().sqrt(self)

    def abs(self):
        return _F().abs(self)

    def clip(self, lo=None, hi=None):
        return _F().clip(self, lo, hi)

    clamp = clip


def _F():
    from . import functional

    return functional


def to_host(a):
    """A NumPy array of a Tensor, a CuPy or NumPy array, or nested lists (a copy from the GPU)."""
    if isinstance(a, Tensor):
        return a.numpy()
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def float_promoted(t):
    """``t`` itself when it is float32/float64, else a float32 copy (ints, bools; float16) or a
    float64 one (float128): the promotion PyTorch applies before float math (``minicnn.dtypes``)."""
    if is_kernel_float(t.dtype):
        return t
    return Tensor._from_array(promote_to_float(t.device.xp, t.data), t.device)


def as_tensor_like(value, ref):
    """A constant tensor (no grad) holding ``value`` on ``ref``'s device, in ``ref``'s dtype for Python numbers."""
    xp = ref.device.xp
    if isinstance(value, (bool, int, float)):
        arr = xp.asarray(value, dtype=ref.dtype if ref.dtype.kind == "f" else None)
    else:
        arr = xp.asarray(value)
    return Tensor._from_array(arr, ref.device)


def tensor(data, requires_grad=False, device=None, dtype=None):
    """A new :class:`Tensor` holding a copy of ``data`` (PyTorch's ``torch.tensor``): changing the
    array it was made from later does not change the tensor. :func:`from_numpy` shares instead."""
    if isinstance(data, Tensor):
        data = data.data
    t = Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)
    if hasattr(data, "dtype") and t.device.xp.may_share_memory(t.data, data):
        t.data = t.data.copy()
    return t


def from_numpy(a):
    """A ``cpu`` tensor that shares ``a``'s memory (PyTorch's ``torch.from_numpy``): changes to one
    show in the other. ``a`` keeps its dtype (float64 stays float64)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(a).__name__}")
    if not a.dtype.isnative:
        raise TypeError(f"from_numpy: the array has non-native byte order {a.dtype.str!r}; sharing it "
                        f"would hand the kernels bytes they misread: use tensor(a), which converts")
    return Tensor._from_array(a, get_device("cpu"))


def _make(fill, shape, dtype, device, requires_grad):
    dev = get_device(device)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    data = fill(dev.xp)(shape, dtype=dtype or DEFAULT_DTYPE)
    return Tensor._from_array(data, dev, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp: xp.zeros, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp: xp.ones, shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, rng=None):
    """Standard normal samples, drawn from ``rng`` or the global generator (``minicnn.manual_seed``)."""
    from .random import get_rng

    rng = get_rng(rng)
    return _make(
        lambda xp: lambda s, dtype: xp.asarray(rng.standard_normal(s).astype(dtype)),
        shape, dtype, device, requires_grad,
    )


def arange(*args, dtype=None, device=None):
    dev = get_device(device)
    return Tensor._from_array(dev.xp.arange(*args, dtype=dtype), dev)
