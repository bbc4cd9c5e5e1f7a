"""Batch-level image transforms on NCHW float arrays (plain NumPy).

Every transform is called as ``t(x, rng=None)`` on a batch ``x`` of shape
``(N, C, H, W)`` and returns a new array of the same shape. Random transforms
draw independent parameters **per sample** from ``rng`` when one is passed (the
:class:`~minicnn.data.DataLoader` passes its own), otherwise from a generator
they own, seeded by their ``seed`` argument. Integer inputs are converted to
float32; float inputs keep their dtype.

Geometric transforms use inverse mapping: for every output pixel (row ``i``,
column ``j``) a 2x3 matrix ``M`` gives the source position

    [x_s, y_s]^T = M @ [j, i, 1]^T            (pixel centres at integer coordinates)

and the output is the bilinear interpolation of the input there (see
:func:`warp_affine`). The deterministic functions :func:`rotate`, :func:`translate`,
:func:`zoom`, :func:`hflip` are the building blocks of the random classes.
"""
import numpy as np

# ---------------------------------------------------------------------------
# deterministic building blocks
# ---------------------------------------------------------------------------


def _as_batch(x, name):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a batch of shape (N, C, H, W), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x


def _per_sample(value, n, name):
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 0:
        return np.full(n, float(value))
    if value.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or one value per sample ({n},), got shape {value.shape}")
    return value


def _snap(c, eps=1e-6):
    """Round coordinates within ``eps`` of an integer, so that e.g. a 90 degree
    rotation samples grid points exactly (cos(pi/2) = 6e-17, not 0)."""
    r = np.rint(c)
    return np.where(np.abs(c - r) < eps, r, c)


def warp_affine(x, matrices, fill=0.0, padding_mode="zeros"):
    """Resample each image of a batch through an inverse affine map, bilinearly.

    For sample ``n`` the output pixel (row ``i``, column ``j``) reads the input
    at ``(x_s, y_s) = M_n @ (j, i, 1)``. With ``x0 = floor(x_s)``,
    ``y0 = floor(y_s)``, ``u = x_s - x0``, ``v = y_s - y0``::

        out[n, c, i, j] = (1-v)(1-u) X[y0, x0]   + (1-v) u X[y0, x0+1]
                        +     v (1-u) X[y0+1, x0] +     v u X[y0+1, x0+1]

    where ``X`` is ``x[n, c]`` inside the image and, outside it, ``fill``
    (``padding_mode="zeros"``) or the nearest edge pixel (``"border"``: the
    source position is clamped to ``[0, W-1] x [0, H-1]``).

    Args:
        x: ``(N, C, H, W)`` float array.
        matrices: ``(N, 2, 3)`` or ``(2, 3)`` inverse maps, output -> input pixel coordinates.
        fill: value of the pixels outside the input (``padding_mode="zeros"``).
        padding_mode: ``"zeros"`` (constant ``fill``) or ``"border"``.
    Returns:
        ``(N, C, H, W)`` array of ``x``'s dtype.
    """
    x = _as_batch(x, "warp_affine")
    n, c, h, w = x.shape
    m = np.broadcast_to(np.asarray(matrices, dtype=np.float64), (n, 2, 3))
    ii, jj = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    xs = m[:, 0, 0, None, None] * jj + m[:, 0, 1, None, None] * ii + m[:, 0, 2, None, None]
    ys = m[:, 1, 0, None, None] * jj + m[:, 1, 1, None, None] * ii + m[:, 1, 2, None, None]
    xs, ys = _snap(xs), _snap(ys)                                   # (N, H, W)
    if padding_mode == "border":
        xs, ys = np.clip(xs, 0, w - 1), np.clip(ys, 0, h - 1)
    elif padding_mode != "zeros":
        raise ValueError(f"warp_affine: padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    x0, y0 = np.floor(xs), np.floor(ys)
    u, v = (xs - x0).reshape(n, 1, -1), (ys - y0).reshape(n, 1, -1)
    x0, y0 = x0.astype(np.int64).reshape(n, 1, -1), y0.astype(np.int64).reshape(n, 1, -1)
    flat = x.reshape(n, c, h * w)

    def tap(yy, xx):
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        idx = np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)        # (N, 1, HW)
        vals = np.take_along_axis(flat, np.broadcast_to(idx, (n, c, h * w)), axis=2)
        return np.where(inside, vals, fill)

    out = ((1 - v) * ((1 - u) * tap(y0, x0) + u * tap(y0, x0 + 1))
           + v * ((1 - u) * tap(y0 + 1, x0) + u * tap(y0 + 1, x0 + 1)))
    return out.reshape(n, c, h, w).astype(x.dtype, copy=False)


