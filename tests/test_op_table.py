"""Generic checks for every op of the op table (tests/optable): forward vs the reference in
float64 and float32, gradcheck in float64, and the same results on every device."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.testing import gradcheck
from optable import all_ops

OPS = all_ops()
CASES = [(op, k) for op in OPS for k in range(len(op.samples(np.random.default_rng(0))))]


def _ids(case):
    op, k = case
    return f"{op.name}-{k}"


def _sample(op, k):
    return op.samples(np.random.default_rng(1234))[k]


def _outputs(out):
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in outs]


def _ref_outputs(ref):
    return list(ref) if isinstance(ref, tuple) else [ref]


def _to_tensors(arrays, device, dtype=None):
    ts = []
    for a in arrays:
        a = np.asarray(a)
        if dtype is not None and a.dtype.kind == "f":
            a = a.astype(dtype)
        ts.append(mc.Tensor(a, device=device) if isinstance(a, np.ndarray) else a)
    return ts


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(case, dtype, device):
    op, k = case
    if device not in op.devices:
        pytest.skip(f"{op.name} is not on {device}")
    s = _sample(op, k)
    got = _outputs(op.fn(*_to_tensors(s.arrays, device, dtype), **s.kwargs))
    want = _ref_outputs(op.reference(*[np.asarray(a) for a in s.arrays], **s.kwargs))
    assert len(got) == len(want), f"{op.name}: {len(got)} outputs, reference has {len(want)}"
    rtol = op.rtol if dtype == np.float64 else op.f32_rtol
    atol = op.atol if dtype == np.float64 else op.f32_rtol
    for i, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        assert g.shape == w.shape, f"{op.name} output {i}: shape {g.shape}, reference {w.shape}"
        if w.dtype.kind == "f":
            assert g.dtype == dtype, f"{op.name} output {i}: dtype {g.dtype}, expected {np.dtype(dtype)}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{op.name} output {i} on {device}")


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_gradcheck(case, device):
    op, k = case
    if device not in op.devices:
        pytest.skip(f"{op.name} is not on {device}")
    if not op.gradcheck:
        pytest.skip(f"{op.name} is not differentiable")
    s = _sample(op, k)
    ts = _to_tensors(s.arrays, device, np.float64)
    grad_inputs = op.grad_inputs
    if grad_inputs is None:
        grad_inputs = [i for i, t in enumerate(ts) if isinstance(t, mc.Tensor) and t.dtype.kind == "f"]
    for i in grad_inputs:
        ts[i].requires_grad = True
    for i, t in enumerate(ts):
        if isinstance(t, mc.Tensor) and i not in grad_inputs:
            t.requires_grad = False
    gradcheck(lambda *xs: op.fn(*xs, **s.kwargs), ts, atol=op.gradcheck_atol, rtol=op.gradcheck_rtol, name=op.name)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_backward_matches_across_devices(case, device):
    """Gradients on ``device`` equal those on ``cpu`` (forward parity is implied by the reference test)."""
    op, k = case
    if device == "cpu" or device not in op.devices or not op.gradcheck:
        pytest.skip("parity is checked against cpu for differentiable ops")
    s = _sample(op, k)
    grads = {}
    for dev in ("cpu", device):
        ts = _to_tensors(s.arrays, dev, np.float64)
        floats = [t for t in ts if isinstance(t, mc.Tensor) and t.dtype.kind == "f"]
        for t in floats:
            t.requires_grad = True
        out = op.fn(*ts, **s.kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        total = sum((o * o).sum() for o in outs if o.requires_grad)
        total.backward()
        grads[dev] = [t.grad.numpy() if t.grad is not None else None for t in floats]
    for i, (a, b) in enumerate(zip(grads["cpu"], grads[device])):
        if a is None:
            assert b is None
            continue
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, err_msg=f"{op.name}: grad of input {i}, {device} vs cpu")
