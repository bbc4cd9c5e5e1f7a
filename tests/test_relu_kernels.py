"""The ReLU kernels (Numba CPU, CUDA C on the emulator) against the plain-loop reference and
PyTorch, including the conventions at the edges: x = 0 and −0 give 0, a NaN passes through the
forward, the gradient is 0 wherever the output is ≤ 0 (even for an infinite gy), and arrays of
several MiB are split into chunks over the task pool."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels.cpu import activation as CPU
from minicnn.kernels.reference import activation as R
from minicnn.testing.strategies import arrays

torch = pytest.importorskip("torch")


def _emulator():
    from minicnn.device import get_device

    return get_device("cuda-emu").kernels


def _special(dtype):
    return np.array([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["cpu", "cuda-emu"])
def test_relu_special_values_match_reference_and_pytorch(impl, dtype):
    k = CPU if impl == "cpu" else _emulator()
    x = _special(dtype)
    gy = np.array([1.0, 2.0, 3.0, np.inf, 5.0, -6.0, np.nan, 8.0, 9.0], dtype=dtype)
    y = k.relu_forward(x)
    np.testing.assert_array_equal(y, R.relu_forward(x))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    gx = k.relu_backward(gy, y)
    np.testing.assert_array_equal(gx, R.relu_backward(gy, y))
    np.testing.assert_array_equal(gx, tx.grad.numpy())
    assert not np.signbit(y[1])  # relu(−0) is +0


@settings(deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.sampled_from([np.float32, np.float64]), st.data())
def test_relu_kernels_match_reference(shape, dtype, data):
    """Any shape, dtype and memory layout (non-contiguous views included)."""
    x = data.draw(arrays(tuple(shape), dtype))
    gy = data.draw(arrays(tuple(shape), dtype))
    y = CPU.relu_forward(x)
    np.testing.assert_array_equal(y, R.relu_forward(x))
    np.testing.assert_array_equal(CPU.relu_backward(gy, y), R.relu_backward(gy, y))
    inplace = np.ascontiguousarray(x).copy()  # the one-array in-place kernel
    assert CPU.relu_forward(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, R.relu_forward(x))


def test_relu_chunked_path_matches_numpy():
    """4 MiB+: the task-pool path (chunk edges must not skip or repeat elements)."""
    x = np.random.default_rng(0).standard_normal((3, 5, 301, 307)).astype(np.float32)
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    y = CPU.relu_forward(x)
    np.testing.assert_array_equal(y, np.where(x <= 0, 0, x))
    np.testing.assert_array_equal(CPU.relu_backward(gy, y), np.where(y <= 0, 0, gy))
