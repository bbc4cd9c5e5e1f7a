"""Check an op's backward against central finite differences in float64.

For outputs ``y_i = f(x_1, …, x_n)`` and a random cotangent ``v_i`` per output, backward gives
the vector-Jacobian product ``g_j = J_ijᵀ v_i``. Central differences give the same quantity one
input element at a time::

    g_j[k] ≈ ⟨v_i, f_i(x_j + ε e_k) − f_i(x_j − ε e_k)⟩ / (2ε)

``mode="elementwise"`` compares every element (cost: 2 forward calls per input element and
output); ``mode="random"`` compares one random direction ``d`` per input
(``⟨g_j, d_j⟩`` against the directional difference), 2 forward calls per input and output: cheap
enough for big inputs, and still fails for any wrong backward with probability 1.
"""
import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """A backward that disagrees with finite differences."""


def _as_tuple(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def _prepare(inputs):
    """float64 leaf copies of the Tensor inputs (other inputs pass through).

    The inputs that ``requires_grad`` are checked; when none does, every float input is.
    """
    floats = [x for x in inputs if isinstance(x, Tensor) and x.dtype.kind == "f"]
    any_marked = any(x.requires_grad for x in floats)
    prepared = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            wanted = x.requires_grad or not any_marked
            prepared.append(Tensor._from_array(x.data.astype(np.float64, copy=True), x.device, requires_grad=wanted))
        else:
            prepared.append(x)
    return prepared


def _forward_outputs(fn, inputs):
    with no_grad():
        outs = _as_tuple(fn(*inputs))
    return [o.numpy().astype(np.float64) for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="elementwise", seed=0, name=None,
              raise_exception=True):
    """Compare ``fn``'s backward with central differences; raise :class:`GradcheckError` on mismatch.

    Args:
        fn: callable taking ``*inputs`` and returning a Tensor or a tuple of Tensors.
        inputs: Tensors and other arguments. Float Tensors are copied to float64; those with
            ``requires_grad`` are checked (all float Tensors when none has it).
        eps: finite-difference step.
        atol, rtol: tolerance: ``|analytic - numeric| <= atol + rtol * |numeric|``.
        mode: ``"elementwise"`` or ``"random"`` (see the module docstring).
        seed: for the random cotangents and directions.
        name: the op's name, used in messages (default: ``fn.__name__``).

    Returns:
        True when every comparison passes (or False with ``raise_exception=False``).
    """
    if mode not in ("elementwise", "random"):
        raise ValueError(f"gradcheck: mode must be 'elementwise' or 'random', got {mode!r}")
    name = name or getattr(fn, "__name__", "fn")
    rng = np.random.default_rng(seed)
    xs = _prepare(inputs)
    checked = [j for j, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    outs = _as_tuple(fn(*xs))
    diff_outs = [(i, o) for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
    if not diff_outs:
        raise GradcheckError(f"gradcheck({name}): no output depends differentiably on the inputs")
    try:
        for i, out in diff_outs:
            v = rng.standard_normal(out.shape)
            for j in checked:
                xs[j].grad = None
            # Rebuild the graph for each output so gradients of one output do not mix with another.
            outs_i = _as_tuple(fn(*xs))
            outs_i[i].backward(out.device.xp.asarray(v, dtype=outs_i[i].dtype))
            analytic = {j: (xs[j].grad.numpy() if xs[j].grad is not None else np.zeros(xs[j].shape)) for j in checked}
            f_index = [k for k, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.kind == "f"].index(i)
            if mode == "elementwise":
                _check_elementwise(fn, xs, checked, v, i, f_index, analytic, eps, atol, rtol, name)
            else:
                _check_random(fn, xs, checked, v, i, f_index, analytic, eps, atol, rtol, name, rng)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _perturbed(fn, xs, j, flat_k, delta, f_index):
    """Output ``f_index`` of ``fn`` with element ``flat_k`` of input ``j`` shifted by ``delta``."""
    x = xs[j]
    host = x.numpy().copy()
    host.reshape(-1)[flat_k] += delta
    shifted = list(xs)
    shifted[j] = Tensor._from_array(x.device.from_numpy(host), x.device)
    return _forward_outputs(fn, shifted)[f_index]


def _check_elementwise(fn, xs, checked, v, i, f_index, analytic, eps, atol, rtol, name):
    for j in checked:
        numeric = np.zeros(xs[j].shape)
        flat = numeric.reshape(-1)
        for k in range(flat.size):
            plus = _perturbed(fn, xs, j, k, eps, f_index)
            minus = _perturbed(fn, xs, j, k, -eps, f_index)
            flat[k] = np.sum(v * (plus - minus)) / (2 * eps)
        a = analytic[j]
        bad = np.abs(a - numeric) > atol + rtol * np.abs(numeric)
        if bad.any():
            idx = tuple(int(q) for q in np.argwhere(bad)[0])
            raise GradcheckError(
                f"gradcheck({name}): Jacobian mismatch for output {i} with respect to input {j} "
                f"at element {idx}: analytic {a[idx]:.8g}, numeric {numeric[idx]:.8g} "
                f"({int(bad.sum())} of {bad.size} elements differ; max abs diff {np.abs(a - numeric).max():.3g})"
            )


def _check_random(fn, xs, checked, v, i, f_index, analytic, eps, atol, rtol, name, rng):
    for j in checked:
        d = rng.standard_normal(xs[j].shape)
        host = xs[j].numpy()
        outs = []
        for sign in (1.0, -1.0):
            shifted = list(xs)
            shifted[j] = Tensor._from_array(xs[j].device.from_numpy(host + sign * eps * d), xs[j].device)
            outs.append(_forward_outputs(fn, shifted)[f_index])
        numeric = float(np.sum(v * (outs[0] - outs[1])) / (2 * eps))
        a = float(np.sum(analytic[j] * d))
        if abs(a - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(
                f"gradcheck({name}): Jacobian mismatch for output {i} with respect to input {j} "
                f"along a random direction: analytic {a:.8g}, numeric {numeric:.8g}"
            )
