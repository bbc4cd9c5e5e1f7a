"""Settings of the ``cuda`` device (also read by ``cuda-emu``, which runs the same code path).

``minicnn.backends.cuda.allow_tf32`` (bool, default ``False``)
    Like ``torch.backends.cuda.matmul.allow_tf32``: when True, float32 GEMMs (the convolutions'
    cuBLAS calls) may use TensorFloat-32 tensor cores on Ampere and later GPUs: the inputs are
    rounded to a 10-bit mantissa, products accumulate in float32. Typically several times faster,
    with a relative error of about 1e-3 instead of about 1e-6. It sets cuBLAS's math mode to
    ``CUBLAS_TF32_TENSOR_OP_MATH`` for each float32 GEMM (``CUBLAS_DEFAULT_MATH`` while False);
    float64 is never affected, and neither is ``cuda-emu`` (NumPy's BLAS has no TF32).

``minicnn.backends.cuda.workspace_limit_bytes`` (int, default ``256 * 2**20``)
    The most scratch memory one convolution call allocates for its column matrices (im2col) and
    their output staging: the batch is processed in chunks of images that fit (at least one
    image per chunk, so a single image needing more than the cap still runs). Smaller values cost
    more, smaller GEMMs; the results are the same up to the order of the weight-gradient sums
    over chunks.

``minicnn.backends.cuda.conv_algorithm`` (str, default ``"gemm"``)
    The convolution forward's algorithm: ``"gemm"`` (im2col + cuBLAS over chunks of images),
    ``"implicit_gemm"`` (the hand-written tiled kernel ``kernels/cuda/conv_igemm.cu``: no column
    matrix, plain float32/float64 FMAs, so ``allow_tf32`` does not apply to it) or ``"auto"`` (the
    implicit GEMM when ``C_in/groups·kH·kW <= 64``, cuBLAS otherwise). It applies to every conv2d
    forward product (including conv_transpose2d's input gradient); depthwise layers and conv2d's
    input and weight gradients use their usual kernels under all three. For learners and
    benchmarking; no GPU has yet measured which is faster.

Example:
    >>> import minicnn
    >>> minicnn.backends.cuda.allow_tf32
    False
    >>> minicnn.backends.cuda.workspace_limit_bytes = 64 * 2**20
    >>> minicnn.backends.cuda.workspace_limit_bytes = 256 * 2**20
"""
import sys
import types

from ..kernels.cuda import conv_igemm as _conv_igemm
from ..kernels.cuda._gemm import settings as _settings


class _CudaSettingsModule(types.ModuleType):
    """This module, with ``allow_tf32``, ``workspace_limit_bytes`` and ``conv_algorithm`` as validated
    properties that read and write the kernels' settings."""

    @property
    def allow_tf32(self):
        return _settings.allow_tf32

    @allow_tf32.setter
    def allow_tf32(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"minicnn.backends.cuda.allow_tf32 must be a bool, got {value!r}")
        _settings.allow_tf32 = value

    @property
    def workspace_limit_bytes(self):
        return _settings.workspace_limit_bytes

    @workspace_limit_bytes.setter
    def workspace_limit_bytes(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"minicnn.backends.cuda.workspace_limit_bytes must be a positive int (bytes), "
                             f"got {value!r}")
        _settings.workspace_limit_bytes = value


    @property
    def conv_algorithm(self):
        return _conv_igemm.settings.conv_algorithm

    @conv_algorithm.setter
    def conv_algorithm(self, value):
        if value not in _conv_igemm.ALGORITHMS:
            raise ValueError(f"minicnn.backends.cuda.conv_algorithm must be one of {_conv_igemm.ALGORITHMS}, "
                             f"got {value!r}")
        _conv_igemm.settings.conv_algorithm = value


sys.modules[__name__].__class__ = _CudaSettingsModule
