"""The tiled implicit-GEMM convolution forward (kernels/cuda/conv_igemm.cu) on cuda-emu: equal to the
plain-loop reference (kernels/reference/conv.py) and to the cuBLAS-path twin over drawn geometries,
tile tails included; the batch chunking of its 32-bit indexing; the ``conv_algorithm`` dispatch; the
emulator catching either barrier removed; and NVRTC's resource and instruction report."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.device import get_device
from minicnn.kernels.cuda import conv_igemm as I
from minicnn.kernels.cuda._launch import NVRTC_OPTIONS, module_source
from minicnn.kernels.emulator import EmuModule
from minicnn.kernels.reference import conv as R
from minicnn.testing.strategies import conv_geometry

EMU = get_device("cuda-emu")
BE = EMU.kernels.conv2d_forward.args[0]


def _out_hw(size, kernel, stride, padding, dilation):
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))


def _case(rng, geo, dtype, with_bias):
    N, C_in, G = geo["N"], geo["C_in"], geo["groups"]
    x = rng.standard_normal((N, C_in) + geo["size"]).astype(dtype)
    W = rng.standard_normal((geo["C_out"], C_in // G) + geo["kernel"]).astype(dtype)
    b = rng.standard_normal(geo["C_out"]).astype(dtype) if with_bias else None
    g = (geo["stride"], geo["padding"], geo["dilation"], G)
    return x, W, b, g, _out_hw(geo["size"], geo["kernel"], *g[:3])


def _reference(x, W, b, g, out):
    y = R.conv2d_forward(x.astype(np.float64), W.astype(np.float64), *g, out)
    return y if b is None else y + b.astype(np.float64).reshape(1, -1, 1, 1)


def _check(got, want, dtype, R_len):
    # float32: each output is a sum of R products of N(0, 1) values, rounded R times
    tol = 1e-12 if dtype == np.float64 else 4e-7 * max(1, R_len)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@pytest.fixture
def algorithm():
    """Set ``minicnn.backends.cuda.conv_algorithm`` for one test, restoring the default afterwards."""
    old = mc.backends.cuda.conv_algorithm

    def set_algorithm(name):
        mc.backends.cuda.conv_algorithm = name

    yield set_algorithm
    mc.backends.cuda.conv_algorithm = old


@pytest.fixture
def launched(monkeypatch):
    """Names of the kernels the cuda-emu backend launches during the test, one entry per launch."""
    names = []
    real = BE.function

    def recording(cu_file, name, dtype=np.float32):
        kernel = real(cu_file, name, dtype)

        def launch(*args, **kwargs):
            names.append(name)
            return kernel(*args, **kwargs)
        return launch

    monkeypatch.setattr(BE, "function", recording)
    return names


# ---- equal to the reference and to the GEMM path ------------------------------------------------------
@given(geo=conv_geometry(), dtype=st.sampled_from([np.float32, np.float64]), with_bias=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_implicit_gemm_matches_reference_and_gemm_path(geo, dtype, with_bias, seed):
    """Small geometries of the suite's strategy: stride, padding, dilation, groups (depthwise too)."""
    x, W, b, g, out = _case(np.random.default_rng(seed), geo, dtype, with_bias)
    y = I.conv2d_forward_implicit_gemm(BE, x, W, *g, out, b)
    assert y.dtype == dtype and y.shape == (geo["N"], geo["C_out"]) + out
    want = _reference(x, W, b, g, out)
    _check(y, want, dtype, W[0].size)
    gemm_path = EMU.kernels.conv2d_forward(x, W, *g, out, b)  # default algorithm: "gemm"
    _check(y, gemm_path.astype(np.float64), dtype, W[0].size)


@st.composite
def _tiled_geometry(draw):
    """Sizes past one tile in every direction: Mg up to 70 (> BM = 64), R = Cg·kH·kW up to 54
    (several BK = 16 chunks, the last partial), N·P up to 2·11·11 (several BN = 64 columns)."""
    G = draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, dilation = (draw(st.integers(1, 2)), 1), (1, draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 2)))
    size = tuple(draw(st.integers(d * (kk - 1) + 1, 11)) for kk, d in zip(k, dilation))
    return dict(N=draw(st.integers(1, 2)), C_in=G * draw(st.integers(2, 6)), C_out=G * draw(st.integers(1, 70)),
                groups=G, size=size, kernel=k, stride=stride, padding=padding, dilation=dilation)


