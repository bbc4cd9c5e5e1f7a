"""python -m minicnn train --task detection: flags, recipes, errors, the model registry, a tiny run
whose reported figures are recomputed here from its checkpoint, and the detection pictures."""
import json
import math
import os

import numpy as np
import pytest

import minicnn as mc
from minicnn import cli_detection as cd
from minicnn.__main__ import build_parser, main
from minicnn.data.detection import digit_detection
from minicnn.detection_metrics import coco_evaluate, voc_evaluate
from minicnn.viz import detection as vd


def parse(*argv):
    return cd.resolve_detection_defaults(build_parser("detection").parse_args(["train", "--task", "detection", *argv]))


def test_recipe_defaults_and_flags_that_win():
    args = parse()
    recipe = cd.DETECTORS["yolo_v1"].recipes["digit-canvases"]
    assert (args.model, args.dataset) == ("yolo_v1", "digit-canvases")
    assert (args.epochs, args.batch_size, args.lr, args.warmup, args.limit, args.pretrain_epochs, args.test_images) == (
        recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["warmup"], recipe["images_per_epoch"],
        recipe["pretrain_epochs"], cd.TEST_CANVASES)
    args = parse("--dataset", "fashion-canvases", "--epochs", "3", "--lr", "0.01", "--limit", "64", "--warmup", "0",
                 "--pretrain-epochs", "0", "--test-images", "20")
    assert (args.dataset, args.epochs, args.lr, args.limit, args.warmup, args.pretrain_epochs, args.test_images) == (
        "fashion-canvases", 3, 0.01, 64, 0, 0, 20)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nuclei"], "--dataset: yolo_v1 trains on digit-canvases, fashion-canvases, got 'nuclei'"),
    (["--distributed"], "--distributed: data-parallel training covers --task images and signals, not detection"),
    (["--model", "nope"], "invalid choice: 'nope'"),
    (["--epochs", "0"], "must be an integer >= 1"),
    (["--augment"], "unrecognized arguments: --augment"),
])
def test_parse_time_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "detection", *argv])
    assert message in capsys.readouterr().err


def test_registry_checks_and_list_forward():
    with pytest.raises(TypeError, match="register_detector: 'x' must be a Detector"):
        cd.register_detector("x", dict())
    with pytest.raises(ValueError, match=r"register_detector: 'x' needs recipes for datasets among"):
        cd.register_detector("x", cd.Detector(build=None, loss=None, decode=None, recipes={"coco": {}}))
    seen = []

    def model(images, targets=None):
        seen.append(([tuple(i.shape) for i in images], targets))
        return "out"

    x = mc.Tensor(np.zeros((3, 1, 4, 5), np.float32))
    assert cd.list_forward(model, x, None) == "out" and cd.list_forward(model, x, ["t"]) == "out"
    assert seen == [([(1, 4, 5)] * 3, None), ([(1, 4, 5)] * 3, ["t"])]


def test_warmup_cosine_factor():
    f = cd.warmup_cosine(4, 10)
    want = [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(7)]
    np.testing.assert_allclose([f(t) for t in range(11)], want, rtol=1e-12, atol=1e-15)
    assert f(20) == pytest.approx(0.0, abs=1e-15)


TINY = dict(S=4, B=2, width=2, hidden=16, dropout=0.0)


