"""Run the kernel benchmark suite: ``python -m benchmarks [--quick] [--only conv2d,nms] [--json FILE]``.

For each row: minicnn's median time, PyTorch's median time from the same run (when torch is
installed), the ratio torch_time / our_time (> 1 means minicnn is faster), GFLOP/s and the
percentage of the machine's measured peak (a large sgemm). Prints a Markdown table, writes
JSON and a bar chart of the ratios to ``benchmarks/results/``.
"""
import argparse
import json
import os
import platform
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

from .cases import suite  # noqa: E402  (after torch, see above)
from .timing import measure_peak_gflops, time_pair  # noqa: E402


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


def run(quick=False, only=None, budget_s=1.0, log=print):
    torch = _TORCH
    from minicnn.kernels.cpu._threads import NUM_THREADS, get_blas_threads

    t_begin = time.perf_counter()
    peak = measure_peak_gflops()
    log(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; measured peak ({NUM_THREADS} × sgemm 2048³, float32): {peak:.1f} GFLOP/s; "
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
    a = p.parse_args(argv)
    print(HEADER.split("\n")[0].replace("| case", "| (rows print as they finish) case"))
    budget = a.budget if a.budget is not None else (0.5 if a.quick else 2.0)
    result = run(a.quick, a.only.split(",") if a.only else None, budget)
    out_dir = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out_dir, exist_ok=True)
    path = a.json or os.path.join(out_dir, "latest.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    png = plot(result, os.path.join(out_dir, "latest.png"))
    print()
    print(HEADER)
    for r in result["rows"]:
        print(format_row(r))
    print(f"\nJSON: {path}" + (f"; plot: {png}" if png else "") + f"; {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
