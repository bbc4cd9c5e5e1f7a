"""Every CPU convolution path, forced one at a time, against the plain-loop reference (float64)
and PyTorch (float32): im2col + GEMM (threaded row/image blocks), Winograd F(2×2, 3×3) for the
forward and the input gradient, the 1-D Winograd F(4, r) of 1-D layers, and the direct
depthwise kernels. Shapes are drawn so that blocks, tiles and images have ragged edges (odd
sizes, output sizes that are not multiples of 2, asymmetric implicit trailing padding), and the
block planner is also exercised with tiny block sizes so that images are cut into many row
blocks."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn.kernels.cpu import conv as C
from minicnn.kernels.cpu import _im2col as I2C
from minicnn.kernels.cpu import conv_winograd as CW
from minicnn.kernels.cpu import conv_winograd4 as CW4
from minicnn.kernels.cpu import conv_winograd_backward as CWB
from minicnn.kernels.reference import conv as R

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    return np.abs(got - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), 1e-12)


@pytest.fixture
def force(monkeypatch):
    def set_algorithm(name):
        monkeypatch.setattr(C, "FORCE_ALGORITHM", name)
    return set_algorithm


@st.composite
def geometries(draw, winograd=False, depthwise=False):
    N = draw(st.integers(1, 3))
    C_in = draw(st.integers(1, 5))
    H, W = draw(st.integers(3, 11)), draw(st.integers(3, 11))
    if winograd:
        k, s, d, G = (3, 3), (1, 1), (1, 1), 1
        C_out = draw(st.integers(1, 5))
    else:
        k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        d = (draw(st.integers(1, 2)), 1)
        if depthwise:
            C_in = max(C_in, 2)
            G, C_out = C_in, C_in * draw(st.integers(1, 2))
        else:
            G = draw(st.sampled_from([g for g in (1, 2) if C_in % g == 0]))
            C_out = G * draw(st.integers(1, 3))
    p = (draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1)))
    # output size: the symmetric one, or one row/column more (asymmetric trailing padding)
    out = tuple((n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, si, pi, di in zip((H, W), k, s, p, d))
    assume(min(out) >= 1)  # a dilated kernel larger than the padded input has no output
    extra = draw(st.sampled_from([(0, 0), (1, 0), (0, 1)]))
    out = (out[0] + extra[0], out[1] + extra[1])
    return dict(N=N, C_in=C_in, C_out=C_out, H=H, W=W, k=k, s=s, p=p, d=d, G=G, out=out)


def _data(g, dtype, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((g["N"], g["C_in"], g["H"], g["W"])).astype(dtype)
    W = r.standard_normal((g["C_out"], g["C_in"] // g["G"]) + g["k"]).astype(dtype)
    gy = r.standard_normal((g["N"], g["C_out"]) + g["out"]).astype(dtype)
    return x, W, gy


def _check_against_reference(g):
    x, W, gy = _data(g, np.float64)
    geo = (g["s"], g["p"], g["d"], g["G"])
    np.testing.assert_allclose(C.conv2d_forward(x, W, *geo, g["out"]), R.conv2d_forward(x, W, *geo, g["out"]),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, W, (g["H"], g["W"]), *geo),
                               R.conv2d_backward_input(gy, W, (g["H"], g["W"]), *geo), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_weight(x, gy, g["k"], *geo),
                               R.conv2d_backward_weight(x, gy, g["k"], *geo), rtol=1e-10, atol=1e-10)
    b = np.random.default_rng(1).standard_normal(g["C_out"])  # the bias, fused into each path's output
    np.testing.assert_allclose(C.conv2d_forward(x, W, *geo, g["out"], b), R.conv2d_forward(x, W, *geo, g["out"], b),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_bias_grad(gy), R.conv2d_bias_grad(gy), rtol=1e-12, atol=1e-12)


@settings(deadline=None)
@given(geometries())
@pytest.mark.parametrize("algorithm", ["im2col", None])
def test_im2col_path_matches_reference(force, algorithm, g):
    force(algorithm)
    _check_against_reference(g)


@settings(deadline=None)
@given(geometries(winograd=True), st.sampled_from(["winograd", "winograd4"]))
def test_winograd_path_matches_reference(force, g, algorithm):
    force(algorithm)
    _check_against_reference(g)


@settings(deadline=None)
@given(geometries(depthwise=True))
def test_depthwise_path_matches_reference(g):
    assert C._is_depthwise(g["C_in"], g["G"])
    _check_against_reference(g)


def test_tiny_blocks_cut_images_into_many_row_blocks(force, monkeypatch):
    """With 256-column blocks a 40×40 image is cut into row blocks: the results must not change."""
    force("im2col")
    monkeypatch.setattr(C, "_BLOCK_ELEMS", 1)
    monkeypatch.setattr(CW, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(CW, "_WG_BLOCK_BYTES", 1)
    g = dict(N=2, C_in=3, C_out=4, H=40, W=37, k=(3, 3), s=(1, 1), p=(1, 1), d=(1, 1), G=1, out=(40, 37))
    assert len(C._blocks(2, 40, 37, 27)) > 2 * 2
    _check_against_reference(g)
    force("winograd")
    _check_against_reference(g)
    force("winograd4")
    _check_against_reference(g)


@pytest.mark.parametrize("geo", [
    # (H, W, k, stride, padding, groups): positions per image B = 9 and 1 (the forward's wide blocks
    # too), 100, a pointwise block, two groups; the weight gradient's blocks are all wide (K, nb, B)
    (5, 5, 3, 1, 0, 1), (3, 3, 3, 1, 0, 1), (10, 10, 3, 1, 1, 1), (6, 7, 1, 1, 0, 1), (7, 6, 3, 2, 1, 2)])
def test_weight_gradient_blocks_of_several_images(force, geo):
    """24 small images: the tasks hold several images (``nb > 1``, the wide column layout), the case
    the few-image hypothesis draws never reach; all three passes against the reference loops (float64)."""
    force("im2col")
    H, W_, k, s, p, G = geo
    assert C._blocks(24, H, W_, 8 * k * k)[0][1] > 1  # several images a task
    out = tuple((n + 2 * p - k) // s + 1 for n in (H, W_))
    _check_against_reference(dict(N=24, C_in=8, C_out=4 * G // 2 if G > 1 else 3, H=H, W=W_, k=(k, k), s=(s, s),
                                  p=(p, p), d=(1, 1), G=G, out=out))


@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "winograd4"])
@pytest.mark.parametrize("shape", [(2, 16, 33, 31, 24, 1), (3, 20, 32, 32, 16, 0), (1, 17, 9, 12, 18, 2)])
def test_paths_match_pytorch_float32(force, algorithm, shape):
    """Forward, input and weight gradients of 3×3 stride-1 convolutions vs PyTorch (float32).
    F(4×4, 3×3) too: its transforms scale by up to 8 and 1/24, yet it stays within 1e-5 of the
    output's scale (measured ~5e-6 on 64 channels, against ~3e-7 for F(2×2))."""
    force(algorithm)
    N, C_in, H, W_, C_out, p = shape
    r = np.random.default_rng(1)
    x = r.standard_normal((N, C_in, H, W_)).astype(np.float32)
    W = (r.standard_normal((C_out, C_in, 3, 3)) * 0.2).astype(np.float32)
    tx, tw = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(W).requires_grad_(True)
    ty = TF.conv2d(tx, tw, padding=p)
    gy = r.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.from_numpy(gy))
    out = tuple(ty.shape[2:])
    geo = ((1, 1), (p, p), (1, 1), 1)
    assert rel_err(C.conv2d_forward(x, W, *geo, out), ty.detach().numpy()) < 1e-5
    assert rel_err(C.conv2d_backward_input(gy, W, (H, W_), *geo), tx.grad.numpy()) < 1e-5
    assert rel_err(C.conv2d_backward_weight(x, gy, (3, 3), *geo), tw.grad.numpy()) < 1e-5


