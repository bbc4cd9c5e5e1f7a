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
