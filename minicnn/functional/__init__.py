"""Differentiable ops (``import minicnn.functional as F``), one op family per file.

Each op is a :class:`~minicnn.autograd.Function` with ``forward`` and ``backward`` side by side
and a public lower-case function. Ops that need a hand-written kernel call
``ctx.kernels.<name>``; the rest are written once against ``ctx.xp``.
"""
from .basic import (  # noqa: F401
    abs, add, add_, clamp, clip, clone, div, exp, log, maximum, minimum, mul, neg, pow, sqrt, sub,
    to_device, where,
)
from .linalg import matmul  # noqa: F401
from .reduce import logsumexp, max, mean, min, sum, var  # noqa: F401
from .shape import (  # noqa: F401
    cat, concatenate, flatten, getitem, pad, permute, reshape, split, stack, transpose,
)
from .activation import gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, leaky_relu_, log_softmax, relu, relu_, relu6, sigmoid, softmax, tanh; from .linear import linear; from .dropout import dropout, dropout2d; from .norm import batch_norm, group_norm, instance_norm, layer_norm; from .loss import binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, l1_loss, mse_loss, nll_loss, sigmoid_focal_loss, smooth_l1_loss  # noqa: F401,E702
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401
from .pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool1d, avg_pool2d, global_avg_pool2d, max_pool1d, max_pool2d, max_unpool2d  # noqa: F401
from .resample import interpolate, upsample; from .lrn import local_response_norm  # noqa: F401,E702
from .roi import roi_align, roi_pool; from .nms import batched_nms, nms; from .boxes import box_area, box_iou, clip_boxes_to_image, decode_boxes, encode_boxes, generate_anchors, remove_small_boxes  # noqa: F401,E702
