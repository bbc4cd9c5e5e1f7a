"""How much of a whole network's time is convolution: ``python -m benchmarks convs [--only resnet18_32]``.

For each row of ``benchmarks models`` and each mode (``train``, ``eval``):

1. the whole step of both libraries, timed alternately as in ``benchmarks models``;
2. every convolution the step calls (``F.conv2d`` / ``F.conv_transpose2d`` of minicnn, recorded
   with their shapes and arguments during one step), each distinct one timed *alone* in both
   libraries, alternately, on random data of its shapes: eval = the forward under ``no_grad``,
   train = forward + backward (gradients of input, weight and bias; ``y.backward(gy)``);
3. the sums over the step's calls, and the rest: step − convolutions.

It prints, per row and mode, the step (ours / PyTorch), the convolutions' sum (ours / PyTorch,
their ratio, their share of our step) and the rest (ours / PyTorch). A row whose convolutions
take most of its time and run at about PyTorch's speed cannot beat PyTorch by much however fast
the rest is: that is the measurement behind "bound by convolutions" in the README.

The rest includes what the layer timings miss (batch norm, activations, pooling, the loss, the
optimizer, autograd) and what they add (a convolution alone does not find its input in cache as
it does inside the network, and the network's first layer needs no input gradient): read it as
an estimate.
"""
import argparse
import os
import sys

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import models as M  # noqa: E402
from .timing import time_pair  # noqa: E402


def record_convolutions(step):
    """``{call: count}`` of the convolutions that ``step()`` runs, where ``call`` is
    ``(kind, x shape, weight shape, has bias, stride, padding, output_padding, dilation, groups)``
    (kind "conv2d" or "conv_transpose2d"; minicnn's functions, patched for the call)."""
    import minicnn.functional as F

    calls = {}
    originals = {"conv2d": F.conv2d, "conv_transpose2d": F.conv_transpose2d}

    def recorder(kind):
        def call(x, weight, bias=None, stride=1, padding=0, *args, **kw):
            names = ("dilation", "groups") if kind == "conv2d" else ("output_padding", "groups", "dilation")
            rest = dict(zip(names, args), **kw)
            out_pad, groups, dilation = rest.get("output_padding", 0), rest.get("groups", 1), rest.get("dilation", 1)
            key = (kind, tuple(x.shape), tuple(weight.shape), bias is not None, _pair(stride), _pair(padding),
                   _pair(out_pad), _pair(dilation), int(groups))
            calls[key] = calls.get(key, 0) + 1
            return originals[kind](x, weight, bias, stride, padding, *args, **kw)
        return call

    F.conv2d, F.conv_transpose2d = recorder("conv2d"), recorder("conv_transpose2d")
    try:
        step()
    finally:
        F.conv2d, F.conv_transpose2d = originals["conv2d"], originals["conv_transpose2d"]
    return calls


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _layer_closures(torch, call, mode, seed=0):
    """(ours, theirs) closures running one recorded convolution alone in ``mode``."""
    import minicnn as mc
    import minicnn.functional as MF

    kind, xs, ws, has_bias, stride, padding, out_pad, dilation, groups = call
    r = np.random.default_rng(seed)
    x, w = r.standard_normal(xs, dtype=np.float32), r.standard_normal(ws, dtype=np.float32) * 0.05
    b_len = ws[0] if kind == "conv2d" else ws[1] * groups
    b = r.standard_normal(b_len, dtype=np.float32) if has_bias else None
    if kind == "conv2d":
        def ours_fn(X, W, B):
            return MF.conv2d(X, W, B, stride, padding, dilation, groups)

        def theirs_fn(X, W, B):
            return torch.nn.functional.conv2d(X, W, B, stride, padding, dilation, groups)
    else:
        def ours_fn(X, W, B):
            return MF.conv_transpose2d(X, W, B, stride, padding, out_pad, groups, dilation)

        def theirs_fn(X, W, B):
            return torch.nn.functional.conv_transpose2d(X, W, B, stride, padding, out_pad, groups, dilation)
    train = mode == "train"
    ox, ow = mc.tensor(x, requires_grad=train), mc.tensor(w, requires_grad=train)
    ob = None if b is None else mc.tensor(b, requires_grad=train)
    tx, tw = torch.tensor(x, requires_grad=train), torch.tensor(w, requires_grad=train)
    tb = None if b is None else torch.tensor(b, requires_grad=train)
    gy_shape = tuple(ours_fn(ox.detach(), ow.detach(), None if ob is None else ob.detach()).shape)
    gy = r.standard_normal(gy_shape, dtype=np.float32)
    ogy, tgy = mc.tensor(gy), torch.from_numpy(gy)

    if not train:   # each returns y
        def ours():
            with mc.no_grad():
                return ours_fn(ox, ow, ob)

        def theirs():
            with torch.no_grad():
                return theirs_fn(tx, tw, tb)
        return ours, theirs

    def ours():         # each returns the gradients of x, w (and b)
        for t in (ox, ow, ob):
            if t is not None:
                t.grad = None
        ours_fn(ox, ow, ob).backward(ogy)
        return [t.grad for t in (ox, ow, ob) if t is not None]

    def theirs():
        for t in (tx, tw, tb):
            if t is not None:
                t.grad = None
        theirs_fn(tx, tw, tb).backward(tgy)
        return [t.grad for t in (tx, tw, tb) if t is not None]
    return ours, theirs


