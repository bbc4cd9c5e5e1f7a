"""python -m minicnn train --task segmentation: flags, recipes, errors, and a short run that writes
its summary and pictures (tiny: a few images, one epoch)."""
import json
import os

import numpy as np
import pytest

from minicnn.__main__ import build_parser, main
from minicnn.cli_segmentation import SEG_MODELS, SEG_RECIPES, resolve_segmentation_defaults


def _parse(*argv):
    return build_parser("segmentation").parse_args(["train", "--task", "segmentation", *argv])


def test_recipe_fills_what_the_command_line_leaves_out():
    a = resolve_segmentation_defaults(_parse("--dataset", "digits", "--epochs", "3"))
    assert (a.epochs, a.batch_size, a.lr) == (3, SEG_RECIPES["digits"][1], SEG_RECIPES["digits"][2])
    assert a.augment is False                      # digits are not flipped
    b = resolve_segmentation_defaults(_parse("--dataset", "nuclei"))
    assert b.augment is True and b.epochs == SEG_RECIPES["nuclei"][0]
    assert b.classes == 3 and b.weight_map is True                  # U-Net's paper setting
    c = resolve_segmentation_defaults(_parse("--dataset", "nuclei", "--model", "segnet", "--classes", "2"))
    assert c.classes == 2 and c.weight_map is False
    assert resolve_segmentation_defaults(_parse("--dataset", "digits")).classes == 2
    assert resolve_segmentation_defaults(_parse("--dataset", "nuclei", "--no-augment")).augment is False


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        _parse("--model", "resnet18")              # not a segmentation model
    with pytest.raises(SystemExit):
        _parse("--classes", "4")
    with pytest.raises(ValueError, match="nuclei only"):
        main(["train", "--task", "segmentation", "--dataset", "digits", "--classes", "3", "--no-progress"])


@pytest.mark.parametrize("argv", [
    ["--model", "unet", "--dataset", "nuclei", "--limit", "4"],
    ["--model", "segnet_basic", "--dataset", "digits", "--limit", "8"],
])
def test_short_run_writes_summary_and_pictures(tmp_path, argv):
    out = str(tmp_path / "run")
    lines = []
    import minicnn.__main__ as cli
    summary = cli.train(_parse(*argv, "--epochs", "1", "--batch-size", "4", "--out", out, "--no-progress"),
                        log=lines.append)
    for name in ("summary.json", "history.json", "checkpoint.npz", "learning_curves.png", "class_iou.png",
                 "predictions.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    saved = json.load(open(os.path.join(out, "summary.json")))
    assert saved["model"] == summary["model"] and 0 <= saved["test_mean_iou"] <= 1
    k = saved["classes"]
    assert len(saved["test_per_class_iou"]) == k
    assert np.isclose(saved["test_mean_iou"], np.nanmean(np.array(saved["test_per_class_iou"], dtype=float)))
    if "nuclei" in argv:                                   # 3 classes and the weight map by default
        assert k == 3 and 0 <= saved["test_instance_f1"] <= 1
    assert lines[-1].startswith("test mean IoU")


@pytest.mark.parametrize("name", SEG_MODELS)
def test_every_recipe_model_builds_and_maps_a_canvas_to_scores_of_its_size(name):
    import minicnn as mc
    from minicnn.cli_segmentation import build_segmentation_model
    from minicnn.train_segmentation import main_output

    mc.manual_seed(0)
    model = build_segmentation_model(name, num_classes=11, in_channels=1).eval()
    x = mc.Tensor(np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32))
    out = main_output(model(x))
    assert out.shape == (2, 11, 64, 64)
    assert np.isfinite(out.numpy()).all()


def test_every_model_is_a_choice():
    p = build_parser("segmentation")
    for m in SEG_MODELS:
        assert p.parse_args(["--task", "segmentation", "--model", m]).model == m


# ---- the segmentation examples end with their result and where the pictures went ----

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize("script, pictures", [
    ("07_fcn8s_digit_canvases.py", ["skips.png"]),
    ("08_unet_nuclei.py", ["weight_map.png", "instances.png"]),
    ("09_segnet_digit_canvases.py", ["unpooling.png"]),
    ("10_deeplabv3_digit_canvases.py", ["atrous.png"]),
])
def test_each_segmentation_example_runs_and_draws(tmp_path, monkeypatch, capsys, script, pictures):
    import re
    import runpy
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--epochs", "1", "--limit", "8"])
    runpy.run_path(os.path.join(EXAMPLES, script), run_name="__main__")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    folder = re.search(r"pictures in (runs/\S+)/", last).group(1)
    summary = json.load(open(os.path.join(folder, "summary.json")))
    assert re.search(r"(mean IoU|foreground IoU) \d\.\d{4}", last), last
    for name in pictures + ["predictions.png", "class_iou.png", "learning_curves.png"]:
        assert os.path.getsize(os.path.join(folder, name)) > 0, name
    assert summary["epochs"] == 1
