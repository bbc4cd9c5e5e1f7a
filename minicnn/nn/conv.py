"""Convolution layers: Conv1d, Conv2d, ConvTranspose2d (wrappers over F.conv1d / F.conv2d /
F.conv_transpose2d; PyTorch's arguments, weight layout and default initialisation)."""
import numpy as np

from .. import functional as F
from ..kernels.geometry import as_tuple
from ._checks import check_input
from .init import default_layer_init_
from .module import Module, Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate")


class _ConvNd(Module):
    """Shared parts. Weight (out, in/groups, *kernel) for convolution, (in, out/groups, *kernel)
    for the transposed one; bias (out,). Init: kaiming_uniform(a=√5), bias U(±1/√fan_in)."""

    dims = 2
    transposed = False
    layout = "NCHW"

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding=0, dtype=np.float32):
        super().__init__()
        name, n = type(self).__name__, self.dims
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"{name}: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = as_tuple(kernel_size, n, "kernel_size", name)
        self.stride = as_tuple(stride, n, "stride", name)
        self.padding = padding if isinstance(padding, str) else as_tuple(padding, n, "padding", name)
        self.dilation = as_tuple(dilation, n, "dilation", name)
        self.output_padding = as_tuple(output_padding, n, "output_padding", name)
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        default_layer_init_(self.weight, self.bias)

    def _check(self, x):
        check_input(self, x, self.layout, self.in_channels)

    def _explicit_padding(self, x):
        """padding_mode 'reflect'/'replicate': pad with F.pad, then convolve with padding 0."""
        pads = []
        for axis, p in reversed(list(enumerate(self._padding_amounts()))):
            pads += list(p)
        return F.pad(x, tuple(pads), mode=self.padding_mode), 0

    def _padding_amounts(self):
        """(before, after) per spatial axis; ``"same"`` splits d·(k−1) with the extra one after, as PyTorch."""
        if self.padding == "valid":
            return [(0, 0)] * self.dims
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in self.padding]

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.dims:
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """Conv1d and Conv2d: PyTorch's constructor; forward is F.conv1d or F.conv2d (by ``dims``),
    after an explicit F.pad for padding_mode 'reflect'/'replicate'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)

    def forward(self, x):
        self._check(x)
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = self._explicit_padding(x)
        conv = F.conv1d if self.dims == 1 else F.conv2d
        return conv(x, self.weight, self.bias, stride=self.stride, padding=padding,
                    dilation=self.dilation, groups=self.groups)


class Conv2d(_Conv):
    """2-D convolution (cross-correlation, as PyTorch) over (N, C_in, H, W) → (N, C_out, H', W').

    ``H' = ⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1`` per axis. Example: ``nn.Conv2d(1, 8, 3, padding=1)``.
    """


class Conv1d(_Conv):
    """1-D convolution over (N, C_in, L) → (N, C_out, L')."""

    dims = 1
    layout = "NCL"


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d w.r.t. its input), used to upsample.

    ``H' = (H − 1)s − 2p + d(k − 1) + output_padding + 1``. Weight (C_in, C_out/groups, kH, kW).
    """

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", dtype=np.float32):
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: only padding_mode='zeros' is supported, got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding=output_padding, dtype=dtype)

    def forward(self, x, output_size=None):
        self._check(x)
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                  output_padding=output_padding, groups=self.groups, dilation=self.dilation)

    def _output_padding_for(self, x, output_size):
        """The output_padding giving spatial size ``output_size`` (PyTorch's forward(x, output_size))."""
        size = tuple(output_size)[-2:]
        pads = []
        for i, want in enumerate(size):
            smallest = ((x.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                        + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = want - smallest
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"ConvTranspose2d: requested output size {size} is not reachable from input "
                                 f"{tuple(x.shape)} (sizes from {smallest} to "
                                 f"{smallest + max(self.stride[i], self.dilation[i]) - 1} along axis {i})")
            pads.append(extra)
        return tuple(pads)
