"""The benchmark suite: each case builds inputs once and returns closures for minicnn and PyTorch.

A case is ``Case(group, name, flops, make)`` where ``make(torch)`` returns
``(ours, theirs)``: zero-argument callables doing the same work (``theirs`` is None when PyTorch
is absent or has no such op). ``flops`` counts multiply-adds as 2 flops and is None for ops
that are not arithmetic-bound (NMS).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import minicnn as mc
import minicnn.functional as F

# (N, Cin, H, W, Cout, k, stride, pad, groups)
CONV_LAYERS = [
    (64, 3, 32, 32, 32, 3, 1, 1, 1),
    (64, 32, 16, 16, 64, 3, 1, 1, 1),
    (8, 64, 56, 56, 64, 3, 1, 1, 1),
    (8, 256, 14, 14, 256, 3, 1, 1, 1),
    (8, 64, 56, 56, 256, 1, 1, 0, 1),
    (4, 128, 112, 112, 128, 3, 1, 1, 1),
    (8, 64, 56, 56, 128, 3, 2, 1, 1),
    (8, 128, 56, 56, 128, 3, 1, 1, 128),  # depthwise
]

# MobileNetV2 at 224×224, batch 4 (the models table's row): its 3×3 depthwise stride-2 layers and its
# 1×1 expansion / projection layers, on their own rows
MOBILENET_LAYERS = [
    (4, 96, 112, 112, 96, 3, 2, 1, 96),   # block 2's depthwise, stride 2
    (4, 144, 56, 56, 144, 3, 2, 1, 144),  # block 4's depthwise, stride 2
    (4, 24, 56, 56, 144, 1, 1, 0, 1),     # 1×1 expansion
    (4, 144, 56, 56, 24, 1, 1, 0, 1),     # 1×1 projection
    (4, 960, 7, 7, 160, 1, 1, 0, 1),      # 1×1 projection on a 7×7 map
]

# a wide layer on a small map (ResNet-18's last stage at 32×32 input, batch 32): the small-maps backward
SMALL_MAP_LAYERS = [(32, 512, 4, 4, 512, 3, 1, 1, 1)]

# 1-D layers of the time-series networks (batch 16, padding "same"): (N, Cin, L, Cout, k, where)
CONV1D_LAYERS = [
    (16, 1, 150, 128, 8, "FCN-1D block 1, GunPoint"),
    (16, 128, 150, 256, 5, "FCN-1D block 2, GunPoint"),
    (16, 256, 150, 128, 3, "FCN-1D block 3, GunPoint"),
    (16, 64, 150, 128, 8, "ResNet-1D block 2 conv 1, GunPoint"),
    (16, 128, 150, 128, 5, "ResNet-1D block 3 conv 2, GunPoint"),
    (16, 128, 427, 256, 5, "FCN-1D block 2, OSULeaf"),
]


@dataclass
class Case:
    group: str
    name: str
    flops: Optional[float]
    make: Callable


def _rng():
    return np.random.default_rng(0)


def _conv_flops(N, C, H, W, K, k, s, p, g):
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    return 2.0 * N * K * Ho * Wo * (C // g) * k * k, (N, K, Ho, Wo)


def conv_case(layer, backward, algorithm=None, fused=None):
    """``algorithm``: None (minicnn's own choice) or a forced CPU path ("im2col", "winograd", "winograd4"),
    to show the kernel variants side by side; ``fused``: None (the default rule), or whether a
    Winograd layer's backward computes gx and gW from one transform of gy (``FUSED_WINOGRAD_BACKWARD``)."""
    N, C, H, W, K, k, s, p, g = layer
    fwd_flops, out_shape = _conv_flops(*layer)
    flops = fwd_flops * (3 if backward else 1)  # backward = input grad + weight grad, each as costly

    def make(torch):
        r = _rng()
        x = r.standard_normal((N, C, H, W), dtype=np.float32)
        w = (r.standard_normal((K, C // g, k, k), dtype=np.float32) * 0.1).astype(np.float32)
        b = r.standard_normal(K, dtype=np.float32)
        gy = r.standard_normal(out_shape, dtype=np.float32)
        X = mc.Tensor(x, requires_grad=backward)
        Wt = mc.Tensor(w, requires_grad=backward)
        B = mc.Tensor(b, requires_grad=backward)

        def ours_auto():
            y = F.conv2d(X, Wt, B, stride=s, padding=p, groups=g)
            if backward:
                X.grad = Wt.grad = B.grad = None
                y.backward(gy)

        def ours():
            from minicnn.kernels.cpu import conv as cpu_conv

            saved = cpu_conv.FORCE_ALGORITHM, cpu_conv.FUSED_WINOGRAD_BACKWARD
            cpu_conv.FORCE_ALGORITHM = algorithm
            if fused is not None:
                cpu_conv.FUSED_WINOGRAD_BACKWARD = fused
            try:
                ours_auto()
            finally:
                cpu_conv.FORCE_ALGORITHM, cpu_conv.FUSED_WINOGRAD_BACKWARD = saved

        theirs = None
        if torch is not None:
            tx = torch.from_numpy(x).requires_grad_(backward)
            tw = torch.from_numpy(w).requires_grad_(backward)
            tb = torch.from_numpy(b).requires_grad_(backward)
            tgy = torch.from_numpy(gy)

            def theirs():
                if backward:
                    tx.grad = tw.grad = tb.grad = None
                    torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p, groups=g).backward(tgy)
                else:
                    with torch.no_grad():
                        torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p, groups=g)
        return ours, theirs

    kind = "depthwise" if g == C and g > 1 else "conv2d"
    name = f"{kind} {'fwd+bwd' if backward else 'fwd'} N{N} C{C} {H}x{W} K{K} k{k} s{s} p{p}"
    if algorithm:
        name += f" [{algorithm}{'' if fused is None else ', fused backward' if fused else ', gx and gW apart'}]"
    return Case(kind, name, flops, make)


def conv1d_case(layer):
    """Forward + backward (gx, gW, gb) of one Conv1d layer with ``padding="same"``, against
    ``torch.nn.functional.conv1d`` on the same arrays."""
    N, C, L, K, k, where = layer
    flops = 3 * 2.0 * N * K * L * C * k

    def make(torch):
        r = _rng()
        x = r.standard_normal((N, C, L), dtype=np.float32)
        w = (r.standard_normal((K, C, k), dtype=np.float32) * 0.1).astype(np.float32)
        b = r.standard_normal(K, dtype=np.float32)
        gy = r.standard_normal((N, K, L), dtype=np.float32)
        X, Wt, B = (mc.Tensor(a, requires_grad=True) for a in (x, w, b))

        def ours():
            X.grad = Wt.grad = B.grad = None
            F.conv1d(X, Wt, B, padding="same").backward(gy)

        theirs = None
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
            tgy = torch.from_numpy(gy)

            def theirs():
                tx.grad = tw.grad = tb.grad = None
                torch.nn.functional.conv1d(tx, tw, tb, padding="same").backward(tgy)
        return ours, theirs

    return Case("conv1d", f"conv1d fwd+bwd N{N} C{C} L{L} K{K} k{k} same ({where})", flops, make)


def pool_case(shape, kind, k=2, s=2, p=0, what=""):
    """``kind``_pool2d forward + backward on ``shape``, window k, stride s, padding p, vs PyTorch."""
    N, C, H, W = shape
    OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    flops = None

    def make(torch):
        x = _rng().standard_normal(shape, dtype=np.float32)
        gy = _rng().standard_normal((N, C, OH, OW), dtype=np.float32)
        X = mc.Tensor(x, requires_grad=True)
        fn = F.max_pool2d if kind == "max" else F.avg_pool2d

        def ours():
            X.grad = None
            fn(X, k, s, p).backward(gy)

        theirs = None
        if torch is not None:
            tx = torch.from_numpy(x).requires_grad_(True)
            tfn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
            tgy = torch.from_numpy(gy)

            def theirs():
                tx.grad = None
                tfn(tx, k, s, p).backward(tgy)
        return ours, theirs

    pad = f" p{p}" if p else ""
    return Case(f"{kind}_pool", f"{kind}_pool2d fwd+bwd {N}x{C}x{H}x{W} k{k} s{s}{pad}{what}", flops, make)


def deconv_case():
    N, C, H, W, K, k, s, p = 8, 64, 28, 28, 32, 4, 2, 1
    Ho = (H - 1) * s - 2 * p + k
    flops = 2.0 * N * C * H * W * K * k * k * 3

    def make(torch):
        r = _rng()
        x = r.standard_normal((N, C, H, W), dtype=np.float32)
        w = (r.standard_normal((C, K, k, k)) * 0.1).astype(np.float32)
        gy = r.standard_normal((N, K, Ho, Ho), dtype=np.float32)
        X, Wt = mc.Tensor(x, requires_grad=True), mc.Tensor(w, requires_grad=True)

        def ours():
            X.grad = Wt.grad = None
            F.conv_transpose2d(X, Wt, stride=s, padding=p).backward(gy)

        theirs = None
        if torch is not None:
            tx, tw = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(w).requires_grad_(True)
            tgy = torch.from_numpy(gy)

            def theirs():
                tx.grad = tw.grad = None
                torch.nn.functional.conv_transpose2d(tx, tw, stride=s, padding=p).backward(tgy)
        return ours, theirs

    return Case("conv_transpose2d", f"conv_transpose2d fwd+bwd ({N},{C},{H},{W})->({N},{K},{Ho},{Ho}) k4 s2 p1",
                flops, make)


def _boxes(r, n, size=800.0):
    xy = r.uniform(0, size * 0.9, (n, 2))
    wh = r.uniform(8, size * 0.25, (n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, size)], 1).astype(np.float32)


def nms_case(n):
    def make(torch):
        r = _rng()
        boxes, scores = _boxes(r, n), r.uniform(size=n).astype(np.float32)
        B, S = mc.Tensor(boxes), mc.Tensor(scores)

        def ours():
            F.nms(B, S, 0.5)

        theirs = None
        try:
            import torchvision  # noqa: F401

            tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)

            def theirs():
                torchvision.ops.nms(tb, ts, 0.5)
        except Exception:
            pass
        return ours, theirs

    return Case("nms", f"nms {n} boxes iou 0.5", None, make)


