"""The one output-size helper shared by conv, pool and transposed conv."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from kernels_geometry_ref import out_size_ref
from minicnn.kernels.geometry import INT32_MAX, as_tuple, output_size, transposed_output_size


@given(n=st.integers(1, 30), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 3),
       p=st.integers(0, 3), ceil=st.booleans())
def test_output_size_counts_the_windows(n, k, s, d, p, ceil):
    if ceil and p > (d * (k - 1) + 1) // 2:
        p = (d * (k - 1) + 1) // 2  # ceil_mode exists for pooling only, where PyTorch requires p <= k/2
    span = d * (k - 1) + 1
    if n + 2 * p >= span:
        assert output_size(n, k, s, p, d, ceil) == out_size_ref(n, k, s, p, d, ceil)
    elif not ceil:  # (a window overhanging the padded input in ceil mode: PyTorch's rule, tested below)
        with pytest.raises(ValueError, match="larger than the padded input"):
            output_size(n, k, s, p, d, ceil, op="pool")


@given(n=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans())
@example(n=1, k=2, s=2, p=0, ceil=True)  # a partial window over the whole input: 1 output (found by test_empty_inputs)
def test_output_size_matches_pytorch_pooling(n, k, s, p, ceil):
    """Sizes equal PyTorch's, and we refuse exactly the geometries it refuses (windows larger than
    the padded input included)."""
    torch = pytest.importorskip("torch")
    if p > k // 2:
        return
    x = torch.zeros(1, 1, 1, n)
    try:
        want = torch.nn.functional.max_pool2d(x, (1, k), (1, s), (0, p), ceil_mode=ceil).shape[-1]
    except RuntimeError:
        with pytest.raises(ValueError, match="larger than the padded input"):
            output_size(n, k, s, p, 1, ceil, op="pool")
        return
    assert output_size(n, k, s, p, 1, ceil) == want


def test_transposed_size_inverts_conv_size():
    for n in range(1, 9):
        for k, s, p, d in [(3, 2, 1, 1), (4, 2, 1, 1), (3, 1, 0, 2), (2, 3, 0, 1)]:
            m = transposed_output_size(n, k, s, p, d, 0)
            assert output_size(m, k, s, p, d) == n


def test_errors_name_op_and_argument():
    with pytest.raises(ValueError, match="conv2d: output_padding \\(2\\) must be smaller"):
        transposed_output_size(4, 3, 2, 0, 1, 2, op="conv2d")
    with pytest.raises(ValueError, match="conv2d: stride must be an int or 2 ints"):
        as_tuple((1, 2, 3), 2, "stride", "conv2d")
    with pytest.raises(ValueError, match="stride and dilation must be >= 1"):
        output_size(5, 3, 0)


# ---- the kernels' 32-bit int indexing ---------------------------------------------------------------
def test_int32_limit_of_the_window_extent():
    """The extent n + 2p + s + d·(k − 1) may reach 2**31 − 1 and not pass it."""
    assert output_size(1, 1, INT32_MAX - 1) == 1
    with pytest.raises(ValueError, match=r"pool: the extent .* \(axis 0\) = 2147483648 exceeds 2\*\*31 - 1"):
        output_size(1, 1, INT32_MAX, op="pool")
    with pytest.raises(ValueError, match=r"pool: padding \(axis 1\) = 2147483648 exceeds"):
        output_size(1, 1, 1, 2**31, op="pool", axis=1)
    assert transposed_output_size(1, 1, INT32_MAX - 1) == 1
    with pytest.raises(ValueError, match=r"deconv: stride \(axis 0\) = 2147483648 exceeds"):
        transposed_output_size(1, 1, INT32_MAX + 1, op="deconv")
    with pytest.raises(ValueError, match=r"deconv: output size \(axis 0\) = 2147483649 exceeds"):
        transposed_output_size(3, 1, 2**30, op="deconv")


def _t(*shape, device="cpu"):
    return mc.Tensor(np.zeros(shape, np.float32), device=device)


# every op whose kernels index with int32: huge strides, windows and output sizes raise a ValueError
# naming the op and the argument before any allocation or launch (cuda-emu raised OverflowError
# from its launch code; a 70000 × 70000 output would have been allocated)
INT32_CASES = [
    (lambda d: F.conv2d(_t(1, 1, 5, 5, device=d), _t(1, 1, 3, 3, device=d), stride=10**12),
     r"conv2d: stride \(axis 0\) = 1000000000000 exceeds 2\*\*31 - 1 = 2147483647"),
    (lambda d: F.conv1d(_t(1, 1, 5, device=d), _t(1, 1, 3, device=d), dilation=2**31), r"conv1d: dilation \(axis 0\)"),
    (lambda d: F.conv2d(_t(1, 1, 5, 5, device=d), _t(1, 1, 3, 3, device=d), padding=2**31),
     r"conv2d: padding \(axis 0\)"),
    (lambda d: F.conv_transpose2d(_t(1, 1, 2, 2, device=d), _t(1, 1, 3, 3, device=d), stride=10**12),
     r"conv_transpose2d: output size \(axis 0\) = 1000000000003 exceeds"),
    (lambda d: F.conv_transpose1d(_t(1, 1, 1, device=d), _t(1, 1, 3, device=d), stride=10**12),
     r"conv_transpose1d: stride \(axis 0\) = 1000000000000 exceeds"),
    (lambda d: F.max_pool2d(_t(1, 1, 4, 4, device=d), 2, stride=10**12), r"max_pool2d: stride \(axis 0\)"),
    (lambda d: F.avg_pool1d(_t(1, 1, 4, device=d), 2, stride=2**31), r"avg_pool1d: stride \(axis 1\)"),
    (lambda d: F.adaptive_avg_pool2d(_t(1, 1, 4, 4, device=d), 70000),
     # cuda devices check per plane (their kernels launch over chunks of planes): the plane's shape
     r"adaptive_avg_pool2d: the output would have 4900000000 elements \(shape \((1, 1, )?70000, 70000\)\)"),
    (lambda d: F.adaptive_max_pool2d(_t(1, 1, 4, 4, device=d), (2**31, 1)),
     r"adaptive_max_pool2d: output_size \(axis 0\) = 2147483648 exceeds"),
    (lambda d: F.max_unpool2d(_t(1, 1, 2, 2, device=d), np.zeros((1, 1, 2, 2), np.int64), 2, stride=10**12),
     r"max_unpool2d: output size \(axis 0\) = 1000000000002 exceeds"),
    (lambda d: F.interpolate(_t(1, 1, 4, 4, device=d), size=(70000, 70000)), "interpolate: the output would have"),
    (lambda d: F.interpolate(_t(1, 1, 4, device=d), scale_factor=1e10, mode="linear"),
     r"interpolate: output size \(axis 0\) = 40000000000 exceeds"),
]


@pytest.mark.parametrize("call, match", INT32_CASES,
                         ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(INT32_CASES)])
def test_sizes_beyond_int32_raise_a_value_error(device, call, match):
    with pytest.raises(ValueError, match=match):
        call(device)
