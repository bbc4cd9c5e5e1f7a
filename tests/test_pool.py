"""Pooling: hypothesis properties vs the reference loops and PyTorch, device parity, error cases.

Max-type ops draw inputs from ``distinct_arrays`` so every window has a unique winner; the
geometry comes from ``minicnn.testing.strategies.pool_geometry`` (padding ≤ kernel/2).
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.geometry import output_shape
from minicnn.kernels.reference import pool as R
from minicnn.testing import gradcheck
from conftest import DEVICE_PARAMS
from minicnn.testing.strategies import arrays, distinct_arrays, pool_geometry

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# hypothesis tests take the device as a parameter (not the function-scoped fixture)
on_devices = pytest.mark.parametrize("device", DEVICE_PARAMS)


def _valid(geo, dilation=None):
    """True when the shared geometry helper accepts the drawn geometry (non-empty output)."""
    try:
        output_shape(geo["size"], geo["kernel"], geo["stride"], geo["padding"],
                     dilation or geo["dilation"], geo["ceil_mode"], "test")
        return True
    except ValueError:
        return False


def _shape(geo):
    return (geo["N"], geo["C"]) + geo["size"]


def _torch_grad(fn, x, gy):
    t = torch.tensor(x, requires_grad=True)
    y = fn(t)
    y = y[0] if isinstance(y, tuple) else y
    y.backward(torch.tensor(gy))
    return t.grad.numpy()


def _grad(fn, x, gy, device="cpu"):
    t = mc.Tensor(x, device=device, requires_grad=True)
    y = fn(t)
    y = y[0] if isinstance(y, tuple) else y
    y.backward(gy)
    return t.grad.numpy()


# ---- max pooling ----------------------------------------------------------------------------------
@on_devices
@given(data=st.data(), geo=pool_geometry(dilation=True))
def test_max_pool2d_matches_reference_and_torch(data, geo, device):
    assume(_valid(geo))
    x = data.draw(distinct_arrays(_shape(geo), np.float32, contiguous=False))
    kw = dict(kernel_size=geo["kernel"], stride=geo["stride"], padding=geo["padding"],
              dilation=geo["dilation"], ceil_mode=geo["ceil_mode"])
    y, idx = F.max_pool2d(mc.Tensor(x, device=device), return_indices=True, **kw)
    y_ref, idx_ref = R.max_pool2d_forward(x, geo["kernel"], geo["stride"], geo["padding"], geo["dilation"],
                                          geo["ceil_mode"])
    np.testing.assert_array_equal(y.numpy(), y_ref)
    np.testing.assert_array_equal(idx.numpy(), idx_ref)
    assert idx.dtype == np.int64
    gy = data.draw(arrays(y.shape, np.float32))
    gx = _grad(lambda t: F.max_pool2d(t, **kw), x, gy, device)
    np.testing.assert_array_equal(gx, R.max_pool2d_backward(gy, idx_ref, x.shape[2:]))
    yt, it = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    # A window with no input position (all taps in the padding; the reference agrees) has index -1;
    # PyTorch's index there is meaningless (out of range, or another row), and so is its gradient.
    real = idx.numpy() >= 0
    np.testing.assert_array_equal(idx.numpy()[real], it.numpy()[real])
    assert np.isneginf(y.numpy()[~real]).all()
    if real.all():
        np.testing.assert_allclose(gx, _torch_grad(lambda t: TF.max_pool2d(t, **kw), x, gy), rtol=1e-5, atol=1e-6)


def test_max_pool_window_all_in_padding(device):
    """H=1, kernel 2, padding 1, dilation 2 reads rows -1 and 1: no input position. PyTorch gives
    -inf and the out-of-range index 7 (then writes out of bounds in backward); minicnn gives -inf, -1."""
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    kw = dict(kernel_size=(2, 3), stride=2, padding=1, dilation=2, ceil_mode=True)
    t = mc.Tensor(x, device=device, requires_grad=True)
    y, idx = F.max_pool2d(t, return_indices=True, **kw)
    yt, it = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    assert np.isneginf(y.numpy()).all() and (idx.numpy() == -1).all() and (it.numpy() >= 6).all()
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(t.grad.numpy(), np.zeros_like(x))
    with pytest.raises(ValueError, match="max_unpool2d: indices must lie"):
        F.max_unpool2d(y, idx, (2, 3), stride=2, padding=1, output_size=(1, 6))


@given(data=st.data(), geo=pool_geometry(dims=1, dilation=True))
def test_max_pool1d_matches_torch(data, geo):
    assume(_valid(geo))
    x = data.draw(distinct_arrays(_shape(geo), np.float32))
    kw = dict(kernel_size=geo["kernel"][0], stride=geo["stride"][0], padding=geo["padding"][0],
              dilation=geo["dilation"][0], ceil_mode=geo["ceil_mode"])
    y, idx = F.max_pool1d(mc.Tensor(x), return_indices=True, **kw)
    yt, it = TF.max_pool1d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    assume((idx.numpy() >= 0).all())  # all-padding windows: see test_max_pool_window_all_in_padding
    np.testing.assert_array_equal(idx.numpy(), it.numpy())
    gy = data.draw(arrays(y.shape, np.float32))
    np.testing.assert_allclose(_grad(lambda t: F.max_pool1d(t, **kw), x, gy),
                               _torch_grad(lambda t: TF.max_pool1d(t, **kw), x, gy), rtol=1e-5, atol=1e-6)


def test_max_pool_first_maximum_wins_and_takes_the_gradient(device):
    x = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 2.0], [3.0, 1.0, 0.0]]]])
    t = mc.Tensor(x, device=device, requires_grad=True)
    y, idx = F.max_pool2d(t, 2, stride=1, return_indices=True)
    assert idx.numpy().ravel().tolist() == [1, 1, 3, 5]  # ties: the first in scan order
    y.sum().backward()
    want = np.zeros(9)
    np.add.at(want, [1, 1, 3, 5], 1.0)
    np.testing.assert_array_equal(t.grad.numpy().ravel(), want)
    _, it = TF.max_pool2d(torch.tensor(x), 2, stride=1, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), it.numpy())


def test_max_pool_nan_and_minus_inf_like_torch(device):
    x = np.array([[[[-np.inf, -np.inf, 1.0], [np.nan, 2.0, -np.inf], [0.0, np.nan, 5.0]]]])
    y, idx = F.max_pool2d(mc.Tensor(x, device=device), 2, stride=1, padding=1, return_indices=True)
    yt, it = TF.max_pool2d(torch.tensor(x), 2, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    np.testing.assert_array_equal(idx.numpy(), it.numpy())


def test_max_pool_gradcheck_overlapping(device):
    rng = np.random.default_rng(3)
    x = mc.Tensor(rng.permutation(np.arange(2 * 6 * 5) * 0.1).reshape(1, 2, 6, 5), device=device)
    gradcheck(lambda t: F.max_pool2d(t, 3, stride=1, padding=1, dilation=1), [x])


# ---- average pooling --------------------------------------------------------------------------------
@on_devices
@given(data=st.data(), geo=pool_geometry(), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 3]))
def test_avg_pool2d_matches_reference_and_torch(data, geo, count_include_pad, divisor_override, device):
    assume(_valid(geo, dilation=(1, 1)))
    x = data.draw(arrays(_shape(geo), np.float32))
    kw = dict(kernel_size=geo["kernel"], stride=geo["stride"], padding=geo["padding"], ceil_mode=geo["ceil_mode"],
              count_include_pad=count_include_pad, divisor_override=divisor_override)
    y = F.avg_pool2d(mc.Tensor(x, device=device), **kw).numpy()
    np.testing.assert_allclose(y, R.avg_pool2d_forward(x.astype(np.float64), geo["kernel"], geo["stride"],
                                                       geo["padding"], geo["ceil_mode"], count_include_pad,
                                                       divisor_override), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, TF.avg_pool2d(torch.tensor(x), **kw).numpy(), rtol=1e-4, atol=1e-6)
    gy = data.draw(arrays(y.shape, np.float32))
    np.testing.assert_allclose(_grad(lambda t: F.avg_pool2d(t, **kw), x, gy, device),
                               _torch_grad(lambda t: TF.avg_pool2d(t, **kw), x, gy), rtol=1e-4, atol=1e-6)


def test_avg_pool_ceil_mode_overhang_divisor():
    """L=6, k=3, s=2, p=1, ceil_mode: the last window [5, 8) overhangs the padded extent [-1, 7).
    PyTorch divides by the part inside the padded extent (2), not by k (3): x[5] / 2 = 3."""
    x = np.arange(6, dtype=np.float64).reshape(1, 1, 6) + 1.0
    y = F.avg_pool1d(mc.Tensor(x), 3, stride=2, padding=1, ceil_mode=True).numpy()
    yt = TF.avg_pool1d(torch.tensor(x), 3, stride=2, padding=1, ceil_mode=True).numpy()
    np.testing.assert_allclose(y, yt)
    assert y.shape[-1] == 4 and y[0, 0, -1] == pytest.approx(6.0 / 2)


@given(data=st.data(), geo=pool_geometry(dims=1), count_include_pad=st.booleans())
def test_avg_pool1d_matches_torch(data, geo, count_include_pad):
    assume(_valid(geo, dilation=(1,)))
    x = data.draw(arrays(_shape(geo), np.float32))
    kw = dict(kernel_size=geo["kernel"][0], stride=geo["stride"][0], padding=geo["padding"][0],
              ceil_mode=geo["ceil_mode"], count_include_pad=count_include_pad)
    y = F.avg_pool1d(mc.Tensor(x), **kw).numpy()
    np.testing.assert_allclose(y, TF.avg_pool1d(torch.tensor(x), **kw).numpy(), rtol=1e-4, atol=1e-6)


# ---- adaptive / global pooling ------------------------------------------------------------------
@on_devices
@given(data=st.data(), n=st.integers(1, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       out=st.tuples(st.integers(1, 6), st.integers(1, 6)))
def test_adaptive_pools_match_torch(data, n, c, hw, out, device):
    x = data.draw(distinct_arrays((n, c) + hw, np.float32))
    y = F.adaptive_avg_pool2d(mc.Tensor(x, device=device), out).numpy()
    np.testing.assert_allclose(y, TF.adaptive_avg_pool2d(torch.tensor(x), out).numpy(), rtol=1e-4, atol=1e-6)
    ym, im = F.adaptive_max_pool2d(mc.Tensor(x, device=device), out, return_indices=True)
    ymt, imt = TF.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)
    np.testing.assert_array_equal(ym.numpy(), ymt.numpy())
    np.testing.assert_array_equal(im.numpy(), imt.numpy())
    gy = data.draw(arrays((n, c) + out, np.float32))
    for ours, theirs in ((F.adaptive_avg_pool2d, TF.adaptive_avg_pool2d), (F.adaptive_max_pool2d, TF.adaptive_max_pool2d)):
        np.testing.assert_allclose(_grad(lambda t: ours(t, out), x, gy, device),
                                   _torch_grad(lambda t: theirs(t, out), x, gy), rtol=1e-4, atol=1e-6)


def test_global_avg_pool_and_none_output_entries():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(F.global_avg_pool2d(mc.Tensor(x)).numpy(), x.mean(axis=(2, 3), keepdims=True))
    y = F.adaptive_avg_pool2d(mc.Tensor(x), (None, 2)).numpy()
    np.testing.assert_allclose(y, TF.adaptive_avg_pool2d(torch.tensor(x), (None, 2)).numpy())


def test_unbatched_inputs():
    x = np.random.default_rng(1).standard_normal((3, 6, 5))
    np.testing.assert_allclose(F.max_pool2d(mc.Tensor(x), 2).numpy(), TF.max_pool2d(torch.tensor(x), 2).numpy())
    np.testing.assert_allclose(F.avg_pool1d(mc.Tensor(x[0]), 2).numpy(), TF.avg_pool1d(torch.tensor(x[0]), 2).numpy())


# ---- max unpooling ------------------------------------------------------------------------------------
@on_devices
@given(data=st.data(), n=st.integers(1, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(2, 8), st.integers(2, 8)),
       k=st.integers(1, 3))
def test_max_unpool2d_inverts_max_pool_like_torch(data, n, c, hw, k, device):
    """Stride = kernel: indices have no duplicates, so PyTorch's last-write-wins equals our scatter-add."""
    assume(hw[0] >= k and hw[1] >= k)
    x = data.draw(distinct_arrays((n, c) + hw, np.float32))
    y, idx = F.max_pool2d(mc.Tensor(x, device=device), k, return_indices=True)
    u = F.max_unpool2d(y, idx, k, output_size=hw)
    yt, it = TF.max_pool2d(torch.tensor(x), k, return_indices=True)
    np.testing.assert_array_equal(u.numpy(), TF.max_unpool2d(yt, it, k, output_size=hw).numpy())
    gy = data.draw(arrays(u.shape, np.float32))
    yv = y.numpy()
    got = _grad(lambda t: F.max_unpool2d(t, idx, k, output_size=hw), yv, gy, device)
    want = _torch_grad(lambda t: TF.max_unpool2d(t, it, k, output_size=hw), yv, gy)
    np.testing.assert_array_equal(got, want)


