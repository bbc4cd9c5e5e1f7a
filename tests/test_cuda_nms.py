"""NMS on the device (cuda-emu runs the cuda code path): results bitwise equal to the CPU's (a
Numba greedy loop) and to the plain-loop reference, a stable sort, the one-block keep-scan with
its `removed` bits in shared or global memory, and the device→host traffic counted."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.device import get_device
from minicnn.kernels.cuda import nms as NMS
from minicnn.kernels.reference import nms as R

EMU = get_device("cuda-emu")


def _boxes(rng, n, spread=50.0):
    xy = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(0, 20, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@given(n=st.integers(0, 150), levels=st.integers(1, 6), groups=st.integers(1, 3),
       thr=st.sampled_from([0.0, 0.3, 0.5, 0.9]), scale=st.sampled_from([1.0, 2.0 ** 900, 2.0 ** -1000, 1e-3]),
       seed=st.integers(0, 2 ** 16))
def test_device_nms_is_bitwise_the_cpu_result(n, levels, groups, thr, scale, seed):
    """Few score levels make many ties: the stable order (lower index first) decides them."""
    rng = np.random.default_rng(seed)
    b = _boxes(rng, n) * scale
    s = rng.integers(0, levels, n).astype(np.float32)
    ids = rng.integers(0, groups, n)
    cpu = F.nms(mc.Tensor(b), mc.Tensor(s), thr).numpy()
    emu = F.nms(mc.Tensor(b, device="cuda-emu"), mc.Tensor(s, device="cuda-emu"), thr)
    assert emu.device.name == "cuda-emu" and emu.dtype == np.int64
    np.testing.assert_array_equal(emu.numpy(), cpu)
    if scale == 1.0:
        np.testing.assert_array_equal(cpu, R.nms(b, s, thr))
    cpu_b = F.batched_nms(mc.Tensor(b), mc.Tensor(s), mc.Tensor(ids), thr).numpy()
    emu_b = F.batched_nms(mc.Tensor(b, device="cuda-emu"), mc.Tensor(s, device="cuda-emu"),
                          mc.Tensor(ids.astype(np.float64), device="cuda-emu"), thr).numpy()
    np.testing.assert_array_equal(emu_b, cpu_b)


def test_lexsort_order_is_the_stable_descending_order():
    """The device sort key (the NumPy twin of the cupy.lexsort call) against a stable argsort."""
    s = np.random.default_rng(0).integers(0, 4, 500).astype(np.float64)
    s[::7] = -0.0
    order = np.lexsort(np.stack([np.arange(s.size, dtype=np.float64), -s]))
    np.testing.assert_array_equal(order, np.argsort(-s, kind="stable"))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 700])
def test_keep_scan_with_removed_bits_in_global_memory(n, monkeypatch):
    rng = np.random.default_rng(n)
    b = _boxes(rng, n, spread=30.0)
    cats = rng.integers(0, 2, n).astype(np.int64)
    shared = EMU.kernels.nms_sorted(b, cats, 0.3)
    monkeypatch.setattr(NMS, "SHARED_BYTES", 0)  # force the global-memory `removed` words
    global_ = EMU.kernels.nms_sorted(b, cats, 0.3)
    np.testing.assert_array_equal(global_, shared)
    want = np.concatenate([np.flatnonzero(cats == c)[R.nms_sorted(b[cats == c], 0.3)] for c in (0, 1)])
    np.testing.assert_array_equal(shared, np.sort(want))


def test_10k_boxes_cost_one_count_transfer(monkeypatch):
    """Device→host reads of one F.nms call on 10,000 boxes: the three validation integers, then the
    kernel's 8-byte count; the mask (10,000 × 157 words) and the kept indices stay on the device."""
    rng = np.random.default_rng(3)
    n = 10_000
    b, s = _boxes(rng, n, spread=1000.0), rng.uniform(0, 1, n)
    be = EMU.kernels.nms_sorted.args[0]
    reads = []
    real_to_numpy, real_to_host = EMU.to_numpy, be.to_host
    monkeypatch.setattr(EMU, "to_numpy", lambda a: (reads.append(("to_numpy", np.asarray(a).nbytes)),
                                                    real_to_numpy(a))[1])
    monkeypatch.setattr(be, "to_host", lambda a: (reads.append(("to_host", a.nbytes)), real_to_host(a))[1])
    keep = F.nms(mc.Tensor(b, device="cuda-emu"), mc.Tensor(s, device="cuda-emu"), 0.5)
    assert reads == [("to_numpy", 3 * 8), ("to_host", 8)]
    monkeypatch.undo()
    np.testing.assert_array_equal(keep.numpy(), F.nms(mc.Tensor(b), mc.Tensor(s), 0.5).numpy())


@pytest.mark.parametrize("bad,match", [
    (lambda b, s: b.__setitem__((2, 1), np.nan), "boxes must be finite, row 2"),
    (lambda b, s: s.__setitem__(1, np.inf), "scores must be finite, element 1"),
    (lambda b, s: b.__setitem__((3, 2), -5.0), r"x1 <= x2 and y1 <= y2, row 3"),
])
def test_device_path_checks_values_before_any_kernel(bad, match, monkeypatch):
    rng = np.random.default_rng(4)
    b, s = _boxes(rng, 5), rng.uniform(0, 1, 5)
    bad(b, s)
    def no_kernels(*args, **kwargs):
        raise AssertionError("a kernel was compiled or launched before the input check")

    monkeypatch.setattr(EMU.kernels.nms_sorted.args[0], "function", no_kernels)
    with pytest.raises(ValueError, match=match):
        F.nms(mc.Tensor(b, device="cuda-emu"), mc.Tensor(s, device="cuda-emu"), 0.5)


def test_device_path_rejects_fractional_category_ids():
    b = _boxes(np.random.default_rng(5), 3)
    with pytest.raises(ValueError, match="idxs must hold integer category ids"):
        F.batched_nms(mc.Tensor(b, device="cuda-emu"), mc.Tensor(np.ones(3), device="cuda-emu"),
                      mc.Tensor(np.array([0.0, 0.5, 1.0]), device="cuda-emu"), 0.5)
