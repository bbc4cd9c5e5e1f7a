"""Whole-network benchmark: ``python -m benchmarks models [--quick] [--only resnet18_32,unet_64]``.

Each row is one network at one input size and batch, timed in two modes:

* ``train``: forward, cross-entropy, backward, SGD step (lr 0.01, momentum 0.9), BN in train mode;
* ``eval``: forward under ``no_grad`` with the model in eval mode.

Both libraries hold the SAME weights (PyTorch's random init, loaded into minicnn with
``load_state_dict``). Before timing, the eval outputs of both are compared on the row's input:
``max |ours − theirs| <= 1e-3 · max |theirs|`` or the row is an error (no timing printed).
Timing alternates minicnn and PyTorch (``timing.time_pair``): 1 warm-up call each, then the
median of 5 calls (3 with ``--quick``), ``OMP_WAIT_POLICY=PASSIVE``, PyTorch on ``os.cpu_count()``
threads. Ratio = PyTorch ms / minicnn ms (> 1: minicnn faster).

Peak memory is measured the same way for both libraries: a fresh ``spawn`` child imports only
its library, runs one training step and one eval forward of a tiny network in it (the common
layer types, ``_warm_library``: loads the library's compute code, Numba's LLVM and cached
kernels for minicnn, about 130 MiB resident here, which PyTorch maps at import), takes its
resident set size as the baseline (resetting the kernel's peak-RSS mark to it, Linux
``/proc/self/clear_refs``), builds the model (its own random init) and the input, runs the mode's
step twice, and reports the peak RSS (``VmHWM``) minus the baseline, in MiB: weights, gradients,
optimizer state, activations, workspaces, code first used by this model (kernels the tiny network
did not need) and the temporaries of the model's construction (its weight initialisation), not
the library's import and code footprint.
The JSON also holds ``*_step_mib``: the second step's peak over the RSS just before it (a lower
bound on what a step allocates: memory the allocator kept from the first step is not counted).

The PyTorch networks are torchvision's (``weights=None``); torchvision imports only in a venv
whose torch matches it (see benchmarks/README.md). Without it only the U-Net row runs (its PyTorch
twin is written here). Prints a Markdown table and writes ``benchmarks/results/models.json``.
"""
import argparse
import os
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see run._torch: one wait policy for both libraries


class Row:
    """One network: ``name`` (for --only), the label, input size, batch, number of classes,
    minicnn constructor (no arguments), PyTorch constructor ``(torch, torchvision) -> module``,
    whether it needs torchvision, and whether --quick runs it."""

    def __init__(self, name, network, size, batch, num_classes, ours, theirs, needs_tv=True, quick=False):
        self.name, self.network, self.size, self.batch = name, network, size, batch
        self.num_classes, self.ours, self.theirs = num_classes, ours, theirs
        self.needs_tv, self.quick = needs_tv, quick
        self.in_channels = 1 if name.startswith("unet") else 3


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
    }[name]()


def _theirs(name, torch, tv):
    """The PyTorch model of row ``name`` (torchvision's constructors, weights=None)."""
    if name == "unet_64":
        return torch_unet(torch, in_channels=1, num_classes=2, base_channels=16, padding=True)
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


def _data(row, seed=0):
    """Input (batch, C, size, size) float32 and integer targets ((batch,) or (batch, size, size) for U-Net)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((row.batch, row.in_channels, row.size, row.size), dtype=np.float32)
    ty = (row.batch, row.size, row.size) if row.name.startswith("unet") else (row.batch,)
    return x, r.integers(0, row.num_classes, ty)


def _our_steps(model, x, y):
    """(train step, eval forward) closures for a minicnn model."""
    import minicnn as mc
    import minicnn.functional as F
    from minicnn import optim

    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    X, Y = mc.Tensor(x), mc.Tensor(y)

    def train():
        model.train()
        loss = F.cross_entropy(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def evaluate():
        model.eval()
        with mc.no_grad():
            return model(X).numpy()
    return train, evaluate


def _their_steps(torch, model, x, y):
    """(train step, eval forward) closures for a PyTorch model."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        model.train()
        loss = torch.nn.functional.cross_entropy(model(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def evaluate():
        model.eval()
        with torch.no_grad():
            return model(X).numpy()
    return train, evaluate


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
    """One training step and one eval forward of a tiny network in ``framework`` (3×3 and strided
    1×1 convolutions, BN, ReLU, max pool, a transposed convolution, a concatenation, a residual
    add, global average pool, linear, cross-entropy, SGD momentum), so that the library's compute
    code is loaded before the memory baseline: Numba loads its LLVM and cached kernels on first
    use (about 130 MiB of resident code here), PyTorch maps its kernels at import. A few KiB of
    data stay allocated."""
    r = np.random.default_rng(0)
    x, y = r.standard_normal((2, 3, 8, 8), dtype=np.float32), np.array([0, 1])
    if framework == "torch":
        nn, cat = torch.nn, torch.cat
    else:
        import minicnn.functional as F
        from minicnn import nn
        cat = F.cat

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
            self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 4, 1, stride=2))
            self.up = nn.ConvTranspose2d(4, 4, 4, stride=4)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

        def forward(self, x):
            a = self.conv(x)
            b = self.up(self.down(a))
            return self.head(cat([a, b + a], 1))

    steps = _their_steps(torch, Tiny(), x, y) if framework == "torch" else _our_steps(Tiny(), x, y)
    for step in steps:
        step()


def _memory_child(name, framework, mode, queue):
    """Child process body: peak-RSS growth (MiB) of two ``mode`` steps of one framework."""
    try:
        torch = None
        if framework == "torch":
            torch, tv = _import_torch()
        else:
            import minicnn  # noqa: F401
        _warm_library(framework, torch)
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
    a, b = o_eval(), t_eval()
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