def _about_center(a, t, h, w):
    """Matrices ``M = [A | (I - A) c - A t]`` for ``src = A (dst - t - c) + c``:
    a linear map ``A`` (N, 2, 2) about the image centre ``c = ((W-1)/2, (H-1)/2)``
    applied after removing a translation ``t`` (N, 2) of the content."""
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    m = np.empty((len(a), 2, 3))
    m[:, :, :2] = a
    m[:, :, 2] = c - np.einsum("nij,nj->ni", a, c + t)
    return m


def rotate(x, degrees, fill=0.0):
    """Rotate each image counter-clockwise (as displayed, rows pointing down) about its centre.

    With ``(x, y)`` = (column, row) measured from the centre, the inverse map is::

        x_s =  cos(a) x - sin(a) y
        y_s =  sin(a) x + cos(a) y

    so ``rotate(x, 90)`` of a square image equals ``np.rot90(x, 1, axes=(2, 3))``.
    ``degrees`` is a scalar or one angle per sample.
    """
    x = _as_batch(x, "rotate")
    n, _, h, w = x.shape
    a = np.deg2rad(_per_sample(degrees, n, "rotate"))
    cos, sin = np.cos(a), np.sin(a)
    lin = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    return warp_affine(x, _about_center(lin, np.zeros((n, 2)), h, w), fill)


def translate(x, shift_x, shift_y, fill=0.0):
    """Move the content right by ``shift_x`` and down by ``shift_y`` pixels:
    ``out[i, j] = x[i - shift_y, j - shift_x]`` (``fill`` where that is outside).
    Integer shifts are exact; fractional ones interpolate bilinearly."""
    x = _as_batch(x, "translate")
    n, _, h, w = x.shape
    t = np.stack([_per_sample(shift_x, n, "translate"), _per_sample(shift_y, n, "translate")], -1)
    return warp_affine(x, _about_center(np.broadcast_to(np.eye(2), (n, 2, 2)), t, h, w), fill)


def zoom(x, scale, fill=0.0):
    """Magnify each image by ``scale`` about its centre (``scale > 1`` zooms in):
    ``src - c = (dst - c) / scale``. ``scale`` is a scalar or one per sample."""
    x = _as_batch(x, "zoom")
    n, _, h, w = x.shape
    s = _per_sample(scale, n, "zoom")
    if np.any(s <= 0):
        raise ValueError(f"zoom: scale must be positive, got {s.min()}")
    lin = np.eye(2)[None] / s[:, None, None]
    return warp_affine(x, _about_center(lin, np.zeros((n, 2)), h, w), fill)


def resized_crop(x, boxes):
    """Crop box ``(x0, y0, bw, bh)`` of each image (continuous pixel-edge coordinates)
    resized to the full ``H x W`` grid: ``x_s = x0 + (j + 1/2) bw / W - 1/2``
    (likewise for rows). Positions past the edge take the edge pixel."""
    x = _as_batch(x, "resized_crop")
    n, _, h, w = x.shape
    b = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
    m = np.zeros((n, 2, 3))
    m[:, 0, 0] = b[:, 2] / w
    m[:, 0, 2] = b[:, 0] + 0.5 * b[:, 2] / w - 0.5
    m[:, 1, 1] = b[:, 3] / h
    m[:, 1, 2] = b[:, 1] + 0.5 * b[:, 3] / h - 0.5
    return warp_affine(x, m, padding_mode="border")


def hflip(x, which=None):
    """Mirror images left-right, ``out[..., j] = x[..., W-1-j]``, all of them or
    those where the boolean mask ``which`` (N,) is true."""
    x = _as_batch(x, "hflip")
    if which is None:
        return x[..., ::-1].copy()
    out = x.copy()
    out[which] = x[which][..., ::-1]
    return out


# ---------------------------------------------------------------------------
# transform objects
# ---------------------------------------------------------------------------


class Transform:
    """Base class. Random subclasses draw from ``rng`` if given, else from their own generator."""

    def __init__(self, seed=None):
        self.generator = np.random.default_rng(seed)

    def _rng(self, rng):
        return self.generator if rng is None else rng

    def __call__(self, x, rng=None):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({args})"


def apply_transform(t, x, rng=None):
    """Call ``t(x, rng=rng)`` for a :class:`Transform`, ``t(x)`` for any other callable."""
    return t(x, rng=rng) if isinstance(t, Transform) else t(x)


