"""Normalisation layers: BatchNorm1d/2d, InstanceNorm2d, LayerNorm, GroupNorm, LocalResponseNorm."""
import numpy as np

from .. import functional as F
from ..tensor import Tensor
from ._checks import check_input, layer_name
from .module import Module, Parameter


class _NormBase(Module):
    """Running statistics are *buffers* (``running_mean``, ``running_var``,
    ``num_batches_tracked``): saved in ``state_dict``, moved by ``to``, never trained."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", Parameter(np.ones(num_features, dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(num_features, dtype=dtype)) if affine and bias else None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def _average_factor(self):
        """The momentum of this step; ``momentum=None`` means a cumulative average (1/num_batches)."""
        if not (self.training and self.track_running_stats):
            return 0.0
        self.num_batches_tracked.data[...] += 1
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked.data)
        return self.momentum

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    layouts = ("NCHW",)

    def forward(self, x):
        if x.ndim not in [len(lay) for lay in self.layouts]:
            check_input(self, x, self.layouts[-1], self.num_features)
        check_input(self, x, next(lay for lay in self.layouts if len(lay) == x.ndim), self.num_features)
        factor = self._average_factor()
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L): per feature, over the batch (and L).

    Training: batch mean and biased variance normalise; the running statistics move by
    ``momentum`` toward the batch mean and *unbiased* variance. Eval: the running statistics.
    """

    layouts = ("NC", "NCL")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W), per channel over N, H, W (see BatchNorm1d)."""

    layouts = ("NCHW",)


class InstanceNorm2d(_NormBase):
    """Per-sample, per-channel normalisation over H, W (CycleGAN, style transfer).

    PyTorch's defaults: ``affine=False``, ``track_running_stats=False``.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 dtype=np.float32, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, bias=bias)

    def forward(self, x):
        check_input(self, x, "NCHW", self.num_features)
        factor = self.momentum if self.momentum is not None else 0.0  # num_batches_tracked stays 0, as PyTorch
        use_input_stats = self.training or not self.track_running_stats
        return F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               use_input_stats, factor, self.eps)


class LayerNorm(Module):
    """Normalise over the last axes ``normalized_shape`` with an elementwise affine (γ=1, β=0)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        shape = self.normalized_shape
        self.register_parameter("weight", Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None)
        self.register_parameter("bias", Parameter(np.zeros(shape, dtype=dtype)) if elementwise_affine and bias else None)

    def forward(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{layer_name(self)}: expected input (*, {', '.join(map(str, self.normalized_shape))}), "
                             f"got shape {tuple(x.shape)}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalise groups of ``num_channels // num_groups`` channels per sample, per-channel affine."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32, *, bias=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide num_channels={num_channels}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.register_parameter("weight", Parameter(np.ones(num_channels, dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(num_channels, dtype=dtype)) if affine and bias else None)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{layer_name(self)}: expected input with {self.num_channels} channels "
                             f"(N, {self.num_channels}, *), got shape {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


class LocalResponseNorm(Module):
    """AlexNet's LRN: ``b_c = a_c / (k + α/n · Σ_{c' near c} a_{c'}²)^β`` over ``size`` channels."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
