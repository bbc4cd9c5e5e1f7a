"""benchmarks/detection.py: the detection check accepts equal detections (up to tied scores) and
rejects different ones; with torchvision, a row times both libraries on the same weights."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import detection as bd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dets(scores):
    return {"scores": np.asarray(scores, np.float32)}


def test_check_accepts_equal_scores_in_any_tied_order():
    ours = _dets([0.9, 0.5, 0.5, 0.2])
    theirs = {"scores": torch.tensor([0.9, 0.5, 0.5 + 1e-5, 0.2])}
    assert bd.check_detections("x", ours, theirs) == 4


@pytest.mark.parametrize("ours,theirs,what", [
    ([0.9, 0.5], [0.9, 0.5, 0.1], "detections"),
    ([0.9, 0.5], [0.9, 0.45], "best scores differ"),
])
def test_check_rejects_different_detections(ours, theirs, what):
    with pytest.raises(ValueError, match=what):
        bd.check_detections("x", _dets(ours), {"scores": torch.tensor(theirs)})


def test_without_torchvision_nothing_runs():
    if bd._import_torchvision_ok():
        pytest.skip("torchvision imports here: the rows run (see the next test)")
    out = bd.run(size=64, quick=True, log=lambda s: None)
    assert out["rows"] == [] and out["torchvision"] is None


@pytest.mark.parametrize("name, parameters", [("retinanet", 34_068_119), ("ssd300", 35_641_826)])
def test_row_times_both_on_the_same_weights(name, parameters):
    pytest.importorskip("torchvision", reason="torchvision does not import beside the CPU torch of the test extras")
    out = bd.run(size=96, quick=True, only=[name], log=lambda s: None)
    (r,) = out["rows"]
    assert "error" not in r, r.get("error")
    assert r["ours_ms"] > 0 and r["torch_ms"] > 0 and r["ratio"] == pytest.approx(r["torch_ms"] / r["ours_ms"])
    assert r["parameters"] == parameters and r["detections"] > 0 and r["scores_compared"] > 0


def test_command_dispatches():
    p = subprocess.run([sys.executable, "-m", "benchmarks", "detection", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "--only" in p.stdout and "--size" in p.stdout
