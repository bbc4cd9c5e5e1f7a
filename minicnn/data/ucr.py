"""Real time-series classification sets of the UCR/UEA archive, embedded, with their published splits.

Files: ``minicnn/data/embedded/ucr/<Name>_{TRAIN,TEST}.ts.gz`` (from the BSD-3 aeon wheel; origin,
licence and citations in ``embedded/ucr/SOURCES.txt``), read by :mod:`minicnn.data.tsfile`.

=================  =====  ==========  =======  =============  ===========
name               dims   length      classes  train / test   archive
=================  =====  ==========  =======  =============  ===========
gunpoint           1      150         2        50 / 150       UCR
arrowhead          1      251         3        36 / 175       UCR
italypowerdemand   1      24          2        67 / 1029      UCR
osuleaf            1      427         6        200 / 242      UCR
basicmotions       6      100         4        40 / 40        UEA
japanesevowels     12     7 to 29     9        270 / 370      UEA
=================  =====  ==========  =======  =============  ===========

Arrays are ``(N, C, L)``. Series of different lengths (japanesevowels) must be padded
(:func:`pad_series`: zeros after the end, and a mask of the real samples); stacking them
without padding is a ValueError, and so is a NaN or infinite value in a series.
"""
import functools
from importlib import resources

import numpy as np

from minicnn.data.dataset import ArrayDataset
from minicnn.data.tsfile import read_ts

UCR_DATASETS = {
    "gunpoint": "GunPoint", "arrowhead": "ArrowHead", "italypowerdemand": "ItalyPowerDemand",
    "osuleaf": "OSULeaf", "basicmotions": "BasicMotions", "japanesevowels": "JapaneseVowels",
}


def _check_name(name, fn):
    if name not in UCR_DATASETS:
        raise ValueError(f"{fn}: unknown dataset {name!r}; expected one of {tuple(UCR_DATASETS)}")


@functools.lru_cache(maxsize=None)
def read_ucr(name, split="train"):
    """The parsed embedded file of ``name`` (a key of :data:`UCR_DATASETS`) and ``split``
    (``"train"`` or ``"test"``): a :class:`~minicnn.data.tsfile.TSFile`."""
    _check_name(name, "read_ucr")
    if split not in ("train", "test"):
        raise ValueError(f"read_ucr: split must be 'train' or 'test', got {split!r}")
    member = f"{UCR_DATASETS[name]}_{split.upper()}.ts.gz"
    with resources.as_file(resources.files("minicnn.data") / "embedded" / "ucr" / member) as path:
        return read_ts(path)


def check_finite(series, fn="check_finite"):
    """ValueError naming the first case and time step holding NaN or ±inf."""
    for i, s in enumerate(series):
        bad = ~np.isfinite(s)
        if bad.any():
            d, t = np.argwhere(bad)[0]
            raise ValueError(f"{fn}: series {i} holds {s[d, t]} at dimension {d}, time {t} (shape {s.shape}); "
                             "remove or impute missing values first")


def stack_series(series, fn="stack_series"):
    """Stack same-length ``(C, L)`` series into ``(N, C, L)``; different lengths are a ValueError
    (pad them with :func:`pad_series`), and so are NaN/inf values."""
    if len(series) == 0:
        raise ValueError(f"{fn}: no series to stack")
    shapes = sorted({np.shape(s) for s in series})
    if len({s[0] for s in shapes}) != 1 or any(len(s) != 2 for s in shapes):
        raise ValueError(f"{fn}: every series must be (C, L) with the same C; got shapes {shapes[:4]}")
    if len(shapes) != 1:
        lengths = [s[1] for s in shapes]
        raise ValueError(f"{fn}: the series have different lengths ({min(lengths)} to {max(lengths)}); "
                         "pad them (pad_series, or pad=True) to stack them")
    check_finite(series, fn)
    return np.stack(series)


def pad_series(series, length=None, value=0.0, fn="pad_series"):
    """Pad ``(C, L_i)`` series after their end to one length.

    Returns ``x (N, C, length)`` (float64; ``x[i, :, :L_i]`` is series i, the rest is ``value``) and
    ``mask`` bool ``(N, length)``, True on the real samples. ``length`` defaults to the longest
    ``L_i``; a series longer than ``length`` is a ValueError (nothing is cut), so are NaN/inf values.
    """
    if len(series) == 0:
        raise ValueError(f"{fn}: no series to pad")
    channels = {np.shape(s)[0] if np.ndim(s) == 2 else None for s in series}
    if None in channels or len(channels) != 1:
        raise ValueError(f"{fn}: every series must be (C, L) with the same C; got shapes "
                         f"{sorted({np.shape(s) for s in series})[:4]}")
    check_finite(series, fn)
    lengths = np.array([np.shape(s)[1] for s in series])
    length = int(lengths.max()) if length is None else int(length)
    if lengths.max() > length:
        raise ValueError(f"{fn}: series {int(lengths.argmax())} has length {lengths.max()} > length={length}")
    x = np.full((len(series), channels.pop(), length), value, dtype=np.float64)
    mask = np.zeros((len(series), length), dtype=bool)
    for i, s in enumerate(series):
        x[i, :, :s.shape[1]] = s
        mask[i, :s.shape[1]] = True
    return x, mask


def ucr_arrays(name, split="train", pad=False, normalize=True):
    """Arrays of an embedded UCR/UEA set: ``x float32 (N, C, L)``, ``y int64 (N,)``, ``mask bool (N, L)``.

    Args:
        name: a key of :data:`UCR_DATASETS`.
        split: ``"train"`` or ``"test"`` (the archive's published split).
        pad: pad variable-length series after the end with zeros to the longest length of *both*
            splits (so train and test share L); without it, different lengths are a ValueError.
        normalize: per channel, subtract the training split's mean and divide by its standard
            deviation (over real samples only; padding stays 0). The UCR sets are already
            z-normalised per series, so this barely changes them; it matters for the UEA sets.
    Returns:
        ``(x, y, mask)``; y is the position of the label in the file's ``@classLabel`` list.
    """
    _check_name(name, "ucr_arrays")
    ts = read_ucr(name, split)
    fn = f"ucr_arrays({name!r}, {split!r})"
    if pad:
        length = max(int(read_ucr(name, s).lengths.max()) for s in ("train", "test"))
        x, mask = pad_series(ts.series, length, fn=fn)
    else:
        x = stack_series(ts.series, fn=fn)
        mask = np.ones((x.shape[0], x.shape[2]), dtype=bool)
    if normalize:
        mean, std = train_channel_stats(name)
        x = np.where(mask[:, None, :], (x - mean[:, None]) / std[:, None], 0.0)
    return x.astype(np.float32), ts.y, mask


@functools.lru_cache(maxsize=None)
def train_channel_stats(name):
    """Per-channel mean and standard deviation of the training split's real samples (float64 (C,))."""
    series = read_ucr(name, "train").series
    values = np.concatenate([s for s in series], axis=1)
    std = values.std(axis=1)
    return values.mean(axis=1), np.where(std > 0, std, 1.0)


def ucr_classes(name):
    """The class names of ``name``, in the order of the class ids."""
    _check_name(name, "ucr_classes")
    return list(read_ucr(name, "train").classes)


def load_ucr(name, split="train", pad=False, normalize=True, transform=None):
    """An embedded UCR/UEA set as an :class:`ArrayDataset` of ``(float32 (C, L), int64)`` pairs
    (see :func:`ucr_arrays` for ``pad`` and ``normalize``)."""
    x, y, _ = ucr_arrays(name, split, pad, normalize)
    return ArrayDataset(x, y, transform=transform)
