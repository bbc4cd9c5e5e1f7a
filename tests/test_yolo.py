"""YOLO v1: the loss against a plain-loop NumPy reference and finite differences, the paper's
network, a PyTorch twin of the small one, decoding, training steps on cpu and cuda-emu."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minicnn as mc
from minicnn.models.detection import YOLOv1, yolo_v1_decode, yolo_v1_loss, yolo_v1_paper, yolo_v1_small
from minicnn.models.detection.yolo import PAPER_LAYOUT
from minicnn.testing import gradcheck

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def cell_box_iou(a, b):
    """IoU of two (cx, cy, w, h) boxes, written out."""
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - iw * ih
    return iw * ih / union if union > 0 else 0.0


def reference_loss(P, targets, S, B, C, lc, ln, size, rescore):
    """The paper's loss, one cell and one predictor at a time."""
    total = 0.0
    for n in range(P.shape[0]):
        objects = {}
        for (x1, y1, x2, y2), label in zip(np.asarray(targets[n]["boxes"], float) / size, targets[n]["labels"]):
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            key = (min(int(cy * S), S - 1), min(int(cx * S), S - 1))
            if key not in objects:                       # the first object of a cell
                objects[key] = (cx, cy, x2 - x1, y2 - y1, int(label))
        for row in range(S):
            for col in range(S):
                cell = P[n, row, col]
                if (row, col) not in objects:
                    total += ln * sum(cell[5 * b + 4] ** 2 for b in range(B))
                    continue
                cx, cy, w, h, label = objects[row, col]
                preds = [((col + cell[5 * b]) / S, (row + cell[5 * b + 1]) / S, cell[5 * b + 2] ** 2,
                          cell[5 * b + 3] ** 2) for b in range(B)]
                ious = [cell_box_iou(p, (cx, cy, w, h)) for p in preds]
                if max(ious) > 0:
                    r = ious.index(max(ious))
                else:
                    d = [sum((p[k] - t) ** 2 for k, t in enumerate((cx, cy, w, h))) for p in preds]
                    r = d.index(min(d))
                for b in range(B):
                    if b == r:
                        total += lc * ((cell[5 * b] - (cx * S - col)) ** 2 + (cell[5 * b + 1] - (cy * S - row)) ** 2)
                        total += lc * ((cell[5 * b + 2] - np.sqrt(w)) ** 2 + (cell[5 * b + 3] - np.sqrt(h)) ** 2)
                        total += (cell[5 * b + 4] - (ious[r] if rescore else 1.0)) ** 2
                    else:
                        total += ln * cell[5 * b + 4] ** 2
                for c in range(C):
                    total += (cell[5 * B + c] - (1.0 if c == label - 1 else 0.0)) ** 2
    return total / P.shape[0]


def random_targets(rng, N, C, size, max_objects=5):
    out = []
    for _ in range(N):
        G = int(rng.integers(0, max_objects + 1))
        xy = rng.uniform(0, size - 4, (G, 2))
        wh = rng.uniform(2, size / 2, (G, 2))
        out.append({"boxes": np.concatenate([xy, np.minimum(xy + wh, size)], 1), "labels": rng.integers(1, C + 1, G)})
    return out


def random_pred(rng, N, S, B, C):
    P = rng.uniform(-0.2, 1.0, (N, S, S, 5 * B + C))
    for b in range(B):                                   # √w, √h of plausible sizes
        P[..., 5 * b + 2:5 * b + 4] = rng.uniform(0.1, 0.8, (N, S, S, 2))
    return P


@settings(deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.booleans())
def test_loss_equals_plain_loop_reference(seed, S, B, C, rescore):
    rng = np.random.default_rng(seed)
    P = random_pred(rng, 3, S, B, C)
    targets = random_targets(rng, 3, C, 48.0, max_objects=2 * S * S)   # crowded cells included
    got = yolo_v1_loss(mc.Tensor(P), targets, S, B, C, 5.0, 0.5, image_size=48, rescore=rescore).item()
    assert got == pytest.approx(reference_loss(P, targets, S, B, C, 5.0, 0.5, 48.0, rescore), rel=1e-12)


