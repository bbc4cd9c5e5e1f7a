"""The fused batch-norm kernels (Numba CPU, CUDA C on the emulator) and ``F.batch_norm`` built on
them, against the plain-loop reference (kernels/reference/batchnorm.py), PyTorch's
``torch.nn.functional.batch_norm`` and float64 finite differences: forward, the three gradients
and the running statistics, in training and eval, with and without γ/β, (N, C) to (N, C, H, W)
(and one 3-D case), float32 and float64."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.device import get_device
from minicnn.kernels.reference import batchnorm as R
from minicnn.testing import gradcheck
from minicnn.testing.strategies import arrays

pytestmark = pytest.mark.usefixtures("torch_one_thread")

IMPLS = ["cpu", "cuda-emu"]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _kernels(impl):
    return get_device(impl).kernels


@st.composite
def bn_shapes(draw, min_values=2):
    """(N, C, *spatial) with 0–2 spatial axes and at least ``min_values`` values per channel."""
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    S = int(np.prod(spatial, dtype=np.int64))
    N = draw(st.integers(max(1, -(-min_values // S)), 4))
    return (N, draw(st.integers(1, 4))) + spatial


def _affine(rng, C, has_weight, has_bias):
    w = rng.uniform(0.5, 2.0, C) if has_weight else None
    b = rng.uniform(-1.0, 1.0, C) if has_bias else None
    return w, b


def _term_scale(x, gy, w, eps):
    """The size of the terms the outputs are sums of, max|γ·inv_std|·max(|x|, |gy|) (at least 1):
    float32 rounding errors are relative to it. A channel of close values has a large inv_std, and
    its gx is a near-cancelling difference (two values per channel: gx ≈ 0 up to ε)."""
    a = np.asarray(x, np.float64)
    if a.size == 0:
        return 1.0
    axes = (0,) + tuple(range(2, a.ndim))
    k = (1.0 if w is None else np.abs(w)) / np.sqrt(a.var(axis=axes) + eps)
    return max(1.0, float(np.max(k)) * max(float(np.abs(a).max()), float(np.abs(gy).max())))


def _assert_close(ours, ref, dtype, what, scale=1.0):
    if ref is None:
        assert ours is None, what
        return
    assert ours.dtype == ref.dtype, what
    tol = TOL[dtype]
    np.testing.assert_allclose(ours, ref, err_msg=what, rtol=tol["rtol"], atol=tol["atol"] * scale)


# ---- the kernels against the reference ---------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@given(shape=bn_shapes(), dtype=st.sampled_from([np.float32, np.float64]), affine=st.tuples(st.booleans(), st.booleans()),
       needs=st.tuples(st.booleans(), st.booleans(), st.booleans()), data=st.data())
def test_kernels_match_reference(impl, shape, dtype, affine, needs, data):
    """Training forward, eval forward and both backwards, any layout of the inputs (non-contiguous
    views included), any subset of the gradients."""
    k = _kernels(impl)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = data.draw(arrays(shape, dtype))
    gy = data.draw(arrays(shape, dtype))
    w, b = _affine(rng, shape[1], *affine)
    scale = _term_scale(x, gy, w, 1e-5)
    y, mean, inv_std = k.batch_norm_forward(x, w, b, 1e-5)
    ry, rmean, rinv = R.batch_norm_forward(x, w, b, 1e-5)
    _assert_close(y, ry, dtype, "y", scale)
    np.testing.assert_allclose(mean, rmean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inv_std, rinv, rtol=1e-9)
    assert mean.dtype == inv_std.dtype == np.float64 and y.shape == x.shape
    _assert_close(k.batch_norm_eval_forward(x, rmean, rinv, w, b), R.batch_norm_eval_forward(x, rmean, rinv, w, b),
                  dtype, "eval y", scale)
    for batch_stats in (True, False):
        ours = k.batch_norm_backward(gy, x, rmean, rinv, w, needs, batch_stats)
        ref = R.batch_norm_backward(gy, x, rmean, rinv, w, needs, batch_stats)
        for name, o, r in zip(("gx", "gweight", "gbias"), ours, ref):
            _assert_close(o, r, dtype, f"{name} (batch_stats={batch_stats})", scale)


@pytest.mark.parametrize("impl", IMPLS)
def test_kernels_shifted_sums_keep_precision_far_from_zero(impl):
    """|μ| = 10⁴·σ: naive float64 Σx² − m·μ² would lose the variance of float32 data; the shifted
    sums give the reference's statistics, and a constant channel has variance 0 exactly."""
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal((8, 3, 5, 5))).astype(np.float32)
    x[:, 2] = 7.25
    y, mean, inv_std = _kernels(impl).batch_norm_forward(x, None, np.array([0.0, 0.0, 0.5]), 1e-5)
    ry, rmean, rinv = R.batch_norm_forward(x, None, np.array([0.0, 0.0, 0.5]), 1e-5)
    np.testing.assert_allclose(inv_std, rinv, rtol=1e-10)
    np.testing.assert_allclose(mean, rmean, rtol=1e-14)
    assert inv_std[2] == 1 / np.sqrt(1e-5) and np.all(y[:, 2] == 0.5)
    np.testing.assert_allclose(y, ry, rtol=0, atol=2e-3)  # x − μ in float32: |x| = 10⁴ has ulp 1e-3


