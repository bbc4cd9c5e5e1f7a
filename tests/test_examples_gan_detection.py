"""The generative examples (13-16) and the torchvision-style detector examples (21–24) run end to end on
a few images and end with their figures, which equal the summary they wrote (tiny runs: one epoch of a
few images)."""
import json
import os
import re
import runpy
import sys

import pytest

from minicnn.data.datasets import FASHION_MNIST_ROOT

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
_FASHION = pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_ROOT), reason="Fashion-MNIST is not installed")


@pytest.mark.parametrize("script, argv, folder, figure", [
    pytest.param("13_dcgan_fashion_mnist.py", [], "13_dcgan_fashion_mnist", r"Fréchet distance .*? ([\d.]+);",
                 marks=_FASHION),
    ("14_pix2pix_edges_fashion.py", ["--dataset", "nuclei"], "14_pix2pix_nuclei", r"held-out L1 ([\d.]+)"),
    pytest.param("15_cyclegan_sneakers_boots.py", [], "15_cyclegan_sneaker-boot", r"judged boots: ([\d.]+)",
                 marks=_FASHION),
    pytest.param("16_stylegan_small.py", [], "16_stylegan_fashion-mnist", r"Fréchet distance .*? ([\d.]+);",
                 marks=_FASHION),
])
def test_generative_example_runs_and_reports_its_summary(tmp_path, monkeypatch, capsys, script, argv, folder, figure):
    import minicnn.cli_gan as cli_gan

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_gan, "FRECHET_N", 16)
    monkeypatch.setattr(sys, "argv", [script, *argv, "--epochs", "1", "--limit", "16"])
    runpy.run_path(os.path.join(EXAMPLES, script), run_name="__main__")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    with open(os.path.join("runs", folder, "summary.json")) as f:
        summary = json.load(f)
    key = {"13": "frechet_distance", "14": "test_l1", "15": "domain_rate_ab", "16": "frechet_distance"}[script[:2]]
    value = float(re.search(figure, last).group(1))
    assert value == pytest.approx(summary[key], abs=10 ** -(len(str(value).split(".")[1])) * 0.51), (last, summary)
    assert summary["epochs"] == 1 and os.path.getsize(os.path.join("runs", folder, "losses.png")) > 0


@pytest.mark.parametrize("script, folder, figure, key, pictures", [
    ("21_faster_rcnn_digit_canvases.py", "21_faster_rcnn_digit_canvases", r"held-out mAP@0.5 ([\d.]+)", "map50",
     ("rpn_proposals.png", "detections.png")),
    ("22_mask_rcnn_nuclei.py", "22_mask_rcnn_nuclei", r"mask AP@0.5 ([\d.]+)", "mask_ap50",
     ("masks.png", "detections.png")),
    ("23_ssd_digit_canvases.py", "23_ssd_digit_canvases", r"held-out mAP@0.5 ([\d.]+)", "map50",
     ("default_boxes.png", "detections.png")),
    ("24_retinanet_digit_canvases.py", "24_retinanet_digit_canvases", r"held-out mAP@0.5 ([\d.]+)", "map50",
     ("pr_curves.png", "detections.png")),
])
def test_detector_example_runs_and_reports_its_summary(tmp_path, monkeypatch, capsys, script, folder, figure, key,
                                                        pictures):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--epochs", "1", "--limit", "8"])
    runpy.run_path(os.path.join(EXAMPLES, script), run_name="__main__")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    with open(os.path.join("runs", folder, "summary.json")) as f:
        summary = json.load(f)
    assert float(re.search(figure, last).group(1)) == pytest.approx(summary[key], abs=5e-5), (last, summary)
    for name in pictures:
        assert os.path.getsize(os.path.join("runs", folder, name)) > 0, name
