"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"; Apache-2.0), regenerated offline.

Ten hand-made templates of 12 points (one per digit) are turned into 40-point signals by the
published procedure, with the published defaults and seed, so the 4,000 / 1,000 split is the
published one. This is minicnn's own NumPy code of that procedure (the ``mnist1d`` package, which
also needs SciPy, is not imported); ``tests/test_signals_data.py`` compares the two where the
package is installed.

Per sample, from a template ``x`` (12 values) on the grid ``t``, with one legacy NumPy
``RandomState(seed)`` drawn in this order:

1. pad: append ``p = 36 + ⌊u·25⌋`` zeros (``u ~ U[0, 1)``) to ``x + 1e-8``;
2. dilate: resample linearly to 72 points (``template_len + padding_max``);
3. scale: multiply by ``1 + 0.4·(u − 0.5)``;
4. translate: roll right by ``k = choice(48)`` samples;
5. noise: where the signal is exactly 0, replace it by Gaussian noise ``0.25·N(0, 1)`` smoothed
   by a Gaussian of σ = 2 (radius 8, mirrored edges); then add ``0.02·N(0, 1)`` everywhere;
6. shear: subtract ``0.75·(u − 0.5)·linspace(−0.5, 0.5, 72)``;
7. subsample: resample linearly to 40 points.

500 samples per class are made class by class, shuffled with one permutation, standardised with
the mean and standard deviation of all 5,000 × 40 values, and split: the first 4,000 are train.
"""
import functools

import numpy as np

from minicnn.data.dataset import ArrayDataset

# The published defaults (mnist1d's get_dataset_args)
DEFAULTS = dict(num_samples=5000, train_split=0.8, template_len=12, padding=(36, 60), scale_coeff=0.4,
                max_translation=48, corr_noise_scale=0.25, iid_noise_scale=2e-2, shear_scale=0.75,
                final_seq_length=40, seed=42)

# The ten 12-point digit templates of the MNIST-1D paper (before whitening)
_TEMPLATES = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


def templates():
    """The ten templates as the procedure uses them, float64 ``(10, 12)``: each one whitened
    (zero mean, unit standard deviation), shifted to start at 0, and divided by 6."""
    x = np.array(_TEMPLATES, dtype=np.float64)
    x = x - x.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    x = x - x[:, :1]
    return x / 6.0


def resample_linear(x, n):
    """``x`` (values on ``linspace(0, 1, len(x))``) linearly interpolated at ``linspace(0, 1, n)``."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def gaussian_smooth(x, sigma):
    """1-D Gaussian filter: weights ``exp(−i²/2σ²)`` for ``|i| <= ⌊4σ + ½⌋``, normalised to sum 1;
    the edges mirrored (``d c b a | a b c d | d c b a``)."""
    r = int(4.0 * sigma + 0.5)
    i = np.arange(-r, r + 1)
    w = np.exp(-0.5 * (i / sigma) ** 2)
    w /= w.sum()
    xp = np.pad(x, r, mode="symmetric")
    return np.convolve(xp, w, mode="valid")  # w is symmetric: convolution = correlation


def _transform(x, rs, a):
    """Steps 1-7 of the module docstring for one template ``x``."""
    lo, hi = a["padding"]
    p = lo + int(rs.rand() * (hi - lo + 1))
    x = np.concatenate([x + 1e-8, np.zeros(p)])
    x = resample_linear(x, a["template_len"] + hi)
    x = x * (1 + a["scale_coeff"] * (rs.rand() - 0.5))
    k = rs.choice(a["max_translation"])
    x = np.concatenate([x[len(x) - k:], x[:len(x) - k]])
    mask = x != 0
    x = mask * x + (1 - mask) * gaussian_smooth(a["corr_noise_scale"] * rs.randn(len(x)), 2)
    x = x + a["iid_noise_scale"] * rs.randn(len(x))
    x = x - a["shear_scale"] * (rs.rand() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return resample_linear(x, a["final_seq_length"])


@functools.lru_cache(maxsize=4)
def _make(seed, num_samples):
    a = dict(DEFAULTS, seed=seed, num_samples=num_samples)
    rs = np.random.RandomState(a["seed"])
    t = templates()
    per_class = a["num_samples"] // len(t)
    xs = [_transform(t[c], rs, a) for c in range(len(t)) for _ in range(per_class)]
    ys = [c for c in range(len(t)) for _ in range(per_class)]
    order = rs.permutation(len(ys))
    xs, ys = np.stack(xs)[order], np.array(ys, dtype=np.int64)[order]
    xs = (xs - xs.mean()) / xs.std()
    cut = int(len(ys) * a["train_split"])
    out = dict(x=xs[:cut], y=ys[:cut], x_test=xs[cut:], y_test=ys[cut:])
    for v in out.values():
        v.setflags(write=False)
    return out


def mnist1d_arrays(split="train", seed=DEFAULTS["seed"], num_samples=DEFAULTS["num_samples"]):
    """MNIST-1D signals ``float64 (N, 40)`` and labels ``int64 (N,)`` of ``split``.

    ``split``: ``"train"`` (the first 80 %: 4,000 with the defaults) or ``"test"`` (1,000).
    The defaults are the published ones (seed 42, 5,000 samples); built once per process (~0.3 s).
    """
    if split not in ("train", "test"):
        raise ValueError(f"mnist1d_arrays: split must be 'train' or 'test', got {split!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 10:
        raise ValueError(f"mnist1d_arrays: num_samples must be an integer >= 10, got {num_samples!r}")
    d = _make(int(seed), int(num_samples))
    return (d["x"], d["y"]) if split == "train" else (d["x_test"], d["y_test"])


def load_mnist1d(split="train", transform=None):
    """MNIST-1D as an :class:`ArrayDataset`: signals ``float32 (N, 1, 40)``, labels int64 in 0..9."""
    x, y = mnist1d_arrays(split)
    return ArrayDataset(x[:, None, :].astype(np.float32), y.copy(), transform=transform)
