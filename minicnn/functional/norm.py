"""Normalisation layers' ops: batch_norm, instance_norm, layer_norm, group_norm.

``batch_norm`` is one fused Function per mode, running the device kernels
``batch_norm_forward`` / ``batch_norm_eval_forward`` / ``batch_norm_backward`` (statistics,
normalisation and the affine map in one pass per channel; see :class:`BatchNorm` and
:class:`BatchNormEval`). The other three standardise ``x`` over some axes with one Function,
:class:`Normalize`, then apply a per-channel (or per-feature) affine map with the
differentiable elementwise ops. They differ only in the axes of the statistics:

=================  =====================================  =========================
op                 statistics over                        affine per
=================  =====================================  =========================
batch_norm         N and the spatial axes (per channel)   channel
instance_norm      the spatial axes (per sample, channel) channel
layer_norm         the last ``len(normalized_shape)`` axes  element of normalized_shape
group_norm         the channels of a group + spatial axes channel
=================  =====================================  =========================
"""
from ..autograd import Function, no_grad
from ..tensor import Tensor, float_promoted
from .basic import add, mul, sub
from .shape import reshape


class Normalize(Function):
    """x̂ = (x − μ) / σ,  μ = mean_A x,  σ = √(var_A x + ε)  (biased variance over axes A).

    Backward (m = number of elements averaged, means over A):
        gx = (1/σ) · (gx̂ − mean(gx̂) − x̂ · mean(gx̂ · x̂)).

    Saves x (with μ and 1/σ) rather than its output x̂, which backward recomputes: as PyTorch's
    norms, so an in-place op on the output (a ``ReLU(inplace=True)`` after an affine-free
    instance norm) is safe.
    """

    float_inputs = True

    @staticmethod
    def forward(ctx, x, axes=(), eps=1e-5):
        mu = x.mean(axis=axes, keepdims=True)
        d = x - mu
        var = (d * d).mean(axis=axes, keepdims=True)
        inv_std = 1 / ctx.xp.sqrt(var + x.dtype.type(eps))
        xhat = d * inv_std
        ctx.save_for_backward(x, mu, inv_std)
        ctx.axes = axes
        return xhat

    @staticmethod
    def backward(ctx, gy):
        x, mu, inv_std = ctx.saved
        xhat = (x - mu) * inv_std
        axes = ctx.axes
        mean_g = gy.mean(axis=axes, keepdims=True)
        mean_gx = (gy * xhat).mean(axis=axes, keepdims=True)
        return inv_std * (gy - mean_g - xhat * mean_gx)


def _affine_inputs(weight, bias):
    """The Tensors among (weight, bias), and which of the two are present."""
    return tuple(t for t in (weight, bias) if t is not None), (weight is not None, bias is not None)


def _split_affine(arrays, affine):
    """(weight, bias) arrays, None where absent, from the arrays after x."""
    it = iter(arrays)
    return tuple(next(it) if present else None for present in affine)


def _affine_grads(ctx, gx, gweight, gbias):
    """What backward returns: gx, then gγ and gβ for the inputs that were given."""
    has_weight, has_bias = ctx.affine
    return (gx,) + ((gweight,) if has_weight else ()) + ((gbias,) if has_bias else ())


def _affine_needs(ctx):
    """Which of (gx, gγ, gβ) are wanted (False for an absent weight or bias)."""
    wanted = iter(ctx.needs_input_grad[1:])
    return (ctx.needs_input_grad[0],) + tuple(next(wanted) if present else False for present in ctx.affine)


def _empty_grads(ctx, x, needs):
    """(gx, gγ, gβ) of an empty input: gx empty, gγ and gβ sums over nothing (zeros)."""
    xp, C = ctx.xp, x.shape[1]
    return (xp.zeros_like(x) if needs[0] else None, xp.zeros(C, x.dtype) if needs[1] else None,
            xp.zeros(C, x.dtype) if needs[2] else None)