def test_fused_winograd_backward_matches_pytorch_float32(monkeypatch):
    """A layer that takes the fused F(2×2) backward by the default rule, (12,32,16,16)→64 with a
    bias (several images a task), against PyTorch in float32: gx, gW and gb, through
    ``conv2d_backward`` with no path forced (the spy checks that neither separate kernel ran)."""
    N, C_in, C_out = 12, 32, 64
    r = np.random.default_rng(11)
    x = r.standard_normal((N, C_in, 16, 16)).astype(np.float32)
    W = (r.standard_normal((C_out, C_in, 3, 3)) * 0.1).astype(np.float32)
    b = r.standard_normal(C_out).astype(np.float32)
    assert C._use_winograd_backward(x, W.shape, (1, 1), (1, 1), 1, (16, 16))
    calls = []
    for name in ("conv2d_backward_input", "conv2d_backward_weight"):
        monkeypatch.setattr(C, name, lambda *a, _n=name, _f=getattr(C, name), **k: calls.append(_n) or _f(*a, **k))
    tx, tw, tb = (torch.from_numpy(a).requires_grad_(True) for a in (x, W, b))
    ty = TF.conv2d(tx, tw, tb, padding=1)
    gy = r.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.from_numpy(gy))
    geo = ((1, 1), (1, 1), (1, 1), 1)
    assert rel_err(C.conv2d_forward(x, W, *geo, (16, 16), b), ty.detach().numpy()) < 1e-5
    gx, gW, gb = C.conv2d_backward(x, W, gy, *geo)
    assert calls == []
    assert rel_err(gx, tx.grad.numpy()) < 1e-5
    assert rel_err(gW, tw.grad.numpy()) < 1e-5
    assert rel_err(gb, tb.grad.numpy()) < 1e-5  # PyTorch sums 3072 terms in float32
    assert rel_err(gb, gy.astype(np.float64).sum((0, 2, 3))) < 1e-6  # ours in float64 (Z[5]: float32)


@settings(deadline=None)
@given(st.integers(1, 2), st.integers(2, 4), st.integers(1, 9), st.integers(1, 9), st.integers(0, 3),
       st.integers(0, 3), st.sampled_from([(0, 0), (1, 0), (0, 1)]))
def test_depthwise3x3_kernels_match_reference(N, C_, H, W_, ph, pw, extra):
    """MobileNet's case, which has its own one-pass kernels (3×3, stride 1, one output channel per
    input channel): forward, input and weight gradients against the plain loops, float64, with
    paddings up to 3 (the input gradient's leading padding 2 − p is then negative) and an implicit
    trailing row or column."""
    out = (H + 2 * ph - 2 + extra[0], W_ + 2 * pw - 2 + extra[1])
    assume(min(out) >= 1)
    assert C._is_depthwise3x3((C_, 1, 3, 3), C_, (1, 1), (1, 1))
    g = dict(N=N, C_in=C_, C_out=C_, H=H, W=W_, k=(3, 3), s=(1, 1), p=(ph, pw), d=(1, 1), G=C_, out=out)
    _check_against_reference(g)
    # the fused backward (one pass over gy for gx, gW and gb), with each subset of the gradients
    x, W, gy = _data(g, np.float64)
    _check_backward_subsets(x, W, gy, ((1, 1), (ph, pw), (1, 1), C_))


@settings(deadline=None)
@given(st.integers(1, 2), st.integers(2, 4), st.integers(1, 10), st.integers(1, 10), st.integers(0, 3),
       st.integers(0, 3), st.sampled_from([(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)]))
def test_depthwise3x3_stride2_kernels_match_reference(N, C_, H, W_, ph, pw, extra):
    """MobileNet's downsampling case (3×3, stride 2, one output channel per input channel) has its
    own forward and backward kernels: against the plain loops in float64 (odd and even sizes, paddings up to 3,
    an output a row or column shorter, or longer: implicit zeros), with the kernel spied to be
    the one that ran."""
    out = ((H + 2 * ph - 3) // 2 + 1 + extra[0], (W_ + 2 * pw - 3) // 2 + 1 + extra[1])
    assume(min(out) >= 1)
    assert C._is_depthwise3x3((C_, 1, 3, 3), C_, (2, 2), (1, 1), step=2)
    assert not C._is_depthwise3x3((C_, 1, 3, 3), C_, (2, 1), (1, 1), step=2)
    g = dict(N=N, C_in=C_, C_out=C_, H=H, W=W_, k=(3, 3), s=(2, 2), p=(ph, pw), d=(1, 1), G=C_, out=out)
    x, W, _ = _data(g, np.float64)
    b = np.linspace(-1, 1, C_)
    geo = ((2, 2), (ph, pw), (1, 1), C_)
    calls = []
    raw = C.depthwise3x3s2_raw
    C.depthwise3x3s2_raw = lambda *a: calls.append(1) or raw(*a)
    try:
        got = C.conv2d_forward(x, W, *geo, out, b)
    finally:
        C.depthwise3x3s2_raw = raw
    assert calls == [1]
    np.testing.assert_allclose(got, R.conv2d_forward(x, W, *geo, out, b), rtol=1e-12, atol=1e-12)
    # the backward kernel (gx as a stride-1 convolution of the zero-spread gy), each subset of gradients
    _check_backward_subsets(x, W, _data(g, np.float64)[2], geo)


def _check_backward_subsets(x, W, gy, geo):
    """conv2d_backward with each subset of (gx, gW, gb) wanted against the plain loops (float64);
    the unwanted ones must be None."""
    want = (R.conv2d_backward_input(gy, W, x.shape[2:], *geo), R.conv2d_backward_weight(x, gy, W.shape[2:], *geo),
            R.conv2d_bias_grad(gy))
    for needs in [(True, True, True), (True, False, False), (False, True, True), (True, False, True)]:
        got = C.conv2d_backward(x, W, gy, *geo, needs)
        for need, a, b in zip(needs, got, want):
            if need:
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
            else:
                assert a is None


def test_depthwise_matches_pytorch_float32():
    r = np.random.default_rng(2)
    x = r.standard_normal((2, 6, 19, 23)).astype(np.float32)
    W = r.standard_normal((12, 1, 3, 3)).astype(np.float32)
    for s, p, M in [((1, 1), (1, 1), 2), ((2, 2), (0, 1), 2), ((2, 2), (1, 1), 1), ((1, 1), (1, 1), 1), ((1, 1), (0, 2), 1)]:
        tx, tw = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(W[:6 * M]).requires_grad_(True)
        ty = TF.conv2d(tx, tw, stride=s, padding=p, groups=6)
        gy = r.standard_normal(ty.shape).astype(np.float32)
        ty.backward(torch.from_numpy(gy))
        geo, Wm = (s, p, (1, 1), 6), W[:6 * M]
        assert rel_err(C.conv2d_forward(x, Wm, *geo, tuple(ty.shape[2:])), ty.detach().numpy()) < 1e-5
        assert rel_err(C.conv2d_backward_input(gy, Wm, x.shape[2:], *geo), tx.grad.numpy()) < 1e-5
        assert rel_err(C.conv2d_backward_weight(x, gy, (3, 3), *geo), tw.grad.numpy()) < 1e-5


def test_winograd4_on_large_maps_only():
    """F(4×4, 3×3) from 56×56 output positions on and ≥ 32 channels on the layer's narrower side;
    F(2×2) below."""
    assert C._winograd_tile((56, 56)) == 4 and C._winograd_tile((112, 112)) == 4
    assert C._winograd_tile((28, 28)) == 2 and C._winograd_tile((14, 14)) == 2
    assert C._winograd_tile((64, 64), 32) == 4 and C._winograd_tile((56, 56), 64) == 4
    assert C._winograd_tile((64, 64), 16) == 2 and C._winograd_tile((112, 112), 31) == 2
    assert C._winograd_tile((28, 28), 512) == 2


def test_narrow_layer_on_a_large_map_takes_the_fused_f2_backward(monkeypatch):
    """16 → 16 channels on 64×64 maps: F(2×2) forward and the fused F(2×2) backward (spied), within
    float32 rounding of the float64 plain loops."""
    r = np.random.default_rng(5)
    x, W, gy = r.standard_normal((2, 16, 64, 64)), r.standard_normal((16, 16, 3, 3)) * 0.1, r.standard_normal(
        (2, 16, 64, 64))
    calls = []
    for name in ("winograd_conv3x3", "winograd_backward3x3"):
        real = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _real=real, _name=name, **k: calls.append((_name, k.get("tile", 2)))
                            or _real(*a, **k))
    geo = ((1, 1), (1, 1), (1, 1), 1)
    f32 = [a.astype(np.float32) for a in (x, W, gy)]
    y = C.conv2d_forward(f32[0], f32[1], *geo, (64, 64))
    gx, gW, _ = C.conv2d_backward(*f32, *geo, needs=(True, True, False))
    assert calls == [("winograd_conv3x3", 2), ("winograd_backward3x3", 2)], calls
    assert rel_err(y, R.conv2d_forward(x, W, *geo, (64, 64))) < 1e-5
    assert rel_err(gx, R.conv2d_backward_input(gy, W, (64, 64), *geo)) < 1e-5
    assert rel_err(gW, R.conv2d_backward_weight(x, gy, (3, 3), *geo)) < 2e-5


