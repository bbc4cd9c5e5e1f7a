"""DetectionTrainer (per-step schedules, clipping, hooks), the fresh-canvas stream and backbone
pre-training, against hand-computed values and a PyTorch twin."""
import functools
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import DataLoader
from minicnn.data.detection import CanvasStream, digit_detection
from minicnn.models.detection import yolo_v1_decode, yolo_v1_loss, yolo_v1_small
from minicnn.models.detection.yolo import DarknetFeatures
from minicnn.train_detection import DetectionTrainer, pretrain_backbone

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_yolo():
    return yolo_v1_small(num_classes=10, image_size=32, S=3, width=2, hidden=16, dropout=0.0)


def yolo_fns(model):
    return (lambda out, t: yolo_v1_loss(out, t, 3, 2, 10, image_size=32),
            lambda out: yolo_v1_decode(out, 0.01, 0.5, 2, image_size=32))


def small_canvases(n, split="train", seed=0):
    return digit_detection(n, canvas=32, digits_per_image=(1, 2), size_range=(8, 14), split=split, seed=seed)


def test_detection_trainer_fits_and_evaluates():
    train, test = small_canvases(8), small_canvases(4, "test", 1)
    mc.manual_seed(0)
    model = tiny_yolo()
    trainer = DetectionTrainer(model, mc.optim.Adam(model.parameters(), lr=1e-3), *yolo_fns(model), progress=False)
    seen = []
    history = trainer.fit(DataLoader(train, batch_size=4, shuffle=True, seed=0), test, 2, log=None,
                          on_epoch=lambda tr, e, row: seen.append((e, row["epoch"])))
    assert [h["epoch"] for h in history] == [1, 2] and seen == [(1, 1), (2, 2)]
    from minicnn.detection_metrics import coco_evaluate, voc_evaluate
    dets = trainer.predict(test.images)
    assert history[-1]["map50"] == pytest.approx(voc_evaluate(dets, test.targets)["map"], abs=1e-12)
    assert history[-1]["coco_map"] == pytest.approx(coco_evaluate(dets, test.targets)["stats"][0], abs=1e-12)
    trainer.loss_fn = lambda out, t: (out * float("nan")).sum()
    with pytest.raises(FloatingPointError, match="DetectionTrainer: loss is nan"):
        trainer.train_epoch(DataLoader(train, batch_size=4), 3)


def test_batch_scheduler_steps_once_per_batch_and_clipping_bounds_the_update():
    train = small_canvases(12)
    mc.manual_seed(1)
    model = tiny_yolo()
    opt = mc.optim.SGD(model.parameters(), lr=0.5)
    sched = mc.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (t + 1))
    before = [p.numpy().copy() for p in model.parameters()]
    trainer = DetectionTrainer(model, opt, *yolo_fns(model), progress=False, batch_scheduler=sched, max_grad_norm=0.1)
    trainer.train_epoch(DataLoader(train, batch_size=4), 1)                     # 3 steps
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / 4)
    # plain SGD steps of lr 0.5, 0.25, 1/6 on gradients of joint norm <= 0.1 move the weights at most
    # (0.5 + 0.25 + 1/6) * 0.1 in joint L2 norm
    moved = math.sqrt(sum(((p.numpy() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert 0 < moved <= (0.5 + 0.25 + 1 / 6) * 0.1 * (1 + 1e-5)


def test_predict_goes_through_the_forward_hook():
    test = small_canvases(3, "test", 2)
    mc.manual_seed(2)
    model = tiny_yolo()
    calls = []

    def forward(m, x, targets):
        calls.append(targets)
        return m(x)

    trainer = DetectionTrainer(model, mc.optim.Adam(model.parameters()), *yolo_fns(model), progress=False,
                               forward=forward)
    dets = trainer.predict(test.images, batch_size=2)
    assert calls == [None, None] and len(dets) == 3


def test_canvas_stream_is_fresh_each_epoch_and_reproducible():
    make = functools.partial(digit_detection, canvas=32, size_range=(8, 14), split="train")
    s = CanvasStream(make, 10, 4, seed=3)
    assert len(s) == 3
    e0 = list(s)
    e1 = list(s)
    assert [len(x) for x, _ in e0] == [4, 4, 2]
    again = CanvasStream(make, 10, 4, seed=3)
    for (x, t), (x2, t2) in zip(e0, list(again)):
        np.testing.assert_array_equal(x, x2)
        for a, b in zip(t, t2):
            np.testing.assert_array_equal(a["boxes"], b["boxes"])
    assert not np.array_equal(e0[0][0], e1[0][0])                                 # a new epoch, new canvases
    ref = make(2, seed=(3, 1, 2))                                                  # epoch 1, batch 2
    np.testing.assert_array_equal(e1[2][0], ref.images)
    s.set_epoch(0)
    np.testing.assert_array_equal(next(iter(s))[0], e0[0][0])
    for bad in (dict(images_per_epoch=0, batch_size=4), dict(images_per_epoch=4, batch_size=True)):
        with pytest.raises(ValueError, match="CanvasStream"):
            CanvasStream(make, seed=0, **bad)


def test_pretrain_backbone_one_step_equals_pytorch():
    torch = pytest.importorskip("torch")
    mc.manual_seed(5)
    backbone = DarknetFeatures(((3, 4, 1), "M"), in_channels=1, batch_norm=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    # the temporary head is fc: Linear(4, 3); rebuild the same initial classifier in PyTorch
    twin = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                               torch.nn.LeakyReLU(0.1), torch.nn.MaxPool2d(2, 2))
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in backbone.state_dict().items()})
    mc.manual_seed(6)
    fc_init = nn.Linear(4, 3)
    fc = torch.nn.Linear(4, 3)
    fc.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in fc_init.state_dict().items()})
    mc.manual_seed(6)                                  # pretrain_backbone's Linear draws the same weights
    acc = pretrain_backbone(backbone, x, y, 3, epochs=1, batch_size=6, lr=1e-2, log=None)
    opt = torch.optim.Adam(list(twin.parameters()) + list(fc.parameters()), lr=1e-2)
    logits = fc(twin(torch.from_numpy(x)).mean((2, 3)))
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
    opt.step()
    assert acc == [pytest.approx((logits.detach().numpy().argmax(1) == y).mean())]
    np.testing.assert_allclose(backbone[0].weight.numpy(), twin[0].weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backbone[1].weight.numpy(), twin[1].weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"pretrain_backbone: labels must lie in 0..2"):
        pretrain_backbone(backbone, x, y + 1, 3, log=None)
