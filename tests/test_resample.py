"""interpolate (nearest, bilinear, linear) and local_response_norm: hypothesis properties vs the
reference loops and PyTorch (forward and gradients), device parity, error cases."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.functional.resample import linear_table, nearest_table
from minicnn.kernels.reference import resample as R
from minicnn.testing import gradcheck
from conftest import DEVICE_PARAMS
from minicnn.testing.strategies import arrays

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# hypothesis tests take the device as a parameter (not the function-scoped fixture)
on_devices = pytest.mark.parametrize("device", DEVICE_PARAMS)

SCALES = [0.5, 0.6, 0.75, 1.0, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 1 / 3, 4.0]


@st.composite
def resize_case(draw, max_side=7):
    """(x shape, interpolate kwargs): size or per-axis scale factors, every mode/align_corners."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    kw = dict(mode=mode, align_corners=None if mode == "nearest" else draw(st.booleans()))
    if draw(st.booleans()):
        kw["size"] = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    else:
        s = (draw(st.sampled_from(SCALES)), draw(st.sampled_from(SCALES)))
        if any(math.floor(n * f) < 1 for n, f in zip(shape[2:], s)):
            s = (2.0, 2.0)
        kw["scale_factor"] = s
    return shape, kw


def _reference(x, kw):
    if "size" in kw:
        out, scales = kw["size"], (None, None)
    else:
        scales = kw["scale_factor"]
        out = tuple(math.floor(n * f) for n, f in zip(x.shape[2:], scales))
    if kw["mode"] == "nearest":
        return R.upsample_nearest2d_forward(x, out, scales)
    return R.upsample_bilinear2d_forward(x, out, kw["align_corners"], scales)


@on_devices
@given(data=st.data(), case=resize_case())
def test_interpolate_matches_reference_and_torch(data, case, device):
    shape, kw = case
    x = data.draw(arrays(shape, np.float32, contiguous=False))
    t = mc.Tensor(x, device=device, requires_grad=True)
    y = F.interpolate(t, **kw)
    np.testing.assert_allclose(y.numpy(), _reference(x, kw), rtol=1e-5, atol=1e-6)
    tt = torch.tensor(x, requires_grad=True)
    yt = TF.interpolate(tt, **kw)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    gy = data.draw(arrays(y.shape, np.float32))
    y.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-4, atol=1e-5)


@given(n=st.integers(1, 30), m=st.integers(1, 45), scale=st.sampled_from([None] + SCALES),
       dtype=st.sampled_from([np.float32, np.float64]), one_d=st.booleans())
def test_nearest_table_is_torchs_index_rule(n, m, scale, dtype, one_d):
    """Exact source indices per dtype and rank: an arange probe through torch's nearest reads off its table."""
    shape = (1, 2, n) if one_d else (1, 2, 1, n)  # C=2: not channels-last contiguous
    probe = torch.tensor(np.arange(2 * n, dtype=dtype).reshape(shape) % n)
    if scale is not None:
        m = math.floor(n * scale)
        if m < 1:
            return
        probe = TF.interpolate(probe, scale_factor=scale if one_d else (1.0, scale))
    else:
        probe = TF.interpolate(probe, size=m if one_d else (1, m))
    want = probe.numpy().reshape(2, -1)[1].astype(np.int64)
    np.testing.assert_array_equal(nearest_table(n, m, scale, dtype, one_d), want)


def test_nearest_rules_differ_by_rank_like_torch():
    """PyTorch's 2-D nearest copies when m == n; its 1-D kernel does not. And n=14 -> m=46:
    output 23 reads pixel 6 in 2-D (float32) and 1-D float32, but 7 in 1-D float64."""
    x = np.arange(2.0).reshape(1, 1, 1, 2)
    for one_d in (False, True):
        xi = x[:, :, 0] if one_d else x
        y = F.interpolate(mc.Tensor(xi), scale_factor=1.3).numpy().ravel()
        np.testing.assert_array_equal(y, TF.interpolate(torch.tensor(xi), scale_factor=1.3).numpy().ravel())
        assert y.tolist() == ([0.0, 0.0] if one_d else [0.0, 1.0])
    assert nearest_table(14, 46, None, np.float64, one_d=True)[23] == 7
    assert nearest_table(14, 46, None, np.float32, one_d=True)[23] == 6
    assert nearest_table(14, 46, None, np.float64, one_d=False)[23] == 6


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("n, m", [(1, 4), (4, 1), (3, 7), (7, 3), (5, 5), (2, 9)])
def test_linear_table_monotone_and_in_range(n, m, align_corners):
    i0, i1, lam = linear_table(n, m, align_corners)
    assert (np.diff(i0) >= 0).all() and (np.diff(i1) >= 0).all()
    assert (0 <= i0).all() and (i1 <= n - 1).all() and ((i1 - i0) <= 1).all()
    assert ((0 <= lam) & (lam <= 1)).all()


