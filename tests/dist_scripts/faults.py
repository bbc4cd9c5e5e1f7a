"""Run by tests/test_distributed.py as ``mpiexec -n 2 python faults.py OUTDIR``.

1. Rank 1 builds a wider model: broadcast_parameters must raise a clear ValueError on *both*
   ranks (each writes ``rank R caught: <message>`` to OUTDIR/rankR.txt: the launcher may
   interleave the ranks' stdout mid-line) instead of hanging or corrupting weights.
2. Rank 1 raises while rank 0 waits in an allreduce: run_or_abort must end the whole job
   (nonzero exit) with a message naming rank 1.
"""
import os
import sys

import numpy as np

from minicnn import distributed as dist, nn


def mismatch(r, outdir):
    width = 4 if r == 0 else 5
    model = nn.Sequential(nn.Conv2d(1, width, 3), nn.BatchNorm2d(width))
    try:
        dist.broadcast_parameters(model)
    except ValueError as e:
        text = f"rank {r} caught: {e}"
    else:
        text = f"rank {r}: no error"
    with open(os.path.join(outdir, f"rank{r}.txt"), "w") as f:
        f.write(text)


def work(r):
    if r == 1:
        raise RuntimeError("a deliberate failure on this rank")
    dist.allreduce(np.ones(3))  # rank 1 never joins: without the abort this waits forever
    print("rank 0: the allreduce returned", flush=True)


if __name__ == "__main__":
    dist.init(require_mpi=True)
    r = dist.rank()
    mismatch(r, sys.argv[1])
    dist.barrier()
    dist.run_or_abort(work, r)
