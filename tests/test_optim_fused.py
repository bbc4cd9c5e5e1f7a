"""The fused in-place optimizer kernels (``sgd_step``, ``adam_step``, ``rmsprop_step``) through
``optim.SGD`` / ``Adam`` / ``AdamW`` / ``RMSprop`` on ``cpu`` and ``cuda-emu``.

Oracles: ``torch.optim`` (same initial parameters, same gradient sequence, several steps, float32
and float64) and a plain NumPy statement of each formula written below (in float64). The two
devices run the same arithmetic and must agree bit for bit. Also: parameters and state are
updated in place (the arrays keep their identity, names and shapes), non-contiguous parameters
and gradients, arrays large enough to be split over tasks, loaded state of another dtype, and the
kernels' argument errors.
"""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import nn, optim
from minicnn.device import get_device

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SHAPES = [(3, 4), (5,), (2, 3, 3, 3), ()]
DEVICES = ["cpu", "cuda-emu"]
DTYPES = [np.float32, np.float64]
STEPS = 5
#: ours vs PyTorch: within this many ulp of the largest parameter. PyTorch's own sqrt is not
#: correctly rounded on every CPU (its float32 AVX-512 sqrt is off by up to 0.73 ulp), which
#: leaves Adam and RMSprop 1-2 ulp apart a step; centered RMSprop divides by √(v − ḡ²), whose
#: cancellation amplifies that (8.4 ulp after 5 steps at lr 0.3, α 0.3, momentum 0.5: the pinned
#: example). SGD agrees to the bit on CPUs with FMA.
TORCH_ULPS = 16


# ---- the formulas, stated in NumPy (float64) ------------------------------------------------------

def ref_sgd(p, g, st, t, lr, momentum, dampening, weight_decay, nesterov, maximize):
    d = -g if maximize else g
    if weight_decay:
        d = d + weight_decay * p
    if momentum:
        b = d.copy() if t == 1 else momentum * st["b"] + (1 - dampening) * d
        st["b"] = b
        d = d + momentum * b if nesterov else b
    return p - lr * d


def ref_adam(p, g, st, t, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled):
    b1, b2 = betas
    d = -g if maximize else g
    if weight_decay and decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay:
        d = d + weight_decay * p
    m = st["m"] = b1 * st.get("m", 0) + (1 - b1) * d
    v = st["v"] = b2 * st.get("v", 0) + (1 - b2) * d * d
    if amsgrad:
        v = st["vmax"] = np.maximum(st.get("vmax", 0), v)
    return p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)


