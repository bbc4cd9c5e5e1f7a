"""Convolution properties: drawn geometry vs PyTorch (forward and the three gradients) and vs the
plain-loop reference, the adjoint identity of transposed convolution, im2col/col2im against the
reference, the CPU workspace, and the error messages. The op table (tests/optable/conv.py) adds
gradcheck in float64 and cpu/cuda-emu gradient parity on fixed samples."""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.device import get_device
from minicnn.kernels.reference import conv as R
from minicnn.testing import gradcheck
from minicnn.testing.strategies import arrays, conv_geometry
from conftest import DEVICE_PARAMS
from optable.conv import ref_conv2d, ref_conv_transpose2d

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# hypothesis tests take the device as a parameter (not the function-scoped fixture)
on_devices = pytest.mark.parametrize("device", DEVICE_PARAMS)

F32_RTOL = 1e-4  # PyTorch agreement in float32, relative to the largest magnitude of the result


def rel_err(got, want):
    """max |got − want| / max |want|: elementwise relative error is ill-posed near 0."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    scale = max(np.abs(want).max(initial=0.0), 1e-12)
    return np.abs(got - want).max(initial=0.0) / scale


def _leaf(a, device, dtype):
    return mc.Tensor(np.asarray(a, dtype=dtype), device=device, requires_grad=True)


def _torch_leaf(a):
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float32, requires_grad=True)


def _compare_with_torch(ours_fn, torch_fn, arrays_, device, gy_seed):
    """Forward and every input gradient of ``ours_fn`` (float32, on ``device``) vs ``torch_fn``."""
    ours = [_leaf(a, device, np.float32) for a in arrays_]
    theirs = [_torch_leaf(a) for a in arrays_]
    y, ty = ours_fn(*ours), torch_fn(*theirs)
    assert y.dtype == np.float32
    assert rel_err(y.numpy(), ty.detach().numpy()) <= F32_RTOL
    gy = np.random.default_rng(gy_seed).uniform(-1, 1, size=ty.shape).astype(np.float32)
    y.backward(gy)
    ty.backward(torch.tensor(gy))
    for i, (t, tt) in enumerate(zip(ours, theirs)):
        assert rel_err(t.grad.numpy(), tt.grad.numpy()) <= F32_RTOL, f"gradient of input {i}"


@st.composite
def conv_case(draw, dims=2):
    """Drawn geometry + input (maybe non-contiguous), weight and an optional bias."""
    geo = draw(conv_geometry(dims=dims))
    x = draw(arrays((geo["N"], geo["C_in"]) + geo["size"], contiguous=False))
    W = draw(arrays((geo["C_out"], geo["C_in"] // geo["groups"]) + geo["kernel"], contiguous=False))
    b = draw(st.none() | arrays((geo["C_out"],)))
    kw = dict(stride=geo["stride"], padding=geo["padding"], dilation=geo["dilation"], groups=geo["groups"])
    return geo, x, W, b, kw


def _with_bias(x, W, b):
    return (x, W) if b is None else (x, W, b)


# ---- conv2d / conv1d ----------------------------------------------------------------------------
@on_devices
@given(case=conv_case(), seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(case, seed, device):
    _, x, W, b, kw = case
    _compare_with_torch(lambda *t: F.conv2d(*t, **kw), lambda *t: TF.conv2d(*t, **kw), _with_bias(x, W, b), device, seed)


@on_devices
@given(case=conv_case(dims=1), seed=st.integers(0, 2**16))
def test_conv1d_matches_torch(case, seed, device):
    _, x, W, b, kw = case
    kw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    _compare_with_torch(lambda *t: F.conv1d(*t, **kw), lambda *t: TF.conv1d(*t, **kw), _with_bias(x, W, b), device, seed)


@given(case=conv_case())
def test_conv2d_forward_matches_reference_f64(case):
    _, x, W, b, kw = case
    y = F.conv2d(*[mc.Tensor(a) for a in _with_bias(x, W, b)], **kw)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ref_conv2d(x, W, b, **kw), rtol=1e-10, atol=1e-12)


@on_devices
@given(geo=conv_geometry(max_channels=3, max_size=5), data=st.data())
def test_conv2d_gradcheck_drawn(geo, data, device):
    """float64 gradcheck along random directions (every drawn geometry, both devices)."""
    x = data.draw(arrays((geo["N"], geo["C_in"]) + geo["size"]))
    W = data.draw(arrays((geo["C_out"], geo["C_in"] // geo["groups"]) + geo["kernel"]))
    b = data.draw(arrays((geo["C_out"],)))
    kw = dict(stride=geo["stride"], padding=geo["padding"], dilation=geo["dilation"], groups=geo["groups"])
    ts = [_leaf(a, device, np.float64) for a in (x, W, b)]
    gradcheck(lambda *t: F.conv2d(*t, **kw), ts, mode="random", name="conv2d")


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note on its own copy
@pytest.mark.parametrize("dims", [1, 2])
@on_devices
@given(k=st.tuples(st.integers(1, 4), st.integers(1, 4)), d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       size=st.tuples(st.integers(1, 6), st.integers(1, 6)), seed=st.integers(0, 2**16))
def test_same_and_valid_padding_match_torch(dims, k, d, size, seed, device):
    """'same' keeps the size (odd totals put the extra zero at the end, as PyTorch); 'valid' is 0."""
    rng = np.random.default_rng(seed)
    k, d, size = k[-dims:], d[-dims:], size[-dims:]
    x, W = rng.uniform(-1, 1, (2, 3) + size), rng.uniform(-1, 1, (4, 3) + k)
    ours, theirs = (F.conv1d, TF.conv1d) if dims == 1 else (F.conv2d, TF.conv2d)
    dil = d[0] if dims == 1 else d
    _compare_with_torch(lambda *t: ours(*t, padding="same", dilation=dil),
                        lambda *t: theirs(*t, padding="same", dilation=dil), (x, W), device, seed)
    assert ours(mc.Tensor(x), mc.Tensor(W), padding="same", dilation=dil).shape[2:] == size
    if all(n >= di * (ki - 1) + 1 for n, ki, di in zip(size, k, d)):
        _compare_with_torch(lambda *t: ours(*t, padding="valid", dilation=dil),
                            lambda *t: theirs(*t, padding="valid", dilation=dil), (x, W), device, seed)


# ---- transposed convolution ---------------------------------------------------------------------
@st.composite
def transposed_case(draw, dims=2, **geometry):
    """conv_geometry (``geometry``: its size bounds) read as a transposed convolution, with a legal
    output_padding."""
    geo = draw(conv_geometry(dims=dims, **geometry))
    out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(geo["stride"], geo["dilation"]))
    out = [(n - 1) * s - 2 * p + d * (k - 1) + 1 + o for n, k, s, p, d, o in
           zip(geo["size"], geo["kernel"], geo["stride"], geo["padding"], geo["dilation"], out_pad)]
    assume(min(out) >= 1)
    x = draw(arrays((geo["N"], geo["C_in"]) + geo["size"], contiguous=False))
    W = draw(arrays((geo["C_in"], geo["C_out"] // geo["groups"]) + geo["kernel"], contiguous=False))
    b = draw(st.none() | arrays((geo["C_out"],)))
    kw = dict(stride=geo["stride"], padding=geo["padding"], output_padding=out_pad, groups=geo["groups"],
              dilation=geo["dilation"])
    return x, W, b, kw


@on_devices
@given(case=transposed_case(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_matches_torch(case, seed, device):
    x, W, b, kw = case
    _compare_with_torch(lambda *t: F.conv_transpose2d(*t, **kw), lambda *t: TF.conv_transpose2d(*t, **kw),
                        _with_bias(x, W, b), device, seed)


_CT_FUSED = (np.random.default_rng(5).standard_normal((2, 4, 3, 3)), np.random.default_rng(6).standard_normal((4, 3, 3, 3)),
             np.random.default_rng(7).standard_normal(3),
             dict(stride=(2, 2), padding=(1, 1), output_padding=(0, 0), groups=1, dilation=(1, 1)))


@on_devices
@given(case=transposed_case(max_channels=3, max_size=5))
@example(case=_CT_FUSED)
def test_conv_transpose2d_gradcheck_drawn(case, device):
    """float64 gradcheck along random directions of the transposed convolution, whose backward
    goes through the kernel ``conv_transpose2d_backward`` (both devices); the explicit example is
    a stride-2 layer whose CPU backward shares the columns of gy between gx and gW (the drawn
    cases of the ``ci`` profile need not reach that path)."""
    x, W, b, kw = case
    ts = [_leaf(a, device, np.float64) for a in _with_bias(x, W, b)]
    gradcheck(lambda *t: F.conv_transpose2d(*t, **kw), ts, mode="random", name="conv_transpose2d")


@on_devices
@given(case=transposed_case(dims=1), seed=st.integers(0, 2**16))
def test_conv_transpose1d_matches_torch(case, seed, device):
    x, W, b, kw = case
    kw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    _compare_with_torch(lambda *t: F.conv_transpose1d(*t, **kw), lambda *t: TF.conv_transpose1d(*t, **kw),
                        _with_bias(x, W, b), device, seed)


@given(case=transposed_case())
def test_conv_transpose2d_forward_matches_scatter_reference(case):
    x, W, b, kw = case
    y = F.conv_transpose2d(*[mc.Tensor(a) for a in _with_bias(x, W, b)], **kw)
    np.testing.assert_allclose(y.numpy(), ref_conv_transpose2d(x, W, b, **kw), rtol=1e-10, atol=1e-12)


@on_devices
@given(case=conv_case(), data=st.data())
def test_transposed_conv_is_the_adjoint(case, data, device):
    """⟨conv2d(x, W), y⟩ = ⟨x, conv_transpose2d(y, W)⟩, output_padding chosen so the shapes match."""
    geo, x, W, _, kw = case
    y_shape = F.conv2d(mc.Tensor(x), mc.Tensor(W), **kw).shape
    y = data.draw(arrays(y_shape))
    out_pad = tuple((n + 2 * p - d * (k - 1) - 1) % s for n, k, s, p, d in
                    zip(geo["size"], geo["kernel"], geo["stride"], geo["padding"], geo["dilation"]))
    X, Wt, Y = (mc.Tensor(a, device=device) for a in (x, W, y))
    lhs = np.sum(F.conv2d(X, Wt, **kw).numpy() * y)
    xt = F.conv_transpose2d(Y, Wt, output_padding=out_pad, **kw).numpy()
    assert xt.shape == x.shape
    rhs = np.sum(x * xt)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, np.abs(x).sum() * np.abs(xt).max())


# ---- im2col / col2im kernels --------------------------------------------------------------------
@on_devices
@given(geo=conv_geometry(groups=False), data=st.data())
def test_im2col_col2im_match_reference_and_are_adjoint(geo, data, device):
    dev = get_device(device)
    x = data.draw(arrays((geo["N"], geo["C_in"]) + geo["size"], contiguous=False))
    g = (geo["kernel"], geo["stride"], geo["padding"], geo["dilation"])
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(geo["size"], *g))
    cols = dev.to_numpy(dev.kernels.im2col(dev.from_numpy(x), *g, out))
    np.testing.assert_array_equal(cols, R.im2col(x, *g, out))
    c = data.draw(arrays(cols.shape))
    back = dev.to_numpy(dev.kernels.col2im(dev.from_numpy(c), geo["size"], *g, out))
    np.testing.assert_allclose(back, R.col2im(c, geo["size"], *g, out), rtol=1e-12, atol=1e-12)
    assert np.isclose(np.sum(cols * c), np.sum(x * back), rtol=1e-10, atol=1e-10)


def test_cpu_workspace_is_not_aliased_by_results():
    """The im2col workspace is reused: a result must never be a view of it."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((1, 3, 5, 5))
    W = mc.Tensor(rng.standard_normal((4, 3, 3, 3)))
    y1 = F.conv2d(mc.Tensor(x1), W, padding=1)
    before = y1.numpy().copy()
    F.conv2d(mc.Tensor(x2), W, padding=1)
    np.testing.assert_array_equal(y1.numpy(), before)
    np.testing.assert_allclose(before, ref_conv2d(x1, W.numpy(), padding=1), rtol=1e-12)


