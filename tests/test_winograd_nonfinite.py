"""Winograd convolutions on inputs near the float range and with inf / NaN (issue 28).

The Winograd transforms add and scale inputs (F(4×4, 3×3) by up to 100 and 361), so they can
overflow where the direct convolution does not, and they mix each input into a whole tile, so one
inf or NaN turned into NaN over neighbouring outputs. The CPU kernels check the values first
(``conv_winograd.winograd_in_range``) and take the im2col path when the transforms could overflow.
The oracle is PyTorch in float64: the direct convolution of the zero-padded input, whose
non-finite outputs (NaN, +inf, -inf, each at its position) ours must reproduce exactly, forward
and backward. On the CPU every Winograd variant is forced in turn (small maps would otherwise take
im2col); cuda-emu computes im2col + GEMM and must agree as well.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.cpu import conv as cpu_conv

torch = pytest.importorskip("torch")

#: (FORCE_ALGORITHM, FUSED_WINOGRAD_BACKWARD) on the CPU: F(2×2) with the fused backward, with
#: gx and gW by their own kernels, and F(4×4); the default rule last
_CPU_PATHS = (("winograd", True), ("winograd", False), ("winograd4", True), (None, True))


@contextlib.contextmanager
def cpu_path(algorithm, fused):
    """The CPU's path switches set for the block (restored after it)."""
    saved = cpu_conv.FORCE_ALGORITHM, cpu_conv.FUSED_WINOGRAD_BACKWARD
    cpu_conv.FORCE_ALGORITHM, cpu_conv.FUSED_WINOGRAD_BACKWARD = algorithm, fused
    try:
        yield
    finally:
        cpu_conv.FORCE_ALGORITHM, cpu_conv.FUSED_WINOGRAD_BACKWARD = saved


def paths(device):
    """The switch settings to run: every Winograd variant on the CPU, the one path elsewhere."""
    return _CPU_PATHS if device == "cpu" else ((None, True),)


def ours(device, x, w, b, gy, padding):
    """y, gx, gW, gb of ``conv2d(x, w, b, padding=padding)`` with output gradient gy, as NumPy."""
    X, Wt, B = (mc.Tensor(a, requires_grad=True, device=device) for a in (x, w, b))
    y = F.conv2d(X, Wt, B, padding=padding)
    y.backward(mc.Tensor(gy, device=device))
    return tuple(t.numpy() for t in (y, X.grad, Wt.grad, B.grad))


def direct(x, w, b, gy, padding):
    """The same four arrays by PyTorch in float64 (cast back to the input dtype)."""
    tx, tw, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv2d(tx, tw, tb, padding=padding)
    y.backward(torch.tensor(gy.astype(np.float64)))
    return tuple(t.detach().numpy().astype(x.dtype) for t in (y, tx.grad, tw.grad, tb.grad))


def assert_same_values(got, want, name):
    """NaN, +inf and -inf at the same positions; the finite values equal to a tolerance relative
    to the largest finite value (Winograd's rounding error scales with it)."""
    for kind, mask in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(mask(got), mask(want), err_msg=f"{name}: positions of {kind}")
    finite = np.isfinite(want)
    scale = float(np.abs(want[finite]).max(initial=0.0))
    tol = (1e-4 if got.dtype == np.float32 else 1e-9) * scale
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=tol + 1e-30, err_msg=name)


def check(device, x, w, b, gy, padding):
    want = direct(x, w, b, gy, padding)
    # gb = Σ gy is compared where no partial sum of gy's finite entries can overflow (a huge gy
    # overflows it in some summation orders and not in others, on any path)
    finite_gy = gy[np.isfinite(gy)].astype(np.float64)
    names = ("y", "gx", "gW") + (("gb",) if np.abs(finite_gy).sum() < np.finfo(gy.dtype).max / 2 else ())
    for algorithm, fused in paths(device):
        with cpu_path(algorithm, fused):
            got = ours(device, x, w, b, gy, padding)
        for name, g, r in zip(names, got, want):
            assert_same_values(g, r, f"{name} ({algorithm}, fused={fused})")


@st.composite
def cases(draw):
    """A 3×3 stride-1 convolution (x, w, b, gy, padding) whose float64 results fit the dtype:
    normal values, or x or gy spread over the whole float range with small other factors; and
    0–3 entries of x and of gy replaced by inf, -inf or NaN."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W, padding = draw(st.integers(3, 9)), draw(st.integers(3, 9)), draw(st.integers(0, 2))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from(["normal", "huge x", "huge gy"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    big = 0.9 * float(np.finfo(dtype).max)
    small = 1.0 if scale == "normal" else 1e-4
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    x = rng.uniform(-1, 1, (N, C_in, H, W)) * (big if scale == "huge x" else small)
    gy = rng.uniform(-1, 1, (N, C_out, OH, OW)) * (big if scale == "huge gy" else small)
    w, b = rng.standard_normal((C_out, C_in, 3, 3)) * small, rng.standard_normal(C_out)
    for a in (x, gy):
        for _ in range(draw(st.integers(0, 3))):
            a[tuple(draw(st.integers(0, n - 1)) for n in a.shape)] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    return tuple(a.astype(dtype) for a in (x, w, b, gy)) + (padding,)


# found by the property before the range check: F(2×2)'s input transform overflowed on this 3×3
# map (one tile): NaN where the direct convolution gives 1.67e34
_ONE_HUGE_TILE = (
    np.array([[[[8.3890161e37, -1.4100753e38, -2.8115750e38], [-2.9613081e38, 1.9188060e38, 2.5281618e38],
                [6.5315292e37, 1.4056853e38, 2.6720665e37]]]], np.float32),
    np.array([[[[-6.2327446e-05, 4.1325980e-06, -2.3250308e-04], [-2.1879167e-05, -1.2459110e-04, -7.3226736e-05],
                [-5.4425898e-05, -3.1630014e-05, 4.1163054e-05]]]], np.float32),
    np.array([1.0425134], np.float32), np.array([[[[8.701449e-05]]]], np.float32), 0)


@given(case=cases())
@example(case=_ONE_HUGE_TILE)
def test_winograd_matches_direct_convolution_on_extreme_values(device, case):
    check(device, *case)


@pytest.mark.parametrize("x_scale, gy_scale", [(1e38, 1e-4), (1e-4, 1e38)])
def test_layer_near_the_float32_range(device, x_scale, gy_scale):
    """The reviewer's layer: (1, 32, 40, 40) → 32, 3×3, padding 1, w = 1e-4; x = 1e38 made every
    output inf (right: ≈ 2.9e36). With gy = 1e38 the input gradient overflowed the same way."""
    x = np.full((1, 32, 40, 40), x_scale, np.float32)
    w = np.full((32, 32, 3, 3), 1e-4, np.float32)
    gy = np.full((1, 32, 40, 40), gy_scale, np.float32)
    check(device, x, w, np.zeros(32, np.float32), gy, 1)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_one_non_finite_pixel_stays_in_its_receptive_field(device, value):
    """One inf (NaN) pixel reaches the 3×3 outputs whose windows hold it, in every channel: 288
    outputs of (1, 32, 40, 40) → 32, each ±inf by the weight's sign (or NaN), nothing else."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 32, 40, 40)).astype(np.float32)
    x[0, 3, 10, 10] = value
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((1, 32, 40, 40)).astype(np.float32)
    check(device, x, w, np.zeros(32, np.float32), gy, 1)
    y = ours(device, x, w, np.zeros(32, np.float32), gy, 1)[0]
    assert (~np.isfinite(y)).sum() == 288
