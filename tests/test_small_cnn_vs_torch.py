"""The acceptance check: a small CNN built from minicnn layers (conv-bn-relu-pool ×2, dense,
dropout in eval) gives PyTorch's outputs and gradients (w.r.t. the input and every parameter)
with the same weights — in training mode (batch statistics) and in eval mode."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

torch = pytest.importorskip("torch")
tnn = torch.nn


def _blocks(lib, C1=6, C2=8):
    return [
        lib.Conv2d(1, C1, 3, padding=1), lib.BatchNorm2d(C1), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(C1, C2, 3, padding=1), lib.BatchNorm2d(C2), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(), lib.Linear(C2 * 3 * 3, 32), lib.ReLU(), lib.Dropout(0.5), lib.Linear(32, 10),
    ]


@pytest.fixture(scope="module")
def models():
    missing = [op for op in ("conv2d", "max_pool2d") if not hasattr(F, op)]
    if missing:
        pytest.skip(f"minicnn.functional has no {', '.join(missing)} yet")
    torch.manual_seed(0)
    theirs = tnn.Sequential(*_blocks(tnn))
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and running statistics
        for m in theirs:
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    ours = nn.Sequential(*_blocks(nn))
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("mode", ["eval", "train-bn-stats"])
def test_small_cnn_outputs_and_gradients_match_torch(models, mode):
    ours, theirs = models
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    if mode == "train-bn-stats":  # BatchNorm in training mode (batch statistics), dropout still off
        for a, b in zip(ours, theirs):
            if isinstance(b, tnn.BatchNorm2d):
                a.train(), b.train()
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    t_np = rng.integers(0, 10, 4)
    x = mc.Tensor(x_np, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    ours.zero_grad(), theirs.zero_grad()
    y, ty = ours(x), theirs(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-5, rtol=1e-4)
    loss = F.cross_entropy(y, mc.Tensor(t_np))
    tloss = torch.nn.functional.cross_entropy(ty, torch.tensor(t_np))
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-6, rtol=1e-4)
    tparams = dict(theirs.named_parameters())
    names = [n for n, _ in ours.named_parameters()]
    assert names == list(tparams)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-5, rtol=1e-4,
                                   err_msg=f"gradient of {name} ({mode})")
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(b.numpy(), dict(theirs.named_buffers())[name].numpy(), atol=1e-6, rtol=1e-5,
                                   err_msg=f"buffer {name} ({mode})")
