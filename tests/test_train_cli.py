"""The training loop and the CLI (the README's main job) on a small slice of the real digits."""
import json
import os

import numpy as np

from minicnn.__main__ import build_parser, train


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    args = build_parser().parse_args(["--limit", "640", "--epochs", "2", "--no-progress", "--out", str(out), *extra])
    lines = []
    summary = train(args, log=lines.append)
    return summary, out, lines


def test_main_job_learns_and_writes_its_outputs(tmp_path):
    summary, out, lines = _run(tmp_path, "a")
    # 640 real digits, 2 epochs: far above chance (10%) on the 1,000 held-out digits
    assert summary["test_accuracy"] > 0.6
    for f in ("checkpoint.npz", "history.json", "learning_curves.png", "confusion_matrix.png", "summary.json"):
        assert os.path.getsize(out / f) > 0, f
    history = json.load(open(out / "history.json"))
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert any("test accuracy" in line for line in lines)


def test_training_is_reproducible_with_a_seed(tmp_path):
    s1, out1, _ = _run(tmp_path, "b", "--seed", "3")
    s2, out2, _ = _run(tmp_path, "c", "--seed", "3")
    h1, h2 = (json.load(open(o / "history.json")) for o in (out1, out2))
    assert [h["train_loss"] for h in h1] == [h["train_loss"] for h in h2]
    c1, c2 = np.load(out1 / "checkpoint.npz"), np.load(out2 / "checkpoint.npz")
    for k in c1.files:
        np.testing.assert_array_equal(c1[k], c2[k])
