"""The fully connected layer on the CPU: its GEMMs split over the task pool.

``y = x Wᵀ + b`` with x (R, in), W (out, in), b (out,):

- ``linear_forward``:   y[:, o0:o1] = x @ W[o0:o1]ᵀ (+ b[o0:o1])   tasks: chunks of output features
- ``linear_backward``:  gx[:, i0:i1] = gy @ W[:, i0:i1]             tasks: chunks of input features
                        gW[o0:o1] = gy[:, o0:o1]ᵀ @ x               tasks: chunks of output features
                        gb = Σ_rows gy

Every task writes its own columns of y or gx, or its own rows of gW (no races, no reduction). Why:
NumPy's OpenBLAS runs on one thread here (``_threads.py``: our pool owns the cores), and a layer
with a large weight is bound by reading it: VGG-11's first classifier layer (4096 × 25088, 411 MB
of float32) at batch 8 took 62 ms forward on one thread; split over the pool both cores stream it.
Small layers (under :data:`MIN_SPLIT_ELEMS` weight elements) stay one GEMM on the calling thread.
"""
import numpy as np

from ._threads import NUM_THREADS, run_tasks, task_ranges

KERNELS = ("linear_forward", "linear_backward")

#: a weight of fewer elements is one GEMM (1 Mi elements: 4 MiB of float32)
MIN_SPLIT_ELEMS = 1 << 20


def _split(W):
    return W.size >= MIN_SPLIT_ELEMS and NUM_THREADS > 1


def linear_forward(x, W, b=None):
    """y (R, out) = x (R, in) @ Wᵀ (+ b)."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    y = np.empty((x.shape[0], W.shape[0]), dtype=np.result_type(x, W))
    if not _split(W):
        np.matmul(x, W.T, out=y)
        if b is not None:
            y += b
        return y

    def task(chunk, _):
        o0, o1 = chunk
        out = y[:, o0:o1]
        np.matmul(x, W[o0:o1].T, out=out)
        if b is not None:
            out += b[o0:o1]

    run_tasks(task, task_ranges(W.shape[0], 64))
    return y


def linear_backward(x, W, gy, needs=(True, True, True)):
    """``(gx, gW, gb)`` wanted by ``needs`` (None for the others): gx (R, in) = gy @ W,
    gW (out, in) = gyᵀ @ x, gb (out,) = Σ_rows gy."""
    want_gx, want_gw, want_gb = needs
    x, W, gy = np.ascontiguousarray(x), np.ascontiguousarray(W), np.ascontiguousarray(gy)
    gb = gy.sum(axis=0) if want_gb else None
    if not _split(W):
        return (gy @ W if want_gx else None), (gy.T @ x if want_gw else None), gb
    gx = np.empty((gy.shape[0], W.shape[1]), dtype=gy.dtype) if want_gx else None
    gW = np.empty(W.shape, dtype=gy.dtype) if want_gw else None
    tasks = ([("gx",) + c for c in task_ranges(W.shape[1], 256)] if want_gx else []) + \
            ([("gW",) + c for c in task_ranges(W.shape[0], 64)] if want_gw else [])

    def task(t, _):
        what, a, z = t
        if what == "gx":
            np.matmul(gy, W[:, a:z], out=gx[:, a:z])
        else:
            np.matmul(gy[:, a:z].T, x, out=gW[a:z])

    run_tasks(task, tasks)
    return gx, gW, gb
