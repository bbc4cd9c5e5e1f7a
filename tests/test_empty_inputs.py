"""Empty inputs of the convolution, pooling and resampling ops (issue 28), against PyTorch.

A batch of zero images is ordinary (a mask head that got no RoIs): every op must return its
correctly shaped empty output and, backward, gradients of its inputs' shapes (a weight gradient
over no images is zeros). Other zero sizes follow PyTorch: where it accepts them (``C = 0`` in
``adaptive_avg_pool2d``, any size in ``local_response_norm``) we return its shapes, where it
raises we raise a ValueError naming the op before any kernel runs. Two deliberate differences,
where PyTorch answers what its own general rule refuses: a convolution of ``C_in = 0`` channels
(PyTorch gives its output 0 channels whatever the weight) and ``adaptive_avg_pool2d(x, 1)`` of
``H`` or ``W = 0`` (its 1×1 shortcut, a mean, returns NaN); minicnn refuses both.

The table draws every size from a range that includes 0; the cases that PyTorch computes
(non-empty ones too) are compared value for value, forward and backward, in float64.
"""
from typing import Callable, NamedTuple

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


class Case(NamedTuple):
    """``ours(*tensors)`` and ``theirs(*torch_tensors)`` on the same float64 ``inputs`` (the first
    is the op's input, the others its weight and bias); both return one tensor or a tuple whose
    first entry is differentiable. ``refuse``: minicnn rejects a case PyTorch accepts."""
    op: str
    inputs: tuple
    ours: Callable
    theirs: Callable
    refuse: bool = False
    args: str = ""

    def __repr__(self):
        return f"{self.op}({', '.join(str(a.shape) for a in self.inputs)}{', ' if self.args else ''}{self.args})"


