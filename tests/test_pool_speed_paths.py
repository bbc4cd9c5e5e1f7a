"""The fast paths of the CPU max/avg pooling kernels (``kernels/cpu/_pool_fast.py``): non-overlapping
windows, and max pooling over overlapping windows (dilation 1, padding <= kernel/2).

Each fast path must give the SAME BITS as the general Numba kernels of ``kernels/cpu/pool.py``
(compared as unsigned integers, so -0.0 vs +0.0 count; a NaN only has to be a NaN: IEEE 754 does
not specify the sign or payload of the NaN that ``inf - inf`` makes, and a vectorised sum may add in
another order than the scalar one), and agree with the
reference loops and with PyTorch. Inputs are drawn from a small set of values (ties, ±0, ±inf,
NaN) so that "the first maximum wins", "a NaN wins" and the signed zeros are exercised.
"""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as np_arrays

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.cpu import _pool_fast as fast
from minicnn.kernels.cpu import pool as K
from minicnn.kernels.geometry import output_shape
from minicnn.kernels.reference import pool as R

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SPECIAL = [-np.inf, -2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf, np.nan]


@st.composite
def non_overlapping_geometry(draw, max_kernel=3):
    """Geometry where the fast path applies: stride ≥ kernel, no padding/dilation, and a remainder
    of rows/columns that no window covers; with ceil_mode only when it adds no overhanging window."""
    kernel, stride, size = [], [], []
    for _ in range(2):
        k = draw(st.integers(1, max_kernel))
        s = draw(st.integers(k, k + 1))
        n_out = draw(st.integers(1, 4))
        size.append((n_out - 1) * s + k + draw(st.integers(0, s - 1)))  # + a tail shorter than a stride
        kernel.append(k), stride.append(s)
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)), size=tuple(size),
                kernel=tuple(kernel), stride=tuple(stride))


def _draw_x(data, shape, dtype, special):
    values = st.sampled_from(SPECIAL) if special else st.floats(-4, 4, width=32)
    return data.draw(np_arrays(dtype, shape, elements=values))


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64 if a.dtype == np.float64 else a.dtype)


def _assert_same_bits(a, b):
    """Equal shapes and dtypes, NaN where the other has NaN (any sign or payload), and every other
    element bit for bit (so +0.0 and -0.0 differ)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(nan_a, nan_b)
    np.testing.assert_array_equal(_bits(a)[~nan_a], _bits(b)[~nan_b])


def _general_max(x, kernel, stride):
    """The general kernels of pool.py on the same input (padding 0, dilation 1)."""
    N, C, H, W = x.shape
    OH, OW = output_shape((H, W), kernel, stride, (0, 0), (1, 1), False, "test")
    y = np.empty((N * C, OH, OW), x.dtype)
    idx = np.empty((N * C, OH, OW), np.int64)
    K._max_pool(K._planes(x), y, idx, *kernel, *stride, 0, 0, 1, 1)
    return y.reshape(N, C, OH, OW), idx.reshape(N, C, OH, OW)


def _general_avg(x, kernel, stride, divisor_override):
    N, C, H, W = x.shape
    OH, OW = output_shape((H, W), kernel, stride, (0, 0), (1, 1), False, "test")
    y = np.empty((N * C, OH, OW), x.dtype)
    K._avg_pool(K._planes(x), y, *kernel, *stride, 0, 0, True, divisor_override)
    return y.reshape(N, C, OH, OW)


def _general_avg_backward(gy, in_hw, kernel, stride, divisor_override):
    N, C = gy.shape[:2]
    gx = np.zeros((N * C,) + tuple(in_hw), gy.dtype)
    K._avg_pool_backward(K._planes(gy), gx, *kernel, *stride, 0, 0, True, divisor_override)
    return gx.reshape((N, C) + tuple(in_hw))


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the calls of every fast kernel, so a test can check that the fast path was taken."""
    calls = []
    for name in ("max_pool_2x2", "max_pool_non_overlapping", "max_pool_backward_2x2",
                 "max_pool_backward_non_overlapping", "avg_pool_2x2", "avg_pool_non_overlapping",
                 "avg_pool_backward_non_overlapping", "max_pool_overlapping", "scatter_add_planes"):
        kernel = getattr(fast, name)

        def spy(*args, _kernel=kernel, _name=name):
            calls.append(_name)
            return _kernel(*args)

        monkeypatch.setattr(fast, name, spy)
    return calls