def roi_align_case(k):
    N, C, H, W = 2, 256, 50, 50

    def make(torch):
        r = _rng()
        x = r.standard_normal((N, C, H, W), dtype=np.float32)
        b = _boxes(r, k, 800.0)
        rois = np.concatenate([r.integers(0, N, (k, 1)).astype(np.float32), b], 1)
        X, R = mc.Tensor(x), mc.Tensor(rois)

        def ours():
            F.roi_align(X, R, (7, 7), spatial_scale=1 / 16, sampling_ratio=2, aligned=True)

        theirs = None
        try:
            import torchvision

            tx, tr = torch.from_numpy(x), torch.from_numpy(rois)

            def theirs():
                torchvision.ops.roi_align(tx, tr, (7, 7), 1 / 16, 2, True)
        except Exception:
            pass
        return ours, theirs

    return Case("roi_align", f"roi_align fwd {k} rois on 2x256x50x50 -> 7x7", 2.0 * k * C * 49 * 4 * 4 * 2, make)


def train_step_case(batch=64):
    def make(torch):
        from minicnn import models, nn, optim

        r = _rng()
        x = r.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        y = r.integers(0, 10, batch)
        mc.manual_seed(0)
        model = models.seed_cnn(in_channels=1, image_size=28)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        X, Y = mc.Tensor(x), mc.Tensor(y)

        def ours():
            loss = F.cross_entropy(model(X), Y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        theirs = None
        if torch is not None:
            tn = torch.nn
            tm = tn.Sequential(tn.Conv2d(1, 32, 3), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(32, 64, 3), tn.ReLU(),
                               tn.MaxPool2d(2), tn.Conv2d(64, 64, 3), tn.ReLU(), tn.Flatten(), tn.Linear(576, 64),
                               tn.ReLU(), tn.Linear(64, 10))
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def theirs():
                loss = tn.functional.cross_entropy(tm(tx), ty)
                topt.zero_grad()
                loss.backward()
                topt.step()
        return ours, theirs

    return Case("train_step", f"seed CNN train step (batch {batch}, 28x28x1, Adam)", None, make)


def suite(quick=False):
    layers = CONV_LAYERS[:2] + CONV_LAYERS[-1:] if quick else CONV_LAYERS
    cases = []
    for layer in layers:
        cases.append(conv_case(layer, backward=False))
        cases.append(conv_case(layer, backward=True))
    if not quick:
        for layer in MOBILENET_LAYERS + SMALL_MAP_LAYERS:
            cases += [conv_case(layer, backward=False), conv_case(layer, backward=True)]
    if not quick:  # the CPU kernel variants side by side, where both apply (3×3, stride 1)
        for layer in CONV_LAYERS[2:4] + CONV_LAYERS[5:6]:
            cases += [conv_case(layer, backward=False, algorithm=a) for a in ("im2col", "winograd", "winograd4")]
        # the backward variants of the small-image layer: im2col, Winograd's two kernels, the fused one
        cases += [conv_case(CONV_LAYERS[1], backward=True, algorithm=a, fused=f)
                  for a, f in (("im2col", None), ("winograd", False), ("winograd", True))]
    cases += [conv1d_case(layer) for layer in (CONV1D_LAYERS[1:2] if quick else CONV1D_LAYERS)]
    for shape in ([(64, 64, 32, 32)] if quick else [(64, 64, 32, 32), (8, 256, 56, 56)]):
        cases += [pool_case(shape, "max"), pool_case(shape, "avg")]
    if not quick:  # overlapping windows
        cases.append(pool_case((4, 64, 112, 112), "max", 3, 2, 1, " (ResNet's stem pool)"))
    cases.append(deconv_case())
    cases += [roi_align_case(1000 if quick else 2000)]
    cases += [nms_case(n) for n in ((1000,) if quick else (1000, 10000))]
    cases.append(train_step_case())
    return cases


# ---- --device cuda: the same kinds of rows against PyTorch CUDA (cuDNN) ------------------------------------
def _sync(device):
    """A callable that waits for the device (each timed call ends with it); no-op on CPU devices."""
    if device != "cuda":
        return lambda: None
    import cupy

    return cupy.cuda.Device().synchronize


def _torch_sync(torch):
    return torch.cuda.synchronize if torch is not None and torch.cuda.is_available() else (lambda: None)


class _Tf32:
    """Context: TF32 on or off for both minicnn (``minicnn.backends.cuda.allow_tf32``) and PyTorch
    (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``)."""

    def __init__(self, torch, on):
        self.torch, self.on = torch, on

    def __enter__(self):
        self.saved = mc.backends.cuda.allow_tf32
        mc.backends.cuda.allow_tf32 = self.on
        if self.torch is not None:
            b = self.torch.backends
            self.saved_torch = b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32
            b.cuda.matmul.allow_tf32 = b.cudnn.allow_tf32 = self.on

    def __exit__(self, *exc):
        mc.backends.cuda.allow_tf32 = self.saved
        if self.torch is not None:
            b = self.torch.backends
            b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = self.saved_torch


class _ConvAlgorithm:
    """Context: ``minicnn.backends.cuda.conv_algorithm`` set to ``name`` (None: left as it is)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.saved = mc.backends.cuda.conv_algorithm
        if self.name is not None:
            mc.backends.cuda.conv_algorithm = self.name

    def __exit__(self, *exc):
        mc.backends.cuda.conv_algorithm = self.saved


def gpu_conv_case(layer, backward, tf32, device="cuda", algorithm=None):
    """A convolution on ``device`` (``cuda``; ``cuda-emu`` for a smoke run) against PyTorch on its
    CUDA device (cuDNN), with TF32 on or off for both; every timed call waits for the device.
    ``algorithm``: None (the default path) or a ``minicnn.backends.cuda.conv_algorithm`` to force,
    e.g. ``"implicit_gemm"`` (its forward is plain FP32 FMAs whatever the TF32 switch)."""
    N, C, H, W, K, k, s, p, g = layer
    fwd_flops, out_shape = _conv_flops(*layer)

    def make(torch):
        r = _rng()
        x = r.standard_normal((N, C, H, W), dtype=np.float32)
        w = (r.standard_normal((K, C // g, k, k), dtype=np.float32) * 0.1).astype(np.float32)
        gy = r.standard_normal(out_shape, dtype=np.float32)
        X, Wt = mc.Tensor(x, device=device, requires_grad=backward), mc.Tensor(w, device=device, requires_grad=backward)
        GY = mc.Tensor(gy, device=device)
        sync = _sync(device)

        def ours():
            with _Tf32(None, tf32), _ConvAlgorithm(algorithm):
                y = F.conv2d(X, Wt, stride=s, padding=p, groups=g)
                if backward:
                    X.grad = Wt.grad = None
                    y.backward(GY)
            sync()

        theirs = None
        if torch is not None and torch.cuda.is_available():
            tx = torch.from_numpy(x).cuda().requires_grad_(backward)
            tw = torch.from_numpy(w).cuda().requires_grad_(backward)
            tgy = torch.from_numpy(gy).cuda()
            tsync = _torch_sync(torch)

            def theirs():
                with _Tf32(torch, tf32):
                    if backward:
                        tx.grad = tw.grad = None
                        torch.nn.functional.conv2d(tx, tw, stride=s, padding=p, groups=g).backward(tgy)
                    else:
                        with torch.no_grad():
                            torch.nn.functional.conv2d(tx, tw, stride=s, padding=p, groups=g)
                tsync()
        return ours, theirs

    kind = "depthwise" if g == C and g > 1 else "conv2d"
    path = ", implicit GEMM" if algorithm == "implicit_gemm" else (f", {algorithm}" if algorithm else "")
    name = (f"{kind} {'fwd+bwd' if backward else 'fwd'} N{N} C{C} {H}x{W} K{K} k{k} s{s} p{p} "
            f"[{device}{path}, TF32 {'on' if tf32 else 'off'}]")
    case = Case(kind, name, fwd_flops * (3 if backward else 1), make)
    case.peak = "tf32" if tf32 else "fp32"
    return case


def gpu_op_case(kind, device="cuda", n=10000):
    """NMS of ``n`` boxes, max pooling fwd+bwd, or RoI align fwd on ``device`` vs PyTorch CUDA
    (torchvision.ops where it imports)."""

    def make(torch):
        r = _rng()
        sync = _sync(device)
        on_gpu = torch is not None and torch.cuda.is_available()
        theirs = None
        if kind == "nms":
            boxes, scores = _boxes(r, n), r.uniform(size=n).astype(np.float32)
            B, S = mc.Tensor(boxes, device=device), mc.Tensor(scores, device=device)

            def ours():
                F.nms(B, S, 0.5)
                sync()
            if on_gpu:
                try:
                    import torchvision

                    tb, ts = torch.from_numpy(boxes).cuda(), torch.from_numpy(scores).cuda()

                    def theirs():
                        torchvision.ops.nms(tb, ts, 0.5)
                        torch.cuda.synchronize()
                except Exception:  # noqa: BLE001  (torchvision missing or not importable)
                    theirs = None
        elif kind == "max_pool":
            x = r.standard_normal((8, 256, 56, 56), dtype=np.float32)
            gy = r.standard_normal((8, 256, 28, 28), dtype=np.float32)
            X, GY = mc.Tensor(x, device=device, requires_grad=True), mc.Tensor(gy, device=device)

            def ours():
                X.grad = None
                F.max_pool2d(X, 2, 2).backward(GY)
                sync()
            if on_gpu:
                tx, tgy = torch.from_numpy(x).cuda().requires_grad_(True), torch.from_numpy(gy).cuda()

                def theirs():
                    tx.grad = None
                    torch.nn.functional.max_pool2d(tx, 2, 2).backward(tgy)
                    torch.cuda.synchronize()
        else:  # roi_align
            x = r.standard_normal((2, 256, 50, 50), dtype=np.float32)
            rois = np.concatenate([r.integers(0, 2, (n, 1)).astype(np.float32), _boxes(r, n)], 1)
            X, R = mc.Tensor(x, device=device), mc.Tensor(rois, device=device)

            def ours():
                F.roi_align(X, R, (7, 7), spatial_scale=1 / 16, sampling_ratio=2, aligned=True)
                sync()
            if on_gpu:
                try:
                    import torchvision

                    tx, tr = torch.from_numpy(x).cuda(), torch.from_numpy(rois).cuda()

                    def theirs():
                        torchvision.ops.roi_align(tx, tr, (7, 7), 1 / 16, 2, True)
                        torch.cuda.synchronize()
                except Exception:  # noqa: BLE001
                    theirs = None
        return ours, theirs

    names = {"nms": f"nms {n} boxes iou 0.5", "max_pool": "max_pool2d fwd+bwd 8x256x56x56 k2 s2",
             "roi_align": f"roi_align fwd {n} rois on 2x256x50x50 -> 7x7"}
    return Case(kind, f"{names[kind]} [{device}]", None, make)


def gpu_suite(quick=False, device="cuda"):
    """The ``--device cuda`` rows: every conv layer fwd and fwd+bwd with TF32 off and on, the
    forward of every non-depthwise layer by the hand-written implicit GEMM (TF32 off: it uses
    FP32 FMAs), then pooling, RoI align and NMS (``quick``: two layers, smaller RoI/NMS counts)."""
    layers = CONV_LAYERS[:1] + CONV_LAYERS[-1:] if quick else CONV_LAYERS
    cases = [gpu_conv_case(layer, backward, tf32, device)
             for layer in layers for backward in (False, True) for tf32 in (False, True)]
    cases += [gpu_conv_case(layer, False, False, device, algorithm="implicit_gemm")
              for layer in layers if not (layer[-1] == layer[1] and layer[-1] > 1)]
    cases.append(gpu_op_case("max_pool", device))
    cases.append(gpu_op_case("roi_align", device, 200 if quick else 2000))
    cases.append(gpu_op_case("nms", device, 1000 if quick else 10000))
    return cases