def _values(rng, shape):
    """Distinct values (no ties in a max window), shuffled."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2).reshape(shape) * 0.1


@st.composite
def sizes(draw, spatial, max_side=6):
    """``(N, C) + spatial sizes``, each drawn from a range that includes 0."""
    spatial_sizes = tuple(draw(st.integers(0, max_side)) for _ in range(spatial))
    return (draw(st.integers(0, 2)), draw(st.integers(0, 3))) + spatial_sizes


@st.composite
def conv_cases(draw):
    dims, transposed = draw(st.sampled_from([1, 2])), draw(st.booleans())
    N, C_in, *hw = draw(sizes(dims))
    kind = draw(st.sampled_from(["plain", "grouped", "depthwise", "1x1"]))
    groups = {"plain": 1, "1x1": 1, "grouped": 2, "depthwise": max(C_in, 1)}[kind]
    C_in = C_in * 2 if kind == "grouped" else C_in
    k = 1 if kind == "1x1" else draw(st.integers(1, 3))
    C_out = draw(st.integers(0, 2)) * groups + (groups if kind == "depthwise" else 0)
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = _values(rng, (N, C_in, *hw))
    if transposed:  # weight (C_in, C_out/groups, k...)
        w = rng.standard_normal((C_in, C_out // groups) + (k,) * dims)
        op = f"conv_transpose{dims}d"
        kw = dict(stride=stride, padding=padding, groups=groups, dilation=dilation)
        bias = rng.standard_normal(w.shape[1] * groups)
    else:
        w = rng.standard_normal((C_out, C_in // groups) + (k,) * dims)
        op = f"conv{dims}d"
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        bias = rng.standard_normal(C_out)
    return Case(op, (x, w, bias), lambda *t: getattr(F, op)(*t, **kw), lambda *t: getattr(TF, op)(*t, **kw),
                refuse=C_in == 0, args=str(kw))


@st.composite
def pool_cases(draw):
    spatial = draw(st.sampled_from([1, 2]))
    shape = draw(sizes(spatial))
    if draw(st.booleans()):
        shape = shape[1:]  # unbatched (C, *)
    x = _values(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), shape)
    k = draw(st.integers(1, 3))
    kw = dict(kernel_size=k, stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, k // 2)),
              ceil_mode=draw(st.booleans()))
    kind = draw(st.sampled_from(["max", "avg", "adaptive_avg", "adaptive_max", "global_avg", "unpool"]))
    if kind == "max":
        op = f"max_pool{spatial}d"
        kw.update(return_indices=draw(st.booleans()), dilation=draw(st.integers(1, 2)))
        if kw["dilation"] > 1:  # no window wholly in the padding: PyTorch's index for it is out of range,
            kw["padding"] = 0   # and its backward writes there (a heap corruption; see F.max_pool2d)
    elif kind == "avg":
        op = f"avg_pool{spatial}d"
        kw.update(count_include_pad=draw(st.booleans()))
    elif kind == "unpool":  # stride >= kernel: no index twice (minicnn adds duplicates, PyTorch keeps one)
        k, s = kw["kernel_size"], max(kw["kernel_size"], kw["stride"])
        return _unpool_case(x, k, s) if spatial == 2 else _unpool_case(x[..., None, :], 1, s)
    else:
        if spatial == 1:
            x = x[..., None, :]  # the adaptive ops are 2-D
        op = "adaptive_avg_pool2d" if kind == "global_avg" else f"{kind}_pool2d"
        kw = dict(output_size=1 if kind == "global_avg" else (draw(st.integers(1, 3)), draw(st.integers(1, 3))))
        if kind == "adaptive_max":
            kw.update(return_indices=draw(st.booleans()))
        # PyTorch's 1×1 shortcut (a mean) returns NaN for H or W = 0, where its general path raises
        refuse = kind != "adaptive_max" and 0 in x.shape[-2:]
        if kind == "global_avg":
            return Case(op, (x,), F.global_avg_pool2d, lambda t: TF.adaptive_avg_pool2d(t, 1), refuse, "global")
        return Case(op, (x,), lambda t: getattr(F, op)(t, **kw), lambda t: getattr(TF, op)(t, **kw), refuse, str(kw))
    return Case(op, (x,), lambda t: getattr(F, op)(t, **kw), lambda t: getattr(TF, op)(t, **kw), args=str(kw))


def _unpool_case(x, k, s):
    """max_unpool2d of a max pool's values and indices (the backward goes through both ops)."""
    def run(fn, unpool, t):
        y, idx = fn(t, k, s, return_indices=True)
        return unpool(y, idx, k, s)

    return Case("max_(un)?pool2d", (x,), lambda t: run(F.max_pool2d, F.max_unpool2d, t),
                lambda t: run(TF.max_pool2d, TF.max_unpool2d, t), args=f"kernel {k}, stride {s}")


def _op_case(op, shape, **kw):
    """A case of the one-input op ``F.<op>(x, **kw)``."""
    x = _values(np.random.default_rng(2), shape)
    return Case(op, (x,), lambda t: getattr(F, op)(t, **kw), lambda t: getattr(TF, op)(t, **kw), args=str(kw))


@st.composite
def resample_cases(draw):
    mode = draw(st.sampled_from(["nearest", "linear", "bilinear", "nearest2d", "lrn"]))
    spatial = 2 if mode in ("bilinear", "nearest2d", "lrn") else 1
    shape = draw(sizes(spatial))
    x = _values(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), shape)
    if mode == "lrn":
        kw = dict(size=draw(st.integers(1, 4)), alpha=1e-2, beta=0.75, k=1.0)
        return Case("local_response_norm", (x,), lambda t: F.local_response_norm(t, **kw),
                    lambda t: TF.local_response_norm(t, **kw), args=str(kw))
    mode = "nearest" if mode == "nearest2d" else mode
    kw = dict(mode=mode, size=tuple(draw(st.integers(1, 5)) for _ in range(spatial)))
    if mode != "nearest":
        kw["align_corners"] = draw(st.booleans())
    return Case("interpolate", (x,), lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), args=str(kw))


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def check_case(device, case):
    """Forward and backward of ``case`` on ``device`` equal PyTorch's (shapes, dtypes, values), or
    both refuse it (ours with a ValueError naming the op)."""
    ts = [torch.tensor(a, requires_grad=True) for a in case.inputs]
    try:
        want = case.theirs(*ts)
    except (RuntimeError, IndexError):  # refused (an empty C_out/groups weight crashes its conv_transpose)
        want = None
    mine = [mc.Tensor(a, device=device, requires_grad=True) for a in case.inputs]
    if want is None or case.refuse:
        with pytest.raises(ValueError, match=case.op):
            case.ours(*mine)
        return
    got = case.ours(*mine)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert g.shape == tuple(w.shape), case.op
        assert np.dtype(g.dtype) == np.dtype(str(w.dtype).replace("torch.", "")), case.op
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=case.op)
    gy = np.random.default_rng(0).standard_normal(_first(want).shape)
    _first(got).backward(mc.Tensor(gy, device=device))
    try:
        _first(want).backward(torch.tensor(gy))
    except RuntimeError:  # adaptive_avg_pool2d's backward refuses the C = 0 its forward takes
        assert all(a.size == 0 for a in case.inputs), case.op
        ts = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in case.inputs]
        for t in ts:
            t.grad = torch.zeros_like(t)
    for t, m in zip(ts, mine):
        assert m.grad is not None and m.grad.shape == tuple(t.shape), case.op
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=case.op)


