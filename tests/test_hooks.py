"""Module hooks against PyTorch: the same small model (nested containers, a residual through a
module with a non-tensor argument, a ReLU called twice) built with minicnn.nn and torch.nn, the
same weights; every hook records (kind, module name, shapes) and the gradients it sees, and the
two records must be equal (shapes, order) and agree in value (gradients, float64)."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def build(lib):
    """The twin model in ``lib`` (minicnn.nn or torch.nn), module names equal in both."""

    class Mix(lib.Module):
        """y = s·x + skip: two tensor arguments and a float one (grad_input has a None for it)."""

        def forward(self, x, s, skip):
            return x * s + skip

    class Block(lib.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = lib.Conv2d(4, 4, 3, padding=1)
            self.bn = lib.BatchNorm2d(4)
            self.relu = lib.ReLU()
            self.conv2 = lib.Conv2d(4, 4, 3, padding=1)
            self.mix = Mix()

        def forward(self, x):
            out = self.relu(self.bn(self.conv1(x)))  # relu: first call
            out = self.mix(self.conv2(out), 0.5, x)
            return self.relu(out)  # relu: second call

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Sequential(lib.Conv2d(2, 4, 3, padding=1), lib.ReLU())
            self.block = Block()
            self.pool = lib.MaxPool2d(2)
            self.head = lib.Sequential(lib.Flatten(), lib.Linear(16, 3))

        def forward(self, x):
            return self.head(self.pool(self.block(self.stem(x))))

    return Net()


def twins(seed=0):
    torch.manual_seed(seed)
    theirs = build(torch.nn).double()
    ours = build(nn).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _np(t):
    if t is None:
        return None
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def _shape(v):
    if isinstance(v, (tuple, list)):
        return tuple(_shape(e) for e in v)
    return None if v is None or not hasattr(v, "shape") else tuple(v.shape)


def record_all(model):
    """Register pre, forward and full backward hooks on every module; return (events, grads, handles)."""
    events, grads, handles = [], [], []
    for name, m in model.named_modules():
        def pre(mod, args, name=name):
            events.append(("pre", name, _shape(args)))

        def fwd(mod, args, out, name=name):
            events.append(("fwd", name, _shape(args), _shape(out)))

        def bwd(mod, gin, gout, name=name):
            events.append(("bwd", name, _shape(gin), _shape(gout)))
            grads.append((name, [_np(g) for g in gin], [_np(g) for g in gout]))

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(fwd),
                    m.register_full_backward_hook(bwd)]
    return events, grads, handles


def _input(requires_grad=True, seed=1):
    x = np.random.default_rng(seed).standard_normal((2, 2, 4, 4))
    return mc.Tensor(x, requires_grad=requires_grad), torch.tensor(x, requires_grad=requires_grad)


def _run(ours, theirs, requires_grad=True):
    x, tx = _input(requires_grad)
    y, ty = ours(x), theirs(tx)
    w = np.random.default_rng(2).standard_normal(y.shape)
    (y * mc.Tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    return x, tx, y, ty


def _assert_grads_equal(ours_grads, their_grads):
    assert [n for n, _, _ in ours_grads] == [n for n, _, _ in their_grads]
    for (name, gin, gout), (_, tgin, tgout) in zip(ours_grads, their_grads):
        for what, a, b in (("grad_input", gin, tgin), ("grad_output", gout, tgout)):
            assert len(a) == len(b)
            for i, (u, v) in enumerate(zip(a, b)):
                assert (u is None) == (v is None), f"{name} {what}[{i}]"
                if u is not None:
                    np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12, err_msg=f"{name} {what}[{i}]")


def test_call_order_shapes_and_gradients_match_torch():
    ours, theirs = twins()
    ev, grads, _ = record_all(ours)
    tev, tgrads, _ = record_all(theirs)
    x, tx, y, ty = _run(ours, theirs)
    np.testing.assert_allclose(y.numpy(), _np(ty), rtol=1e-10, atol=1e-12)
    assert ev == tev
    _assert_grads_equal(grads, tgrads)
    np.testing.assert_allclose(x.grad.numpy(), _np(tx.grad), rtol=1e-10, atol=1e-12)
    # the nested structure: the root's hooks wrap everything, the block's wrap its children
    names = [e[1] for e in ev if e[0] == "pre"]
    assert names[0] == "" and names.index("block") < names.index("block.conv1")
    assert [e[0] for e in ev if e[1] == ""] == ["pre", "fwd", "bwd"]
    # a module called twice fires its hooks twice, as PyTorch's does
    assert sum(1 for e in ev if e[:2] == ("fwd", "block.relu")) == 2
    assert sum(1 for e in ev if e[:2] == ("bwd", "block.relu")) == 2
    # the float argument of Mix has no gradient
    mix = [g for n, g, _ in grads if n == "block.mix"][0]
    assert mix[1] is None and mix[0] is not None and mix[2] is not None


def test_no_input_requires_grad_hooks_get_none_grad_input():
    ours, theirs = twins()
    ev, grads, _ = record_all(ours)
    tev, tgrads, _ = record_all(theirs)
    _run(ours, theirs, requires_grad=False)
    assert ev == tev
    _assert_grads_equal(grads, tgrads)
    stem_conv = [g for n, g, _ in grads if n == "stem.0"][0]
    assert stem_conv == [None]
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), _np(dict(theirs.named_parameters())[name].grad),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


def _replacements(model):
    """Hooks that change things: the block's conv1 input ×2 (a single value from a pre-hook), the
    pool's output +1, the mix's grad_input[0] ×3 and grad_input[2] dropped, conv2's grad_output ×0.5."""
    block = model.block
    block.conv1.register_forward_pre_hook(lambda m, args: args[0] * 2.0)
    model.pool.register_forward_hook(lambda m, args, out: out + 1.0)
    block.mix.register_full_backward_hook(lambda m, gin, gout: (gin[0] * 3.0, None, None))
    block.conv2.register_full_backward_pre_hook(lambda m, gout: (gout[0] * 0.5,))


