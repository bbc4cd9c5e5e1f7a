"""Whole-network benchmark: ``python -m benchmarks models [--quick] [--only resnet18_32,unet_64]``.

Each row is one network at one input size and batch, timed in two modes:

* ``train``: forward, cross-entropy, backward, SGD step (lr 0.01, momentum 0.9), BN in train mode;
* ``eval``: forward under ``no_grad`` with the model in eval mode.

The GAN row (``dcgan_32``: the DCGAN of ``python -m minicnn train --task gan --model dcgan``,
32×32 grey images, width 32, batch 64) times instead
* ``train``: one alternating step, fakes ``G(z)`` for a fixed batch of latents, then the D step
  (``BCE(D(x), 1) + BCE(D(fake.detach()), 0)``, Adam) and the G step (``BCE(D(fake), 1)`` with D's
  parameters frozen, Adam), Adam lr 2e-4, betas (0.5, 0.999): ``GANTrainer.d_step``/``g_step`` for
  minicnn, the same loop written out for PyTorch;
* ``eval``: sampling, ``G(z)`` under ``no_grad`` in eval mode.
Its "images" are the batch's real images (64 per step).

Both libraries hold the SAME weights (PyTorch's random init, loaded into minicnn with
``load_state_dict``). Before timing, the eval outputs of both are compared on the row's input
(for the GAN row, ``G(z)`` and ``D(x)``):
``max |ours − theirs| <= 1e-3 · max |theirs|`` or the row is an error (no timing printed).
Timing alternates minicnn and PyTorch (``timing.time_pair``): 1 warm-up call each, then the
median of 5 calls (3 with ``--quick``), ``OMP_WAIT_POLICY=PASSIVE``, PyTorch on ``os.cpu_count()``
threads. Ratio = PyTorch ms / minicnn ms (> 1: minicnn faster).

Peak memory is measured the same way for both libraries: a fresh ``spawn`` child imports only
its library, runs one training step and one eval forward of two tiny networks in it (the common
layer types and each convolution algorithm of the CPU backend, ``_warm_library``: loads the
library's compute code, Numba's LLVM and cached kernels for minicnn, about 130 MiB resident
here, which PyTorch maps at import), returns the heap memory the warm-up freed to the system
(glibc ``malloc_trim``), takes its resident set size as the baseline (resetting the kernel's peak-RSS mark to it, Linux
``/proc/self/clear_refs``), builds the model (its own random init) and the input, runs the mode's
step twice, and reports the peak RSS (``VmHWM``) minus the baseline, in MiB: weights, gradients,
optimizer state, activations, workspaces, code first used by this model (kernels the tiny network
did not need) and the temporaries of the model's construction (its weight initialisation), not
the library's import and code footprint.
The JSON also holds ``*_step_mib``: the second step's peak over the RSS just before it (a lower
bound on what a step allocates: memory the allocator kept from the first step is not counted).

The PyTorch networks are torchvision's (``weights=None``); torchvision imports only in a venv
whose torch matches it (see benchmarks/README.md). Without it only the U-Net and DCGAN rows run
(their PyTorch twins are written here). Prints a Markdown table and writes ``benchmarks/results/models.json``.
"""
import argparse
import os
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see run._torch: one wait policy for both libraries

DCGAN = dict(latent_dim=100, width=32)   # the Fashion-MNIST recipe's (minicnn.cli_gan), 32×32 grey
RETINANET_SIZE = dict(min_size=320, max_size=320)


class Row:
    """One network: ``name`` (for --only), the label, input size, batch, number of classes,
    minicnn constructor (no arguments), PyTorch constructor ``(torch, torchvision) -> module``,
    whether it needs torchvision, and whether --quick runs it."""

    def __init__(self, name, network, size, batch, num_classes, ours, theirs, needs_tv=True, quick=False):
        self.name, self.network, self.size, self.batch = name, network, size, batch
        self.num_classes, self.ours, self.theirs = num_classes, ours, theirs
        self.needs_tv, self.quick = needs_tv, quick
        self.in_channels = 1 if name.startswith(("unet", "dcgan")) else 3
        self.is_gan = name.startswith("dcgan")
        self.is_detector = name.startswith("retinanet")


