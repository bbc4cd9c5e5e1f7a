"""Training loops for generative adversarial networks: two networks, two optimizers, alternating steps.

Notation: G the generator, D the discriminator (logits), ``ℓ(d, t)`` the adversarial loss of
logits ``d`` against the constant target ``t`` (1 real, 0 fake), averaged over every element of
``d`` (one per image, or one per patch for a PatchGAN):

* ``"bce"`` (non-saturating GAN): ``ℓ(d, t) = mean(BCEWithLogits(d, t))``;
* ``"lsgan"`` (least squares): ``ℓ(d, t) = mean((d − t)²)``.

One step of :class:`GANTrainer` (DCGAN, StyleGAN) on real images ``x`` and noise ``z``::

    fake = G(z)
    D step:  L_D = ℓ(D(x), 1) + ℓ(D(fake.detach()), 0)     only D's parameters get gradients
    G step:  L_G = ℓ(D(fake), 1)                           D is frozen (requires_grad off)

:class:`Pix2PixTrainer` (input ``a``, target ``b``, D sees the pair concatenated on channels)::

    L_D = ½ [ℓ(D(a ⊕ b), 1) + ℓ(D(a ⊕ G(a).detach()), 0)]
    L_G = ℓ(D(a ⊕ G(a)), 1) + λ_L1 · mean|G(a) − b|         (λ_L1 = 100)

:class:`CycleGANTrainer` (unpaired ``a``, ``b``; G_ab: A → B, G_ba: B → A; D_a judges A, D_b judges B;
least squares; λ = 10, identity weight 0.5)::

    L_G = ℓ(D_b(G_ab(a)), 1) + ℓ(D_a(G_ba(b)), 1)
          + λ (mean|G_ba(G_ab(a)) − a| + mean|G_ab(G_ba(b)) − b|)
          + 0.5 λ (mean|G_ab(b) − b| + mean|G_ba(a) − a|)
    L_D = ½ [ℓ(D_a(a), 1) + ℓ(D_a(pool_a(G_ba(b))), 0)] + ½ [ℓ(D_b(b), 1) + ℓ(D_b(pool_b(G_ab(a))), 0)]

Two options of :class:`GANTrainer` (StyleGAN's training uses both):

* ``r1_gamma = γ > 0`` adds R1 (Mescheder et al. 2018), ``(γ/2) E‖∇_x D(x)‖²`` on real images, to
  L_D. The autograd has no second derivatives, so the squared gradient norm is estimated by a
  finite difference along a random direction: for ``v ~ N(0, I)``, ``E_v[(vᵀ∇_x D)²] = ‖∇_x D‖²``
  and ``vᵀ∇_x D ≈ (D(x + εv) − D(x)) / ε``; the penalty ``(γ/2) mean_images(((D(x + εv) − D(x)) / ε)²)``
  is differentiated with first derivatives only (one extra D forward/backward on the reals).
* ``ema_generator`` (a second instance of G) holds the exponential moving average of G's
  parameters, ``θ_ema ← β θ_ema + (1 − β) θ`` after every G step (β = ``ema_decay``), buffers copied;
  :meth:`GANTrainer.generate` then samples from it (StyleGAN's ``G_ema``). G's batch-norm running
  statistics belong to G's weights, not the average's, so where the EMA generator has batch norm its
  statistics are recomputed at the end of every epoch (:meth:`GANTrainer.refresh_ema_statistics`:
  the cumulative mean and variance over ``ema_stat_batches`` batches of its own outputs, as
  BigGAN's "standing statistics").

(the G step comes first, then D, as the reference implementation). :class:`ImagePool` hands D a
mix of the newest fakes and up to 50 older ones.

Every ``fit`` takes NumPy arrays ``(N, C, H, W)`` scaled to [−1, 1] (or an iterable of batches),
shows a progress bar, keeps ``history`` (one dict per epoch: mean losses, seconds, images/s),
calls ``callbacks(trainer, epoch, row)`` after each epoch (sample grids, evaluation), and with
``out_dir`` writes each network's checkpoint ``<name>.npz`` and ``history.json`` after each epoch.
Defaults are the papers': Adam, lr 2e-4, β = (0.5, 0.999). ``lr_decay_epochs=k`` keeps the
learning rate for the first ``epochs − k`` epochs and then decays it linearly toward 0
(CycleGAN's schedule).
"""
import json
import math
import os
import time