def test_winograd4_float32_error_on_a_realistic_layer():
    """A 64 → 64-channel 56×56 layer (the size where F(4×4) is chosen): float32 within 2e-5 of the
    scale of PyTorch's float64 result (the plain loops are too slow at this size), forward, input
    and weight gradients."""
    r = np.random.default_rng(7)
    x = r.standard_normal((1, 64, 56, 56))
    W = r.standard_normal((64, 64, 3, 3)) * 0.1
    gy = r.standard_normal((1, 64, 56, 56))
    geo = ((1, 1), (1, 1), (1, 1), 1)
    assert C._winograd_tile((56, 56)) == 4 and C._use_winograd((3, 3), (1, 1), (1, 1), 1, 64, 64, (56, 56))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = TF.conv2d(tx, torch.from_numpy(W), padding=1)
    ty.backward(torch.from_numpy(gy))
    got = C.conv2d_forward(x.astype(np.float32), W.astype(np.float32), *geo, (56, 56))
    assert rel_err(got, ty.detach().numpy()) < 2e-5
    gx = C.conv2d_backward_input(gy.astype(np.float32), W.astype(np.float32), (56, 56), *geo)
    assert rel_err(gx, tx.grad.numpy()) < 2e-5
    tw = torch.from_numpy(W).requires_grad_(True)
    TF.conv2d(torch.from_numpy(x), tw, padding=1).backward(torch.from_numpy(gy))
    gW = C.conv2d_backward_weight(x.astype(np.float32), gy.astype(np.float32), (3, 3), *geo)
    assert rel_err(gW, tw.grad.numpy()) < 2e-5  # F(4×4) weight gradient: measured ~6e-6


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
def test_winograd_workspaces_with_an_extra_channel(force, algorithm):
    """128 channels × 56 tiles of float32 is 7 × 4 KiB: the transformed blocks get one unused
    channel (``get_rows_apart``) so their 16 matrices do not start 4 KiB apart; forward, input and
    weight gradients against PyTorch (float32, the shape where the workspaces are padded)."""
    assert I2C.Workspace().get_rows_apart((16, 128, 56), np.float32).shape == (16, 129, 56)
    assert I2C.Workspace().get_rows_apart((16, 100, 56), np.float32).shape == (16, 100, 56)
    force(algorithm)
    r = np.random.default_rng(3)
    x = r.standard_normal((2, 128, 14, 14)).astype(np.float32)
    W = (r.standard_normal((128, 128, 3, 3)) * 0.05).astype(np.float32)
    gy = r.standard_normal((2, 128, 14, 14)).astype(np.float32)
    geo = ((1, 1), (1, 1), (1, 1), 1)
    tx, tw = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(W).requires_grad_(True)
    ty = TF.conv2d(tx, tw, padding=1)
    ty.backward(torch.from_numpy(gy))
    assert rel_err(C.conv2d_forward(x, W, *geo, (14, 14)), ty.detach().numpy()) < 1e-5
    assert rel_err(C.conv2d_backward_input(gy, W, (14, 14), *geo), tx.grad.numpy()) < 1e-5
    assert rel_err(CW.winograd_backward_weight3x3(x, gy, (1, 1)), tw.grad.numpy()) < 1e-5


def test_batch_of_8x8_maps_takes_winograd_and_matches_float64(monkeypatch):
    """A wide layer on 8×8 maps with 1024 positions in the batch: the forward map, the input and
    the weight gradient all go through Winograd F(2×2) (spied), within float32 rounding of the
    float64 plain loops."""
    r = np.random.default_rng(3)
    x = r.standard_normal((16, 128, 8, 8))
    W = r.standard_normal((128, 128, 3, 3)) * 0.05
    gy = r.standard_normal((16, 128, 8, 8))
    calls = []
    for name in ("winograd_conv3x3", "winograd_backward_weight3x3", "winograd_backward3x3"):
        real = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    geo = ((1, 1), (1, 1), (1, 1), 1)
    f32 = [a.astype(np.float32) for a in (x, W, gy)]
    y = C.conv2d_forward(f32[0], f32[1], *geo, (8, 8))
    gx, gW, _ = C.conv2d_backward(*f32, *geo, needs=(True, True, False))
    assert "winograd_conv3x3" in calls and len(calls) >= 2, calls
    assert rel_err(y, R.conv2d_forward(x, W, *geo, (8, 8))) < 1e-5
    gx_ref, gW_ref = R.conv2d_backward_input(gy, W, (8, 8), *geo), R.conv2d_backward_weight(x, gy, (3, 3), *geo)
    assert rel_err(gx, gx_ref) < 1e-5 and rel_err(gW, gW_ref) < 2e-5


def test_dispatch_table():
    """The documented choice: Winograd for 3×3 s1 with ≥ 16 channels and ≥ 1024 positions, or
    ≥ 128 channels and ≥ 196 positions, or ≥ 128 channels, ≥ 64 positions and ≥ 1024 in the batch, or
    (forward map only) ≥ 64 → 64 channels and ≥ 256 positions."""
    assert C._use_winograd((3, 3), (1, 1), (1, 1), 1, 64, 64, (56, 56))
    assert C._use_winograd((3, 3), (1, 1), (1, 1), 1, 256, 256, (14, 14))  # wide layer, small image
    assert C._use_winograd((3, 3), (1, 1), (1, 1), 1, 64, 64, (16, 16))  # small image, 64 channels
    assert C._use_winograd((3, 3), (1, 1), (1, 1), 1, 32, 64, (16, 16))  # 32 input channels, 64 output
    assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 64, 32, (16, 16))  # its input gradient: im2col
    assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 32, 32, (16, 16))  # 32 output channels: im2col
    assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 32, 64, (16, 16), weight_grad=True)  # its weight gradient
    assert C._use_winograd((3, 3), (1, 1), (1, 1), 1, 64, 64, (56, 56), weight_grad=True)
    assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 256, 256, (7, 7))  # tiny image: im2col
    for grad in (False, True):  # 8×8 maps: Winograd from 1024 positions in the batch
        assert C._use_winograd((3, 3), (1, 1), (1, 1), 1, 256, 256, (8, 8), weight_grad=grad, n_images=16)
        assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 256, 256, (8, 8), weight_grad=grad, n_images=8)
        assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 64, 64, (8, 8), weight_grad=grad, n_images=64)
        assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 512, 512, (4, 4), weight_grad=grad, n_images=256)
    assert not C._use_winograd((3, 3), (1, 1), (1, 1), 1, 3, 32, (32, 32))  # 3 input channels
    assert not C._use_winograd((3, 3), (2, 2), (1, 1), 1, 64, 128, (28, 28))  # strided
    assert not C._use_winograd((3, 3), (1, 1), (2, 2), 1, 64, 64, (56, 56))  # dilated
    assert not C._use_winograd((3, 3), (1, 1), (1, 1), 2, 64, 64, (56, 56))  # grouped