# ---- errors -------------------------------------------------------------------------------------
def _t(*shape):
    return mc.Tensor(np.zeros(shape, dtype=np.float32))


def _t16(*shape):
    return mc.Tensor(np.zeros(shape, dtype=np.float16))


ERRORS = [
    (lambda: F.conv2d(_t(1, 3, 2, 2), _t(4, 3, 3, 3)), "conv2d: the window"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), dilation=3), "conv2d: the window"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 1, 3, 3), groups=2), r"conv2d: input channels \(3\) must be divisible"),
    (lambda: F.conv2d(_t(1, 4, 5, 5), _t(3, 2, 3, 3), groups=2), r"conv2d: output channels .* divisible by groups"),
    (lambda: F.conv2d(_t(1, 4, 5, 5), _t(4, 3, 3, 3)), r"conv2d: weight of shape \(4, 3, 3, 3\) expects 3 input"),
    (lambda: F.conv2d(_t(3, 5, 5), _t(4, 3, 3, 3)), r"conv2d: expected a 4-D input .* got shape \(3, 5, 5\)"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3)), r"conv2d: expected a 4-D weight"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), _t(3)), r"conv2d: expected a bias of shape \(4,\)"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), stride=2, padding="same"), "conv2d: padding='same' needs stride 1"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), padding="full"), "conv2d: padding must be"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), padding=-1), "conv2d: padding must be >= 0"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), stride=0), "conv2d: kernel, stride and dilation"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), stride=(1, 2, 3)), "conv2d: stride must be an int or 2 ints"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(3, 1, 3, 3), groups=0), "conv2d: groups must be a positive int"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), mc.Tensor(np.zeros((4, 3, 3, 3)))), "conv2d: weight dtype float64 differs"),
    (lambda: F.conv2d(np.zeros((1, 3, 5, 5)), _t(4, 3, 3, 3)), "conv2d: input must be a Tensor"),
    (lambda: F.conv2d(_t16(1, 3, 5, 5), _t16(4, 3, 3, 3)), "conv2d: input must be float32 or float64, got float16"),
    (lambda: F.conv_transpose1d(_t16(1, 3, 5), _t16(3, 4, 3)), "conv_transpose1d: input must be float32 or float64"),
    (lambda: F.conv2d(_t(1, 0, 5, 5), _t(4, 0, 3, 3)), r"conv2d: the input has 0 channels \(shape \(1, 0, 5, 5\)"),
    (lambda: F.conv2d(_t(1, 2, 0, 5), _t(4, 2, 1, 1), padding=1), r"conv2d: a spatial size of the input is 0"),
    (lambda: F.conv2d(_t(1, 3, 5, 5), _t(0, 3, 3, 3)), r"conv2d: the weight must be non-empty"),
    (lambda: F.conv1d(_t(1, 3, 2), _t(4, 3, 3)), "conv1d: the window"),
    (lambda: F.conv1d(_t(1, 3, 5, 5), _t(4, 3, 3)), r"conv1d: expected a 3-D input \(N, C, L\)"),
    (lambda: F.conv_transpose2d(_t(1, 4, 3, 3), _t(4, 2, 3, 3), stride=2, output_padding=2),
     r"conv_transpose2d: output_padding \(2\) must be smaller than either stride \(2\) or dilation \(1\)"),
    (lambda: F.conv_transpose2d(_t(1, 4, 3, 3), _t(3, 2, 3, 3)), r"conv_transpose2d: weight of shape \(3, 2, 3, 3\)"),
    (lambda: F.conv_transpose2d(_t(1, 4, 3, 3), _t(4, 2, 3, 3), groups=3), "conv_transpose2d: input channels"),
    (lambda: F.conv_transpose2d(_t(1, 4, 3, 3), _t(4, 2, 3, 3), _t(2), groups=2),
     r"conv_transpose2d: expected a bias of shape \(4,\)"),
    (lambda: F.conv_transpose2d(_t(1, 4, 1, 1), _t(4, 2, 1, 1), padding=1), "conv_transpose2d: the output would be empty"),
    (lambda: F.conv_transpose2d(_t(1, 4, 3, 3), _t(4, 2, 3, 3), padding="same"), "conv_transpose2d: padding must be"),
    (lambda: F.conv_transpose1d(_t(1, 4, 3), _t(4, 2, 3, 3)), "conv_transpose1d: expected a 3-D weight"),
]


@pytest.mark.parametrize("call, match", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_errors_name_the_op_and_the_shapes(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