import numpy as np

from . import functional as F
from .autograd import no_grad
from .nn.norm import _BatchNorm
from .optim import Adam
from .tensor import Tensor
from .train import _progress, save_checkpoint

_LOSSES = ("bce", "lsgan")


def gan_loss(logits, real, mode="bce"):
    """``ℓ(logits, 1 if real else 0)`` of the module docstring; a scalar Tensor."""
    if mode not in _LOSSES:
        raise ValueError(f"gan_loss: mode must be one of {_LOSSES}, got {mode!r}")
    xp = logits.device.xp
    target = Tensor._from_array(xp.full(logits.shape, 1.0 if real else 0.0, dtype=logits.dtype), logits.device)
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(logits, target)


class ImagePool:
    """A buffer of up to ``pool_size`` past fakes (Shrivastava et al.; CycleGAN).

    ``query(images)`` returns a batch of the same shape, image by image: while the pool is not
    full, the image is stored and returned; afterwards, with probability ½ (``rng.random() > 0.5``)
    a uniformly chosen stored image ``j = rng.integers(pool_size)`` is returned and replaced by the
    new one, else the new image is returned. The result is detached from the graph.
    ``pool_size=0`` returns the images (detached) unchanged.
    """

    def __init__(self, pool_size=50, rng=None):
        if isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)) or pool_size < 0:
            raise ValueError(f"ImagePool: pool_size must be an integer >= 0, got {pool_size!r}")
        self.pool_size = int(pool_size)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.images = []

    def query(self, images):
        data = images.data
        if self.pool_size == 0:
            return images.detach()
        out = []
        for i in range(data.shape[0]):
            image = data[i:i + 1].copy()
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() > 0.5:
                j = int(self.rng.integers(self.pool_size))
                out.append(self.images[j])
                self.images[j] = image
            else:
                out.append(image)
        return Tensor._from_array(images.device.xp.concatenate(out, axis=0), images.device)


def _as_images(owner, name, x):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{owner}.fit: {name} must be images (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"{owner}.fit: {name} must be floating point (scaled to [-1, 1]), got dtype {x.dtype}")
    return x


def _first(item):
    return item[0] if isinstance(item, (tuple, list)) else item


