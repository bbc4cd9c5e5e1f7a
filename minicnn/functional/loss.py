"""Loss functions (PyTorch's names, arguments and reduction rules), written once against ``xp``.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-element losses). The one
special rule is PyTorch's *weighted mean* of nll_loss / cross_entropy: with class weights
``w`` and ignored targets the mean is ``Σ_i w_{t_i} ℓ_i / Σ_i w_{t_i}`` over the non-ignored
elements, not a plain average.

Numerical stability: cross_entropy goes through log_softmax (log-sum-exp);
binary_cross_entropy_with_logits uses ``softplus(−x) = log(1 + e^{−|x|}) + max(−x, 0)``;
binary_cross_entropy clamps its logarithms at −100, as PyTorch does.
"""
import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from . import activation
from .basic import add, mul, neg, pow, sub
from .reduce import mean, sum

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


def _array(t, like=None):
    """The raw array of a Tensor (targets, weights: constants of the loss), else ``t``; with
    ``like`` (a Tensor), a NumPy/CuPy array is placed on ``like``'s device."""
    if isinstance(t, Tensor):
        return t.data
    if t is None or like is None:
        return t
    return like.device.xp.asarray(t)


def _check_same_shape(op, x, y):
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(f"{op}: target shape {tuple(y.shape)} must equal input shape {tuple(x.shape)}")


# ---- nll_loss / cross_entropy --------------------------------------------------------------------

class NLLLoss(Function):
    """ℓ_i = −w_{t_i} · logp[i, t_i]  for every sample/pixel i (0 where t_i = ignore_index).

    Shapes: logp (N, C, *), target (N, *) integer. Reduction "mean": Σ ℓ_i / Σ_i w_{t_i}.
    Backward: gx[i, t_i] = −w_{t_i} · g_i (g_i = gy, gy, or gy / Σ w for none/sum/mean), 0 elsewhere.
    """

    @staticmethod
    def forward(ctx, logp, target=None, weight=None, ignore_index=-100, reduction="mean"):
        xp = ctx.xp
        valid = target != ignore_index
        t = xp.where(valid, target, 0)
        idx = xp.expand_dims(t, 1)
        picked = xp.take_along_axis(logp, idx, axis=1).squeeze(1)
        w = valid.astype(logp.dtype)
        if weight is not None:
            w = w * weight.astype(logp.dtype, copy=False)[t]
        loss = -w * picked
        ctx.save_for_backward(idx, w)
        ctx.shape, ctx.reduction = logp.shape, reduction
        if reduction == "none":
            return loss
        if reduction == "sum":
            return xp.asarray(loss.sum())
        ctx.total_weight = w.sum()
        return xp.asarray(loss.sum() / ctx.total_weight)

    @staticmethod
    def backward(ctx, gy):
        xp = ctx.xp
        idx, w = ctx.saved
        g = gy / ctx.total_weight if ctx.reduction == "mean" else gy
        gx = xp.zeros(ctx.shape, dtype=w.dtype)
        xp.put_along_axis(gx, idx, xp.expand_dims(-w * g, 1), axis=1)
        return gx


def _check_class_input(op, x, target, weight):
    if x.ndim < 1:
        raise ValueError(f"{op}: expected input (N, C, *) or (C,), got a scalar")
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    want = (x.shape[0],) + tuple(x.shape[2:]) if x.ndim > 1 else ()
    if tuple(target.shape) != want:
        raise ValueError(
            f"{op}: for input of shape {tuple(x.shape)} (N, C, *) the target must have shape {want} (N, *), "
            f"got {tuple(target.shape)}"
        )
    if weight is not None and tuple(weight.shape) != (C,):
        raise ValueError(f"{op}: weight must have shape (C,) = ({C},), got {tuple(weight.shape)}")
    return C


