"""Detector inference benchmark: ``python -m benchmarks detection [--quick] [--only retinanet,ssd] [--size 320]``.

Each row is one torchvision detector and the same architecture in minicnn, both holding the SAME
weights (torchvision's random init, ``weights=None``, loaded into minicnn with ``load_state_dict``),
timed on the same single image in eval mode under ``no_grad``: ``model([image])`` end to end, i.e.
the transform (normalisation; the image is already at the model's size, so no resampling),
backbone, heads, anchors, decoding, NMS and (Mask R-CNN) mask pasting. The image is a real one: a
held-out digit canvas (``minicnn.data.digit_detection``) at ``--size`` pixels, repeated on three
channels.

Before timing, the detections of both are compared: the same number, and the 20 best scores equal
within 1e-3 (sorted, so that exactly tied scores may swap boxes). Random initial weights give class
scores near ``1/num_classes``; as in the parity tests, the final classifier's weights are scaled so
that scores spread and detections survive the score threshold (``_spread_scores``).

Timing alternates minicnn and PyTorch (``timing.time_pair``): 1 warm-up call each, then the median
of 5 calls (3 with ``--quick``), ``OMP_WAIT_POLICY=PASSIVE``, PyTorch on as many threads as minicnn
(the CPUs the process may run on, or ``MINICNN_NUM_THREADS``; e.g. ``taskset -c 1`` gives one each).
Ratio = PyTorch ms / minicnn ms (> 1: minicnn faster). Needs torchvision (the bench-vision venv of
benchmarks/README.md); without it nothing runs. Prints a Markdown table and writes
``benchmarks/results/detection.json``.
"""
import argparse
import os
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see run._torch: one wait policy for both libraries

TOP = 20          # best scores compared before timing


def _builders(size):
    """name -> (label, minicnn constructor, torchvision constructor name, keyword arguments of both)."""
    from minicnn import nn
    from minicnn.models import detection as det

    rows = {
        "faster_rcnn": ("Faster R-CNN ResNet-50-FPN", det.fasterrcnn_resnet50_fpn, "fasterrcnn_resnet50_fpn",
                        dict(min_size=size, max_size=size)),
        "mask_rcnn": ("Mask R-CNN ResNet-50-FPN", det.maskrcnn_resnet50_fpn, "maskrcnn_resnet50_fpn",
                      dict(min_size=size, max_size=size)),
        "retinanet": ("RetinaNet ResNet-50-FPN", det.retinanet_resnet50_fpn, "retinanet_resnet50_fpn",
                      dict(min_size=size, max_size=size)),
    }
    ssd300 = getattr(det, "ssd300_vgg16", None)
    if ssd300 is not None:
        rows["ssd300"] = ("SSD300 VGG-16", ssd300, "ssd300_vgg16", {})
    # torchvision builds these with BatchNorm2d when no weights are given; ours the same
    for name in ("faster_rcnn", "mask_rcnn", "retinanet"):
        rows[name][3]["norm_layer"] = nn.BatchNorm2d
    return rows


def _spread_scores(torch, model):
    """Random-init class scores that pass the score thresholds, as a trained net's would: the R-CNNs'
    classifier is scaled by 0.2 as in their parity tests (100 detections survive); RetinaNet's prior
    bias gives sigmoid 0.01, under its 0.05 threshold (bias −2: ≈ 0.12)."""
    with torch.no_grad():
        if hasattr(model, "roi_heads"):
            model.roi_heads.box_predictor.cls_score.weight.mul_(0.2)
        if hasattr(getattr(getattr(model, "head", None), "classification_head", None), "cls_logits"):
            model.head.classification_head.cls_logits.weight.mul_(10.0)
            model.head.classification_head.cls_logits.bias.fill_(-2.0)


def _image(size, torch):
    """A held-out digit canvas at ``size`` px on three channels, in [0, 1]: (minicnn Tensor, torch tensor)."""
    import minicnn as mc
    from minicnn.data.detection import digit_detection

    canvas = digit_detection(1, canvas=size, split="test", seed=1).images[0]
    img = np.repeat(canvas.astype(np.float32), 3, axis=0)
    return mc.Tensor(img), torch.from_numpy(img.copy())