@given(case=conv_cases())
def test_convolutions_with_zero_sizes_like_pytorch(device, case):
    check_case(device, case)


@given(case=pool_cases())
# ceil mode's partial window over the whole input (kernel 2 > L = 1): PyTorch takes it, we refused it
@example(case=_op_case("avg_pool1d", (0, 1, 1), kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False))
@example(case=_op_case("max_pool2d", (2, 1, 1, 3), kernel_size=2, stride=2, ceil_mode=True, return_indices=True))
def test_pools_with_zero_sizes_like_pytorch(device, case):
    check_case(device, case)


@given(case=resample_cases())
def test_resampling_with_zero_sizes_like_pytorch(device, case):
    check_case(device, case)


def _conv_case(x_shape, w_shape, transposed=False, **kw):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * kw.get("groups", 1) if transposed else w_shape[0])
    op = "conv_transpose2d" if transposed else "conv2d"
    return Case(op, (x, w, b), lambda *t: getattr(F, op)(*t, **kw), lambda *t: getattr(TF, op)(*t, **kw), args=str(kw))


#: an empty batch through each CPU convolution path (the drawn cases are too small for most), and
#: the zero spatial sizes PyTorch takes (in an empty batch only) or refuses
EMPTY_BATCH_PATHS = {
    "winograd F(2x2) (mask head, 0 RoIs)": _conv_case((0, 256, 14, 14), (256, 256, 3, 3), padding=1),
    "winograd F(4x4)": _conv_case((0, 16, 56, 56), (16, 16, 3, 3), padding=1),
    "winograd fused backward": _conv_case((0, 32, 16, 16), (64, 32, 3, 3), padding=1),
    "1x1": _conv_case((0, 8, 5, 5), (4, 8, 1, 1)),
    "grouped": _conv_case((0, 8, 5, 5), (6, 4, 3, 3), groups=2),
    "strided": _conv_case((0, 8, 9, 9), (6, 8, 3, 3), stride=2),
    "dilated": _conv_case((0, 8, 9, 9), (6, 8, 3, 3), dilation=2),
    "depthwise 3x3": _conv_case((0, 8, 9, 9), (8, 1, 3, 3), padding=1, groups=8),
    "depthwise 5x5, multiplier 2": _conv_case((0, 8, 9, 9), (16, 1, 5, 5), padding=2, groups=8),
    "transposed, fused backward": _conv_case((0, 64, 28, 28), (64, 32, 4, 4), transposed=True, stride=2, padding=1),
    "transposed 3x3": _conv_case((0, 8, 5, 5), (8, 4, 3, 3), transposed=True, stride=2),
    "H = 0 (refused)": _conv_case((1, 8, 0, 5), (4, 8, 3, 3), padding=2),
    "N = 0 and H = 0": _conv_case((0, 8, 0, 5), (4, 8, 3, 3), padding=2),
    "transposed, N = 0 and an empty output": _conv_case((0, 8, 1, 5), (8, 4, 2, 2), transposed=True, padding=1),
}