def test_replacing_args_output_grad_input_and_grad_output_matches_torch():
    ours, theirs = twins(3)
    plain_y = ours(_input()[0]).numpy()
    _replacements(ours)
    _replacements(theirs)
    x, tx, y, ty = _run(ours, theirs)
    np.testing.assert_allclose(y.numpy(), _np(ty), rtol=1e-10, atol=1e-12)
    assert np.abs(y.numpy() - plain_y).max() > 0.1  # the replacements changed the result
    np.testing.assert_allclose(x.grad.numpy(), _np(tx.grad), rtol=1e-10, atol=1e-12)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), _np(tparams[name].grad), rtol=1e-10, atol=1e-12, err_msg=name)


def test_with_kwargs_and_prepend_match_torch():
    ours, theirs = twins()
    logs = []
    for model, log in ((ours, []), (theirs, [])):
        conv = model.stem[0]
        conv.register_forward_hook(lambda m, a, o, log=log: log.append("a"))
        conv.register_forward_hook(lambda m, a, o, log=log: log.append("b"), prepend=True)
        conv.register_forward_pre_hook(lambda m, a, kw, log=log: log.append(("kw", sorted(kw))) or ((a[0] - 1.0,), kw),
                                       with_kwargs=True)
        conv.register_forward_hook(lambda m, a, kw, o, log=log: log.append(("kwo", _shape(o))), with_kwargs=True)
        logs.append((model, log))
    x, tx = _input()
    y, ty = ours(x), theirs(tx)
    assert logs[0][1] == logs[1][1] == [("kw", []), "b", "a", ("kwo", (2, 4, 4, 4))]
    np.testing.assert_allclose(y.numpy(), _np(ty), rtol=1e-10, atol=1e-12)


def test_handle_remove_and_context_manager():
    m = nn.Linear(3, 2)
    calls = []
    h1 = m.register_forward_hook(lambda mod, a, o: calls.append(1))
    h2 = m.register_forward_pre_hook(lambda mod, a: calls.append(2))
    x = mc.Tensor(np.ones((1, 3)))
    m(x)
    assert calls == [2, 1]
    h1.remove()
    h1.remove()  # a second remove is a no-op
    m(x)
    assert calls == [2, 1, 2]
    h2.remove()
    assert m._has_hooks is False  # back to the plain path
    m(x)
    assert calls == [2, 1, 2]
    with m.register_forward_hook(lambda mod, a, o: calls.append(3)):
        m(x)
    m(x)
    assert calls == [2, 1, 2, 3]


