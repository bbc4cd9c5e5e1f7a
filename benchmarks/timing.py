"""Timing helpers: warm-up excluded, median of repetitions, and the machine's measured peak.

Every row is timed the same way for minicnn and for PyTorch, in the same process and run:
``warmup`` untimed calls (Numba compilation, workspace allocation, caches), then ``reps``
timed calls; the median is reported. ``reps`` grows for fast calls so that each row takes
about ``budget_s`` seconds.
"""
import json
import os
import platform
import statistics
import time

import numpy as np


def time_call(fn, warmup=1, min_reps=3, max_reps=50, budget_s=1.0):
    """Median seconds of ``fn()`` (and the number of timed repetitions)."""
    for _ in range(warmup):
        fn()
    times = []
    t_start = time.perf_counter()
    while len(times) < max_reps:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_reps and time.perf_counter() - t_start > budget_s:
            break
    return statistics.median(times), len(times)


def time_pair(ours, theirs, warmup=2, min_reps=5, max_reps=50, budget_s=2.0):
    """Medians of ``ours()`` and ``theirs()`` timed *alternately* (one call of each per round),
    so that both see the same machine load; returns (our median s, their median s or None, rounds).
    On a shared machine whose load changes by the second this is the only fair comparison."""
    if theirs is None:
        t, n = time_call(ours, warmup, min_reps, max_reps, budget_s)
        return t, None, n
    for _ in range(warmup):
        ours()
        theirs()
    t_ours, t_theirs = [], []
    t_start = time.perf_counter()
    while len(t_ours) < max_reps:
        for fn, times in ((ours, t_ours), (theirs, t_theirs)) if len(t_ours) % 2 == 0 else \
                ((theirs, t_theirs), (ours, t_ours)):  # alternate who goes first
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(t_ours) >= min_reps and time.perf_counter() - t_start > budget_s:
            break
    return statistics.median(t_ours), statistics.median(t_theirs), len(t_ours)


def measure_peak_gflops(n=2048, reps=5):
    """The machine's practical float32 peak: GFLOP/s of large sgemms (``2n³`` flops each), one
    per core, run at once on minicnn's task pool with single-threaded OpenBLAS (the way the
    convolutions use the BLAS); the best of ``reps``. (An FMA loop gives the theoretical peak;
    a large sgemm is what a convolution built on GEMM can hope to reach.)"""
    from minicnn.kernels.cpu._threads import NUM_THREADS, run_tasks

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    outs = [np.empty((n, n), dtype=np.float32) for _ in range(NUM_THREADS)]

    def gemm(i, _):
        np.matmul(a, b, out=outs[i])

    run_tasks(gemm, range(NUM_THREADS))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        run_tasks(gemm, range(NUM_THREADS))
        best = min(best, time.perf_counter() - t0)
    return NUM_THREADS * 2 * n ** 3 / best / 1e9


def write_results(result, name, path, header, format_row):
    """Write ``result`` as JSON to ``path`` (default ``benchmarks/results/<name>.json``) and print the
    Markdown table of its rows; returns the path."""
    if path is None:
        out_dir = os.path.join(os.path.dirname(__file__), "results")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print()
    print(header)
    for r in result["rows"]:
        print(format_row(r))
    print(f"\nJSON: {path}; {result['seconds']:.0f} s")
    return path


def machine_line():
    """``x86_64, 2 cores, load average 0.3; OpenBLAS kernel SkylakeX (OPENBLAS_CORETYPE unset)``: the
    start of every benchmark's "machine:" line. The OpenBLAS kernel family matters: where the
    environment sets ``OPENBLAS_CORETYPE`` to an older family (some machines do, for old OpenBLAS
    builds that failed on newer CPUs), NumPy's sgemm runs at that family's speed (AVX2 "Haswell":
    about half of "SkylakeX" on an AVX-512 CPU, measured here), and every GEMM-bound row with it."""
    from minicnn.kernels.cpu._threads import blas_core_name

    forced = os.environ.get("OPENBLAS_CORETYPE")
    setting = f"OPENBLAS_CORETYPE={forced}" if forced else "OPENBLAS_CORETYPE unset"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f}; OpenBLAS kernel {blas_core_name() or 'unknown'} ({setting})")
