"""SyncBatchNorm: batch normalisation with the statistics of the batch of *all* ranks.

With K ranks of B samples each, a plain BatchNorm normalises each rank's B samples by their
own mean and variance; SyncBatchNorm uses the mean and variance of the combined K·B samples,
so K ranks compute what one process computes on the combined batch.
"""
from ..autograd import Function
from ..functional.norm import _affine, _update_running
from ..nn.norm import BatchNorm1d, BatchNorm2d, _BatchNorm
from ..nn._checks import check_input
from ..tensor import float_promoted
from . import comm


class SyncNormalize(Function):
    """x̂ = (x − μ) / √(σ² + ε) per channel, μ and σ² (biased) over N and the spatial axes of
    every rank's ``x``.

    Forward: one allreduce of (Σx, Σx², m) per channel, accumulated in float64; M = Σ_ranks m,
    μ = Σx / M, σ² = Σx² / M − μ². Backward, with gx̂ the incoming gradient: one allreduce of
    (Σ gx̂, Σ gx̂·x̂) per channel, then ``gx = (1/σ)·(gx̂ − Σgx̂/M − x̂·Σ(gx̂·x̂)/M)``: the gradient
    of the sum of every rank's loss through the shared statistics.

    ``stats``: a dict that receives the global ``mean``, biased ``var`` (float64 arrays (C,)) and
    ``count`` M, for the running statistics.
    """

    float_inputs = True

    @staticmethod
    def forward(ctx, x, eps=1e-5, stats=None):
        xp = ctx.xp
        axes = (0,) + tuple(range(2, x.ndim))
        x64 = x.astype(xp.float64, copy=False)
        local_count = x.size // x.shape[1]
        sums = xp.concatenate([x64.sum(axis=axes), (x64 * x64).sum(axis=axes), xp.full(1, local_count, xp.float64)])
        comm.allreduce(sums)
        C = x.shape[1]
        count = float(sums[-1])
        if count <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when training, "
                             f"got {int(count)} (input shape {tuple(x.shape)} on this rank)")
        mean = sums[:C] / count
        var = xp.maximum(sums[C:2 * C] / count - mean * mean, 0.0)
        shape = (1, C) + (1,) * (x.ndim - 2)
        inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype).reshape(shape)
        xhat = (x - mean.astype(x.dtype).reshape(shape)) * inv_std
        ctx.save_for_backward(xhat, inv_std)
        ctx.axes, ctx.count = axes, count
        if stats is not None:
            stats.update(mean=mean, var=var, count=count)
        return xhat

    @staticmethod
    def backward(ctx, gy):
        xp = ctx.xp
        xhat, inv_std = ctx.saved
        C = xhat.shape[1]
        sums = xp.concatenate([gy.sum(axis=ctx.axes, dtype=xp.float64),
                               (gy * xhat).sum(axis=ctx.axes, dtype=xp.float64)])
        comm.allreduce(sums)
        shape = inv_std.shape
        mean_g = (sums[:C] / ctx.count).astype(gy.dtype).reshape(shape)
        mean_gx = (sums[C:] / ctx.count).astype(gy.dtype).reshape(shape)
        return inv_std * (gy - mean_g - xhat * mean_gx)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation of (N, C), (N, C, L) or (N, C, H, W) whose training statistics are
    those of the combined batch of every rank (PyTorch's ``nn.SyncBatchNorm``).

    Training, world size K > 1: ``y = (x − μ)/√(σ² + ε)·γ + β`` with the mean μ and biased
    variance σ² per channel over N, the spatial axes and all ranks (:class:`SyncNormalize`); the
    running statistics move by ``momentum`` toward μ and the *unbiased* global variance
    ``σ²·M/(M − 1)`` (M values per channel over all ranks), identically on every rank.
    World size 1, and eval: exactly :class:`~minicnn.nn.BatchNorm2d` (the same arrays).

    The arguments are BatchNorm2d's; every rank must call it in the same order (it communicates).
    """

    layouts = ("NC", "NCL", "NCHW")

    def forward(self, x):
        if not self.training or comm.world_size() == 1:
            return super().forward(x)
        x = float_promoted(x)
        if x.ndim not in (2, 3, 4):
            check_input(self, x, "NCHW", self.num_features)
        check_input(self, x, self.layouts[x.ndim - 2], self.num_features)
        factor = self._average_factor()
        stats = {}
        y = SyncNormalize.apply(x, eps=self.eps, stats=stats)
        if self.running_mean is not None:
            m = stats["count"]
            _update_running(self.running_mean, stats["mean"], factor)
            _update_running(self.running_var, stats["var"] * (m / (m - 1)), factor)
        return _affine(y, self.weight, self.bias, x.ndim)


def convert_sync_batchnorm(module):
    """Replace every ``BatchNorm1d``/``BatchNorm2d`` of ``module`` by a :class:`SyncBatchNorm`
    holding the same Parameter and buffer objects (so an optimizer built before still updates
    them and the state_dict keeps its names); returns the converted module (a new object when
    ``module`` is itself a BatchNorm, else ``module`` changed in place)."""
    if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats, bias=module.bias is not None)
        for name in ("weight", "bias"):
            sync._parameters[name] = module._parameters[name]
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            sync._buffers[name] = module._buffers[name]
        sync.train(module.training)
        return sync
    for name, child in list(module._modules.items()):
        if child is not None:
            module._modules[name] = convert_sync_batchnorm(child)
    return module