class BatchNorm(Function):
    """Training batch norm, fused: inputs x (N, C, *spatial), then γ and β (C,) when given.

    Forward (one kernel, ``batch_norm_forward``; m = N·S values per channel):
        μ_c = mean x,  σ²_c = mean (x − μ_c)²  (biased),  inv_std_c = 1/√(σ²_c + ε),
        y = (x − μ_c)·inv_std_c·γ_c + β_c.
    Backward (``batch_norm_backward``), x̂ = (x − μ)·inv_std recomputed from the saved x:
        gβ_c = Σ gy,  gγ_c = Σ gy·x̂,  gx = γ_c·inv_std_c·(gy − gβ_c/m − x̂·gγ_c/m).

    Saves x (no copy) and the float64 (C,) mean and inv_std. ``stats``, when a dict, receives
    ``mean`` and ``inv_std`` (the running statistics are updated from them).
    """

    float_inputs = True
    fresh_grads = True  # the kernels allocate gx, gγ, gβ

    @staticmethod
    def forward(ctx, x, *affine_arrays, affine=(False, False), eps=1e-5, stats=None):
        weight, bias = _split_affine(affine_arrays, affine)
        ctx.affine = affine
        if x.size == 0:  # nothing to normalise (statistics of no values are NaN)
            nan = ctx.xp.full(x.shape[1], ctx.xp.nan)
            y, mean, inv_std = ctx.xp.empty_like(x), nan, nan
        else:
            y, mean, inv_std = ctx.kernels.batch_norm_forward(x, weight, bias, eps)
        ctx.save_for_backward(x, mean, inv_std, weight)
        if stats is not None:
            stats.update(mean=mean, inv_std=inv_std)
        return y

    @staticmethod
    def backward(ctx, gy):
        return _batch_norm_grads(ctx, gy, batch_stats=True)


class BatchNormEval(Function):
    """Batch norm with given statistics (eval): a per-channel affine map of x, fused.

    With a_c = γ_c/√(var_c + ε) and b_c = β_c − μ_c·a_c:  y = x·a_c + b_c (computed as
    (x − μ_c)·inv_std_c·γ_c + β_c by ``batch_norm_eval_forward``). Backward:
        gx = gy·a_c,  gγ_c = Σ gy·(x − μ_c)/√(var_c + ε),  gβ_c = Σ gy.
    ``mean`` and ``inv_std`` = 1/√(var + ε) are float64 (C,) arrays, constants here.
    """

    float_inputs = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x, *affine_arrays, affine=(False, False), mean=None, inv_std=None):
        weight, bias = _split_affine(affine_arrays, affine)
        ctx.affine = affine
        y = ctx.xp.empty_like(x) if x.size == 0 else ctx.kernels.batch_norm_eval_forward(x, mean, inv_std, weight, bias)
        keep_x = len(ctx.needs_input_grad) > 1 and affine[0] and ctx.needs_input_grad[1]  # x only for gγ
        ctx.save_for_backward(x if keep_x else None, mean, inv_std, weight)
        return y

    @staticmethod
    def backward(ctx, gy):
        return _batch_norm_grads(ctx, gy, batch_stats=False)


def _batch_norm_grads(ctx, gy, batch_stats):
    """What :class:`BatchNorm` (``batch_stats``: the statistics were the batch's) and
    :class:`BatchNormEval` return: ``batch_norm_backward`` on the saved (x, μ, 1/σ, γ), empty or zero
    gradients for an empty input. (An eval op that needs no gγ saved no x: gy stands in for it.)"""
    x, mean, inv_std, weight = ctx.saved
    needs = _affine_needs(ctx)
    if gy.size == 0:
        return _affine_grads(ctx, *_empty_grads(ctx, gy, needs))
    grads = ctx.kernels.batch_norm_backward(gy, gy if x is None else x, mean, inv_std, weight, needs, batch_stats)
    return _affine_grads(ctx, *grads)


def _channel_view(t, ndim, axis=1):
    """A per-channel vector (C,) reshaped to (1, C, 1, ...) so it broadcasts over an ndim input."""
    shape = [1] * ndim
    shape[axis] = t.shape[0]
    return reshape(t, tuple(shape))


def _affine(y, weight, bias, ndim):
    if weight is not None:
        y = mul(y, _channel_view(weight, ndim))
    if bias is not None:
        y = add(y, _channel_view(bias, ndim))
    return y


def _check_channels(op, x, name, t):
    if t is not None and tuple(t.shape) != (x.shape[1],):
        raise ValueError(f"{op}: {name} must have shape (C,) = ({x.shape[1]},) for input {x.shape}, got {t.shape}")


def _const(x, array):
    return Tensor._from_array(array, x.device)


def _normalize_with(x, mean, var, eps):
    """(x − mean) / √(var + ε) with given per-channel statistics (eval mode): affine in x."""
    xp = x.device.xp
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    m = mean.data.reshape(shape).astype(x.dtype, copy=False)
    inv_std = (1 / xp.sqrt(var.data.astype(x.dtype, copy=False) + x.dtype.type(eps))).reshape(shape)
    return mul(sub(x, _const(x, m)), _const(x, inv_std))