class _AdversarialTrainer:
    """What the three trainers share: the epoch loop, checks, history, callbacks and checkpoints.
    Subclasses define ``networks`` (name → module), ``optimizers`` and ``train_step``."""

    def __init__(self, device, seed, progress):
        self.device, self.progress = device, progress
        self.rng = np.random.default_rng(seed)
        self.history = []
        for net in self.networks.values():
            net.to(device)

    @staticmethod
    def _adam(modules, lr, betas):
        return Adam([p for m in modules for p in m.parameters()], lr=lr, betas=betas)

    def _tensor(self, x):
        """``x`` on the trainer's device in the dtype of the networks' parameters."""
        dtype = next(next(iter(self.networks.values())).parameters()).dtype
        return Tensor(np.ascontiguousarray(x, dtype=dtype), device=self.device)

    def _finite(self, epoch, batch, **losses):
        for name, value in losses.items():
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"{type(self).__name__}: {name} is {value} at epoch {epoch}, batch {batch}: the networks "
                    "diverged (try a lower learning rate) or the data holds NaN/inf")

    @staticmethod
    def _step(optimizer, loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _set_lr(self, epoch, epochs, decay_epochs):
        """Linear decay: factor ``1 − max(0, e + 1 − (epochs − decay_epochs)) / (decay_epochs + 1)`` for
        the 0-based epoch ``e``."""
        if not decay_epochs:
            return
        factor = 1.0 - max(0, epoch + 1 - (epochs - decay_epochs)) / float(decay_epochs + 1)
        for opt in self.optimizers.values():
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])
                g["lr"] = g["initial_lr"] * factor

    def _fit(self, batches_of_epoch, epochs, out_dir, callbacks, log, lr_decay_epochs):
        name = type(self).__name__
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"{name}.fit: epochs must be an integer >= 1, got {epochs!r}")
        if not 0 <= lr_decay_epochs <= epochs:
            raise ValueError(f"{name}.fit: lr_decay_epochs must be in 0..epochs={epochs}, got {lr_decay_epochs}")
        callbacks = [] if callbacks is None else list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        for epoch in range(1, epochs + 1):
            self._set_lr(epoch - 1, epochs, lr_decay_epochs)
            for net in self.networks.values():
                net.train()
            sums, seen, t0 = {}, 0, time.perf_counter()
            batches = batches_of_epoch()
            bar = _progress(batches, getattr(batches, "__len__", lambda: None)(), f"epoch {epoch}", self.progress)
            for b, arrays in enumerate(bar, 1):
                losses = self.train_step(*arrays, epoch=epoch, batch=b)
                n = len(arrays[0])
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v * n
                seen += n
                if bar is not batches:
                    bar.set_postfix(loss_d=f"{sums['loss_d'] / seen:.3f}", loss_g=f"{sums['loss_g'] / seen:.3f}")
            if seen == 0:
                raise ValueError(f"{name}.fit: the data yielded no batches")
            seconds = time.perf_counter() - t0
            row = dict(epoch=epoch, lr=next(iter(self.optimizers.values())).param_groups[0]["lr"])
            row.update({k: v / seen for k, v in sums.items()})
            row.update(seconds=seconds, images_per_s=seen / seconds)
            self.history.append(row)
            if log is not None:
                log(f"epoch {epoch:3d}  loss D {row['loss_d']:.4f}  loss G {row['loss_g']:.4f}  {seconds:.1f}s "
                    f"({row['images_per_s']:.0f} img/s)")
            self._end_epoch(epoch)
            if out_dir:
                for key, net in self.networks.items():
                    save_checkpoint(net, os.path.join(out_dir, f"{key}.npz"))
                with open(os.path.join(out_dir, "history.json"), "w") as f:
                    json.dump(self.history, f, indent=1)
            for cb in callbacks:
                cb(self, epoch, row)
        return self.history

    def _end_epoch(self, epoch):
        """Called after each epoch's steps, before checkpoints and callbacks."""

    def _shuffled(self, n, batch_size):
        order = self.rng.permutation(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _check_batch_size(owner, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{owner}.fit: batch_size must be an integer >= 1, got {batch_size!r}")


class GANTrainer(_AdversarialTrainer):
    """Unconditional GAN training (DCGAN, StyleGAN): see the module docstring.

    Args:
        generator: maps ``z (N, generator.latent_dim)`` to images.
        discriminator: maps images to logits (any shape with N first).
        loss: ``"bce"`` (non-saturating) or ``"lsgan"``.
        lr, betas: Adam's, for both networks (ignored for a network given its own optimizer).
        optimizer_g, optimizer_d: optional optimizers to use instead.
        mixing_prob: StyleGAN's style-mixing regularisation: with this probability a batch is
            generated from two latents with a crossover layer drawn uniformly from
            ``1 … num_ws − 1`` (needs a generator taking ``mix_z``/``mix_layer``).
        r1_gamma, r1_eps: weight γ of the R1 penalty (0: none) and the finite-difference step ε of
            its estimate (module docstring).
        ema_generator, ema_decay: a second generator of G's architecture that receives the moving
            average of G's weights (its own weights are overwritten by G's at the start) and β.
        ema_stat_batches, ema_stat_batch_size: the batches of latents over which an EMA generator
            with batch norm recomputes its running statistics after every epoch.
        device: where the networks and batches go (the networks are moved there).
        seed: of the trainer's generator (shuffling, latents, mixing); ``fixed_z`` (``num_samples``
            latents) is drawn from it once, for sample grids across epochs.
    """

    def __init__(self, generator, discriminator, loss="bce", lr=2e-4, betas=(0.5, 0.999), optimizer_g=None,
                 optimizer_d=None, mixing_prob=0.0, device="cpu", seed=0, progress=True, num_samples=64,
                 r1_gamma=0.0, r1_eps=0.01, ema_generator=None, ema_decay=0.999, ema_stat_batches=20,
                 ema_stat_batch_size=256):
        if loss not in _LOSSES:
            raise ValueError(f"GANTrainer: loss must be one of {_LOSSES}, got {loss!r}")
        if not hasattr(generator, "latent_dim"):
            raise ValueError("GANTrainer: the generator must have a latent_dim attribute (the size of z)")
        if mixing_prob and not hasattr(generator, "num_ws"):
            raise ValueError("GANTrainer: mixing_prob > 0 needs a generator with style mixing (num_ws, mix_z)")
        if not (math.isfinite(r1_gamma) and r1_gamma >= 0 and math.isfinite(r1_eps) and r1_eps > 0):
            raise ValueError(f"GANTrainer: r1_gamma must be >= 0 and r1_eps > 0, got {r1_gamma!r}, {r1_eps!r}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"GANTrainer: ema_decay must be in [0, 1), got {ema_decay!r}")
        if not (isinstance(ema_stat_batches, (int, np.integer)) and ema_stat_batches >= 1
                and isinstance(ema_stat_batch_size, (int, np.integer)) and ema_stat_batch_size >= 2):
            raise ValueError(f"GANTrainer: ema_stat_batches must be an integer >= 1 and ema_stat_batch_size one "
                             f">= 2, got {ema_stat_batches!r}, {ema_stat_batch_size!r}")
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.networks = {"generator": generator, "discriminator": discriminator}
        self.r1_gamma, self.r1_eps = float(r1_gamma), float(r1_eps)
        self.ema_generator, self.ema_decay = ema_generator, float(ema_decay)
        self.ema_stat_batches, self.ema_stat_batch_size = int(ema_stat_batches), int(ema_stat_batch_size)
        self._stat_seed = int(seed) if isinstance(seed, (int, np.integer)) else 0
        if ema_generator is not None:
            try:
                ema_generator.load_state_dict(generator.state_dict())
            except (KeyError, ValueError, RuntimeError) as e:
                raise ValueError(f"GANTrainer: ema_generator must have the generator's architecture: {e}") from e
            self.networks["generator_ema"] = ema_generator
        super().__init__(device, seed, progress)
        if ema_generator is not None:
            ema_generator.requires_grad_(False)
        self.optimizers = {"g": optimizer_g or self._adam([generator], lr, betas),
                           "d": optimizer_d or self._adam([discriminator], lr, betas)}
        self.mixing_prob = mixing_prob
        self.fixed_z = self.rng.standard_normal((num_samples, generator.latent_dim)).astype(np.float32)

    @property
    def sampler(self):
        """The generator that :meth:`generate` runs: the moving average when there is one, else G."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def generate(self, z, **kwargs):
        """``G(z)`` (a Tensor) for latents ``z`` (array or Tensor), in the networks' current mode
        (the EMA generator's when the trainer has one)."""
        if not isinstance(z, Tensor):
            z = self._tensor(np.asarray(z))
        return self.sampler(z, **kwargs)

    def r1_penalty(self, real, d_real):
        """``(γ/2) mean_n(((D(x + εv) − D(x)) / ε)²)`` with ``v ~ N(0, I)`` per image: the finite-
        difference estimate of R1 (module docstring); ``d_real = D(x)``, summed per image."""
        xp = real.device.xp
        v = xp.asarray(self.rng.standard_normal(real.shape), dtype=real.dtype)
        moved = Tensor._from_array(real.data + np.float32(self.r1_eps) * v, real.device)
        n = real.shape[0]
        diff = (self.discriminator(moved).reshape(n, -1).sum(axis=1) - d_real.reshape(n, -1).sum(axis=1))
        slope = diff * (1.0 / self.r1_eps)
        return (slope * slope).mean() * (self.r1_gamma / 2)

    def update_ema(self):
        """``θ_ema ← β θ_ema + (1 − β) θ`` for every parameter of G; buffers copied."""
        b = self.ema_decay
        for pe, pg in zip(self.ema_generator.parameters(), self.generator.parameters()):
            pe.data *= b
            pe.data += (1.0 - b) * pg.data
        for be, bg in zip(self.ema_generator.buffers(), self.generator.buffers()):
            be.data[...] = bg.data

    def refresh_ema_statistics(self, seed=0):
        """Recompute the running mean and variance of every batch norm of the EMA generator from
        its own outputs: statistics reset, then ``ema_stat_batches`` forward passes in train mode
        without a graph on latents ~ N(0, I) from ``default_rng([trainer seed, seed])`` (not the
        training generator), each layer averaging cumulatively (momentum None), momentum restored.
        Returns the number of batch-norm layers refreshed (0: nothing to do)."""
        norms = [m for m in self.ema_generator.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if not norms:
            return 0
        rng = np.random.default_rng([self._stat_seed, seed])
        momenta, was_training = [m.momentum for m in norms], self.ema_generator.training
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        self.ema_generator.train()
        try:
            with no_grad():
                for _ in range(self.ema_stat_batches):
                    self.ema_generator(self._tensor(rng.standard_normal((self.ema_stat_batch_size,
                                                                         self.generator.latent_dim))))
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.ema_generator.train(was_training)
        return len(norms)

    def _end_epoch(self, epoch):
        if self.ema_generator is not None:
            self.refresh_ema_statistics(epoch)

    def _fake(self, n):
        z = self._tensor(self.rng.standard_normal((n, self.generator.latent_dim)))
        if self.mixing_prob and self.rng.random() < self.mixing_prob:
            mix = self._tensor(self.rng.standard_normal((n, self.generator.latent_dim)))
            return self.generator(z, mix_z=mix, mix_layer=int(self.rng.integers(1, self.generator.num_ws)))
        return self.generator(z)

    def d_step(self, real, fake, epoch=0, batch=0):
        """Update D on ``real`` and ``fake.detach()`` (G gets no gradient), plus the R1 penalty when
        ``r1_gamma > 0``; returns L_D (adversarial part), the mean logits ``d_real``, ``d_fake`` and
        ``r1``."""
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        loss = gan_loss(d_real, True, self.loss) + gan_loss(d_fake, False, self.loss)
        out = dict(loss_d=float(loss.item()), d_real=float(d_real.data.mean()), d_fake=float(d_fake.data.mean()))
        if self.r1_gamma:                     # loss_d reports the adversarial part, r1 the penalty
            r1 = self.r1_penalty(real, d_real)
            out["r1"] = float(r1.item())
            loss = loss + r1
        self._finite(epoch, batch, loss_d=float(loss.item()))
        self._step(self.optimizers["d"], loss)
        return out

    def g_step(self, fake, epoch=0, batch=0):
        """Update G on L_G = ℓ(D(fake), 1) with D frozen (D's parameters get no gradient)."""
        self.discriminator.requires_grad_(False)
        try:
            loss = gan_loss(self.discriminator(fake), True, self.loss)
            self._finite(epoch, batch, loss_g=float(loss.item()))
            self._step(self.optimizers["g"], loss)
        finally:
            self.discriminator.requires_grad_(True)
        if self.ema_generator is not None:
            self.update_ema()
        return dict(loss_g=float(loss.item()))

    def train_step(self, real, epoch=0, batch=0):
        """One D step then one G step (on the same fakes) on a batch of real images (array or
        Tensor); returns ``loss_d``, ``loss_g`` and the D step's mean logits ``d_real``, ``d_fake``."""
        if not isinstance(real, Tensor):
            real = self._tensor(real)
        fake = self._fake(real.shape[0])
        out = self.d_step(real, fake, epoch, batch)
        out.update(self.g_step(fake, epoch, batch))
        return out

    def fit(self, images, epochs, batch_size=64, out_dir=None, callbacks=None, log=print, lr_decay_epochs=0):
        """Train on ``images`` (an array ``(N, C, H, W)`` in [−1, 1], shuffled each epoch, or an
        iterable of batches ``x`` or ``(x, y)``) for ``epochs``; returns :attr:`history`."""
        _check_batch_size("GANTrainer", batch_size)
        if isinstance(images, np.ndarray):
            images = _as_images("GANTrainer", "images", images)

            def batches():
                return [(images[idx],) for idx in self._shuffled(len(images), batch_size)]
        else:
            def batches():
                return _Mapped(images, lambda item: (np.asarray(_first(item)),))
        return self._fit(batches, epochs, out_dir, callbacks, log, lr_decay_epochs)


class _Mapped:
    """``fn`` over an iterable, keeping its ``len`` for the progress bar."""

    def __init__(self, iterable, fn):
        self.iterable, self.fn = iterable, fn

    def __iter__(self):
        return (self.fn(item) for item in self.iterable)

    def __len__(self):
        return len(self.iterable)


class Pix2PixTrainer(_AdversarialTrainer):
    """Conditional GAN on paired images (Pix2Pix): see the module docstring.

    Args:
        generator: ``a (N, C_a, H, W) → b (N, C_b, H, W)`` (e.g. :class:`UnetGenerator`).
        discriminator: takes ``cat([a, b])`` (``C_a + C_b`` channels; e.g. :class:`NLayerDiscriminator`).
        lambda_l1: weight of the L1 term (100).
        loss: ``"bce"`` (the paper) or ``"lsgan"``.
    """

    def __init__(self, generator, discriminator, lambda_l1=100.0, loss="bce", lr=2e-4, betas=(0.5, 0.999),
                 optimizer_g=None, optimizer_d=None, device="cpu", seed=0, progress=True):
        if loss not in _LOSSES:
            raise ValueError(f"Pix2PixTrainer: loss must be one of {_LOSSES}, got {loss!r}")
        self.generator, self.discriminator, self.loss, self.lambda_l1 = generator, discriminator, loss, lambda_l1
        self.networks = {"generator": generator, "discriminator": discriminator}
        super().__init__(device, seed, progress)
        self.optimizers = {"g": optimizer_g or self._adam([generator], lr, betas),
                           "d": optimizer_d or self._adam([discriminator], lr, betas)}

    def d_loss(self, a, b, fake):
        """L_D = ½ [ℓ(D(a ⊕ b), 1) + ℓ(D(a ⊕ fake.detach()), 0)]."""
        real_pair, fake_pair = F.cat([a, b], axis=1), F.cat([a, fake.detach()], axis=1)
        return 0.5 * (gan_loss(self.discriminator(real_pair), True, self.loss)
                      + gan_loss(self.discriminator(fake_pair), False, self.loss))

    def train_step(self, a, b, epoch=0, batch=0):
        """One D step then one G step on a paired batch; returns ``loss_d``, ``loss_g``,
        ``loss_g_gan`` and ``loss_l1`` (the L1 term before the λ weight)."""
        a = a if isinstance(a, Tensor) else self._tensor(a)
        b = b if isinstance(b, Tensor) else self._tensor(b)
        fake = self.generator(a)
        loss_d = self.d_loss(a, b, fake)
        self._finite(epoch, batch, loss_d=float(loss_d.item()))
        self._step(self.optimizers["d"], loss_d)
        self.discriminator.requires_grad_(False)
        try:
            loss_gan = gan_loss(self.discriminator(F.cat([a, fake], axis=1)), True, self.loss)
            loss_l1 = F.l1_loss(fake, b)
            loss_g = loss_gan + loss_l1 * self.lambda_l1
            self._finite(epoch, batch, loss_g=float(loss_g.item()))
            self._step(self.optimizers["g"], loss_g)
        finally:
            self.discriminator.requires_grad_(True)
        return dict(loss_d=float(loss_d.item()), loss_g=float(loss_g.item()), loss_g_gan=float(loss_gan.item()),
                    loss_l1=float(loss_l1.item()))

    def fit(self, inputs, targets, epochs, batch_size=1, out_dir=None, callbacks=None, log=print, lr_decay_epochs=0):
        """Train on pairs ``inputs[i] → targets[i]`` (arrays ``(N, C_a, H, W)``, ``(N, C_b, H, W)``
        in [−1, 1]; ValueError naming both shapes unless N, H and W agree); returns :attr:`history`."""
        _check_batch_size("Pix2PixTrainer", batch_size)
        a = _as_images("Pix2PixTrainer", "inputs", inputs)
        b = _as_images("Pix2PixTrainer", "targets", targets)
        if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
            raise ValueError(f"Pix2PixTrainer.fit: inputs {a.shape} and targets {b.shape} are not paired: "
                             "expected the same number of images and the same height and width")

        def batches():
            return [(a[idx], b[idx]) for idx in self._shuffled(len(a), batch_size)]
        return self._fit(batches, epochs, out_dir, callbacks, log, lr_decay_epochs)

    def translate(self, inputs, batch_size=16, train_mode=False):
        """``G(inputs)`` as a NumPy array, batch by batch without a graph (eval mode unless
        ``train_mode``: the paper keeps dropout and batch statistics at test time)."""
        return _translate(self.generator, self._tensor, inputs, batch_size, train_mode)


def _translate(net, to_tensor, inputs, batch_size, train_mode):
    was = net.training
    net.train(train_mode)
    try:
        with no_grad():
            out = [net(to_tensor(np.asarray(inputs[i:i + batch_size]))).numpy()
                   for i in range(0, len(inputs), batch_size)]
    finally:
        net.train(was)
    return np.concatenate(out)


class CycleGANTrainer(_AdversarialTrainer):
    """Unpaired translation between domains A and B (CycleGAN): see the module docstring.

    Args:
        g_ab, g_ba: generators A → B and B → A (e.g. :class:`ResnetGenerator`).
        d_a, d_b: discriminators of domain A and of domain B images (PatchGANs).
            (The reference code's netG_A, netG_B, netD_A, netD_B are g_ab, g_ba, d_b, d_a.)
        lambda_cycle: λ of the cycle terms (10).
        lambda_identity: the identity terms' weight relative to λ (0.5; 0 disables them; they
            need both domains to have the same channel count).
        pool_size: size of each :class:`ImagePool` (50).
        loss: ``"lsgan"`` (the paper) or ``"bce"``.
    """

    def __init__(self, g_ab, g_ba, d_a, d_b, lambda_cycle=10.0, lambda_identity=0.5, pool_size=50, loss="lsgan",
                 lr=2e-4, betas=(0.5, 0.999), device="cpu", seed=0, progress=True):
        if loss not in _LOSSES:
            raise ValueError(f"CycleGANTrainer: loss must be one of {_LOSSES}, got {loss!r}")
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        self.lambda_cycle, self.lambda_identity, self.loss = lambda_cycle, lambda_identity, loss
        self.networks = {"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b}
        super().__init__(device, seed, progress)
        self.optimizers = {"g": self._adam([g_ab, g_ba], lr, betas), "d": self._adam([d_a, d_b], lr, betas)}
        self.pool_a = ImagePool(pool_size, self.rng)
        self.pool_b = ImagePool(pool_size, self.rng)

    def generator_losses(self, a, b):
        """The terms of L_G (Tensors) and the fakes: ``(terms dict, fake_a, fake_b)``."""
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        lam, mode = self.lambda_cycle, self.loss
        terms = dict(gan_ab=gan_loss(self.d_b(fake_b), True, mode), gan_ba=gan_loss(self.d_a(fake_a), True, mode),
                     cycle_a=F.l1_loss(self.g_ba(fake_b), a) * lam, cycle_b=F.l1_loss(self.g_ab(fake_a), b) * lam)
        if self.lambda_identity:
            terms["idt_a"] = F.l1_loss(self.g_ba(a), a) * (lam * self.lambda_identity)
            terms["idt_b"] = F.l1_loss(self.g_ab(b), b) * (lam * self.lambda_identity)
        return terms, fake_a, fake_b

    def discriminator_loss(self, d, real, fake):
        """½ [ℓ(d(real), 1) + ℓ(d(fake), 0)] (``fake`` already detached, from the pool)."""
        return 0.5 * (gan_loss(d(real), True, self.loss) + gan_loss(d(fake), False, self.loss))

    def train_step(self, a, b, epoch=0, batch=0):
        """One G step (both generators, D frozen) then one D step (both discriminators, on pooled
        fakes); returns ``loss_g``, ``loss_d`` and each term."""
        a = a if isinstance(a, Tensor) else self._tensor(a)
        b = b if isinstance(b, Tensor) else self._tensor(b)
        for d in (self.d_a, self.d_b):
            d.requires_grad_(False)
        try:
            terms, fake_a, fake_b = self.generator_losses(a, b)
            loss_g = None
            for t in terms.values():
                loss_g = t if loss_g is None else loss_g + t
            self._finite(epoch, batch, loss_g=float(loss_g.item()))
            self._step(self.optimizers["g"], loss_g)
        finally:
            for d in (self.d_a, self.d_b):
                d.requires_grad_(True)
        loss_d_a = self.discriminator_loss(self.d_a, a, self.pool_a.query(fake_a))
        loss_d_b = self.discriminator_loss(self.d_b, b, self.pool_b.query(fake_b))
        loss_d = loss_d_a + loss_d_b
        self._finite(epoch, batch, loss_d=float(loss_d.item()))
        self._step(self.optimizers["d"], loss_d)
        out = {k: float(v.item()) for k, v in terms.items()}
        out.update(loss_g=float(loss_g.item()), loss_d=float(loss_d.item()), loss_d_a=float(loss_d_a.item()),
                   loss_d_b=float(loss_d_b.item()))
        return out

    def fit(self, domain_a, domain_b, epochs, batch_size=1, out_dir=None, callbacks=None, log=print,
            lr_decay_epochs=0):
        """Train on unpaired image sets (arrays ``(N_a, C_a, H, W)``, ``(N_b, C_b, H, W)`` in [−1, 1]).
        An epoch has ``max(N_a, N_b)`` images: the larger domain shuffled, the other drawn at random
        (as the reference's unaligned dataset). Returns :attr:`history`."""
        _check_batch_size("CycleGANTrainer", batch_size)
        a = _as_images("CycleGANTrainer", "domain_a", domain_a)
        b = _as_images("CycleGANTrainer", "domain_b", domain_b)
        if a.shape[2:] != b.shape[2:]:
            raise ValueError(f"CycleGANTrainer.fit: domain_a {a.shape} and domain_b {b.shape} must have the same "
                             "height and width")
        n = max(len(a), len(b))

        def batches():
            out = []
            for idx in self._shuffled(n, batch_size):
                ia = idx % len(a) if len(a) == n else self.rng.integers(len(a), size=len(idx))
                ib = idx % len(b) if len(b) == n else self.rng.integers(len(b), size=len(idx))
                out.append((a[ia], b[ib]))
            return out
        return self._fit(batches, epochs, out_dir, callbacks, log, lr_decay_epochs)

    def translate(self, images, direction="ab", batch_size=16):
        """``G_ab(images)`` (``direction="ab"``) or ``G_ba(images)`` as a NumPy array (eval mode, no graph)."""
        if direction not in ("ab", "ba"):
            raise ValueError(f"CycleGANTrainer.translate: direction must be 'ab' or 'ba', got {direction!r}")
        net = self.g_ab if direction == "ab" else self.g_ba
        return _translate(net, self._tensor, images, batch_size, False)
