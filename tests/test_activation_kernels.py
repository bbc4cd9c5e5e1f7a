"""The hardtanh / relu6 and leaky ReLU kernels (Numba CPU, CUDA C on the emulator) against the
plain-loop reference and PyTorch, for any layout, written in place, and split over the task pool.

Hardtanh at the edges (x exactly at a bound, ±0, ±inf, NaN: a NaN passes through the forward and
gets gradient 0, where PyTorch's own NaN gradient depends on its code path). Leaky ReLU at ±0,
±inf, NaN, a slope of 0 and a negative one; its gradient from the saved output (slope >= 0) equals
the gradient from the input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels.cpu import activation as CPU
from minicnn.kernels.reference import activation as R
from minicnn.testing.strategies import arrays

torch = pytest.importorskip("torch")
BOUNDS = [(0.0, 6.0), (-1.0, 1.0), (-0.5, 0.7)]
SLOPES = [0.2, 0.01, 0.0, -0.3, 1.5]


def _kernels(impl):
    if impl == "cpu":
        return CPU
    from minicnn.device import get_device

    return get_device("cuda-emu").kernels


@pytest.mark.parametrize("lo,hi", BOUNDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["cpu", "cuda-emu"])
def test_hardtanh_special_values_match_reference_and_pytorch(impl, dtype, lo, hi):
    k = _kernels(impl)
    x = np.array([0.0, -0.0, lo, hi, 0.25, -2.0, 7.5, np.nan, np.inf, -np.inf, 1e-30, hi - 1e-3], dtype=dtype)
    gy = np.array([1.0, 2.0, 3.0, 4.0, np.inf, -6.0, 7.0, 8.0, 9.0, 10.0, -11.0, 12.0], dtype=dtype)
    y = k.hardtanh_forward(x, lo, hi)
    np.testing.assert_array_equal(y, R.hardtanh_forward(x, dtype(lo), dtype(hi)))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.functional.hardtanh(tx, lo, hi)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    gx = k.hardtanh_backward(gy, y, lo, hi)
    np.testing.assert_array_equal(gx, R.hardtanh_backward(gy, y, dtype(lo), dtype(hi)))
    # from y, the gradient PyTorch takes from x; at a NaN input PyTorch's own gradient is gy or 0
    # depending on whether its vectorised loop or its scalar tail handles the element (measured with
    # torch 2.13/2.14), so NaN positions are compared with the reference only (0)
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(gx[finite], tx.grad.numpy()[finite])
    assert (gx[~finite] == 0).all()


@settings(deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.sampled_from([np.float32, np.float64]),
       st.sampled_from(BOUNDS), st.data())
def test_hardtanh_kernels_match_reference_any_layout(shape, dtype, bounds, data):
    """Any shape and memory layout (non-contiguous views included), on both devices, and in place."""
    lo, hi = bounds
    x = data.draw(arrays(tuple(shape), dtype)) * dtype(4)
    gy = data.draw(arrays(tuple(shape), dtype))
    want_y = R.hardtanh_forward(x, dtype(lo), dtype(hi))
    for impl in ("cpu", "cuda-emu"):
        k = _kernels(impl)
        y = k.hardtanh_forward(x, lo, hi)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(k.hardtanh_backward(gy, y, lo, hi), R.hardtanh_backward(gy, y, dtype(lo), dtype(hi)))
        inplace = np.ascontiguousarray(x).copy()
        assert k.hardtanh_forward(inplace, lo, hi, out=inplace) is inplace
        np.testing.assert_array_equal(inplace, want_y)


def test_hardtanh_chunked_path_matches_numpy():
    """4 MiB+: the task-pool path (chunk edges must not skip or repeat elements)."""
    r = np.random.default_rng(0)
    x = (r.standard_normal((3, 5, 301, 307)) * 5).astype(np.float32)
    gy = r.standard_normal(x.shape).astype(np.float32)
    y = CPU.hardtanh_forward(x, 0.0, 6.0)
    np.testing.assert_array_equal(y, np.clip(x, 0, 6))
    np.testing.assert_array_equal(CPU.hardtanh_backward(gy, y, 0.0, 6.0), np.where((x > 0) & (x < 6), gy, 0))


# ---- leaky ReLU --------------------------------------------------------------------------------
@pytest.mark.parametrize("a", SLOPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["cpu", "cuda-emu"])
def test_leaky_relu_special_values_match_reference_and_pytorch(impl, dtype, a):
    k = _kernels(impl)
    x = np.array([0.0, -0.0, 0.25, -2.0, 7.5, np.nan, np.inf, -np.inf, 1e-30, -1e-30, -3e38, 3.0], dtype=dtype)
    gy = np.array([1.0, 2.0, 3.0, 4.0, np.inf, -6.0, 7.0, 8.0, 9.0, 10.0, -11.0, -np.inf], dtype=dtype)
    y = k.leaky_relu_forward(x, a)
    np.testing.assert_array_equal(y, R.leaky_relu_forward(x, dtype(a)))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.functional.leaky_relu(tx, a)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    gx = k.leaky_relu_backward(gy, x, a)
    np.testing.assert_array_equal(gx, R.leaky_relu_backward(gy, x, dtype(a)))
    np.testing.assert_array_equal(gx, tx.grad.numpy())
    if a >= 0:  # from the output: the same gradient (y > 0 exactly where x > 0)
        np.testing.assert_array_equal(k.leaky_relu_backward(gy, y, a), gx)


@settings(deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.sampled_from([np.float32, np.float64]),
       st.sampled_from(SLOPES), st.data())
def test_leaky_relu_kernels_match_reference_any_layout(shape, dtype, a, data):
    """Any shape and memory layout (non-contiguous views included), on both devices, and in place."""
    x = data.draw(arrays(tuple(shape), dtype)) * dtype(4)
    gy = data.draw(arrays(tuple(shape), dtype))
    want_y = R.leaky_relu_forward(x, dtype(a))
    want_gx = R.leaky_relu_backward(gy, x, dtype(a))
    for impl in ("cpu", "cuda-emu"):
        k = _kernels(impl)
        y = k.leaky_relu_forward(x, a)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(k.leaky_relu_backward(gy, x, a), want_gx)
        if a >= 0:
            np.testing.assert_array_equal(k.leaky_relu_backward(gy, y, a), want_gx)
        inplace = np.ascontiguousarray(x).copy()
        assert k.leaky_relu_forward(inplace, a, out=inplace) is inplace
        np.testing.assert_array_equal(inplace, want_y)


def test_leaky_relu_chunked_path_matches_numpy():
    """4 MiB+: the task-pool path (chunk edges must not skip or repeat elements)."""
    r = np.random.default_rng(0)
    x = r.standard_normal((3, 5, 301, 307)).astype(np.float32)
    gy = r.standard_normal(x.shape).astype(np.float32)
    a = np.float32(0.2)
    y = CPU.leaky_relu_forward(x, 0.2)
    np.testing.assert_array_equal(y, np.where(x > 0, x, a * x))
    np.testing.assert_array_equal(CPU.leaky_relu_backward(gy, y, 0.2), np.where(x > 0, gy, a * gy))
    z = x.copy()
    CPU.leaky_relu_forward(z, 0.2, out=z)
    np.testing.assert_array_equal(z, y)
