"""U-Net (Ronneberger, Fischer & Brox, 2015), laid out like the paper's Figure 1, and the
paper's loss weight map.

::

    x ─> down1 ─────────────────────────── crop, cat ─> up1 ─> out (1×1 conv) ─> scores
           └ pool ─> down2 ─────────────── crop, cat ─> up2 ┘
                       └ pool ─> down3 ─── crop, cat ─> up3 ┘
                                   └ pool ─> down4 ─ crop, cat ─> up4 ┘
                                               └ pool ─> bottleneck ┘

* contracting path, ``down1 … down{depth}``: two 3×3 convolutions + ReLU each (unpadded by
  default, so each conv trims one pixel per side), then a 2×2 max pool; ``base_channels · 2^l``
  channels at level ``l`` (64, 128, 256, 512), the ``bottleneck`` has ``base · 2^depth`` (1024);
* expanding path, ``up{depth} … up1`` (``upL`` sits in the row of ``downL``): a 2×2 up-convolution
  (transposed conv, stride 2) halving the channels, the centre crop of ``downL``'s output to the
  up-sampled size, concatenation ``[skip, up]`` (skip first, as the paper), two 3×3 convs + ReLU;
* ``out``: a 1×1 convolution to ``num_classes`` scores.

Defaults are the paper's: 23 convolutional layers, 31,030,658 parameters (1 input channel,
2 classes), a 572×572 input gives 388×388 scores. Overlap-tile inference and training need the
size rules: :meth:`UNet.output_size` and :meth:`UNet.valid_input_size`; :func:`center_crop` cuts
labels or weight maps to the output.
"""
import numpy as np

from ... import functional as F
from ... import nn
from ...nn._checks import check_counts
from ...tensor import Tensor


def center_crop(x, size):
    """The centre ``size = (h, w)`` window of the last two axes of ``x`` (a Tensor or an array).

    The window starts at ``((H − h) // 2, (W − w) // 2)``; ``h <= H`` and ``w <= W`` are required.
    A Tensor is cropped differentiably (the gradient flows back into the window).
    """
    h, w = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    H, W = x.shape[-2], x.shape[-1]
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"center_crop: crop size {(h, w)} does not fit in the last two axes of shape {tuple(x.shape)}")
    top, left = (H - h) // 2, (W - w) // 2
    if (top, left, h, w) == (0, 0, H, W):
        return x
    return x[..., top:top + h, left:left + w]


class DoubleConv(nn.Sequential):
    """Two ``3×3 conv → [BatchNorm] → ReLU`` (one level of either path).

    ``(N, in_channels, H, W) → (N, out_channels, H − 4, W − 4)`` unpadded, ``(…, H, W)`` with
    ``padding=True``. With batch norm the convolutions have no bias (BN's shift replaces it).
    """

    def __init__(self, in_channels, out_channels, padding=False, batch_norm=False):
        layers = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, 3, padding=1 if padding else 0, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class Up(nn.Module):
    """One level of the expanding path.

    ``forward(x, skip)``: ``upconv`` (2×2 transposed conv, stride 2: ``(N, 2c, h, w) →
    (N, c, 2h, 2w)``), ``skip`` centre-cropped to ``(2h, 2w)``, ``cat([skip, up])`` on channels
    (``2c``), then :class:`DoubleConv` to ``c`` channels.
    """

    def __init__(self, in_channels, out_channels, padding=False, batch_norm=False):
        super().__init__()
        self.upconv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, padding, batch_norm)

    def forward(self, x, skip):
        x = self.upconv(x)
        skip = center_crop(skip, x.shape[-2:])
        return self.conv(F.cat([skip, x], axis=1))


