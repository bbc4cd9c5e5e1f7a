"""Pooling and resampling layers (wrappers over minicnn.functional's pool/resample ops)."""
from .. import functional as F
from ._checks import check_input
from .module import Module


class _Pool(Module):
    layout = "NCHW"

    def _check(self, x):
        if x.ndim not in (len(self.layout), len(self.layout) - 1):
            check_input(self, x, self.layout)


class MaxPool2d(_Pool):
    """Max over k×k windows (strict ``>``: the first maximum wins and takes the gradient).

    Shape: (N, C, H, W) → (N, C, H', W'); stride defaults to kernel_size.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        self._check(x)
        return F.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(MaxPool2d):
    """Max over windows of length k: (N, C, L) → (N, C, L')."""

    layout = "NCL"

    def forward(self, x):
        self._check(x)
        return F.max_pool1d(x, self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool2d(_Pool):
    """Mean over k×k windows; ``count_include_pad`` counts the zero padding in the divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        self._check(x)
        kwargs = {} if self.divisor_override is None else {"divisor_override": self.divisor_override}
        return F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode,
                            count_include_pad=self.count_include_pad, **kwargs)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(AvgPool2d):
    layout = "NCL"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x):
        self._check(x)
        return F.avg_pool1d(x, self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode,
                            count_include_pad=self.count_include_pad)


class AdaptiveAvgPool2d(_Pool):
    """Average pooling to a fixed ``output_size`` (bins: ⌊i·H/H'⌋ to ⌈(i+1)·H/H'⌉)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        self._check(x)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(_Pool):
    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        self._check(x)
        return F.adaptive_max_pool2d(x, self.output_size, return_indices=self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class MaxUnpool2d(_Pool):
    """The partial inverse of MaxPool2d: scatter values back to the argmax positions, zeros elsewhere."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, x, indices, output_size=None):
        self._check(x)
        return F.max_unpool2d(x, indices, self.kernel_size, stride=self.stride, padding=self.padding,
                              output_size=output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Upsample(Module):
    """Resize by ``size`` or ``scale_factor`` (``mode``: 'nearest', 'bilinear', ...), via F.interpolate."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, x):
        return F.interpolate(x, size=self.size, scale_factor=self.scale_factor, mode=self.mode,
                             align_corners=self.align_corners)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