class Compose(Transform):
    """Apply transforms in order: ``t_k(...t_2(t_1(x)))``, passing ``rng`` down.
    Plain callables that are not :class:`Transform` s are called as ``f(x)``."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = apply_transform(t, x, rng)
        return x


class Normalize(Transform):
    """Per-channel standardisation ``out[:, c] = (x[:, c] - mean[c]) / std[c]``.
    ``mean``/``std`` are scalars or one value per channel."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std}")

    def __call__(self, x, rng=None):
        x = _as_batch(x, "Normalize")
        c = x.shape[1]
        shape = (1, -1, 1, 1)
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {name} has {v.size} values, input has {c} channels")
        return ((x - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(x.dtype, copy=False)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (independently per sample)."""

    def __init__(self, p=0.5, seed=None):
        super().__init__(seed)
        self.p = p

    def __call__(self, x, rng=None):
        x = _as_batch(x, "RandomHorizontalFlip")
        return hflip(x, self._rng(rng).random(len(x)) < self.p)


def _range(value, name, symmetric_about=0.0):
    """``v -> (c - v, c + v)`` for a number, ``(lo, hi)`` unchanged."""
    if np.ndim(value) == 0:
        if value < 0:
            raise ValueError(f"{name}: a single value must be non-negative, got {value}")
        return (symmetric_about - value, symmetric_about + value)
    lo, hi = value
    if lo > hi:
        raise ValueError(f"{name}: range ({lo}, {hi}) has lo > hi")
    return (float(lo), float(hi))


class RandomRotation(Transform):
    """Rotate each image by an angle ``a ~ U(-degrees, degrees)`` (or ``U(lo, hi)`` for a pair),
    counter-clockwise for ``a > 0``; see :func:`rotate`. Corners come in as ``fill``."""

    def __init__(self, degrees, fill=0.0, seed=None):
        super().__init__(seed)
        self.degrees = _range(degrees, "RandomRotation")
        self.fill = fill

    def __call__(self, x, rng=None):
        x = _as_batch(x, "RandomRotation")
        return rotate(x, self._rng(rng).uniform(*self.degrees, size=len(x)), self.fill)


class RandomTranslation(Transform):
    """Shift each image by integers ``dx, dy ~ U{-max_shift, ..., max_shift}`` pixels
    (exact, no interpolation); see :func:`translate`."""

    def __init__(self, max_shift, fill=0.0, seed=None):
        super().__init__(seed)
        self.max_shift = int(max_shift)
        self.fill = fill

    def __call__(self, x, rng=None):
        x = _as_batch(x, "RandomTranslation")
        d = self._rng(rng).integers(-self.max_shift, self.max_shift + 1, size=(2, len(x)))
        return translate(x, d[0], d[1], self.fill)


class RandomZoom(Transform):
    """Zoom each image about its centre by ``s ~ U(lo, hi)`` (``s > 1`` magnifies); see :func:`zoom`."""

    def __init__(self, scale=(0.9, 1.1), fill=0.0, seed=None):
        super().__init__(seed)
        self.scale = _range(scale, "RandomZoom")
        if self.scale[0] <= 0:
            raise ValueError(f"RandomZoom: scales must be positive, got {scale}")
        self.fill = fill

    def __call__(self, x, rng=None):
        x = _as_batch(x, "RandomZoom")
        return zoom(x, self._rng(rng).uniform(*self.scale, size=len(x)), self.fill)


class RandomResizedCrop(Transform):
    """Crop a random box and resize it back to ``H x W`` (Inception-style augmentation).

    Per sample: area fraction ``f ~ U(scale)``, aspect ``r = exp(U(log ratio))``,
    box ``bw = min(W, sqrt(f r H W))``, ``bh = min(H, sqrt(f H W / r))``, corner
    ``x0 ~ U(0, W - bw)``, ``y0 ~ U(0, H - bh)``; then :func:`resized_crop`.
    (Unlike torchvision, a too-large box is clipped instead of redrawn.)
    """

    def __init__(self, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
        super().__init__(seed)
        self.scale = _range(scale, "RandomResizedCrop")
        self.ratio = _range(ratio, "RandomResizedCrop")

    def __call__(self, x, rng=None):
        x = _as_batch(x, "RandomResizedCrop")
        n, _, h, w = x.shape
        g = self._rng(rng)
        area = g.uniform(*self.scale, size=n) * h * w
        r = np.exp(g.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), size=n))
        bw, bh = np.minimum(w, np.sqrt(area * r)), np.minimum(h, np.sqrt(area / r))
        x0, y0 = g.uniform(0, 1, size=n) * (w - bw), g.uniform(0, 1, size=n) * (h - bh)
        return resized_crop(x, np.stack([x0, y0, bw, bh], -1))


class RandomBrightness(Transform):
    """Add one offset ``b ~ U(-delta, delta)`` per sample to all its pixels: ``out = x + b``
    (no clipping, so it also works on normalised data)."""

    def __init__(self, delta, seed=None):
        super().__init__(seed)
        self.delta = _range(delta, "RandomBrightness")

    def __call__(self, x, rng=None):
        x = _as_batch(x, "RandomBrightness")
        b = self._rng(rng).uniform(*self.delta, size=(len(x), 1, 1, 1))
        return (x + b).astype(x.dtype, copy=False)
