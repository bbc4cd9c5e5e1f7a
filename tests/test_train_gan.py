"""GAN training loops: GANTrainer, Pix2PixTrainer, CycleGANTrainer and ImagePool.

Oracles: loss values of one step recomputed by hand in NumPy from the networks' outputs on the
same weights; a plain-list ImagePool reference driven by the same seeded generator; parameter
snapshots for "D's step leaves G alone"; the reference's linear-decay formula.
"""
import json
import os

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.models.generative import (
    DCGANDiscriminator, DCGANGenerator, NLayerDiscriminator, ResnetGenerator, StyleGANDiscriminator,
    StyleGANGenerator, UnetGenerator, dcgan_init,
)
from minicnn.train_gan import CycleGANTrainer, GANTrainer, ImagePool, Pix2PixTrainer, gan_loss


def images(n, size=16, c=1, seed=0):
    return np.tanh(np.random.default_rng(seed).standard_normal((n, c, size, size))).astype(np.float32)


def bce_logits(x, t):
    """mean of −[t log σ(x) + (1 − t) log(1 − σ(x))], in the overflow-free form."""
    return float(np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))))


def run(net, x, device="cpu"):
    with mc.no_grad():
        return net(mc.Tensor(x, device=device)).numpy().astype(np.float64)


def snapshot(model):
    return [p.numpy().copy() for p in model.parameters()]


def dcgan(device="cpu"):
    mc.manual_seed(0)
    return (DCGANGenerator(8, 16, 1, 4).apply(dcgan_init), DCGANDiscriminator(16, 1, 4).apply(dcgan_init))


# ---- GANTrainer ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["bce", "lsgan"])
def test_gan_trainer_fits_and_checkpoints(tmp_path, device, loss):
    g, d = dcgan()
    seen = []
    tr = GANTrainer(g, d, loss=loss, device=device, progress=False, num_samples=4)
    hist = tr.fit(images(10), epochs=2, batch_size=4, out_dir=str(tmp_path), log=None,
                  callbacks=[lambda t, e, row: seen.append((e, row["loss_d"]))])
    assert [r["epoch"] for r in hist] == [1, 2] and [e for e, _ in seen] == [1, 2]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in hist)
    assert sorted(os.listdir(tmp_path)) == ["discriminator.npz", "generator.npz", "history.json"]
    assert json.load(open(tmp_path / "history.json"))[-1]["loss_g"] == pytest.approx(hist[-1]["loss_g"])
    g2 = DCGANGenerator(8, 16, 1, 4).load(str(tmp_path / "generator.npz"))
    z = tr.fixed_z
    np.testing.assert_array_equal(run(g2.eval().to(device), z, device), run(g.eval(), z, device))


def test_gan_trainer_accepts_a_loader():
    g, d = dcgan()
    data = images(8)
    loader = [(data[i:i + 4], np.zeros(4)) for i in range(0, 8, 4)]
    hist = GANTrainer(g, d, progress=False).fit(loader, epochs=1, log=None)
    assert len(hist) == 1 and np.isfinite(hist[0]["loss_d"])


def test_d_step_leaves_generator_alone_and_fakes_are_detached(device):
    g, d = dcgan()
    tr = GANTrainer(g, d, device=device, progress=False)
    real = mc.Tensor(images(4), device=device)
    fake = g(mc.Tensor(np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32), device=device))
    g_before, d_before = snapshot(g), snapshot(d)
    out = tr.d_step(real, fake)
    assert all(p.grad is None for p in g.parameters())  # no gradient reached G through the fakes
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(g_before, g.parameters()))
    assert any(not np.array_equal(a, p.numpy()) for a, p in zip(d_before, d.parameters()))
    # L_D by hand from D's logits before the update
    d_after = snapshot(d)
    for p, a in zip(d.parameters(), d_before):
        p.data[...] = a
    lr, lf = run(d, images(4), device), run(d, fake.numpy(), device)
    assert out["loss_d"] == pytest.approx(bce_logits(lr, 1) + bce_logits(lf, 0), rel=1e-5)
    for p, a in zip(d.parameters(), d_after):
        p.data[...] = a
    # the G step leaves D alone and gives D no gradient
    d.zero_grad()
    out = tr.g_step(fake)
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(d_after, d.parameters()))
    assert all(p.grad is None for p in d.parameters())
    assert out["loss_g"] == pytest.approx(bce_logits(run(d, fake.numpy(), device), 1), rel=1e-5)


