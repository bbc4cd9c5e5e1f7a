"""Data of the generative models (minicnn.data.generative) against plain-loop references written here:
Sobel and Canny edges, paired / unpaired sets, images in [-1, 1]."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.data import DataLoader, digits_arrays, fashion_mnist_arrays, nuclei_arrays, nuclei_segmentation
from minicnn.metrics import connected_components
from minicnn.data.generative import (PairedSet, UnpairedSet, canny_edges, domain_pair, edges_to_fashion,
                                     gan_images, gaussian_kernel1d, nuclei_mask_to_image, sobel_edges)


def fashion_or_skip(split="test"):
    try:
        return fashion_mnist_arrays(split)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST (sudo apt-get install dataset-fashion-mnist) is not installed")


# ---------------------------------------------------------------- plain-loop references

def ref_sobel(img):
    """(gx, gy) of one (H, W) float64 image, replicated borders, one pixel at a time."""
    H, W = img.shape

    def at(i, j):
        return img[min(max(i, 0), H - 1), min(max(j, 0), W - 1)]

    gx, gy = np.zeros((H, W)), np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            gx[i, j] = (at(i - 1, j + 1) + 2.0 * at(i, j + 1) + at(i + 1, j + 1)) \
                - (at(i - 1, j - 1) + 2.0 * at(i, j - 1) + at(i + 1, j - 1))
            gy[i, j] = (at(i + 1, j - 1) + 2.0 * at(i + 1, j) + at(i + 1, j + 1)) \
                - (at(i - 1, j - 1) + 2.0 * at(i - 1, j) + at(i - 1, j + 1))
    return gx, gy


def ref_blur(img, w):
    """Rows then columns, replicated borders, taps accumulated in order (the weights w are checked
    against the Gaussian formula in test_gaussian_kernel1d)."""
    H, W = img.shape
    r = len(w) // 2
    tmp = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            s = w[0] * img[min(max(i - r, 0), H - 1), j]
            for k in range(1, len(w)):
                s = s + w[k] * img[min(max(i + k - r, 0), H - 1), j]
            tmp[i, j] = s
    out = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            s = w[0] * tmp[i, min(max(j - r, 0), W - 1)]
            for k in range(1, len(w)):
                s = s + w[k] * tmp[i, min(max(j + k - r, 0), W - 1)]
            out[i, j] = s
    return out


def ref_canny(img, sigma, low, high):
    """Canny on one (H, W) image in [0, 1]: angle from atan2, 4 bins, hysteresis by repeated dilation."""
    H, W = img.shape
    b = ref_blur(img, gaussian_kernel1d(sigma)) if sigma > 0 else img
    gx, gy = ref_sobel(b)
    mag = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            mag[i, j] = math.sqrt(gx[i, j] * gx[i, j] + gy[i, j] * gy[i, j]) / 8.0
    thin = np.zeros((H, W), dtype=bool)
    for i in range(H):
        for j in range(W):
            if mag[i, j] <= 0:
                continue
            angle = math.degrees(math.atan2(gy[i, j], gx[i, j])) % 180.0
            if angle < 22.5 or angle >= 157.5:
                d = (0, 1)
            elif angle < 67.5:
                d = (1, 1)
            elif angle < 112.5:
                d = (1, 0)
            else:
                d = (1, -1)
            nb = []
            for s in (-1, 1):
                a, c = i + s * d[0], j + s * d[1]
                nb.append(mag[a, c] if 0 <= a < H and 0 <= c < W else 0.0)
            thin[i, j] = mag[i, j] > nb[0] and mag[i, j] >= nb[1]
    weak = thin & (mag >= low)
    edges = thin & (mag >= high)
    while True:
        grown = edges.copy()
        for i in range(H):
            for j in range(W):
                if weak[i, j] and not edges[i, j]:
                    if edges[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].any():
                        grown[i, j] = True
        if (grown == edges).all():
            return edges
        edges = grown


def ref_pad_unit(pixels, size):
    """uint8 (N, 28, 28) -> (N, 1, size, size) in [-1, 1], background -1, centred, pixel by pixel."""
    n, h, w = pixels.shape
    top = (size - h) // 2
    out = np.full((n, 1, size, size), -1.0)
    for k in range(n):
        for i in range(h):
            for j in range(w):
                out[k, 0, top + i, top + j] = pixels[k, i, j] / 127.5 - 1.0
    return out


# ---------------------------------------------------------------- edges

def test_gaussian_kernel1d():
    for sigma in (0.5, 1.0, 1.7):
        r = int(4 * sigma + 0.5)
        w = [math.exp(-k * k / (2 * sigma * sigma)) for k in range(-r, r + 1)]
        np.testing.assert_allclose(gaussian_kernel1d(sigma), np.array(w) / sum(w), rtol=1e-14)
    assert gaussian_kernel1d(0.0).tolist() == [1.0]


@given(n=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_sobel_matches_loops(n, h, w, seed):
    x = np.random.default_rng(seed).random((n, 1, h, w))
    got = sobel_edges(x)
    assert got.shape == (n, 1, h, w) and got.dtype == np.float32
    for k in range(n):
        gx, gy = ref_sobel(x[k, 0])
        np.testing.assert_allclose(got[k, 0], np.sqrt(gx ** 2 + gy ** 2), rtol=1e-6, atol=1e-6)


def test_sobel_uint8_is_scaled_and_shapes_accepted():
    x = np.random.default_rng(0).integers(0, 256, (2, 6, 5)).astype(np.uint8)
    a = sobel_edges(x)
    np.testing.assert_allclose(a, sobel_edges(x[:, None] / 255.0), rtol=1e-6)
    np.testing.assert_allclose(sobel_edges(x[0]), a[:1], rtol=1e-6)
    with pytest.raises(ValueError, match="sobel_edges.*shape"):
        sobel_edges(np.zeros((2, 3, 4, 4)))


@given(h=st.integers(3, 12), w=st.integers(3, 12), sigma=st.sampled_from([0.0, 0.6, 1.0]),
       low=st.sampled_from([0.02, 0.05]), seed=st.integers(0, 2**16))
def test_canny_matches_loops_on_random_images(h, w, sigma, low, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((2, h, w))
    x[1] = (x[1] > 0.5) * 0.8                  # a two-level image: many exact ties
    got = canny_edges(x, sigma, low, 2 * low)
    assert got.shape == (2, 1, h, w) and got.dtype == bool
    for k in range(2):
        np.testing.assert_array_equal(got[k, 0], ref_canny(x[k], sigma, low, 2 * low))


def test_canny_matches_loops_on_real_digits():
    x = digits_arrays("test")[0][:4]
    got = canny_edges(x, 1.0, 0.05, 0.1)
    for k in range(4):
        ref = ref_canny(x[k] / 255.0, 1.0, 0.05, 0.1)
        np.testing.assert_array_equal(got[k, 0], ref)
        assert ref.sum() > 20                  # a real outline, not an empty picture


def test_canny_blank_image_has_no_edges():
    for value in (0.0, 0.3, 1.0):
        assert not canny_edges(np.full((2, 16, 16), value)).any()


@pytest.mark.parametrize("col", [5, 8, 11])
@pytest.mark.parametrize("polarity", [1, -1])
@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.0])
def test_canny_step_edge_one_pixel_thick_at_the_step(col, polarity, sigma):
    x = np.zeros((16, 18))
    x[:, col:] = 1.0
    if polarity < 0:
        x = 1.0 - x
    e = canny_edges(x, sigma, 0.05, 0.1)[0, 0]
    cols = np.nonzero(e)[1]
    assert e.sum(1).tolist() == [1] * 16                     # every row: exactly one edge pixel
    assert set(cols.tolist()) <= {col - 1, col}              # on the step
    eT = canny_edges(x.T, sigma, 0.05, 0.1)[0, 0]             # the same step across rows
    assert eT.sum(0).tolist() == [1] * 16 and set(np.nonzero(eT)[0].tolist()) <= {col - 1, col}


def test_canny_disc_outline_is_thin_and_closed():
    yy, xx = np.mgrid[:32, :32]
    x = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 <= 9.3 ** 2).astype(np.float64)
    e = canny_edges(x, 1.0)[0, 0]
    blocks = e[:-1, :-1] & e[1:, :-1] & e[:-1, 1:] & e[1:, 1:]
    assert not blocks.any()                                  # no 2x2 block: one pixel thick
    r = np.hypot(*np.nonzero(e) - np.array([[15.5], [15.5]]))
    assert np.abs(r - 9.3).max() <= 1.5                      # on the circle
    assert connected_components(e, connectivity=2)[1] == 1   # one closed outline around the disc
    assert e.any(1).sum() >= 18 and e.any(0).sum() >= 18


def test_canny_bad_arguments():
    with pytest.raises(ValueError, match="low <= high"):
        canny_edges(np.zeros((4, 4)), low=0.3, high=0.2)
    with pytest.raises(ValueError, match="sigma"):
        canny_edges(np.zeros((4, 4)), sigma=-1)


# ---------------------------------------------------------------- sets

def test_paired_set_batches_and_errors():
    s = np.arange(5 * 2 * 4 * 4, dtype=np.float32).reshape(5, 2, 4, 4)
    t = -np.arange(5 * 4 * 4, dtype=np.float32).reshape(5, 1, 4, 4)
    ds = PairedSet(s, t, labels=np.arange(5))
    a, b = ds[3]
    np.testing.assert_array_equal(a, s[3])
    np.testing.assert_array_equal(b, t[3])
    xs, ys = next(iter(DataLoader(ds, batch_size=5, shuffle=True, seed=0)))
    order = [int(np.nonzero((s == x).all((1, 2, 3)))[0][0]) for x in xs]
    np.testing.assert_array_equal(ys, t[order])              # each source comes with its own target
    with pytest.raises(ValueError, match="not paired.*5 sources.*4 targets"):
        PairedSet(s, t[:4])
    with pytest.raises(ValueError, match="not paired.*4x4.*4x3"):
        PairedSet(s, t[..., :3])
    with pytest.raises(ValueError, match="labels"):
        PairedSet(s, t, labels=np.arange(4))


def test_unpaired_set_draws_b_independently():
    a = np.zeros((3, 1, 2, 2), np.float32) + np.arange(3, dtype=np.float32)[:, None, None, None]
    b = np.zeros((7, 1, 2, 2), np.float32) + np.arange(7, dtype=np.float32)[:, None, None, None]
    ds = UnpairedSet(a, b)
    assert len(ds) == 7
    xa, xb = ds.get_batch(np.arange(7))
    np.testing.assert_array_equal(xa[:, 0, 0, 0], np.arange(7) % 3)
    np.testing.assert_array_equal(xb[:, 0, 0, 0], np.arange(7))
    _, xb = ds.get_batch(np.arange(7), rng=np.random.default_rng(0))
    expect = np.random.default_rng(0).integers(0, 7, size=7)
    np.testing.assert_array_equal(xb[:, 0, 0, 0], expect)
    with pytest.raises(ValueError, match="UnpairedSet"):
        UnpairedSet(a, b[:, :, :1])


# ---------------------------------------------------------------- datasets

@pytest.mark.parametrize("size", [28, 32, 33])
def test_gan_images_digits_scaled_and_padded(size):
    ds = gan_images("digits", "test", image_size=size, classes=(3, 5), n=10)
    px, labels = digits_arrays("test")
    keep = np.isin(labels, (3, 5))
    np.testing.assert_allclose(ds.images, ref_pad_unit(px[keep][:10], size), atol=1e-6)
    np.testing.assert_array_equal(ds.labels, labels[keep][:10])
    assert ds.images.dtype == np.float32 and ds.images.min() >= -1 and ds.images.max() <= 1


def test_gan_images_errors():
    with pytest.raises(ValueError, match="image_size.*>= 28"):
        gan_images("digits", image_size=16)
    with pytest.raises(ValueError, match="dataset must be one of"):
        gan_images("cifar10")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        gan_images("fashion-mnist", root="/nonexistent")
    with pytest.raises(ValueError, match="classes"):
        gan_images("digits", classes=(12,))


def test_gan_images_fashion():
    px, labels = fashion_or_skip("test")
    ds = gan_images("fashion-mnist", "test", n=6)
    np.testing.assert_allclose(ds.images, ref_pad_unit(px[:6], 32), atol=1e-6)
    np.testing.assert_array_equal(ds.labels, labels[:6])


def test_edges_to_fashion_pairs_match_reference():
    px, labels = fashion_or_skip("test")
    pairs = edges_to_fashion("test", n=3, classes=(7, 9))
    keep = np.isin(labels, (7, 9))
    target = ref_pad_unit(px[keep][:3], 32)
    np.testing.assert_allclose(pairs.targets, target, atol=1e-6)
    np.testing.assert_array_equal(pairs.labels, labels[keep][:3])
    for k in range(3):
        edges = ref_canny((target[k, 0] + 1.0) / 2.0, 1.0, 0.05, 0.1)
        np.testing.assert_array_equal(pairs.sources[k, 0], np.where(edges, 1.0, -1.0))
    sob = edges_to_fashion("test", n=2, edges="sobel")
    assert sob.sources.min() >= -1 and sob.sources.max() <= 1 and sob.sources.max() > 0
    with pytest.raises(ValueError, match="edges must be"):
        edges_to_fashion("test", n=2, edges="hed")


def test_edges_to_fashion_train_and_test_differ():
    fashion_or_skip("train")
    a, b = edges_to_fashion("train", n=50), edges_to_fashion("test", n=50)
    assert not any((a.targets[i] == b.targets).all((1, 2, 3)).any() for i in range(50))


@pytest.mark.parametrize("quadrant", [0, 3])
@pytest.mark.parametrize("mode", ["binary", "boundary"])
def test_nuclei_mask_to_image_regions_and_values(quadrant, mode):
    raw = nuclei_arrays()[0].astype(np.float64)
    corners = [(0, 0), (0, 256), (256, 0), (256, 256)]
    train_px = [raw[r:r + 256, c:c + 256] for k, (r, c) in enumerate(corners) if k != quadrant]
    lo, hi = min(p.min() for p in train_px), max(p.max() for p in train_px)
    qr, qc = corners[quadrant]
    seg = nuclei_segmentation("train", classes=3, quadrant=quadrant)
    test_mask = nuclei_segmentation("test", classes=3, quadrant=quadrant).masks[0]
    for split in ("train", "test"):
        ds = nuclei_mask_to_image(split, quadrant=quadrant, mask=mode)
        assert len(ds) == (147 if split == "train" else 16)
        assert ds.sources.shape == ds.targets.shape == (len(ds), 1, 64, 64)
        for k, (r, c) in enumerate(ds.origins):
            inside = qr <= r < qr + 256 and qc <= c < qc + 256
            assert inside == (split == "test")                # disjoint regions
            img = np.clip(2 * (raw[r:r + 64, c:c + 64] - lo) / (hi - lo) - 1, -1, 1)
            np.testing.assert_allclose(ds.targets[k, 0], img, atol=1e-6)
            lab = seg.masks[k] if split == "train" else test_mask[r - qr:r - qr + 64, c - qc:c - qc + 64]
            want = np.where(lab == 0, -1.0, np.where((lab == 2) & (mode == "boundary"), 0.0, 1.0))
            np.testing.assert_array_equal(ds.sources[k, 0], want)
    with pytest.raises(ValueError, match="mask must be"):
        nuclei_mask_to_image(mask="instances")


def test_domain_pair_digits_fashion():
    px_f, lab_f = fashion_or_skip("test")
    d = domain_pair("digits-fashion", "test")
    px_d, lab_d = digits_arrays("test")
    np.testing.assert_allclose(d.a, ref_pad_unit(px_d, 32), atol=1e-6)
    np.testing.assert_allclose(d.b, ref_pad_unit(px_f[:len(px_d)], 32), atol=1e-6)
    np.testing.assert_array_equal(d.labels_b, lab_f[:len(px_d)])
    assert d.names == ("digit", "fashion item")


def test_domain_pair_sneaker_boot():
    fashion_or_skip("test")
    d = domain_pair("sneaker-boot", "test", n=300)
    assert d.a.shape == d.b.shape == (300, 1, 32, 32)
    assert (d.labels_a == 7).all() and (d.labels_b == 9).all()
    assert d.a.min() == -1 and d.a.max() <= 1 and d.names == ("sneaker", "ankle boot")
    full = domain_pair("sneaker-boot", "test")
    assert len(full.a) == len(full.b) == 1000
    with pytest.raises(ValueError, match="name must be one of"):
        domain_pair("horse-zebra")