def _check_targets(op, t, C, ignore_index, xp):
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: class-index targets must be integers, got dtype {t.dtype}")
    bad = ((t < 0) | (t >= C)) & (t != ignore_index)
    if bool(bad.any()):
        first = int(t[bad].reshape(-1)[0])
        raise ValueError(f"{op}: target {first} is out of bounds for {C} classes (ignore_index={ignore_index})")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (N, C, *) at integer ``target`` (N, *).

    Args:
        weight: class weights (C,) or None. ignore_index: targets with this value contribute
            nothing (segmentation "void" pixels). reduction: see the module docstring.
    """
    _check_reduction("nll_loss", reduction)
    w = _array(weight, input)
    t = _array(target, input)
    C = _check_class_input("nll_loss", input, t, w)
    _check_targets("nll_loss", t, C, ignore_index, input.device.xp)
    if input.ndim == 1:  # one sample (C,) with a 0-d target
        from .shape import reshape

        out = nll_loss(reshape(input, (1, C)), Tensor._from_array(t.reshape(1), input.device), weight,
                       ignore_index, reduction)
        return reshape(out, ()) if reduction == "none" else out
    return NLLLoss.apply(input, target=t, weight=w, ignore_index=ignore_index, reduction=reduction)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` (N, C, *) against class indices (N, *) or class
    probabilities (N, C, *), PyTorch's ``F.cross_entropy``.

    ``= nll_loss(log_softmax(input, 1), target)``; with ``label_smoothing = ε`` the target
    becomes ``(1 − ε)·onehot + ε/C``: loss = (1 − ε)·nll + (ε/C)·Σ_c −w_c logp_c, with the
    smoothing term reduced like the nll term (same weighted-mean denominator, ignored
    elements removed). Example: segmentation logits (N, C, H, W), targets (N, H, W).
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    dim = 1 if input.ndim > 1 else 0
    logp = activation.log_softmax(input, dim=dim)
    t = _array(target, input)
    w = _array(weight, input)
    if t.dtype.kind == "f":  # class probabilities
        return _soft_cross_entropy(logp, target, w, reduction, label_smoothing)
    C = _check_class_input("cross_entropy", input, t, w)
    _check_targets("cross_entropy", t, C, ignore_index, input.device.xp)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    xp = input.device.xp
    per_class = logp if w is None else mul(logp, _class_view(input, w, dim))
    smooth = neg(sum(per_class, axis=dim))
    valid = t != ignore_index
    smooth = mul(smooth, Tensor._from_array(valid.astype(input.dtype), input.device))
    if reduction == "mean":
        denom = valid.sum() if w is None else w[xp.where(valid, t, 0)][valid].sum()
        smooth = sum(smooth) / Tensor._from_array(xp.asarray(denom, dtype=input.dtype), input.device)
    elif reduction == "sum":
        smooth = sum(smooth)
    return add(mul(nll, 1.0 - label_smoothing), mul(smooth, label_smoothing / C))


def _class_view(x, w, dim):
    shape = [1] * x.ndim
    shape[dim] = w.shape[0]
    return Tensor._from_array(w.astype(x.dtype, copy=False).reshape(shape), x.device)


def _soft_cross_entropy(logp, target, w, reduction, label_smoothing):
    """−Σ_c w_c q_c logp_c with q = (1 − ε) target + ε/C; differentiable in the target too."""
    _check_same_shape("cross_entropy", logp, target)
    dim = 1 if logp.ndim > 1 else 0
    C = logp.shape[dim]
    q = target if isinstance(target, Tensor) else Tensor._from_array(
        logp.device.xp.asarray(target, dtype=logp.dtype), logp.device)
    if label_smoothing > 0:
        q = add(mul(q, 1.0 - label_smoothing), label_smoothing / C)
    per_class = mul(logp, q)
    if w is not None:
        per_class = mul(per_class, _class_view(logp, w, dim))
    loss = neg(sum(per_class, axis=dim))
    if reduction == "mean":
        return sum(loss) / (loss.size if logp.ndim > 1 else 1)
    return _reduce(loss, reduction)


# ---- binary cross-entropy --------------------------------------------------------------------------

class BinaryCrossEntropy(Function):
    """ℓ = −w (y · max(ln x, −100) + (1 − y) · max(ln(1 − x), −100)).

    gx = w (x − y) / max(x (1 − x), 1e−12)   (PyTorch's formula),
    gy = −w (max(ln x, −100) − max(ln(1 − x), −100)).
    """

    float_inputs = True

    @staticmethod
    def forward(ctx, x, y, weight=None):
        xp = ctx.xp
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 next
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        w = 1 if weight is None else weight.astype(x.dtype, copy=False)
        ctx.save_for_backward(x, y, log_x, log_1mx)
        ctx.w = w
        return (-w * (y * log_x + (1 - y) * log_1mx)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, y, log_x, log_1mx = ctx.saved
        w = ctx.w
        gx = g * w * (x - y) / xp.maximum(x * (1 - x), x.dtype.type(1e-12))
        gt = -g * w * (log_x - log_1mx)
        return gx.astype(x.dtype, copy=False), gt.astype(y.dtype, copy=False)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities ``input`` in [0, 1] and targets of the same shape.

    Logarithms are clamped at −100 so ``input`` of exactly 0 or 1 gives a finite loss.
    Prefer :func:`binary_cross_entropy_with_logits` (stable for any logit).
    """
    _check_reduction("binary_cross_entropy", reduction)
    _check_same_shape("binary_cross_entropy", input, target)
    x = input.data
    if bool(((x < 0) | (x > 1)).any()):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                         "(pass probabilities, or use binary_cross_entropy_with_logits for logits)")
    loss = BinaryCrossEntropy.apply(input, target, weight=_array(weight, input))
    return _reduce(loss, reduction)


