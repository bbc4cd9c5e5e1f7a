"""Run the kernel benchmark suite: ``python -m benchmarks [--quick] [--only conv2d,nms] [--json FILE]``.

For each row: minicnn's median time, PyTorch's median time from the same run (when torch is
installed), the ratio torch_time / our_time (> 1 means minicnn is faster), GFLOP/s and the
percentage of the machine's measured peak (a large sgemm). Prints a Markdown table, writes
JSON and a bar chart of the ratios to ``benchmarks/results/``.

``--device cuda`` runs the GPU rows instead (``benchmarks/cases.py: gpu_suite``): minicnn's
``cuda`` device against PyTorch on CUDA (cuDNN), each convolution with TF32 off and on for both,
every timed call ending with a device synchronisation; the peak is a large cuBLAS sgemm (TF32
off, and on for the TF32 rows). It needs a GPU, CuPy and a CUDA build of PyTorch.
"""
import argparse
import json
import os
import time


def _torch():
    """PyTorch, imported before minicnn, with ONE OpenMP wait policy for both libraries.

    Both bundle GNU OpenMP, whose idle threads spin (for ~0.2 s) by default. On 2 cores, rows
    that alternate between the libraries would then time one library against the other's
    spinning threads. ``OMP_WAIT_POLICY=PASSIVE`` is set (unless the user set it) before either
    loads; measured here, it does not slow PyTorch (max-pool row: 13.2 vs 13.0 ms).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        return torch
    except ImportError:
        return None


_TORCH = _torch()

from .cases import gpu_suite, suite  # noqa: E402  (after torch, see above)
from .timing import machine_line, measure_peak_gflops, time_pair  # noqa: E402


_WARM_START = """
import time
t0 = time.perf_counter()
import numpy as np
import minicnn as mc
import minicnn.functional as F
x = mc.Tensor(np.ones((8, 3, 32, 32), dtype=np.float32), requires_grad=True)
w = mc.Tensor(np.ones((16, 3, 3, 3), dtype=np.float32), requires_grad=True)
F.conv2d(x, w, padding=1).sum().backward()
print(time.perf_counter() - t0)
"""


def _torchvision_version():
    """torchvision's version when it imports beside this torch, else None."""
    if _TORCH is None:
        return None
    try:
        import torchvision

        return torchvision.__version__
    except Exception:  # noqa: BLE001  (not installed, or built for another torch: no comparison)
        return None


def warm_start_seconds(runs=3):
    """Seconds for ``import minicnn`` + a first conv2d forward and backward in a fresh
    interpreter, with a warm Numba cache (a first untimed run fills the cache): the median of
    ``runs`` fresh processes."""
    import statistics
    import subprocess
    import sys

    times = []
    for _ in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", _WARM_START], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times[1:])


def measure_gpu_peak_gflops(tf32, n=8192, reps=5):
    """GFLOP/s of the best of ``reps`` cuBLAS sgemms ``n³`` through minicnn's GEMM call, TF32 off or
    on (``minicnn.backends.cuda.allow_tf32``), each timed between device synchronisations."""
    import cupy

    import minicnn as mc
    from minicnn.kernels.cuda._gemm import gemm

    be = mc.get_device("cuda").kernels.conv2d_forward.args[0]
    a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    c = cupy.empty((n, n), dtype=cupy.float32)
    saved = mc.backends.cuda.allow_tf32
    mc.backends.cuda.allow_tf32 = tf32
    try:
        gemm(be, "N", "N", a, b, c)
        best = float("inf")
        for _ in range(reps):
            cupy.cuda.Device().synchronize()
            t0 = time.perf_counter()
            gemm(be, "N", "N", a, b, c)
            cupy.cuda.Device().synchronize()
            best = min(best, time.perf_counter() - t0)
    finally:
        mc.backends.cuda.allow_tf32 = saved
    return 2.0 * n ** 3 / best / 1e9


def run_gpu(quick=False, only=None, budget_s=1.0, log=print, device="cuda"):
    """The ``--device cuda`` suite (``device="cuda-emu"`` runs the same rows on the emulator, a smoke
    test of the code path only: its times mean nothing)."""
    torch = _TORCH
    t_begin = time.perf_counter()
    if device == "cuda":
        import cupy

        peaks = {"fp32": measure_gpu_peak_gflops(False), "tf32": measure_gpu_peak_gflops(True)}
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        gpu = name.decode() if isinstance(name, bytes) else str(name)
    else:
        peaks, gpu = {"fp32": measure_peak_gflops(), "tf32": measure_peak_gflops()}, "none (cuda-emu on the CPU)"
    log(f"GPU: {gpu}; measured cuBLAS sgemm 8192³: {peaks['fp32']:.0f} GFLOP/s (TF32 off), "
        f"{peaks['tf32']:.0f} GFLOP/s (TF32 on); PyTorch "
        f"{torch.__version__ + (' CUDA ' + str(torch.version.cuda) if torch.cuda.is_available() else ' (no CUDA)') if torch else 'not installed'}")
    rows = []
    for case in gpu_suite(quick, device):
        if only and not any(o in case.name for o in only):
            continue
        ours, theirs = case.make(torch)
        t_ours, t_theirs, n_ours = time_pair(ours, theirs, warmup=2, budget_s=budget_s)
        row = dict(group=case.group, name=case.name, ours_ms=1e3 * t_ours, reps=n_ours,
                   torch_ms=1e3 * t_theirs if t_theirs else None, ratio=(t_theirs / t_ours) if t_theirs else None)
        if case.flops:
            row["gflops"] = case.flops / t_ours / 1e9
            row["pct_peak"] = 100 * row["gflops"] / peaks[getattr(case, "peak", "fp32")]
        rows.append(row)
        log(format_row(row))
    return dict(device=device, gpu=gpu, peak_gflops=peaks, torch=getattr(torch, "__version__", None),
                time=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=time.perf_counter() - t_begin, rows=rows)


