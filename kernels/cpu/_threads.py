"""Thread-pool settings for the CPU kernels, and the small task pool the convolutions run on.

Why (measured on the 2-core shared machines, see DESIGN.md "Performance knobs"):

- OpenBLAS's level-3 threads work in lockstep (they share packed panels and spin-wait for one
  another), so when another process holds one of the two cores a 2-thread sgemm runs at *half*
  the 1-thread speed (gemm 1024³: 22 ms with 1 thread, 45–49 ms with 2 on a loaded machine), and
  Numba's and OpenBLAS's pools spinning against each other once cost 423 ms instead of 22 ms.
- Independent single-threaded GEMMs on our own threads have no such coupling: a thread that
  loses its core just takes fewer tasks. On a quiet machine they use both cores; on a loaded one
  they degrade to about the 1-thread speed instead of collapsing.

Defaults (each overridable by an environment variable set *before* ``import minicnn``):

==========================  =========  ========================================================
variable                    default    effect
==========================  =========  ========================================================
``MINICNN_BLAS_THREADS``    ``1``      threads of NumPy's OpenBLAS (set through its C API with
                                       ctypes). Not applied when ``OPENBLAS_NUM_THREADS`` or
                                       ``OMP_NUM_THREADS`` is set (then OpenBLAS obeys those).
``MINICNN_NUM_THREADS``     CPU count  workers of :func:`run_tasks` (the conv kernels' pool).
``OMP_WAIT_POLICY``         PASSIVE    Numba's ``omp`` layer (GNU libgomp) sleeps instead of
                                       spinning between parallel regions.
``KMP_BLOCKTIME``           ``0``      the same for Intel's OpenMP, if Numba picks it.
``OPENBLAS_THREAD_TIMEOUT`` ``1``      OpenBLAS workers go to sleep almost at once.
``MINICNN_MALLOC_TUNING``   ``1``      glibc malloc keeps freed blocks for reuse (``0``: leave
                                       malloc alone; also left alone when ``MALLOC_MMAP_THRESHOLD_``
                                       or ``MALLOC_TRIM_THRESHOLD_`` is set), see below.
==========================  =========  ========================================================

Fresh memory costs a page fault per 4 KiB page on first touch (~1.6 µs here). Every op returns a
new array, and glibc's malloc, left to itself, hands blocks of a few MiB back to the kernel when
they are freed (``mmap``/``munmap``, or trimming the heap top), so the next step's arrays of the
same size fault in again. With ``M_MMAP_THRESHOLD`` = 64 MiB and ``M_TRIM_THRESHOLD`` = 256 MiB
(``mallopt``, at import) blocks below 64 MiB come from the heap and stay there for reuse: the
seed-CNN training step (batch 64) took 26–28 ms instead of 31–33, its ReLU backward 1.0–1.2 ms
instead of 2.6–3.1 (measured). The price: up to 256 MiB of freed memory may stay with the process.

:func:`run_tasks` is the pool: persistent Python threads (they sleep on a lock, never spin)
that pull task indices from a shared iterator (dynamic scheduling). The work inside a task is a
``nogil`` Numba kernel or a NumPy GEMM, both of which release the GIL.

**Keep the Python inside a task short, and its calls few.** Between its kernels a task runs
Python with the GIL held; a thread coming back from a kernel or GEMM waits for the GIL while the
other holds it, and a thread put to sleep wakes late here (a pool helper starts 0.05–0.25 ms
after its semaphore is released, now and then ms; measured).
Measured: the F(2×2) input transform of one 16×16 image (13 µs) run as tasks that each also
took a workspace view the old way (``np.prod`` + view + reshape, 4 µs with the GIL held) ran at
0.56× on two threads what it ran on one; one transform call per image and ~4 µs per workspace
view had (64,32,16,16)→64 scale 1.27–1.65× on two threads. With one transform call per task (all
its images in a loop inside Numba) and workspace views kept per shape (``Workspace.get``): that
layer's forward 15 % and backward 11 % faster (2.6–2.7 vs 3.1–3.3 ms, 5.6–5.8 vs 6.3–6.8 ms,
old and new alternating in fresh processes). A Numba call itself costs ~0.4 µs of dispatch.
"""
import ctypes
import functools
import os
import threading

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")