def _update_running(running, batch_value, momentum):
    """running ← (1 − momentum) · running + momentum · batch_value (in place, no graph)."""
    with no_grad():
        v = batch_value.astype(running.data.dtype, copy=False)
        running.data[...] = (1 - momentum) * running.data + momentum * v


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation (PyTorch's ``F.batch_norm``).

    Training: ``y = (x − μ_B)/√(σ²_B + ε)·γ + β`` with the batch's mean and *biased* variance
    per channel (over N and the spatial axes); the running statistics, when given, are updated
    in place with ``r ← (1 − momentum)·r + momentum·s``, using the *unbiased* variance
    (``σ²_B · m/(m − 1)``, m elements per channel). Eval: the running statistics normalise,
    ``y = (x − r_μ)/√(r_σ² + ε)·γ + β``. Either way one fused op (:class:`BatchNorm`,
    :class:`BatchNormEval`); statistics are accumulated in float64.

    Args:
        x: (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W).
        running_mean, running_var: Tensors (C,) or None (then batch statistics are always used).
        weight, bias: γ, β of shape (C,) or None.
    """
    x = float_promoted(x)  # statistics of ints are float (in int math eps would be cast to 0)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input (N, C, *), got shape {x.shape}")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_channels("batch_norm", x, name, t)
    affine_inputs, affine = _affine_inputs(weight, bias)
    if training or running_mean is None:
        m = x.shape[0]
        for n in x.shape[2:]:
            m *= n
        if training and m <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape {x.shape}")
        update = training and running_mean is not None
        stats = {} if update else None
        y = BatchNorm.apply(x, *affine_inputs, affine=affine, eps=eps, stats=stats)
        if update:
            xp = x.device.xp
            var = xp.maximum(1 / (stats["inv_std"] * stats["inv_std"]) - eps, 0.0)  # σ²_B from inv_std
            _update_running(running_mean, stats["mean"], momentum)
            _update_running(running_var, var * (m / (m - 1)), momentum)
        return y
    xp = x.device.xp
    mean = xp.asarray(running_mean.data, dtype=xp.float64)
    inv_std = 1 / xp.sqrt(xp.asarray(running_var.data, dtype=xp.float64) + eps)
    return BatchNormEval.apply(x, *affine_inputs, affine=affine, mean=mean, inv_std=inv_std)


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Instance normalisation (CycleGAN, style transfer): each (n, c) plane is standardised by
    its own mean and biased variance over the spatial axes, then ``·γ_c + β_c``.

    With ``use_input_stats=False`` the running statistics normalise (eval of a
    ``track_running_stats`` layer); with running statistics given in training they are updated
    with the batch average of the per-instance mean and unbiased variance, as PyTorch does.
    """
    x = float_promoted(x)  # statistics of ints are float (in int math eps would be cast to 0)
    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected an input (N, C, *spatial), got shape {x.shape}")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_channels("instance_norm", x, name, t)
    if not use_input_stats:
        if running_mean is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var")
        return _affine(_normalize_with(x, running_mean, running_var, eps), weight, bias, x.ndim)
    axes = tuple(range(2, x.ndim))
    m = 1
    for a in axes:
        m *= x.shape[a]
    if m <= 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element, got input shape {x.shape}")
    if running_mean is not None:
        xd = x.data
        _update_running(running_mean, xd.mean(axis=axes).mean(axis=0), momentum)
        _update_running(running_var, (xd.var(axis=axes) * (m / (m - 1))).mean(axis=0), momentum)
    return _affine(Normalize.apply(x, axes=axes, eps=eps), weight, bias, x.ndim)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the last ``len(normalized_shape)`` axes; ``weight``/``bias``
    have shape ``normalized_shape`` (elementwise affine)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    x = float_promoted(x)  # statistics of ints are float (in int math eps would be cast to 0)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: input's last dimensions must be {normalized_shape}, got input shape {x.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} must have shape {normalized_shape}, got {t.shape}")
    y = Normalize.apply(x, axes=tuple(range(x.ndim - k, x.ndim)), eps=eps)
    if weight is not None:
        y = mul(y, weight)
    if bias is not None:
        y = add(y, bias)
    return y


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation: channels split into ``num_groups`` groups, each (sample, group)
    standardised over its channels and spatial axes, then the per-channel affine."""
    x = float_promoted(x)  # statistics of ints are float (in int math eps would be cast to 0)
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected an input (N, C, *), got shape {x.shape}")
    C = x.shape[1]
    if num_groups < 1 or C % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups} must divide the {C} channels of input {x.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        _check_channels("group_norm", x, name, t)
    grouped = reshape(x, (x.shape[0], num_groups, -1))
    y = reshape(Normalize.apply(grouped, axes=(2,), eps=eps), x.shape)
    return _affine(y, weight, bias, x.ndim)
