"""Tensor and autograd safety: gradients handed to ``backward`` are checked, in-place changes of
what backward needs are caught, tensors copy where PyTorch copies, integer inputs of float math
are promoted, dtypes the kernels cannot take are refused, and ``cuda`` without a GPU says so."""
import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.device import CudaUnavailableError, cuda_is_available
from minicnn.testing.strategies import arrays


def _t(a, device, grad=True):
    return mc.tensor(a, device=device, requires_grad=grad)


# ---- Tensor.backward(grad): the gradient must have the output's shape ------------------------------
def _ops(device):
    """(name, forward) pairs: each takes x (1, 2, 6, 6) float64 and returns a tensor."""
    rng = np.random.default_rng(0)
    w = _t(rng.standard_normal((3, 2, 3, 3)), device, grad=False)
    wt = _t(rng.standard_normal((2, 3, 3, 3)), device, grad=False)
    wd = _t(rng.standard_normal((2, 1, 3, 3)), device, grad=False)
    rois = mc.tensor([[0, 0.5, 0.5, 4.0, 5.0], [0, 1.0, 0.0, 5.0, 3.0]], dtype=np.float64, device=device)
    return {
        "conv2d": lambda x: F.conv2d(x, w, padding=1),
        "conv_transpose2d": lambda x: F.conv_transpose2d(x, wt, stride=2),
        "depthwise": lambda x: F.conv2d(x, wd, padding=1, groups=2),
        "roi_pool": lambda x: F.roi_pool(x, rois, (2, 2)),
        "roi_align": lambda x: F.roi_align(x, rois, (2, 2), sampling_ratio=2),
        "interpolate": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
        "max_pool2d": lambda x: F.max_pool2d(x, 2),
    }


OP_NAMES = list(_ops("cpu"))


@pytest.mark.parametrize("op", OP_NAMES)
def test_backward_rejects_a_gradient_of_another_shape(device, op):
    x = _t(np.random.default_rng(1).standard_normal((1, 2, 6, 6)), device)
    y = _ops(device)[op](x)
    for bad in [(1,) + y.shape[1:-1] + (y.shape[-1] + 1,), y.shape[:-1], (y.size,)]:
        with pytest.raises(ValueError, match=r"backward: grad has shape .* but the output has shape"):
            y.backward(np.ones(bad))
    assert x.grad is None  # nothing ran


@pytest.mark.parametrize("op", OP_NAMES)
def test_backward_with_a_given_gradient_is_its_vector_jacobian_product(device, op):
    """x.grad after y.backward(G) equals d(sum(G * y))/dx; G given as a non-contiguous float32 array
    for a float64 output (the engine casts it and makes it contiguous)."""
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((1, 2, 6, 6))
    x = _t(xa, device)
    y = _ops(device)[op](x)
    g64 = rng.standard_normal(y.shape)
    G = np.asfortranarray(g64.astype(np.float32))
    y.backward(G)
    x2 = _t(xa, device)
    (_ops(device)[op](x2) * mc.tensor(G.astype(np.float64), device=device)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_backward_of_a_leaf_checks_the_gradient_too():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), but the output has shape \(2,\)"):
        x.backward(np.ones(3))


# ---- in-place changes: counted, and caught at backward when backward needs the old values ----------
def test_in_place_change_of_a_saved_input_raises_at_backward(device):
    x = mc.tensor([1.0, 2.0, 3.0], device=device)
    w = mc.tensor([0.5, -1.0, 2.0], device=device, requires_grad=True)
    y = (x * w).sum()  # backward needs x: gw = x
    x[1] = 10.0
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation: input 0 of Mul .* version 1; expected version 0"):
        y.backward()


def test_in_place_change_of_a_saved_output_raises_at_backward(device):
    x = mc.tensor([-1.0, 0.5, 2.0], device=device, requires_grad=True)
    y = F.sigmoid(x)  # backward needs y
    z = y.detach()  # shares y's memory and its version counter, as in PyTorch
    z.mul_(2.0)
    with pytest.raises(RuntimeError, match="output 0 of Sigmoid"):
        y.sum().backward()


def test_in_place_change_of_what_backward_does_not_need_is_allowed(device):
    x = mc.tensor([1.0, 2.0], device=device)
    w = mc.tensor([3.0, 4.0], device=device, requires_grad=True)
    y = (x + w).sum()  # Add saves nothing
    x.add_(5.0)
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(x.numpy(), [6.0, 7.0])


