"""python -m minicnn train --task signals: choices follow the task, recipes fill the defaults,
tiny runs on real series write the pictures, bad flags are one-line errors."""
import json
import os

import numpy as np
import pytest

from minicnn.__main__ import SIGNAL_DATASETS, SIGNAL_MODELS, SIGNAL_RECIPES, build_parser, main, task_of
from minicnn.data import ArrayDataset, DataLoader
from minicnn.train import Trainer
from minicnn import models, optim, viz


def _error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_task_decides_the_model_and_dataset_choices():
    assert task_of(["train", "--task", "signals"]) == "signals" and task_of(["--task=signals"]) == "signals"
    assert task_of([]) == "images" and task_of(["--task", "video"]) == "images"
    args = build_parser("signals").parse_args(["train", "--task", "signals", "--model", "resnet1d",
                                               "--dataset", "osuleaf"])
    assert (args.model, args.dataset, args.epochs, args.batch_size) == ("resnet1d", "osuleaf", None, None)
    help_text = build_parser("signals").format_help()
    for name in SIGNAL_MODELS + SIGNAL_DATASETS:
        assert name in help_text


def test_a_signal_model_on_an_image_task_and_back_are_errors_listing_the_choices(capsys):
    line = _error(["train", "--model", "fcn1d"], capsys)
    assert "argument --model: invalid choice: 'fcn1d'" in line and "'basic'" in line
    line = _error(["train", "--task", "signals", "--dataset", "digits"], capsys)
    assert "argument --dataset: invalid choice: 'digits'" in line and "'gunpoint'" in line
    line = _error(["--task", "video"], capsys)
    assert "argument --task: invalid choice: 'video'" in line


def test_augment_is_an_error_for_signals(capsys):
    line = _error(["train", "--task", "signals", "--augment"], capsys)
    assert "--augment: no augmentation is defined for --task signals" in line


@pytest.mark.parametrize("model, dataset", [("resnet1d", "italypowerdemand"), ("inception1d", "japanesevowels"),
                                            ("fcn1d", "mnist1d")])
def test_a_tiny_run_writes_summary_and_pictures(tmp_path, model, dataset, capsys):
    out = tmp_path / "run"
    main(["train", "--task", "signals", "--model", model, "--dataset", dataset, "--epochs", "1", "--limit", "32",
          "--out", str(out), "--no-progress"])
    summary = json.load(open(out / "summary.json"))
    assert summary["task"] == "signals" and summary["dataset"] == dataset and summary["epochs"] == 1
    assert summary["batch_size"] == SIGNAL_RECIPES[dataset][1]
    for picture in ("learning_curves.png", "confusion_matrix.png", "signals_per_class.png", "cam.png"):
        assert os.path.getsize(out / picture) > 0, picture
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"test accuracy {100 * summary['test_accuracy']:.2f}%" in last and str(out) in last


def test_eval_every_evaluates_every_kth_epoch_and_the_last(tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 1, 16)).astype(np.float32)
    y = np.arange(8) % 2
    model = models.fcn1d(channels=(2, 2, 2))
    trainer = Trainer(model, optim.Adam(list(model.parameters())), num_classes=2, progress=False)
    loader = DataLoader(ArrayDataset(x, y), 4)
    history = trainer.fit(loader, loader, 5, log=lambda s: None, eval_every=2)
    assert [("test_acc" in h) for h in history] == [False, True, False, True, True]
    assert os.path.getsize(viz.plot_learning_curves(history, str(tmp_path / "lc.png"))) > 0
    with pytest.raises(ValueError, match=r"Trainer.fit: eval_every must be an integer >= 1, got 0"):
        trainer.fit(loader, loader, 1, eval_every=0)


def test_example_06_ends_with_its_result_and_where_the_pictures_are(tmp_path, monkeypatch, capsys):
    import re
    import runpy
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "examples", "06_time_series_fcn1d.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--epochs", "1", "--dataset", "italypowerdemand"])
    runpy.run_path(script, run_name="__main__")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    accuracy = float(re.search(r"test accuracy (\d+\.\d\d)%", last).group(1))
    assert accuracy == round(100 * json.load(open("runs/fcn1d-italypowerdemand/summary.json"))["test_accuracy"], 2)
    pictures = [w.rstrip(",;") for w in last.split() if w.startswith("runs/") and w.rstrip(",;").endswith(".png")]
    assert len(pictures) == 3 and all(os.path.getsize(p) > 0 for p in pictures), last


AEON_WHEEL = "/tmp/wheels/aeon-1.6.0-py3-none-any.whl"


@pytest.mark.skipif(not os.path.exists(AEON_WHEEL), reason="the aeon wheel is not on disk")
def test_the_tool_regenerates_the_embedded_files_byte_for_byte(tmp_path):
    import subprocess
    import sys

    root = os.path.join(os.path.dirname(__file__), "..")
    subprocess.run([sys.executable, os.path.join(root, "tools", "make_ucr_data.py"), "--aeon", AEON_WHEEL,
                    "--out", str(tmp_path)], check=True, capture_output=True)
    embedded = os.path.join(root, "minicnn", "data", "embedded", "ucr")
    for name in sorted(os.listdir(embedded)):
        assert open(os.path.join(embedded, name), "rb").read() == (tmp_path / name).read_bytes(), name
