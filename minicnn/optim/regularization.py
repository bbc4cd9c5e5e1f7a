"""Regularisation helpers: L1/L2 penalties (differentiable) and gradient clipping (in place)."""
import math

from .. import functional as F
from ..autograd import no_grad
from ..tensor import Tensor


def _params(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def l1_penalty(parameters, weight=1.0):
    """``weight · Σ_p Σ |p|``: add it to the loss for L1 regularisation (sparse weights).

    Example: ``loss = criterion(model(x), y) + optim.l1_penalty(model.parameters(), 1e-4)``.
    The gradient is ``weight · sign(p)`` (0 at p = 0).
    """
    ps = _params(parameters)
    if not ps:
        raise ValueError("l1_penalty: got no parameters")
    total = F.sum(F.abs(ps[0]))
    for p in ps[1:]:
        total = total + F.sum(F.abs(p))
    return total * weight


def l2_penalty(parameters, weight=1.0):
    """``weight · ½ Σ_p Σ p²`` (gradient ``weight · p``, the same as SGD's weight_decay=weight)."""
    ps = _params(parameters)
    if not ps:
        raise ValueError("l2_penalty: got no parameters")
    total = F.sum(ps[0] * ps[0])
    for p in ps[1:]:
        total = total + F.sum(p * p)
    return total * (0.5 * weight)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most ``max_norm``.

    total = (Σ_p ‖g_p‖ⁿ)^(1/n) (n = norm_type; ``inf``: max |g|); every g is multiplied by
    ``min(1, max_norm / (total + 1e−6))`` (PyTorch's formula). Returns ``total`` as a Tensor.
    """
    ps = [p for p in _params(parameters) if p.grad is not None]
    if not ps:
        return Tensor(0.0)
    xp = ps[0].device.xp
    norm_type = float(norm_type)
    with no_grad():
        if math.isinf(norm_type):
            total = max(float(xp.abs(p.grad.data).max()) for p in ps)
        else:
            total = sum(float((xp.abs(p.grad.data.astype("float64")) ** norm_type).sum()) for p in ps) ** (1 / norm_type)
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}")
        coef = min(1.0, max_norm / (total + 1e-6))
        for p in ps:
            p.grad.data = (p.grad.data * coef).astype(p.grad.dtype, copy=False)
    return Tensor(total, device=ps[0].device)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to ``[−clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for p in _params(parameters):
        if p.grad is not None:
            g = p.grad.data
            p.grad.data = p.device.xp.clip(g, -clip_value, clip_value).astype(g.dtype, copy=False)
