"""Profile one training step of a model from ``minicnn.models``, op by op.

    python benchmarks/profile_models.py --model resnet18 --batch 8 --size 32
    python benchmarks/profile_models.py --model mobilenet_v2 --sort-by cpu_time_total --shapes
    python benchmarks/profile_models.py --model fcn1d --size 128 --channels 1 --trace /tmp/step.json

One warm-up step (Numba compilation, workspace allocation), then one profiled step: forward,
cross-entropy loss, backward, SGD step (lr 0.01, momentum 0.9), each inside a
``record_function`` range ("forward", "loss", "backward", "optimizer.step"). Prints the
``minicnn.profiler`` table: per op, forward and backward calls and times, self time, total and
share of the step's wall time. The ranges' rows contain the ops run inside them; the optimizer
updates raw arrays, so its range holds time that no op row shows.
"""
import argparse
import inspect
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import minicnn as mc  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import optim  # noqa: E402
from minicnn.models import MODELS  # noqa: E402
from minicnn.profiler import SORT_KEYS, profile, record_function  # noqa: E402

ONE_D = {"fcn1d", "resnet1d", "inception1d"}  # (N, C, L) inputs


def build(name, num_classes, channels, small_input):
    """The model ``name`` with ``num_classes`` outputs; ``in_channels``/``small_input`` are passed
    when its constructor takes them."""
    if name not in MODELS:
        raise ValueError(f"profile_models: unknown --model {name!r}; expected one of {', '.join(sorted(MODELS))}")
    ctor = MODELS[name]
    params = inspect.signature(ctor).parameters
    accepts_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kw = {"num_classes": num_classes}
    if channels is not None:
        kw["in_channels"] = channels
    if small_input and ("small_input" in params or accepts_kw):
        kw["small_input"] = True
    return ctor(**kw)


def train_step(model, opt, x, y):
    """forward, loss, backward, optimizer step; returns the loss value."""
    opt.zero_grad()
    with record_function("forward"):
        out = model(x)
    with record_function("loss"):
        loss = F.cross_entropy(out, y)
    with record_function("backward"):
        loss.backward()
    with record_function("optimizer.step"):
        opt.step()
    return float(loss.numpy())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet18", help=f"one of: {', '.join(sorted(MODELS))}")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=32, help="image side (length for 1-D models)")
    ap.add_argument("--channels", type=int, default=None, help="input channels (default: the model's)")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--small-input", action="store_true", help="ResNet's 3x3 stem for 32x32 images")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda-emu", "cuda"])
    ap.add_argument("--sort-by", default="self_cpu_time_total", choices=SORT_KEYS)
    ap.add_argument("--row-limit", type=int, default=20)
    ap.add_argument("--shapes", action="store_true", help="group rows by input shapes")
    ap.add_argument("--trace", default=None, help="also write a chrome://tracing JSON here")
    args = ap.parse_args(argv)

    mc.manual_seed(0)
    model = build(args.model, args.num_classes, args.channels, args.small_input).to(args.device)
    model.train()
    if args.channels is not None:
        channels = args.channels
    else:
        default = inspect.signature(MODELS[args.model]).parameters.get("in_channels")
        channels = default.default if default is not None and default.default is not inspect.Parameter.empty else 3
    spatial = (args.size,) if args.model in ONE_D else (args.size, args.size)
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((args.batch, channels) + spatial).astype(np.float32), device=args.device)
    y = mc.Tensor(rng.integers(0, args.num_classes, args.batch), device=args.device)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    t0 = time.perf_counter()
    train_step(model, opt, x, y)
    warm = time.perf_counter() - t0
    with profile(record_shapes=args.shapes, profile_memory=True) as prof:
        loss = train_step(model, opt, x, y)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"{args.model}: {n_params:,} parameters, input {tuple(x.shape)} on {args.device}; "
          f"warm-up step {warm * 1e3:.1f} ms, profiled step {prof.wall_time_ns / 1e6:.1f} ms, loss {loss:.4f}")
    print(prof.key_averages(group_by_input_shape=args.shapes).table(sort_by=args.sort_by, row_limit=args.row_limit))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"trace written to {args.trace}")


if __name__ == "__main__":
    main()