@pytest.mark.parametrize("name", EMPTY_BATCH_PATHS)
def test_empty_batch_through_each_convolution_path(device, name):
    check_case(device, EMPTY_BATCH_PATHS[name])


#: every pooling and resampling op on an empty batch, and the other zero sizes PyTorch takes or refuses
ZERO_SIZE_OPS = {
    "max_pool2d N = 0": _op_case("max_pool2d", (0, 3, 5, 5), kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                 return_indices=True),
    "max_pool2d 2x2 N = 0": _op_case("max_pool2d", (0, 3, 4, 4), kernel_size=2, return_indices=True),
    "max_pool2d C = 0 (refused)": _op_case("max_pool2d", (1, 0, 4, 4), kernel_size=2),
    "max_pool1d N = 0": _op_case("max_pool1d", (0, 3, 7), kernel_size=3, stride=2, dilation=2),
    "avg_pool2d N = 0": _op_case("avg_pool2d", (0, 3, 5, 5), kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                 count_include_pad=False),
    "avg_pool2d 2x2 N = 0": _op_case("avg_pool2d", (0, 3, 4, 4), kernel_size=2),
    "avg_pool1d N = 0": _op_case("avg_pool1d", (0, 3, 7), kernel_size=2),
    "avg_pool2d unbatched C = 0 (refused)": _op_case("avg_pool2d", (0, 4, 4), kernel_size=2),
    "adaptive_avg_pool2d N = 0": _op_case("adaptive_avg_pool2d", (0, 3, 5, 5), output_size=(2, 3)),
    "adaptive_avg_pool2d C = 0": _op_case("adaptive_avg_pool2d", (2, 0, 5, 5), output_size=2),
    "adaptive_avg_pool2d W = 0 (refused)": _op_case("adaptive_avg_pool2d", (2, 3, 5, 0), output_size=2),
    "adaptive_max_pool2d N = 0": _op_case("adaptive_max_pool2d", (0, 3, 5, 5), output_size=2, return_indices=True),
    "adaptive_max_pool2d unbatched C = 0": _op_case("adaptive_max_pool2d", (0, 5, 5), output_size=2),
    "adaptive_max_pool2d C = 0 (refused)": _op_case("adaptive_max_pool2d", (1, 0, 5, 5), output_size=2),
    "max_unpool2d N = 0": _unpool_case(_values(np.random.default_rng(3), (0, 3, 4, 4)), 2, 2),
    "interpolate nearest N = 0": _op_case("interpolate", (0, 3, 4, 4), scale_factor=2),
    "interpolate bilinear N = 0": _op_case("interpolate", (0, 3, 4, 4), size=(3, 7), mode="bilinear"),
    "interpolate linear N = 0": _op_case("interpolate", (0, 3, 4), size=9, mode="linear", align_corners=True),
    "interpolate nearest C = 0 (refused)": _op_case("interpolate", (1, 0, 4), size=9),
    "interpolate nearest H = 0 (refused)": _op_case("interpolate", (1, 2, 0, 4), size=(3, 3)),
    "local_response_norm N = 0": _op_case("local_response_norm", (0, 3, 4, 4), size=2),
    "local_response_norm C = 0": _op_case("local_response_norm", (2, 0, 4, 4), size=2),
    "local_response_norm H = 0": _op_case("local_response_norm", (2, 3, 0, 4), size=2),
}


@pytest.mark.parametrize("name", ZERO_SIZE_OPS)
def test_zero_sizes_through_each_op(device, name):
    check_case(device, ZERO_SIZE_OPS[name])


def test_layers_take_an_empty_batch(device):
    """The nn layers of a mask head on zero RoIs."""
    head = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Conv2d(4, 1, 1)).to(device)
    x = mc.Tensor(np.zeros((0, 8, 14, 14), np.float32), device=device, requires_grad=True)
    y = head(x)
    assert y.shape == (0, 1, 14, 14)
    y.sum().backward()
    assert x.grad.shape == x.shape
    for p in head.parameters():
        assert p.grad.shape == p.shape and not p.grad.numpy().any()