def test_run_tasks_reraises_and_returns_states():
    from minicnn.kernels.cpu._threads import run_tasks

    states = run_tasks(lambda t, acc: acc.append(t), range(20), make_state=list)
    assert sorted(v for s in states for v in s) == list(range(20))

    def fail(t, _):
        if t == 7:
            raise ValueError("task 7")

    with pytest.raises(ValueError, match="task 7"):
        run_tasks(fail, range(20))


# stride-1 "same-width" geometries (OW == W), where the block kernels copy a whole stretch of rows
# at once, with row blocks cut at the top, middle and bottom: (H, W, k, padding, dilation, OW)
_FLAT_GEOMETRIES = [(7, 9, (3, 3), (1, 1), (1, 1)), (6, 5, (3, 3), (2, 2), (2, 2)), (8, 7, (5, 5), (2, 2), (1, 1)),
                    (5, 6, (2, 2), (1, 0), (1, 1)), (4, 4, (3, 1), (0, 0), (1, 1)), (9, 3, (3, 3), (3, 1), (1, 1)),
                    # with stride 2, OW == ⌈W/2⌉: the phase-split path of im2col_block
                    (8, 8, (3, 3), (1, 1), (1, 1)), (7, 7, (3, 3), (1, 1), (1, 1)), (6, 5, (1, 1), (0, 0), (1, 1)),
                    (9, 10, (4, 2), (1, 0), (1, 1)), (5, 9, (5, 5), (2, 2), (1, 1)),
                    # taps entirely in the padding (a whole row of cols is zero)
                    (1, 1, (1, 3), (0, 2), (1, 2)), (2, 3, (3, 5), (2, 4), (2, 2)),
                    # output rows of ≥ 16 that are not the input's width: the row-by-row path
                    # (shorter ones, most of the above, take the offset-table path)
                    (20, 21, (3, 3), (0, 0), (1, 1)), (6, 40, (3, 3), (1, 1), (2, 2)), (5, 35, (2, 4), (1, 1), (1, 1))]


@pytest.mark.parametrize("geo", _FLAT_GEOMETRIES)
def test_block_kernels_match_reference_im2col(geo):
    """im2col_block / col2im_block_add (row blocks r0…r1 of images n0…, channels c0…) equal the
    corresponding slices of the reference im2col / its adjoint, on the same-width fast path, the
    phase-split stride-2 path, the offset-table path (short rows) and the row-by-row path."""
    H, W, k, p, d = geo
    r = np.random.default_rng(3)
    x = r.standard_normal((3, 4, H, W))
    for s in [(1, 1), (2, 2), (1, 2)]:
        OH = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        OW = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        if OH < 1 or OW < 1:
            continue
        want = R.im2col(x, k, s, p, d, (OH, OW)).reshape(3, 4 * k[0] * k[1], OH, OW)
        for n0, n1, c0, c1, r0, r1 in [(0, 3, 0, 4, 0, OH), (1, 2, 1, 3, 0, 1), (0, 2, 2, 4, OH // 2, OH),
                                       (2, 3, 0, 2, max(0, OH - 2), OH), (0, 1, 0, 4, 1, max(1, OH - 1))]:
            if r1 <= r0:
                continue
            K = (c1 - c0) * k[0] * k[1]
            cols = np.full((n1 - n0, K, (r1 - r0) * OW), np.nan)
            I2C.im2col_block(x, cols, n0, c0, r0, *k, *s, *p, *d, OW, False)
            expect = want[n0:n1, c0 * k[0] * k[1]:c1 * k[0] * k[1], r0:r1].reshape(cols.shape)
            np.testing.assert_array_equal(cols, expect)
            # adjoint: ⟨im2col_block(x), c⟩ = ⟨x, col2im_block_add(c)⟩ on the block's images/channels/rows
            c = r.standard_normal(cols.shape)
            gx = np.zeros_like(x)
            I2C.col2im_block_add(c.copy(), gx, n0, c0, r0, *k, *s, *p, *d, OW, False)
            full = np.zeros(want.shape)
            full[n0:n1, c0 * k[0] * k[1]:c1 * k[0] * k[1], r0:r1] = c.reshape(n1 - n0, K, r1 - r0, OW)
            np.testing.assert_allclose(gx, R.col2im(full.reshape(3, -1, OH * OW), (H, W), k, s, p, d, (OH, OW)),
                                       rtol=1e-12, atol=1e-12)
            # the wide layout (K, nb, B): the same columns, image by image, and the same adjoint
            wide = np.full((K, n1 - n0, (r1 - r0) * OW), np.nan)
            I2C.im2col_block(x, wide, n0, c0, r0, *k, *s, *p, *d, OW, True)
            np.testing.assert_array_equal(wide.transpose(1, 0, 2), expect)
            gx_wide = np.zeros_like(x)
            I2C.col2im_block_add(np.ascontiguousarray(c.transpose(1, 0, 2)), gx_wide, n0, c0, r0, *k, *s, *p, *d, OW,
                                 True)
            np.testing.assert_allclose(gx_wide, gx, rtol=1e-13, atol=1e-13)


def test_transpose_into_and_weight_transform():
    r = np.random.default_rng(4)
    for m, n in [(1, 1), (31, 70), (64, 33)]:
        a = r.standard_normal((m, n)).astype(np.float32)
        out = np.empty((n, m), np.float32)
        I2C.transpose_into(a, out)
        np.testing.assert_array_equal(out, a.T)
    W = r.standard_normal((5, 3, 3, 3))
    G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
    want = np.einsum("ai,oxij,bj->abox", G, W, G).reshape(16, 5, 3)
    np.testing.assert_allclose(CW.transform_weight(W), want, rtol=1e-14, atol=1e-14)
    # the input gradient's filter, read in place: W'[c, o] = W[o, c, ::-1, ::-1]
    flipped = np.einsum("ai,oxij,bj->abxo", G, W[:, :, ::-1, ::-1], G).reshape(16, 3, 5)
    np.testing.assert_allclose(CW.transform_weight(W, flipped_transposed=True), flipped, rtol=1e-14, atol=1e-14)


_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def _transform_block_case(N, OH, OW, ph, pw, extra, data, tile):
    """A block of tile rows tr0…tr0 + rows − 1 of image n of an input x (2 channels) whose size is any
    the tiles of an OH × OW output may overhang, at a tile offset toff (hypothesis draws all)."""
    r = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    C = 2
    TH, TW = -(-OH // tile), -(-OW // tile)
    H, W = OH + 2 - 2 * ph + extra, OW + 2 - 2 * pw + extra
    assume(H >= 1 and W >= 1)
    n = data.draw(st.integers(0, N - 1))
    tr0 = data.draw(st.integers(0, TH - 1))
    rows = data.draw(st.integers(1, TH - tr0))
    toff = data.draw(st.integers(0, 5))
    return r, C, TH, TW, H, W, n, tr0, rows, toff, r.standard_normal((N, C, H, W))


def _padded_planes(x, gy, n, TH, TW, ph, pw, tile):
    """Image n of x zero-padded to the (tile + 2)-wide input tiles of TH × TW output tiles
    (leading padding ph, pw; cropped or padded at the end) and of gy zero-padded to the tile grid."""
    C, H, W = x.shape[1:]
    xpad = np.zeros((C, tile * TH + 2, tile * TW + 2))
    h, w = min(H, tile * TH + 2 - ph), min(W, tile * TW + 2 - pw)
    xpad[:, ph:ph + h, pw:pw + w] = x[n, :, :h, :w]
    OH, OW = gy.shape[2:]
    gpad = np.zeros((C, tile * TH, tile * TW))
    gpad[:, :OH, :OW] = gy[n]
    return xpad, gpad


def _block_tiles(tr0, rows, TW, toff, *padded):
    """(ty, tx, u) of every real tile of the block (u its column at offset toff), after checking
    that the padding tile ending each tile row (tx = TW) holds 0 in each of ``padded``."""
    for tr in range(rows):
        for tx in range(TW + 1):
            u = toff + tr * (TW + 1) + tx
            if tx == TW:
                for a in padded:
                    np.testing.assert_array_equal(a[:, :, u], 0)
                continue
            yield tr0 + tr, tx, u


@settings(deadline=None)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 3), st.data())
def test_winograd_transforms_match_their_definition(N, OH, OW, ph, pw, extra, data):
    """The three Winograd transforms of a block of tile rows tr0…tr0 + rows − 1 of image n, written
    at a tile offset toff, against the matrix products of their definition, tile by tile: the
    input tile d = xpad[2ty : 2ty + 4, 2tx : 2tx + 4] gives V = Bᵀ d B; the output-gradient tile
    g = gy[2ty : 2ty + 2, 2tx : 2tx + 2] (0 outside) gives Z = A g Aᵀ; M gives y = Aᵀ m A
    (cropped). The padding tile ending each tile row (u = tr·(TW + 1) + TW) holds 0 in V and Z."""
    r, C, TH, TW, H, W, n, tr0, rows, toff, x = _transform_block_case(N, OH, OW, ph, pw, extra, data, 2)
    gy = r.standard_normal((N, C, OH, OW))
    U = rows * (TW + 1)
    V = np.full((16, C, toff + U + 2), np.nan)
    Z = np.full((16, C, toff + U + 2), np.nan)
    CW.input_transform_block(x, V, n, n + 1, tr0, rows, TW, ph, pw, toff, True)
    CW.gy_transform_block(gy, Z, n, n + 1, tr0, rows, TW, toff)
    xpad, gpad = _padded_planes(x, gy, n, TH, TW, ph, pw, 2)
    M = r.standard_normal((16, C, toff + U))
    y = np.full((N, C, OH, OW), np.nan)
    CW.output_transform_block(M, y, np.zeros(C), n, n + 1, tr0, rows, TW, toff)
    for ty, tx, u in _block_tiles(tr0, rows, TW, toff, V, Z):
        for c in range(C):
            d = xpad[c, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]
            np.testing.assert_allclose(V[:, c, u], (_BT @ d @ _BT.T).ravel(), rtol=1e-12, atol=1e-12)
            g = gpad[c, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2]
            np.testing.assert_allclose(Z[:, c, u], (_AT.T @ g @ _AT).ravel(), rtol=1e-12, atol=1e-12)
            out = _AT @ M[:, c, u].reshape(4, 4) @ _AT.T
            rr, cc = min(2, OH - 2 * ty), min(2, OW - 2 * tx)
            np.testing.assert_allclose(y[n, c, 2 * ty:2 * ty + rr, 2 * tx:2 * tx + cc], out[:rr, :cc],
                                       rtol=1e-12, atol=1e-12)
    assert np.isnan(V[:, :, :toff]).all() and np.isnan(V[:, :, toff + U:]).all()  # nothing outside the block
    V2 = np.full_like(V, np.nan)  # without zeroing the padding tiles (the forward): the same real tiles
    CW.input_transform_block(x, V2, n, n + 1, tr0, rows, TW, ph, pw, toff, False)
    real = [u for _, _, u in _block_tiles(tr0, rows, TW, toff)]
    np.testing.assert_array_equal(V2[:, :, real], V[:, :, real])


