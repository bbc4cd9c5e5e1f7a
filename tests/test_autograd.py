"""The autograd engine: graph order, accumulation, no_grad, devices, dtype, error messages."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.autograd import Function
from minicnn.testing import GradcheckError, gradcheck
from minicnn.testing.strategies import arrays, shapes


def test_node_used_twice_gets_gradient_of_all_consumers():
    # b = a + a; c = b + b  =>  c = 4a, dc/da = 4 (a plain DFS that visits `a` early would give 2)
    a = mc.tensor([1.0, -2.0, 3.0], requires_grad=True)
    b = a + a
    c = b + b
    c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, 4.0, 4.0])


def test_diamond_graph():
    # y = (x*2) * (x+1):  dy/dx = 2(x+1) + 2x = 4x + 2
    x = mc.tensor([0.5, 2.0], dtype=np.float64, requires_grad=True)
    y = (x * 2) * (x + 1)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy() + 2)


def test_backward_twice_accumulates_like_pytorch():
    torch = pytest.importorskip("torch")
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    y, yt = (x * x).sum(), (xt * xt).sum()
    y.backward(retain_graph=True)
    yt.backward(retain_graph=True)
    y.backward()
    yt.backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * x.numpy())


def test_second_backward_through_a_freed_graph_raises_like_pytorch():
    torch = pytest.importorskip("torch")
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    y, yt = F.relu(x * x).sum(), torch.relu(xt * xt).sum()
    y.backward()
    yt.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        yt.backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())  # the failed call added nothing


def test_backward_frees_activations_node_by_node():
    """Without retain_graph, an intermediate that only the graph references (a saved activation)
    is released by the backward pass; with it, it stays for a second backward."""
    import gc
    import weakref

    for retain in (False, True):
        x = mc.tensor(np.ones((4, 4)), requires_grad=True)
        h = F.relu(x * 2.0)         # saved by the multiply below and by relu (its output)
        ref = weakref.ref(h.data)
        y = (h * h).sum()
        del h
        gc.collect()
        assert ref() is not None    # the graph holds it until backward
        y.backward(retain_graph=retain)
        gc.collect()
        assert (ref() is not None) == retain
        np.testing.assert_allclose(x.grad.numpy(), 8.0 * x.numpy())


def test_gradient_flows_into_leaf_from_many_paths_in_a_long_chain():
    x = mc.tensor(np.array([0.3]), requires_grad=True)
    y = x
    for _ in range(2000):  # deep graphs must not hit the recursion limit
        y = y * 1.0 + x * 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_no_grad_records_nothing():
    x = mc.tensor([1.0], requires_grad=True)
    with mc.no_grad():
        y = x * 3
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_detach_cuts_the_graph():
    x = mc.tensor([2.0], requires_grad=True)
    y = x.detach() * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_default_dtype_float32_and_float64_kept():
    assert mc.tensor([1.0, 2.0]).dtype == np.float32
    assert mc.tensor(np.zeros(3)).dtype == np.float64
    assert (mc.tensor([1.0]) * 2.5).dtype == np.float32  # a Python scalar does not promote


@pytest.mark.parametrize("dst", ["cuda-emu", "cpu"])
def test_to_device_is_differentiable(dst):
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(dst)
    assert y.device.name == dst
    (y * y).sum().backward()
    assert x.grad.device.name == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_to_dtype_round_trip_gradient_dtype():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32


def test_mixed_devices_raise_naming_the_op():
    a = mc.tensor([1.0])
    b = mc.tensor([1.0], device="cuda-emu")
    with pytest.raises(ValueError, match="Add: input 1 is on cuda-emu"):
        a + b


def test_retain_grad_on_intermediate():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


class _WrongScale(Function):
    """y = 2x with a deliberately wrong backward (3·gy)."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, gy):
        return 3 * gy


class _WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, gy):
        return gy.sum(axis=0)


class _WrongCount(Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, gy):
        return gy, gy


@pytest.mark.parametrize("mode", ["elementwise", "random"])
def test_gradcheck_catches_a_wrong_backward_and_names_the_op(mode):
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"_WrongScale.*Jacobian mismatch for output 0 with respect to input 0"):
        gradcheck(_WrongScale.apply, [x], mode=mode, name="_WrongScale")


def test_wrong_gradient_shape_and_count_are_reported_with_the_op_name():
    x = mc.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"_WrongShape.backward: gradient of input 0 has shape \(3,\)"):
        _WrongShape.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match=r"_WrongCount.backward returned 2 gradients for 1 inputs"):
        _WrongCount.apply(x).sum().backward()


@given(st.data())
def test_broadcast_gradients_unbroadcast(data):
    sa = data.draw(shapes(max_dims=3, max_side=3))
    # a second shape broadcastable against the first: drop leading axes and set some to 1
    k = data.draw(st.integers(0, len(sa)))
    sb = tuple(1 if data.draw(st.booleans()) else n for n in sa[k:])
    a = mc.Tensor(data.draw(arrays(sa, contiguous=False)), requires_grad=True)
    b = mc.Tensor(data.draw(arrays(sb)), requires_grad=True)
    gradcheck(lambda u, v: u * v + v, [a, b], name="mul-add")


@given(st.data())
def test_noncontiguous_inputs_give_the_same_results(data):
    shape = data.draw(shapes(min_dims=2, max_dims=3))
    a = data.draw(arrays(shape, contiguous=False))
    t = mc.Tensor(a)
    np.testing.assert_allclose(F.sum(t * t, axis=0).numpy(), np.sum(a * a, axis=0))


def test_error_messages_for_shapes():
    with pytest.raises(ValueError, match=r"matmul: inner dimensions differ: \(2, 3\) @ \(4, 5\)"):
        F.matmul(mc.zeros(2, 3), mc.zeros(4, 5))
    with pytest.raises(ValueError, match=r"reshape: cannot view shape \(2, 3\) as \(4,\)"):
        F.reshape(mc.zeros(2, 3), (4,))
    with pytest.raises(ValueError, match="cat: input 1 has shape"):
        F.cat([mc.zeros(2, 3), mc.zeros(3, 3)], axis=1)


def test_logsumexp_of_infinite_slices_matches_numpy():
    a = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [1.0, 2.0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.log(np.sum(np.exp(a), axis=1))
    np.testing.assert_allclose(F.logsumexp(mc.tensor(a), axis=1).numpy(), want, rtol=1e-15)
