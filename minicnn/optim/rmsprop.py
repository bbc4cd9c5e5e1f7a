"""RMSprop, PyTorch's exact update."""
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """For gradient g (plus λ p with weight_decay λ)::

        s ← α s + (1 − α) g²
        centered: ḡ ← α ḡ + (1 − α) g,  d = √(s − ḡ²) + ε;   else d = √s + ε
        momentum μ > 0:  b ← μ b + g / d,  p ← p − lr b;      else p ← p − lr g / d
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        if not 0.0 <= alpha or eps < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"RMSprop: invalid alpha={alpha}, eps={eps}, momentum={momentum} or "
                             f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, p, g, state, group):
        xp = p.device.xp
        if group["maximize"]:
            g = -g
        alpha, eps, wd, mu = group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if mu > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        if wd != 0:
            g = g + wd * p.data
        s = state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
        if group["centered"]:
            ga = state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
            avg = xp.sqrt(s - ga * ga) + eps
        else:
            avg = xp.sqrt(s) + eps
        if mu > 0:
            buf = state["momentum_buffer"] = mu * state["momentum_buffer"] + g / avg
            p.data -= (group["lr"] * buf).astype(p.dtype, copy=False)
        else:
            p.data -= (group["lr"] * g / avg).astype(p.dtype, copy=False)