def test_in_place_ops_compute_like_numpy():
    a = np.arange(6.0).reshape(2, 3)
    t = mc.tensor(a)
    t.add_(1).mul_(2).sub_(mc.tensor([1.0, 1.0, 1.0]), alpha=2).div_(4).clamp_(0.5, 2.0)
    ref = np.clip(((a + 1) * 2 - 2) / 4, 0.5, 2.0)
    np.testing.assert_array_equal(t.numpy(), ref)
    assert t._version.value == 5
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), 0)


def test_leaf_that_requires_grad_changes_in_place_only_under_no_grad():
    w = mc.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: a leaf tensor that requires grad"):
        w.add_(1.0)
    with mc.no_grad():
        w.add_(1.0)
    np.testing.assert_array_equal(w.numpy(), [2.0, 3.0])


# ---- copies where PyTorch copies -------------------------------------------------------------------
def test_tensor_copies_its_array_and_from_numpy_shares_it():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t, s = mc.tensor(a), mc.from_numpy(a)
    a[0] = 7.0
    assert t.numpy()[0] == 1.0 and s.numpy()[0] == 7.0
    assert mc.tensor(t).data is not t.data


@pytest.mark.parametrize("src,dst", [("cpu", "cuda-emu"), ("cuda-emu", "cpu"), ("cpu", "cpu")])
def test_to_another_device_copies(src, dst):
    x = mc.tensor([1.0, 2.0], device=src)
    y = x.to(dst)
    x[0] = 5.0
    assert y.numpy()[0] == 1.0 and y.device.name == dst


# ---- integer inputs of float math are promoted to float32, as PyTorch does --------------------------
INT_DTYPES = [np.int32, np.int64, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_float_math_on_integers_promotes_like_torch(device, dtype):
    a = (np.arange(12).reshape(2, 6) % 5).astype(dtype)
    x = mc.tensor(a, device=device)
    ta = torch.from_numpy(a.astype(np.float32))
    d = (np.arange(12).reshape(2, 6) % 3 + 1).astype(dtype)  # no zero divisors
    cases = {
        "sigmoid": (F.sigmoid(x), torch.sigmoid(ta)),
        "tanh": (F.tanh(x), torch.tanh(ta)),
        "log_softmax": (F.log_softmax(x, dim=1), torch.log_softmax(ta, 1)),
        "softmax": (F.softmax(x, dim=0), torch.softmax(ta, 0)),
        "var": (F.var(x, axis=1), ta.var(1)),
        "mean": (F.mean(x), ta.mean()),
        "exp": (x.exp(), ta.exp()),
        "div": (x / mc.tensor(d, device=device), ta / torch.from_numpy(d.astype(np.float32))),
        "layer_norm": (F.layer_norm(x, (6,)), torch.nn.functional.layer_norm(ta, (6,))),
        "batch_norm": (F.batch_norm(x, None, None, training=True),
                       torch.nn.functional.batch_norm(ta, None, None, training=True)),
    }
    for name, (ours, theirs) in cases.items():
        assert ours.dtype == np.float32, name
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-6, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
@pytest.mark.parametrize("layer", ["BatchNorm2d", "InstanceNorm2d", "GroupNorm", "LayerNorm"])
def test_norm_layers_on_integer_images_equal_the_float_result(device, layer, dtype):
    """In the int dtype eps is cast to 0, and a constant plane (variance 0) gives NaN."""
    a = np.random.default_rng(3).integers(0, 255, size=(2, 4, 3, 3)).astype(dtype)
    a[:, 0] = 7  # channel 0 constant
    a[0, 1:] = 9  # sample 0 constant beyond channel 0
    make = {"BatchNorm2d": lambda m: m.BatchNorm2d(4), "InstanceNorm2d": lambda m: m.InstanceNorm2d(4),
            "GroupNorm": lambda m: m.GroupNorm(2, 4), "LayerNorm": lambda m: m.LayerNorm((3, 3))}[layer]
    ours = make(mc.nn).to(device)(mc.tensor(a, device=device))
    theirs = make(torch.nn)(torch.from_numpy(a.astype(np.float32)))
    assert ours.dtype == np.float32 and not np.isnan(ours.numpy()).any()
    # atol: PyTorch's float32 mean of a constant plane is off by an ulp, which 1/sqrt(eps) scales to 3e-5
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-4)