import numpy as np  # noqa: E402  (after the environment is set)

_SET_THREADS_SYMBOLS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                        "openblas_set_num_threads64_", "openblas_set_num_threads")
_GET_THREADS_SYMBOLS = tuple(s.replace("set_", "get_") for s in _SET_THREADS_SYMBOLS)


@functools.lru_cache(maxsize=None)
def _openblas_library():
    """ctypes handle of the OpenBLAS NumPy loaded (found in /proc/self/maps), or None."""
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure the BLAS is loaded
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(lib, s) for s in _SET_THREADS_SYMBOLS):
            return lib
    return None


def _blas_function(symbols):
    lib = _openblas_library()
    for name in symbols if lib is not None else ():
        if hasattr(lib, name):
            return getattr(lib, name)
    return None


_CORENAME_SYMBOLS = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename")


def blas_core_name():
    """The CPU kernel family NumPy's OpenBLAS runs (``"Haswell"``, ``"SkylakeX"``, ...), or None when
    it cannot be asked. ``OPENBLAS_CORETYPE`` in the environment overrides OpenBLAS's own choice at
    load time (some machines set it to an older family, whose sgemm then runs at AVX2 speed on an
    AVX-512 CPU): benchmarks print it next to their figures."""
    f = _blas_function(_CORENAME_SYMBOLS)
    if f is None:
        return None
    f.restype = ctypes.c_char_p
    name = f()
    return name.decode() if name else None


def set_blas_threads(n):
    """Set the number of OpenBLAS threads of NumPy; returns False when that BLAS was not found."""
    fn = _blas_function(_SET_THREADS_SYMBOLS)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int]
    fn(int(n))
    return True


def get_blas_threads():
    """The number of OpenBLAS threads of NumPy, or None when that BLAS was not found."""
    fn = _blas_function(_GET_THREADS_SYMBOLS)
    return None if fn is None else int(fn())


