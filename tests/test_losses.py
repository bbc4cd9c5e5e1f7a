"""Losses against PyTorch (forward and input gradient, float32 and float64), stability, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _pair(a, requires_grad=True):
    return mc.Tensor(a.copy(), requires_grad=requires_grad), torch.tensor(a.copy(), requires_grad=requires_grad)


def _compare(ours, theirs, inputs, atol, rtol=1e-4):
    """``inputs``: list of (our Tensor, torch tensor); compares the loss and every input gradient."""
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), atol=atol, rtol=rtol)
    g = np.random.default_rng(0).standard_normal(ours.shape).astype(ours.dtype)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    for i, (a, b) in enumerate(inputs):
        if b.grad is None:
            continue
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol, rtol=rtol, err_msg=f"grad of input {i}")


DTYPES = [(np.float32, 1e-5), (np.float64, 1e-10)]


@st.composite
def _class_problem(draw):
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    N, C = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    spatial = draw(st.sampled_from([(), (3,), (2, 3)]))
    x = rng.standard_normal((N, C) + spatial) * draw(st.sampled_from([1.0, 5.0]))
    t = rng.integers(0, C, size=(N,) + spatial)
    if draw(st.booleans()):
        t[rng.uniform(size=t.shape) < 0.3] = -100
    weight = rng.uniform(0.2, 2.0, C) if draw(st.booleans()) else None
    return x, t, weight


@given(_class_problem(), st.sampled_from(["mean", "sum", "none"]), st.sampled_from([0.0, 0.15]))
@pytest.mark.parametrize("dtype,atol", DTYPES)
def test_cross_entropy_matches_torch(dtype, atol, problem, reduction, label_smoothing):
    x, t, weight = problem
    if reduction == "mean" and (t == -100).all():
        t[(0,) * t.ndim] = 0  # a mean over no elements is nan in both; keep one target
    (a, b) = _pair(x.astype(dtype))
    w_ours = None if weight is None else mc.Tensor(weight.astype(dtype))
    w_torch = None if weight is None else torch.tensor(weight.astype(dtype))
    ours = F.cross_entropy(a, mc.Tensor(t), w_ours, reduction=reduction, label_smoothing=label_smoothing)
    theirs = TF.cross_entropy(b, torch.tensor(t), w_torch, reduction=reduction, label_smoothing=label_smoothing)
    _compare(ours, theirs, [(a, b)], atol)


@pytest.mark.parametrize("dtype,atol", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets_match_torch(dtype, atol, reduction):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    q = rng.dirichlet(np.ones(3), size=(4, 2)).transpose(0, 2, 1).astype(dtype)
    w = rng.uniform(0.5, 2, 3).astype(dtype)
    (a, b), (qa, qb) = _pair(x), _pair(q)
    ours = F.cross_entropy(a, qa, mc.Tensor(w), reduction=reduction, label_smoothing=0.1)
    theirs = TF.cross_entropy(b, qb, torch.tensor(w), reduction=reduction, label_smoothing=0.1)
    _compare(ours, theirs, [(a, b), (qa, qb)], atol)


def test_segmentation_cross_entropy_with_ignore_index_matches_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    t = rng.integers(0, 4, (2, 5, 6))
    t[:, :2, :] = 255
    w = rng.uniform(0.5, 2, 4).astype(np.float32)
    a, b = _pair(x)
    ours = nn.CrossEntropyLoss(weight=w, ignore_index=255)(a, mc.Tensor(t))
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=255)(b, torch.tensor(t))
    _compare(ours, theirs, [(a, b)], 1e-5)
    assert not a.grad.numpy()[:, :, :2, :].any()  # ignored pixels get no gradient


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(reduction):
    rng = np.random.default_rng(5)
    logp = np.log(rng.dirichlet(np.ones(4), size=6)).astype(np.float32)
    t = np.array([0, 3, 1, -100, 2, 3])
    w = rng.uniform(0.5, 2, 4).astype(np.float32)
    a, b = _pair(logp)
    ours = nn.NLLLoss(weight=w, reduction=reduction)(a, mc.Tensor(t))
    theirs = torch.nn.NLLLoss(weight=torch.tensor(w), reduction=reduction)(b, torch.tensor(t))
    _compare(ours, theirs, [(a, b)], 1e-5)


def test_cross_entropy_is_stable_for_huge_logits():
    x = mc.Tensor(np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 2e4]], np.float32), requires_grad=True)
    loss = F.cross_entropy(x, mc.Tensor(np.array([1, 1])))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()
    assert loss.item() == pytest.approx(1e4, rel=1e-6)  # first row: 2e4 / 2, second row: 0


@pytest.mark.parametrize("dtype,atol", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_matches_torch(dtype, atol, reduction):
    rng = np.random.default_rng(6)
    p = rng.uniform(0.02, 0.98, (3, 5)).astype(dtype)
    y = rng.uniform(0, 1, (3, 5)).astype(dtype)
    w = rng.uniform(0.5, 2, (3, 5)).astype(dtype)
    (a, b), (ya, yb) = _pair(p), _pair(y)
    ours = nn.BCELoss(weight=mc.Tensor(w), reduction=reduction)(a, ya)
    theirs = torch.nn.BCELoss(weight=torch.tensor(w), reduction=reduction)(b, yb)
    _compare(ours, theirs, [(a, b), (ya, yb)], atol)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    p = np.array([0.0, 1.0, 0.5], np.float32)
    y = np.array([1.0, 0.0, 1.0], np.float32)
    ours = F.binary_cross_entropy(mc.Tensor(p), mc.Tensor(y), reduction="none")
    theirs = TF.binary_cross_entropy(torch.tensor(p), torch.tensor(y), reduction="none")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype,atol", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_torch(dtype, atol, reduction):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4, 3)) * 5).astype(dtype)
    x[0, 0], x[1, 1] = 200.0, -200.0  # far in the tails: still finite
    y = (rng.uniform(size=(4, 3)) > 0.5).astype(dtype)
    pw = rng.uniform(0.5, 3, 3).astype(dtype)
    w = rng.uniform(0.5, 2, (4, 3)).astype(dtype)
    (a, b), (ya, yb) = _pair(x), _pair(y)
    ours = nn.BCEWithLogitsLoss(weight=mc.Tensor(w), reduction=reduction, pos_weight=mc.Tensor(pw))(a, ya)
    theirs = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), reduction=reduction,
                                        pos_weight=torch.tensor(pw))(b, yb)
    _compare(ours, theirs, [(a, b), (ya, yb)], atol)


def _torch_focal(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """The focal loss of Lin et al. in torch ops: ``α_t (1 − p_t)^γ · BCE(x, y)`` with ``p = σ(x)``,
    ``p_t = p y + (1 − p)(1 − y)``, ``α_t = α y + (1 − α)(1 − y)`` (no α weighting when α < 0)."""
    p = torch.sigmoid(inputs)
    p_t = targets * p + (1 - targets) * (1 - p)
    weight = (1 - p_t) ** gamma
    if alpha >= 0:
        weight = weight * (targets * alpha + (1 - targets) * (1 - alpha))
    loss = weight * TF.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return {"none": lambda v: v, "mean": torch.mean, "sum": torch.sum}[reduction](loss)


@pytest.mark.parametrize("kwargs", [{}, dict(alpha=0.5, gamma=1.0, reduction="mean"),
                                    dict(alpha=-1, gamma=2.0, reduction="sum")])
def test_sigmoid_focal_loss_matches_torchvision_formula(kwargs):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((6, 4)) * 3).astype(np.float64)
    y = (rng.uniform(size=(6, 4)) > 0.8).astype(np.float64)
    (a, b), (ya, yb) = _pair(x), _pair(y)
    _compare(F.sigmoid_focal_loss(a, ya, **kwargs), _torch_focal(b, yb, **kwargs), [(a, b), (ya, yb)], 1e-10)


@pytest.mark.parametrize("kwargs", [{}, dict(alpha=0.5, gamma=1.0, reduction="mean"),
                                    dict(alpha=-1, gamma=2.0, reduction="sum")])
def test_sigmoid_focal_loss_matches_torchvision(kwargs):
    tv_ops = pytest.importorskip("torchvision.ops", reason="torchvision does not import beside the CPU torch of "
                                 "the test extras")
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((5, 7)) * 3).astype(np.float64)
    y = (rng.uniform(size=(5, 7)) > 0.7).astype(np.float64)
    (a, b), (ya, yb) = _pair(x), _pair(y)
    _compare(F.sigmoid_focal_loss(a, ya, **kwargs), tv_ops.sigmoid_focal_loss(b, yb, **kwargs), [(a, b), (ya, yb)],
             1e-10)


REGRESSION = [
    ("mse", lambda a, b, r: nn.MSELoss(r)(a, b), lambda a, b, r: torch.nn.MSELoss(reduction=r)(a, b)),
    ("l1", lambda a, b, r: nn.L1Loss(r)(a, b), lambda a, b, r: torch.nn.L1Loss(reduction=r)(a, b)),
    ("smooth_l1", lambda a, b, r: nn.SmoothL1Loss(r, beta=0.7)(a, b),
     lambda a, b, r: torch.nn.SmoothL1Loss(reduction=r, beta=0.7)(a, b)),
    ("smooth_l1-beta0", lambda a, b, r: F.smooth_l1_loss(a, b, r, beta=0.0),
     lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r, beta=0.0)),
    ("huber", lambda a, b, r: nn.HuberLoss(r, delta=1.5)(a, b),
     lambda a, b, r: torch.nn.HuberLoss(reduction=r, delta=1.5)(a, b)),
]


@pytest.mark.parametrize("spec", REGRESSION, ids=[s[0] for s in REGRESSION])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype,atol", DTYPES)
def test_regression_losses_match_torch(spec, reduction, dtype, atol):
    _, ours_fn, torch_fn = spec
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((3, 4, 2)) * 2).astype(dtype)
    y = (rng.standard_normal((3, 4, 2)) * 2).astype(dtype)
    (a, b), (ya, yb) = _pair(x), _pair(y)
    _compare(ours_fn(a, ya, reduction), torch_fn(b, yb, reduction), [(a, b), (ya, yb)], atol)


# ---- errors --------------------------------------------------------------------------------------------

def test_loss_errors_are_clear():
    x = mc.Tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"cross_entropy: .*target must have shape \(4,\).*got \(4, 1\)"):
        F.cross_entropy(x, mc.Tensor(np.zeros((4, 1), np.int64)))
    with pytest.raises(ValueError, match="cross_entropy: target 3 is out of bounds for 3 classes"):
        F.cross_entropy(x, mc.Tensor(np.array([0, 1, 3, 2])))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(x, mc.Tensor(np.array([0, 1, 1, 2])), reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(3,\)"):
        F.cross_entropy(x, mc.Tensor(np.array([0, 1, 1, 2])), weight=mc.ones(4))
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(mc.Tensor(np.array([1.5], np.float32)), mc.Tensor(np.array([1.0], np.float32)))
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(4,\) must equal input shape \(4, 3\)"):
        F.mse_loss(x, mc.zeros(4))
    with pytest.raises(TypeError, match="nll_loss: class-index targets must be integers"):
        F.nll_loss(x, mc.Tensor(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match=r"cross_entropy: target shape \(4,\) must equal input shape \(4, 3\)"):
        F.cross_entropy(x, mc.Tensor(np.zeros(4, np.float32)))  # float targets are probabilities
