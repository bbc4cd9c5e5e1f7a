"""The leaky ReLU kernels (Numba CPU, CUDA C on the emulator) against the plain-loop reference and
PyTorch: special values (±0, ±inf, NaN, a slope of 0 and a negative one), any shape and memory
layout, in place, and split over the task pool; the gradient from the saved output (slope >= 0)
equals the gradient from the input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels.cpu import activation as CPU
from minicnn.kernels.reference import activation as R
from minicnn.testing.strategies import arrays

torch = pytest.importorskip("torch")
SLOPES = [0.2, 0.01, 0.0, -0.3, 1.5]


def _kernels(impl):
    if impl == "cpu":
        return CPU
    from minicnn.device import get_device

    return get_device("cuda-emu").kernels


@pytest.mark.parametrize("a", SLOPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["cpu", "cuda-emu"])
def test_special_values_match_reference_and_pytorch(impl, dtype, a):
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
def test_kernels_match_reference_any_layout(shape, dtype, a, data):
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


def test_chunked_path_matches_numpy():
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
