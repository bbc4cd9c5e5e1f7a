"""The training loop and the CLI (the README's main job) on a small slice of the real digits."""
import argparse
import glob
import json
import math
import os
import re
import runpy
import sys

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import viz
from minicnn.data.datasets import FASHION_MNIST_ROOT
from minicnn.__main__ import build_parser, main, train

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


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


# ---- the command line rejects what it cannot run, in one line, before it writes anything ----

def _parse_error(argv, capsys):
    """argparse's exit (status 2) for ``argv``; returns the error line it printed."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_epochs_below_one_is_an_error_and_creates_no_run_folder(tmp_path, capsys, epochs):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main([f"--epochs={epochs}", "--limit", "8", "--no-progress", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(rf"error: argument --epochs: .*>= 1.*{epochs}", err), err
    assert not out.exists()


@given(st.integers(-10**6, 10**6), st.sampled_from(["--epochs", "--limit", "--batch-size"]))
@example(0, "--limit")
@example(-1, "--limit")
@example(0, "--batch-size")
def test_count_flags_take_integers_from_one(n, flag):
    if n >= 1:
        args = build_parser().parse_args([f"{flag}={n}"])
        assert getattr(args, flag[2:].replace("-", "_")) == n
    else:
        with pytest.raises(SystemExit):
            build_parser().parse_args([f"{flag}={n}"])


@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["--lr", "--weight-decay"]))
@example(0.0, "--lr")
@example(float("nan"), "--lr")
@example(float("inf"), "--lr")
@example(-1e-3, "--weight-decay")
@example(float("nan"), "--weight-decay")
def test_rate_flags_take_finite_floats_in_range(value, flag):
    ok = math.isfinite(value) and (value > 0 if flag == "--lr" else value >= 0)
    if ok:
        args = build_parser().parse_args([f"{flag}={value!r}"])
        assert getattr(args, flag[2:].replace("-", "_")) == value
    else:
        with pytest.raises(SystemExit):
            build_parser().parse_args([f"{flag}={value!r}"])


@pytest.mark.parametrize("argv, expected", [
    (["--limit=0"], r"argument --limit: .*>= 1.*'0'"),
    (["--batch-size=0"], r"argument --batch-size: .*>= 1"),
    (["--epochs=two"], r"argument --epochs: .*integer.*'two'"),
    (["--lr=nan"], r"argument --lr: .*finite.*> 0.*'nan'"),
    (["--lr=-0.1"], r"argument --lr: .*> 0"),
    (["--weight-decay=-1"], r"argument --weight-decay: .*>= 0"),
    (["--seed=-1"], r"argument --seed: .*>= 0"),
])
def test_bad_numbers_name_the_flag_and_the_value(argv, expected, capsys):
    assert re.search(expected, _parse_error(argv, capsys))


def _model_choices():
    """The names ``--model`` accepts."""
    return next(a for a in build_parser()._actions if a.dest == "model").choices or ()


def test_unknown_model_lists_the_choices(capsys):
    line = _parse_error(["--model", "resnet7"], capsys)
    assert "argument --model: invalid choice: 'resnet7'" in line
    for name in _model_choices():
        assert repr(name) in line


def test_model_choices_come_from_the_registry_and_all_build():
    from minicnn import models
    from minicnn.__main__ import build_model

    choices = list(_model_choices())
    assert {"basic", "seed", "lenet5", "resnet18", "resnet34", "resnet50"} <= set(choices)
    assert choices == [m for m in models.MODELS if m in choices]  # registry order
    x = mc.Tensor(np.zeros((2, 1, 28, 28), np.float32))
    for name in choices:
        assert build_model(name, 10).eval()(x).shape == (2, 10), name


def test_help_is_plain_text_with_models_and_defaults():
    for text in (build_parser().format_help(), _train_help()):
        assert "``" not in text
        for name in _model_choices():
            assert name in text, name
        assert "(default: 15)" in text and "(default: 0.001)" in text and "(default: digits)" in text
        assert "(default: None)" not in text and "(default: 0.0)" in text and "(default: 0)" in text


def _train_help():
    """The help of the ``train`` sub-command, as ``python -m minicnn train --help`` prints it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"].format_help()