@pytest.mark.parametrize("mode, align_corners", [("nearest", None), ("linear", False), ("linear", True)])
def test_interpolate_1d_matches_torch(mode, align_corners):
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    for kw in (dict(size=9), dict(scale_factor=1.6), dict(size=3)):
        t = mc.Tensor(x, requires_grad=True)
        tt = torch.tensor(x, requires_grad=True)
        y = F.interpolate(t, mode=mode, align_corners=align_corners, **kw)
        yt = TF.interpolate(tt, mode=mode, align_corners=align_corners, **kw)
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        y.sum().backward()
        yt.sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_recompute_scale_factor_like_torch():
    x = np.random.default_rng(2).standard_normal((1, 1, 5, 4))
    for mode in ("nearest", "bilinear"):
        y = F.interpolate(mc.Tensor(x), scale_factor=1.7, mode=mode, recompute_scale_factor=True).numpy()
        yt = TF.interpolate(torch.tensor(x), scale_factor=1.7, mode=mode, recompute_scale_factor=True).numpy()
        np.testing.assert_allclose(y, yt, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode, align_corners", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_interpolate_gradcheck(mode, align_corners, device):
    x = mc.Tensor(np.random.default_rng(4).standard_normal((1, 2, 3, 4)), device=device)
    for kw in (dict(size=(5, 7)), dict(scale_factor=(0.7, 1.5))):
        gradcheck(lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kw), [x])


# ---- local response norm ---------------------------------------------------------------------------
@on_devices
@given(data=st.data(), c=st.integers(1, 7), size=st.integers(1, 6), spatial=st.integers(1, 3),
       alpha=st.sampled_from([1e-4, 0.1, 1.0]), beta=st.sampled_from([0.5, 0.75, 1.3]), k=st.sampled_from([0.5, 1.0, 2.0]))
def test_local_response_norm_matches_torch(data, c, size, spatial, alpha, beta, k, device):
    shape = (2, c) + (3,) * (spatial - 1) + (2,)
    x = data.draw(arrays(shape, np.float64, low=-3, high=3))
    t = mc.Tensor(x, device=device, requires_grad=True)
    tt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)  # PyTorch's LRN .view()s its input
    y = F.local_response_norm(t, size, alpha, beta, k)
    yt = TF.local_response_norm(tt, size, alpha, beta, k)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    gy = data.draw(arrays(shape, np.float64))
    y.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_local_response_norm_float32_matches_torch():
    x = np.random.default_rng(5).standard_normal((2, 8, 4, 4)).astype(np.float32)
    y = F.local_response_norm(mc.Tensor(x), 5, alpha=1e-4, beta=0.75, k=2.0).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, TF.local_response_norm(torch.tensor(x), 5, 1e-4, 0.75, 2.0).numpy(), rtol=1e-5)


# ---- errors -------------------------------------------------------------------------------------------
def _x(*shape):
    return mc.Tensor(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("call, match", [
    (lambda: F.interpolate(_x(1, 1, 4, 4)), "interpolate: exactly one of size or scale_factor"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), size=2, scale_factor=2), "interpolate: exactly one"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), size=(2, 2, 2)), "interpolate: size must be"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), size=(0, 2)), "interpolate: size must be positive"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), scale_factor=0.1), "interpolate: scale_factor .* empty output"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), scale_factor=-2.0), "interpolate: scale_factor must be positive"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), size=3, mode="bicubic"), "interpolate: mode must be one of"),
    (lambda: F.interpolate(_x(1, 1, 4), size=3, mode="bilinear"), "interpolate: mode 'bilinear' expects a 4-D"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), size=3, align_corners=True), "interpolate: align_corners"),
    (lambda: F.local_response_norm(_x(2, 3), 2), "local_response_norm: input must have at least 3"),
    (lambda: F.local_response_norm(_x(1, 3, 2), 0), "local_response_norm: size"),
    (lambda: F.local_response_norm(_x(1, 3, 2).to(dtype=np.float16), 2), "local_response_norm: input must be float32"),
    (lambda: F.interpolate(_x(1, 3, 4).to(dtype=np.float16), size=2), "interpolate: input must be float32 or float64"),
    (lambda: F.interpolate(_x(1, 0, 4), size=2), "interpolate: only the batch size of the input may be 0"),
])
def test_errors_name_the_op_and_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
