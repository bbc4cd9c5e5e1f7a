"""benchmarks/model_convs.py: the convolutions of a step are recorded with their arguments and
counts, each is timed as the same work in both libraries, and a row's breakdown runs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import minicnn as mc  # noqa: E402
import minicnn.functional as F  # noqa: E402
from benchmarks import model_convs as mcv  # noqa: E402
from benchmarks import models as bm  # noqa: E402
from minicnn import nn  # noqa: E402


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 1, stride=2, bias=False)
        self.dw = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4)
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        h = self.down(self.down(self.stem(x)))   # the same call twice
        return self.up(self.dw(h))


def test_record_convolutions_counts_each_call_with_its_arguments():
    net, x = _Net(), mc.tensor(np.zeros((2, 3, 8, 8), np.float32))
    originals = F.conv2d, F.conv_transpose2d
    calls = mcv.record_convolutions(lambda: net(x))
    assert calls == {
        ("conv2d", (2, 3, 8, 8), (4, 3, 3, 3), True, (1, 1), (1, 1), (0, 0), (1, 1), 1): 1,
        ("conv2d", (2, 4, 8, 8), (4, 4, 1, 1), False, (2, 2), (0, 0), (0, 0), (1, 1), 1): 1,
        ("conv2d", (2, 4, 4, 4), (4, 4, 1, 1), False, (2, 2), (0, 0), (0, 0), (1, 1), 1): 1,
        ("conv2d", (2, 4, 2, 2), (4, 1, 3, 3), True, (1, 1), (2, 2), (0, 0), (2, 2), 4): 1,
        ("conv_transpose2d", (2, 4, 2, 2), (4, 2, 3, 3), True, (2, 2), (1, 1), (1, 1), (1, 1), 1): 1,
    }
    assert (F.conv2d, F.conv_transpose2d) == originals  # the recorders are gone
    assert net(x).shape == (2, 2, 4, 4)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("call", [
    ("conv2d", (2, 4, 9, 9), (6, 2, 3, 3), True, (2, 2), (1, 1), (0, 0), (1, 1), 2),
    ("conv2d", (1, 3, 7, 7), (5, 3, 1, 1), False, (1, 1), (0, 0), (0, 0), (1, 1), 1),
    ("conv_transpose2d", (2, 4, 3, 3), (4, 3, 4, 4), True, (2, 2), (1, 1), (0, 0), (1, 1), 1),
    ("conv_transpose2d", (1, 4, 3, 3), (4, 2, 3, 3), False, (2, 2), (1, 1), (1, 1), (1, 1), 2),
])
def test_each_library_times_the_same_work(call, mode):
    """The two closures timed for a recorded convolution compute the same output (eval) or the
    same input, weight and bias gradients (train)."""
    ours, theirs = mcv._layer_closures(torch, call, mode)
    a, b = ours(), theirs()
    if mode == "eval":
        a, b = [a], [b]
    assert len(a) == len(b) == (3 if call[3] else 2) * (mode == "train") + (mode == "eval")
    for u, v in zip(a, b):
        u, v = u.numpy(), v.detach().numpy()
        assert u.shape == v.shape
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-4 * float(np.abs(v).max()))


def test_breakdown_of_the_dcgan_row():
    row = next(r for r in bm.ROWS if r.name == "dcgan_32")
    out = mcv.breakdown(row, torch, None, reps=1, log=lambda s: None)
    assert [r["mode"] for r in out] == ["eval", "train"]
    # eval samples G(z): its 4 transposed convolutions; train: G(z), then D on the real and the fake
    # batch (D step) and on the fake batch again (G step), 4 convolutions each
    assert [r["conv_calls"] for r in out] == [4, 16]
    for r in out:
        assert r["step_ours_ms"] > 0 and r["step_torch_ms"] > 0 and r["conv_ours_ms"] > 0 and r["conv_torch_ms"] > 0
        assert mcv.format_row(r).count("|") == 10