@on_devices
@given(data=st.data(), hw=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_max_unpool2d_duplicates_add(data, hw, device):
    """With duplicate indices the output is the SUM (scatter-add), the gradient a gather."""
    x = data.draw(arrays((2, 2) + hw, np.float64))
    out_hw = (hw[0] + 1, hw[1] + 1)  # kernel 2, stride 1: default size
    seed = data.draw(st.integers(0, 2**32 - 1))
    idx = np.random.default_rng(seed).integers(0, 3, size=x.shape).astype(np.int64)  # few targets: duplicates
    t = mc.Tensor(x, device=device, requires_grad=True)
    u = F.max_unpool2d(t, idx, 2, stride=1)
    want = np.zeros((2, 2, out_hw[0] * out_hw[1]))
    for a in range(2):
        for b in range(2):
            np.add.at(want[a, b], idx[a, b].ravel(), x[a, b].ravel())
    np.testing.assert_allclose(u.numpy(), want.reshape(u.shape), rtol=1e-12, atol=1e-12)
    gy = data.draw(arrays(u.shape, np.float64))
    u.backward(gy)
    flat = gy.reshape(2, 2, -1)
    np.testing.assert_array_equal(t.grad.numpy(), np.take_along_axis(flat, idx.reshape(2, 2, -1), axis=2).reshape(x.shape))
    gradcheck(lambda v: F.max_unpool2d(v, idx, 2, stride=1), [mc.Tensor(x, device=device)])


# ---- errors -------------------------------------------------------------------------------------------
def _x(*shape):
    return mc.Tensor(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("call, match", [
    (lambda: F.max_pool2d(_x(1, 1, 2, 2), 3), "max_pool2d.*window.*larger"),
    (lambda: F.avg_pool2d(_x(1, 1, 4, 1), 2), "avg_pool2d.*window.*larger"),
    (lambda: F.max_pool2d(_x(1, 1, 5, 5), 3, padding=2), "max_pool2d: padding"),
    (lambda: F.avg_pool1d(_x(1, 1, 5), 2, padding=2), "avg_pool1d: padding"),
    (lambda: F.max_pool2d(_x(1, 5, 5), (2, 2, 2)), "max_pool2d: kernel_size"),
    (lambda: F.max_pool2d(_x(5, 5), 2), r"max_pool2d: input must be 3-D .* got shape \(5, 5\)"),
    (lambda: F.max_pool1d(_x(1, 1, 5, 5), 2), "max_pool1d: input must be 2-D"),
    (lambda: F.max_pool2d(_x(1, 1, 5, 5), 2, stride=0), "max_pool2d: stride"),
    (lambda: F.max_pool2d(_x(1, 1, 5, 5).to(dtype=np.float16), 2), "max_pool2d: input must be float32 or float64"),
    (lambda: F.adaptive_max_pool2d(_x(1, 0, 5, 5), 2), r"adaptive_max_pool2d: sizes C, H, W of the input \(N, C, H, W\)"),
    (lambda: F.avg_pool1d(_x(2, 0), 2), r"avg_pool1d: sizes C, L of the input \(C, L\) must be non-zero"),
    (lambda: F.avg_pool2d(_x(1, 1, 5, 5), 2, divisor_override=0), "avg_pool2d: divisor_override"),
    (lambda: F.adaptive_avg_pool2d(_x(1, 1, 5, 5), (0, 2)), "adaptive_avg_pool2d: output_size"),
    (lambda: F.adaptive_max_pool2d(_x(1, 1, 5, 5), (1, 2, 3)), "adaptive_max_pool2d: output_size"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), np.full((1, 1, 2, 2), 16), 2), r"max_unpool2d: indices must lie in \[0, 16\)"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), np.full((1, 1, 2, 2), -1), 2), "max_unpool2d: indices must lie"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), np.zeros((1, 1, 2, 3), dtype=np.int64), 2), "max_unpool2d: indices must have the shape"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), np.zeros((1, 1, 2, 2)), 2), "max_unpool2d: indices must be integers"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), np.zeros((1, 1, 2, 2), dtype=np.int64), 2, output_size=(6, 4)),
     "max_unpool2d: invalid output_size"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), np.zeros((1, 1, 2, 2), dtype=np.int64), 2, output_size=(4,)),
     "max_unpool2d: output_size must have 2 or 4 entries"),
])
def test_errors_name_the_op_and_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_torch_rejects_what_we_reject():
    """The padding rule is PyTorch's (padding <= kernel // 2)."""
    with pytest.raises(RuntimeError):
        TF.max_pool2d(torch.zeros(1, 1, 5, 5), 3, padding=2)
    F.max_pool2d(_x(1, 1, 5, 5), 4, padding=2)  # 2 <= 4 // 2: accepted, as in PyTorch
    TF.max_pool2d(torch.zeros(1, 1, 5, 5), 4, padding=2)
