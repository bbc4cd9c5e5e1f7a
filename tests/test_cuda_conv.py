"""The CUDA convolution's structure, checked on cuda-emu: the (K, N·P) GEMM layout with transpose
flags (kernels/cuda/_gemm.py against NumPy), the workspace cap (planner + tracked allocations),
chunked == unchunked, 32/64-bit index kernels, the block-reduction depthwise weight gradient and
its barrier, and the ``minicnn.backends.cuda`` settings. References: the plain-loop kernels of
``kernels/reference/conv.py`` and NumPy products written here."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.device import get_device
from minicnn.kernels.cuda import _gemm
from minicnn.kernels.cuda import conv as CC
from minicnn.kernels.emulator import EmuModule
from minicnn.kernels.reference import conv as R
from minicnn.testing.strategies import conv_geometry

EMU = get_device("cuda-emu")
MiB = 2 ** 20


@pytest.fixture
def cap():
    """Set the workspace cap for one test, restoring the default afterwards."""
    old = mc.backends.cuda.workspace_limit_bytes

    def set_cap(nbytes):
        mc.backends.cuda.workspace_limit_bytes = nbytes

    yield set_cap
    mc.backends.cuda.workspace_limit_bytes = old


@pytest.fixture
def tracked():
    """Records ``(nbytes, shape)`` of every conv workspace allocation during the test."""
    seen = []

    def hook(nbytes, shape, dtype):
        seen.append((nbytes, shape))

    CC.workspace_hooks.append(hook)
    yield seen
    CC.workspace_hooks.remove(hook)


# ---- the GEMM with transpose flags ----------------------------------------------------------------
def _padded(rng, rows, cols, pad, dtype):
    """A (rows, cols) row-major view whose rows are ``pad`` elements longer (ld = cols + pad)."""
    return rng.standard_normal((rows, cols + pad)).astype(dtype)[:, :cols]


@given(m=st.integers(1, 5), n=st.integers(1, 6), k=st.integers(1, 5), ta=st.sampled_from("NT"),
       tb=st.sampled_from("NT"), pad=st.integers(0, 2), beta=st.sampled_from([0.0, 1.0, -0.5]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_gemm_flags_and_leading_dimensions_match_numpy(m, n, k, ta, tb, pad, beta, dtype):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a = _padded(rng, *((m, k) if ta == "N" else (k, m)), pad, dtype)
    b = _padded(rng, *((k, n) if tb == "N" else (n, k)), pad, dtype)
    out = _padded(rng, m, n, pad, dtype)
    old = out.astype(np.float64)
    want = 0.75 * (a.T if ta == "T" else a).astype(np.float64) @ (b.T if tb == "T" else b).astype(np.float64)
    want += beta * old
    got = _gemm.gemm(EMU.kernels.conv2d_forward.args[0], ta, tb, a, b, out, alpha=0.75, beta=beta)
    assert got is out
    np.testing.assert_allclose(out, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_gemm_rejects_mismatches():
    be = EMU.kernels.conv2d_forward.args[0]
    a, b = np.zeros((2, 3)), np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"op\(a\) is \(2, 3\).*out is \(2, 5\)"):
        _gemm.gemm(be, "N", "N", a, b, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="transa must be 'N' or 'T'"):
        _gemm.gemm(be, "C", "N", a, b, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="float32 or all float64"):
        _gemm.gemm(be, "N", "N", a.astype(np.float32), b, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="unit column stride"):
        _gemm.gemm(be, "N", "N", a, np.zeros((4, 3)).T, np.zeros((2, 4)))


# ---- the workspace cap -----------------------------------------------------------------------------
def test_planner_keeps_a_64_channel_224_layer_at_batch_64_under_the_cap():
    """The layer of the issue: its columns alone were 7.4 GB over the whole batch."""
    N, C_in, C_out, P = 64, 64, 64, 224 * 224
    K = C_in * 3 * 3
    assert N * K * P * 4 > 7.3e9  # the old whole-batch column matrix
    for rows in (K + C_out, 2 * K + C_out):  # forward; backward with gx and gW (cols + gcols + gy)
        Nc = CC.plan_chunk(N, rows, P, 4)
        assert 1 <= Nc < N
        assert Nc * rows * P * 4 <= 256 * MiB
        assert (Nc + 1) * rows * P * 4 > 256 * MiB  # the largest chunk that fits
    assert CC.plan_chunk(N, K + C_out, P, 4, limit=1) == 1  # at least one image


def _conv_case(rng, N=5, C_in=4, C_out=6, H=7, W=6, k=3, groups=2, dtype=np.float64):
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    Wt = rng.standard_normal((C_out, C_in // groups, k, k)).astype(dtype)
    geo = ((1, 2), (1, 0), (1, 1), groups)
    out = ((H + 2 - (k - 1) - 1) // 1 + 1, (W - (k - 1) - 1) // 2 + 1)
    return x, Wt, geo, out


def test_tracked_workspace_stays_under_a_tiny_cap_and_chunking_changes_nothing(cap, tracked):
    rng = np.random.default_rng(0)
    x, W, geo, out = _conv_case(rng)
    ks = EMU.kernels
    y1 = ks.conv2d_forward(x, W, *geo, out)
    gy = rng.standard_normal(y1.shape)
    gx1, gW1, _ = ks.conv2d_backward(x, W, gy, *geo, (True, True, False))
    assert len(tracked) == 2 + 3  # one chunk: cols + y staging; gy staging + cols + gcols
    per_image = (4 * 9 + 6) * out[0] * out[1] * 8  # forward scratch bytes of one image
    tracked.clear()
    cap(2 * per_image + 7)  # two images per forward chunk, one per backward chunk
    y2 = ks.conv2d_forward(x, W, *geo, out)
    forward = list(tracked)
    gx2, gW2, _ = ks.conv2d_backward(x, W, gy, *geo, (True, True, False))
    assert len(forward) == 2 * 3 and len(tracked) - len(forward) == 3 * 5
    assert sum(b for b, _ in forward[:2]) == 2 * per_image
    for i in range(0, len(forward), 2):
        assert sum(b for b, _ in forward[i:i + 2]) <= 2 * per_image + 7
    for i in range(len(forward), len(tracked), 3):
        assert sum(b for b, _ in tracked[i:i + 3]) <= 2 * per_image + 7
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(gx2, gx1)
    # gW sums over chunks (beta = 1): the same terms, added in another grouping
    np.testing.assert_allclose(gW2, gW1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y1, R.conv2d_forward(x, W, *geo, out), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx1, R.conv2d_backward_input(gy, W, x.shape[2:], *geo), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gW1, R.conv2d_backward_weight(x, gy, W.shape[2:], *geo), rtol=1e-12, atol=1e-12)


@given(geo=conv_geometry(), cap_images=st.integers(1, 2), data=st.data())
def test_chunked_conv_matches_reference(geo, cap_images, data):
    """Forward, input and weight gradient under a cap of 1–2 images' columns, against the loops."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    N, C_in, G = geo["N"], geo["C_in"], geo["groups"]
    x = rng.standard_normal((N, C_in) + geo["size"])
    W = rng.standard_normal((geo["C_out"], C_in // G) + geo["kernel"])
    g = (geo["stride"], geo["padding"], geo["dilation"], G)
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                zip(geo["size"], geo["kernel"], geo["stride"], geo["padding"], geo["dilation"]))
    P = out[0] * out[1]
    old = mc.backends.cuda.workspace_limit_bytes
    mc.backends.cuda.workspace_limit_bytes = cap_images * (C_in * int(np.prod(geo["kernel"])) + geo["C_out"]) * P * 8
    try:
        y = EMU.kernels.conv2d_forward(x, W, *g, out)
        gy = rng.standard_normal(y.shape)
        gx, gW, _ = EMU.kernels.conv2d_backward(x, W, gy, *g, (True, True, False))
    finally:
        mc.backends.cuda.workspace_limit_bytes = old
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, R.conv2d_forward(x, W, *g, out), **tol)
    np.testing.assert_allclose(gx, R.conv2d_backward_input(gy, W, geo["size"], *g), **tol)
    np.testing.assert_allclose(gW, R.conv2d_backward_weight(x, gy, geo["kernel"], *g), **tol)