def test_tiny_run_reports_what_its_checkpoint_scores(tmp_path, monkeypatch):
    recipe = dict(epochs=2, batch_size=4, lr=1e-3, images_per_epoch=8, warmup=1, weight_decay=0.0, pretrain_epochs=1,
                  pretrain_images=32, max_grad_norm=10.0, model=TINY)
    yolo = cd.DETECTORS["yolo_v1"]
    monkeypatch.setitem(cd.DETECTORS, "yolo_tiny", cd.Detector(build=yolo.build, loss=yolo.loss, decode=yolo.decode,
                                                              grid=yolo.grid, recipes={"digit-canvases": recipe}))
    out = tmp_path / "run"
    main(["train", "--task", "detection", "--model", "yolo_tiny", "--test-images", "6", "--out", str(out),
          "--no-progress"])
    summary = json.loads((out / "summary.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and summary["epochs"] == 2 and summary["test_images"] == 6
    assert summary["pretrain_accuracy"] is not None and summary["model_kwargs"] == TINY
    steps = 2 * 2                                                    # 2 epochs of 8 canvases, batch 4
    assert history[-1]["lr"] == pytest.approx(1e-3 * cd.warmup_cosine(1, steps)(steps), abs=1e-12)
    model = cd.build_detector("yolo_tiny", "digit-canvases", 10, 1, 128)
    assert sum(p.size for p in model.parameters()) == summary["parameters"]
    z = np.load(out / "checkpoint.npz")
    model.load_state_dict({k: z[k] for k in z.files})
    model.eval()
    test = digit_detection(6, canvas=128, split="test", seed=1)
    with mc.no_grad():
        dets = cd.DETECTORS["yolo_tiny"].decode(model)(model(mc.Tensor(test.images)))
    assert summary["map50"] == pytest.approx(voc_evaluate(dets, test.targets, 0.5)["map"], abs=1e-9)
    assert summary["coco_map"] == pytest.approx(coco_evaluate(dets, test.targets)["stats"][0], abs=1e-9)
    assert summary["map50"] == history[-1]["map50"]
    for name in ("detections.png", "pr_curves.png", "curves.png", "yolo_grid.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_yolo_cells_and_pictures(tmp_path):
    ds = digit_detection(2, canvas=64, digits_per_image=(2, 3), size_range=(10, 20), seed=3)
    t = ds.targets[0]
    cells = vd.yolo_cells(t, 5, (64, 64))
    for (row, col), (x1, y1, x2, y2) in zip(cells, t["boxes"]):         # the centre lies inside the cell
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert col * 64 / 5 <= cx < (col + 1) * 64 / 5 and row * 64 / 5 <= cy < (row + 1) * 64 / 5
    assert vd.yolo_cells({"boxes": np.array([[60.0, 60, 64, 64]])}, 4, (64, 64)) == [(3, 3)]
    dets = [{"boxes": t["boxes"] + 1, "scores": np.full(len(t["boxes"]), 0.9), "labels": t["labels"]}
            for t in ds.targets]
    paths = [vd.plot_detections(ds.images, dets, ds.targets, str(tmp_path / "d.png"), ds.class_names),
             vd.plot_precision_recall(voc_evaluate(dets, ds.targets), str(tmp_path / "pr.png"), ds.class_names),
             vd.plot_yolo_grid(ds.images[0], np.random.default_rng(0).random((5, 5, 20)), t, 5, 2,
                               str(tmp_path / "g.png"), ds.class_names),
             vd.plot_detection_curves([{"epoch": 1, "loss": 2.0, "map50": 0.1, "coco_map": 0.05}],
                                      str(tmp_path / "c.png"))]
    for p in paths:
        assert os.path.getsize(p) > 1000
    with pytest.raises(ValueError, match=r"plot_yolo_grid: pred must be \(S, S, 5B \+ C\) with S=5, B=2"):
        vd.plot_yolo_grid(ds.images[0], np.zeros((4, 4, 20)), t, 5, 2, str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="plot_detections: 2 images, 1 detections"):
        vd.plot_detections(ds.images, dets[:1], ds.targets, str(tmp_path / "x.png"))


def _plain_default_boxes(levels, image):
    """Square boxes of side ``s`` and (2s, s) boxes centred on each cell of each level, cell-major: a
    plain-loop layout to test the panels against."""
    out = []
    for (h, w), s in levels:
        for i in range(h):
            for j in range(w):
                cx, cy = (j + 0.5) * image / w, (i + 0.5) * image / h
                out += [[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], [cx - s, cy - s / 2, cx + s, cy + s / 2]]
    return np.array(out)


def test_default_box_panels_and_picture(tmp_path):
    levels = [((8, 8), 10.0), ((4, 4), 24.0), ((1, 1), 60.0)]
    anchors = _plain_default_boxes(levels, 64)
    target = {"boxes": np.array([[12.0, 12, 36, 36], [0, 40, 10, 50]]), "labels": np.array([1, 2])}
    panels = vd.default_box_panels([s for s, _ in levels], [2, 2, 2], anchors, target)
    assert [p["shape"] for p in panels] == [(8, 8), (4, 4), (1, 1)]
    # the first object's centre (24, 24): on the 8×8 map (cell centres 4 + 8k) halfway between cells 2 and 3,
    # the first is taken; on the 4×4 map (centres 8 + 16k) exactly cell 1's centre
    assert [p["cell"] for p in panels] == [(2, 2), (1, 1), (0, 0)]
    np.testing.assert_array_equal(panels[1]["boxes"], anchors[128 + (1 * 4 + 1) * 2: 128 + (1 * 4 + 1) * 2 + 2])
    for p, start, n in zip(panels, (0, 128, 160), (128, 32, 2)):
        level, want = anchors[start:start + n], []
        for box in level:                      # plain-loop IoU against both truth boxes
            best = 0.0
            for t in target["boxes"]:
                iw = max(0.0, min(box[2], t[2]) - max(box[0], t[0]))
                ih = max(0.0, min(box[3], t[3]) - max(box[1], t[1]))
                union = (box[2] - box[0]) * (box[3] - box[1]) + (t[2] - t[0]) * (t[3] - t[1]) - iw * ih
                best = max(best, iw * ih / union)
            if best >= 0.5:
                want.append(box)
        np.testing.assert_array_equal(p["matched"], np.array(want).reshape(-1, 4))
    assert len(panels[1]["matched"]) > 0       # the 24-px object is matched on the 24-px level
    ds = digit_detection(1, canvas=64, seed=3)
    path = vd.plot_default_boxes(ds.images[0], [s for s, _ in levels], [2, 2, 2], anchors, str(tmp_path / "b.png"),
                                 target)
    assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="default_box_panels: level_shapes"):
        vd.default_box_panels([(8, 8)], [3], anchors)


def test_mask_rcnn_on_nuclei_reports_what_its_checkpoint_scores(tmp_path, monkeypatch):
    """The registered Mask R-CNN recipe, shortened: one epoch of 8 tiles; the summary's box and mask
    figures equal pycocotools-equivalent scores recomputed from the saved weights."""
    from minicnn.data.detection import nuclei_detection

    short = dict(cd.DETECTORS["mask_rcnn"].recipes["nuclei"], epochs=1, images_per_epoch=8, warmup=1)
    det = cd.DETECTORS["mask_rcnn"]
    monkeypatch.setitem(cd.DETECTORS, "mask_rcnn_short", cd.Detector(
        build=det.build, loss=det.loss, decode=det.decode, forward=det.forward, masks=True,
        recipes={"nuclei": short}))
    out = tmp_path / "run"
    main(["train", "--task", "detection", "--model", "mask_rcnn_short", "--dataset", "nuclei", "--out", str(out),
          "--no-progress"])
    summary = json.loads((out / "summary.json").read_text())
    test = nuclei_detection("test")
    model = cd.build_detector("mask_rcnn_short", "nuclei", test.num_classes - 1, 1, test.images.shape[2])
    z = np.load(out / "checkpoint.npz")
    model.load_state_dict({k: z[k] for k in z.files})
    model.eval()
    with mc.no_grad():
        dets = det.decode(model)(det.forward(model, mc.Tensor(test.images), None))
    assert summary["map50"] == pytest.approx(voc_evaluate(dets, test.targets, 0.5)["map"], abs=1e-9)
    assert summary["mask_coco_map"] == pytest.approx(coco_evaluate(dets, test.targets, "segm")["stats"][0], abs=1e-9)
    assert summary["mask_ap50"] == pytest.approx(coco_evaluate(dets, test.targets, "segm")["stats"][1], abs=1e-9)


def _summary_and_checkpoint_scores(out, name, n=4):
    """The run's summary and its checkpoint's held-out detections: (summary, model, test set, detections)."""
    summary = json.loads((out / "summary.json").read_text())
    det = cd.DETECTORS[name]
    model = cd.build_detector(name, "digit-canvases", 10, 1, 128)
    z = np.load(out / "checkpoint.npz")
    model.load_state_dict({k: z[k] for k in z.files})
    model.eval()
    test = digit_detection(n, canvas=128, split="test", seed=1)
    with mc.no_grad():
        dets = det.decode(model)(det.forward(model, mc.Tensor(test.images), None))
    assert summary["map50"] == pytest.approx(voc_evaluate(dets, test.targets, 0.5)["map"], abs=1e-9)
    return summary, model, test, dets


@pytest.mark.parametrize("name", ["ssd", "retinanet"])
def test_one_stage_detectors_run_from_the_command_line(tmp_path, name):
    """SSD and RetinaNet through the registry: a one-epoch run on 16 canvases whose summary equals the
    scores of its saved weights; SSD also draws the default boxes of its own generator."""
    out = tmp_path / name
    main(["train", "--task", "detection", "--model", name, "--epochs", "1", "--limit", "16", "--test-images", "4",
          "--out", str(out), "--no-progress"])
    summary, model, test, dets = _summary_and_checkpoint_scores(out, name)
    assert sum(p.size for p in model.parameters()) == summary["parameters"]
    assert summary["coco_map"] == pytest.approx(coco_evaluate(dets, test.targets)["stats"][0], abs=1e-9)
    pictures = ["detections.png", "pr_curves.png", "curves.png"]
    if name == "ssd":
        from minicnn.models.detection.ssd import default_boxes

        shapes, per_cell, boxes = default_boxes(model, test.images[0])
        assert shapes == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)] and len(per_cell) == 5
        assert len(boxes) == sum(h * w * a for (h, w), a in zip(shapes, per_cell))
        pictures.append("default_boxes.png")
    for picture in pictures:
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["rcnn", "fast_rcnn"])
def test_selective_search_detectors_run_from_the_command_line(tmp_path, name):
    """R-CNN and Fast R-CNN through the registry (proposals computed per canvas): a one-epoch run on 4
    canvases whose summary equals the scores of its saved weights on the same held-out canvases."""
    out = tmp_path / name
    main(["train", "--task", "detection", "--model", name, "--epochs", "1", "--limit", "4", "--test-images", "4",
          "--pretrain-epochs", "0", "--out", str(out), "--no-progress"])
    summary, model, test, dets = _summary_and_checkpoint_scores(out, name)
