"""Gradient ownership: a leaf's ``.grad`` never shares memory with another gradient, with the
array the user passed to ``backward(gy)``, or with an input; the engine skips the defensive copy
only for ops that declare ``fresh_grads`` and only when its cheap checks agree (``_handed_over``).

Every test below would fail if the engine stored an aliased array: it mutates one array in place
and checks that nothing else moved."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.autograd import Function
from minicnn.optim import clip_grad_value_

RNG = np.random.default_rng(0)


def _x(shape=(2, 3, 4, 4)):
    return mc.Tensor(RNG.standard_normal(shape).astype(np.float32), requires_grad=True)


# ---- fake ops that declare fresh_grads but break the promise: the engine must copy anyway ------
class _CopyOp(Function):
    """y = x (a copy), declaring fresh gradients; subclasses choose what backward returns."""

    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        return x.copy()


class _ReturnsGy(_CopyOp):
    """gx = gy itself (declared fresh: a lie)."""

    @staticmethod
    def backward(ctx, gy):
        return gy


class _OneArrayTwice(Function):
    """z = x + y; one new array returned for both inputs."""

    fresh_grads = True

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, gz):
        g = gz.copy()
        return g, g


class _ReturnsView(_CopyOp):
    """gx = a view of a new array (its base is shared with whoever holds the base)."""

    @staticmethod
    def backward(ctx, gy):
        ctx.buffer = np.concatenate([gy.ravel(), gy.ravel()])
        return ctx.buffer[:gy.size].reshape(gy.shape)


class _ReturnsSaved(Function):
    """y = x·s; gx = the saved array when gy is all ones (declared fresh: a lie)."""

    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(np.ones_like(x))
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        return ctx.saved[0]


class _Fresh(_CopyOp):
    """gx = gy·1 in a new array, remembered so the test can see it was handed over."""

    last = None

    @staticmethod
    def backward(ctx, gy):
        _Fresh.last = gy * 1
        return _Fresh.last


def test_fresh_gradient_is_handed_over_without_copy():
    x = _x()
    _Fresh.apply(x).backward(np.ones(x.shape, np.float32))
    assert x.grad.data is _Fresh.last


def test_non_fresh_gradient_is_copied():
    x = _x()
    gy = np.ones(x.shape, np.float32)
    F.reshape(x, x.shape).backward(gy)  # reshape returns a view of gy
    assert not np.shares_memory(x.grad.data, gy)


@pytest.mark.parametrize("fn", [_ReturnsGy, _ReturnsView, _ReturnsSaved])
def test_lying_fresh_op_still_gets_a_private_gradient(fn):
    x = _x()
    gy = np.ones(x.shape, np.float32)
    y = fn.apply(x)
    y.backward(gy)
    grad = x.grad.data
    assert not np.shares_memory(grad, gy)
    for a in y._node[0].saved:
        assert not np.shares_memory(grad, a)
    grad += 5  # an in-place change of the gradient (clip_grad_value_, an optimizer) stays local
    np.testing.assert_array_equal(gy, 1)
    if fn is _ReturnsView:
        np.testing.assert_array_equal(y._node[0].buffer, 1)


def test_one_array_returned_for_two_leaves_is_copied():
    x, y = _x(), _x()
    _OneArrayTwice.apply(x, y).backward(np.ones(x.shape, np.float32))
    assert not np.shares_memory(x.grad.data, y.grad.data)
    x.grad.data += 1
    np.testing.assert_array_equal(y.grad.data, 1)


# ---- real ops -----------------------------------------------------------------------------------
@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pool_gradient_does_not_alias_the_users_gy(pool):
    x = _x()
    gy = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)
    pool(x, 2, 2).backward(gy)
    expected = x.grad.numpy().copy()
    assert not np.shares_memory(x.grad.data, gy)
    gy[...] = 123.0  # the user reuses their buffer
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_leaf_used_twice_by_a_pool_accumulates_both():
    x = _x()
    gy = np.ones((2, 3, 2, 2), np.float32)
    (F.avg_pool2d(x, 2, 2) + F.avg_pool2d(x, 2, 2)).backward(gy)
    np.testing.assert_array_equal(x.grad.numpy(), np.full(x.shape, 0.5, np.float32))


def test_x_plus_x_and_add_grads_are_private():
    x, w = _x((5,)), _x((5,))
    gy = np.ones(5, np.float32)
    (x + x).backward(gy)
    np.testing.assert_array_equal(x.grad.numpy(), 2)
    (x + w).backward(gy)  # Add returns gy itself for both inputs
    assert not np.shares_memory(w.grad.data, gy)
    assert not np.shares_memory(w.grad.data, x.grad.data)
    w.grad.data += 1
    np.testing.assert_array_equal(gy, 1)
    np.testing.assert_array_equal(x.grad.numpy(), 3)


def test_second_backward_leaves_the_first_grad_tensor_unchanged():
    x = _x()
    gy = np.ones((2, 3, 2, 2), np.float32)
    y = F.max_pool2d(x, 2, 2)
    y.backward(gy, retain_graph=True)
    first = x.grad
    snapshot = first.numpy().copy()
    y.backward(gy)
    np.testing.assert_array_equal(first.numpy(), snapshot)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * snapshot)


def test_retained_grad_of_a_non_leaf_is_private():
    x = _x()
    h = x * 2.0
    h.retain_grad()
    F.max_pool2d(h, 2, 2).backward(np.ones((2, 3, 2, 2), np.float32))
    assert not np.shares_memory(h.grad.data, x.grad.data)
    expected = x.grad.numpy().copy()
    h.grad.data += 7
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_linear_grads_are_private_and_clip_changes_only_its_own():
    x, W, b = _x((4, 3)), _x((2, 3)), _x((2,))
    gy = np.ones((4, 2), np.float32)
    F.linear(x, W, b).backward(gy)
    grads = [x.grad.data, W.grad.data, b.grad.data]
    for i, g in enumerate(grads):
        assert not np.shares_memory(g, gy)
        assert not any(np.shares_memory(g, o) for o in grads[i + 1:])
        assert not any(np.shares_memory(g, t.data) for t in (x, W, b))
    W_grad = W.grad.numpy().copy()
    clip_grad_value_([b], 0.5)
    np.testing.assert_array_equal(W.grad.numpy(), W_grad)
    np.testing.assert_array_equal(gy, 1)


def test_leaf_root_backward_copies_the_users_gradient():
    x = _x((3,))
    g = np.ones(3, np.float32)
    x.backward(g)
    g[:] = 9
    np.testing.assert_array_equal(x.grad.numpy(), 1)


# ---- sums of pending gradients, added in place when the engine alone holds them ----------------------
@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_pending_gradient_sums_equal_pytorch_and_leave_inputs_alone(device):
    """h receives three gradients: from ReLU and Linear (fresh arrays the engine may add into) and
    from Add (the incoming gradient itself, which it must not change); the user's gy and the
    forward values stay as they were, and W's gradient equals PyTorch's (float64)."""
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(5)
    x, w, v, gy = r.standard_normal((4, 3)), r.standard_normal((5, 3)), r.standard_normal((5, 5)), r.standard_normal((4, 5))
    X, W, V = (mc.Tensor(a, device=device, requires_grad=(a is not x)) for a in (x, w, v))
    h = F.linear(X, W)
    h_before = h.numpy().copy()
    out = F.relu(h) + F.linear(h, V) + h  # h's three consumers
    gy_arr = X.device.xp.asarray(gy.copy())
    out.backward(mc.Tensor(gy_arr, device=device))
    tx, tw, tv = torch.tensor(x), torch.tensor(w, requires_grad=True), torch.tensor(v, requires_grad=True)
    th = tx @ tw.T
    (torch.relu(th) + th @ tv.T + th).backward(torch.tensor(gy))
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(V.grad.numpy(), tv.grad.numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(mc.Tensor(gy_arr, device=device).numpy(), gy)  # the user's gy unchanged
    np.testing.assert_array_equal(h.numpy(), h_before)