def test_loss_gradcheck_float64():
    rng = np.random.default_rng(1)
    S, B, C = 2, 2, 3
    targets = random_targets(rng, 2, C, 32.0, max_objects=3)
    targets[1] = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}
    P = mc.Tensor(random_pred(rng, 2, S, B, C), requires_grad=True)
    gradcheck(lambda p: yolo_v1_loss(p, targets, S, B, C, image_size=32, rescore=False), (P,))


def test_empty_image_has_only_noobj_terms():
    rng = np.random.default_rng(2)
    P = mc.Tensor(random_pred(rng, 2, 3, 2, 4), requires_grad=True)
    empty = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}] * 2
    loss = yolo_v1_loss(P, empty, 3, 2, 4, image_size=48)
    conf = P.numpy()[..., [4, 9]]
    assert loss.item() == pytest.approx(0.5 * (conf ** 2).sum() / 2, rel=1e-12)
    loss.backward()
    g = P.grad.numpy()
    np.testing.assert_allclose(g[..., [4, 9]], 0.5 * conf, rtol=1e-12)
    assert np.count_nonzero(np.delete(g, [4, 9], axis=-1)) == 0


def paper_parameter_count(C=20, S=7, B=2, in_channels=3):
    """Figure 3 of the paper, counted layer by layer (weights + biases)."""
    total, c = 0, in_channels
    for item in PAPER_LAYOUT:
        if item != "M":
            k, cout, _ = item
            total += k * k * c * cout + cout
            c = cout
    return total + (7 * 7 * 1024 * 4096 + 4096) + (4096 * S * S * (5 * B + C) + S * S * (5 * B + C))


def test_paper_network_builds_and_gives_7x7x30():
    assert sum(1 for item in PAPER_LAYOUT if item != "M") == 24
    model = yolo_v1_paper(num_classes=20)
    n_params = sum(p.size for p in model.parameters())
    assert n_params == paper_parameter_count() == 271_703_550
    model.eval()
    with mc.no_grad():
        y = model(mc.Tensor(np.random.default_rng(0).standard_normal((1, 3, 448, 448)).astype(np.float32)))
    assert y.shape == (1, 7, 7, 30) and np.isfinite(y.numpy()).all()


def tiny(C=3):
    return yolo_v1_small(num_classes=C, in_channels=1, image_size=32, S=3, B=2, width=2, hidden=16, dropout=0.0)


def test_small_network_equals_a_pytorch_twin():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    mc.manual_seed(0)
    model = yolo_v1_small(num_classes=4, image_size=64, S=4, width=4, hidden=32)
    layers, c = [], 1
    for w in (4, 8, 16, 32, 32):
        layers += [tnn.Conv2d(c, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w), tnn.LeakyReLU(0.1),
                   tnn.MaxPool2d(2, 2)]
        c = w
    twin = tnn.Module()
    twin.features = tnn.Sequential(*layers)
    twin.head = tnn.Sequential(tnn.Flatten(), tnn.Linear(32 * 2 * 2, 32), tnn.LeakyReLU(0.1), tnn.Dropout(0.5),
                               tnn.Linear(32, 4 * 4 * 14))
    state = {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    twin.load_state_dict(state)
    model.load_state_dict(twin.state_dict())
    for bn in [m for m in twin.features if isinstance(m, tnn.BatchNorm2d)]:   # non-trivial running stats
        bn.running_mean.uniform_(-0.1, 0.1), bn.running_var.uniform_(0.5, 1.5)
    model.load_state_dict(twin.state_dict())
    model.eval(), twin.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32)
    with mc.no_grad():
        ours = model(mc.Tensor(x)).numpy()
    with torch.no_grad():
        want = twin.head(twin.features(torch.from_numpy(x))).reshape(2, 4, 4, 14).numpy()
    np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_training_steps_and_inference(device):
    rng = np.random.default_rng(3)
    mc.manual_seed(3)
    model = tiny().to(device)
    x = mc.Tensor(rng.random((2, 1, 32, 32)).astype(np.float32), device=device)
    targets = [{"boxes": np.array([[2.0, 3, 14, 15], [18, 16, 30, 31]]), "labels": np.array([1, 3])},
               {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}]        # an image without objects
    opt = mc.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = yolo_v1_loss(model(x), targets, 3, 2, 3, image_size=32)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    model.eval()
    with mc.no_grad():
        dets = yolo_v1_decode(model(x), conf_threshold=0.0, iou_threshold=0.5, image_size=32)
    assert len(dets) == 2
    for d in dets:
        assert d["boxes"].shape == (len(d["scores"]), 4) and len(d["labels"]) == len(d["scores"]) <= 100
        assert ((d["labels"] >= 1) & (d["labels"] <= 3)).all() and (np.diff(d["scores"]) <= 0).all()
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 32).all()