def _ours(name):
    """The minicnn model of row ``name`` (random init)."""
    from minicnn import models
    from minicnn.models.segmentation import unet

    return {
        "resnet18_32": lambda: models.resnet18(num_classes=10, small_input=True),
        "resnet18_224": lambda: models.resnet18(),
        "resnet50_224": lambda: models.resnet50(),
        "mobilenet_v2_224": lambda: models.mobilenet_v2(),
        "vgg11_64": lambda: models.vgg11(),
        "densenet121_64": lambda: models.densenet121(),
        "unet_64": lambda: unet(in_channels=1, num_classes=2, base_channels=16, padding=True),
        "dcgan_32": _our_dcgan,
        "retinanet_320": _our_retinanet,
    }[name]()


def _our_dcgan():
    """The DCGAN recipe's pair (32×32, 1 channel, width 32, latent 100) in one module
    (``generator``, ``discriminator``), so that one state_dict holds both."""
    from minicnn import nn
    from minicnn.models.generative import DCGANDiscriminator, DCGANGenerator

    pair = nn.Module()
    pair.generator = DCGANGenerator(DCGAN["latent_dim"], 32, 1, DCGAN["width"])
    pair.discriminator = DCGANDiscriminator(32, 1, DCGAN["width"])
    return pair


def _our_retinanet():
    """RetinaNet ResNet-50-FPN as torchvision builds it without weights (BatchNorm2d, all 5 backbone
    stages trainable), 11 classes (the digit canvases' 10 digits + background), images kept at 320."""
    from minicnn import nn
    from minicnn.models.detection import retinanet_resnet50_fpn

    return retinanet_resnet50_fpn(num_classes=11, norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5,
                                  **RETINANET_SIZE)


def _theirs(name, torch, tv):
    """The PyTorch model of row ``name`` (torchvision's constructors, weights=None)."""
    if name == "unet_64":
        return torch_unet(torch, in_channels=1, num_classes=2, base_channels=16, padding=True)
    if name == "dcgan_32":
        return torch_dcgan(torch, image_size=32, channels=1, **DCGAN)
    if name == "retinanet_320":
        return tv.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=11,
                                                          **RETINANET_SIZE)
    m = tv.models
    if name == "resnet18_32":
        net = m.resnet18(weights=None, num_classes=10)
        net.conv1 = torch.nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)  # our small-input stem
        net.maxpool = torch.nn.Identity()
        return net
    return {"resnet18_224": m.resnet18, "resnet50_224": m.resnet50, "mobilenet_v2_224": m.mobilenet_v2,
            "vgg11_64": m.vgg11, "densenet121_64": m.densenet121}[name](weights=None)


ROWS = [
    Row("resnet18_32", "ResNet-18, small-input stem", 32, 32, 10, _ours, _theirs, quick=True),
    Row("resnet18_224", "ResNet-18", 224, 4, 1000, _ours, _theirs),
    Row("resnet50_224", "ResNet-50", 224, 2, 1000, _ours, _theirs),
    Row("mobilenet_v2_224", "MobileNetV2", 224, 4, 1000, _ours, _theirs),
    Row("vgg11_64", "VGG-11", 64, 8, 1000, _ours, _theirs, quick=True),
    Row("densenet121_64", "DenseNet-121", 64, 4, 1000, _ours, _theirs),
    Row("unet_64", "U-Net (base 16, padded)", 64, 8, 2, _ours, _theirs, needs_tv=False, quick=True),
    Row("dcgan_32", "DCGAN G+D step (width 32)", 32, 64, None, _ours, _theirs, needs_tv=False, quick=True),
    Row("retinanet_320", "RetinaNet ResNet-50-FPN", 320, 2, 11, _ours, _theirs),
]