def test_cpu_kernels_split_over_tasks_match_reference_and_repeat_bitwise():
    """A 5 MiB input: the channels are split over the task pool (each task owns its channels)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 20, 64, 64)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.uniform(0.5, 2, 20), rng.uniform(-1, 1, 20)
    k = _kernels("cpu")
    y, mean, inv_std = k.batch_norm_forward(x, w, b, 1e-5)
    x64 = x.astype(np.float64)
    m = x64.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(mean, m, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(x64.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-12)
    ref_y = (x64 - m[:, None, None]) * (inv_std * w)[:, None, None] + b[:, None, None]
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    grads = k.batch_norm_backward(gy, x, mean, inv_std, w, (True, True, True), True)
    xhat = (x64 - m[:, None, None]) * inv_std[:, None, None]
    gb = gy.sum(axis=(0, 2, 3), dtype=np.float64)
    gw = (gy * xhat).sum(axis=(0, 2, 3))
    M = x.size // 20
    gx = (w * inv_std)[:, None, None] * (gy - gb[:, None, None] / M - xhat * gw[:, None, None] / M)
    np.testing.assert_allclose(grads[0], gx, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads[1], gw, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grads[2], gb, rtol=1e-5, atol=1e-4)
    again = k.batch_norm_forward(x, w, b, 1e-5)
    assert np.array_equal(again[0], y) and np.array_equal(again[2], inv_std)
    assert all(np.array_equal(a, g) for a, g in zip(k.batch_norm_backward(gy, x, mean, inv_std, w, (1, 1, 1), True),
                                                    grads))


# ---- F.batch_norm against PyTorch ----------------------------------------------------------------
@given(shape=bn_shapes(), dtype=st.sampled_from([np.float32, np.float64]), affine=st.tuples(st.booleans(), st.booleans()),
       training=st.booleans(), running=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_norm_matches_torch(device, shape, dtype, affine, training, running, seed):
    """y, gx, gγ, gβ and the updated running statistics equal PyTorch's."""
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    w, b = (None if v is None else v.astype(dtype) for v in _affine(rng, C, *affine))
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    if not running and not training:
        running = True  # eval without running statistics is the training forward (tested above)

    def ours_run():
        t = lambda a, g=True: None if a is None else mc.Tensor(a, device=device, requires_grad=g)  # noqa: E731
        tx, tw, tb = t(x), t(w), t(b)
        trm, trv = (t(rm.copy(), False), t(rv.copy(), False)) if running else (None, None)
        y = F.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3, eps=1e-4)
        y.backward(mc.Tensor(gy, device=device).data)
        stats = (trm.numpy(), trv.numpy()) if running else ()
        return [y.numpy()] + [None if a is None else a.grad.numpy() for a in (tx, tw, tb)] + list(stats)

    def torch_run():
        t = lambda a, g=True: None if a is None else torch.tensor(a, requires_grad=g)  # noqa: E731
        tx, tw, tb = t(x), t(w), t(b)
        trm, trv = (t(rm.copy(), False), t(rv.copy(), False)) if running else (None, None)
        y = tF.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3, eps=1e-4)
        y.backward(torch.tensor(gy))
        stats = (trm.numpy(), trv.numpy()) if running else ()
        return [y.detach().numpy()] + [None if a is None else a.grad.numpy() for a in (tx, tw, tb)] + list(stats)

    scale = _term_scale(x, gy, w, 1e-4)
    tol = dict(rtol=1e-4, atol=1e-5 * scale) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9 * scale)
    for name, o, r in zip(("y", "gx", "gweight", "gbias", "running_mean", "running_var"), ours_run(), torch_run()):
        if r is None:
            assert o is None, name
            continue
        assert o.dtype == dtype, name
        np.testing.assert_allclose(o, r, err_msg=f"{name} on {device}", **tol)


