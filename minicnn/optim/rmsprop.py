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
        """One fused in-place step (``device.kernels.rmsprop_step``); state starts at zero."""
        x, g = self._kernel_arrays(p, g)
        mu, centered = group["momentum"], group["centered"]
        state.setdefault("step", 0)
        s, _ = self._state_array(state, "square_avg", p)
        buf = self._state_array(state, "momentum_buffer", p)[0] if mu > 0 else None
        ga = self._state_array(state, "grad_avg", p)[0] if centered else None
        state["step"] += 1
        p.device.kernels.rmsprop_step(x, g, s, ga, buf, group["lr"], group["alpha"], group["eps"],
                                      group["weight_decay"], mu, centered, group["maximize"])
        self._write_back(p, x)