def test_hook_removing_another_during_a_call_matches_torch():
    """The hooks of one call are the ones registered when it starts (PyTorch iterates a copy)."""
    results = []
    for lib, tensor in ((nn, mc.Tensor), (torch.nn, torch.tensor)):
        m, calls, handles = lib.ReLU(), [], {}
        handles["a"] = m.register_forward_hook(lambda mod, a, o: (calls.append("a"), handles["b"].remove()))
        handles["b"] = m.register_forward_hook(lambda mod, a, o: calls.append("b"))
        m(tensor(np.ones(2)))
        m(tensor(np.ones(2)))
        results.append(calls)
    assert results[0] == results[1]


def test_tuple_output_with_integer_indices_matches_torch():
    """MaxPool2d(return_indices=True): grad_output has None for the int64 indices."""
    seen = []
    for lib, make in ((nn, lambda a: mc.Tensor(a, requires_grad=True)),
                      (torch.nn, lambda a: torch.tensor(a, requires_grad=True))):
        pool, log = lib.MaxPool2d(2, return_indices=True), []
        pool.register_full_backward_hook(lambda m, gin, gout, log=log: log.append(
            ([_np(g) for g in gin], [None if g is None else _np(g) for g in gout])))
        x = make(np.arange(32.0).reshape(1, 2, 4, 4)[..., ::-1].copy())
        y, idx = pool(x)
        (y * 2.0).sum().backward()
        seen.append((log, _np(x.grad)))
    (ours, ogx), (theirs, tgx) = seen
    assert len(ours) == len(theirs) == 1
    assert ours[0][1][1] is None and theirs[0][1][1] is None
    np.testing.assert_array_equal(ours[0][0][0], theirs[0][0][0])
    np.testing.assert_array_equal(ours[0][1][0], theirs[0][1][0])
    np.testing.assert_array_equal(ogx, tgx)


def test_bad_hooks_raise_clear_errors():
    m = nn.Linear(3, 2).double()
    with pytest.raises(TypeError, match="callable"):
        m.register_forward_hook(42)
    x = mc.Tensor(np.ones((4, 3)), requires_grad=True)
    h = m.register_full_backward_hook(lambda mod, gin, gout: (gin[0], gin[0]))
    with pytest.raises(RuntimeError, match="Linear returned an invalid number of grad_input, got 2, but expected 1"):
        m(x).sum().backward()
    h.remove()
    m.register_full_backward_hook(lambda mod, gin, gout: (mc.Tensor(np.ones((2, 3))),))
    with pytest.raises(ValueError, match=r"Linear: grad_input\[0\] has shape \(2, 3\), expected \(4, 3\)"):
        m(x).sum().backward()


def test_no_hook_means_the_plain_call(monkeypatch):
    """Without hooks ``__call__`` is ``forward`` (the hook path is never entered)."""
    import minicnn.nn.module as module_py

    def boom(*a):
        raise AssertionError("hook path entered")

    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    h = m[0].register_forward_hook(lambda *a: None)
    h.remove()
    monkeypatch.setattr(module_py, "call_with_hooks", boom)
    m(mc.Tensor(np.ones((1, 3))))


def test_full_backward_hook_on_every_device(device):
    """The hook identities are written once against ``xp``: the same grads on cpu, cuda-emu, cuda."""
    results = []
    for dev in ("cpu", device):
        torch.manual_seed(0)
        conv = nn.Conv2d(2, 3, 3, padding=1).double()
        conv.load_state_dict(torch.nn.Conv2d(2, 3, 3, padding=1).double().state_dict())
        conv.to(dev)
        seen = []
        conv.register_full_backward_hook(lambda m, gin, gout: (seen.append((gin[0].numpy(), gout[0].numpy())),
                                                               (gin[0] * 2.0,))[1])
        x = mc.Tensor(np.linspace(-1, 1, 32).reshape(1, 2, 4, 4), requires_grad=True).to(dev)
        x.retain_grad()
        y = conv(x)
        (y * y).sum().backward()
        results.append((seen[0], x.grad.numpy()))
    (cpu_seen, cpu_gx), (dev_seen, dev_gx) = results
    np.testing.assert_allclose(dev_seen[0], cpu_seen[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dev_seen[1], cpu_seen[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dev_gx, 2.0 * cpu_seen[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dev_gx, cpu_gx, rtol=1e-12, atol=1e-12)
