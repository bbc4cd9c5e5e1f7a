"""In-place ops recorded in the graph (``F.relu_``/``relu(inplace=True)``, ``hardtanh``/``relu6``
with ``inplace``, ``F.add_``/``Tensor.add_``): gradients equal those of the out-of-place ops and
PyTorch's, earlier consumers keep the old value, and every case where an op needs the old value
for its backward raises instead of computing a wrong gradient (``Function.apply_inplace``)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

torch = pytest.importorskip("torch")
DEVICES = ["cpu", "cuda-emu"]


def _t(a, device="cpu", grad=False):
    return mc.Tensor(np.array(a, dtype=np.float64), device=device, requires_grad=grad)


@pytest.mark.parametrize("device", DEVICES)
@settings(deadline=None)
@given(shape=st.sampled_from([(5,), (2, 3), (2, 3, 4)]), seed=st.integers(0, 2**16))
def test_relu_inplace_gradients_equal_pytorch(device, shape, seed):
    """w → a = w·k → s = a + c (before) → relu_(a) → loss = Σ s·p + Σ a·q: the sum consumed the old
    a, the last term the new one; both libraries in float64 agree, and a is the ReLU's output."""
    r = np.random.default_rng(seed)
    w, k, c, p, q = (r.standard_normal(shape) for _ in range(5))
    W = _t(w, device, grad=True)
    a = W * _t(k, device)
    s = a + _t(c, device)
    out = F.relu_(a)
    assert out is a
    np.testing.assert_array_equal(a.numpy(), np.maximum(w * k, 0))
    ((s * _t(p, device)).sum() + (a * _t(q, device)).sum()).backward()
    tw = torch.tensor(w, requires_grad=True)
    ta = tw * torch.tensor(k)
    ts = ta + torch.tensor(c)
    torch.relu_(ta)
    ((ts * torch.tensor(p)).sum() + (ta * torch.tensor(q)).sum()).backward()
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
def test_residual_add_inplace_equals_pytorch(device):
    """out = x·w1; out.add_(x·w2) (a residual block's ``out += identity``); relu_; the gradients of
    both weights against PyTorch."""
    r = np.random.default_rng(1)
    x, w1, w2, g = (r.standard_normal((3, 4)) for _ in range(4))
    W1, W2 = _t(w1, device, True), _t(w2, device, True)
    X = _t(x, device)
    out = X * W1
    res = out.add_(X * W2)
    assert res is out
    (F.relu(out, inplace=True) * _t(g, device)).sum().backward()
    t1, t2 = torch.tensor(w1, requires_grad=True), torch.tensor(w2, requires_grad=True)
    tx = torch.tensor(x)
    to = tx * t1
    to += tx * t2
    (torch.relu_(to) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(W1.grad.numpy(), t1.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(W2.grad.numpy(), t2.grad.numpy(), rtol=1e-13)


def test_hardtanh_and_relu6_inplace_gradients():
    r = np.random.default_rng(2)
    w, g = r.standard_normal((4, 5)) * 4, r.standard_normal((4, 5))
    for fn, tfn in ((lambda a: F.relu6(a, inplace=True), lambda a: torch.nn.functional.relu6(a, inplace=True)),
                    (lambda a: F.hardtanh(a, -0.5, 0.7, inplace=True),
                     lambda a: torch.nn.functional.hardtanh(a, -0.5, 0.7, inplace=True))):
        W = _t(w, grad=True)
        a = W * 1.5
        assert fn(a) is a
        (a * _t(g)).sum().backward()
        tw = torch.tensor(w, requires_grad=True)
        ta = tw * 1.5
        (tfn(ta) * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(a.numpy(), ta.detach().numpy(), rtol=0, atol=0)
        np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13)


def test_a_consumer_that_saved_the_old_value_raises():
    W = _t([[-1.0, 2.0]], grad=True)
    a = W * 2.0
    m = a * _t([[3.0, 4.0]])  # Mul saves a for its backward
    F.relu_(a)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        m.sum().backward()


def test_a_producer_that_saved_its_output_raises():
    W = _t([[-1.0, 2.0]], grad=True)
    y = F.sigmoid(W * 1.0)  # sigmoid saves its output y
    F.relu_(y)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


def test_views_share_the_version_counter():
    """A reshape of a is a view of a's memory: changing a in place must make the backward of an op
    that saved the view raise (as PyTorch's views share their base's version counter)."""
    W = _t([[-1.0, 2.0], [3.0, -4.0]], grad=True)
    a = W * 1.0
    v = a.reshape(-1)
    assert v._version is a._version
    m = v * _t([1.0, 2.0, 3.0, 4.0])
    F.relu_(a)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        m.sum().backward()


def test_leaf_that_requires_grad_is_refused_while_recording():
    W = _t([-1.0, 2.0], grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        F.relu_(W)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        F.add_(W, 1.0)
    with mc.no_grad():
        F.relu_(W)
    np.testing.assert_array_equal(W.numpy(), [0.0, 2.0])
    assert W.requires_grad and W.is_leaf


def test_view_of_a_leaf_that_requires_grad_is_refused_like_pytorch():
    torch = pytest.importorskip("torch")
    W = _t([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], grad=True)
    Wt = torch.tensor(W.numpy(), requires_grad=True)
    for view, view_t in ((W[:, ::2], Wt[:, ::2]), (W.reshape(-1), Wt.reshape(-1)), (W[1], Wt[1])):
        with pytest.raises(RuntimeError, match=r"a view \(shape .*\) of a leaf tensor that requires grad"):
            F.relu_(view)
        with pytest.raises(RuntimeError, match="view of a leaf"):
            torch.relu_(view_t)
    np.testing.assert_array_equal(W.numpy(), Wt.detach().numpy())  # nothing changed
    with mc.no_grad():
        F.relu_(W[:, ::2])
    np.testing.assert_array_equal(W.numpy(), [[0.0, 2.0, 0.0], [4.0, -5.0, 6.0]])
    # a view of a tensor an op made is not a leaf's: allowed (its base is then refused, see above)
    a = W * 1.0
    F.relu_(a[1])
    np.testing.assert_array_equal(a.numpy(), [[0.0, 2.0, 0.0], [4.0, 0.0, 6.0]])
    # a leaf that needs no grad: its views change in place
    c = _t([-1.0, 1.0])
    F.relu_(c[:1])
    np.testing.assert_array_equal(c.numpy(), [0.0, 1.0])


def test_under_no_grad_a_graph_tensor_keeps_its_node():
    W = _t([-1.0, 2.0], grad=True)
    a = W * 3.0
    node = a._node
    with mc.no_grad():
        F.relu_(a)
    assert a._node is node and a.requires_grad


def test_add_inplace_shape_and_dtype_errors():
    x = mc.Tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"add_: x \+ y has shape \(4, 2, 3\)"):
        F.add_(x, mc.Tensor(np.zeros((4, 2, 3), np.float32)))
    with pytest.raises(ValueError, match="dtype float64"):
        F.add_(x, mc.Tensor(np.zeros((2, 3), np.float64)))
    F.add_(x, 2.0)  # a Python number takes x's dtype
    assert x.dtype == np.float32 and (x.numpy() == 2).all()


@pytest.mark.parametrize("device", DEVICES)
def test_inplace_relu_modules_train_like_out_of_place(device):
    """conv → BN → ReLU(inplace) → conv → BN, += shortcut, ReLU(inplace): the parameter gradients
    of one training step equal those with out-of-place ReLUs and adds (the same float64 values)."""
    def block(inplace):
        return nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=inplace),
                              nn.Conv2d(4, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(inplace=inplace)])

    r = np.random.default_rng(4)
    x = r.standard_normal((2, 3, 6, 6))
    grads = []
    for inplace in (False, True):
        m = block(inplace).to(device).to(dtype=np.float64)
        weights = list(m.parameters())
        for p, v in zip(weights, _fixed_weights(weights)):
            p.data[...] = m[0].weight.device.xp.asarray(v)
        X = mc.Tensor(x, device=device)
        out = m[2](m[1](m[0](X)))
        out = m[4](m[3](out))
        out = out.add_(X) if inplace else out + X
        out = m[5](out)
        (out * out).sum().backward()
        grads.append([p.grad.numpy() for p in weights])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _fixed_weights(params):
    r = np.random.default_rng(7)
    return [r.standard_normal(p.shape) * 0.3 for p in params]


