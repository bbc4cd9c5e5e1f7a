"""The small-maps backward (``kernels/cpu/conv_small_maps.py``: whole-batch GEMMs split over input
channels) against the plain-loop reference (float64) and PyTorch (float32), and its dispatch rule."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels.cpu import conv as C
from minicnn.kernels.cpu import conv_small_maps as SM
from minicnn.kernels.cpu._threads import task_ranges
from minicnn.kernels.reference import conv as R


@st.composite
def geometries(draw):
    """One-group convolutions with ragged sizes: kernels 1–3, strides 1–2, dilations 1–2, any
    leading padding below the kernel, and an output one row/column larger than the symmetric one
    (an implied trailing padding)."""
    N, C_in, C_out = draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 6))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1)))
    out = [(n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, si, pi, di in zip((H, W), k, s, p, d)]
    out = [o + draw(st.integers(0, 1)) for o in out]
    if min(out) < 1:  # a window larger than the padded input: make the input larger instead
        H, W = H + 4 * d[0], W + 4 * d[1]
        out = [(n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, si, pi, di in zip((H, W), k, s, p, d)]
    return dict(N=N, C_in=C_in, C_out=C_out, H=H, W=W, k=k, s=s, p=p, d=d, out=tuple(out))


def _arrays(g, dtype, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((g["N"], g["C_in"], g["H"], g["W"])).astype(dtype)
    W = r.standard_normal((g["C_out"], g["C_in"]) + g["k"]).astype(dtype)
    gy = r.standard_normal((g["N"], g["C_out"]) + g["out"]).astype(dtype)
    return x, W, gy


@settings(deadline=None)
@given(geometries(), st.integers(0, 2**16))
def test_small_maps_backward_matches_reference(monkeypatch, g, seed):
    """gx and gW through the three entry points (both at once, each alone) with the path forced,
    against the reference loops in float64."""
    monkeypatch.setattr(C, "FORCE_ALGORITHM", "small_maps")
    x, W, gy = _arrays(g, np.float64, seed)
    geo = (g["s"], g["p"], g["d"], 1)
    want_gx = R.conv2d_backward_input(gy, W, (g["H"], g["W"]), *geo)
    want_gW = R.conv2d_backward_weight(x, gy, g["k"], *geo)
    gx, gW, gb = C.conv2d_backward(x, W, gy, *geo, (True, True, True))
    np.testing.assert_allclose(gx, want_gx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gW, want_gW, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, W, (g["H"], g["W"]), *geo), want_gx,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_weight(x, gy, g["k"], *geo), want_gW, rtol=1e-10, atol=1e-10)


def test_small_maps_chunks_cover_the_channels_once():
    """The task ranges (channel chunks of the small-maps backward, feature chunks of the linear kernels)
    partition ``range(n)`` in order, none empty."""
    for n in (1, 3, 7, 64, 512, 1000):
        for min_size in (1, 7, 64):
            chunks = task_ranges(n, min_size)
            assert chunks[0][0] == 0 and chunks[-1][1] == n
            assert all(a < b for a, b in chunks)
            assert all(chunks[i][1] == chunks[i + 1][0] for i in range(len(chunks) - 1))


def test_dispatch():
    """Taken for wide one-group layers on small maps where no Winograd path applies; not for grouped,
    narrow, large-map or Winograd layers, nor when another algorithm is forced."""
    one = ((1, 1), (1, 1))  # stride, dilation
    assert C._use_small_maps((32, 512, 4, 4), (512, 512, 3, 3), *one, 1, (4, 4))   # ResNet-18 stage 4, 32×32 input
    assert C._use_small_maps((4, 512, 7, 7), (512, 512, 3, 3), *one, 1, (7, 7))    # ... at 224×224, batch 4
    assert C._use_small_maps((32, 256, 8, 8), (512, 256, 3, 3), (2, 2), (1, 1), 1, (4, 4))  # strided
    assert C._use_small_maps((2, 2048, 7, 7), (512, 2048, 1, 1), *one, 1, (7, 7))  # ResNet-50's 1×1 layers
    assert not C._use_small_maps((32, 256, 8, 8), (256, 256, 3, 3), *one, 1, (8, 8))  # N·P = 2048
    assert not C._use_small_maps((32, 16, 4, 4), (16, 16, 3, 3), *one, 1, (4, 4))  # K = 144 < 256
    assert not C._use_small_maps((4, 512, 7, 7), (512, 256, 3, 3), *one, 2, (7, 7))  # grouped
    assert not C._use_small_maps((4, 256, 14, 14), (256, 256, 3, 3), *one, 1, (14, 14))  # Winograd's
    old = C.FORCE_ALGORITHM
    try:
        C.FORCE_ALGORITHM = "im2col"
        assert not C._use_small_maps((32, 512, 4, 4), (512, 512, 3, 3), *one, 1, (4, 4))
        C.FORCE_ALGORITHM = "small_maps"
        assert C._use_small_maps((1, 1, 3, 3), (1, 1, 1, 1), *one, 1, (3, 3))
    finally:
        C.FORCE_ALGORITHM = old


def test_resnet_stage4_backward_matches_pytorch_float32(monkeypatch):
    """A layer the rule picks (8, 512, 4, 4) → 512, 3×3, padding 1, through the functional op and
    autograd, against PyTorch in float32; the path is checked to be the one taken."""
    torch = pytest.importorskip("torch")
    import minicnn as mc
    import minicnn.functional as F

    taken = []
    real = SM.small_maps_backward
    monkeypatch.setattr(C, "small_maps_backward", lambda *a: taken.append(1) or real(*a))
    r = np.random.default_rng(3)
    x = r.standard_normal((8, 512, 4, 4)).astype(np.float32)
    W = (r.standard_normal((512, 512, 3, 3)) * 0.02).astype(np.float32)
    gy = r.standard_normal((8, 512, 4, 4)).astype(np.float32)
    mx, mw = mc.tensor(x, requires_grad=True), mc.tensor(W, requires_grad=True)
    F.conv2d(mx, mw, padding=1).backward(mc.tensor(gy))
    tx, tw = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(W).requires_grad_(True)
    torch.nn.functional.conv2d(tx, tw, padding=1).backward(torch.from_numpy(gy))
    assert taken == [1]
    for got, want in ((mx.grad.numpy(), tx.grad.numpy()), (mw.grad.numpy(), tw.grad.numpy())):
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
