"""The implicit-GEMM convolution forward (``conv_igemm.cu``) and the rule choosing it over the cuBLAS path.

``conv_igemm.cu`` computes, per group g, ``Y_g (Mg, N·P) = W_g (Mg, R) @ X̃_g (R, N·P)`` with
``R = C_in/G·kH·kW``, ``P = OH·OW`` and ``X̃_g`` the im2col matrix, gathered tile by tile into shared
memory and never stored: a 64×64 output tile per block, chunks of 16 along r, a 4×4 register block
per thread (the .cu file's header explains the tiles, their shared memory and registers). It is a
variant beside the cuBLAS GEMM path of ``conv.py``, for learners and for benchmarking; it needs no
column workspace at all.

Dispatch (:func:`choose_algorithm`), set by ``minicnn.backends.cuda.conv_algorithm``:

- ``"gemm"`` (default): im2col + cuBLAS for every convolution (``conv.py``).
- ``"implicit_gemm"``: this kernel for every forward it can run (below), cuBLAS otherwise.
- ``"auto"``: this kernel when the reduction is short, ``R <= AUTO_MAX_REDUCTION`` (64, e.g. a first
  layer on RGB with 3×3 or 4×4 kernels): there the GEMM is memory-bound, and writing then re-reading
  the R·N·P column matrix is most of the GEMM path's traffic, which the implicit GEMM saves. For
  longer reductions cuBLAS's tuned kernels should win over this simple one (no double buffering,
  no tensor cores). The threshold is a reasoned guess, not a measurement: no GPU has run either
  path; ``python -m benchmarks --device cuda`` prints the implicit-GEMM rows to settle it.

The setting applies to every conv2d forward product, which includes the input gradient of
``conv_transpose2d`` (a conv2d forward of gy). Under every setting, depthwise convolutions
(``groups == C_in > 1``) keep their direct kernel of ``conv.cu`` (a 64-row tile would hold 1–2 useful
rows), conv2d's input and weight gradients (and so conv_transpose2d's forward) use the GEMM path, and
a convolution whose single image exceeds the kernel's 32-bit index math (:func:`fits`) uses cuBLAS.
"""
import numpy as np

