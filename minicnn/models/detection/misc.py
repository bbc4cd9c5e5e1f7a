"""Small layers the torchvision detection models share.

* :class:`FrozenBatchNorm2d`: BatchNorm with fixed statistics and affine parameters (buffers, not
  Parameters), as detection backbones use it: the batches of a detector are too small (1–2
  images) to estimate BatchNorm statistics, so the ImageNet ones are kept.
* :func:`drop_frozen_bn_counters`: remove the ``num_batches_tracked`` entries a checkpoint holds
  for layers that are frozen here (torchvision's ``FrozenBatchNorm2d`` ignores them on load).
"""
import numpy as np

from ... import nn
from ...nn._checks import check_input
from ...tensor import Tensor


class FrozenBatchNorm2d(nn.Module):
    """``y = (x − running_mean) · weight / sqrt(running_var + eps) + bias``, per channel, fixed.

    Computed as ``x · scale + shift`` with ``scale = weight / sqrt(running_var + eps)`` and
    ``shift = bias − running_mean · scale`` (torchvision's order of operations). The four
    vectors are buffers (saved in ``state_dict`` under torchvision's names, moved by ``to``,
    never trained); the gradient flows to ``x`` only. Same in training and eval.

    Args:
        num_features: channels ``C``.
        eps: added to the variance (1e-5, torchvision's default).

    Shape: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, num_features, eps=1e-5, dtype=np.float32):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"FrozenBatchNorm2d: num_features must be an integer >= 1, got {num_features!r}")
        self.num_features, self.eps = int(num_features), float(eps)
        c = self.num_features
        self.register_buffer("weight", Tensor(np.ones(c, dtype=dtype)))
        self.register_buffer("bias", Tensor(np.zeros(c, dtype=dtype)))
        self.register_buffer("running_mean", Tensor(np.zeros(c, dtype=dtype)))
        self.register_buffer("running_var", Tensor(np.ones(c, dtype=dtype)))

    def forward(self, x):
        check_input(self, x, "NCHW", self.num_features)
        shape = (1, self.num_features, 1, 1)
        scale = self.weight.reshape(*shape) * (self.running_var.reshape(*shape) + self.eps) ** -0.5
        shift = self.bias.reshape(*shape) - self.running_mean.reshape(*shape) * scale
        return x * scale.to(dtype=x.dtype) + shift.to(dtype=x.dtype)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"


def drop_frozen_bn_counters(module, state_dict):
    """A copy of ``state_dict`` without the ``<prefix>.num_batches_tracked`` keys of the
    :class:`FrozenBatchNorm2d` layers of ``module`` (a BatchNorm2d checkpoint then loads into a
    model whose BatchNorms are frozen, as torchvision allows)."""
    frozen = {f"{name}.num_batches_tracked" if name else "num_batches_tracked"
              for name, m in module.named_modules() if isinstance(m, FrozenBatchNorm2d)}
    return type(state_dict)((k, v) for k, v in state_dict.items() if k not in frozen)


__all__ = ["FrozenBatchNorm2d", "drop_frozen_bn_counters"]
