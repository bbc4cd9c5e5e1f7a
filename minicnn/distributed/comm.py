"""The communicator: MPI through mpi4py, or a single process without it.

Every rank of ``mpiexec -n K python script.py`` runs the same script; :func:`init` joins them::

    from minicnn import distributed as dist
    dist.init()                     # world size 1 when started without mpiexec
    dist.rank(), dist.world_size()  # 0..K-1, K

Collectives take NumPy arrays (``cpu``, ``cuda-emu``) and CuPy arrays (``cuda``):

- NumPy: ``MPI_Allreduce`` in place on the array's memory;
- CuPy, by default: staged through host memory (``a.get()``, allreduce, copy back);
- CuPy with ``init(nccl=True)`` where ``cupy.cuda.nccl`` imports: ``ncclAllReduce`` on the GPU
  (the NCCL unique id travels from rank 0 by MPI; each rank uses GPU ``local_rank % GPUs``).

:func:`run_or_abort` runs a function and, when it raises on one rank, prints the traceback with
the rank and calls ``MPI_Abort``, so the other ranks never wait forever in a collective.
"""
import os
import sys
import time
import traceback

import numpy as np

INSTALL_HINT = 'pip install -e ".[dist]"  (or: pip install "minicnn[dist]"), which installs mpi4py and MPICH'


class _SingleProcess:
    """The stand-in communicator of a process started without MPI: rank 0 of a world of 1."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        pass

    def Abort(self, code=1):  # pragma: no cover - exits
        os._exit(code)


class _State:
    comm = None       # an mpi4py communicator, or _SingleProcess
    mpi = None        # the mpi4py.MPI module when MPI is used
    nccl = None       # a cupy.cuda.nccl.NcclCommunicator when NCCL is used


_state = _State()


def mpi_available():
    """True when mpi4py (and so an MPI library) imports."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def init(require_mpi=False, nccl=False):
    """Join the ranks of the job (idempotent); returns ``(rank, world_size)``.

    Args:
        require_mpi: raise ImportError naming the ``dist`` extra when mpi4py is not installed
            (otherwise the process runs alone, world size 1, as it does without ``mpiexec``).
        nccl: for ``cuda``: make this rank use GPU ``local_rank() % GPUs`` and reduce CuPy arrays
            with NCCL (``cupy.cuda.nccl``) instead of staging them through host memory; where CuPy
            has no NCCL bindings the arrays are staged.
    """
    if _state.comm is None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            if require_mpi:
                raise ImportError(f"minicnn.distributed: mpi4py is not installed ({e}); install the extra: "
                                  f"{INSTALL_HINT}") from None
            _state.comm = _SingleProcess()
        else:
            _state.mpi, _state.comm = MPI, MPI.COMM_WORLD
    if nccl and _state.nccl is None and world_size() > 1:
        _state.nccl = _nccl_communicator()
    return rank(), world_size()


def _comm():
    if _state.comm is None:
        init()
    return _state.comm


def rank():
    """This process's rank, 0..world_size()-1."""
    return _comm().Get_rank()


def world_size():
    """The number of ranks of the job (1 without ``mpiexec``)."""
    return _comm().Get_size()


def is_main_process():
    """True on rank 0: the rank that logs, saves checkpoints and writes pictures."""
    return rank() == 0


def local_rank():
    """The rank among the ranks of this machine (picks the GPU of a rank)."""
    if _state.mpi is None:
        return 0
    return _comm().Split_type(_state.mpi.COMM_TYPE_SHARED).Get_rank()


def barrier():
    """Wait until every rank gets here."""
    _comm().Barrier()


def _nccl_communicator():  # pragma: no cover - needs GPUs
    """An NCCL communicator over the MPI ranks, or None where CuPy has no NCCL bindings (then the
    arrays are staged through host memory). Either way this rank uses GPU ``local_rank % GPUs``."""
    try:
        import cupy
    except ImportError:
        return None
    cupy.cuda.Device(local_rank() % cupy.cuda.runtime.getDeviceCount()).use()  # one GPU per rank of a machine
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    if not getattr(nccl, "available", True):
        return None
    uid = nccl.get_unique_id() if rank() == 0 else None
    uid = _comm().bcast(uid, root=0)
    return nccl.NcclCommunicator(world_size(), uid, rank())


