"""The segmentation training loop: its loss against a NumPy reference (weights, centre crop, aux
head), the joint augmentation of images and masks, and training that lowers the loss."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import nn, optim
from minicnn.train_segmentation import SegmentationTrainer, center_crop, dihedral_augment, segmentation_loss


def _ref_pixel_ce(scores, target):
    """−log softmax(scores)[target] per pixel, plain loops in float64."""
    n, k, h, w = scores.shape
    out = np.zeros((n, h, w))
    for b in range(n):
        for i in range(h):
            for j in range(w):
                s = scores[b, :, i, j].astype(np.float64)
                m = s.max()
                out[b, i, j] = -(s[target[b, i, j]] - m - np.log(np.exp(s - m).sum()))
    return out


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), k=st.integers(2, 5), h=st.integers(2, 7), w=st.integers(2, 7),
       crop=st.integers(0, 2), weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_loss_equals_weighted_mean_of_pixel_cross_entropy(n, k, h, w, crop, weighted, seed):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, k, h, w))
    target = rng.integers(0, k, (n, h + 2 * crop, w + 2 * crop))
    weight = rng.uniform(0.1, 3.0, target.shape) if weighted else None
    x = mc.Tensor(scores, requires_grad=True)
    loss = segmentation_loss(x, target, weight)
    t = target[:, crop:crop + h, crop:crop + w]               # centre crop, written out
    ce = _ref_pixel_ce(scores, t)
    wt = np.ones_like(ce) if weight is None else weight[:, crop:crop + h, crop:crop + w]
    want = (wt * ce).sum() / wt.sum()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-10)
    # gradient: d loss / d scores = w (softmax − onehot) / Σw
    loss.backward()
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = (np.arange(k)[None, :, None, None] == t[:, None]).astype(float)
    np.testing.assert_allclose(x.grad.numpy(), wt[:, None] * (p - onehot) / wt.sum(), rtol=1e-9, atol=1e-12)


def test_aux_output_adds_half_its_loss():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    t = rng.integers(0, 3, (2, 4, 4))
    got = segmentation_loss({"out": mc.Tensor(a), "aux": mc.Tensor(b)}, t).item()
    np.testing.assert_allclose(got, _ref_pixel_ce(a, t).mean() + 0.5 * _ref_pixel_ce(b, t).mean(), rtol=1e-10)


def test_center_crop_and_its_error():
    a = np.arange(2 * 7 * 6).reshape(2, 7, 6)
    np.testing.assert_array_equal(center_crop(a, (3, 2)), a[:, 2:5, 2:4])
    with pytest.raises(ValueError, match="does not fit"):
        center_crop(a, (8, 2))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), h=st.integers(1, 6))
def test_dihedral_augment_moves_image_and_mask_together(seed, h):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 2, h, h))
    y = rng.integers(0, 5, (4, h, h))
    xa, ya = dihedral_augment(np.random.default_rng(seed), x, y)
    for i in range(4):
        # the same one of the 8 symmetries for image channels and mask: find it on the mask's index grid
        grid = np.arange(h * h).reshape(h, h)
        found = False
        for k in range(4):
            for flip in (False, True):
                g = np.rot90(grid, k)
                g = g[:, ::-1] if flip else g
                if (np.array_equal(ya[i], y[i].ravel()[g]) and
                        all(np.array_equal(xa[i, c], x[i, c].ravel()[g]) for c in range(2))):
                    found = True
        assert found


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_training_lowers_the_loss_and_scores_are_reported(device):
    """A 2-layer net learns to label bright pixels: the loss falls, IoU is computed on held-out images."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    mc.random.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).to(device)
    trainer = SegmentationTrainer(model, optim.Adam(list(model.parameters()), lr=0.05), 2, device=device,
                                  progress=False)
    hist = trainer.fit((x, y), (x[:4], y[:4]), epochs=15, batch_size=8, eval_every=5, log=lambda s: None)
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    pred, _ = trainer.predict(x[:4])
    inter = ((pred == 1) & (y[:4] == 1)).sum()
    union = ((pred == 1) | (y[:4] == 1)).sum()
    np.testing.assert_allclose(hist[-1]["test_per_class_iou"][1], inter / union)
    assert "test_mean_iou" in hist[-1] and "test_mean_iou" not in hist[1]


def test_fit_refuses_mismatched_shapes_and_labels_out_of_range():
    model = nn.Conv2d(1, 3, 1)
    trainer = SegmentationTrainer(model, optim.SGD(list(model.parameters()), lr=0.1), 3, progress=False)
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.zeros((4, 8, 8), np.int64)
    with pytest.raises(ValueError, match=r"train images \(4, 1, 8, 8\) and masks \(4, 8, 6\)"):
        trainer.fit((x, y[:, :, :6]), (x, y), 1)
    with pytest.raises(ValueError, match=r"test images \(2, 1, 8, 8\) and masks \(4, 8, 8\)"):
        trainer.fit((x, y), (x[:2], y), 1)
    with pytest.raises(ValueError, match=r"labels span 0..3, outside 0..2"):
        trainer.fit((x, np.where(np.eye(8, dtype=bool), 3, 0)[None].repeat(4, 0)), (x, y), 1)
    with pytest.raises(ValueError, match="weights"):
        trainer.fit((x, y, np.ones((4, 8, 7))), (x, y), 1)