def test_gan_loss_lsgan_by_hand():
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float64)
    assert gan_loss(mc.Tensor(x), True, "lsgan").item() == pytest.approx(np.mean((x - 1) ** 2))
    assert gan_loss(mc.Tensor(x), False, "bce").item() == pytest.approx(bce_logits(x, 0))
    with pytest.raises(ValueError, match="gan_loss: mode"):
        gan_loss(mc.Tensor(x), True, "wgan")


def test_stylegan_trains_with_mixing(device):
    mc.manual_seed(1)
    g = StyleGANGenerator(8, 8, 8, 1, channel_base=32, max_channels=4, mapping_layers=2)
    d = StyleGANDiscriminator(8, 1, channel_base=32, max_channels=4)
    hist = GANTrainer(g, d, mixing_prob=1.0, device=device, progress=False).fit(images(8, 8), 1, 4, log=None)
    assert np.isfinite(hist[0]["loss_g"]) and np.abs(g.w_avg.numpy()).sum() > 0
    with pytest.raises(ValueError, match="mixing_prob"):
        GANTrainer(*dcgan(), mixing_prob=0.5)


class _LinearD(mc.nn.Module):
    """``D(x) = Σ w ⊙ x + b``: its input gradient is ``w`` exactly."""

    def __init__(self, shape, seed=0, dtype=np.float64):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = mc.nn.Parameter(rng.standard_normal(shape).astype(dtype))
        self.bias = mc.nn.Parameter(np.zeros(1, dtype))

    def forward(self, x):
        return (x * self.weight).reshape(x.shape[0], -1).sum(axis=1, keepdims=True) + self.bias


def test_r1_penalty_of_a_linear_discriminator_is_exact():
    g, _ = dcgan()
    d = _LinearD((1, 16, 16))
    tr = GANTrainer(g, d, r1_gamma=3.0, r1_eps=0.5, progress=False)
    x = images(4).astype(np.float64)
    tr.rng = np.random.default_rng(7)
    real = mc.Tensor(x)
    pen = tr.r1_penalty(real, d(real))
    pen.backward()
    v = np.random.default_rng(7).standard_normal(x.shape)
    w = d.weight.numpy()
    slopes = (v * w).reshape(4, -1).sum(axis=1)                   # vᵀ∇_x D, exact for a linear D
    assert pen.item() == pytest.approx(1.5 * np.mean(slopes ** 2), rel=1e-12)
    np.testing.assert_allclose(d.weight.grad.numpy(), 3.0 * np.mean(slopes[:, None, None, None] * v, axis=0),
                               rtol=1e-10, atol=1e-12)


def test_r1_finite_difference_tends_to_the_input_gradient():
    """On a nonlinear D (float64; eval mode, so that each image's logit depends on that image alone)
    the slope (D(x + εv) − D(x)) / ε → vᵀ∇_x D as ε → 0, with ∇_x D from a first-order backward pass."""
    g, d = dcgan()
    for t in list(d.parameters()) + list(d.buffers()):
        t.data = t.data.astype(np.float64)
    d.eval()
    x = images(3).astype(np.float64)
    xt = mc.Tensor(x, requires_grad=True)
    d(xt).sum().backward()
    grad = xt.grad.numpy()
    tr = GANTrainer(g, d, r1_gamma=2.0, r1_eps=1e-6, progress=False)
    for seed in range(3):
        tr.rng = np.random.default_rng(seed)
        with mc.no_grad():
            pen = tr.r1_penalty(mc.Tensor(x), d(mc.Tensor(x))).item()
        v = np.random.default_rng(seed).standard_normal(x.shape)
        exact = np.mean((v * grad).reshape(3, -1).sum(axis=1) ** 2)
        assert pen == pytest.approx(exact, rel=1e-4)