@settings(deadline=None, max_examples=20)
@given(st.sampled_from([2, 4]), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 3), st.integers(0, 5))
def test_winograd_transforms_of_several_images_in_one_call(tile, OH, OW, ph, pw, n0, toff):
    """A transform called for images n0…n1 − 1 writes (or reads) image n0 + i at tile offset
    toff + i·rows·(TW + 1), exactly as one call per image at that offset does (those are checked
    against the definition above): input, output-gradient and output transforms of both tile
    sizes, and the F(2×2) input adjoint, on whole images and on a block of tile rows."""
    r = np.random.default_rng(OH * 100 + OW)
    N, C, n1 = n0 + 3, 3, n0 + 3
    TH, TW = -(-OH // tile), -(-OW // tile)
    H, W = max(1, OH + 3 - 2 * ph), max(1, OW + 3 - 2 * pw)  # any input size works
    x, gy = r.standard_normal((N, C, H, W)), r.standard_normal((N, C, OH, OW))
    K = 16 if tile == 2 else 36
    fns = ((CW.input_transform_block, CW.gy_transform_block, CW.output_transform_block) if tile == 2 else
           (CW4.input_transform4_block, CW4.gy_transform4_block, CW4.output_transform4_block))
    for tr0, rows in ((0, TH), (TH // 2, TH - TH // 2)):
        U = rows * (TW + 1)
        size = toff + (n1 - n0) * U + 1
        one, each = np.full((K, C, size), np.nan), np.full((K, C, size), np.nan)
        fns[0](x, one, n0, n1, tr0, rows, TW, ph, pw, toff, True)
        for i in range(n1 - n0):
            fns[0](x, each, n0 + i, n0 + i + 1, tr0, rows, TW, ph, pw, toff + i * U, True)
        np.testing.assert_array_equal(one, each)
        one, each = np.full((K, C, size), np.nan), np.full((K, C, size), np.nan)
        fns[1](gy, one, n0, n1, tr0, rows, TW, toff)
        for i in range(n1 - n0):
            fns[1](gy, each, n0 + i, n0 + i + 1, tr0, rows, TW, toff + i * U)
        np.testing.assert_array_equal(one, each)
        M, b = r.standard_normal((K, C, size)), r.standard_normal(C)
        y1, y2 = np.full((N, C, OH, OW), np.nan), np.full((N, C, OH, OW), np.nan)
        fns[2](M, y1, b, n0, n1, tr0, rows, TW, toff)
        for i in range(n1 - n0):
            fns[2](M, y2, b, n0 + i, n0 + i + 1, tr0, rows, TW, toff + i * U)
        np.testing.assert_array_equal(y1, y2)
    if tile == 2:
        U = TH * (TW + 1)
        Q = r.standard_normal((16, C, toff + (n1 - n0) * U))
        for i in range(n1 - n0):  # the padding tiles hold 0 (as Uᵀ Z does)
            Q[:, :, toff + i * U + TW:toff + (i + 1) * U:TW + 1] = 0
        g1, g2 = np.full((N, C, H, W), np.nan), np.full((N, C, H, W), np.nan)
        CWB.input_adjoint_images(Q, g1, n0, n1, TH, TW, ph, pw, toff)
        for i in range(n1 - n0):
            CWB.input_adjoint_images(Q, g2, n0 + i, n0 + i + 1, TH, TW, ph, pw, toff + i * U)
        np.testing.assert_array_equal(g1, g2)
        assert not np.isnan(g1[n0:n1]).any()


@settings(deadline=None)
@given(st.integers(1, 3), st.integers(1, 17), st.integers(1, 17), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 5), st.data())
def test_winograd4_transforms_match_their_definition(N, OH, OW, ph, pw, extra, data):
    """F(4×4, 3×3): the input tile d = xpad[4ty : 4ty + 6, 4tx : 4tx + 6] gives V = Bᵀ d B (36 values),
    M gives y = Aᵀ m A (4×4, cropped), U = G g Gᵀ, and for the weight gradient the output-gradient
    tile g = gy[4ty : 4ty + 4, 4tx : 4tx + 4] (0 outside) gives Z = A g Aᵀ and S gives Gᵀ s G,
    against the matrices of the definition (written out in the test, not taken from the module),
    tile by tile, at an offset toff, with the padding tile of each tile row at 0."""
    BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64)
    G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64)
    r, C, TH, TW, H, W, n, tr0, rows, toff, x = _transform_block_case(N, OH, OW, ph, pw, extra, data, 4)
    U = rows * (TW + 1)
    V = np.full((36, C, toff + U + 2), np.nan)
    CW4.input_transform4_block(x, V, n, n + 1, tr0, rows, TW, ph, pw, toff, True)
    M = r.standard_normal((36, C, toff + U))
    y = np.full((N, C, OH, OW), np.nan)
    b = r.standard_normal(C)
    CW4.output_transform4_block(M, y, b, n, n + 1, tr0, rows, TW, toff)
    gy = r.standard_normal((N, C, OH, OW))
    Z = np.full((36, C, toff + U + 2), np.nan)
    CW4.gy_transform4_block(gy, Z, n, n + 1, tr0, rows, TW, toff)
    xpad, gpad = _padded_planes(x, gy, n, TH, TW, ph, pw, 4)
    for ty, tx, u in _block_tiles(tr0, rows, TW, toff, V, Z):
        for c in range(C):
            d = xpad[c, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]
            np.testing.assert_allclose(V[:, c, u], (BT @ d @ BT.T).ravel(), rtol=1e-12, atol=1e-11)
            g = gpad[c, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4]  # the weight gradient's Z = A g Aᵀ
            np.testing.assert_allclose(Z[:, c, u], (AT.T @ g @ AT).ravel(), rtol=1e-12, atol=1e-11)
            out = AT @ M[:, c, u].reshape(6, 6) @ AT.T + b[c]
            rr, cc = min(4, OH - 4 * ty), min(4, OW - 4 * tx)
            np.testing.assert_allclose(y[n, c, 4 * ty:4 * ty + rr, 4 * tx:4 * tx + cc], out[:rr, :cc],
                                       rtol=1e-12, atol=1e-11)
    assert np.isnan(V[:, :, :toff]).all() and np.isnan(V[:, :, toff + U:]).all()
    assert np.isnan(Z[:, :, :toff]).all() and np.isnan(Z[:, :, toff + U:]).all()
    S = r.standard_normal((36, 3, 2))  # the weight gradient's untransform gW = Gᵀ s G
    gW = np.empty((3, 2, 3, 3))
    CW4.weight_untransform4_raw(S, gW, 0, 3)
    np.testing.assert_allclose(gW, np.einsum("ia,ijox,jb->oxab", G, S.reshape(6, 6, 3, 2), G), rtol=1e-13, atol=1e-14)
    Wt = r.standard_normal((3, 2, 3, 3))
    want = np.einsum("ai,oxij,bj->abox", G, Wt, G).reshape(36, 3, 2)
    np.testing.assert_allclose(CW.transform_weight(Wt, tile=4), want, rtol=1e-13, atol=1e-14)
    flipped = np.einsum("ai,oxij,bj->abxo", G, Wt[:, :, ::-1, ::-1], G).reshape(36, 2, 3)
    np.testing.assert_allclose(CW.transform_weight(Wt, flipped_transposed=True, tile=4), flipped, rtol=1e-13, atol=1e-14)