_CU = "conv_igemm.cu"
KERNEL = "conv2d_igemm_forward"
BM, BN, BK, TM, TN = 64, 64, 16, 4, 4  #: tile sizes, as in conv_igemm.cu
THREADS = (BM // TM) * (BN // TN)  #: threads per block (256)
INT32_MAX = 2 ** 31 - 1
ALGORITHMS = ("gemm", "implicit_gemm", "auto")
AUTO_MAX_REDUCTION = 64  #: "auto" picks the implicit GEMM when C_in/G·kH·kW is at most this


class ConvAlgorithmSettings:
    """``conv_algorithm``: ``"gemm"`` (default), ``"implicit_gemm"`` or ``"auto"`` (the module
    docstring gives the rule); ``minicnn.backends.cuda.conv_algorithm`` validates and sets it."""

    def __init__(self):
        self.conv_algorithm = "gemm"


settings = ConvAlgorithmSettings()


def _per_image_limits(x_shape, W_shape, groups, out_hw, padding, dilation):
    """The largest 32-bit quantities the kernel forms for ONE image (and the grid's y/z sizes)."""
    _, C_in, H, Wd = (int(v) for v in x_shape)
    C_out, Cg, kH, kW = (int(v) for v in W_shape)
    OH, OW = (int(v) for v in out_hw)
    (ph, pw), (dh, dw) = padding, dilation
    max_tap = (Cg - 1) * H * Wd + (kH - 1) * dh * Wd + (kW - 1) * dw
    per_image = max(C_in * H * Wd, C_out * OH * OW)
    return per_image, (C_out * Cg * kH * kW, max_tap, ph * Wd + pw, -(-(C_out // groups) // BM), groups)


def fits(x_shape, W_shape, groups, out_hw, padding, dilation):
    """True when the kernel can run this convolution: one image's x and y, the weights and the tap
    offsets are indexed in 32 bits (the batch is then cut into chunks that fit), and the grid's
    y (``⌈Mg/64⌉``) and z (``G``) sizes are at most 65535."""
    per_image, (w_size, max_tap, front_pad, grid_y, grid_z) = _per_image_limits(
        x_shape, W_shape, groups, out_hw, padding, dilation)
    return max(per_image, w_size, max_tap, front_pad) <= INT32_MAX and grid_y <= 65535 and grid_z <= 65535


def choose_algorithm(x_shape, W_shape, padding, dilation, groups, out_hw, algorithm=None):
    """``"implicit_gemm"`` or ``"gemm"``: the forward path for this convolution under ``algorithm``
    (default: ``settings.conv_algorithm``), by the rule of the module docstring."""
    algorithm = settings.conv_algorithm if algorithm is None else algorithm
    if algorithm not in ALGORITHMS:
        raise ValueError(f"conv_algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    C_in, (_, Cg, kH, kW) = int(x_shape[1]), W_shape
    if algorithm == "gemm" or (groups == C_in and groups > 1):
        return "gemm"
    if algorithm == "auto" and Cg * kH * kW > AUTO_MAX_REDUCTION:
        return "gemm"
    return "implicit_gemm" if fits(x_shape, W_shape, groups, out_hw, padding, dilation) else "gemm"


def tap_table(Cg, x_hw, kernel_hw, dilation):
    """int32 (R, 3), R = Cg·kH·kW: row r = (c·kH + kh)·kW + kw holds the offset of tap r from a
    window's top-left pixel in the group's first channel, ``c·H·W + kh·dh·W + kw·dw``, and the
    row and column shifts ``kh·dh`` and ``kw·dw`` (the kernel's bounds test)."""
    (H, W), (kH, kW), (dh, dw) = x_hw, kernel_hw, dilation
    c, kh, kw = np.meshgrid(np.arange(Cg), np.arange(kH), np.arange(kW), indexing="ij")
    table = np.stack([c * H * W + kh * dh * W + kw * dw, kh * dh, kw * dw], axis=-1).reshape(-1, 3)
    return np.ascontiguousarray(table, dtype=np.int32)


def conv2d_forward_implicit_gemm(be, x, W, stride, padding, dilation, groups, out_hw, bias=None):
    """y (N, C_out, OH, OW) = conv2d(x, W) (+ bias[co]) by the implicit-GEMM kernel.

    ``y[n, co, oh, ow] = Σ_{c, kh, kw} W[co, c, kh, kw] · x[n, g·Cg + c, oh·sh − ph + kh·dh,
    ow·sw − pw + kw·dw]`` (0 outside the image; ``g = co // (C_out/G)``, ``padding`` the leading
    padding, the output size explicit as in every conv wrapper). Any groups, depthwise included.
    The batch runs in chunks of images whose x and y fit 32-bit indices (one launch each).

    Args:
        be: the backend (``cuda`` or ``cuda-emu``).
        x: (N, C_in, H, W); W: (C_out, C_in/groups, kH, kW); bias: (C_out,) or None; one float dtype.
        stride, padding, dilation: (h, w) pairs; groups: int; out_hw: (OH, OW).

    Raises:
        ValueError: shapes that do not match, or a convolution :func:`fits` rejects.
        TypeError: mixed or unsupported dtypes.
    """
    xp = be.xp
    x, W = xp.ascontiguousarray(x), xp.ascontiguousarray(W)
    N, C_in, H, Wd = x.shape
    C_out, Cg, kH, kW = W.shape
    OH, OW = (int(v) for v in out_hw)
    G = int(groups)
    if G < 1 or C_in != Cg * G or C_out % G or min(OH, OW) < 0:
        raise ValueError(f"conv2d_forward_implicit_gemm: x {tuple(x.shape)}, W {tuple(W.shape)}, groups {G} and "
                         f"out_hw {(OH, OW)} do not match (C_in = W.shape[1]·groups, C_out divisible by groups)")
    if x.dtype != W.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"conv2d_forward_implicit_gemm: x, W and bias must share one dtype, got {x.dtype}, "
                        f"{W.dtype}, {None if bias is None else bias.dtype}")
    if bias is not None and tuple(bias.shape) != (C_out,):
        raise ValueError(f"conv2d_forward_implicit_gemm: bias must be ({C_out},), got {tuple(bias.shape)}")
    if not fits(x.shape, W.shape, G, (OH, OW), padding, dilation):
        raise ValueError(f"conv2d_forward_implicit_gemm: x {tuple(x.shape)}, W {tuple(W.shape)} exceed the kernel's "
                         "32-bit indexing of one image (or its grid); use the GEMM path")
    y = xp.empty((N, C_out, OH, OW), dtype=x.dtype)
    R, P = Cg * kH * kW, OH * OW
    if y.size == 0:
        return y
    if R == 0:
        y[...] = 0 if bias is None else bias.reshape(1, -1, 1, 1)
        return y
    taps = xp.asarray(tap_table(Cg, (H, Wd), (kH, kW), dilation))
    b = xp.ascontiguousarray(bias) if bias is not None else W  # a placeholder when there is no bias
    per_image, _ = _per_image_limits(x.shape, W.shape, G, (OH, OW), padding, dilation)
    Nc = max(1, min(N, INT32_MAX // max(1, per_image)))
    kernel = be.function(_CU, KERNEL, x.dtype)
    i32 = np.int32
    for n0 in range(0, N, Nc):
        n1 = min(N, n0 + Nc)
        grid = (-(-(n1 - n0) * P // BN), -(-(C_out // G) // BM), G)
        kernel(grid, (THREADS,), (x[n0:n1], W, b, taps, y[n0:n1], i32(n1 - n0), i32(C_in), i32(H), i32(Wd),
                                  i32(C_out), i32(G), i32(R), i32(stride[0]), i32(stride[1]), i32(padding[0]),
                                  i32(padding[1]), i32(OH), i32(OW), i32(bias is not None)))
    return y
