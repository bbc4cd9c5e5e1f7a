"""1-D time-series models (FCN-1D, ResNet-1D, InceptionTime-1D): outputs and gradients equal PyTorch
twins with the same weights; each trains on real series on cpu and cuda-emu; the class activation
map against a plain loop; bad input is a clear error."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import functional as F
from minicnn import models, optim
from minicnn.data import ucr_arrays
from minicnn.models import class_activation_map

torch = pytest.importorskip("torch")
tnn = torch.nn


# ---- PyTorch twins: the same structure and parameter names, written from the papers' diagrams ----

class TConvBlock(tnn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv, self.bn = tnn.Conv1d(cin, cout, k, padding="same"), tnn.BatchNorm1d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class TFCN(tnn.Module):
    def __init__(self, cin, k, channels, kernels):
        super().__init__()
        blocks, c = [], cin
        for cout, ks in zip(channels, kernels):
            blocks.append(TConvBlock(c, cout, ks))
            c = cout
        self.features, self.fc = tnn.Sequential(*blocks), tnn.Linear(c, k)

    def forward(self, x):
        return self.fc(self.features(x).mean(2))


class TResBlock(tnn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block1, self.block2 = TConvBlock(cin, cout, 8), TConvBlock(cout, cout, 5)
        self.conv3, self.bn3 = tnn.Conv1d(cout, cout, 3, padding="same"), tnn.BatchNorm1d(cout)
        self.shortcut = (tnn.Sequential(tnn.Conv1d(cin, cout, 1), tnn.BatchNorm1d(cout)) if cin != cout
                         else tnn.BatchNorm1d(cout))

    def forward(self, x):
        return torch.relu(self.bn3(self.conv3(self.block2(self.block1(x)))) + self.shortcut(x))


class TResNet(tnn.Module):
    def __init__(self, cin, k, channels):
        super().__init__()
        blocks, c = [], cin
        for cout in channels:
            blocks.append(TResBlock(c, cout))
            c = cout
        self.features, self.fc = tnn.Sequential(*blocks), tnn.Linear(c, k)

    def forward(self, x):
        return self.fc(self.features(x).mean(2))


class TInceptionModule(tnn.Module):
    def __init__(self, cin, f, kernels):
        super().__init__()
        self.bottleneck = tnn.Conv1d(cin, f, 1, bias=False) if cin > 1 else None
        c = f if cin > 1 else cin
        self.branches = tnn.ModuleList([tnn.Conv1d(c, f, k, padding="same", bias=False) for k in kernels])
        self.pool_conv = tnn.Conv1d(cin, f, 1, bias=False)
        self.bn = tnn.BatchNorm1d(f * (len(kernels) + 1))

    def forward(self, x):
        z = self.bottleneck(x) if self.bottleneck is not None else x
        pooled = tnn.functional.max_pool1d(x, 3, stride=1, padding=1)
        return torch.relu(self.bn(torch.cat([b(z) for b in self.branches] + [self.pool_conv(pooled)], 1)))


class TInception(tnn.Module):
    def __init__(self, cin, k, f, depth, kernels):
        super().__init__()
        width = f * (len(kernels) + 1)
        self.blocks, self.shortcuts = tnn.ModuleList(), tnn.ModuleList()
        c, rc = cin, cin
        for d in range(depth):
            self.blocks.append(TInceptionModule(c, f, kernels))
            c = width
            if d % 3 == 2:
                self.shortcuts.append(tnn.Sequential(tnn.Conv1d(rc, width, 1, bias=False), tnn.BatchNorm1d(width)))
                rc = width
        self.fc = tnn.Linear(width, k)

    def forward(self, x):
        res = x
        for d, m in enumerate(self.blocks):
            x = m(x)
            if d % 3 == 2:
                x = torch.relu(x + self.shortcuts[d // 3](res))
                res = x
        return self.fc(x.mean(2))


CASES = {
    "fcn1d": (lambda: models.fcn1d(in_channels=2, num_classes=3, channels=(8, 16, 8)),
              lambda: TFCN(2, 3, (8, 16, 8), (8, 5, 3))),
    "resnet1d": (lambda: models.resnet1d(in_channels=2, num_classes=3, channels=(4, 8, 8)),
                 lambda: TResNet(2, 3, (4, 8, 8))),
    "inception1d": (lambda: models.inception1d(in_channels=2, num_classes=3, filters=4, depth=6,
                                               kernel_sizes=(3, 5, 9)),
                    lambda: TInception(2, 3, 4, 6, (3, 5, 9))),
}


def _twins(name):
    mc.manual_seed(0)
    ours, theirs = CASES[name][0](), CASES[name][1]().double()
    state = ours.state_dict()
    torch.manual_seed(0)
    with torch.no_grad():
        for key, t in theirs.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            if key.endswith(("running_var", "bn.weight", "bn3.weight")) or ".1.weight" in key and t.ndim == 1:
                value = 0.5 + torch.rand_like(t)  # non-trivial BN statistics and scales
            elif key.endswith(("running_mean", "bias")):
                value = 0.1 * torch.randn_like(t)
            else:
                value = torch.as_tensor(np.asarray(state[key].numpy(), dtype=np.float64))
            t.copy_(value)
    ours.load_state_dict({k: (v.numpy() if k.endswith("num_batches_tracked") else theirs.state_dict()[k].numpy())
                          for k, v in state.items()})
    return ours.to(dtype=np.float64), theirs


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_and_gradients_equal_pytorch(name, mode):
    ours, theirs = _twins(name)
    getattr(ours, mode)()
    getattr(theirs, mode)()
    x = np.random.default_rng(1).standard_normal((4, 2, 23))
    y = np.array([0, 2, 1, 2])
    xt = mc.Tensor(x, requires_grad=True)
    loss = F.cross_entropy(ours(xt), mc.Tensor(y))
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    tloss = tnn.functional.cross_entropy(theirs(tx), torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-7)
    # float64 throughout; the tolerance is relative to each gradient's scale because a ReLU input within
    # rounding of 0 may fall on either side of the kink in the two libraries (a few elements differ ~1e-7);
    # a conv bias before a training-mode BN has gradient 0 exactly, ~1e-17 in both: the 1e-12 floor
    grads = [("x", xt.grad.numpy(), tx.grad.numpy())]
    tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    grads += [(k, p.grad.numpy(), tgrads[k]) for k, p in ours.named_parameters()]
    for k, got, want in grads:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=max(1e-6 * np.abs(want).max(), 1e-12), err_msg=k)


def test_default_widths_are_the_papers():
    def count(m):
        return sum(p.size for p in m.parameters())

    # Wang et al.: FCN 128-256-128 with kernels 8, 5, 3; ResNet 64-128-128 with k = 8, 5, 3 and 1x1 shortcuts
    fcn = (1 * 128 * 8 + 128) + (128 * 256 * 5 + 256) + (256 * 128 * 3 + 128) + 2 * (128 + 256 + 128) + 128 * 2 + 2
    assert count(models.fcn1d(num_classes=2)) == fcn

    def block(cin, c):
        convs = cin * c * 8 + c + c * c * 5 + c + c * c * 3 + c
        short = (cin * c + c + 2 * c) if cin != c else 2 * c
        return convs + 3 * 2 * c + short

    assert count(models.resnet1d(num_classes=2)) == block(1, 64) + block(64, 128) + block(128, 128) + 128 * 2 + 2


# ---- training on real series, every device ----

@pytest.mark.parametrize("name", sorted(CASES))
def test_each_model_learns_real_series(name, device):
    x, y, _ = ucr_arrays("basicmotions", "train")  # 6 channels: make the twin-sized models take them
    x, y = x[:, :2, ::4][:12], y[:12]               # 12 series, 2 channels, length 25
    mc.manual_seed(0)
    model = CASES[name][0]().to(device)
    opt = optim.Adam(list(model.parameters()), lr=0.01)
    xt, yt = mc.Tensor(x, device=device), mc.Tensor(y, device=device)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses


def test_the_same_steps_give_the_same_weights_on_cpu_and_cuda_emu():
    x, y, _ = ucr_arrays("gunpoint", "train")
    finals = []
    for dev in ("cpu", "cuda-emu"):
        mc.manual_seed(0)
        model = models.fcn1d(channels=(4, 8, 4)).to(dev)
        opt = optim.SGD(list(model.parameters()), lr=0.05, momentum=0.9)
        for _ in range(3):
            loss = F.cross_entropy(model(mc.Tensor(x[:8], device=dev)), mc.Tensor(y[:8], device=dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
        finals.append(model.fc.weight.numpy())
    np.testing.assert_allclose(finals[0], finals[1], rtol=1e-4, atol=1e-5)


# ---- class activation maps ----

def test_cam_is_the_weighted_sum_of_the_last_maps_and_averages_to_the_logits():
    ours, _ = _twins("fcn1d")
    ours.eval()
    x = np.random.default_rng(2).standard_normal((3, 2, 17))
    cam = class_activation_map(ours, x)
    a = ours.features(mc.Tensor(x)).numpy()
    w = ours.fc.weight.numpy()
    loop = np.zeros((3, 3, 17))
    for n in range(3):
        for c in range(3):
            for t in range(17):
                loop[n, c, t] = sum(w[c, k] * a[n, k, t] for k in range(a.shape[1]))
    np.testing.assert_allclose(cam, loop, rtol=1e-12)
    logits = ours(mc.Tensor(x)).numpy()
    np.testing.assert_allclose(cam.mean(axis=2) + ours.fc.bias.numpy(), logits, rtol=1e-10)
    assert ours.training is False


# ---- bad input ----

@pytest.mark.parametrize("name", sorted(CASES))
def test_a_channel_count_that_does_not_match_the_model_is_a_clear_error(name):
    model = CASES[name][0]()
    cls = type(model).__name__
    with pytest.raises(ValueError, match=rf"{cls}.forward: x has 3 channels \(shape \(4, 3, 20\)\) but the model was "
                                         r"built for in_channels=2"):
        model(mc.Tensor(np.zeros((4, 3, 20), np.float32)))
    with pytest.raises(ValueError, match=rf"{cls}.forward: x must be \(N, C, L\) = \(N, 2, L\), got shape \(4, 20\)"):
        model(mc.Tensor(np.zeros((4, 20), np.float32)))


@pytest.mark.parametrize("arg, value", [("in_channels", 0), ("num_classes", 1.5), ("num_classes", True)])
def test_bad_constructor_arguments_name_the_model_and_argument(arg, value):
    with pytest.raises(ValueError, match=rf"FCN1D: {arg} must be an integer >= 1, got {value!r}"):
        models.fcn1d(**{arg: value})


def test_nan_in_the_training_series_stops_training_with_a_clear_error():
    from minicnn.data import ArrayDataset, DataLoader
    from minicnn.train import Trainer

    x, y, _ = ucr_arrays("gunpoint", "train")
    x = x[:8].copy()
    x[3, 0, 40] = np.nan
    model = models.fcn1d(channels=(4, 8, 4))
    trainer = Trainer(model, optim.Adam(list(model.parameters())), progress=False)
    with pytest.raises(FloatingPointError, match="the data holds NaN/inf"):
        trainer.train_epoch(DataLoader(ArrayDataset(x, y[:8]), 8))


def test_a_mask_restricts_global_average_pooling_to_the_real_steps():
    ours, _ = _twins("resnet1d")
    ours.eval()
    x = np.random.default_rng(3).standard_normal((3, 2, 12))
    mask = np.ones((3, 12), bool)
    mask[0, 7:] = False
    mask[2, 1:] = False
    a = ours.features(mc.Tensor(x)).numpy()
    pooled = np.stack([a[n][:, mask[n]].mean(axis=1) for n in range(3)])  # plain per-row average
    want = pooled @ ours.fc.weight.numpy().T + ours.fc.bias.numpy()
    np.testing.assert_allclose(ours(mc.Tensor(x), mask=mask).numpy(), want, rtol=1e-10)
    np.testing.assert_allclose(ours(mc.Tensor(x), mask=np.ones((3, 12))).numpy(), ours(mc.Tensor(x)).numpy(),
                               rtol=1e-12)
    cam = class_activation_map(ours, x, mask)
    assert (cam[0, :, 7:] == 0).all() and (cam[2, :, 1:] == 0).all()
    with pytest.raises(ValueError, match=r"ResNet1D.forward: mask must be \(N, L\) = \(3, 12\) for x of shape "
                                         r"\(3, 2, 12\), got shape \(3, 11\)"):
        ours(mc.Tensor(x), mask=mask[:, :11])
    mask[1] = False
    with pytest.raises(ValueError, match=r"every row of mask needs a real \(nonzero\) step"):
        ours(mc.Tensor(x), mask=mask)