@given(data=st.data(), geo=non_overlapping_geometry(), dtype=st.sampled_from([np.float32, np.float64]),
       special=st.booleans())
def test_max_pool_fast_path_same_bits_as_general(data, geo, dtype, special):
    shape = (geo["N"], geo["C"]) + geo["size"]
    kernel, stride = geo["kernel"], geo["stride"]
    x = _draw_x(data, shape, dtype, special)
    y, idx = K.max_pool2d_forward(x, kernel, stride, (0, 0), (1, 1), False)
    y_gen, idx_gen = _general_max(x, kernel, stride)
    _assert_same_bits(y, y_gen)
    np.testing.assert_array_equal(idx, idx_gen)
    gy = _draw_x(data, y.shape, dtype, special)
    gx = K.max_pool2d_backward(gy, idx, x.shape[2:], kernel, stride, (0, 0), (1, 1))
    _assert_same_bits(gx, K._scatter_add(gy, idx_gen, x.shape[2:]))


@st.composite
def avg_pool_case(draw):
    """``(x, gy, kernel, stride, divisor_override)`` for the non-overlapping average pool."""
    geo, dtype = draw(non_overlapping_geometry()), draw(st.sampled_from([np.float32, np.float64]))
    special, divisor_override = draw(st.booleans()), draw(st.sampled_from([0, 0, 1, 3, 4]))
    data = draw(st.data())
    x = _draw_x(data, (geo["N"], geo["C"]) + geo["size"], dtype, special)
    out = output_shape(geo["size"], geo["kernel"], geo["stride"], (0, 0), (1, 1), False, "test")
    gy = _draw_x(data, (geo["N"], geo["C"]) + out, dtype, special)
    return x, gy, geo["kernel"], geo["stride"], divisor_override


# CI drew this one: the window sum -inf + inf + NaN is a NaN of sign + on the fast path and - on
# the general one (x86 makes -NaN for inf - inf and keeps the first NaN operand of a sum)
_INF_INF_NAN = np.array([-np.inf, np.inf, np.nan], np.float32).reshape(1, 1, 1, 3)


@given(case=avg_pool_case())
@example(case=(_INF_INF_NAN, np.ones((1, 1, 1, 1), np.float32), (1, 3), (1, 3), 0))
def test_avg_pool_fast_path_same_bits_as_general(case):
    x, gy, kernel, stride, divisor_override = case
    y = K.avg_pool2d_forward(x, kernel, stride, (0, 0), False, True, divisor_override)
    _assert_same_bits(y, _general_avg(x, kernel, stride, divisor_override))
    gx = K.avg_pool2d_backward(gy, x.shape[2:], kernel, stride, (0, 0), True, divisor_override)
    _assert_same_bits(gx, _general_avg_backward(gy, x.shape[2:], kernel, stride, divisor_override))