def ref_rmsprop(p, g, st, t, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    d = -g if maximize else g
    if weight_decay:
        d = d + weight_decay * p
    s = st["s"] = alpha * st.get("s", 0) + (1 - alpha) * d * d
    if centered:
        ga = st["ga"] = alpha * st.get("ga", 0) + (1 - alpha) * d
        a = np.sqrt(s - ga * ga) + eps
    else:
        a = np.sqrt(s) + eps
    if momentum > 0:
        b = st["b"] = momentum * st.get("b", 0) + d / a
        return p - lr * b
    return p - lr * d / a


KINDS = {  # name: (ours, torch's, reference)
    "sgd": (optim.SGD, torch.optim.SGD, ref_sgd),
    "adam": (optim.Adam, torch.optim.Adam, lambda *a, **k: ref_adam(*a, decoupled=False, **k)),
    "adamw": (optim.AdamW, torch.optim.AdamW, lambda *a, **k: ref_adam(*a, decoupled=True, **k)),
    "rmsprop": (optim.RMSprop, torch.optim.RMSprop, ref_rmsprop),
}


def run_all(kind, opts, device, dtype, seed=0, steps=STEPS):
    """Run ours, PyTorch's and the reference on one gradient sequence; returns three lists (one per
    parameter) of final arrays: ours (NumPy), PyTorch's, the float64 reference."""
    ours_cls, torch_cls, ref = KINDS[kind]
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(mc.Tensor(a.copy(), device=device)) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    refs = [a.astype(np.float64) for a in init]
    ref_states = [{} for _ in init]
    opt, topt = ours_cls(ours, **opts), torch_cls(theirs, **opts)
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        for p, tp, g in zip(ours, theirs, grads):
            p.grad = mc.Tensor(g.copy(), device=device)
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        refs = [ref(r, g.astype(np.float64), s, t, **opts) for r, g, s in zip(refs, grads, ref_states)]
    return [p.numpy().copy() for p in ours], [tp.detach().numpy() for tp in theirs], refs


def check_kind(kind, opts):
    """For each dtype: ours == PyTorch within TORCH_ULPS, ≈ the NumPy formula, cpu == cuda-emu bitwise."""
    for dtype in DTYPES:
        results = {dev: run_all(kind, opts, dev, dtype) for dev in DEVICES}
        eps = np.finfo(dtype).eps
        ref_tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
        for dev, (ours, theirs, refs) in results.items():
            for i, (a, b, r) in enumerate(zip(ours, theirs, refs)):
                msg = f"{kind} {opts} {dev} {np.dtype(dtype).name} parameter {i}"
                assert a.dtype == dtype and a.shape == b.shape
                scale = max(1.0, float(np.abs(b).max(initial=0)))
                np.testing.assert_allclose(a, b, rtol=0, atol=TORCH_ULPS * eps * scale, err_msg=msg + " vs torch")
                np.testing.assert_allclose(a, r, err_msg=msg + " vs the NumPy formula", **ref_tol)
        for a, b in zip(results["cpu"][0], results["cuda-emu"][0]):
            np.testing.assert_array_equal(a, b, err_msg=f"{kind} {opts}: cpu and cuda-emu differ")


# ---- option sweeps ---------------------------------------------------------------------------------

lrs = st.sampled_from([1e-3, 0.05, 0.3])
weight_decays = st.sampled_from([0.0, 1e-3, 0.1])


@st.composite
def sgd_options(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    dampening = draw(st.sampled_from([0.0, 0.3]))
    nesterov = momentum > 0 and dampening == 0 and draw(st.booleans())
    return dict(lr=draw(lrs), momentum=momentum, dampening=dampening, weight_decay=draw(weight_decays),
                nesterov=nesterov, maximize=draw(st.booleans()))


@given(sgd_options())
def test_sgd_matches_torch_and_formula(opts):
    check_kind("sgd", opts)


@given(st.sampled_from(["adam", "adamw"]), lrs, st.sampled_from([(0.9, 0.999), (0.3, 0.9), (0.6, 0.5)]),
       st.sampled_from([1e-8, 1e-3]), weight_decays, st.booleans(), st.booleans())
def test_adam_adamw_match_torch_and_formula(kind, lr, betas, eps, weight_decay, amsgrad, maximize):
    check_kind(kind, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                          maximize=maximize))


@given(lrs, st.sampled_from([0.99, 0.9, 0.3]), weight_decays, st.sampled_from([0.0, 0.5]), st.booleans(),
       st.booleans())
@example(lr=0.3, alpha=0.3, weight_decay=0.1, momentum=0.5, centered=True, maximize=True)
def test_rmsprop_matches_torch_and_formula(lr, alpha, weight_decay, momentum, centered, maximize):
    check_kind("rmsprop", dict(lr=lr, alpha=alpha, eps=1e-8, weight_decay=weight_decay, momentum=momentum,
                               centered=centered, maximize=maximize))


# ---- in place, layouts, sizes, state -----------------------------------------------------------------

MAKERS = [
    ("sgd", lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), {"momentum_buffer"}),
    ("adam-amsgrad", lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True), {"step", "exp_avg", "exp_avg_sq",
                                                                         "max_exp_avg_sq"}),
    ("rmsprop", lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
     {"step", "square_avg", "momentum_buffer", "grad_avg"}),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, make, keys", MAKERS, ids=[m[0] for m in MAKERS])
