"""minicnn.distributed: data-parallel training over the processes of an MPI job (mpi4py).

Start K copies of a script with ``mpiexec -n K python script.py`` (install the extra first:
``pip install -e ".[dist]"``); without ``mpiexec`` the same script runs alone (world size 1)::

    from minicnn import distributed as dist
    dist.init()
    model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(net))  # rank 0's weights everywhere
    sampler = dist.DistributedSampler(len(train_set), shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=32, sampler=sampler)          # 32 per rank
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(model(Tensor(x)), Tensor(y))
            opt.zero_grad(); loss.backward(); model.sync_gradients(); opt.step()
        if dist.is_main_process():
            model.module.save("checkpoint.npz")

- :mod:`.comm`: ``init``, ``rank``, ``world_size``, ``barrier``, ``allreduce`` (NumPy; CuPy via host
  memory or NCCL), ``broadcast``, ``reduce_sums`` (metric sums), ``run_or_abort``;
- :mod:`.parallel`: ``broadcast_parameters``, ``DistributedDataParallel``;
- :mod:`.sampler`: ``DistributedSampler``;
- :mod:`.sync_batchnorm`: ``SyncBatchNorm``, ``convert_sync_batchnorm``.
"""
from .comm import (INSTALL_HINT, abort, allgather_object, allreduce, barrier, broadcast, init, is_main_process,
                   local_rank, mpi_available, rank, reduce_sums, run_or_abort, world_size)
from .parallel import DistributedDataParallel, broadcast_parameters, check_same_model
from .sampler import DistributedSampler
from .sync_batchnorm import SyncBatchNorm, SyncNormalize, convert_sync_batchnorm

__all__ = [
    "INSTALL_HINT", "abort", "allgather_object", "allreduce", "barrier", "broadcast", "init", "is_main_process",
    "local_rank", "mpi_available", "rank", "reduce_sums", "run_or_abort", "world_size",
    "DistributedDataParallel", "broadcast_parameters", "check_same_model", "DistributedSampler",
    "SyncBatchNorm", "SyncNormalize", "convert_sync_batchnorm",
]