def test_r1_enters_the_d_step_and_bad_settings_raise():
    g, d = dcgan()
    tr = GANTrainer(g, d, r1_gamma=1.0, progress=False)
    out = tr.train_step(images(4))
    assert out["r1"] > 0 and np.isfinite(out["loss_d"])
    for kw in (dict(r1_gamma=-1.0), dict(r1_eps=0.0), dict(ema_decay=1.0)):
        with pytest.raises(ValueError, match="GANTrainer"):
            GANTrainer(*dcgan(), **kw)


def test_ema_generator_averages_every_g_step_and_samples():
    g, d = dcgan()
    mc.manual_seed(5)
    other = DCGANGenerator(8, 16, 1, 4)                 # its own weights are overwritten by G's
    tr = GANTrainer(g, d, ema_generator=other, ema_decay=0.9, progress=False)
    before = snapshot(g)
    np.testing.assert_array_equal(snapshot(other)[0], before[0])
    tr.train_step(images(4))
    after = snapshot(g)
    for e, b, a in zip(snapshot(other), before, after):
        np.testing.assert_allclose(e, 0.9 * b + 0.1 * a, rtol=1e-6, atol=1e-7)
    for be, bg in zip(other.buffers(), g.buffers()):
        np.testing.assert_array_equal(be.numpy(), bg.numpy())
    assert tr.sampler is other and all(p.grad is None for p in other.parameters())
    z = tr.fixed_z[:2]
    g.eval(), other.eval()
    with mc.no_grad():
        np.testing.assert_array_equal(tr.generate(z).numpy(), other(mc.Tensor(z)).numpy())
    with pytest.raises(ValueError, match="ema_generator must have the generator's architecture"):
        GANTrainer(*dcgan(), ema_generator=DCGANGenerator(8, 16, 1, 8))


def test_non_finite_loss_names_epoch_and_batch():
    g, d = dcgan()
    data = images(8)
    data[5, 0, 3, 3] = np.nan
    tr = GANTrainer(g, d, progress=False, seed=0)
    order = np.random.default_rng(0).permutation(8)
    batch = int(np.where(order == 5)[0][0]) // 4 + 1
    with pytest.raises(FloatingPointError, match=rf"GANTrainer: loss_d is nan at epoch 1, batch {batch}"):
        tr.fit(data, epochs=1, batch_size=4, log=None)


# ---- ImagePool -------------------------------------------------------------------------------------------
def reference_pool(pool_size, batches, rng):
    """The reference algorithm over plain lists."""
    stored, out = [], []
    for batch in batches:
        got = []
        for image in batch:
            if len(stored) < pool_size:
                stored.append(image)
                got.append(image)
            elif rng.random() > 0.5:
                j = int(rng.integers(pool_size))
                got.append(stored[j])
                stored[j] = image
            else:
                got.append(image)
        out.append(np.stack(got))
    return out


@pytest.mark.parametrize("pool_size", [0, 1, 5])
def test_image_pool_matches_reference(pool_size):
    batches = [np.random.default_rng(i).standard_normal((3, 1, 2, 2)) for i in range(6)]
    pool = ImagePool(pool_size, rng=42)
    got = [pool.query(mc.Tensor(b, requires_grad=True)) for b in batches]
    assert all(not t.requires_grad for t in got)
    want = batches if pool_size == 0 else reference_pool(pool_size, batches, np.random.default_rng(42))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w)
    if pool_size:
        assert len(pool.images) == pool_size


# ---- Pix2Pix -----------------------------------------------------------------------------------------------
def pix2pix_models():
    mc.manual_seed(2)
    return UnetGenerator(1, 1, num_downs=4, ngf=4, use_dropout=False), NLayerDiscriminator(2, ndf=4, n_layers=2)


