"""``minicnn.use_deterministic_algorithms``: the atomics-free paths of roi_pool, roi_align and
max_unpool2d on cuda-emu (the cuda code path) against the CPU and plain NumPy loops, the sorted
scatter-add against a sequential loop, and the switch itself. Also the plane chunking of the
pool/resample launches (32-bit counts per launch) on huge fake shapes and small real ones."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.device import get_device
from minicnn.kernels.cuda import _planes
from minicnn.kernels.cuda._scatter import scatter_add

EMU = get_device("cuda-emu")
BE = EMU.kernels.conv2d_forward.args[0]


@pytest.fixture
def deterministic():
    mc.use_deterministic_algorithms(True)
    yield
    mc.use_deterministic_algorithms(False)


@pytest.fixture
def launched(monkeypatch):
    """Names of the kernels the cuda-emu backend hands out during the test."""
    names = []
    real = BE.function

    def recording(cu_file, name, dtype=np.float32):
        names.append(name)
        return real(cu_file, name, dtype)

    monkeypatch.setattr(BE, "function", recording)
    return names


def test_switch():
    assert mc.are_deterministic_algorithms_enabled() is False
    mc.use_deterministic_algorithms(True)
    try:
        assert mc.are_deterministic_algorithms_enabled() is True
    finally:
        mc.use_deterministic_algorithms(False)
    with pytest.raises(TypeError, match="mode must be a bool"):
        mc.use_deterministic_algorithms(1)


@given(n=st.integers(0, 60), size=st.integers(1, 9), seed=st.integers(0, 2 ** 16))
def test_scatter_add_is_the_sequential_loop_bit_for_bit(n, size, seed):
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)
    dest = rng.integers(-1, size, n)
    want = np.zeros(size, dtype=np.float32)
    for v, d in zip(values, dest):
        if d >= 0:
            want[d] += v
    np.testing.assert_array_equal(scatter_add(BE, values, dest, size), want)


def _rois(rng, K, N, H, W):
    x1, y1 = rng.uniform(-2, W, K), rng.uniform(-2, H, K)
    return np.stack([rng.integers(0, N, K).astype(np.float64), x1, y1,
                     x1 + rng.uniform(0, W, K), y1 + rng.uniform(0, H, K)], axis=1)


def _grad(op, x, rois, device, gy, **kw):
    t = mc.Tensor(x, device=device, requires_grad=True)
    y = op(t, mc.Tensor(rois, device=device), **kw)
    y.backward(gy)
    return t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roi_pool_deterministic_backward_equals_cpu(dtype, deterministic, launched):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    rois = _rois(rng, 12, 2, 9, 11)
    gy = rng.standard_normal((12, 3, 3, 2)).astype(dtype)
    cpu = _grad(F.roi_pool, x, rois, "cpu", gy, output_size=(3, 2), spatial_scale=1.0)
    emu = _grad(F.roi_pool, x, rois, "cuda-emu", gy, output_size=(3, 2), spatial_scale=1.0)
    assert "segment_sum" in launched and "roi_pool_backward" not in launched
    # both add each pixel's winning bins in (k, c, ph, pw) order
    np.testing.assert_array_equal(emu, cpu)


@pytest.mark.parametrize("sampling_ratio,aligned", [(2, False), (-1, True), (0, False)])
def test_roi_align_deterministic_backward_equals_cpu(sampling_ratio, aligned, deterministic, launched, monkeypatch):
    from minicnn.kernels.cuda import roi as ROI

    monkeypatch.setattr(ROI, "ALIGN_WORKSPACE", 200)  # several RoI chunks: gx accumulates over launches
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 8, 10))
    rois = _rois(rng, 9, 2, 8, 10)
    gy = rng.standard_normal((9, 2, 3, 3))
    kw = dict(output_size=(3, 3), spatial_scale=0.9, sampling_ratio=sampling_ratio, aligned=aligned)
    cpu = _grad(F.roi_align, x, rois, "cpu", gy, **kw)
    emu = _grad(F.roi_align, x, rois, "cuda-emu", gy, **kw)
    assert "roi_align_backward_gather" in launched and "roi_align_backward" not in launched
    np.testing.assert_allclose(emu, cpu, rtol=1e-12, atol=1e-12)
    again = _grad(F.roi_align, x, rois, "cuda-emu", gy, **kw)
    np.testing.assert_array_equal(again, emu)


def test_max_unpool_duplicates_are_summed_in_input_order(deterministic, launched):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 3, 4, 4)) * 10.0 ** rng.integers(-4, 5, (2, 3, 4, 4))).astype(np.float32)
    idx = rng.integers(0, 6, (2, 3, 4, 4))  # 16 values into 6 of the 8·8 outputs: many duplicates
    y = F.max_unpool2d(mc.Tensor(x, device="cuda-emu"), mc.Tensor(idx, device="cuda-emu"), 2).numpy()
    assert "segment_sum" in launched and "max_unpool2d_forward" not in launched
    want = np.zeros((2, 3, 64), dtype=np.float32)
    for n in range(2):
        for c in range(3):
            for v, i in zip(x[n, c].ravel(), idx[n, c].ravel()):
                want[n, c, i] += v
    np.testing.assert_array_equal(y, want.reshape(2, 3, 8, 8))
    np.testing.assert_array_equal(F.max_unpool2d(mc.Tensor(x), mc.Tensor(idx), 2).numpy(), y)


# ---- 32-bit counts per launch: plane chunks ------------------------------------------------------------
def test_plane_chunks_on_huge_fake_shapes():
    big = 2 ** 31 - 1
    chunks = _planes.plane_chunks(64 * 512, 256 * 256)  # 2**31 elements: one more than a launch indexes
    assert chunks[0] == (0, big // 65536) and chunks[-1][1] == 64 * 512
    assert all(b - a >= 1 and (b - a) * 65536 <= big for a, b in chunks)
    assert all(chunks[i][1] == chunks[i + 1][0] for i in range(len(chunks) - 1))
    assert len(_planes.plane_chunks(3 * 10 ** 6, 4096)) == -(-3 * 10 ** 6 // (big // 4096))
    assert _planes.plane_chunks(7, 10) == [(0, 7)] and _planes.plane_chunks(0, 10) == []
    with pytest.raises(ValueError, match="max_pool2d_forward: one plane has 2147483648 elements"):
        _planes.plane_chunks(1, 2 ** 31, "max_pool2d_forward")


def test_chunked_pool_and_resample_launches_equal_one_launch(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 9, 8))
    gy_pool = rng.standard_normal((3, 5, 5, 4))

    def run():
        t = mc.Tensor(x, device="cuda-emu", requires_grad=True)
        y1, idx = F.max_pool2d(t, 3, 2, 1, return_indices=True)
        y2 = F.avg_pool2d(t, 2, 2)
        y3 = F.adaptive_avg_pool2d(t, (3, 5))
        y4 = F.interpolate(t, size=(13, 7), mode="bilinear", align_corners=False)
        y5 = F.max_unpool2d(y1, idx, 3, 2, 1, output_size=(9, 8))
        (y1 * mc.Tensor(gy_pool, device="cuda-emu")).sum().backward(retain_graph=True)  # y5 reuses y1's graph
        (y2.sum() + (y3 * y3).sum() + (y4 * y4).sum() + (y5 * y5).sum()).backward()
        return [a.numpy().copy() for a in (y1, idx, y2, y3, y4, y5, t.grad)]

    whole = run()
    calls = []
    real = _planes.plane_chunks
    monkeypatch.setattr(_planes, "MAX_LAUNCH_ELEMENTS", 2 * 13 * 8)  # a few planes per launch
    for mod in ("pool", "resample"):
        monkeypatch.setattr(f"minicnn.kernels.cuda.{mod}.plane_chunks",
                            lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    chunked = run()
    assert max(len(c) for c in calls) >= 8  # 15 planes in chunks of 1–2
    for a, b in zip(chunked, whole):
        np.testing.assert_array_equal(a, b)


def test_alert_names_the_op_only_on_cuda_in_deterministic_mode(deterministic):
    from minicnn.backends import alert_not_deterministic

    with pytest.raises(RuntimeError, match="index_put: no deterministic implementation on cuda"):
        alert_not_deterministic("index_put", "cuda")
    alert_not_deterministic("index_put", "cuda-emu")
    mc.use_deterministic_algorithms(False)
    alert_not_deterministic("index_put", "cuda")
