"""The fully connected layer's kernels: the CPU's GEMMs split over the task pool (forced here on
small shapes) against plain NumPy products in float64, and the cuda-emu twin."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.device import get_device
from minicnn.kernels.cpu import linear as L


@settings(deadline=None)
@given(R=st.integers(1, 9), n_in=st.integers(1, 70), n_out=st.integers(1, 90), bias=st.booleans(),
       needs=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("split", [False, True])
def test_linear_kernels_match_numpy(monkeypatch, split, R, n_in, n_out, bias, needs, seed):
    monkeypatch.setattr(L, "MIN_SPLIT_ELEMS", 1 if split else 1 << 40)
    r = np.random.default_rng(seed)
    x, W, gy = r.standard_normal((R, n_in)), r.standard_normal((n_out, n_in)), r.standard_normal((R, n_out))
    b = r.standard_normal(n_out) if bias else None
    want_y = x @ W.T + (0 if b is None else b)
    for kernels in (L, get_device("cuda-emu").kernels):
        np.testing.assert_allclose(kernels.linear_forward(x, W, b), want_y, rtol=1e-12, atol=1e-12)
        gx, gW, gb = kernels.linear_backward(x, W, gy, needs)
        for got, want, wanted in ((gx, gy @ W, needs[0]), (gW, gy.T @ x, needs[1]), (gb, gy.sum(0), needs[2])):
            if wanted:
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
            else:
                assert got is None


def test_large_weight_is_split_into_tasks(monkeypatch):
    """A weight of MIN_SPLIT_ELEMS elements or more goes through the task pool (on more than one thread)."""
    calls = []
    real = L.run_tasks
    monkeypatch.setattr(L, "run_tasks", lambda task, tasks: calls.append(len(tasks)) or real(task, tasks))
    monkeypatch.setattr(L, "NUM_THREADS", 2)
    x = np.ones((2, 1024), np.float32)
    W = np.full((1024, 1024), 0.5, np.float32)
    np.testing.assert_array_equal(L.linear_forward(x, W), np.full((2, 1024), 512, np.float32))
    assert calls and calls[0] > 1