@settings(deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(2, 4), st.integers(1, 2),
       st.integers(0, 2), st.integers(1, 2), st.integers(5, 14), st.sampled_from([(True, True, True), (True, True, False),
                                                                                 (True, False, True), (False, True, False)]))
def test_conv_transpose2d_backward_matches_reference(N, M, C_out, k, s, p, d, H, needs):
    """The transposed convolution's backward kernel, whose CPU path builds the columns of gy once for
    gx = conv2d(gy, W) and for gW (one-image blocks, one group, K ≥ 2·M columns), against the
    float64 reference: y = conv2d_backward_input(x, W), gx = conv2d(gy, W), gW = the weight
    gradient of that convolution with x as its output gradient, gb = Σ gy."""
    p = min(p, d * (k - 1))
    OH = (H + 2 * p - d * (k - 1) - 1) // s + 1  # x's map: the convolution of gy (H × H) gives it
    assume(OH >= 1)
    r = np.random.default_rng(N * 100 + M * 10 + k)
    x = r.standard_normal((N, M, OH, OH))
    W = r.standard_normal((M, C_out, k, k))
    gy = r.standard_normal((N, C_out, H, H))
    geo = ((s, s), (p, p), (d, d), 1)
    gx, gW, gb = C.conv_transpose2d_backward(x, W, gy, *geo, needs)
    want = (R.conv2d_forward(gy, W, *geo, (OH, OH)), R.conv2d_backward_weight(gy, x, (k, k), *geo),
            R.conv2d_bias_grad(gy))
    for need, got, ref in zip(needs, (gx, gW, gb), want):
        if need:
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
        else:
            assert got is None


def test_conv_transpose2d_backward_shares_the_columns(monkeypatch):
    """A DCGAN-like k4 s2 p1 layer takes the fused path (neither separate kernel runs) and matches
    the float64 reference."""
    calls = []
    for name in ("conv2d_forward", "conv2d_backward_weight"):
        monkeypatch.setattr(C, name, lambda *a, _n=name, _f=getattr(C, name), **k: calls.append(_n) or _f(*a, **k))
    r = np.random.default_rng(7)
    x, W, gy = r.standard_normal((2, 16, 6, 6)), r.standard_normal((16, 8, 4, 4)), r.standard_normal((2, 8, 12, 12))
    geo = ((2, 2), (1, 1), (1, 1), 1)
    gx, gW, gb = C.conv_transpose2d_backward(x, W, gy, *geo)
    assert calls == []
    np.testing.assert_allclose(gx, R.conv2d_forward(gy, W, *geo, (6, 6)), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gW, R.conv2d_backward_weight(gy, x, (4, 4), *geo), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, R.conv2d_bias_grad(gy), rtol=1e-10, atol=1e-10)
    C.conv_transpose2d_backward(x, W[:, :1], gy[:, :1], *geo)  # K = 16 < 2·16 columns: the kernels in turn
    assert calls == ["conv2d_forward", "conv2d_backward_weight"]


@settings(deadline=None)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 3), st.data())
def test_winograd_input_adjoint_matches_its_definition(N, OH, OW, ph, pw, extra, data):
    """The adjoint of the F(2×2) input transform for image n, read at a tile offset toff: every
    tile's q (4×4) gives B q Bᵀ, added at the tile's input window gx[2ty − ph : +4, 2tx − pw : +4]
    (cropped; windows overlap by 2), computed here tile by tile with the matrices of the definition.
    Rows and columns no window reaches are 0; the other images are left alone."""
    r, C, TH, TW, H, W, n, _, _, toff, _ = _transform_block_case(N, OH, OW, ph, pw, extra, data, 2)
    U = TH * (TW + 1)
    Q = r.standard_normal((16, C, toff + U + 2))
    Q[:, :, toff + TW:toff + U:TW + 1] = 0  # the padding tiles hold 0 (as Uᵀ Z does)
    gx = np.full((N, C, H, W), np.nan)
    CWB.input_adjoint_images(Q, gx, n, n + 1, TH, TW, ph, pw, toff)
    want = np.zeros((C, 2 * TH + 2 + H, 2 * TW + 2 + W))  # padded by ph, pw in front, enough behind
    for ty, tx, u in _block_tiles(0, TH, TW, toff):
        for c in range(C):
            want[c, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4] += _BT.T @ Q[:, c, u].reshape(4, 4) @ _BT
    np.testing.assert_allclose(gx[n], want[:, ph:ph + H, pw:pw + W], rtol=1e-12, atol=1e-12)
    assert np.isnan(np.delete(gx, n, axis=0)).all()