# ---- dtypes the kernels cannot take ------------------------------------------------------------------
def test_big_endian_arrays_are_converted_on_the_way_in(device):
    a = np.random.default_rng(4).standard_normal((1, 1, 5, 5)).astype(">f4")
    w = np.ones((1, 1, 3, 3), dtype=">f4")
    y = F.conv2d(mc.tensor(a, device=device), mc.tensor(w, device=device))
    ref = F.conv2d(mc.tensor(a.astype("<f4"), device=device), mc.tensor(w.astype("<f4"), device=device))
    assert mc.tensor(a).dtype.isnative
    np.testing.assert_array_equal(y.numpy(), ref.numpy())


# ---- F.pad with negative pads crops, in every mode (PyTorch's semantics) -----------------------------
@given(a=arrays((2, 3, 5)), pads=st.lists(st.integers(-2, 3), min_size=4, max_size=4),
       mode=st.sampled_from(["constant", "reflect", "replicate"]))
@example(a=np.arange(30.0).reshape(2, 3, 5), pads=[-1, 2, 0, 0], mode="constant")
@example(a=np.arange(30.0).reshape(2, 3, 5), pads=[0, 0, -2, -2], mode="constant")  # size 3 - 4 < 0
def test_pad_with_negative_pads_matches_torch(a, pads, mode):
    if mode == "reflect" and max(pads[0], pads[1]) >= 5 or mode == "reflect" and max(pads[2], pads[3]) >= 3:
        return
    if 5 + pads[0] + pads[1] < 0 or 3 + pads[2] + pads[3] < 0:  # PyTorch refuses these too
        with pytest.raises(ValueError, match="would leave a negative size"):
            F.pad(mc.tensor(a), tuple(pads), mode=mode)
        with pytest.raises(RuntimeError):
            torch.nn.functional.pad(torch.tensor(a), tuple(pads), mode=mode)
        return
    x = mc.tensor(a, requires_grad=True)
    y = F.pad(x, tuple(pads), mode=mode)
    ta = torch.tensor(a, requires_grad=True)
    ty = torch.nn.functional.pad(ta, tuple(pads), mode=mode)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    g = np.random.default_rng(0).standard_normal(ty.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), ta.grad.numpy(), rtol=1e-12)


def test_pad_that_would_leave_a_negative_size_is_refused():
    with pytest.raises(ValueError, match=r"pad: padding \(-4, -2\) of axis 1 would leave a negative size"):
        F.pad(mc.zeros(2, 5), (-4, -2))


# ---- the cuda device without a GPU: one clear line that names cuda-emu ---------------------------------
@pytest.mark.skipif(cuda_is_available(), reason="a GPU is present")
@pytest.mark.parametrize("make", [lambda: mc.tensor([1.0], device="cuda"), lambda: mc.zeros(2).to("cuda"),
                                  lambda: mc.nn.Linear(2, 2).to("cuda")])
def test_cuda_without_a_gpu_says_so_in_one_line(make):
    with pytest.raises(CudaUnavailableError) as info:
        make()
    msg = str(info.value)
    assert msg.startswith("cuda:") and "cuda-emu" in msg and "\n" not in msg


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16])
def test_relu_keeps_integer_and_half_dtypes_on_every_device(device, dtype):
    """PyTorch's relu keeps the dtype; the kernels take float32/float64 only, so these go through xp."""
    a = np.array([[-3, 0, 2], [5, -1, 7]]).astype(dtype)
    y = F.relu(mc.tensor(a, device=device))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), np.maximum(a, 0))


KERNEL_OPS = {
    "conv2d": lambda x: F.conv2d(x, mc.tensor(np.ones((1, 1, 3, 3), dtype=x.dtype), device=x.device)),
    "max_pool2d": lambda x: F.max_pool2d(x, 2),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 2),
    "interpolate": lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
    "roi_align": lambda x: F.roi_align(x, mc.tensor([[0, 0.0, 0.0, 3.0, 3.0]], device=x.device), (2, 2)),
    "roi_pool": lambda x: F.roi_pool(x, mc.tensor([[0, 0.0, 0.0, 3.0, 3.0]], device=x.device), (2, 2)),
    "local_response_norm": lambda x: F.local_response_norm(x, 3),
}


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
@pytest.mark.parametrize("op", list(KERNEL_OPS))
def test_kernel_ops_refuse_dtypes_the_kernels_cannot_take(device, op, dtype):
    """float16 and float128 used to pass a ``kind == 'f'`` test and fail inside Numba."""
    x = mc.tensor(np.ones((1, 1, 6, 6), dtype=dtype), device=device)
    with pytest.raises(TypeError, match=rf"{op}: input must be float32 or float64, got {np.dtype(dtype)}"):
        KERNEL_OPS[op](x)
