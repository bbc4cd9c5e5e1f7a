"""minicnn.data: embedded data, IDX reader, Fashion-MNIST, DataLoader, transforms, synthetic sets."""
import gzip
import os
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.data import (ArrayDataset, DataLoader, Dataset, Subset, digits_arrays, digits_on_canvas,
                          load_digits, load_fashion_mnist, load_nuclei, nuclei_arrays, nuclei_tiles,
                          parse_idx, random_split, read_idx)
from minicnn.data import transforms as T
from minicnn.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_ROOT, FASHION_MNIST_STD, _embedded

# ---------------------------------------------------------------- embedded data


def test_embedded_digits_file():
    d = _embedded("mnist5k.npz")
    assert d["images"].shape == (5000, 28, 28) and d["images"].dtype == np.uint8
    assert d["labels"].shape == (5000,) and d["labels"].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(d["labels"]), [500] * 10)
    train, test = d["train_idx"], d["test_idx"]
    assert len(train) == 4000 and len(test) == 1000
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))   # disjoint, complete
    np.testing.assert_array_equal(np.bincount(d["labels"][train]), [400] * 10)
    np.testing.assert_array_equal(np.bincount(d["labels"][test]), [100] * 10)
    assert d["images"].max() == 255 and d["images"].min() == 0
    # real digits: every image has ink, and on average ~19% of MNIST pixels are nonzero
    assert (d["images"].reshape(5000, -1).max(1) > 0).all()
    assert 0.1 < (d["images"] > 0).mean() < 0.3


def test_load_digits():
    raw = load_digits("train", normalize=False)
    assert len(raw) == 4000 and len(load_digits("test")) == 1000 and len(load_digits("all")) == 5000
    assert raw.images.shape == (4000, 1, 28, 28) and raw.images.dtype == np.float32
    assert raw.labels.dtype == np.int64 and set(np.unique(raw.labels)) == set(range(10))
    assert raw.images.min() == 0.0 and raw.images.max() == 1.0
    norm = load_digits("train")
    assert abs(float(norm.images.mean())) < 1e-4 and abs(float(norm.images.std()) - 1) < 1e-4
    images, labels = digits_arrays("test")
    np.testing.assert_array_equal(load_digits("test", normalize=False).images[:, 0] * 255, images)
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")


def test_embedded_nuclei():
    image, mask = nuclei_arrays()
    assert image.shape == mask.shape == (512, 512)
    assert image.dtype == np.uint16 and mask.dtype == np.uint16
    assert len(np.unique(mask)) - 1 == 125
    x, m = load_nuclei()
    assert x.dtype == np.float32 and abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    np.testing.assert_array_equal(np.unique(m), np.arange(126))
    np.testing.assert_array_equal(m > 0, mask > 0)           # relabelling keeps the foreground
    # nuclei are brighter than the background
    assert x[m > 0].mean() > x[m == 0].mean() + 1


def test_embedded_sources_file_present():
    here = os.path.join(os.path.dirname(__file__), "..", "minicnn", "data", "embedded", "SOURCES.txt")
    text = open(here).read()
    assert "BSD 3-Clause" in text and "Raschka" in text and "Schmidt" in text and "125 instances" in text


# ---------------------------------------------------------------- IDX


def idx_bytes(array, code):
    """An IDX file written by hand: 0x0000, type code, ndim, big-endian sizes, big-endian data."""
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return header + array.astype(big).tobytes()


def test_idx_reader_on_small_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "imgs-idx3-ubyte"
    raw.write_bytes(idx_bytes(images, 0x08))
    assert raw.read_bytes()[:4] == b"\x00\x00\x08\x03"          # magic 2051
    np.testing.assert_array_equal(read_idx(raw, expected_magic=2051), images)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    gz = tmp_path / "labels-idx1-ubyte.gz"
    with gzip.open(gz, "wb") as f:
        f.write(idx_bytes(labels, 0x08))
    np.testing.assert_array_equal(read_idx(gz, expected_magic=2049), labels)
    ints = np.array([[-5, 70000], [1, 2]], dtype=np.int32)        # big-endian multi-byte type
    got = parse_idx(idx_bytes(ints, 0x0C))
    np.testing.assert_array_equal(got, ints)
    assert got.dtype.isnative
    with pytest.raises(ValueError, match="expected IDX magic number 2049, got 2051"):
        read_idx(raw, expected_magic=2049)
    with pytest.raises(ValueError, match="holds"):
        parse_idx(idx_bytes(images, 0x08)[:-1])
    with pytest.raises(ValueError, match="not an IDX"):
        parse_idx(b"\x01\x02\x08\x01" + b"\x00" * 8)