def run(quick=False, only=None, budget_s=1.0, log=print):
    torch = _TORCH
    from minicnn.kernels.cpu._threads import NUM_THREADS, get_blas_threads

    t_begin = time.perf_counter()
    peak = measure_peak_gflops()
    log(f"machine: {machine_line()}; "
        f"measured peak ({NUM_THREADS} × sgemm 2048³, float32): {peak:.1f} GFLOP/s; "
        f"minicnn threads {NUM_THREADS}, OpenBLAS threads {get_blas_threads()}; "
        f"PyTorch {'%s (%d threads)' % (torch.__version__, torch.get_num_threads()) if torch else 'not installed'}")
    warm = warm_start_seconds()
    log(f"import minicnn + first conv2d fwd+bwd (warm Numba cache, fresh process): {warm:.2f} s")
    tv = _torchvision_version()
    log(f"torchvision {tv}: NMS / ROI-align rows compare with torchvision.ops" if tv else
        "torchvision not installed: NMS / ROI-align rows have no PyTorch time (the README says how to "
        "get a torch + torchvision pair that imports here)")
    rows = []
    for case in suite(quick):
        if only and not any(o in case.name for o in only):
            continue
        ours, theirs = case.make(torch)
        t_ours, t_theirs, n_ours = time_pair(ours, theirs, warmup=2, budget_s=budget_s)
        row = dict(group=case.group, name=case.name, ours_ms=1e3 * t_ours, reps=n_ours,
                   torch_ms=1e3 * t_theirs if t_theirs else None,
                   ratio=(t_theirs / t_ours) if t_theirs else None)
        if case.flops:
            row["gflops"] = case.flops / t_ours / 1e9
            row["pct_peak"] = 100 * row["gflops"] / peak
        rows.append(row)
        log(format_row(row))
    return dict(peak_gflops=peak, torch=getattr(torch, "__version__", None), torchvision=tv, cores=os.cpu_count(),
                warm_start_s=warm, threads=NUM_THREADS, blas_threads=get_blas_threads(), load_average=os.getloadavg(),
                time=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=time.perf_counter() - t_begin, rows=rows)


HEADER = "| case | minicnn ms | PyTorch ms | speed vs PyTorch | GFLOP/s | % peak |\n|---|---:|---:|---:|---:|---:|"


def format_row(r):
    torch_ms = f"{r['torch_ms']:.2f}" if r.get("torch_ms") else "n/a"
    ratio = f"{r['ratio']:.2f}×" if r.get("ratio") else "n/a"
    gf = f"{r['gflops']:.1f}" if r.get("gflops") else ""
    pct = f"{r['pct_peak']:.0f}%" if r.get("pct_peak") else ""
    return f"| {r['name']} | {r['ours_ms']:.2f} | {torch_ms} | {ratio} | {gf} | {pct} |"


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r.get("ratio")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2))
    ax.barh([r["name"] for r in rows][::-1], [r["ratio"] for r in rows][::-1],
            color=["tab:green" if r["ratio"] >= 1 else "tab:red" for r in rows][::-1])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlabel("PyTorch time / minicnn time (> 1: minicnn faster)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short subset")
    p.add_argument("--only", default=None, help="comma-separated substrings of case names")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timing per row, both libraries together (default 2, --quick 0.5)")
    p.add_argument("--json", default=None)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"),
                   help="cpu (default): the CPU suite; cuda: the GPU suite against PyTorch CUDA; "
                        "cuda-emu: the GPU suite's code path on the emulator (a smoke test, no timings)")
    a = p.parse_args(argv)
    print(HEADER.split("\n")[0].replace("| case", "| (rows print as they finish) case"))
    budget = a.budget if a.budget is not None else (0.5 if a.quick else 2.0)
    only = a.only.split(",") if a.only else None
    result = run(a.quick, only, budget) if a.device == "cpu" else run_gpu(a.quick, only, budget, device=a.device)
    out_dir = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out_dir, exist_ok=True)
    default_name = "latest.json" if a.device == "cpu" else f"latest_{a.device}.json"
    path = a.json or os.path.join(out_dir, default_name)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    png = plot(result, os.path.join(out_dir, "latest.png" if a.device == "cpu" else f"latest_{a.device}.png"))
    print()
    print(HEADER)
    for r in result["rows"]:
        print(format_row(r))
    print(f"\nJSON: {path}" + (f"; plot: {png}" if png else "") + f"; {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
