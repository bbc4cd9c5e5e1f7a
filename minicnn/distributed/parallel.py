"""Data parallelism: the same model on every rank, gradients averaged over the ranks.

Each of the K ranks computes the loss of its own batch (its shard of the data) and its
gradients g_r; :meth:`DistributedDataParallel.sync_gradients` replaces them with the mean
``(1/K) Σ_r g_r`` before the optimizer steps. With equal local batches of B samples and a loss
that averages over the batch, the mean is exactly the gradient of the loss averaged over the
combined batch of K·B samples, so K ranks take the same steps as one process on that batch
(up to the order of floating-point sums).
"""
from ..nn.module import Module
from ..tensor import Tensor
from . import comm


def _members(model):
    """(kind, dotted name, tensor) of every parameter and buffer of ``model``, in a fixed order."""
    return ([("parameter", n, p) for n, p in model.named_parameters()]
            + [("buffer", n, b) for n, b in model.named_buffers()])


def _describe(entries):
    return [(kind, name, tuple(t.shape), str(t.dtype)) for kind, name, t in entries]


def check_same_model(model):
    """Raise ValueError on *every* rank unless every rank's ``model`` has the same parameters and
    buffers (names, shapes, dtypes, in the same order); the message names the first rank and entry
    that differ from rank 0's. One allgather of the descriptions, so no rank is left waiting."""
    mine = _describe(_members(model))
    everyone = comm.allgather_object(mine)
    ref = everyone[0]
    for r, theirs in enumerate(everyone[1:], 1):
        if theirs == ref:
            continue
        for i in range(max(len(ref), len(theirs))):
            a = ref[i] if i < len(ref) else None
            b = theirs[i] if i < len(theirs) else None
            if a != b:
                fmt = (lambda e: "nothing" if e is None else f"{e[0]} {e[1]!r} of shape {e[2]} and dtype {e[3]}")
                raise ValueError(f"broadcast_parameters: the model differs across ranks ({type(model).__name__}, "
                                 f"{len(ref)} vs {len(theirs)} parameters and buffers): entry {i} is {fmt(a)} on "
                                 f"rank 0 but {fmt(b)} on rank {r}; build the same model on every rank")


def broadcast_parameters(model, root=0):
    """Copy rank ``root``'s parameters and buffers (BatchNorm's running statistics) into every
    rank's ``model``, in place, after :func:`check_same_model`. Returns ``model``."""
    check_same_model(model)
    for _, _, t in _members(model):
        data = t.data
        if data.flags.c_contiguous:
            comm.broadcast(data, root)
        else:
            t.data[...] = comm.broadcast(t.device.xp.ascontiguousarray(data), root)
    return model


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the ranks of :mod:`minicnn.distributed`.

    At construction the parameters and buffers of rank 0 are broadcast to every rank (see
    :func:`broadcast_parameters`). Forward is the wrapped module's. After ``loss.backward()``
    call :meth:`sync_gradients`: every parameter's gradient becomes its mean over the ranks::

        model = DistributedDataParallel(convert_sync_batchnorm(net))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); model.sync_gradients(); opt.step()

    The gradients travel in *buckets*: the parameters, in reverse registration order (roughly
    the order backward finishes them), are grouped by dtype and device into flat arrays of at most
    ``bucket_cap_mb`` MiB, one allreduce each; a parameter larger than the cap is a bucket alone.
    A parameter without a gradient on a rank counts as zeros there (every rank then has one).

    ``state_dict``/``load_state_dict`` are the wrapped module's (no ``module.`` prefix), so a
    checkpoint loads into the plain model; ``parameters()`` are the wrapped module's too.

    Args:
        module: the model (moved to its device first).
        bucket_cap_mb: bucket size in MiB (PyTorch's default 25).
        broadcast_buffers: at every training forward, copy rank 0's buffers to the other ranks
            (as PyTorch's DDP does), so BatchNorm running statistics agree on every rank.
    """

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an nn.Module, got {type(module).__name__}")
        if not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a number > 0, got {bucket_cap_mb!r}")
        comm.init()
        self.module = module
        self.bucket_cap_mb = bucket_cap_mb
        self.broadcast_buffers = broadcast_buffers
        broadcast_parameters(module)
        self.buckets = self._make_buckets([p for p in module.parameters() if p.requires_grad], bucket_cap_mb)

    @staticmethod
    def _make_buckets(params, cap_mb):
        """Lists of parameters of one dtype and device, each list at most ``cap_mb`` MiB."""
        cap = cap_mb * 2 ** 20
        buckets, open_by_kind = [], {}
        for p in reversed(params):
            kind = (p.device, p.dtype)
            bucket = open_by_kind.get(kind)
            nbytes = p.size * p.dtype.itemsize
            if bucket is None or (bucket[1] + nbytes > cap and bucket[0]):
                bucket = open_by_kind[kind] = [[], 0]
                buckets.append(bucket[0])
            bucket[0].append(p)
            bucket[1] += nbytes
        return buckets

    def forward(self, *args, **kwargs):
        if self.training and self.broadcast_buffers and comm.world_size() > 1:
            for _, b in self.module.named_buffers():
                comm.broadcast(b.data, 0)
        return self.module(*args, **kwargs)

    def sync_gradients(self):
        """Average every parameter's ``grad`` over the ranks (one allreduce per bucket).

        Each bucket is gathered into a new flat array, summed over the ranks in place and divided
        by the world size; the new gradients are views of it (nobody else holds that array).
        """
        world = comm.world_size()
        if world == 1:
            return
        for bucket in self.buckets:
            p0 = bucket[0]
            xp = p0.device.xp
            flat = xp.empty(sum(p.size for p in bucket), dtype=p0.dtype)
            offset = 0
            for p in bucket:
                view = flat[offset:offset + p.size]
                if p.grad is None:
                    view[...] = 0
                else:
                    view[...] = p.grad.data.reshape(-1)
                offset += p.size
            comm.allreduce(flat)
            flat /= world
            offset = 0
            for p in bucket:
                p.grad = Tensor._from_array(flat[offset:offset + p.size].reshape(p.shape), p.device)
                offset += p.size

    def state_dict(self, prefix=""):
        """The wrapped module's state_dict (names without ``module.``)."""
        return self.module.state_dict(prefix)

    def load_state_dict(self, state_dict, strict=True):
        """Load into the wrapped module (names without ``module.``)."""
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self):
        return f"world_size={comm.world_size()}, buckets={len(self.buckets)}, bucket_cap_mb={self.bucket_cap_mb}"

