"""Detection sets: tight boxes, the IoU constraint, disjoint pools, determinism, validation, flips."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minicnn.data import DataLoader
from minicnn.data.datasets import FASHION_MNIST_ROOT, digits_arrays
from minicnn.data.detection import (DetectionSet, RandomHorizontalFlip, detection_collate, digit_detection,
                                    fashion_detection, hflip_detection, nuclei_detection, resize_bilinear)


def tight_box(mask):
    """Plain loops: the pixel-edge box of a mask's pixels."""
    ys, xs = [], []
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if mask[i, j]:
                ys.append(i), xs.append(j)
    return [min(xs), min(ys), max(xs) + 1, max(ys) + 1]


def pair_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def check_canvases(ds, max_iou, size_range, num_classes):
    assert ds.images.dtype == np.float32
    for n, t in enumerate(ds.targets):
        assert t["boxes"].dtype == np.float32 and t["labels"].dtype == np.int64 and t["masks"].dtype == np.uint8
        for k in range(len(t["boxes"])):
            assert t["boxes"][k].tolist() == tight_box(t["masks"][k]), (n, k)
            # the mask is exactly the pasted item's pixels: all lit on the canvas
            assert (ds.images[n, 0][t["masks"][k] > 0] > 0).all()
            w, h = t["boxes"][k, 2] - t["boxes"][k, 0], t["boxes"][k, 3] - t["boxes"][k, 1]
            assert max(w, h) <= size_range[1] and max(w, h) >= size_range[0] - 2
            for j in range(k):
                assert pair_iou(t["boxes"][k], t["boxes"][j]) < max_iou
        assert ((t["labels"] >= 1) & (t["labels"] < num_classes)).all()
        # every lit pixel belongs to some object's mask
        lit = ds.images[n, 0] > 0
        covered = t["masks"].any(0) if len(t["masks"]) else np.zeros_like(lit)
        assert not (lit & ~covered).any()


def test_digit_canvases_tight_boxes_masks_and_iou():
    ds = digit_detection(24, seed=3)
    assert ds.images.shape == (24, 1, 128, 128) and ds.num_classes == 11
    check_canvases(ds, 0.25, (20, 48), 11)
    counts = [len(t["boxes"]) for t in ds.targets]
    assert min(counts) >= 1 and max(counts) <= 6 and max(counts) >= 4


@given(st.integers(0, 1000), st.sampled_from([0.05, 0.25, 0.5]), st.sampled_from([(10, 20), (20, 48)]))
def test_iou_constraint_holds(seed, max_iou, size_range):
    ds = digit_detection(3, canvas=64, digits_per_image=(3, 8), size_range=size_range, max_iou=max_iou, seed=seed)
    check_canvases(ds, max_iou, size_range, 11)


def test_labels_are_the_source_digits_and_pools_disjoint():
    train = digit_detection(60, seed=0, split="train")
    test = digit_detection(60, seed=0, split="test")
    images, labels = digits_arrays("all")
    train_ids = set(np.concatenate(train.sources).tolist())
    test_ids = set(np.concatenate(test.sources).tolist())
    assert train_ids and test_ids and not train_ids & test_ids
    # the train pool is the embedded train split (and likewise test)
    tr_images, _ = digits_arrays("train")
    assert len(train_ids) > 100 and {images[i].tobytes() for i in list(train_ids)[:50]} <= \
        {im.tobytes() for im in tr_images}
    for ds in (train, test):
        for t, src in zip(ds.targets, ds.sources):
            np.testing.assert_array_equal(t["labels"], labels[src].astype(np.int64) + 1)