class UNet(nn.Module):
    """U-Net: ``(N, in_channels, H, W) → (N, num_classes, H', W')`` per-pixel class scores.

    Args:
        in_channels: image channels (1 in the paper).
        num_classes: output score maps (2 in the paper: background, cell).
        base_channels: channels of the first level; level ``l`` has ``base_channels · 2^l``.
        depth: number of 2×2 poolings (4 in the paper).
        padding: False (the paper): unpadded 3×3 convs, the output is smaller than the input;
            True: padding 1, the output has the input's size.
        batch_norm: BatchNorm after every 3×3 conv (not in the paper).

    Sizes (``S = 2^depth``, each of H and W alike):

    * ``padding=False``: valid inputs are ``n = S·(b + 8) − 4`` where ``b`` is the bottleneck's
      output size, ``b >= 4`` (``b >= 3`` when depth = 1) so that every conv of the expanding path
      keeps a positive size (depth 4: ``n = 16k + 124``, k ≥ 4, i.e. 188, 204, …, 572, …); every
      2×2 pool then divides evenly and every crop is symmetric. Output ``n − 12·S + 8``
      (572 → 388).
    * ``padding=True``: ``n`` a multiple of ``S``; output ``n``.

    Other sizes raise a ValueError naming the nearest valid sizes, before any kernel runs.
    """

    def __init__(self, in_channels=1, num_classes=2, base_channels=64, depth=4, padding=False, batch_norm=False):
        super().__init__()
        check_counts("UNet", in_channels=in_channels, num_classes=num_classes, base_channels=base_channels, depth=depth)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.base_channels, self.depth = int(base_channels), int(depth)
        self.padding, self.batch_norm = bool(padding), bool(batch_norm)
        widths = [base_channels * 2 ** level for level in range(depth + 1)]
        cin = in_channels
        for level in range(depth):
            self.add_module(f"down{level + 1}", DoubleConv(cin, widths[level], padding, batch_norm))
            cin = widths[level]
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bottleneck = DoubleConv(widths[depth - 1], widths[depth], padding, batch_norm)
        for level in range(depth):
            self.add_module(f"up{level + 1}", Up(widths[level + 1], widths[level], padding, batch_norm))
        self.out = nn.Conv2d(widths[0], num_classes, 1)

    # ---- sizes ------------------------------------------------------------------------------
    def _min_bottleneck(self):
        return 3 if self.depth == 1 else 4

    def _is_valid(self, n):
        S = 2 ** self.depth
        if self.padding:
            return n >= S and n % S == 0
        return (n + 4) % S == 0 and (n + 4) // S - 8 >= self._min_bottleneck()

    def _nearest_valid(self, n):
        """(largest valid size below n or None, smallest valid size above n)."""
        S = 2 ** self.depth
        if self.padding:
            below = (n - 1) // S * S
            return (below if below >= S else None), (n // S + 1) * S
        smallest = S * (self._min_bottleneck() + 8) - 4
        below = (n + 4 - 1) // S * S - 4
        above = ((n + 4) // S + 1) * S - 4
        return (below if below >= smallest else None), max(above, smallest)

    def _size_error(self, what, n, shape=None):
        below, above = self._nearest_valid(n)
        nearest = (f"nearest valid sizes are {below} and {above}" if below is not None
                   else f"the smallest valid size is {above}")
        where = f" (input shape {shape})" if shape is not None else ""
        return ValueError(f"UNet (padding={self.padding}, depth={self.depth}): {what} {n}{where} is not a "
                          f"valid size; {nearest}")

    def output_size(self, size):
        """Output size for an input ``size`` (an int, or a pair ``(H, W)`` giving a pair).

        ``n − 12·2^depth + 8`` unpadded (572 → 388 at depth 4), ``n`` padded; a ValueError when
        ``size`` is not valid (see the class docstring).
        """
        if not isinstance(size, (int, np.integer)):
            return tuple(self.output_size(s) for s in size)
        if not self._is_valid(size):
            raise self._size_error("input size", size)
        return int(size) if self.padding else int(size) - 12 * 2 ** self.depth + 8

    def valid_input_size(self, min_output):
        """The smallest valid input size whose output is at least ``min_output`` pixels (per axis).

        With the overlap-tile strategy, a tile of this size predicts its centre
        ``output_size(valid_input_size(t)) >= t`` pixels; the margin around it is the context.
        """
        if min_output < 1:
            raise ValueError(f"UNet.valid_input_size: min_output must be >= 1, got {min_output}")
        S = 2 ** self.depth
        if self.padding:
            return -(-int(min_output) // S) * S
        b = max(self._min_bottleneck(), 4 + -(-(int(min_output) - 4) // S))
        return S * (b + 8) - 4

    def _check_input(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"UNet: expected a minicnn Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"UNet: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"UNet: expected {self.in_channels} input channels, got input of shape {tuple(x.shape)}")
        for what, n in (("input height", x.shape[2]), ("input width", x.shape[3])):
            if not self._is_valid(n):
                raise self._size_error(what, n, tuple(x.shape))

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, x):
        self._check_input(x)
        skips = []
        for level in range(1, self.depth + 1):
            x = getattr(self, f"down{level}")(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for level in range(self.depth, 0, -1):
            x = getattr(self, f"up{level}")(x, skips[level - 1])
        return self.out(x)


def unet(in_channels=1, num_classes=2, base_channels=64, depth=4, padding=False, batch_norm=False):
    """The paper's U-Net (see :class:`UNet`); the defaults give its 31,030,658 parameters."""
    return UNet(in_channels, num_classes, base_channels, depth, padding, batch_norm)


# ---- the weight map -------------------------------------------------------------------------
def _class_weight_map(foreground, class_weights):
    """``w_c`` per pixel (float64) for the two classes background/foreground."""
    if class_weights is None:
        return np.ones(foreground.shape)
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"unet_weight_map: class_weights must be 'balanced', None or a pair "
                             f"(background, foreground), got {class_weights!r}")
        total = foreground.size
        n_fg = int(np.count_nonzero(foreground))
        counts = [c for c in (total - n_fg, n_fg) if c > 0]
        w_bg = total / (len(counts) * (total - n_fg)) if n_fg < total else 0.0
        w_fg = total / (len(counts) * n_fg) if n_fg > 0 else 0.0
    else:
        pair = tuple(class_weights)
        if len(pair) != 2:
            raise ValueError(f"unet_weight_map: class_weights must be a pair (background, foreground), got {pair}")
        w_bg, w_fg = float(pair[0]), float(pair[1])
    return np.where(foreground, w_fg, w_bg)


def unet_weight_map(instances, w0=10.0, sigma=5.0, class_weights="balanced"):
    """The U-Net paper's pixel-wise loss weights (its eq. 2) from an instance mask.

    ``w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))``

    * ``d1``, ``d2``: the Euclidean distances from ``x`` to the border of the nearest and of the
      second-nearest cell, the distance to a cell being the distance to its closest pixel (exact
      distance transforms, Felzenszwalb–Huttenlocher, ``minicnn.kernels.cpu.distance``). With
      fewer than 2 cells ``d2 = inf`` and the term is 0.
    * the border term is added on background pixels only: it makes the network learn the thin
      background gaps that separate touching cells (inside a cell ``d1 = 0`` and the term would
      only re-weight the cell's own pixels).
    * ``w_c``, the class-frequency balancing, for the classes background (``instances == 0``) and
      foreground (any cell): ``"balanced"``: ``w_c(k) = N / (K · N_k)`` with ``N`` pixels, ``N_k``
      of class ``k`` and ``K`` the number of classes present, i.e. ``1/frequency`` normalised so
      that the mean of ``w_c`` over the pixels is 1; ``None``: 1 everywhere; a pair
      ``(w_background, w_foreground)``: those values.

    Args:
        instances: integer ``(H, W)``: 0 = background, each id ``k > 0`` one cell.
        w0, sigma: the paper's 10 and 5 (pixels).
        class_weights: ``"balanced"``, None, or ``(w_background, w_foreground)``.

    Returns:
        float32 ``(H, W)``: multiply the per-pixel loss (``F.cross_entropy(..., reduction="none")``)
        by it, cropped to the network's output with :func:`center_crop`.
    """
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise ValueError(f"unet_weight_map: instances must be a 2-D (H, W) mask, got shape {instances.shape}")
    if instances.dtype.kind not in "iu":
        raise TypeError(f"unet_weight_map: instances must be integers (0 = background, k > 0 a cell), "
                        f"got dtype {instances.dtype}")
    if instances.size and instances.min() < 0:
        raise ValueError(f"unet_weight_map: instance ids must be >= 0, got {int(instances.min())}")
    if not w0 >= 0 or not sigma > 0:
        raise ValueError(f"unet_weight_map: need w0 >= 0 and sigma > 0, got w0={w0}, sigma={sigma}")
    from ...kernels.cpu.distance import two_nearest_instance_distances  # Numba: imported on first use

    foreground = instances > 0
    weights = _class_weight_map(foreground, class_weights)
    d1, d2 = two_nearest_instance_distances(instances)
    with np.errstate(invalid="ignore"):
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma ** 2))  # inf distances give exp(−inf) = 0
    border[foreground] = 0.0
    return (weights + border).astype(np.float32)