# ---- 32/64-bit index kernels -------------------------------------------------------------------------
def test_index_width_choice_on_huge_fake_shapes():
    assert CC.index_fits_int32(2 ** 31 - 1, 10)
    assert CC.index_fits_int32(64 * 576 * 224 * 224)  # whole-batch columns of the layer: 1.85e9
    assert not CC.index_fits_int32(128 * 576 * 224 * 224)  # at batch 128
    assert not CC.index_fits_int32(2 ** 31)
    assert not CC.index_fits_int32(5, 3 * 2 ** 31)


def test_64_bit_kernels_equal_the_32_bit_ones(monkeypatch):
    rng = np.random.default_rng(1)
    x, W, geo, out = _conv_case(rng, groups=1)
    y32 = EMU.kernels.conv2d_forward(x, W, *geo, out)
    gy = rng.standard_normal(y32.shape)
    gx32 = EMU.kernels.conv2d_backward_input(gy, W, x.shape[2:], *geo)
    launched = []
    real_launch = CC._launch
    monkeypatch.setattr(CC, "index_fits_int32", lambda *sizes: False)
    monkeypatch.setattr(CC, "_launch", lambda be, name, *a: (launched.append(name), real_launch(be, name, *a)))
    y64 = EMU.kernels.conv2d_forward(x, W, *geo, out)
    gx64 = EMU.kernels.conv2d_backward_input(gy, W, x.shape[2:], *geo)
    assert launched == ["im2col_i64", "col2im_i64"]
    np.testing.assert_array_equal(y64, y32)
    np.testing.assert_array_equal(gx64, gx32)