def test_determinism_by_seed():
    a, b, c = digit_detection(5, seed=7), digit_detection(5, seed=7), digit_detection(5, seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    for s, t in zip(a.targets, b.targets):
        for k in s:
            np.testing.assert_array_equal(s[k], t[k])
    assert not np.array_equal(a.images, c.images)


def test_resize_bilinear_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((9, 13))
    for size in ((20, 31), (4, 5), (9, 13)):
        want = torch.nn.functional.interpolate(torch.from_numpy(x)[None, None], size=size, mode="bilinear",
                                               align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(resize_bilinear(x, size), want, atol=1e-12)


def test_fashion_canvases():
    import os

    if not os.path.exists(os.path.join(FASHION_MNIST_ROOT, "t10k-images-idx3-ubyte.gz")):
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            fashion_detection(2, split="test")
        pytest.skip("Debian's dataset-fashion-mnist package is not installed")
    ds = fashion_detection(6, split="test", seed=1)
    check_canvases(ds, 0.25, (20, 48), 11)
    assert ds.class_names[1] == "T-shirt/top"


def test_nuclei_boxes_from_instance_masks_and_regions_disjoint():
    train, test = nuclei_detection("train"), nuclei_detection("test")
    assert train.images.shape == (147, 1, 64, 64) and test.images.shape == (1, 1, 256, 256)
    for ds in (train, test):
        for t in ds.targets:
            assert (t["labels"] == 1).all()
            for k in range(len(t["boxes"])):
                assert t["boxes"][k].tolist() == tight_box(t["masks"][k])
            if len(t["masks"]):
                assert t["masks"].sum(0).max() == 1           # instances do not overlap
    assert len(test.targets[0]["boxes"]) > 10


def test_collate_loader_and_empty_images():
    ds = digit_detection(10, seed=0)
    empty = DetectionSet(np.zeros((2, 1, 16, 16), np.float32),
                         [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}] * 2, 3)
    assert empty[0][1]["boxes"].shape == (0, 4)
    x, targets = next(iter(DataLoader(ds, batch_size=4, shuffle=True, seed=0)))
    assert x.shape == (4, 1, 128, 128) and len(targets) == 4 and isinstance(targets[0], dict)
    x2, t2 = detection_collate([ds[0], ds[1]])
    np.testing.assert_array_equal(x2, ds.images[:2])
    np.testing.assert_array_equal(t2[1]["boxes"], ds.targets[1]["boxes"])


def test_horizontal_flip_moves_boxes_and_masks():
    ds = digit_detection(4, seed=2)
    x, t = hflip_detection(ds.images, ds.targets)
    for n in range(4):
        np.testing.assert_array_equal(x[n, 0], ds.images[n, 0][:, ::-1])
        for k in range(len(t[n]["boxes"])):
            assert t[n]["boxes"][k].tolist() == tight_box(t[n]["masks"][k])
    # a random flip with p=1 flips all, p=0 none; the set's transform is applied per batch
    flipped = DetectionSet(ds.images, ds.targets, 11, transform=RandomHorizontalFlip(1.0))
    np.testing.assert_array_equal(flipped[1][0], x[1])
    kept = DetectionSet(ds.images, ds.targets, 11, transform=RandomHorizontalFlip(0.0))
    np.testing.assert_array_equal(kept[1][1]["boxes"], ds.targets[1]["boxes"])


def good_target():
    return {"boxes": np.array([[1, 1, 5, 5], [2, 3, 8, 9]], np.float32), "labels": np.array([1, 2]),
            "masks": np.zeros((2, 16, 16), np.uint8)}


@pytest.mark.parametrize("change,match", [
    (lambda t: t["boxes"].__setitem__((1, 2), 1.0), r"image 1: box 1 = \[2.0, 3.0, 1.0, 9.0\]"),
    (lambda t: t["boxes"].__setitem__((0, 3), 0.5), r"image 1: box 0 .* y1 < y2"),
    (lambda t: t["boxes"].__setitem__((0, 0), np.nan), r"image 1: box 0 is not finite"),
    (lambda t: t["boxes"].__setitem__((0, 0), np.inf), r"image 1: box 0 is not finite"),
    (lambda t: t["labels"].__setitem__(1, 3), r"image 1: labels must be integers in 1..2 .* \[1, 3\]"),
    (lambda t: t["labels"].__setitem__(0, 0), r"image 1: labels .* \[0, 2\]"),
    (lambda t: t.__setitem__("masks", np.zeros((2, 8, 16), np.uint8)), r"image 1: masks must have shape \(2, 16, 16\)"),
    (lambda t: t.__setitem__("masks", np.full((2, 16, 16), 2, np.uint8)), r"image 1: masks must hold 0/1"),
])
def test_validation_errors_name_the_image_and_values(change, match):
    bad = good_target()
    change(bad)
    with pytest.raises(ValueError, match=match):
        DetectionSet(np.zeros((2, 1, 16, 16), np.float32), [good_target(), bad], 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="digit_detection: split"):
        digit_detection(2, split="val")
    with pytest.raises(ValueError, match="digit_detection: size_range"):
        digit_detection(2, canvas=32, size_range=(20, 48))
    with pytest.raises(ValueError, match="digit_detection: objects per image"):
        digit_detection(2, digits_per_image=(0, 3))
    with pytest.raises(ValueError, match="DetectionSet: 1 targets for 2 images"):
        DetectionSet(np.zeros((2, 1, 16, 16), np.float32), [good_target()], 3)