def test_updates_are_in_place_and_state_keeps_its_names(name, make, keys, device):
    rng = np.random.default_rng(1)
    p = nn.Parameter(mc.Tensor(rng.standard_normal((4, 3)).astype(np.float32), device=device))
    data = p.data
    opt = make([p])
    held = None
    for _ in range(3):
        p.grad = mc.Tensor(rng.standard_normal((4, 3)).astype(np.float32), device=device)
        opt.step()
        state = opt.state[id(p)]
        assert set(state) == keys
        arrays = {k: v for k, v in state.items() if k != "step"}
        assert all(v.shape == (4, 3) and v.dtype == np.float32 for v in arrays.values())
        held = held or arrays
        assert all(arrays[k] is held[k] for k in arrays), "state arrays were replaced instead of updated"
    assert p.data is data
    assert opt.state_dict()["state"][0].keys() == keys


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, make, keys", MAKERS, ids=[m[0] for m in MAKERS])
def test_noncontiguous_parameter_and_gradient(name, make, keys, device):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((5, 6)).astype(np.float32)
    grads = [rng.standard_normal((6, 5)).astype(np.float32) for _ in range(3)]
    a = nn.Parameter(mc.Tensor(base.copy(), device=device))
    b = nn.Parameter(mc.Tensor(base.copy(), device=device))
    b.data = np.ascontiguousarray(base.T).T  # same values, Fortran order
    assert not b.data.flags.c_contiguous
    data = b.data
    opt_a, opt_b = make([a]), make([b])
    for g in grads:
        a.grad = mc.Tensor(np.ascontiguousarray(g.T), device=device)
        b.grad = mc.Tensor(g.T, device=device)  # a transposed view
        opt_a.step()
        opt_b.step()
    assert b.data is data
    np.testing.assert_array_equal(b.numpy(), a.numpy())


@pytest.mark.parametrize("kind, opts", [("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-4)),
                                        ("adam", dict(lr=0.01)),
                                        ("rmsprop", dict(lr=0.01, centered=True, momentum=0.3))])
def test_large_arrays_split_over_tasks_equal_one_pass(kind, opts):
    """4 MiB float32: the CPU wrapper splits it over the task pool; the result equals PyTorch's and
    one call of the raw kernel over the whole range."""
    from minicnn.kernels.cpu import optim as cpu_optim

    n = (1 << 20) + 3
    rng = np.random.default_rng(3)
    p0, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    ours, theirs = nn.Parameter(p0.copy()), torch.nn.Parameter(torch.tensor(p0))
    opt, topt = KINDS[kind][0]([ours], **opts), KINDS[kind][1]([theirs], **opts)
    for _ in range(2):
        ours.grad, theirs.grad = mc.Tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=0,
                               atol=TORCH_ULPS * np.finfo(np.float32).eps * float(np.abs(p0).max()))
    one = p0.copy()
    f32 = np.float32
    if kind == "sgd":
        buf = np.empty_like(one)
        for first in (True, False):
            cpu_optim.sgd_step_raw(one, g, buf, f32(-0.1), f32(1e-4), f32(0.9), f32(1), False, False, first, 0, n)
    elif kind == "adam":
        m, v = np.zeros_like(one), np.zeros_like(one)
        for t in (1, 2):
            cpu_optim.adam_step_raw(one, g, m, v, one[:0], f32(-0.01 / (1 - 0.9 ** t)), f32((1 - 0.999 ** t) ** 0.5),
                                    f32(1e-8), f32(0.1), False, f32(0.999), f32(1 - 0.999), f32(0), f32(1), False,
                                    False, 0, n)
    else:
        s, ga, buf = np.zeros_like(one), np.zeros_like(one), np.zeros_like(one)
        for _ in range(2):
            cpu_optim.rmsprop_step_raw(one, g, s, ga, buf, f32(-0.01), f32(0.99), f32(1 - 0.99), f32(1 - 0.99),
                                       False, f32(1e-8), f32(0), f32(0.3), True, False, 0, n)
    np.testing.assert_array_equal(ours.numpy(), one)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_parameter(device):
    p = nn.Parameter(mc.Tensor(np.zeros((0, 3), np.float32), device=device))
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.Adam([p]), optim.RMSprop([p], centered=True)):
        p.grad = mc.Tensor(np.zeros((0, 3), np.float32), device=device)
        opt.step()
        assert p.shape == (0, 3)


