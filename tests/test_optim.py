"""Optimizers against PyTorch: parameter trajectories over several steps fed the same gradients,
param groups, zero_grad, state_dict resume; gradient clipping and the L1 penalty."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, optim

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,)]


def _trajectories(make_ours, make_torch, steps=6, dtype=np.float32, seed=0, groups=None):
    """Run both optimizers on the same gradient sequence; return the parameters after each step."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    if groups is None:
        opt, topt = make_ours(ours), make_torch(theirs)
    else:
        opt = make_ours([dict(params=[p], **g) for p, g in zip(ours, groups)])
        topt = make_torch([dict(params=[p], **g) for p, g in zip(theirs, groups)])
    out = []
    for _ in range(steps):
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        opt.zero_grad()
        topt.zero_grad()
        for p, tp, g in zip(ours, theirs, grads):
            p.grad = mc.Tensor(g.copy())
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        out.append(([p.numpy().copy() for p in ours], [tp.detach().numpy().copy() for tp in theirs]))
    return out


CONFIGS = [
    ("sgd", lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    ("sgd-momentum", lambda p: optim.SGD(p, lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("sgd-dampening-wd", lambda p: optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("sgd-nesterov", lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("adam", lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adam-wd-amsgrad", lambda p: optim.Adam(p, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True),
     lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("adamw", lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    ("adamw-wd", lambda p: optim.AdamW(p, lr=0.05, weight_decay=0.3, eps=1e-6),
     lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.3, eps=1e-6)),
    ("rmsprop", lambda p: optim.RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    ("rmsprop-centered-momentum-wd", lambda p: optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True,
                                                             weight_decay=0.05),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.05)),
]


@pytest.mark.parametrize("spec", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trajectory_matches_torch(spec, dtype):
    _, make_ours, make_torch = spec
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-10)
    for step, (ours, theirs) in enumerate(_trajectories(make_ours, make_torch, dtype=dtype)):
        for a, b in zip(ours, theirs):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, err_msg=f"{spec[0]} step {step + 1}", **tol)


def test_param_groups_with_their_own_lr_match_torch():
    groups = [dict(lr=0.1), dict(lr=0.01, momentum=0.5)]
    runs = _trajectories(lambda g: optim.SGD(g, lr=1.0, momentum=0.9),
                         lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9), groups=groups)
    for ours, theirs in runs:
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    p, q = nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(3, np.float32))
    opt = optim.SGD([p, q], lr=0.5)
    p.grad = mc.Tensor(np.ones(3, np.float32))
    opt.step()
    np.testing.assert_array_equal(p.numpy(), 0.5)
    np.testing.assert_array_equal(q.numpy(), 1.0)
    opt.zero_grad()
    assert p.grad is None
    p.grad = mc.Tensor(np.ones(3, np.float32))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), 0.0)


@pytest.mark.parametrize("make", [lambda p: optim.Adam(p, lr=0.01), lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.RMSprop(p, lr=0.01, momentum=0.3, centered=True)])
def test_state_dict_resume_equals_uninterrupted(make):
    rng = np.random.default_rng(0)
    init = rng.standard_normal((4,)).astype(np.float32)
    grads = [rng.standard_normal((4,)).astype(np.float32) for _ in range(6)]
    a = nn.Parameter(init.copy())
    opt_a = make([a])
    for g in grads:
        a.grad = mc.Tensor(g)
        opt_a.step()
    b = nn.Parameter(init.copy())
    opt_b = make([b])
    for g in grads[:3]:
        b.grad = mc.Tensor(g)
        opt_b.step()
    saved = opt_b.state_dict()
    c = nn.Parameter(b.numpy().copy())
    opt_c = make([c])
    opt_c.load_state_dict(saved)
    for g in grads[3:]:
        c.grad = mc.Tensor(g)
        opt_c.step()
    np.testing.assert_allclose(c.numpy(), a.numpy(), rtol=1e-6)


def test_training_a_model_with_an_optimizer_lowers_the_loss():
    import minicnn.functional as F

    from minicnn.random import manual_seed

    manual_seed(0)
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((64, 4)).astype(np.float32))
    y = mc.Tensor((x.numpy()[:, 0] > 0).astype(np.int64))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_optimizer_argument_errors():
    p = [nn.Parameter(np.ones(2, np.float32))]
    with pytest.raises(ValueError, match="invalid learning rate"):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([], lr=0.1)
    with pytest.raises(ValueError, match="betas must be in"):
        optim.Adam(p, betas=(1.0, 0.9))


# ---- clipping and regularisation ----------------------------------------------------------------------

@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [nn.Parameter(np.zeros(s, np.float32)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for p, tp, g in zip(ours, theirs, gs):
        p.grad, tp.grad = mc.Tensor(g.copy()), torch.tensor(g.copy())
    total = optim.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-5)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_value_matches_torch():
    g = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    p, tp = nn.Parameter(np.zeros((4, 3), np.float32)), torch.nn.Parameter(torch.zeros(4, 3))
    p.grad, tp.grad = mc.Tensor(g.copy()), torch.tensor(g.copy())
    optim.clip_grad_value_([p], 0.5)
    torch.nn.utils.clip_grad_value_([tp], 0.5)
    np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


def test_l1_and_l2_penalties_value_and_gradient():
    a = np.array([[1.5, -2.0], [0.25, -0.5]], np.float32)
    b = np.array([3.0, -1.0], np.float32)
    p, q = nn.Parameter(a.copy()), nn.Parameter(b.copy())
    pen = optim.l1_penalty([p, q], weight=0.1)
    assert pen.item() == pytest.approx(0.1 * (np.abs(a).sum() + np.abs(b).sum()))
    pen.backward()
    np.testing.assert_allclose(p.grad.numpy(), 0.1 * np.sign(a))
    np.testing.assert_allclose(q.grad.numpy(), 0.1 * np.sign(b))
    p.grad = None
    optim.l2_penalty([p], weight=0.2).backward()
    np.testing.assert_allclose(p.grad.numpy(), 0.2 * a, rtol=1e-6)