@st.composite
def _winograd_backward_cases(draw):
    g = draw(geometries(winograd=True))
    needs = draw(st.sampled_from([(True, True, True), (True, True, False), (True, False, False), (False, True, False),
                                  (False, False, True)]))
    return g, needs


@settings(deadline=None)
@given(_winograd_backward_cases())
def test_winograd_backward_matches_reference(case):
    """All three gradients from one transform of gy (``winograd_backward3x3``: gW from Z Vᵀ, gx by the
    adjoint input transform of Uᵀ Z, gb from the tile sums Z[5]) against the float64 reference
    loops, on drawn geometries (odd sizes, asymmetric trailing padding), alone and together."""
    g, needs = case
    x, W, gy = _data(g, np.float64)
    got = CWB.winograd_backward3x3(x, W, gy, g["p"], *needs)
    geo = (g["s"], g["p"], g["d"], 1)
    want = (R.conv2d_backward_input(gy, W, (g["H"], g["W"]), *geo), R.conv2d_backward_weight(x, gy, (3, 3), *geo),
            R.conv2d_bias_grad(gy))
    for need, a, b in zip(needs, got, want):
        if need:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
        else:
            assert a is None


def test_conv2d_backward_takes_the_fused_winograd_path(monkeypatch):
    """A small-image Winograd layer's two gradients come from ``winograd_backward3x3`` (neither
    separate kernel runs), with several images a task (10 images: the multi-image task layout, one
    padding tile per row, and the image offsets in V, Z and Q) and ragged 11×9 maps, against the
    float64 reference; the choice follows the documented rule."""
    calls = []
    for name in ("conv2d_backward_input", "conv2d_backward_weight"):
        monkeypatch.setattr(C, name, lambda *a, _n=name, _f=getattr(C, name), **k: calls.append(_n) or _f(*a, **k))
    monkeypatch.setattr(C, "FORCE_ALGORITHM", "winograd")
    r = np.random.default_rng(3)
    x, W, gy = r.standard_normal((10, 3, 11, 9)), r.standard_normal((4, 3, 3, 3)), r.standard_normal((10, 4, 11, 9))
    assert CW.images_per_task(10, 6 * 6, 16 * (2 * 3 + 4) * 8 * 6 * 6) > 1  # Tb = 6 tile rows × (5 + 1)
    geo = ((1, 1), (1, 1), (1, 1), 1)
    gx, gW, gb = C.conv2d_backward(x, W, gy, *geo)
    assert calls == []
    np.testing.assert_allclose(gx, R.conv2d_backward_input(gy, W, (11, 9), *geo), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gW, R.conv2d_backward_weight(x, gy, (3, 3), *geo), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, R.conv2d_bias_grad(gy), rtol=1e-12, atol=1e-12)
    C.conv2d_backward(x, W, gy, *geo, needs=(False, True, False))  # one gradient: its own kernel
    assert calls == ["conv2d_backward_weight"]
    monkeypatch.setattr(C, "FORCE_ALGORITHM", None)
    x32 = np.zeros((64, 32, 16, 16), np.float32)
    assert C._use_winograd_backward(x32, (64, 32, 3, 3), (1, 1), (1, 1), 1, (16, 16))
    assert not C._use_winograd_backward(x32[:, :16], (16, 16, 3, 3), (1, 1), (1, 1), 1, (16, 16))  # forward: im2col
    x256 = np.zeros((8, 256, 14, 14), np.float32)
    assert not C._use_winograd_backward(x256, (256, 256, 3, 3), (1, 1), (1, 1), 1, (14, 14))  # > 128 channels
    x56 = np.zeros((8, 64, 56, 56), np.float32)
    assert not C._use_winograd_backward(x56, (64, 64, 3, 3), (1, 1), (1, 1), 1, (56, 56))  # F(4×4) maps
    monkeypatch.setattr(C, "FUSED_WINOGRAD_BACKWARD", False)  # the switch
    assert not C._use_winograd_backward(x32, (64, 32, 3, 3), (1, 1), (1, 1), 1, (16, 16))


@pytest.mark.parametrize("tile", [2, 4])
def test_filter_transforms_through_the_pool_match_inline(monkeypatch, tile):
    """Small filter banks are transformed on the calling thread, large ones in chunks on the task
    pool: both give the same bits (the pooled path forced here on a 9 × 5 bank)."""
    r = np.random.default_rng(5)
    W = r.standard_normal((9, 5, 3, 3))
    inline = CW.transform_weight(W, tile=tile)
    x, gy = r.standard_normal((2, 5, 6, 7)), r.standard_normal((2, 9, 6, 7))
    gW_inline = CW.winograd_backward_weight3x3(x, gy, (1, 1), tile=tile)
    monkeypatch.setattr(CW, "_INLINE_FILTERS", 0)
    np.testing.assert_array_equal(CW.transform_weight(W, tile=tile), inline)
    np.testing.assert_array_equal(CW.winograd_backward_weight3x3(x, gy, (1, 1), tile=tile), gW_inline)


_WINOGRAD_CONV1D = C.winograd_conv1d  # the kernels themselves, under the spies below
_WINOGRAD_WEIGHT1D = C.winograd_backward_weight1d


@st.composite
def geometries_1d(draw):
    """A 1-D layer as the 2-D kernels see it (H = 1, a 1 × r kernel), r in the 1-D Winograd's sizes,
    a leading padding up to r + 2 (from r on, the input gradient's r − 1 − p is negative), the
    output one longer than the symmetric one (asymmetric trailing padding, as ``padding="same"``
    with an even total) or not, and lengths that leave ragged tiles."""
    N, C_in, C_out = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    r = draw(st.sampled_from(sorted(C._WINOGRAD1D)))
    L = draw(st.integers(1, 23))
    p = draw(st.integers(0, r + 2))
    OL = L + 2 * p - r + 1 + draw(st.integers(0, 1))
    assume(OL >= 1)
    return dict(N=N, C_in=C_in, C_out=C_out, H=1, W=L, k=(1, r), s=(1, 1), p=(0, p), d=(1, 1), G=1, out=(1, OL))


@settings(deadline=None)
@given(geometries_1d())
def test_winograd1d_path_matches_reference(force, monkeypatch, g):
    """The 1-D Winograd F(4, r) forward (with its bias), input gradient and weight gradient
    (F(r, 4)), forced on small layers, against the float64 reference loops; the paths are taken
    (spies)."""
    calls = []
    monkeypatch.setattr(C, "winograd_conv1d", lambda *a, **k: calls.append(1) or _WINOGRAD_CONV1D(*a, **k))
    monkeypatch.setattr(C, "winograd_backward_weight1d",
                        lambda *a, **k: calls.append(2) or _WINOGRAD_WEIGHT1D(*a, **k))
    force("winograd")
    x, W, gy = _data(g, np.float64)
    b = np.random.default_rng(1).standard_normal(g["C_out"])
    geo = (g["s"], g["p"], g["d"], 1)
    want = R.conv2d_forward(x, W, *geo, g["out"]) + b[None, :, None, None]
    np.testing.assert_allclose(C.conv2d_forward(x, W, *geo, g["out"], bias=b), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, W, (1, g["W"]), *geo),
                               R.conv2d_backward_input(gy, W, (1, g["W"]), *geo), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_weight(x, gy, g["k"], *geo),
                               R.conv2d_backward_weight(x, gy, g["k"], *geo), rtol=1e-10, atol=1e-10)
    assert calls == [1, 1, 2]