def _import_torchvision_ok():
    """Whether torchvision imports beside this torch."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (absent, or built for another torch)
        return False
    return True


def _their_kwargs(kw):
    return {k: v for k, v in kw.items() if k != "norm_layer"}


def check_detections(name, ours, theirs):
    """ValueError unless both give the same number of detections and equal best scores."""
    a = np.sort(np.asarray(ours["scores"]))[::-1][:TOP]
    b = np.sort(theirs["scores"].numpy())[::-1][:TOP]
    if len(ours["scores"]) != len(theirs["scores"]):
        raise ValueError(f"detection benchmark {name}: minicnn gives {len(ours['scores'])} detections, "
                         f"torchvision {len(theirs['scores'])}")
    if a.size and not np.allclose(a, b, atol=1e-3):
        raise ValueError(f"detection benchmark {name}: best scores differ by up to {np.max(np.abs(a - b)):.3g}")
    return len(a)


def run_row(name, label, ours_fn, tv_name, kw, size, torch, tv, reps, log=print):
    """Check, then alternating eval timings; returns the row's result dict."""
    from .timing import time_pair

    import minicnn as mc
    from minicnn.autograd import no_grad

    torch.manual_seed(0)
    theirs = getattr(tv.models.detection, tv_name)(weights=None, weights_backbone=None, **_their_kwargs(kw)).eval()
    _spread_scores(torch, theirs)
    ours = ours_fn(**kw)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x_ours, x_theirs = _image(300 if name == "ssd300" else size, torch)

    def ours_call():
        with no_grad():
            return ours([x_ours])[0]

    def their_call():
        with torch.no_grad():
            return theirs([x_theirs])[0]

    compared = check_detections(name, ours_call(), their_call())
    t_o, t_t, n = time_pair(ours_call, their_call, warmup=1, min_reps=reps, max_reps=reps, budget_s=0.0)
    side = 300 if name == "ssd300" else size
    params = sum(p.size for p in ours.parameters())
    r = dict(name=name, network=label, input=f"{side}×{side}", parameters=params, ours_ms=1e3 * t_o,
             torch_ms=1e3 * t_t, ratio=t_t / t_o, reps=n, detections=len(ours_call()["scores"]),
             scores_compared=compared)
    log(format_row(r))
    mc.manual_seed(0)
    return r


HEADER = ("| detector | input | parameters | minicnn ms/image | torchvision ms/image | ratio (torchvision/minicnn) "
          "| detections |\n|---|---|---:|---:|---:|---:|---:|")


def format_row(r):
    if r.get("error"):
        return f"| {r['network']} | {r['input']} | | ERROR: {r['error']} | | | |"
    return (f"| {r['network']} | {r['input']} | {r['parameters']:,} | {r['ours_ms']:.0f} | {r['torch_ms']:.0f} "
            f"| {r['ratio']:.2f}× | {r['detections']} |")


def run(size=320, quick=False, only=None, log=print):
    """Run the rows (all, or those whose name contains one of ``only``); {} rows without torchvision."""
    from .models import _import_torch
    from minicnn.kernels.cpu._threads import NUM_THREADS

    torch, tv = _import_torch()
    torch.set_num_threads(NUM_THREADS)     # the same thread count as minicnn (which follows the CPU affinity)
    t_begin = time.perf_counter()
    from .timing import machine_line

    log(f"machine: {machine_line()}; "
        f"minicnn threads {NUM_THREADS}; PyTorch {torch.__version__} "
        f"({torch.get_num_threads()} threads); torchvision {getattr(tv, '__version__', 'not importable')}")
    rows = []
    if tv is None:
        log("torchvision does not import beside this torch: the detection rows need the bench-vision venv "
            "(torch + a matching torchvision, see benchmarks/README.md); nothing to run")
    reps = 3 if quick else 5
    for name, (label, ours_fn, tv_name, kw) in (_builders(size).items() if tv is not None else ()):
        if only and not any(o in name for o in only):
            continue
        try:
            rows.append(run_row(name, label, ours_fn, tv_name, kw, size, torch, tv, reps, log))
        except Exception as e:  # noqa: BLE001  (a failing row is reported, the others still run)
            r = dict(name=name, network=label, input=f"{size}×{size}", error=f"{type(e).__name__}: {e}")
            rows.append(r)
            log(format_row(r))
    return dict(torch=torch.__version__, torchvision=getattr(tv, "__version__", None), cores=os.cpu_count(),
                threads=NUM_THREADS, load_average=os.getloadavg(), time=time.strftime("%Y-%m-%d %H:%M:%S"),
                reps=reps, size=size, seconds=time.perf_counter() - t_begin, rows=rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks detection", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=320, help="image side for the R-CNNs and RetinaNet (SSD300: 300)")
    p.add_argument("--quick", action="store_true", help="3 repetitions")
    p.add_argument("--only", default=None, help="comma-separated substrings of: faster_rcnn, mask_rcnn, "
                   "retinanet, ssd300")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    result = run(a.size, a.quick, a.only.split(",") if a.only else None)
    from .timing import write_results

    write_results(result, "detection", a.json, HEADER, format_row)
    return result