# ---- depthwise weight gradient: block reduction -------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,size,M", [(2, (5, 7), 1), (3, (17, 19), 2)])  # 17·19 > one block's 256 threads
def test_depthwise_weight_gradient_block_reduction(N, size, M, dtype):
    rng = np.random.default_rng(2)
    C = 3
    x = rng.standard_normal((N, C) + size).astype(dtype)
    geo = ((2, 1), (1, 1), (1, 2), C)
    out = ((size[0] + 2 - 2 - 1) // 2 + 1, (size[1] + 2 - 4 - 1) // 1 + 1)
    gy = rng.standard_normal((N, C * M) + out).astype(dtype)
    want = R.conv2d_backward_weight(x.astype(np.float64), gy.astype(np.float64), (3, 3), *geo)
    got = EMU.kernels.conv2d_backward_weight(x, gy, (3, 3), *geo)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    again = EMU.kernels.conv2d_backward_weight(x, gy, (3, 3), *geo)
    np.testing.assert_array_equal(again, got)  # fixed order of the additions


_TREE = r'''
extern "C" __global__ void tree_sum(const float* v, float* out) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = v[t];
    __syncthreads();
    for (int h = 128; h > 0; h >>= 1) {
        if (t < h) s[t] += s[t + h];
        BARRIER
    }
    if (t == 0) out[0] = s[0];
}
'''


@pytest.mark.parametrize("order", ["scrambled", "ascending"])
def test_emulator_catches_the_tree_reduction_without_its_barrier(order, monkeypatch):
    """The reduction pattern of depthwise_backward_weight: with the barrier inside the loop it is
    exact; without it some thread reads a partial sum its partner has not written yet. (In
    descending order every partner finishes first, which happens to give the right sum: the
    default scrambled order is the one that catches it.)"""
    monkeypatch.setenv("MINICNN_EMU_ORDER", order)
    v = np.arange(1, 257, dtype=np.float32)
    results = {}
    for name, barrier in (("with", "__syncthreads();"), ("without", "")):
        k = EmuModule(_TREE.replace("BARRIER", barrier)).get_function("tree_sum")
        out = np.zeros(1, dtype=np.float32)
        k((1,), (256,), (v, out))
        results[name] = out[0]
    assert results["with"] == v.sum()
    assert results["without"] != v.sum()


# ---- settings --------------------------------------------------------------------------------------
def test_backend_settings_validate_and_reach_the_kernels(cap):
    assert mc.backends.cuda.allow_tf32 is False
    assert mc.backends.cuda.workspace_limit_bytes == 256 * MiB
    mc.backends.cuda.allow_tf32 = True
    try:
        assert _gemm.settings.allow_tf32 is True
    finally:
        mc.backends.cuda.allow_tf32 = False
    cap(12345)
    assert _gemm.settings.workspace_limit_bytes == 12345
    with pytest.raises(TypeError, match="allow_tf32 must be a bool"):
        mc.backends.cuda.allow_tf32 = 1
    with pytest.raises(ValueError, match="workspace_limit_bytes must be a positive int"):
        mc.backends.cuda.workspace_limit_bytes = 0