def _default_blas_threads():
    if "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return None
    return int(os.environ.get("MINICNN_BLAS_THREADS", "1"))


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def tune_malloc(mmap_threshold=64 << 20, trim_threshold=256 << 20):
    """Set glibc malloc's mmap and trim thresholds (see the module docstring); returns False where
    there is no glibc ``mallopt`` (another C library, another OS)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))
    return mmap_set and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


if (os.environ.get("MINICNN_MALLOC_TUNING", "1") != "0" and "MALLOC_MMAP_THRESHOLD_" not in os.environ
        and "MALLOC_TRIM_THRESHOLD_" not in os.environ):
    tune_malloc()

_blas = _default_blas_threads()
if _blas is not None:
    set_blas_threads(_blas)

#: workers of :func:`run_tasks`
NUM_THREADS = max(1, int(os.environ.get("MINICNN_NUM_THREADS", _cpu_count())))


class _Pool:
    """Persistent worker threads; ``run`` hands each a function and waits for all (no spinning)."""

    def __init__(self, n_workers):
        self.n_workers = n_workers
        self._threads = []
        self._lock = threading.Lock()  # one parallel region at a time (nested calls run inline)
        self._jobs = [None] * n_workers
        self._start = [threading.Semaphore(0) for _ in range(n_workers)]
        self._done = threading.Semaphore(0)

    def _ensure_started(self):
        if not self._threads:
            for i in range(self.n_workers):
                t = threading.Thread(target=self._loop, args=(i,), name=f"minicnn-cpu-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def _loop(self, i):
        while True:
            self._start[i].acquire()
            job, self._jobs[i] = self._jobs[i], None  # the pool must not keep the job's arrays alive
            job()
            del job
            self._done.release()

    def run(self, worker, n_helpers):
        """Run ``worker()`` on ``n_helpers`` pool threads and on the calling thread; wait for all."""
        if not self._lock.acquire(blocking=False):
            worker()  # called from inside a parallel region, or from another thread meanwhile
            return
        try:
            self._ensure_started()
            for i in range(n_helpers):
                self._jobs[i] = worker
                self._start[i].release()
            worker()
            for _ in range(n_helpers):
                self._done.acquire()
        finally:
            self._lock.release()


_POOL = _Pool(max(0, NUM_THREADS - 1))


def run_tasks(task, tasks, make_state=None):
    """Call ``task(t, state)`` for every ``t`` in ``tasks`` on up to ``NUM_THREADS`` threads.

    Without ``make_state``, tasks are pulled from a shared iterator, so a thread that loses its
    core takes fewer of them (each task writes its own part of the output: the order does not
    matter). With ``make_state`` (e.g. a gradient accumulator per thread), the tasks are split
    into ``NUM_THREADS`` contiguous chunks, chunk ``i`` accumulates into state ``i`` in task
    order, and the states come back in chunk order: the caller's sum of the states is then the
    same floating-point sum on every run (training is bitwise reproducible). The first
    exception raised by a task is re-raised here.
    """
    tasks = list(tasks)
    errors = []
    if make_state is not None:
        n = max(1, min(len(tasks), NUM_THREADS))
        bounds = [len(tasks) * i // n for i in range(n + 1)]
        states = [None] * n
        chunk_ids = iter(range(n))

        def worker():
            for i in chunk_ids:  # next() on a range iterator is atomic under the GIL
                try:
                    state = make_state()
                    for t in tasks[bounds[i]:bounds[i + 1]]:
                        task(t, state)
                    states[i] = state
                except BaseException as e:  # noqa: BLE001  (re-raised in the caller)
                    errors.append(e)
    else:
        states = []
        todo = iter(tasks)

        def worker():
            try:
                for t in todo:  # next() on a list iterator is atomic under the GIL
                    task(t, None)
            except BaseException as e:  # noqa: BLE001  (re-raised in the caller)
                errors.append(e)
                for _ in todo:  # drain, so the other threads stop
                    pass

    n_helpers = min(len(tasks), NUM_THREADS) - 1
    if n_helpers <= 0:
        worker()
    else:
        _POOL.run(worker, n_helpers)
    if errors:
        raise errors[0]
    return [st for st in states if st is not None]


def sum_accumulators(states):
    """The sum of the per-thread accumulators ``state[0]`` that :func:`run_tasks` returned with
    ``make_state``, added into the first in chunk order (the same floating-point sum on every run)."""
    total = states[0][0]
    for state in states[1:]:
        total += state[0]
    return total


def task_ranges(n, min_size):
    """``[(i0, i1), ...]`` covering ``range(n)`` in order: about 4 per thread (dynamic scheduling
    evens out a thread that loses its core), none smaller than ``min_size`` unless n is."""
    count = max(1, min(4 * NUM_THREADS, n // max(1, min_size)))
    return [(n * t // count, n * (t + 1) // count) for t in range(count)]


def over_chunks(kernel, n, *args):
    """Run ``kernel(*args, i0, i1)`` over the index range ``[0, n)`` (planes, channels, elements):
    in one call for less than 2 MiB of ``args[0]``, else in up to 4 tasks per thread of at least
    1 MiB each (dynamic scheduling on :func:`run_tasks`). The kernel must write only the part of
    its output that ``[i0, i1)`` owns. Used by the memory-bound kernels (pooling, ReLU, the conv
    bias gradient), for which a Numba ``prange`` region costs more than the work (see
    ``_pool_fast.py``)."""
    n_tasks = max(1, min(n, 4 * NUM_THREADS, args[0].nbytes >> 20))
    if n_tasks == 1:
        kernel(*args, 0, n)
        return
    bounds = [n * t // n_tasks for t in range(n_tasks + 1)]
    run_tasks(lambda t, _: kernel(*args, bounds[t], bounds[t + 1]), range(n_tasks))