def _is_cupy(a):
    return type(a).__module__.startswith("cupy")


_NCCL_TYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "int64": "NCCL_INT64", "int32": "NCCL_INT32"}


def allreduce(a, op="sum"):
    """Reduce array ``a`` over the ranks, in place, and return it: every rank ends with the
    elementwise ``sum`` (or ``max``, ``min``) of all ranks' arrays of the same shape and dtype.

    ``a`` must be C-contiguous (a NumPy or CuPy array); with world size 1 it is returned as is.
    """
    if op not in ("sum", "max", "min"):
        raise ValueError(f"allreduce: op must be 'sum', 'max' or 'min', got {op!r}")
    if not hasattr(a, "dtype") or not a.flags.c_contiguous:
        raise ValueError(f"allreduce: expected a C-contiguous NumPy or CuPy array, got {type(a).__name__}")
    if world_size() == 1:
        return a
    if _is_cupy(a):
        if _state.nccl is not None and a.dtype.name in _NCCL_TYPES:  # pragma: no cover - needs GPUs
            import cupy
            from cupy.cuda import nccl

            code = getattr(nccl, {"sum": "NCCL_SUM", "max": "NCCL_MAX", "min": "NCCL_MIN"}[op])
            _state.nccl.allReduce(a.data.ptr, a.data.ptr, a.size, getattr(nccl, _NCCL_TYPES[a.dtype.name]), code,
                                  cupy.cuda.get_current_stream().ptr)
            return a
        host = a.get()
        _allreduce_host(host, op)
        a.set(host)
        return a
    _allreduce_host(a, op)
    return a


def _allreduce_host(a, op):
    MPI = _state.mpi
    _comm().Allreduce(MPI.IN_PLACE, a, op={"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op])


def broadcast(a, root=0):
    """Overwrite array ``a`` on every rank with ``root``'s (in place; NumPy or CuPy); returns it."""
    if world_size() == 1:
        return a
    if _is_cupy(a):
        host = a.get()
        _comm().Bcast(host, root=root)
        a.set(host)
        return a
    _comm().Bcast(a, root=root)
    return a


def allgather_object(obj):
    """The list of every rank's ``obj`` (any picklable Python object), in rank order."""
    if world_size() == 1:
        return [obj]
    return _comm().allgather(obj)


def reduce_sums(*values):
    """The sums over the ranks of a few numbers (metric sums: loss·n, correct, seen) as a
    float64 NumPy array, in one allreduce; every rank gets the same result."""
    return allreduce(np.array(values, dtype=np.float64))


#: seconds :func:`abort` waits between flushing and ``MPI_Abort``: the launcher forwards the ranks'
#: output asynchronously, and the abort kills it with whatever it has not forwarded yet (measured:
#: without the wait, 1 run in 3 lost the failing rank's message or another rank's last lines)
ABORT_GRACE_S = 1.0


def abort(code=1):
    """End every rank of the job (``MPI_Abort``) after flushing and :data:`ABORT_GRACE_S` seconds
    for the launcher to forward what the ranks printed; without MPI, exit this process."""
    sys.stdout.flush()
    sys.stderr.flush()
    if _state.mpi is not None:
        time.sleep(ABORT_GRACE_S)
    _comm().Abort(code)


def run_or_abort(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; when it raises on a rank of a job of several ranks, print
    ``minicnn.distributed: rank R of K failed:`` and the traceback to stderr, then abort the
    communicator (exit status 1 for the whole job), so the other ranks never hang in a collective.
    With world size 1 the exception propagates as usual. ``SystemExit(0)`` passes through."""
    try:
        return fn(*args, **kwargs)
    except SystemExit as e:
        if world_size() == 1 or e.code in (0, None):
            raise
        print(f"minicnn.distributed: rank {rank()} of {world_size()} exited with {e.code!r}; aborting the job",
              file=sys.stderr)
        abort(1)
    except BaseException:
        if world_size() == 1:
            raise
        text = traceback.format_exc()
        print(f"minicnn.distributed: rank {rank()} of {world_size()} failed; aborting the job:\n{text}",
              file=sys.stderr)
        abort(1)