@pytest.mark.parametrize("inplace_op,torch_op", [
    (F.relu_, lambda t: torch.relu_(t)),
    (lambda a: F.relu6(a, inplace=True), lambda t: torch.nn.functional.relu6(t, inplace=True))])
def test_inplace_activation_of_a_strided_view(inplace_op, torch_op):
    """A strided view (every other column) changed in place: the kernel's result is copied in, the
    op still saves its output for backward, and the gradients equal PyTorch's (float64)."""
    r = np.random.default_rng(3)
    w, g = r.standard_normal((3, 6)) * 4, r.standard_normal((3, 3))
    W = _t(w, grad=True)
    a = W * 1.5
    v = a[:, ::2]
    assert not v.data.flags.c_contiguous
    assert inplace_op(v) is v
    (v * _t(g)).sum().backward()
    tw = torch.tensor(w, requires_grad=True)
    tv = (tw * 1.5)[:, ::2]
    torch_op(tv)
    (tv * torch.tensor(g)).sum().backward()
    np.testing.assert_array_equal(v.numpy(), tv.detach().numpy())
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_leaky_relu_inplace_gradients_equal_pytorch(device, slope):
    """a = w·k; s = a + c consumed the old a; leaky_relu_(a); v a strided view of b = w·m changed
    in place (the kernel's result copied in); loss = Σ s·p + Σ a·q + Σ v·u, both libraries in
    float64."""
    r = np.random.default_rng(5)
    w, k, c, p, q, m, u = (r.standard_normal((4, 6)) for _ in range(7))
    W = _t(w, device, grad=True)
    a = W * _t(k, device)
    s = a + _t(c, device)
    assert F.leaky_relu_(a, slope) is a
    b = W * _t(m, device)
    v = b[:, ::2]
    assert nn.LeakyReLU(slope, inplace=True)(v) is v
    ((s * _t(p, device)).sum() + (a * _t(q, device)).sum() + (v * _t(u[:, ::2], device)).sum()).backward()
    tw = torch.tensor(w, requires_grad=True)
    ta = tw * torch.tensor(k)
    ts = ta + torch.tensor(c)
    torch.nn.functional.leaky_relu_(ta, slope)
    tb = tw * torch.tensor(m)
    tv = torch.nn.functional.leaky_relu(tb[:, ::2], slope, inplace=True)
    ((ts * torch.tensor(p)).sum() + (ta * torch.tensor(q)).sum() + (tv * torch.tensor(u[:, ::2])).sum()).backward()
    np.testing.assert_array_equal(a.numpy(), ta.detach().numpy())
    np.testing.assert_array_equal(b.numpy(), tb.detach().numpy())
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13, atol=1e-13)