class BCEWithLogits(Function):
    """ℓ = w [(1 − y) x + l_w · softplus(−x)],  l_w = 1 + (p − 1) y  (p: pos_weight),
    softplus(−x) = log(1 + e^(−|x|)) + max(−x, 0)  (no overflow for any x).

    gx = w [(1 − y) − l_w σ(−x)],   gy = w [−x + (p − 1) softplus(−x)].
    """

    float_inputs = True

    @staticmethod
    def forward(ctx, x, y, weight=None, pos_weight=None):
        xp = ctx.xp
        sp = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        pw = 1 if pos_weight is None else pos_weight.astype(x.dtype, copy=False)
        lw = 1 + (pw - 1) * y
        w = 1 if weight is None else weight.astype(x.dtype, copy=False)
        ctx.save_for_backward(x, y, sp, lw)
        ctx.w, ctx.pw = w, pw
        return (w * ((1 - y) * x + lw * sp)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, y, sp, lw = ctx.saved
        w, pw = ctx.w, ctx.pw
        sig_neg = activation.stable_sigmoid(ctx.xp, -x)
        gx = g * w * ((1 - y) - lw * sig_neg)
        gt = g * w * (-x + (pw - 1) * sp)
        return gx.astype(x.dtype, copy=False), gt.astype(y.dtype, copy=False)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable formula (see :class:`BCEWithLogits`).

    Args:
        pos_weight: weight of the positive term, broadcast along the last (class) axis,
            e.g. ``n_negative / n_positive`` per class.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    loss = BCEWithLogits.apply(input, target, weight=_array(weight, input), pos_weight=_array(pos_weight, input))
    return _reduce(loss, reduction)


# ---- regression losses -------------------------------------------------------------------------------

class SquaredError(Function):
    """ℓ = (x − y)²;  gx = 2 (x − y) g,  gy = −gx."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, y):
        d = x - y
        ctx.save_for_backward(d)
        return d * d

    @staticmethod
    def backward(ctx, g):
        gx = 2 * ctx.saved[0] * g
        return gx, -gx


class AbsoluteError(Function):
    """ℓ = |x − y|;  gx = sign(x − y) g (0 at x = y),  gy = −gx."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, y):
        d = x - y
        ctx.save_for_backward(d)
        return ctx.xp.abs(d)

    @staticmethod
    def backward(ctx, g):
        gx = ctx.xp.sign(ctx.saved[0]) * g
        return gx, -gx


class SmoothL1(Function):
    """ℓ = ½ d²/β if |d| < β else |d| − ½β  (d = x − y; β = 0 gives |d|);
    gx = (d/β if |d| < β else sign d) g,  gy = −gx."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, y, beta=1.0):
        xp = ctx.xp
        d = x - y
        ad = xp.abs(d)
        ctx.save_for_backward(d)
        ctx.beta = beta
        if beta == 0:
            return ad
        quad = ad < beta
        return xp.where(quad, 0.5 * d * d / beta, ad - 0.5 * beta).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (d,) = ctx.saved
        beta = ctx.beta
        slope = xp.sign(d) if beta == 0 else xp.where(xp.abs(d) < beta, d / beta, xp.sign(d))
        gx = (slope * g).astype(d.dtype, copy=False)
        return gx, -gx


def mse_loss(input, target, reduction="mean"):
    """Mean squared error ``(input − target)²`` reduced (input and target of one shape)."""
    _check_reduction("mse_loss", reduction)
    _check_same_shape("mse_loss", input, target)
    return _reduce(SquaredError.apply(input, target), reduction)


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error ``|input − target|`` reduced."""
    _check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target)
    return _reduce(AbsoluteError.apply(input, target), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """Huber-like loss of Fast R-CNN box regression: quadratic below ``beta``, linear above."""
    _check_reduction("smooth_l1_loss", reduction)
    _check_same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    return _reduce(SmoothL1.apply(input, target, beta=float(beta)), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """Huber loss = ``delta · smooth_l1_loss(beta=delta)``: ½d² below delta, delta(|d| − ½delta) above."""
    _check_reduction("huber_loss", reduction)
    _check_same_shape("huber_loss", input, target)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    return _reduce(mul(SmoothL1.apply(input, target, beta=float(delta)), float(delta)), reduction)


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """RetinaNet's focal loss (torchvision's ``sigmoid_focal_loss``, same formula and defaults).

    p = σ(x), ce = BCE-with-logits(x, y), p_t = p·y + (1 − p)(1 − y),
    loss = α_t · ce · (1 − p_t)^γ with α_t = α·y + (1 − α)(1 − y) (no α term when α < 0).
    Note torchvision's default ``reduction="none"``.
    """
    _check_reduction("sigmoid_focal_loss", reduction)
    _check_same_shape("sigmoid_focal_loss", inputs, targets)
    p = activation.sigmoid(inputs)
    ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    one_minus_y = sub(1.0, targets)
    p_t = add(mul(p, targets), mul(sub(1.0, p), one_minus_y))
    loss = mul(ce, pow(sub(1.0, p_t), gamma)) if gamma != 0 else ce
    if alpha >= 0:
        alpha_t = add(mul(targets, alpha), mul(one_minus_y, 1.0 - alpha))
        loss = mul(alpha_t, loss)
    return _reduce(loss, reduction)
