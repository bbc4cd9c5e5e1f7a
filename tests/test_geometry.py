"""The one output-size helper shared by conv, pool and transposed conv."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels_geometry_ref import out_size_ref
from minicnn.kernels.geometry import as_tuple, output_size, transposed_output_size


@given(n=st.integers(1, 30), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 3),
       p=st.integers(0, 3), ceil=st.booleans())
def test_output_size_counts_the_windows(n, k, s, d, p, ceil):
    if ceil and p > (d * (k - 1) + 1) // 2:
        p = (d * (k - 1) + 1) // 2  # ceil_mode exists for pooling only, where PyTorch requires p <= k/2
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        with pytest.raises(ValueError, match="larger than the padded input"):
            output_size(n, k, s, p, d, ceil, op="pool")
    else:
        assert output_size(n, k, s, p, d, ceil) == out_size_ref(n, k, s, p, d, ceil)


@given(n=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans())
def test_output_size_matches_pytorch_pooling(n, k, s, p, ceil):
    torch = pytest.importorskip("torch")
    if p > k // 2 or n + 2 * p < k:
        return
    x = torch.zeros(1, 1, 1, n)
    want = torch.nn.functional.max_pool2d(x, (1, k), (1, s), (0, p), ceil_mode=ceil).shape[-1]
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
