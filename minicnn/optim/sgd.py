"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's SGD update, for gradient g of parameter p::

        g ← g + λ p                                   (weight_decay λ)
        b ← g  (first step)  |  b ← μ b + (1 − τ) g   (momentum μ, dampening τ)
        g ← g + μ b  (nesterov)  |  g ← b
        p ← p − lr · g

    Note the learning rate multiplies *after* the momentum buffer (PyTorch's convention,
    unlike Sutskever et al.'s v ← μ v + lr g).
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum ({momentum}) and weight_decay ({weight_decay}) must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, p, g, state, group):
        """One fused in-place step (``device.kernels.sgd_step``); the momentum buffer is made on the
        first step as a copy of the (decayed) gradient, as in PyTorch."""
        x, g = self._kernel_arrays(p, g)
        mu, buf, first = group["momentum"], None, False
        if mu != 0:
            buf, first = self._state_array(state, "momentum_buffer", p, zeros=False)
        p.device.kernels.sgd_step(x, g, buf, group["lr"], group["weight_decay"], mu, group["dampening"],
                                  group["nesterov"], group["maximize"], first)
        self._write_back(p, x)
