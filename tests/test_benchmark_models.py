"""benchmarks/models.py: the PyTorch networks it times hold the same weights as ours and give the
same eval outputs (tiny inputs), a disagreeing row is an error, and the command dispatches."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import minicnn as mc  # noqa: E402
from benchmarks import models as bm  # noqa: E402
from minicnn.models.segmentation import unet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _eval_both(ours, theirs, x):
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    with mc.no_grad():
        a = ours(mc.Tensor(x)).numpy()
    with torch.no_grad():
        b = theirs(torch.from_numpy(x)).numpy()
    return a, b


@pytest.mark.parametrize("padding,depth,size", [(True, 2, 16), (False, 1, 18), (False, 2, 44)])
def test_torch_unet_twin_matches_ours(padding, depth, size):
    torch.manual_seed(0)
    theirs = bm.torch_unet(torch, in_channels=2, num_classes=3, base_channels=4, depth=depth, padding=padding)
    ours = unet(in_channels=2, num_classes=3, base_channels=4, depth=depth, padding=padding)
    assert sorted(theirs.state_dict()) == sorted(ours.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 2, size, size), dtype=np.float32)
    a, b = _eval_both(ours, theirs, x)
    assert a.shape == b.shape == (2, 3) + ((size, size) if padding else ours.output_size((size, size)))
    assert np.max(np.abs(a - b)) <= 1e-4 * np.max(np.abs(b))


def test_unet_row_times_both_and_checks_outputs():
    row = next(r for r in bm.ROWS if r.name == "unet_64")
    out = bm.run_row(row, torch, None, reps=1, memory=False, log=lambda s: None)
    assert [r["mode"] for r in out] == ["eval", "train"]
    for r in out:
        assert r["ours_ms"] > 0 and r["torch_ms"] > 0
        assert r["ratio"] == pytest.approx(r["torch_ms"] / r["ours_ms"])
        assert r["images_per_s"] == pytest.approx(row.batch / (r["ours_ms"] / 1e3))
        assert r["max_abs_diff"] <= 1e-3 * r["output_scale"]


def test_disagreeing_outputs_are_an_error(monkeypatch):
    row = next(r for r in bm.ROWS if r.name == "unet_64")
    real = bm._ours

    class Shifted(mc.nn.Module):
        """The real U-Net, its output shifted by 1 (the state_dict still loads)."""

        def __init__(self):
            super().__init__()
            self.net = real("unet_64")

        def load_state_dict(self, sd, strict=True):
            return self.net.load_state_dict(sd, strict)

        def forward(self, x):
            return self.net(x) + 1.0

    monkeypatch.setattr(bm, "_ours", lambda name: Shifted())
    with pytest.raises(ValueError, match="unet_64: eval outputs disagree"):
        bm.run_row(row, torch, None, reps=1, memory=False, log=lambda s: None)


def test_peak_memory_is_measured_for_both_libraries():
    # the U-Net's activations: 8 images · 16 channels · 64² float32 = 2 MiB per full-size map, 8 such
    # maps at the top level alone (kept for backward)
    for framework in ("minicnn", "torch"):
        total, step = bm.peak_memory_mib("unet_64", framework, "train", timeout_s=300)
        assert isinstance(total, float) and isinstance(step, float)
        assert total > 8 and 0 <= step <= total


def test_dcgan_twin_matches_ours_and_one_training_step_agrees():
    """The GAN row's PyTorch pair holds the same modules as ours (the recipe's configuration), gives
    the same G(z) and D(x), and one timed training step (D step then G step, Adam) moves both
    pairs' weights alike: the two closures run the same computation."""
    from minicnn.cli_gan import GAN_MODEL_KWARGS

    assert bm.DCGAN == GAN_MODEL_KWARGS["dcgan"]
    row = next(r for r in bm.ROWS if r.name == "dcgan_32")
    torch.manual_seed(0)
    theirs, ours = bm._theirs("dcgan_32", torch, None), bm._ours("dcgan_32")
    assert sorted(theirs.state_dict()) == sorted(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x, z = bm._data(row)
    assert x.shape == (64, 1, 32, 32) and z.shape == (64, 100) and np.abs(x).max() <= 1
    o_train, o_eval = bm._our_steps(ours, x, z)
    t_train, t_eval = bm._their_steps(torch, theirs, x, z)
    a, b = bm._compared_outputs("minicnn", ours, x, z, o_eval), bm._compared_outputs("torch", theirs, x, z, t_eval, torch)
    assert a.shape == b.shape == (64 * 32 * 32 + 64,)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    before = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    o_train()
    t_train()
    # Adam's first step moves each weight by lr·g/(|g| + ε) ≈ ±lr = 2e-4: entries whose gradient is
    # within rounding of 0 may take the other sign in the other library (a difference of 2·lr); a
    # wrong gradient would flip the signs of many
    theirs_after, ours_after = theirs.state_dict(), ours.state_dict()
    for k, v in theirs_after.items():
        want, got = v.detach().numpy(), ours_after[k].numpy()
        if k.endswith("weight"):
            assert np.median(np.abs(want - before[k])) > 1e-4, k  # Adam moved it
        diff = np.abs(got.astype(np.float64) - want)
        assert diff.max() <= 4e-4 + 1e-5 * np.abs(want).max(), k
        assert np.mean(diff > 1e-5 + 1e-4 * np.abs(want)) < 0.01, k


def test_dcgan_row_times_both():
    row = next(r for r in bm.ROWS if r.name == "dcgan_32")
    out = bm.run_row(row, torch, None, reps=1, memory=False, log=lambda s: None)
    assert [r["mode"] for r in out] == ["eval", "train"]
    for r in out:
        assert r["ours_ms"] > 0 and r["torch_ms"] > 0 and r["images_per_s"] == pytest.approx(64 / (r["ours_ms"] / 1e3))
        assert r["max_abs_diff"] <= 1e-3 * r["output_scale"]


def test_retinanet_row_losses_agree_and_steps_run():
    """The detector row: the same weights give the same training losses (classification and box
    regression, non-trivial values) on the row's real digit canvases, and both closures run."""
    tv = pytest.importorskip("torchvision",
                             reason="torchvision does not import beside the CPU torch 2.13 of the test extras")
    row = next(r for r in bm.ROWS if r.name == "retinanet_320")
    torch.manual_seed(0)
    theirs, ours = bm._theirs(row.name, torch, tv), bm._ours(row.name)
    ours.load_state_dict(theirs.state_dict())
    x, y = bm._data(row)
    assert x.shape == (2, 3, 320, 320) and all(len(t["boxes"]) >= 1 for t in y)
    ours_steps, their_steps = bm._our_steps(ours, x, y), bm._their_steps(torch, theirs, x, y)
    a = bm._compared_outputs("minicnn", ours, x, y, ours_steps[1])
    b = bm._compared_outputs("torch", theirs, x, y, their_steps[1], torch)
    assert a.shape == b.shape == (2,) and np.all(b > 0.05)
    np.testing.assert_allclose(a, b, rtol=1e-4)
    for steps in (ours_steps, their_steps):
        steps[0]()
        assert steps[1]().ndim == 1


def test_command_dispatch():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "models", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "resnet18_32" in out.stdout and "--quick" in out.stdout


@pytest.mark.parametrize("name,size", [("resnet18_32", 32), ("resnet18_224", 64), ("resnet50_224", 64),
                                       ("mobilenet_v2_224", 64), ("vgg11_64", 32), ("densenet121_64", 32)])
def test_torchvision_rows_match_ours(name, size):
    tv = pytest.importorskip("torchvision",
                             reason="torchvision does not import beside the CPU torch 2.13 of the test extras")
    torch.manual_seed(0)
    theirs = bm._theirs(name, torch, tv)
    ours = bm._ours(name)
    x = np.random.default_rng(2).standard_normal((1, 3, size, size), dtype=np.float32)
    a, b = _eval_both(ours, theirs, x)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b))