def test_cpu_and_cuda_emu_agree():
    out = {}
    for device in ("cpu", "cuda-emu"):
        mc.manual_seed(4)
        model = tiny().to(device)
        x = mc.Tensor(np.random.default_rng(4).random((2, 1, 32, 32)).astype(np.float32), device=device)
        y = model(x)
        loss = yolo_v1_loss(y, [{"boxes": np.array([[2.0, 3, 14, 15]]), "labels": np.array([2])}] * 2, 3, 2, 3,
                            image_size=32)
        loss.backward()
        out[device] = (y.numpy(), loss.item(), [p.grad.numpy() for p in model.parameters()])
    np.testing.assert_allclose(out["cuda-emu"][0], out["cpu"][0], rtol=1e-4, atol=1e-5)
    assert out["cuda-emu"][1] == pytest.approx(out["cpu"][1], rel=1e-4)
    scale = max(np.abs(g).max() for g in out["cpu"][2])
    for g, g_emu in zip(out["cpu"][2], out["cuda-emu"][2]):
        np.testing.assert_allclose(g_emu, g, rtol=1e-4, atol=1e-4 * scale)


def test_decode_hand_built_prediction():
    S, B, C = 4, 2, 3
    P = np.zeros((1, S, S, 5 * B + C), np.float32)
    # cell (row 1, col 2) of a 64-px image (16-px cells): centre (2.5/4·64, 1.25/4·64) = (40, 20),
    # w = 0.5² · 64 = 16, h = 0.25² · 64 = 4 -> box (32, 18, 48, 22); both predictors say so, the
    # second a little less confidently: NMS keeps one box per class
    P[0, 1, 2, 0:5] = [0.5, 0.25, 0.5, 0.25, 0.9]
    P[0, 1, 2, 5:10] = [0.5, 0.25, 0.5, 0.25, 0.8]
    P[0, 1, 2, 10:13] = [0.1, 0.8, 0.1]
    (d,) = yolo_v1_decode(mc.Tensor(P), conf_threshold=0.05, iou_threshold=0.5, B=2, image_size=64)
    np.testing.assert_allclose(d["boxes"], [[32, 18, 48, 22]] * 3, atol=1e-5)
    np.testing.assert_allclose(d["scores"], [0.9 * 0.8, 0.9 * 0.1, 0.9 * 0.1], rtol=1e-6)
    np.testing.assert_array_equal(d["labels"], [2, 1, 3])     # classes 1 and 3 tie at 0.09: candidate order


def test_bad_input():
    with pytest.raises(ValueError, match=r"yolo_v1_loss: pred must be a Tensor \(N, 3, 3, 13\)"):
        yolo_v1_loss(mc.Tensor(np.zeros((1, 3, 3, 12))), [{"boxes": np.zeros((0, 4)), "labels": []}], 3, 2, 3)
    P = mc.Tensor(np.zeros((1, 3, 3, 13)))
    with pytest.raises(ValueError, match=r"image 0: labels must lie in 1..3, got \[4\]"):
        yolo_v1_loss(P, [{"boxes": np.array([[0, 0, 5, 5.0]]), "labels": np.array([4])}], 3, 2, 3, image_size=32)
    with pytest.raises(ValueError, match=r"image 0: boxes must be finite with x1 < x2"):
        yolo_v1_loss(P, [{"boxes": np.array([[0, 0, np.nan, 5]]), "labels": np.array([1])}], 3, 2, 3, image_size=32)
    with pytest.raises(ValueError, match=r"image 0: boxes must be finite with x1 < x2"):
        yolo_v1_loss(P, [{"boxes": np.array([[6, 0, 5, 5.0]]), "labels": np.array([1])}], 3, 2, 3, image_size=32)
    with pytest.raises(ValueError, match="2 targets for a batch of 1"):
        yolo_v1_loss(P, [{"boxes": np.zeros((0, 4)), "labels": []}] * 2, 3, 2, 3)
    with pytest.raises(ValueError, match=r"YOLOv1: input must be \(N, C, 32, 32\)"):
        tiny()(mc.Tensor(np.zeros((1, 1, 64, 64), np.float32)))
    with pytest.raises(ValueError, match="YOLOv1: image_size 100 must be a multiple"):
        YOLOv1(3, image_size=100)
    with pytest.raises(ValueError, match="YOLOv1: backbone"):
        YOLOv1(3, backbone="resnet")


