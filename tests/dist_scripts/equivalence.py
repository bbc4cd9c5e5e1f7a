"""Run by tests/test_distributed.py as ``mpiexec -n 2 python equivalence.py OUT.npz``.

Each rank computes its share; rank 0 writes what the test compares with one process on the
combined batch: SyncBatchNorm forward/backward (uneven local batches), and the parameters after
STEPS SGD-momentum steps of DistributedDataParallel (float64 small net with SyncBatchNorm, and the
seed CNN in float32), plus the largest difference between the ranks' results.
"""
import sys

import numpy as np

import minicnn.functional as F
from minicnn import Tensor, distributed as dist, optim
from minicnn.distributed import DistributedDataParallel, SyncBatchNorm, convert_sync_batchnorm

import nets


def gather_rows(a):
    return np.concatenate(dist.allgather_object(a))


def rank_spread(arrays):
    """The largest |rank r − rank 0| over a list of arrays."""
    everyone = dist.allgather_object([np.asarray(a) for a in arrays])
    return max(float(np.max(np.abs(b - a), initial=0.0)) for other in everyone[1:] for a, b in zip(everyone[0], other))


def sync_bn(out, r, world):
    sizes, x, gy, weight, bias = nets.bn_case(world)
    lo, hi = sum(sizes[:r]), sum(sizes[:r + 1])
    bn = SyncBatchNorm(4, momentum=0.3, dtype=np.float64)
    bn.weight.data[...] = weight
    bn.bias.data[...] = bias
    xt = Tensor(x[lo:hi], requires_grad=True)
    y = bn(xt)
    y.backward(gy[lo:hi])
    out["bn_y"], out["bn_gx"] = gather_rows(y.numpy()), gather_rows(xt.grad.numpy())
    # parameter gradients are this rank's share; their sum over the ranks is the combined batch's
    out["bn_gw"] = dist.allreduce(bn.weight.grad.numpy().copy())
    out["bn_gb"] = dist.allreduce(bn.bias.grad.numpy().copy())
    out["bn_running_mean"], out["bn_running_var"] = bn.running_mean.numpy(), bn.running_var.numpy()
    out["bn_spread"] = rank_spread([bn.running_mean.numpy(), bn.running_var.numpy()])


def train(make, size, dtype, r, world):
    """STEPS of DDP training from rank-dependent initial weights (rank 0's must win)."""
    model = DistributedDataParallel(convert_sync_batchnorm(make(seed=1 + r)), bucket_cap_mb=0.002)
    opt = optim.SGD(model.parameters(), **nets.SGD)
    for step in range(nets.STEPS):
        x, y = nets.batch(step, world, size, 10 if size == 32 else 5, dtype)
        rows = slice(r * nets.LOCAL_BATCH, (r + 1) * nets.LOCAL_BATCH)
        loss = F.cross_entropy(model(Tensor(x[rows])), Tensor(y[rows]))
        opt.zero_grad()
        loss.backward()
        model.sync_gradients()
        opt.step()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    return state, len(model.buckets), rank_spread(list(state.values()))


def main(path):
    dist.init(require_mpi=True)
    r, world = dist.rank(), dist.world_size()
    out = {"world": np.array(world)}
    sync_bn(out, r, world)
    small, out["small_buckets"], out["small_spread"] = train(nets.small_bn_net, 8, np.float64, r, world)
    seed, _, out["seed_spread"] = train(nets.seed_net, 32, np.float32, r, world)
    out.update({f"small/{k}": v for k, v in small.items()})
    out.update({f"seed/{k}": v for k, v in seed.items()})
    # collectives on plain arrays: sums of rank-dependent values of three dtypes
    for dtype in (np.float32, np.float64, np.int64):
        out[f"allreduce_{np.dtype(dtype).name}"] = dist.allreduce(np.arange(5, dtype=dtype) * (r + 1))
    out["reduce_sums"] = dist.reduce_sums(1.5 * r, r + 1, 10)
    if r == 0:
        np.savez(path, **out)


if __name__ == "__main__":
    dist.run_or_abort(main, sys.argv[1])