@given(data=st.data(), geo=non_overlapping_geometry(), ceil_mode=st.booleans())
def test_fast_paths_match_reference_and_torch(data, geo, ceil_mode):
    """Through the public ops (autograd included), with ties and signed zeros but no NaN/inf."""
    shape = (geo["N"], geo["C"]) + geo["size"]
    kw = dict(kernel_size=geo["kernel"], stride=geo["stride"], ceil_mode=ceil_mode)
    x = data.draw(np_arrays(np.float32, shape, elements=st.sampled_from([-2.0, -0.0, 0.0, 0.5, 1.0, 3.0])))
    X = mc.Tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(X, return_indices=True, **kw)
    y_ref, idx_ref = R.max_pool2d_forward(x, geo["kernel"], geo["stride"], (0, 0), (1, 1), ceil_mode)
    yt, it = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(y.numpy(), y_ref)
    np.testing.assert_array_equal(idx.numpy(), idx_ref)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    np.testing.assert_array_equal(idx.numpy(), it.numpy())
    gy = data.draw(np_arrays(np.float32, y.shape, elements=st.floats(-4, 4, width=32)))
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(tx, **kw).backward(torch.tensor(gy))
    np.testing.assert_array_equal(X.grad.numpy(), R.max_pool2d_backward(gy, idx_ref, x.shape[2:]))
    np.testing.assert_array_equal(X.grad.numpy(), tx.grad.numpy())

    X = mc.Tensor(x, requires_grad=True)
    y = F.avg_pool2d(X, **kw)
    np.testing.assert_allclose(y.numpy(), R.avg_pool2d_forward(x, geo["kernel"], geo["stride"], (0, 0),
                                                               ceil_mode, True, None), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y.numpy(), TF.avg_pool2d(torch.tensor(x), **kw).numpy(), rtol=1e-5, atol=1e-6)
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    TF.avg_pool2d(tx, **kw).backward(torch.tensor(gy))
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_max_pool_2x2_ties_nan_and_inf_like_torch():
    """First maximum wins on ties; a NaN wins (the LAST NaN of a window, as PyTorch's ``val > max ||
    isnan(val)``); a window of -inf keeps its first position."""
    x = np.array([[[[1.0, 1.0, np.nan, 2.0, -np.inf, -np.inf],
                    [1.0, 0.0, 5.0, np.nan, -np.inf, -np.inf]]]], dtype=np.float32)
    y, idx = K.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    yt, it = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    assert idx.ravel().tolist() == [0, 9, 4]


def test_non_overlapping_predicate():
    assert fast.non_overlapping((32, 32), (16, 16), (2, 2), (2, 2), (0, 0))
    assert fast.non_overlapping((7, 7), (3, 3), (2, 2), (2, 2), (0, 0))  # a row and a column left over
    assert fast.non_overlapping((8, 9), (3, 3), (2, 2), (3, 3), (0, 0))  # gaps between windows
    assert not fast.non_overlapping((7, 7), (4, 4), (2, 2), (2, 2), (0, 0))  # ceil_mode tail overhangs
    assert not fast.non_overlapping((8, 8), (4, 4), (3, 3), (2, 2), (0, 0))  # overlapping windows
    assert not fast.non_overlapping((8, 8), (5, 5), (2, 2), (2, 2), (1, 1))  # padding
    assert not fast.non_overlapping((8, 8), (3, 3), (2, 2), (2, 2), (0, 0), (2, 2))  # dilation


@pytest.mark.parametrize("kernel, stride, size, want", [
    ((2, 2), (2, 2), (6, 7), {"max_pool_2x2", "max_pool_backward_2x2", "avg_pool_2x2",
                              "avg_pool_backward_non_overlapping"}),
    ((2, 3), (3, 3), (7, 9), {"max_pool_non_overlapping", "max_pool_backward_non_overlapping",
                              "avg_pool_non_overlapping", "avg_pool_backward_non_overlapping"}),
    ((3, 3), (2, 2), (7, 7), {"max_pool_overlapping", "scatter_add_planes"}),  # overlapping: max pool only
])
def test_fast_path_is_taken_exactly_where_it_applies(fast_calls, kernel, stride, size, want):
    x = np.random.default_rng(0).standard_normal((2, 3) + size).astype(np.float32)
    for fn in (F.max_pool2d, F.avg_pool2d):
        X = mc.Tensor(x, requires_grad=True)
        y = fn(X, kernel, stride)
        y.backward(np.ones(y.shape, np.float32))
    assert set(fast_calls) == want