@given(geo=_tiled_geometry(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_implicit_gemm_tile_tails(geo, dtype, seed):
    x, W, b, g, out = _case(np.random.default_rng(seed), geo, dtype, True)
    y = I.conv2d_forward_implicit_gemm(BE, x, W, *g, out, b)
    _check(y, _reference(x, W, b, g, out), dtype, W[0].size)


def test_a_layer_of_several_tiles_each_way():
    """Fixed case: 2 row tiles (Mg = 70), 5 chunks (R = 72, last one half full), 4 column tiles
    (N·P = 3·81 = 243), with a trailing padding the explicit output size leaves out."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 16, 9, 10))
    W = rng.standard_normal((140, 8, 3, 3))
    b = rng.standard_normal(140)
    g, out = ((1, 1), (1, 1), (1, 1), 2), (9, 9)  # OW = 9 < 10: the last input column is never read
    y = I.conv2d_forward_implicit_gemm(BE, x, W, *g, out, b)
    _check(y, _reference(x, W, b, g, out), np.float64, 72)


def test_tap_table_is_the_plain_loop():
    Cg, (H, W), (kH, kW), (dh, dw) = 3, (5, 7), (2, 3), (2, 1)
    table = I.tap_table(Cg, (H, W), (kH, kW), (dh, dw))
    assert table.dtype == np.int32 and table.shape == (Cg * kH * kW, 3)
    r = 0
    for c in range(Cg):
        for kh in range(kH):
            for kw in range(kW):
                assert tuple(table[r]) == (c * H * W + kh * dh * W + kw * dw, kh * dh, kw * dw)
                r += 1


# ---- 32-bit indexing: batch chunks, and the limits ---------------------------------------------------------
def test_batch_chunks_of_the_32_bit_limit_change_nothing(monkeypatch, launched):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 6, 7)).astype(np.float32)
    W = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    g, out = ((1, 2), (1, 0), (1, 1), 2), (6, 3)
    whole = I.conv2d_forward_implicit_gemm(BE, x, W, *g, out)
    assert launched.count(I.KERNEL) == 1
    monkeypatch.setattr(I, "INT32_MAX", 2 * 4 * 6 * 7)  # room for 2 images' x per launch
    launched.clear()
    chunked = I.conv2d_forward_implicit_gemm(BE, x, W, *g, out)
    assert launched.count(I.KERNEL) == 3  # images 0–1, 2–3, 4
    np.testing.assert_array_equal(chunked, whole)


def test_limits_on_huge_fake_shapes(algorithm):
    g1 = ((1, 1), (1, 1))  # padding, dilation
    assert I.fits((64, 64, 224, 224), (64, 64, 3, 3), 1, (224, 224), *g1)  # batch cut into chunks
    assert not I.fits((1, 2 ** 16, 2 ** 8, 2 ** 7), (8, 2 ** 16, 1, 1), 1, (2 ** 8, 2 ** 7), *g1)  # one image: 2³¹
    assert not I.fits((1, 70000, 4, 4), (70000, 1, 3, 3), 70000, (4, 4), *g1)  # grid z = G > 65535
    algorithm("implicit_gemm")
    assert I.choose_algorithm((1, 2 ** 16, 2 ** 8, 2 ** 7), (8, 2 ** 16, 1, 1), *g1, 1, (2 ** 8, 2 ** 7)) == "gemm"


def test_bad_arguments_raise_before_any_launch(launched):
    x, W = np.zeros((1, 4, 5, 5)), np.zeros((6, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_forward_implicit_gemm: x \(1, 4, 5, 5\), W \(6, 3, 3, 3\)"):
        I.conv2d_forward_implicit_gemm(BE, x, W, (1, 1), (0, 0), (1, 1), 1, (3, 3))
    with pytest.raises(TypeError, match="share one dtype"):
        I.conv2d_forward_implicit_gemm(BE, x.astype(np.float32), np.zeros((6, 4, 3, 3)), (1, 1), (0, 0), (1, 1), 1,
                                       (3, 3))
    with pytest.raises(ValueError, match=r"bias must be \(6,\)"):
        I.conv2d_forward_implicit_gemm(BE, x, np.zeros((6, 4, 3, 3)), (1, 1), (0, 0), (1, 1), 1, (3, 3), np.zeros(5))
    assert launched == []


# ---- dispatch -----------------------------------------------------------------------------------------
def test_setting_validates_and_defaults_to_gemm(algorithm):
    assert mc.backends.cuda.conv_algorithm == "gemm"
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        mc.backends.cuda.conv_algorithm = "winograd"
    algorithm("auto")
    assert I.settings.conv_algorithm == "auto"
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        I.choose_algorithm((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), 1, (8, 8), algorithm="fft")


@pytest.mark.parametrize("setting,C_in,groups,kernels", [
    ("gemm", 3, 1, ["im2col_i32"]),
    ("implicit_gemm", 16, 1, [I.KERNEL]),  # R = 144
    ("auto", 7, 1, [I.KERNEL]),  # R = 63 <= 64
    ("auto", 8, 1, ["im2col_i32"]),  # R = 72 > 64
    ("implicit_gemm", 4, 4, ["depthwise_forward"]),  # depthwise keeps its direct kernel
])
def test_forward_dispatch(setting, C_in, groups, kernels, algorithm, launched):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, C_in, 6, 5))
    W = rng.standard_normal((4, C_in // groups, 3, 3))
    g, out = ((1, 1), (1, 1), (1, 1), groups), (6, 5)
    algorithm(setting)
    y = EMU.kernels.conv2d_forward(x, W, *g, out)
    assert launched == kernels
    _check(y, _reference(x, W, None, g, out), np.float64, W[0].size)


def test_conv2d_op_under_implicit_gemm_equals_cpu_and_keeps_the_gemm_backward(algorithm, launched):
    """F.conv2d with bias on cuda-emu: the forward by the implicit GEMM, the backward by im2col/col2im."""
    rng = np.random.default_rng(5)
    x, W, b = rng.standard_normal((2, 6, 7, 8)), rng.standard_normal((9, 2, 3, 2)), rng.standard_normal(9)
    gy = rng.standard_normal((2, 9, 4, 4))
    results = {}
    for device in ("cpu", "cuda-emu"):
        algorithm("implicit_gemm" if device == "cuda-emu" else "gemm")
        ts = [mc.Tensor(a, device=device, requires_grad=True) for a in (x, W, b)]
        y = F.conv2d(*ts, stride=2, padding=1, dilation=(1, 2), groups=3)
        y.backward(mc.Tensor(gy, device=device))
        results[device] = [y.numpy()] + [t.grad.numpy() for t in ts]
    assert launched[0] == I.KERNEL and "im2col_i32" in launched and "col2im_i32" in launched
    for got, want in zip(results["cuda-emu"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---- the emulator catches a missing barrier ----------------------------------------------------------------
@pytest.mark.parametrize("barrier", ["tiles written", "tiles read"])
def test_emulator_catches_either_barrier_removed(barrier):
    """Without the first barrier a thread multiplies tile entries other threads have not written
    (0xFF bytes: NaN); without the second, a thread overwrites the tiles with the next chunk while
    others still read the current one. R = 72 gives 5 chunks."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    W = rng.standard_normal((20, 8, 3, 3)).astype(np.float32)
    g, out = ((1, 1), (1, 1), (1, 1), 1), (6, 6)
    want = _reference(x, W, None, g, out)
    code = module_source("conv_igemm.cu", np.float32)
    line = f"__syncthreads();  // {barrier}"
    assert code.count(line) == 1
    y = {}
    for name, source in (("with", code), ("without", code.replace(line, f"/* removed */  // {barrier}"))):
        kernel = EmuModule(source, NVRTC_OPTIONS).get_function(I.KERNEL)
        y[name] = np.zeros((2, 20) + out, dtype=np.float32)
        kernel((2, 1, 1), (I.THREADS,), (x, W, W, I.tap_table(8, (6, 6), (3, 3), (1, 1)), y[name], np.int32(2),
                                         np.int32(8), np.int32(6), np.int32(6), np.int32(20), np.int32(1),
                                         np.int32(72), np.int32(1), np.int32(1), np.int32(1), np.int32(1),
                                         np.int32(6), np.int32(6), np.int32(0)))
    _check(y["with"], want, np.float32, 72)
    assert not np.allclose(y["without"], want, rtol=1e-3, atol=1e-3, equal_nan=False)


# ---- NVRTC: resources and instructions ----------------------------------------------------------------------
compile_check = pytest.importorskip("minicnn.kernels.cuda.compile_check")


def _nvrtc():
    try:
        compile_check.nvrtc_module()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compile_report_registers_shared_memory_no_spills(arch, dtype):
    _nvrtc()
    r = compile_check.compile_with_nvrtc(module_source("conv_igemm.cu", dtype), NVRTC_OPTIONS, arch,
                                         name=f"conv_igemm.cu<{dtype}>")
    k = r.kernels[I.KERNEL]
    item = np.dtype(dtype).itemsize
    assert k.shared_bytes == (I.BK * (I.BM + 1) + I.BK * I.BN) * item < 48 * 1024
    assert k.spill_stores == k.spill_loads == 0 and k.stack_frame == 0
    assert 0 < k.registers <= 128  # two 256-thread blocks fit an SM's 64K registers


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_instruction_report_per_output_element(arch):
    """A 64-channel 3×3 layer: 576 multiply-adds per output element. The ideal inner loop costs
    1.5 instructions per multiply-add (16 FFMA + 8 LDS per 16); tile loads, bounds tests and the
    epilogue add the rest. A figure above 2.5 per multiply-add is a regression."""
    _nvrtc()
    r = compile_check.compile_with_nvrtc(module_source("conv_igemm.cu", "float32"), NVRTC_OPTIONS, arch,
                                         name="conv_igemm.cu<float32>")
    rows = compile_check.instruction_report([r], compile_check.IGEMM_REPORTED_KERNELS)
    assert [f.kernel for f in rows] == [I.KERNEL]
    per_madd = rows[0].per_element / compile_check.IGEMM_MULTIPLY_ADDS
    assert per_madd > 1.5
    if rows[0].kind == "SASS":
        assert per_madd <= 2.5, compile_check.format_instruction_report(rows)
