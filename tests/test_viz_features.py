"""minicnn.viz.features (feature maps, filters, activation maximisation), the viz package's old
names, and examples/11_what_a_cnn_sees.py."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minicnn as mc
from minicnn import nn, viz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _net(seed=0):
    mc.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh()), nn.Flatten(), nn.Linear(4, 5)).double()


def _no_hooks(model):
    return all(not m._forward_hooks and not m._backward_hooks and not m._has_hooks for m in model.modules())


@given(st.integers(1, 3), st.integers(0, 100))
def test_feature_maps_equal_running_the_layers_by_hand(n, seed):
    net = _net(seed)
    x = np.random.default_rng(seed).standard_normal((n, 2, 6, 6))
    with mc.no_grad():
        a0 = net[0](mc.Tensor(x))
        a1 = net[1](a0)
        a2 = net[2](a1)
        a30 = net[3][0](a2)
        a3 = net[3][1](a30)
        a5 = net[5](net[4](a3))
    maps = viz.feature_maps(net, x, ["0", "2", "3.0", "3", "5"])
    assert list(maps) == ["0", "2", "3.0", "3", "5"]
    for name, expect in zip(maps, (a0, a2, a30, a3, a5)):
        np.testing.assert_array_equal(maps[name], expect.numpy())
    every = viz.feature_maps(net, x)  # default: every module without children
    assert list(every) == ["0", "1", "2", "3.0", "3.1", "4", "5"]
    np.testing.assert_array_equal(every["1"], a1.numpy())
    assert _no_hooks(net) and all(m.training for m in net.modules())


def test_filter_responses_are_the_mean_of_each_map():
    net = _net(1)
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6))
    with mc.no_grad():
        a = net[1](net[0](mc.Tensor(x))).numpy()
    expect = np.array([[a[i, k].sum() / a[i, k].size for k in range(3)] for i in range(2)])
    np.testing.assert_allclose(viz.filter_responses(net, x, "1"), expect, rtol=1e-12)
    assert _no_hooks(net)


def test_a_layer_called_twice_or_unknown_is_a_clear_error():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 2, 1), relu, nn.Conv2d(2, 2, 1), relu).double()
    x = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="feature_maps: layer '1' ran 2 times in one forward pass"):
        viz.feature_maps(net, x, ["1", "2"])
    with pytest.raises(ValueError, match="filter_responses: layer 'conv' is not a module of Sequential; its modules "
                                         "are '0', '1', '2'"):
        viz.filter_responses(net, x, "conv")
    assert _no_hooks(net)


def test_activation_maximisation_increases_the_objective_and_finds_a_linear_units_weights():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    w = net[1].weight.numpy()[1]
    img, history = viz.activation_maximisation(net, "1", 1, (3, 2, 2), steps=300, lr=0.5, l2=0.1)
    assert img.shape == (3, 2, 2) and history.shape == (301,)
    assert np.all(np.diff(history[:100]) > 0) and np.all(np.diff(history) > -1e-12)  # then flat at the optimum
    cos = img.ravel() @ w / (np.linalg.norm(img) * np.linalg.norm(w))
    assert cos > 0.999999
    np.testing.assert_allclose(img.ravel(), w / (2 * 0.1), rtol=1e-6)  # the fixed point w / (2·l2)
    b = net[1].bias.numpy()[1]
    np.testing.assert_allclose(history[-1], w @ w / 0.2 + b - 0.1 * (w @ w) / 0.04, rtol=1e-6)


def test_activation_maximisation_of_a_conv_channel_increases_and_leaves_the_model_alone():
    net = _net(2)
    net.train()
    img, history = viz.activation_maximisation(net, "3.0", 2, (2, 6, 6), steps=40, lr=0.05, l2=1e-3)
    assert np.all(np.diff(history) > 0) and history[-1] > history[0] + 0.02
    with mc.no_grad():
        net.eval()
        a = net[3][0](net[2](net[1](net[0](mc.Tensor(img[None]))))).numpy()
    np.testing.assert_allclose(history[-1], a[0, 2].mean() - 1e-3 * (img ** 2).sum(), rtol=1e-9)
    assert _no_hooks(net) and all(p.grad is None and p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match=r"channel 9 is out of range for layer '3.0' with output shape \(1, 4, 1, 1\)"):
        viz.activation_maximisation(net, "3.0", 9, (2, 6, 6), steps=1)


def test_plot_filters_scales_each_filter_to_its_own_range(tmp_path, monkeypatch):
    figs = []
    monkeypatch.setattr(viz.plots, "_save", lambda fig, path: figs.append(fig) or path)
    w = np.random.default_rng(0).standard_normal((5, 1, 3, 3)) * np.arange(1, 6)[:, None, None, None]
    viz.plot_filters(w, str(tmp_path / "f.png"))
    shown = [ax.images[0].get_array() for ax in figs[0].axes if ax.images]
    assert len(shown) == 5
    for k, picture in enumerate(shown):
        f = w[k, 0]
        np.testing.assert_allclose(picture, (f - f.min()) / (f.max() - f.min()))
    with pytest.raises(ValueError, match=r"plot_filters: weight must be \(C_out, C_in, kh, kw\), got shape \(3, 3\)"):
        viz.plot_filters(w[0, 0], str(tmp_path / "g.png"))


def test_plot_feature_maps_writes_a_png_and_skips_dense_layers(tmp_path):
    net = _net(3)
    x = np.random.default_rng(3).standard_normal((1, 2, 6, 6))
    maps = viz.feature_maps(net, x)
    path = viz.plot_feature_maps(maps, str(tmp_path / "m.png"), image=x[0], title="maps")
    assert os.path.getsize(path) > 0
    with pytest.raises(ValueError, match="plot_feature_maps: no layer has spatial maps"):
        viz.plot_feature_maps({"5": maps["5"]}, str(tmp_path / "n.png"))


def test_the_viz_package_keeps_every_old_name_and_plots_save_through_plots_save(tmp_path, monkeypatch):
    for name in ("_plt", "_save", "_held_out_split", "_label_colors", "overlay_labels", "plot_cam", "plot_class_iou",
                 "plot_confusion_matrix", "plot_images", "plot_learning_curves", "plot_segmentation",
                 "plot_segmentation_curves", "plot_signals_per_class"):
        assert getattr(viz, name) is getattr(viz.plots, name)
    saved = []
    monkeypatch.setattr(viz.plots, "_save", lambda fig, path: saved.append(path) or path)
    viz.plot_confusion_matrix(np.eye(2, dtype=int), str(tmp_path / "cm.png"))
    assert saved == [str(tmp_path / "cm.png")] and not (tmp_path / "cm.png").exists()


def test_example_11_runs_and_ends_with_the_accuracy_and_where_the_pictures_are(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "11_what_a_cnn_sees.py"), "--epochs", "1",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy ") and "after 1 epoch " in last and str(out) in last
    for name in ("feature_maps.png", "filters.png", "attributions.png", "activation_maximisation.png"):
        assert (out / name).stat().st_size > 0
    assert "Total params: 61,706" in done.stdout


def test_example_12_draws_receptive_fields_and_padding_stride(tmp_path):
    """Example 12 checks inside itself that each unit's gradient lies in its summary window and
    that F.conv2d's output sizes equal the formula; here: it runs, ends with the sizes, draws both."""
    out = tmp_path / "rf"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "12_receptive_field_padding_stride.py"),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    sizes = [int(v) for v in re.findall(r"d=\d: (\d+)", last)]
    assert sizes == [(7 + 2 * p - d * 2 - 1) // s + 1 for p, s, d in ((0, 1, 1), (1, 1, 1), (1, 2, 1), (0, 1, 2))]
    for name in ("receptive_field.png", "padding_stride.png"):
        assert (out / name).stat().st_size > 0


def test_recorded_maps_are_the_layer_outputs_before_an_inplace_relu():
    """ResNet's bn1 is followed by ReLU(inplace=True): the recorded map keeps bn1's negative values
    (relu's map is its positive part), and Grad-CAM on bn1 (whose output the recorder replaces by a
    leaf copy) runs through the in-place ReLU after it."""
    from minicnn.models import resnet18
    from minicnn.viz.attribution import grad_cam
    from minicnn.viz.features import feature_maps

    mc.manual_seed(0)
    model = resnet18(num_classes=4, small_input=True)
    model.eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    maps = feature_maps(model, x, ["bn1", "relu"])
    assert (maps["bn1"] < 0).any()
    np.testing.assert_array_equal(np.maximum(maps["bn1"], 0), maps["relu"])
    cam = grad_cam(model, x, "bn1", class_idx=1)
    assert np.isfinite(cam).all() and cam.shape[-2:] == (16, 16)