def test_batch_norm_3d_input_and_weight_only(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 2, 3, 2)).astype(np.float32)
    w = rng.uniform(0.5, 2, 3).astype(np.float32)
    tx, tw = mc.Tensor(x, device=device, requires_grad=True), mc.Tensor(w, device=device, requires_grad=True)
    y = F.batch_norm(tx, None, None, tw, None, training=True)
    y.backward(mc.Tensor(np.cos(x), device=device).data)
    Tx, Tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    Y = torch.nn.functional.batch_norm(Tx, None, None, Tw, None, training=True)
    Y.backward(torch.tensor(np.cos(x)))
    np.testing.assert_allclose(y.numpy(), Y.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tx.grad.numpy(), Tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tw.grad.numpy(), Tw.grad.numpy(), rtol=1e-4, atol=1e-5)


# ---- float64 finite differences -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_gradcheck_training(device, shape):
    rng = np.random.default_rng(2)
    x = mc.Tensor(rng.standard_normal(shape), device=device, requires_grad=True)
    w = mc.Tensor(rng.uniform(0.5, 2, 3), device=device, requires_grad=True)
    b = mc.Tensor(rng.standard_normal(3), device=device, requires_grad=True)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b], name="batch_norm")
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x], name="batch_norm (no affine)")


def test_gradcheck_eval(device):
    rng = np.random.default_rng(3)
    x = mc.Tensor(rng.standard_normal((2, 3, 2, 2)), device=device, requires_grad=True)
    w = mc.Tensor(rng.uniform(0.5, 2, 3), device=device, requires_grad=True)
    b = mc.Tensor(rng.standard_normal(3), device=device, requires_grad=True)
    rm = mc.Tensor(rng.standard_normal(3), device=device)
    rv = mc.Tensor(rng.uniform(0.5, 2, 3), device=device)
    gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b], name="batch_norm eval")


# ---- edges ------------------------------------------------------------------------------------------
def test_empty_batch_in_eval_gives_an_empty_output_and_zero_grads(device):
    x = mc.Tensor(np.zeros((0, 3, 4, 4), np.float32), device=device, requires_grad=True)
    w = mc.Tensor(np.ones(3, np.float32), device=device, requires_grad=True)
    rm, rv = mc.Tensor(np.zeros(3, np.float32), device=device), mc.Tensor(np.ones(3, np.float32), device=device)
    y = F.batch_norm(x, rm, rv, w, None, training=False)
    assert y.shape == (0, 3, 4, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 4, 4) and np.array_equal(w.grad.numpy(), np.zeros(3, np.float32))
    y = F.batch_norm(x, None, None, w, None, training=False)  # batch statistics of nothing: still empty
    assert y.shape == (0, 3, 4, 4)


def test_training_with_one_value_per_channel_raises(device):
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel.*\(1, 3, 1\)"):
        F.batch_norm(mc.Tensor(np.ones((1, 3, 1), np.float32), device=device), None, None, training=True)


def test_integer_input_is_promoted(device):
    torch = pytest.importorskip("torch")
    a = (np.arange(24).reshape(4, 3, 2) % 7).astype(np.int64)
    y = F.batch_norm(mc.tensor(a, device=device), None, None, training=True)
    assert y.dtype == np.float32
    ref = torch.nn.functional.batch_norm(torch.from_numpy(a.astype(np.float32)), None, None, training=True)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_training_saves_the_input_not_a_normalised_copy():
    """Backward recomputes x̂ from x: the only array of x's size the node keeps is x itself."""
    x = mc.Tensor(np.random.default_rng(4).standard_normal((4, 3, 5, 5)).astype(np.float32), requires_grad=True)
    w = mc.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = F.batch_norm(x, None, None, w, None, training=True)
    ctx = y._node[0]
    big = [a for a in ctx.saved if getattr(a, "size", 0) >= x.data.size]
    assert len(big) == 1 and big[0] is x.data