def test_loaded_state_of_another_dtype_is_converted_and_resumes():
    rng = np.random.default_rng(4)
    init = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(4)]
    p64 = nn.Parameter(init.copy())
    opt64 = optim.Adam([p64], lr=0.01)
    for g in grads[:2]:
        p64.grad = mc.Tensor(g.copy())
        opt64.step()
    p32 = nn.Parameter(p64.numpy().astype(np.float32))
    opt32 = optim.Adam([p32], lr=0.01)
    opt32.load_state_dict(opt64.state_dict())
    for g in grads[2:]:
        p64.grad, p32.grad = mc.Tensor(g.copy()), mc.Tensor(g.astype(np.float32))
        opt64.step()
        opt32.step()
    state = opt32.state[id(p32)]
    assert state["step"] == 4 and state["exp_avg"].dtype == np.float32 and state["exp_avg_sq"].dtype == np.float32
    np.testing.assert_allclose(p32.numpy(), p64.numpy(), rtol=1e-5, atol=1e-6)


# ---- errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_kernel_argument_errors(device):
    ks = get_device(device).kernels
    p, g = np.zeros(6, np.float32), np.zeros(6, np.float32)
    with pytest.raises(ValueError, match=r"sgd_step: grad .*6 elements.*shape \(5,\)"):
        ks.sgd_step(p, np.zeros(5, np.float32), None, 0.1, 0, 0, 0, False, False, False)
    with pytest.raises(TypeError, match="sgd_step: grad .*dtype float32.*float64"):
        ks.sgd_step(p, np.zeros(6), None, 0.1, 0, 0, 0, False, False, False)
    with pytest.raises(TypeError, match="sgd_step: param must be a float32 or float64"):
        ks.sgd_step(np.zeros(6, np.int32), g, None, 0.1, 0, 0, 0, False, False, False)
    with pytest.raises(ValueError, match="sgd_step: momentum_buffer must be C-contiguous.*not contiguous"):
        ks.sgd_step(p, g, np.zeros(12, np.float32)[::2], 0.1, 0, 0.9, 0, False, False, False)
    with pytest.raises(ValueError, match="sgd_step: momentum_buffer is required"):
        ks.sgd_step(p, g, None, 0.1, 0, 0.9, 0, False, False, True)
    with pytest.raises(ValueError, match="adam_step: max_exp_avg_sq is required"):
        ks.adam_step(p, g, p.copy(), p.copy(), None, 1, 0.1, 0.9, 0.99, 1e-8, 0, False, True, False)
    with pytest.raises(ValueError, match="adam_step: exp_avg_sq must be C-contiguous"):
        ks.adam_step(p, g, p.copy(), np.zeros(7, np.float32), None, 1, 0.1, 0.9, 0.99, 1e-8, 0, False, False, False)
    with pytest.raises(ValueError, match="rmsprop_step: grad_avg is required"):
        ks.rmsprop_step(p, g, p.copy(), None, None, 0.1, 0.99, 1e-8, 0, 0, True, False)


def test_gradient_of_the_wrong_shape_names_the_optimizer():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    p.grad = mc.Tensor(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"SGD: the gradient's shape \(3, 2\) differs from the parameter's \(2, 3\)"):
        optim.SGD([p], lr=0.1).step()