def test_non_contiguous_input_through_fast_path():
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 10)).astype(np.float32).transpose(1, 0, 2, 3)
    y, idx = K.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    y_ref, idx_ref = R.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    gy = np.asfortranarray(np.random.default_rng(2).standard_normal(y.shape).astype(np.float32))
    gx = K.max_pool2d_backward(gy, idx, x.shape[2:], (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(gx, R.max_pool2d_backward(gy, idx_ref, x.shape[2:]))


@pytest.mark.parametrize("kernel, stride, size", [((2, 2), (3, 3), (5, 5)), ((1, 2), (2, 3), (3, 8)),
                                                  ((2, 2), (2, 2), (5, 5))])
def test_backward_kernels_write_only_inside_gx(kernel, stride, size):
    """The last window's gap can reach past the input (W = 5, kernel 2, stride 3: the gap would be
    column 5): the kernels must stop at W. Guard cells after ``gx`` must stay untouched."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2) + size).astype(np.float32)
    y, idx = K.max_pool2d_forward(x, kernel, stride, (0, 0), (1, 1), False)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    P, n = 2, size[0] * size[1]
    for name, args in (("max", (gy.reshape(P, *y.shape[2:]), idx.reshape(P, *y.shape[2:]))),
                       ("avg", (gy.reshape(P, *y.shape[2:]),))):
        buf = np.full(P * n + 16, 7.0, np.float32)
        gx = buf[:P * n].reshape(P, *size)
        if name == "max":
            fast.max_pool_backward_non_overlapping(*args, gx, *kernel, *stride, 0, P)
            want = R.max_pool2d_backward(gy, idx, size)
        else:
            fast.avg_pool_backward_non_overlapping(*args, gx, *kernel, *stride, 0.25, 4.0, True, 0, P)
            want = R.avg_pool2d_backward(gy, size, kernel, stride, (0, 0), True, 4)
        assert (buf[P * n:] == 7.0).all(), name
        np.testing.assert_array_equal(gx.reshape((1, 2) + size), want)


@st.composite
def overlapping_geometry(draw):
    """Windows that may overlap and overhang: kernel 1–4, stride 1–3, padding 0..kernel//2, any
    size a window fits in (with the padding), ceil_mode either way."""
    kernel, stride, padding, size = [], [], [], []
    for _ in range(2):
        k = draw(st.integers(1, 4))
        p = draw(st.integers(0, k // 2))
        kernel.append(k), stride.append(draw(st.integers(1, 3))), padding.append(p)
        size.append(draw(st.integers(max(1, k - 2 * p), 11)))
    return dict(N=draw(st.integers(0, 2)), C=draw(st.integers(1, 3)), size=tuple(size), kernel=tuple(kernel),
                stride=tuple(stride), padding=tuple(padding), ceil_mode=draw(st.booleans()))


@given(data=st.data(), geo=overlapping_geometry(), dtype=st.sampled_from([np.float32, np.float64]),
       special=st.booleans())
@example(data=None, geo=dict(N=1, C=1, size=(5, 5), kernel=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=False),
         dtype=np.float32, special=True)
def test_max_pool_overlapping_path_same_bits_as_general_and_reference(data, geo, dtype, special):
    """The overlapping-window kernel against the general prange kernel (same bits and indices,
    ties, ±0, ±inf and NaN drawn), the plain-loop reference, and its backward (the per-plane
    scatter) against the reference's."""
    shape = (geo["N"], geo["C"]) + geo["size"]
    kernel, stride, padding, ceil = geo["kernel"], geo["stride"], geo["padding"], geo["ceil_mode"]
    if data is None:   # the example: ResNet's stem pool with NaN, ties and -inf at the borders
        x = np.array([[np.nan, 1, 1, -np.inf, 3], [1, np.nan, 1, 2, 3], [0, 0, -0.0, 2, np.inf],
                      [-np.inf, -np.inf, 5, 5, 0], [1, 2, 3, np.nan, -0.0]], dtype).reshape(shape)
        gy = None
    else:
        x = _draw_x(data, shape, dtype, special)
    y, idx = K.max_pool2d_forward(x, kernel, stride, padding, (1, 1), ceil)
    OH, OW = y.shape[2:]
    y_gen = np.empty((shape[0] * shape[1], OH, OW), dtype)
    idx_gen = np.empty(y_gen.shape, np.int64)
    K._max_pool(K._planes(x), y_gen, idx_gen, *kernel, *stride, *padding, 1, 1)
    _assert_same_bits(y, y_gen.reshape(y.shape))
    np.testing.assert_array_equal(idx, idx_gen.reshape(y.shape))
    y_ref, idx_ref = R.max_pool2d_forward(x, kernel, stride, padding, (1, 1), ceil)
    _assert_same_bits(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    gy = np.arange(y.size, dtype=dtype).reshape(y.shape) if data is None else _draw_x(data, y.shape, dtype, False)
    gx = K.max_pool2d_backward(gy, idx, x.shape[2:], kernel, stride, padding, (1, 1))
    np.testing.assert_array_equal(gx, R.max_pool2d_backward(gy, idx_ref, x.shape[2:]))


def test_max_pool_overlapping_like_torch():
    """ResNet's stem pool and Inception's 3×3 stride-1 pool through the public op, with ties:
    values, indices and the input gradient equal PyTorch's."""
    r = np.random.default_rng(5)
    for shape, kw in (((2, 3, 12, 11), dict(kernel_size=3, stride=2, padding=1)),
                      ((2, 3, 9, 9), dict(kernel_size=3, stride=1, padding=1)),
                      ((1, 2, 10, 7), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True))):
        x = r.integers(-3, 4, shape).astype(np.float32)   # many ties
        X = mc.Tensor(x, requires_grad=True)
        y, idx = F.max_pool2d(X, return_indices=True, **kw)
        tx = torch.tensor(x, requires_grad=True)
        yt, it = TF.max_pool2d(tx, return_indices=True, **kw)
        np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
        np.testing.assert_array_equal(idx.numpy(), it.numpy())
        gy = r.standard_normal(y.shape).astype(np.float32)
        y.backward(gy)
        yt.backward(torch.tensor(gy))
        np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@given(data=st.data(), geo=overlapping_geometry(), dilation=st.integers(1, 2),
       dtype=st.sampled_from([np.float32, np.float64]), special=st.booleans())
def test_max_pool_without_indices_gives_the_same_values(data, geo, dilation, dtype, special):
    """``indices=False`` (the eval/no_grad path: each task's indices go to a scratch block) returns
    ``(y, None)`` with the same bits as the indexed kernel and the reference loops, on every path
    (2×2, non-overlapping, overlapping, and the general kernel with dilation 2)."""
    kernel, stride, padding, ceil = geo["kernel"], geo["stride"], geo["padding"], geo["ceil_mode"]
    span = [(k - 1) * dilation + 1 for k in kernel]
    size = tuple(max(s, sp - 2 * p) for s, sp, p in zip(geo["size"], span, padding))
    x = _draw_x(data, (geo["N"], geo["C"]) + size, dtype, special)
    y, none = K.max_pool2d_forward(x, kernel, stride, padding, (dilation, dilation), ceil, indices=False)
    assert none is None
    y_idx, _ = K.max_pool2d_forward(x, kernel, stride, padding, (dilation, dilation), ceil)
    _assert_same_bits(y, y_idx)
    _assert_same_bits(y, R.max_pool2d_forward(x, kernel, stride, padding, (dilation, dilation), ceil)[0])


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((4, 32, 64, 64), 2, 2, 0), ((4, 32, 66, 66), 3, 3, 0), ((4, 32, 64, 64), 3, 2, 1)])
def test_max_pool_without_indices_over_several_tasks(shape, kernel, stride, padding):
    """Inputs of 2 MiB and more are split into plane blocks over the threads, each block with
    its own scratch rows: every plane's values right."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    k, s, p = (kernel,) * 2, (stride,) * 2, (padding,) * 2
    y, _ = K.max_pool2d_forward(x, k, s, p, (1, 1), False, indices=False)
    np.testing.assert_array_equal(y, R.max_pool2d_forward(x, k, s, p, (1, 1), False)[0])


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_max_pool_op_skips_indices_only_where_no_gradient_is_taken(device, monkeypatch):
    """``F.max_pool2d`` asks the kernel for no indices under ``no_grad`` or for an input that needs
    no gradient, and for them whenever a gradient will be taken or they are returned; the values
    agree either way and the gradient still flows."""
    x = mc.tensor(np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32), device=device)
    kernels, asked = x.device.kernels, []
    forward = kernels.max_pool2d_forward

    def spy(*args, **kw):
        asked.append(kw.get("indices", True))
        return forward(*args, **kw)

    monkeypatch.setattr(kernels, "max_pool2d_forward", spy)
    with mc.no_grad():
        y0 = F.max_pool2d(x, 2)
        y1, idx = F.max_pool2d(x, 2, return_indices=True)
    y2 = F.max_pool2d(x, 2)
    w = x.detach().requires_grad_()
    y3 = F.max_pool2d(w, 2)
    y3.sum().backward()
    assert asked == [False, True, False, True]
    for y in (y1, y2, y3):
        np.testing.assert_array_equal(y.numpy(), y0.numpy())
    assert idx.shape == y0.shape and w.grad.numpy().sum() == y0.numel()