def test_pix2pix_one_step_losses_by_hand(device):
    g, d = pix2pix_models()
    tr = Pix2PixTrainer(g, d, device=device, progress=False)
    a, b = images(2, seed=1), images(2, seed=2)
    fake = run(g, a, device)  # train mode: BatchNorm uses the batch, exactly as in the step
    lr = run(d, np.concatenate([a, b], 1), device)
    lf = run(d, np.concatenate([a, fake.astype(np.float32)], 1), device)
    out = tr.train_step(a, b)
    assert out["loss_d"] == pytest.approx(0.5 * (bce_logits(lr, 1) + bce_logits(lf, 0)), rel=1e-5)
    # the G step sees the discriminator after its update
    lg = run(d, np.concatenate([a, fake.astype(np.float32)], 1), device)
    l1 = float(np.abs(fake - b).mean())
    assert out["loss_l1"] == pytest.approx(l1, rel=1e-5)
    assert out["loss_g"] == pytest.approx(bce_logits(lg, 1) + 100 * l1, rel=1e-5)


def test_pix2pix_fit_and_translate(device, tmp_path):
    g, d = pix2pix_models()
    tr = Pix2PixTrainer(g, d, device=device, progress=False)
    a = images(4)
    hist = tr.fit(a, -a, epochs=2, batch_size=2, out_dir=str(tmp_path), log=None)
    assert len(hist) == 2 and {"loss_d", "loss_g", "loss_l1", "loss_g_gan"} <= set(hist[0])
    assert tr.translate(a).shape == a.shape


def test_pix2pix_rejects_unpaired_data():
    tr = Pix2PixTrainer(*pix2pix_models(), progress=False)
    with pytest.raises(ValueError, match=r"inputs \(4, 1, 16, 16\) and targets \(3, 1, 16, 16\) are not paired"):
        tr.fit(images(4), images(3), epochs=1)
    with pytest.raises(ValueError, match=r"inputs \(4, 1, 16, 16\) and targets \(4, 1, 32, 32\) are not paired"):
        tr.fit(images(4), images(4, 32), epochs=1)
    with pytest.raises(ValueError, match=r"targets must be images \(N, C, H, W\), got shape \(4, 16, 16\)"):
        tr.fit(images(4), images(4)[:, 0], epochs=1)


def test_d_loss_backward_gives_generator_no_gradient():
    g, d = pix2pix_models()
    tr = Pix2PixTrainer(g, d, progress=False)
    a, b = mc.Tensor(images(2, seed=1)), mc.Tensor(images(2, seed=2))
    tr.d_loss(a, b, g(a)).backward()
    assert all(p.grad is None for p in g.parameters())
    assert all(p.grad is not None for p in d.parameters())


# ---- CycleGAN ----------------------------------------------------------------------------------------------
def cyclegan_models():
    mc.manual_seed(3)
    return (ResnetGenerator(1, 1, ngf=4, n_blocks=1), ResnetGenerator(1, 1, ngf=4, n_blocks=1),
            NLayerDiscriminator(1, 4, 2, "instance"), NLayerDiscriminator(1, 4, 2, "instance"))


