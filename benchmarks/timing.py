"""Timing helpers: warm-up excluded, median of repetitions, and the machine's measured peak.

Every row is timed the same way for minicnn and for PyTorch, in the same process and run:
``warmup`` untimed calls (Numba compilation, workspace allocation, caches), then ``reps``
timed calls; the median is reported. ``reps`` grows for fast calls so that each row takes
about ``budget_s`` seconds.
"""
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


def measure_peak_gflops(n=2048, reps=5):
    """The machine's practical float32 peak: GFLOP/s of a large sgemm (``2n³`` flops) through
    NumPy's BLAS, the best of ``reps``. (An FMA loop gives the theoretical peak; a large sgemm
    is what a convolution built on GEMM can hope to reach.)"""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9