def test_leaky_relu_negative_slope():
    """Out of place, a negative slope's gradient (from the saved input) equals PyTorch's; in place
    it raises before anything changes (its backward would need the overwritten input)."""
    r = np.random.default_rng(6)
    w, g = r.standard_normal((3, 5)), r.standard_normal((3, 5))
    W = _t(w, grad=True)
    (F.leaky_relu(W * 2.0, -0.5) * _t(g)).sum().backward()
    tw = torch.tensor(w, requires_grad=True)
    (torch.nn.functional.leaky_relu(tw * 2.0, -0.5) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13)
    a = W * 2.0
    before = a.numpy().copy()
    with pytest.raises(ValueError, match=r"leaky_relu_: inplace needs negative_slope >= 0.*-0\.5"):
        F.leaky_relu_(a, -0.5)
    np.testing.assert_array_equal(a.numpy(), before)


def test_leaky_relu_float16():
    """float16 is promoted to float32 out of place (``float_inputs``); in place it is refused."""
    x = np.array([-2.0, -0.5, 0.0, 1.5], dtype=np.float16)
    y = F.leaky_relu(mc.Tensor(x), 0.2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), np.where(x > 0, x, np.float32(0.2) * x.astype(np.float32)))
    with pytest.raises(TypeError, match="leaky_relu_: inplace needs a float32 or float64 tensor.*float16"):
        F.leaky_relu_(mc.Tensor(x.copy()), 0.2)


@pytest.mark.parametrize("device", DEVICES)
def test_base_of_a_view_changed_in_place_raises_in_the_graph(device):
    """leaky_relu_ / relu_ on a view changes its base's memory; the base's node does not include
    the op (PyTorch rebases it, this engine does not), so using the base in the graph, or calling
    backward on it, raises instead of giving a gradient without the op. The view itself, views
    taken after the op, no_grad use, and an in-place op under no_grad stay allowed."""
    r = np.random.default_rng(8)
    w = r.standard_normal((4, 6))
    for inplace in (lambda v: F.leaky_relu_(v, 0.2), F.relu_):
        W = _t(w, device, grad=True)
        b = W * 2.0
        v = b[:, ::2]
        inplace(v)
        with pytest.raises(RuntimeError, match=r"Mul: input 0 \(shape \(4, 6\)\) was changed by an in-place op"):
            b * 3.0
        with pytest.raises(RuntimeError, match=r"backward: input 0 \(shape \(4, 6\)\) was changed"):
            b.backward(mc.Tensor(np.ones((4, 6)), device=device))
        with mc.no_grad():
            np.testing.assert_array_equal((b * 1.0).numpy(), b.numpy())
        (v * 2.0).sum().backward()   # the view is current
        tw = torch.tensor(w, requires_grad=True)
        tv = (tw * 2.0)[:, ::2]
        (torch.nn.functional.leaky_relu_(tv, 0.2) if inplace is not F.relu_ else torch.relu_(tv))
        (tv * 2.0).sum().backward()
        np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-13)
    W = _t(w, device, grad=True)
    b = W * 2.0
    F.relu_(b)
    after = b[:, 1:]                  # a view taken after the op shares the rebased counter
    (after * 1.0).sum().backward()
    W = _t(w, device, grad=True)
    c = W * 2.0
    with mc.no_grad():
        F.relu_(c[:, :2])             # not recorded: c keeps its place in the graph (PyTorch's rule)
    (c * 1.0).sum().backward()
    np.testing.assert_array_equal(W.grad.numpy(), np.full((4, 6), 2.0))