def breakdown(row, torch, tv, reps=5, log=print):
    """Per mode: the step's and the convolutions' times of both libraries (dicts, ms)."""
    import minicnn as mc

    torch.manual_seed(0)
    mc.manual_seed(0)
    theirs_model = M._theirs(row.name, torch, tv)
    ours_model = M._ours(row.name)
    ours_model.load_state_dict(theirs_model.state_dict())
    x, y = M._data(row)
    o_train, o_eval = M._our_steps(ours_model, x, y)
    t_train, t_eval = M._their_steps(torch, theirs_model, x, y)
    out = []
    for mode, ofn, tfn in (("eval", o_eval, t_eval), ("train", o_train, t_train)):
        step_o, step_t, _ = time_pair(ofn, tfn, warmup=1, min_reps=reps, max_reps=reps, budget_s=0.0)
        calls = record_convolutions(ofn)
        conv_o = conv_t = 0.0
        for call, count in calls.items():
            lo, lt = _layer_closures(torch, call, mode)
            a, b, _ = time_pair(lo, lt, warmup=1, min_reps=reps, max_reps=reps, budget_s=0.0)
            conv_o += count * a
            conv_t += count * b
        r = dict(name=row.name, network=row.network, mode=mode, step_ours_ms=1e3 * step_o,
                 step_torch_ms=1e3 * step_t, conv_ours_ms=1e3 * conv_o, conv_torch_ms=1e3 * conv_t,
                 conv_calls=sum(calls.values()), conv_kinds=len(calls))
        out.append(r)
        log(format_row(r))
    return out


HEADER = ("| network | mode | step ms (ours / PyTorch) | step ratio | convolutions ms (ours / PyTorch) | "
          "conv ratio | conv share of our step | rest ms (ours / PyTorch) | rest ratio |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|")


def format_row(r):
    rest_o, rest_t = r["step_ours_ms"] - r["conv_ours_ms"], r["step_torch_ms"] - r["conv_torch_ms"]
    rest_ratio = f"{rest_t / rest_o:.2f}×" if rest_o > 0 and rest_t > 0 else "n/a"
    return (f"| {r['network']} | {r['mode']} | {r['step_ours_ms']:.1f} / {r['step_torch_ms']:.1f} | "
            f"{r['step_torch_ms'] / r['step_ours_ms']:.2f}× | {r['conv_ours_ms']:.1f} / {r['conv_torch_ms']:.1f} | "
            f"{r['conv_torch_ms'] / r['conv_ours_ms']:.2f}× | {r['conv_ours_ms'] / r['step_ours_ms']:.0%} | "
            f"{rest_o:.1f} / {rest_t:.1f} | {rest_ratio} |")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks convs", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated substrings of row names (benchmarks models)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each step and layer (median)")
    args = ap.parse_args(argv)
    torch, tv = M._import_torch()  # on os.cpu_count() threads
    wanted = None if args.only is None else [s for s in args.only.split(",") if s]
    rows = [r for r in M.ROWS if (wanted is None or any(w in r.name for w in wanted)) and (tv or not r.needs_tv)]
    if not rows:
        sys.exit("benchmarks convs: no row selected (torchvision is needed for all but unet_64 and dcgan_32)")
    print(HEADER, flush=True)
    for row in rows:
        breakdown(row, torch, tv, reps=args.reps, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
