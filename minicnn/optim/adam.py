"""Adam and AdamW (decoupled weight decay), PyTorch's exact update."""
from .optimizer import Optimizer


class Adam(Optimizer):
    """For step t, gradient g (plus λ p when weight_decay λ > 0, the L2 form)::

        m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
        v̂ = max(v̂, v) (amsgrad) or v
        p ← p − lr / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: eps ({eps}) and weight_decay ({weight_decay}) must be >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p, g, state, group):
        """One fused in-place step (``device.kernels.adam_step``); moments start at zero."""
        x, g = self._kernel_arrays(p, g)
        state.setdefault("step", 0)
        m, _ = self._state_array(state, "exp_avg", p)
        v, _ = self._state_array(state, "exp_avg_sq", p)
        vmax = self._state_array(state, "max_exp_avg_sq", p)[0] if group["amsgrad"] else None
        state["step"] += 1
        b1, b2 = group["betas"]
        p.device.kernels.adam_step(x, g, m, v, vmax, state["step"], group["lr"], b1, b2, group["eps"],
                                   group["weight_decay"], self.decoupled, group["amsgrad"], group["maximize"])
        self._write_back(p, x)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p ← p (1 − lr λ)`` before the
    Adam step, instead of adding λ p to the gradient. Default ``weight_decay=0.01``."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