def test_decoding_the_loss_targets_finds_the_objects():
    # the regression targets of every object cell decode back to the truth boxes: mAP 1 when no two
    # objects share a cell (one object per cell is YOLO v1's limit)
    from minicnn.data.detection import digit_detection
    from minicnn.detection_metrics import detection_scores
    from minicnn.models.detection.yolo import yolo_v1_targets

    ds = digit_detection(6, canvas=64, digits_per_image=(1, 2), size_range=(10, 20), seed=0)
    P = np.zeros((6, 8, 8, 20))
    P[..., [2, 3, 7, 8]] = 0.3
    T, _ = yolo_v1_targets(P, ds.targets, 8, 2, 10, image_size=64, rescore=False)
    dets = yolo_v1_decode(mc.Tensor(T), 0.01, 0.5, 2, image_size=64)
    for d, t in zip(dets, ds.targets):
        np.testing.assert_allclose(np.sort(d["boxes"], axis=0), np.sort(t["boxes"], axis=0), atol=1e-4)
        assert sorted(d["labels"].tolist()) == sorted(t["labels"].tolist())
    assert detection_scores(dets, ds.targets)["map50"] == pytest.approx(1.0)


def test_overfits_eight_canvases():
    # the sanity check of target/loss/decode conventions: a small network memorises 8 canvases
    # (no two objects in one cell) to train mAP@0.5 = 1 (eval mode, BatchNorm running statistics)
    from minicnn.data.detection import digit_detection
    from minicnn.detection_metrics import voc_evaluate

    ds = digit_detection(8, canvas=64, digits_per_image=(1, 3), size_range=(12, 24), seed=0)
    mc.manual_seed(0)
    model = yolo_v1_small(10, image_size=64, S=4, width=4, hidden=64, dropout=0.0, stride=16)
    opt = mc.optim.Adam(model.parameters(), lr=3e-3)
    x = mc.Tensor(ds.images)
    for _ in range(100):
        loss = yolo_v1_loss(model(x), ds.targets, 4, 2, 10, image_size=64)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with mc.no_grad():
        dets = yolo_v1_decode(model(x), 0.01, 0.5, 2, image_size=64)
    assert voc_evaluate(dets, ds.targets)["map"] == pytest.approx(1.0)


def test_stride_16_backbone_gives_one_map_position_per_cell():
    from minicnn.models.detection.yolo import small_layout

    model = yolo_v1_small(10, image_size=128, S=8, width=2, hidden=8, stride=16)
    assert model.features.stride == 16 and model.head[1].weight.shape == (8, 16 * 8 * 8)
    assert small_layout(4, 16) == small_layout(4, 32)[:-1]
    assert small_layout(4, 16, reduce=3) == small_layout(4, 16) + ((1, 3, 1),)
    reduced = yolo_v1_small(10, image_size=128, S=8, width=2, hidden=8, stride=16, reduce=3)
    assert reduced.features.out_channels == 3 and reduced.head[1].weight.shape == (8, 3 * 8 * 8)
    assert reduced.features[-3].weight.shape == (3, 16, 1, 1)               # conv 1×1, BatchNorm, leaky ReLU
    with pytest.raises(ValueError, match="small_layout: stride must be 16 or 32, got 8"):
        small_layout(4, 8)
