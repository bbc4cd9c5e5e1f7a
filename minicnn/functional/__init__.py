"""Differentiable ops (``import minicnn.functional as F``), one op family per file.

Each op is a :class:`~minicnn.autograd.Function` with ``forward`` and ``backward`` side by side
and a public lower-case function. Ops that need a hand-written kernel call
``ctx.kernels.<name>``; the rest are written once against ``ctx.xp``.
"""
from .basic import (  # noqa: F401
    abs, add, clamp, clip, clone, div, exp, log, maximum, minimum, mul, neg, pow, sqrt, sub,
    to_device, where,
)
from .linalg import matmul  # noqa: F401
from .reduce import logsumexp, max, mean, min, sum, var  # noqa: F401
from .shape import (  # noqa: F401
    cat, concatenate, flatten, getitem, pad, permute, reshape, split, stack, transpose,
)