def torch_unet(torch, in_channels=1, num_classes=2, base_channels=16, depth=4, padding=True, batch_norm=False):
    """PyTorch twin of ``minicnn.models.segmentation.unet`` with the same module names (``down1..``,
    ``pool``, ``bottleneck``, ``up1..`` with ``upconv`` and ``conv``, ``out``), so that its state_dict
    loads into ours (also the oracle of tests/test_seg_unet_segnet.py).
    ``(N, in_channels, H, W) → (N, num_classes, H', W')``."""
    nn = torch.nn

    def double(cin, cout):
        layers = []
        for a in (cin, cout):
            layers.append(nn.Conv2d(a, cout, 3, padding=1 if padding else 0, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    class Up(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.upconv = nn.ConvTranspose2d(cin, cout, 2, stride=2)
            self.conv = double(2 * cout, cout)

        def forward(self, x, skip):
            x = self.upconv(x)
            h, w = x.shape[-2:]
            top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
            return self.conv(torch.cat([skip[..., top:top + h, left:left + w], x], 1))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [base_channels * 2 ** level for level in range(depth + 1)]
            cin = in_channels
            for level in range(depth):
                self.add_module(f"down{level + 1}", double(cin, widths[level]))
                cin = widths[level]
            self.pool = nn.MaxPool2d(2, stride=2)
            self.bottleneck = double(widths[depth - 1], widths[depth])
            for level in range(depth):
                self.add_module(f"up{level + 1}", Up(widths[level + 1], widths[level]))
            self.out = nn.Conv2d(widths[0], num_classes, 1)

        def forward(self, x):
            skips = []
            for level in range(1, depth + 1):
                x = getattr(self, f"down{level}")(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottleneck(x)
            for level in range(depth, 0, -1):
                x = getattr(self, f"up{level}")(x, skips[level - 1])
            return self.out(x)

    return UNet()


def torch_dcgan(torch, latent_dim=100, image_size=32, channels=1, width=32):
    """PyTorch twin of minicnn's DCGAN pair: a module with ``generator`` and ``discriminator``, each
    the PyTorch DCGAN tutorial's ``main`` Sequential (the discriminator ending in a logit, no
    Sigmoid, as ours), so that its state_dict loads into :func:`_our_dcgan`'s."""
    nn = torch.nn
    k = int(image_size).bit_length() - 1
    c = width * 2 ** (k - 3)
    g = [nn.ConvTranspose2d(latent_dim, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
    for _ in range(k - 3):
        g += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
        c //= 2
    g += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
    d, c = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)], width
    for _ in range(k - 3):
        d += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
        c *= 2
    d += [nn.Conv2d(c, 1, 4, 1, 0, bias=False)]

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(*g)

        def forward(self, z):
            return self.main(z.reshape(z.shape[0], latent_dim, 1, 1))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(*d)

        def forward(self, x):
            return self.main(x).reshape(x.shape[0])

    pair = nn.Module()
    pair.generator, pair.discriminator = Generator(), Discriminator()
    return pair


def _data(row, seed=0):
    """Input (batch, C, size, size) float32 and targets: integer labels ((batch,), or (batch, size,
    size) for U-Net); for the GAN row, real images in (−1, 1) and latents (batch, latent_dim)."""
    r = np.random.default_rng(seed)
    shape = (row.batch, row.in_channels, row.size, row.size)
    if row.is_detector:
        from minicnn.data.detection import digit_detection

        ds = digit_detection(row.batch, canvas=row.size, split="test", seed=seed + 1)
        targets = [{k: np.asarray(t[k]) for k in ("boxes", "labels")} for t in ds.targets]
        return np.repeat(ds.images.astype(np.float32), 3, axis=1), targets
    if row.is_gan:
        return (r.uniform(-1, 1, shape).astype(np.float32),
                r.standard_normal((row.batch, DCGAN["latent_dim"]), dtype=np.float32))
    x = r.standard_normal(shape, dtype=np.float32)
    ty = (row.batch, row.size, row.size) if row.name.startswith("unet") else (row.batch,)
    return x, r.integers(0, row.num_classes, ty)


def _sgd_steps(model, params, loss, predict, sgd, no_grad):
    """(train step, eval forward) closures of either library: train = ``loss()``, backward, an SGD
    step (lr 0.01, momentum 0.9) over ``params``, the model in train mode; eval = ``predict()``
    under ``no_grad`` in eval mode."""
    opt = sgd(params, lr=0.01, momentum=0.9)

    def train():
        model.train()
        value = loss()
        opt.zero_grad()
        value.backward()
        opt.step()

    def evaluate():
        model.eval()
        with no_grad():
            return predict()
    return train, evaluate


def _our_steps(model, x, y):
    """(train step, eval forward) closures for a minicnn model: a classifier or segmenter
    (cross-entropy), a detector (``y``: targets; the sum of its losses; eval returns its detections'
    scores), or a GAN pair (``y``: latents; the alternating step of
    :class:`minicnn.train_gan.GANTrainer`, and sampling)."""
    import minicnn as mc
    import minicnn.functional as F
    from minicnn import optim

    if hasattr(model, "generator"):
        return _our_gan_steps(mc, model, x, y)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if hasattr(model, "anchor_generator"):
        images = [mc.Tensor(im) for im in x]
        return _sgd_steps(model, trainable, lambda: sum(model(images, y).values()),
                          lambda: np.concatenate([np.asarray(d["scores"]) for d in model(images)]), optim.SGD,
                          mc.no_grad)
    X, Y = mc.Tensor(x), mc.Tensor(y)
    return _sgd_steps(model, trainable, lambda: F.cross_entropy(model(X), Y), lambda: model(X).numpy(), optim.SGD,
                      mc.no_grad)


def _our_gan_steps(mc, pair, x, z):
    from minicnn.train_gan import GANTrainer

    trainer = GANTrainer(pair.generator, pair.discriminator, lr=2e-4, betas=(0.5, 0.999), progress=False,
                         num_samples=1)
    X, Z = mc.Tensor(x), mc.Tensor(z)

    def train():
        pair.train()
        fake = pair.generator(Z)
        trainer.d_step(X, fake)
        trainer.g_step(fake)

    def evaluate():
        pair.eval()
        with mc.no_grad():
            return pair.generator(Z).numpy()
    return train, evaluate


def _their_steps(torch, model, x, y):
    """(train step, eval forward) closures for a PyTorch model (as :func:`_our_steps`)."""
    if hasattr(model, "generator"):
        return _their_gan_steps(torch, model, x, y)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if hasattr(model, "anchor_generator"):
        images = [torch.from_numpy(im) for im in x]
        targets = [{k: torch.from_numpy(v) for k, v in t.items()} for t in y]
        return _sgd_steps(model, trainable, lambda: sum(model(images, targets).values()),
                          lambda: np.concatenate([d["scores"].numpy() for d in model(images)]), torch.optim.SGD,
                          torch.no_grad)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    return _sgd_steps(model, trainable, lambda: torch.nn.functional.cross_entropy(model(X), Y),
                      lambda: model(X).numpy(), torch.optim.SGD, torch.no_grad)


def _their_gan_steps(torch, pair, x, z):
    G, D = pair.generator, pair.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    X, Z = torch.from_numpy(x), torch.from_numpy(z)
    ones, zeros = torch.ones(len(x)), torch.zeros(len(x))

    def train():
        pair.train()
        fake = G(Z)
        loss_d = bce(D(X), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        loss_g = bce(D(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

    def evaluate():
        pair.eval()
        with torch.no_grad():
            return G(Z).numpy()
    return train, evaluate


def _compared_outputs(framework, model, x, y, evaluate, torch=None):
    """What the equivalence check compares: the output of ``evaluate`` (the row's eval closure); for
    a GAN pair ``G(z)`` and ``D(x)`` in eval mode, flattened and concatenated; for a detector its
    training losses (the model in eval mode, so that batch norm uses the same running statistics on
    both sides, with the transform and head in training mode, as tests/test_retinanet.py)."""
    if hasattr(model, "anchor_generator"):
        return _detector_losses(framework, model, x, y, torch)
    out = evaluate()
    if not hasattr(model, "generator"):
        return out
    if framework == "torch":
        with torch.no_grad():
            d = model.discriminator(torch.from_numpy(x)).numpy()
    else:
        import minicnn as mc
        with mc.no_grad():
            d = model.discriminator(mc.Tensor(x)).numpy()
    return np.concatenate([out.ravel(), d.ravel()])


def _detector_losses(framework, model, x, y, torch):
    model.eval()
    model.training = model.transform.training = model.head.training = True
    try:
        if framework == "torch":
            targets = [{k: torch.from_numpy(v) for k, v in t.items()} for t in y]
            with torch.no_grad():
                losses = model([torch.from_numpy(im) for im in x], targets)
            return np.array([losses[k].item() for k in sorted(losses)])
        import minicnn as mc
        with mc.no_grad():
            losses = model([mc.Tensor(im) for im in x], y)
        return np.array([float(losses[k].item()) for k in sorted(losses)])
    finally:
        model.eval()


def _import_torch():
    """(torch, torchvision or None); torch on os.cpu_count() threads."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    try:
        import torchvision
    except Exception:  # noqa: BLE001  (absent, or built for another torch)
        torchvision = None
    return torch, torchvision


def _status_mib(field):
    """``VmRSS`` / ``VmHWM`` of this process in MiB, from /proc/self/status (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak_rss():
    """Resident-set baseline (MiB) with the peak reset to it (``echo 5 > /proc/self/clear_refs``).

    ``getrusage().ru_maxrss`` is not used: it survives ``exec``, so a spawned child would start
    from its parent's peak. ``VmHWM`` belongs to the process's own address space."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def _warm_library(framework, torch=None):
    """A training step and an eval forward of two tiny networks in ``framework``, so that the
    library's compute code is loaded before the memory baseline: Numba loads its LLVM and cached
    kernels on first use (about 130 MiB of resident code here), PyTorch maps its kernels at import.
    The networks take the common layers and each convolution algorithm of the CPU backend on small
    tensors (3×3 and strided 1×1 and 3×3 convolutions; Winograd F(4×4) on 64×64 maps with 32
    channels and F(2×2) on 32×32 ones with 16; a wide layer on 4×4 maps; transposed convolutions k2 s2 and k8 s8; BN, ReLU, max pool, a
    concatenation, a residual add), one with a classification head (global average pool, linear,
    cross-entropy), one with a per-pixel one (1×1 convolution, cross-entropy over (N, H, W)
    targets); SGD momentum. A few KiB of data stay allocated."""
    r = np.random.default_rng(0)
    x = r.standard_normal((4, 3, 64, 64), dtype=np.float32)
    if framework == "torch":
        nn, cat = torch.nn, torch.cat
    else:
        import minicnn.functional as F
        from minicnn import nn
        cat = F.cat

    class Tiny(nn.Module):
        def __init__(self, per_pixel):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, padding=1))
            self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(32, 16, 3, padding=1), nn.Conv2d(16, 8, 1, stride=2),
                                      nn.Conv2d(8, 128, 3, stride=2, padding=1), nn.Conv2d(128, 128, 3, stride=2, padding=1),
                                      nn.Conv2d(128, 128, 3, padding=1), nn.ConvTranspose2d(128, 8, 2, stride=2))
            self.up = nn.ConvTranspose2d(8, 32, 8, stride=8)
            self.head = (nn.Conv2d(64, 2, 1) if per_pixel else
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2)))

        def forward(self, x):
            a = self.conv(x)
            b = self.up(self.down(a))
            return self.head(cat([a, b + a], 1))

    for per_pixel in (False, True):
        y = r.integers(0, 2, (4, 64, 64) if per_pixel else (4,))
        steps = _their_steps(torch, Tiny(per_pixel), x, y) if framework == "torch" else _our_steps(Tiny(per_pixel), x, y)
        for step in steps:
            step()


def _return_free_heap():
    """``malloc_trim(0)`` (glibc): give the heap memory the warm-up freed back to the system before
    the baseline, so that neither library's step reuses it unseen (minicnn tunes malloc to keep
    freed blocks, PyTorch's default malloc trims the top of the heap; without this the warm-up's
    leftovers lowered the peaks of both, by different amounts)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _memory_child(name, framework, mode, queue):
    """Child process body: peak-RSS growth (MiB) of two ``mode`` steps of one framework."""
    try:
        torch = None
        if framework == "torch":
            torch, tv = _import_torch()
        else:
            import minicnn  # noqa: F401
        _warm_library(framework, torch)
        _return_free_heap()
        base = _reset_peak_rss()
        row = next(r for r in ROWS if r.name == name)
        x, y = _data(row)
        if framework == "torch":
            train, evaluate = _their_steps(torch, _theirs(name, torch, tv), x, y)
        else:
            train, evaluate = _our_steps(_ours(name), x, y)
        fn = train if mode == "train" else evaluate
        fn()
        total = _status_mib("VmHWM") - base
        before = _reset_peak_rss()
        fn()
        queue.put((max(total, _status_mib("VmHWM") - base), _status_mib("VmHWM") - before))
    except Exception as e:  # noqa: BLE001  (reported in the table, not raised in the child)
        queue.put(f"{type(e).__name__}: {e}")


def peak_memory_mib(name, framework, mode, timeout_s=600):
    """Memory of ``mode`` ("train"/"eval") steps of row ``name`` for ``framework``
    ("minicnn"/"torch"), in a fresh spawned process: ``(total, step)`` MiB, where ``total`` is the
    peak RSS of two steps minus the RSS after imports, and ``step`` the peak RSS of the second step
    minus the RSS just before it (what one steady-state step allocates on top of what stays
    resident); ``(None, None)`` on failure."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_memory_child, args=(name, framework, mode, q))
    p.start()
    try:
        out = q.get(timeout=timeout_s)
    except Exception:  # noqa: BLE001  (timeout: no number)
        out = None
    p.join(5)
    if p.is_alive():
        p.terminate()
    return out if isinstance(out, tuple) else (None, None)


def run_row(row, torch, tv, reps, memory, log=print):
    """Equivalence check, then alternating timings of both modes; returns the row's two result dicts."""
    from .timing import time_pair

    import minicnn as mc

    torch.manual_seed(0)
    mc.manual_seed(0)
    theirs = _theirs(row.name, torch, tv)
    ours = _ours(row.name)
    ours.load_state_dict(theirs.state_dict())
    x, y = _data(row)
    o_train, o_eval = _our_steps(ours, x, y)
    t_train, t_eval = _their_steps(torch, theirs, x, y)
    a, b = _compared_outputs("minicnn", ours, x, y, o_eval), _compared_outputs("torch", theirs, x, y, t_eval, torch)
    if a.shape != b.shape:
        raise ValueError(f"models benchmark {row.name}: output shapes differ: minicnn {a.shape}, PyTorch {b.shape}")
    err, scale = float(np.max(np.abs(a - b))), float(np.max(np.abs(b)))
    if not err <= 1e-3 * scale:
        raise ValueError(f"models benchmark {row.name}: eval outputs disagree: max |diff| {err:.3g} > "
                         f"1e-3 · output scale {scale:.3g}")
    results = []
    for mode, ofn, tfn in (("eval", o_eval, t_eval), ("train", o_train, t_train)):
        t_o, t_t, n = time_pair(ofn, tfn, warmup=1, min_reps=reps, max_reps=reps, budget_s=0.0)
        r = dict(name=row.name, network=row.network, input=f"{row.size}×{row.size}", batch=row.batch, mode=mode,
                 ours_ms=1e3 * t_o, torch_ms=1e3 * t_t, ratio=t_t / t_o, images_per_s=row.batch / t_o, reps=n,
                 max_abs_diff=err, output_scale=scale)
        if memory:
            r["ours_mib"], r["ours_step_mib"] = peak_memory_mib(row.name, "minicnn", mode)
            r["torch_mib"], r["torch_step_mib"] = peak_memory_mib(row.name, "torch", mode)
        results.append(r)
        log(format_row(r))
    return results


HEADER = ("| network | input | batch | mode | minicnn ms | PyTorch ms | ratio (PyTorch/minicnn) | images/s minicnn "
          "| peak MiB minicnn | peak MiB PyTorch |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|")


def format_row(r):
    if r.get("error"):
        return f"| {r['network']} | {r['input']} | {r['batch']} | | ERROR: {r['error']} | | | | | |"

    def mib(v):
        return f"{v:.0f}" if isinstance(v, float) else "n/a"
    return (f"| {r['network']} | {r['input']} | {r['batch']} | {r['mode']} | {r['ours_ms']:.1f} | {r['torch_ms']:.1f} "
            f"| {r['ratio']:.2f}× | {r['images_per_s']:.1f} | {mib(r.get('ours_mib'))} | {mib(r.get('torch_mib'))} |")


def run(quick=False, only=None, memory=True, log=print):
    """Run the rows (all, the --quick subset, or those whose name contains one of ``only``)."""
    torch, tv = _import_torch()
    from minicnn.kernels.cpu._threads import NUM_THREADS

    t_begin = time.perf_counter()
    from .timing import machine_line

    log(f"machine: {machine_line()}; "
        f"minicnn threads {NUM_THREADS}; PyTorch {torch.__version__} "
        f"({torch.get_num_threads()} threads); torchvision {getattr(tv, '__version__', 'not importable')}")
    if tv is None:
        log("torchvision does not import beside this torch: the torchvision rows need the bench-vision venv "
            "(torch + a matching torchvision, see benchmarks/README.md); running the U-Net row only")
    reps = 3 if quick else 5
    rows = []
    for row in ROWS:
        if only and not any(o in row.name for o in only):
            continue
        if (quick and not only and not row.quick) or (row.needs_tv and tv is None):
            continue
        try:
            rows += run_row(row, torch, tv, reps, memory, log)
        except Exception as e:  # noqa: BLE001  (a failing row is reported, the others still run)
            r = dict(name=row.name, network=row.network, input=f"{row.size}×{row.size}", batch=row.batch,
                     error=f"{type(e).__name__}: {e}")
            rows.append(r)
            log(format_row(r))
    return dict(torch=torch.__version__, torchvision=getattr(tv, "__version__", None), cores=os.cpu_count(),
                threads=NUM_THREADS, load_average=os.getloadavg(), time=time.strftime("%Y-%m-%d %H:%M:%S"),
                reps=reps, seconds=time.perf_counter() - t_begin, rows=rows,
                memory="peak RSS (VmHWM) minus the after-import RSS, MiB, two steps in a fresh spawned process "
                       "per library and mode" if memory else None)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks models", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 repetitions; without --only, only the cheap rows")
    p.add_argument("--only", default=None, help="comma-separated substrings of row names: "
                   + ", ".join(r.name for r in ROWS))
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    print(HEADER.split("\n")[0])
    result = run(a.quick, a.only.split(",") if a.only else None, not a.no_memory)
    from .timing import write_results

    write_results(result, "models", a.json, HEADER, format_row)
    return result


if __name__ == "__main__":
    main()
