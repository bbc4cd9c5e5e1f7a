"""Segmentation sets of minicnn.data (digits on canvases, nuclei split by region) against plain-loop
references rebuilt here from the same raw data."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.data import (DataLoader, SegmentationSet, digit_segmentation, digits_arrays, digits_mean_std,
                          digits_on_canvas, nuclei_arrays, nuclei_segmentation,
                          three_class_mask)

CORNERS = [(0, 0), (0, 256), (256, 0), (256, 256)]


def ref_three_class(inst):
    """0 background, 2 where an object pixel has an in-array 4-neighbour of another id, else 1."""
    H, W = inst.shape
    out = np.zeros((H, W), dtype=np.int64)
    for i in range(H):
        for j in range(W):
            if inst[i, j] == 0:
                continue
            out[i, j] = 1
            for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                if 0 <= a < H and 0 <= b < W and inst[a, b] != inst[i, j]:
                    out[i, j] = 2
    return out


def same_partition(a, b):
    """True when the id maps a and b label the same pixel sets (ids may differ), 0 <-> 0."""
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return (len({p for p, _ in pairs}) == len(pairs) == len({q for _, q in pairs})
            and all((p == 0) == (q == 0) for p, q in pairs))


# ---------------------------------------------------------------- nuclei

@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_nuclei_train_and_test_regions_do_not_overlap(quadrant):
    train = nuclei_segmentation("train", quadrant=quadrant)
    test = nuclei_segmentation("test", quadrant=quadrant)
    r0, c0 = CORNERS[quadrant]
    assert test.images.shape == (1, 1, 256, 256) and test.masks.shape == (1, 256, 256)
    assert test.origins.tolist() == [[r0, c0]]
    assert train.images.shape == (3 * 7 * 7, 1, 64, 64)
    covered = np.zeros((512, 512), dtype=bool)
    for r, c in train.origins:
        inside = [q for q, (qr, qc) in enumerate(CORNERS)
                  if qr <= r and r + 64 <= qr + 256 and qc <= c and c + 64 <= qc + 256]
        assert len(inside) == 1 and inside[0] != quadrant, f"tile at {(r, c)} leaves its train quadrant"
        covered[r:r + 64, c:c + 64] = True
    test_region = np.zeros((512, 512), dtype=bool)
    test_region[r0:r0 + 256, c0:c0 + 256] = True
    assert not (covered & test_region).any()
    assert covered.sum() == 3 * 256 * 256                      # the tiles cover the three train quadrants


@pytest.mark.parametrize("classes", [2, 3])
def test_nuclei_pixels_and_labels_come_from_the_mask(classes):
    raw, raw_mask = nuclei_arrays()
    quadrant = 1
    train = nuclei_segmentation("train", classes=classes, tile=48, stride=40, quadrant=quadrant)
    test = nuclei_segmentation("test", classes=classes, quadrant=quadrant)
    assert train.num_classes == classes and len(train.class_names) == classes
    # standardised with the three train quadrants' statistics only
    pixels = np.concatenate([raw[r:r + 256, c:c + 256].ravel().astype(np.float64)
                             for q, (r, c) in enumerate(CORNERS) if q != quadrant])
    mean, std = pixels.mean(), pixels.std()
    quadrant_labels = {}
    for q, (r, c) in enumerate(CORNERS):
        inst = raw_mask[r:r + 256, c:c + 256]
        quadrant_labels[q] = (inst > 0).astype(np.int64) if classes == 2 else ref_three_class(inst)
    for s, side in ((train, 48), (test, 256)):
        assert s.masks.dtype == np.int64 and s.instances.dtype == np.int32 and s.images.dtype == np.float32
        for n, (r, c) in enumerate(s.origins):
            window = (slice(r, r + side), slice(c, c + side))
            np.testing.assert_allclose(s.images[n, 0], (raw[window] - mean) / std, rtol=1e-5, atol=1e-5)
            q = [k for k, (qr, qc) in enumerate(CORNERS) if qr <= r < qr + 256 and qc <= c < qc + 256][0]
            qr, qc = CORNERS[q]
            np.testing.assert_array_equal(s.masks[n], quadrant_labels[q][r - qr:r - qr + side, c - qc:c - qc + side])
            assert same_partition(s.instances[n], raw_mask[window])
            ids = np.unique(s.instances[n])
            np.testing.assert_array_equal(ids[ids > 0], np.arange(1, len(ids[ids > 0]) + 1))   # 1..K per tile
    assert len(train) == 3 * 6 * 6


@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 9), st.integers(1, 2))
def test_three_class_mask_vs_loop(seed, h, w, batch):
    rng = np.random.default_rng(seed)
    inst = rng.choice(4, size=(batch, h, w), p=[0.4, 0.2, 0.2, 0.2])
    got = three_class_mask(inst)
    for n in range(batch):
        np.testing.assert_array_equal(got[n], ref_three_class(inst[n]))


def test_nuclei_three_classes_have_boundaries_between_touching_nuclei():
    s = nuclei_segmentation("test", classes=3, quadrant=2)
    inst, m = s.instances[0], s.masks[0]
    for a, b, la, lb in ((inst[:, 1:], inst[:, :-1], m[:, 1:], m[:, :-1]), (inst[1:], inst[:-1], m[1:], m[:-1])):
        touching = (a > 0) & (b > 0) & (a != b)
        assert touching.any()
        assert (la[touching] == 2).all() and (lb[touching] == 2).all()
    assert set(np.unique(m)) == {0, 1, 2} and (m[inst == 0] == 0).all() and (m[inst > 0] > 0).all()


def test_nuclei_deterministic_loader_and_errors():
    a, b = nuclei_segmentation(classes=3), nuclei_segmentation(classes=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    x, y = next(iter(DataLoader(a, batch_size=5, shuffle=True, seed=0)))
    assert x.shape == (5, 1, 64, 64) and x.dtype == np.float32 and y.shape == (5, 64, 64) and y.dtype == np.int64
    with pytest.raises(ValueError, match="nuclei_segmentation: quadrant must be 0..3"):
        nuclei_segmentation(quadrant=4)
    with pytest.raises(ValueError, match="nuclei_segmentation: tile must be an integer in 1..256, got 300"):
        nuclei_segmentation(tile=300)
    with pytest.raises(ValueError, match="nuclei_segmentation: classes must be 2 or 3"):
        nuclei_segmentation(classes=4)
    with pytest.raises(ValueError, match="nuclei_segmentation: split must be"):
        nuclei_segmentation("val")


# ---------------------------------------------------------------- digits

@pytest.mark.parametrize("split, threshold", [("train", 0.5), ("test", 0.0), ("test", 0.8)])
def test_digit_labels_vs_loop_from_the_same_instance_set(split, threshold):
    n, canvas, seed = 6, 40, 3
    s = digit_segmentation(n, canvas=canvas, digits_per_image=(1, 3), split=split, seed=seed,
                           threshold=threshold, normalize=False)
    inst = digits_on_canvas(n, canvas, (1, 3), split, seed)
    np.testing.assert_array_equal(s.images, inst.images)
    for i in range(n):
        for y in range(canvas):
            for x in range(canvas):
                label = k_on = 0
                for k in range(len(inst.labels[i])):
                    if inst.masks[i][k, y, x] and inst.images[i, 0, y, x] >= threshold:
                        label, k_on = 1 + int(inst.labels[i][k]), k + 1
                assert s.masks[i, y, x] == label and s.instances[i, y, x] == k_on, (i, y, x)
    assert s.num_classes == 11 and s.class_names[0] == "background" and s.class_names[4] == "3"
    mean, std = digits_mean_std()
    normalized = digit_segmentation(n, canvas=canvas, split=split, seed=seed, threshold=threshold)
    np.testing.assert_allclose(normalized.images, (inst.images - mean) / std, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(normalized.masks, s.masks)


def _crops(images):
    """Each 28x28 digit cropped to its nonzero pixels, as bytes keyed with its shape."""
    out = set()
    for d in images:
        rows, cols = np.flatnonzero(d.any(1)), np.flatnonzero(d.any(0))
        crop = d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        out.add((crop.shape[0], crop.shape[1], crop.tobytes()))
    return out


def test_digit_splits_draw_from_disjoint_pools():
    pools = {split: _crops(digits_arrays(split)[0]) for split in ("train", "test")}
    for split in ("train", "test"):
        s = digits_on_canvas(8, 48, (1, 3), split, seed=1)
        for i in range(len(s)):
            for (x1, y1, x2, y2), mask in zip(s.boxes[i].astype(int), s.masks[i]):
                crop = np.rint(s.images[i, 0, y1:y2, x1:x2] * 255).astype(np.uint8)
                key = (y2 - y1, x2 - x1, crop.tobytes())
                other = "test" if split == "train" else "train"
                assert key in pools[split] and key not in pools[other]
    # and the segmentation sets built on them follow the split
    a = digit_segmentation(8, canvas=48, split="train", seed=1, normalize=False)
    np.testing.assert_array_equal(a.images, digits_on_canvas(8, 48, (1, 3), "train", 1).images)


def test_digit_segmentation_deterministic_and_validated():
    a, b = digit_segmentation(5, seed=7), digit_segmentation(5, seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.instances, b.instances)
    assert not np.array_equal(a.masks, digit_segmentation(5, seed=8).masks)
    assert a.images.shape == (5, 1, 64, 64) and a.masks.shape == (5, 64, 64) and a.masks.dtype == np.int64
    assert ((a.masks > 0) == (a.instances > 0)).all()
    x, y = a.get_batch([4, 0])
    np.testing.assert_array_equal(y, a.masks[[4, 0]])
    assert x.dtype == np.float32 and x.shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="digit_segmentation: threshold must lie in"):
        digit_segmentation(2, threshold=1.5)
    with pytest.raises(ValueError, match="digit_segmentation: canvas must be an integer >= 28"):
        digit_segmentation(2, canvas=20)
    with pytest.raises(ValueError, match=r"digit_segmentation: .*digits_per_image must be >= 1.* got \(0, 2\)"):
        digit_segmentation(2, digits_per_image=(0, 2))
    with pytest.raises(ValueError, match="digit_segmentation: split must be"):
        digit_segmentation(2, split="all")


def test_segmentation_set_validates():
    images, masks = np.zeros((2, 1, 4, 4), np.float32), np.zeros((2, 4, 4), np.int64)
    with pytest.raises(ValueError, match=r"SegmentationSet: images must be \(N, C, H, W\) .* "
                                         r"got images \(2, 1, 4, 4\) and masks \(2, 4, 5\)"):
        SegmentationSet(images, np.zeros((2, 4, 5), np.int64), 2)
    with pytest.raises(ValueError, match=r"SegmentationSet: mask ids must lie in 0..1"):
        SegmentationSet(images, masks + 2, 2)
    with pytest.raises(TypeError, match="SegmentationSet: masks must hold integer class ids"):
        SegmentationSet(images, masks.astype(float), 2)
    with pytest.raises(ValueError, match=r"SegmentationSet: instances \(2, 4\) must have the masks' shape"):
        SegmentationSet(images, masks, 2, instances=np.zeros((2, 4)))
    s = SegmentationSet(images, masks, 2)
    assert s.class_names == ("0", "1") and s.instances is None and len(s) == 2
    x, y = s[1]
    assert x.shape == (1, 4, 4) and y.shape == (4, 4)
