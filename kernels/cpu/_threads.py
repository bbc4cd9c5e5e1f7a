"""Thread-pool settings for the CPU kernels.

On small machines (2 cores) Numba's and OpenBLAS's pools spin while waiting and fight over the
cores (one measured case: 423 ms vs 22 ms). We choose Numba's ``workqueue``/``omp`` layer with a
passive wait policy unless the user already chose, and keep OpenBLAS from spinning.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")