def test_winograd1d_transforms_are_toom_cook():
    """Each variant computes its correlation y_i = Σ_k g_k d_{i+k} exactly (float64, random data):
    the forward's F(m, r) (m outputs, r taps) and the weight gradient's F(r, m), whose input
    transform is the forward's."""
    r_ = np.random.default_rng(7)
    for r, (m, AT, G, BT) in C._WINOGRAD1D.items():
        for n_out, n_taps, (_, A2, G2, B2) in ((m, r, (m, AT, G, BT)), (r, m, C._WINOGRAD1D_GRAD[r])):
            alpha = n_out + n_taps - 1
            assert A2.shape == (n_out, alpha) and G2.shape == (alpha, n_taps) and B2.shape == (alpha, alpha)
            g, d = r_.standard_normal(n_taps), r_.standard_normal(alpha)
            want = np.array([g @ d[i:i + n_taps] for i in range(n_out)])
            np.testing.assert_allclose(A2 @ ((G2 @ g) * (B2 @ d)), want, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(C._WINOGRAD1D_GRAD[r][3], BT)


def test_winograd1d_dispatch_and_float32(monkeypatch):
    """The documented choice for 1-D layers: F(4, r) for r in (3, 5) with ≥ 32 channels in and out
    (both maps, a spy on the kernel), im2col for r = 8, few channels, strides, dilation, groups, 2-D
    maps, FORCE_ALGORITHM = "im2col" and values out of range (an inf); float32 results of the taken
    path against PyTorch, including "same" padding's asymmetric zeros on a ragged length."""
    assert C._use_winograd1d((1, 5), (1, 1), (1, 1), 1, 128, 256, (1, 150), (1, 150))
    assert C._use_winograd1d((1, 3), (1, 1), (1, 1), 1, 256, 128, (1, 150), (1, 150))
    assert not C._use_winograd1d((1, 8), (1, 1), (1, 1), 1, 64, 128, (1, 150), (1, 150))
    assert not C._use_winograd1d((1, 5), (1, 1), (1, 1), 1, 1, 128, (1, 150), (1, 150))
    assert not C._use_winograd1d((1, 5), (1, 2), (1, 1), 1, 64, 64, (1, 150), (1, 74))
    assert not C._use_winograd1d((1, 5), (1, 1), (1, 2), 1, 64, 64, (1, 150), (1, 142))
    assert not C._use_winograd1d((1, 5), (1, 1), (1, 1), 2, 64, 64, (1, 150), (1, 150))
    assert not C._use_winograd1d((1, 5), (1, 1), (1, 1), 1, 64, 64, (4, 150), (4, 150))
    calls = []
    monkeypatch.setattr(C, "winograd_conv1d", lambda *a, **k: calls.append(1) or _WINOGRAD_CONV1D(*a, **k))
    monkeypatch.setattr(C, "winograd_backward_weight1d",
                        lambda *a, **k: calls.append(2) or _WINOGRAD_WEIGHT1D(*a, **k))
    r_ = np.random.default_rng(11)
    N, Ci, L, Co = 5, 40, 61, 36
    for k in (4, 3, 5):
        x = r_.standard_normal((N, Ci, 1, L)).astype(np.float32)
        W = (r_.standard_normal((Co, Ci, 1, k)) * 0.1).astype(np.float32)
        b = r_.standard_normal(Co).astype(np.float32)
        gy = r_.standard_normal((N, Co, 1, L)).astype(np.float32)
        p = (k - 1) // 2  # "same": the odd zero at the end
        calls.clear()
        y = C.conv2d_forward(x, W, (1, 1), (0, p), (1, 1), 1, (1, L), bias=b)
        gx = C.conv2d_backward_input(gy, W, (1, L), (1, 1), (0, p), (1, 1), 1)
        gW = C.conv2d_backward_weight(x, gy, (1, k), (1, 1), (0, p), (1, 1), 1)
        assert calls == ([1, 1, 2] if k in C._WINOGRAD1D else [])
        tx = torch.from_numpy(x[:, :, 0]).requires_grad_(True)
        tw = torch.from_numpy(W[:, :, 0]).requires_grad_(True)
        ty = TF.conv1d(tx, tw, torch.from_numpy(b), padding="same")
        ty.backward(torch.from_numpy(gy[:, :, 0]))
        assert rel_err(y[:, :, 0], ty.detach().numpy()) < 2e-5
        assert rel_err(gx[:, :, 0], tx.grad.numpy()) < 2e-5
        assert rel_err(gW[:, :, 0], tw.grad.numpy()) < 2e-5
    x[0, 3, 0, 7] = np.inf  # out of range: im2col, whose inf stays in its receptive field
    calls.clear()
    y = C.conv2d_forward(x, W, (1, 1), (0, 1), (1, 1), 1, (1, L))
    C.conv2d_backward_weight(x, gy, (1, 5), (1, 1), (0, 1), (1, 1), 1)
    assert calls == [] and np.isfinite(y[1:]).all() and np.isfinite(y[0, :, 0, 11:]).all()
    monkeypatch.setattr(C, "FORCE_ALGORITHM", "im2col")
    assert not C._use_winograd1d((1, 5), (1, 1), (1, 1), 1, 128, 256, (1, 150), (1, 150))


@given(N=st.integers(1, 70), OH=st.integers(1, 40), OW=st.integers(1, 40), K=st.integers(1, 5000),
       whole=st.booleans())
def test_blocks_cover_every_image_and_row_once(N, OH, OW, K, whole):
    """The im2col tasks (images n0:n1 × rows r0:r1) tile the batch exactly; whole-image tasks hold
    at least _MIN_TASK_COLUMNS positions unless that would leave a thread without a task."""
    from minicnn.kernels.cpu._threads import NUM_THREADS

    blocks = C._blocks(N, OH, OW, K, whole_images=whole)
    seen = np.zeros((N, OH), np.int64)
    for n0, n1, r0, r1 in blocks:
        assert 0 <= n0 < n1 <= N and 0 <= r0 < r1 <= OH
        seen[n0:n1, r0:r1] += 1
    np.testing.assert_array_equal(seen, 1)
    if blocks[0][3] - blocks[0][2] == OH:  # whole images
        nb = blocks[0][1] - blocks[0][0]
        assert all(n1 - n0 == nb for n0, n1, *_ in blocks[:-1])
        wanted = -(-C._MIN_TASK_COLUMNS // (OH * OW))
        limit = min(C._block_columns(K) // (OH * OW), -(-N // NUM_THREADS))
        assert nb >= min(wanted, max(1, limit))
        assert len(blocks) >= min(N, NUM_THREADS) or nb == 1


@given(N=st.integers(1, 2), G=st.integers(2, 9), cg=st.integers(1, 3), mg=st.integers(1, 3),
       size=st.integers(3, 9), k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1),
       seed=st.integers(0, 2 ** 16))
def test_grouped_convolution_split_over_groups_matches_reference(N, G, cg, mg, size, k, stride, pad, seed):
    """One or two images in many groups: the tasks split the groups (``_group_tasks``) so that both
    threads work; forward, input and weight gradients equal the plain loops (float64)."""
    from minicnn.kernels.cpu._threads import NUM_THREADS

    assume(size + 2 * pad >= k)
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, G * cg, size, size))
    W = r.standard_normal((G * mg, cg, k, k))
    OH = (size + 2 * pad - k) // stride + 1
    gy = r.standard_normal((N, G * mg, OH, OH))
    geo = ((stride, stride), (pad, pad), (1, 1), G)
    blocks = C._blocks(N, OH, OH, cg * k * k)
    items = C._group_tasks(blocks, G)
    if len(blocks) < C._TASKS_PER_THREAD * NUM_THREADS:  # the groups are split, each (block, group) covered once
        assert len(items) > len(blocks)
    covered = np.zeros((len(blocks), G), np.int64)
    for b, g0, g1 in items:
        covered[blocks.index(b), g0:g1] += 1
    np.testing.assert_array_equal(covered, 1)
    np.testing.assert_allclose(C.conv2d_forward(x, W, *geo, (OH, OH)), R.conv2d_forward(x, W, *geo, (OH, OH)),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, W, (size, size), *geo),
                               R.conv2d_backward_input(gy, W, (size, size), *geo), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_weight(x, gy, (k, k), *geo),
                               R.conv2d_backward_weight(x, gy, (k, k), *geo), rtol=1e-10, atol=1e-10)