def test_cyclegan_one_step_losses_by_hand(device):
    g_ab, g_ba, d_a, d_b = cyclegan_models()
    tr = CycleGANTrainer(g_ab, g_ba, d_a, d_b, device=device, progress=False)
    a, b = images(2, seed=1), images(2, seed=2)
    fake_b, fake_a = run(g_ab, a, device), run(g_ba, b, device)
    f32 = lambda t: t.astype(np.float32)  # noqa: E731
    mse = lambda x, t: float(np.mean((x - t) ** 2))  # noqa: E731
    want = dict(gan_ab=mse(run(d_b, f32(fake_b), device), 1), gan_ba=mse(run(d_a, f32(fake_a), device), 1),
                cycle_a=10 * np.abs(run(g_ba, f32(fake_b), device) - a).mean(),
                cycle_b=10 * np.abs(run(g_ab, f32(fake_a), device) - b).mean(),
                idt_a=5 * np.abs(run(g_ba, a, device) - a).mean(), idt_b=5 * np.abs(run(g_ab, b, device) - b).mean())
    # the pools are empty, so D sees exactly this step's fakes, with D's weights before its update
    loss_d_a = 0.5 * (mse(run(d_a, a, device), 1) + mse(run(d_a, f32(fake_a), device), 0))
    loss_d_b = 0.5 * (mse(run(d_b, b, device), 1) + mse(run(d_b, f32(fake_b), device), 0))
    out = tr.train_step(a, b)
    for k, v in want.items():
        assert out[k] == pytest.approx(v, rel=1e-5), k
    assert out["loss_g"] == pytest.approx(sum(want.values()), rel=1e-5)
    assert out["loss_d_a"] == pytest.approx(loss_d_a, rel=1e-5)
    assert out["loss_d_b"] == pytest.approx(loss_d_b, rel=1e-5)


def test_cyclegan_fit_with_linear_decay(device):
    tr = CycleGANTrainer(*cyclegan_models(), device=device, progress=False, pool_size=3)
    hist = tr.fit(images(5), images(3, seed=1), epochs=4, batch_size=2, log=None, lr_decay_epochs=2)
    # the reference: lr · (1 − max(0, e + 1 − n_epochs) / (n_epochs_decay + 1)), n_epochs = 2 = n_epochs_decay
    assert [r["lr"] for r in hist] == pytest.approx([2e-4 * (1 - max(0, e + 1 - 2) / 3) for e in range(4)])
    assert all(np.isfinite(r["loss_g"]) for r in hist)
    assert len(tr.pool_a.images) == 3 and tr.translate(images(2), "ba").shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"domain_a \(5, 1, 16, 16\) and domain_b \(3, 1, 32, 32\)"):
        tr.fit(images(5), images(3, 32), epochs=1)


def test_ema_generator_batch_norm_statistics_are_its_own():
    """refresh_ema_statistics: each batch norm's running mean / variance become the average over
    the refresh batches of the batch mean / unbiased variance of that layer's input in the EMA
    generator (a NumPy reference from forward hooks), momentum and mode restored, and the
    training generator's random stream untouched; fit calls it after every epoch."""
    g, d = dcgan()
    tr = GANTrainer(g, d, ema_generator=DCGANGenerator(8, 16, 1, 4), ema_decay=0.5, progress=False,
                    ema_stat_batches=3, ema_stat_batch_size=5)
    tr.train_step(images(4))
    ema = tr.ema_generator
    norms = [m for m in ema.modules() if isinstance(m, nn.BatchNorm2d)]
    seen = {id(m): [] for m in norms}
    hooks = [m.register_forward_hook(lambda m, args, out: seen[id(m)].append(args[0].numpy().astype(np.float64)))
             for m in norms]
    state = tr.rng.bit_generator.state
    ema.eval()
    assert tr.refresh_ema_statistics(seed=7) == len(norms) == 2
    for h in hooks:
        h.remove()
    assert tr.rng.bit_generator.state == state and not ema.training
    for m in norms:
        batches = seen[id(m)]
        assert len(batches) == 3 and batches[0].shape[0] == 5
        mean = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0)
        var = np.mean([b.var(axis=(0, 2, 3), ddof=1) for b in batches], axis=0)
        np.testing.assert_allclose(m.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m.running_var.numpy(), var, rtol=1e-4, atol=1e-6)
        assert m.momentum == 0.1
    before = [m.running_mean.numpy().copy() for m in norms]
    tr.fit(images(8), 1, batch_size=4, log=None)       # the end of the epoch refreshes them again
    assert not all(np.array_equal(b, m.running_mean.numpy()) for b, m in zip(before, norms))
    with pytest.raises(ValueError, match="ema_stat_batch_size"):
        GANTrainer(*dcgan(), ema_generator=DCGANGenerator(8, 16, 1, 4), ema_stat_batch_size=1)
