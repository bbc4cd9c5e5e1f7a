"""Launch wrappers of ``optim.cu`` (same names and signatures as ``kernels/cpu/optim.py``, plus ``be``).

Each update runs one thread per element over flat C-contiguous arrays and writes the parameter
and its state in place. Scalars are rounded to the parameter's dtype here and passed as NumPy
scalars of that type (CuPy would pass a Python float as a double); flags as int32; an unused
optional state array as a null pointer.
"""
import numpy as np

from ..optim_checks import check_step_arrays

KERNELS = ("sgd_step", "adam_step", "rmsprop_step")

_CU = "optim.cu"


def _check(be, op, param, **arrays):
    """:func:`~kernels.optim_checks.check_step_arrays` for ``be``'s arrays."""
    check_step_arrays(op, param, be.xp.ndarray, be.xp.__name__, **arrays)


def _lerp_weight(w, dtype):
    """PyTorch's lerp weight ``w`` in ``dtype``: ``(w, 0)``, or ``(w − 1, 1)`` for ``|w| ≥ 0.5``."""
    w = dtype.type(w)
    return (w, np.int32(0)) if abs(w) < 0.5 else (w - dtype.type(1), np.int32(1))


def _launch(be, name, param, args):
    if param.size:
        be.function(_CU, name, param.dtype)(be.grid_1d(param.size), (be.BLOCK,), args + (np.int64(param.size),))


def sgd_step(be, param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, maximize,
             first_step):
    """One SGD step in place (see ``kernels/cpu/optim.py``); ``momentum_buffer`` None when ``momentum == 0``."""
    _check(be, "sgd_step", param, grad=grad, momentum_buffer=momentum_buffer if momentum != 0 else None)
    if momentum != 0 and momentum_buffer is None:
        raise ValueError("sgd_step: momentum_buffer is required when momentum != 0")
    t = param.dtype.type
    buf = momentum_buffer if momentum != 0 else None
    _launch(be, "sgd_step", param, (param, grad, buf, t(-lr), t(weight_decay), t(momentum), t(1 - dampening),
                                    np.int32(bool(nesterov)), np.int32(bool(maximize)), np.int32(bool(first_step))))


def adam_step(be, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
              decoupled, amsgrad, maximize):
    """One Adam/AdamW step in place, step number ``step`` ≥ 1; ``max_exp_avg_sq`` None unless ``amsgrad``."""
    _check(be, "adam_step", param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
           max_exp_avg_sq=max_exp_avg_sq if amsgrad else None)
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("adam_step: max_exp_avg_sq is required when amsgrad=True")
    t = param.dtype.type
    w1, from_end = _lerp_weight(1 - beta1, param.dtype)
    step_size = lr / (1 - beta1 ** step)
    bias2_sqrt = (1 - beta2 ** step) ** 0.5
    wd = t(0) if decoupled else t(weight_decay)
    decay = t(1 - lr * weight_decay) if decoupled else t(1)
    _launch(be, "adam_step", param, (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else None,
                                     t(-step_size), t(bias2_sqrt), t(eps), w1, from_end, t(beta2), t(1 - beta2),
                                     wd, decay, np.int32(bool(amsgrad)), np.int32(bool(maximize))))


def rmsprop_step(be, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum,
                 centered, maximize):
    """One RMSprop step in place; ``grad_avg`` None unless ``centered``, ``momentum_buffer`` None unless
    ``momentum > 0``."""
    _check(be, "rmsprop_step", param, grad=grad, square_avg=square_avg, grad_avg=grad_avg if centered else None,
           momentum_buffer=momentum_buffer if momentum > 0 else None)
    if (centered and grad_avg is None) or (momentum > 0 and momentum_buffer is None):
        raise ValueError("rmsprop_step: grad_avg is required when centered, momentum_buffer when momentum > 0")
    t = param.dtype.type
    w, from_end = _lerp_weight(1 - alpha, param.dtype)
    _launch(be, "rmsprop_step", param, (param, grad, square_avg, grad_avg if centered else None,
                                        momentum_buffer if momentum > 0 else None, t(-lr), t(alpha), t(1 - alpha),
                                        w, from_end, t(eps), t(weight_decay), t(momentum), np.int32(bool(centered)),
                                        np.int32(bool(maximize))))