@given(epochs=st.integers(1, 100), lr=st.floats(1e-6, 1.0), where=st.lists(st.booleans(), min_size=3, max_size=3))
@example(epochs=3, lr=1e-3, where=[True, True, True])
def test_flags_before_and_after_train_mean_the_same(epochs, lr, where):
    flags = [[f"--epochs={epochs}"], [f"--lr={lr!r}"], ["--no-augment"]]
    before = [a for f, w in zip(flags, where) if w for a in f]
    after = [a for f, w in zip(flags, where) if not w for a in f]
    args = build_parser().parse_args([*before, "train", *after])
    assert (args.command, args.epochs, args.lr, args.augment) == ("train", epochs, lr, False)
    assert args.batch_size == 32 and args.model == "basic" and args.limit is None


@pytest.mark.parametrize("epochs, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_trainer_fit_needs_at_least_one_epoch(epochs, error):
    from minicnn import data, nn, optim
    from minicnn.train import Trainer

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    loader = data.DataLoader(data.ArrayDataset(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64)), 2)
    with pytest.raises(error, match="Trainer.fit: epochs must be"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=False).fit(loader, loader, epochs, log=None)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_stops_with_one_line_at_the_first_non_finite_loss(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["--lr=1e9", "--optimizer=sgd", "--epochs=3", "--limit=96", "--no-augment", "--no-progress",
              "--out", str(out)])
    assert re.fullmatch(r"python -m minicnn: error: Trainer: the training loss is (nan|inf) at epoch \d, batch \d: "
                        r"the weights diverged \(try a lower learning rate\) or the data holds NaN/inf", str(e.value))
    assert "Traceback" not in capsys.readouterr().err


def test_trainer_stops_before_updating_on_a_nan_batch():
    from minicnn import data, nn, optim
    from minicnn.train import Trainer

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    images = np.ones((6, 1, 2, 2), np.float32)
    images[4, 0, 1, 1] = np.nan  # in the third batch of 2
    loader = data.DataLoader(data.ArrayDataset(images, np.zeros(6, np.int64)), 2)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.0), progress=False)
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 1, batch 3"):
        trainer.fit(loader, loader, 2)
    for k, v in model.state_dict().items():  # lr 0: two updates changed nothing, the NaN batch none
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_trainer_refuses_a_training_loader_without_batches():
    from minicnn import data, nn, optim
    from minicnn.train import Trainer

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    images, labels = np.zeros((3, 1, 2, 2), np.float32), np.zeros(3, np.int64)
    empty = data.DataLoader(data.ArrayDataset(images, labels), 4, drop_last=True)  # 3 images, batches of 4
    with pytest.raises(ValueError, match="the training loader yielded no batches"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=False).fit(empty, empty, 1)


def test_learning_curves_of_a_validation_history_say_validation(tmp_path, monkeypatch):
    figs = []
    monkeypatch.setattr(viz.plots, "_save", lambda fig, path: figs.append(fig) or path)
    history = [dict(epoch=e, train_loss=1.0 / e, train_acc=0.5, val_loss=2.0 / e, val_acc=0.4) for e in (1, 2)]
    viz.plot_learning_curves(history, tmp_path / "c.png")
    (loss_axis, acc_axis) = figs[0].axes
    assert [t.get_text() for t in loss_axis.get_legend().get_texts()] == ["train", "validation"]
    np.testing.assert_array_equal(loss_axis.lines[1].get_ydata(), [2.0, 1.0])
    np.testing.assert_array_equal(acc_axis.lines[1].get_ydata(), [40.0, 40.0])
    with pytest.raises(ValueError, match="plot_learning_curves: history is empty"):
        viz.plot_learning_curves([], tmp_path / "d.png")