def test_fashion_mnist_missing_names_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="sudo apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_ROOT),
                    reason=f"{FASHION_MNIST_ROOT} absent (sudo apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_files():
    train = load_fashion_mnist("train", normalize=False)
    test = load_fashion_mnist("test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
    x = train.images.astype(np.float64)
    assert x.mean() == pytest.approx(FASHION_MNIST_MEAN, abs=1e-4)
    assert x.std() == pytest.approx(FASHION_MNIST_STD, abs=1e-4)
    assert 0.0 == x.min() and x.max() == 1.0


# ---------------------------------------------------------------- Dataset / DataLoader


class ListDataset(Dataset):
    """A dataset without get_batch: exercises the item-by-item path."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 2, 2), i, dtype=np.float32), i


def index_dataset(n):
    """ArrayDataset whose image i is filled with i and whose label is i."""
    return ArrayDataset(np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32),
                        np.arange(n, dtype=np.int64))


@given(st.integers(0, 60), st.integers(1, 16), st.booleans(), st.booleans(), st.integers(0, 2 ** 16))
def test_loader_visits_every_index_once(n, batch_size, shuffle, drop_last, seed):
    for ds in (index_dataset(n), ListDataset(n)):
        loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
        batches = list(loader)
        assert len(batches) == len(loader) == (n // batch_size if drop_last else -(-n // batch_size))
        seen = np.concatenate([y for _, y in batches]) if batches else np.zeros(0, int)
        for x, y in batches:
            assert x.shape[1:] == (1, 2, 2) and x.dtype == np.float32
            np.testing.assert_array_equal(x[:, 0, 0, 0], y)        # inputs and labels stay paired
            assert len(y) == batch_size or (not drop_last and y is batches[-1][1])
        if drop_last:
            assert len(seen) == n - n % batch_size and len(np.unique(seen)) == len(seen)
        else:
            np.testing.assert_array_equal(np.sort(seen), np.arange(n))
        if not shuffle:
            np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_loader_shuffle_reproducible_and_new_each_epoch():
    ds = index_dataset(100)

    def epochs(seed, count=3):
        loader = DataLoader(ds, batch_size=10, shuffle=True, seed=seed)
        return [np.concatenate([y for _, y in loader]) for _ in range(count)]

    a, b, c = epochs(1), epochs(1), epochs(2)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)                       # same seed, same epochs
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])   # new permutation per epoch
    assert not np.array_equal(a[0], c[0])
    # the fast path and the item-by-item path see the same order for the same seed
    slow = DataLoader(ListDataset(100), batch_size=10, shuffle=True, seed=1)
    np.testing.assert_array_equal(np.concatenate([y for _, y in slow]), a[0])


def test_loader_with_transform_reproducible():
    ds = index_dataset(40)
    t = T.Compose([T.RandomBrightness(0.5), T.RandomHorizontalFlip(0.5)])

    def run(seed):
        return [x for x, _ in DataLoader(ds, batch_size=8, shuffle=True, seed=seed, transform=t)]

    for xa, xb in zip(run(3), run(3)):
        np.testing.assert_array_equal(xa, xb)
    assert not all(np.array_equal(xa, xb) for xa, xb in zip(run(3), run(4)))


def test_subset_and_random_split():
    ds = index_dataset(50)
    parts = random_split(ds, [30, 15, 5], seed=0)
    assert [len(p) for p in parts] == [30, 15, 5]
    all_idx = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(all_idx), np.arange(50))
    np.testing.assert_array_equal(random_split(ds, [30, 20], seed=0)[0].indices, parts[0].indices)
    assert [len(p) for p in random_split(ds, [0.5, 0.3, 0.2], seed=1)] == [25, 15, 10]
    assert [len(p) for p in random_split(index_dataset(10), [0.33, 0.33, 0.34], seed=1)] == [4, 3, 3]
    with pytest.raises(ValueError, match="lengths"):
        random_split(ds, [10, 10], seed=0)
    # a Subset of a Subset keeps its labels paired with its images and uses the batch path
    sub = Subset(parts[0], [3, 1, 4])
    x, y = sub[1]
    assert y == parts[0].indices[1] and x[0, 0, 0] == y
    xb, yb = next(iter(DataLoader(sub, batch_size=3)))
    np.testing.assert_array_equal(yb, parts[0].indices[[3, 1, 4]])
    np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)


def test_array_dataset_validates_and_transforms():
    with pytest.raises(ValueError, match="same length"):
        ArrayDataset(np.zeros((3, 1, 2, 2)), np.zeros(4))
    ds = ArrayDataset(np.ones((4, 1, 2, 2), np.float32), np.arange(4), transform=T.Normalize(1.0, 2.0))
    np.testing.assert_array_equal(ds[0][0], np.zeros((1, 2, 2)))
    np.testing.assert_array_equal(next(iter(DataLoader(ds, batch_size=4)))[0], np.zeros((4, 1, 2, 2)))


# ---------------------------------------------------------------- transforms


def images(seed, shape=(3, 2, 9, 9), dtype=np.float32):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def test_flip_twice_is_identity_and_flip_math():
    x = images(0, (2, 3, 5, 7))
    f = T.RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(f(f(x)), x)
    np.testing.assert_array_equal(f(x)[..., 0], x[..., -1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)
    mixed = T.RandomHorizontalFlip(p=0.5, seed=0)(images(1, (200, 1, 2, 3)))
    src = images(1, (200, 1, 2, 3))
    flipped = np.all(mixed == src[..., ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(mixed == src, axis=(1, 2, 3)))
    assert 60 < flipped.sum() < 140                                  # each sample decided on its own


@given(st.integers(1, 12), st.integers(1, 3), st.integers(0, 1000))
def test_rotation_by_90_matches_rot90_and_0_is_identity(side, channels, seed):
    x = images(seed, (2, channels, side, side), np.float64)
    np.testing.assert_array_equal(T.rotate(x, 0.0), x)
    np.testing.assert_allclose(T.rotate(x, 90.0), np.rot90(x, 1, axes=(2, 3)), atol=1e-12)
    np.testing.assert_allclose(T.rotate(x, -90.0), np.rot90(x, -1, axes=(2, 3)), atol=1e-12)
    np.testing.assert_allclose(T.RandomRotation((180, 180))(x), x[..., ::-1, ::-1], atol=1e-12)


def test_rotation_keeps_constant_inside_and_fills_corners():
    x = np.ones((1, 1, 21, 21), np.float32)
    y = T.rotate(x, 45.0, fill=0.0)
    assert y[0, 0, 10, 10] == pytest.approx(1.0) and y[0, 0, 0, 0] == 0.0
    # inside the inscribed circle, bilinear interpolation of a constant is the constant
    ii, jj = np.mgrid[:21, :21]
    inner = (ii - 10) ** 2 + (jj - 10) ** 2 < 9 ** 2
    np.testing.assert_allclose(y[0, 0][inner], 1.0, rtol=1e-6)


def test_bilinear_interpolation_of_a_ramp_is_exact():
    ramp = np.tile(np.arange(8, dtype=np.float64), (8, 1))[None, None]   # value = column index
    shifted = T.translate(ramp, 0.25, 0.0)                               # out[j] = ramp(j - 0.25)
    np.testing.assert_allclose(shifted[..., 1:], ramp[..., 1:] - 0.25)
    zoomed = T.zoom(ramp, 2.0)                                           # x_s = c + (j - c) / 2, c = 3.5
    np.testing.assert_allclose(zoomed[0, 0, 0], 3.5 + (np.arange(8) - 3.5) / 2)


def test_translation_is_exact_and_fills():
    x = images(2, (4, 1, 6, 6))
    y = T.translate(x, 2, -1, fill=-7.0)                  # right 2, up 1
    np.testing.assert_array_equal(y[..., :-1, 2:], x[..., 1:, :-2])
    assert np.all(y[..., :, :2] == -7.0) and np.all(y[..., -1, :] == -7.0)
    np.testing.assert_array_equal(T.RandomTranslation(0)(x), x)
    out = T.RandomTranslation(2, seed=0)(x)
    assert out.shape == x.shape and not np.array_equal(out, x)


def test_zoom_and_resized_crop_identities():
    x = images(3)
    np.testing.assert_allclose(T.zoom(x, 1.0), x)
    np.testing.assert_allclose(T.RandomZoom((1.0, 1.0))(x), x)
    np.testing.assert_allclose(T.resized_crop(x, np.tile([0, 0, 9, 9], (3, 1))), x)
    # cropping the left half (x0=0, width W/2) and stretching: out column j samples column (j+.5)/2 - .5
    ramp = np.tile(np.arange(8, dtype=np.float64), (8, 1))[None, None]
    half = T.resized_crop(ramp, [[0, 0, 4, 8]])
    np.testing.assert_allclose(half[0, 0, 0, 1:-1], (np.arange(1, 7) + 0.5) / 2 - 0.5)
    out = T.RandomResizedCrop(seed=0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_normalize_math_and_brightness():
    x = images(4, (2, 3, 4, 4), np.float64)
    mean, std = [0.1, 0.2, 0.3], [1.0, 2.0, 4.0]
    y = T.Normalize(mean, std)(x)
    for c in range(3):
        np.testing.assert_allclose(y[:, c], (x[:, c] - mean[c]) / std[c])
    with pytest.raises(ValueError, match="channels"):
        T.Normalize([0.1, 0.2], [1, 1])(x)
    b = T.RandomBrightness(0.3, seed=0)(x) - x
    offsets = b[:, 0, 0, 0]
    np.testing.assert_allclose(b, offsets[:, None, None, None] * np.ones_like(x))
    assert np.all(np.abs(offsets) <= 0.3)


def test_random_transforms_seeded_and_rng_argument():
    x = images(5)
    for make in (lambda s: T.RandomRotation(30, seed=s), lambda s: T.RandomZoom((0.8, 1.2), seed=s),
                 lambda s: T.RandomResizedCrop(seed=s), lambda s: T.RandomTranslation(3, seed=s)):
        np.testing.assert_array_equal(make(0)(x), make(0)(x))
        np.testing.assert_array_equal(make(0)(x, rng=np.random.default_rng(9)),
                                      make(1)(x, rng=np.random.default_rng(9)))
    pipeline = T.Compose([T.RandomRotation(10), T.Normalize(0.5, 0.25), lambda a: a * 2])
    assert pipeline(x, rng=np.random.default_rng(0)).shape == x.shape
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.RandomRotation(10)(x[0])
    assert T.rotate(x.astype(np.uint8), 0).dtype == np.float32


# ---------------------------------------------------------------- synthetic sets


def test_digits_on_canvas_boxes_and_masks_exact():
    s = digits_on_canvas(40, canvas=64, digits_per_image=(1, 3), seed=0)
    assert s.images.shape == (40, 1, 64, 64) and s.images.dtype == np.float32
    assert 0 <= s.images.min() and s.images.max() <= 1
    for n in range(len(s)):
        boxes, labels, masks = s.boxes[n], s.labels[n], s.masks[n]
        assert 1 <= len(boxes) <= 3 and len(labels) == len(masks) == len(boxes)
        assert labels.dtype == np.int64 and np.all((0 <= labels) & (labels <= 9))
        for b, m in zip(boxes, masks):
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            np.testing.assert_array_equal(b, [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        union = masks.any(0)
        np.testing.assert_array_equal(s.images[n, 0] > 0, union)         # ink exactly where the masks are
        for i in range(len(boxes)):                                         # no overlap by default
            for j in range(i):
                a, b = boxes[i], boxes[j]
                assert a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3]
    again = digits_on_canvas(40, canvas=64, digits_per_image=(1, 3), seed=0)
    np.testing.assert_array_equal(again.images, s.images)
    inst = s.instance_masks()
    assert inst.shape == (40, 64, 64) and inst.max() <= 3


def test_digits_on_canvas_localization_view():
    images_, labels, boxes = digits_on_canvas(10, canvas=48, seed=1, split="test").as_localization()
    assert images_.shape == (10, 1, 48, 48) and labels.shape == (10,) and boxes.shape == (10, 4)
    assert np.all(boxes[:, 2] - boxes[:, 0] <= 28) and np.all(boxes[:, 2] <= 48)
    with pytest.raises(ValueError, match="one object"):
        digits_on_canvas(5, digits_per_image=2, seed=0).as_localization()


def test_nuclei_tiles():
    s = nuclei_tiles(tile=128)
    assert s.images.shape == (16, 1, 128, 128)
    total = 0
    for boxes, masks in zip(s.boxes, s.masks):
        for b, m in zip(boxes, masks):
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            np.testing.assert_array_equal(b, [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        total += len(boxes)
    assert total >= 125                                     # nuclei cut by tile borders count in each tile
    assert len(nuclei_tiles(tile=512).boxes[0]) == 125