@pytest.mark.skipif(mc.cuda_is_available(), reason="a GPU is present: the cuda device works here")
def test_cuda_without_a_gpu_is_one_line_naming_cuda_emu(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["--device", "cuda", "--epochs", "1", "--limit", "8", "--no-progress", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("python -m minicnn: error: ") and "cuda:" in line and "cuda-emu" in line
    assert not out.exists()


# ---- one name for the held-out split: test ----

def test_the_held_out_split_is_called_test_everywhere(tmp_path, monkeypatch):
    legends = []

    def keep_legends(fig, path):
        legends.extend(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
        plt.close(fig)
        return path

    plt = pytest.importorskip("matplotlib.pyplot")
    monkeypatch.setattr(viz.plots, "_save", keep_legends)
    summary, out, lines = _run_once(tmp_path)
    history = json.load(open(out / "history.json"))
    assert set(history[0]) >= {"test_loss", "test_acc", "test_f1"}
    assert not any(k.startswith("val") for k in history[0])
    assert set(legends) == {"train", "test"}
    assert not any("val" in line for line in lines)
    assert any("test loss" in line and "test acc" in line for line in lines)
    assert "1 epoch," in lines[0] and "epochs" not in lines[0]
    assert json.load(open(out / "summary.json")) == summary
    assert summary["test_accuracy"] == history[-1]["test_acc"]
    assert summary["test_macro_f1"] == history[-1]["test_f1"]


def test_summary_accuracy_is_the_checkpoints_accuracy_on_the_test_split(tmp_path):
    from minicnn import data
    from minicnn.__main__ import build_model

    summary, out, _ = _run_once(tmp_path)
    model = build_model("basic", 10).load(out / "checkpoint.npz").eval()
    test = data.load_digits("test")
    with mc.no_grad():
        pred = np.concatenate([model(mc.Tensor(test.images[i:i + 250])).numpy().argmax(1)
                               for i in range(0, len(test), 250)])
    assert summary["test_accuracy"] == np.mean(pred == test.labels)


def _run_once(tmp_path):
    return _run(tmp_path, "once", "--epochs", "1", "--limit", "64", "--no-augment")


# ---- the examples end with their result and where the picture went ----

_FASHION = pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_ROOT), reason="Fashion-MNIST is not installed")


@pytest.mark.parametrize("script, argv", [
    ("01_basic_cnn_digits.py", ["--epochs", "1"]),
    pytest.param("02_seed_cnn_fashion_mnist.py", ["--epochs", "1", "--limit", "64"], marks=_FASHION),
    ("03_lenet5_digits.py", ["--epochs", "1"]),
    pytest.param("04_resnet_small_fashion_mnist.py", ["--epochs", "1", "--limit", "64", "--width", "4"],
                 marks=_FASHION),
    ("05_localization_digits.py", ["--epochs", "1", "--train", "64"]),
])
def test_each_example_ends_with_its_result_and_where_the_pictures_are(tmp_path, monkeypatch, capsys, script, argv):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    runpy.run_path(os.path.join(EXAMPLES, script), run_name="__main__")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "{" not in last, last  # a sentence, not a printed dict
    accuracy = float(re.search(r"test accuracy (\d+\.\d\d)%", last).group(1))
    places = [w.rstrip(",;:)") for w in last.split() if w.startswith("runs/")]
    named = [w.strip("(),;:") for w in last.split() if w.endswith((".png", ".png,", ".png)")) and "/" not in w]
    pictures = [p for p in places if p.endswith(".png")]
    for folder in (p for p in places if not p.endswith(".png")):
        pictures += [os.path.join(folder, n) for n in named] or glob.glob(os.path.join(folder, "*.png"))
    assert pictures, last
    for picture in pictures:
        assert os.path.getsize(picture) > 0, (picture, last)
    for summary in glob.glob("runs/*/summary.json"):
        assert accuracy == round(100 * json.load(open(summary))["test_accuracy"], 2)
