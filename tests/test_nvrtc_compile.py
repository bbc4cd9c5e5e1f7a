"""Every CUDA source compiles with NVRTC for sm_80 and sm_90, warning-free, within 48 KiB of smem.

NVRTC is the compiler CuPy uses, and it needs no GPU or driver, so this runs everywhere cupy and
nvidia-cuda-nvrtc are installed. The files are globbed: a new kernels/cuda/*.cu is picked up
without touching this test. Each is compiled once per scalar type (float, double) exactly as
CudaBackend hands it to CuPy (module_source), with NVRTC_OPTIONS.
"""
import glob
import os
import struct

import pytest

from minicnn.kernels.cuda._launch import NVRTC_OPTIONS, module_source

compile_check = pytest.importorskip("minicnn.kernels.cuda.compile_check")
try:
    compile_check.nvrtc_module()
except ImportError as e:
    pytest.skip(str(e), allow_module_level=True)

ARCHS = compile_check.ARCHS
CUDA_FILES = compile_check.cuda_sources()
CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator_cases")
CASE_FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CASES, "*.cu")))


def check(result):
    assert result.kernels, f"ptxas reported no kernels for {result.name}:\n{result.log}"
    for k in result.kernels.values():
        assert k.registers > 0 and k.shared_bytes <= compile_check.MAX_SHARED_BYTES


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cu_file", CUDA_FILES or [None])
def test_kernel_sources_compile(cu_file, dtype, arch):
    if cu_file is None:
        pytest.skip("no kernels/cuda/*.cu yet")
    check(compile_check.compile_with_nvrtc(module_source(cu_file, dtype), NVRTC_OPTIONS, arch,
                                           name=f"{cu_file}<{dtype}>"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", CASE_FILES)
def test_emulator_cases_compile(case, arch):
    # the deliberately broken cases are wrong at run time, but must be valid CUDA
    path = os.path.join(CASES, case)
    with open(path) as f:
        code = f'typedef float scalar_t;\n#line 1 "{path}"\n' + f.read()
    check(compile_check.compile_with_nvrtc(code, NVRTC_OPTIONS, arch, name=case))


def test_warnings_are_errors():
    code = 'extern "C" __global__ void k(float* x) { int unused; x[0] = 1.0f; }'
    with pytest.raises(compile_check.NvrtcCompileError, match="warning"):
        compile_check.compile_with_nvrtc(code, NVRTC_OPTIONS, "sm_80")


def test_compile_errors_carry_the_log():
    code = '#line 1 "bad.cu"\nextern "C" __global__ void k(float* x) { x[0] = INFINITY; }'
    with pytest.raises(compile_check.NvrtcCompileError, match=r'bad\.cu\(1\).*INFINITY'):
        compile_check.compile_with_nvrtc(code, NVRTC_OPTIONS, "sm_90")


def test_resource_report_is_parsed():
    code = ('extern "C" __global__ void k(float* x) { __shared__ float s[300]; '
            's[threadIdx.x] = x[threadIdx.x]; __syncthreads(); x[threadIdx.x] = s[299 - threadIdx.x]; }')
    r = compile_check.compile_with_nvrtc(code, NVRTC_OPTIONS, "sm_80")
    assert r.kernels["k"].shared_bytes == 1200
    assert r.kernels["k"].spill_stores == 0
    assert "--std=c++17" in r.options and "--gpu-architecture=sm_80" in r.options


# ---- instruction report ------------------------------------------------------------------------------
# Budgets per element written (3×3 window): a quarter of the figures of the kernels these replaced
# (one thread per column entry, 64-bit index math), measured the same way on sm_80 float32:
# SASS im2col 416, col2im 3124; PTX im2col 134. A figure going up is a regression. (PTX, counted
# only where nvdisasm is missing, hides the cost of divisions: col2im has no PTX budget.)
INSTRUCTION_BUDGETS = {"SASS": {"im2col_i32": 416 / 4, "col2im_i32": 3124 / 4},
                       "PTX": {"im2col_i32": 134 / 4}}


@pytest.mark.parametrize("arch", ARCHS)
def test_im2col_col2im_instruction_budget(arch):
    result = compile_check.compile_with_nvrtc(module_source("conv.cu", "float32"), NVRTC_OPTIONS, arch,
                                              name="conv.cu<float32>")
    rows = {r.kernel: r for r in compile_check.instruction_report([result])}
    assert set(rows) == set(compile_check.REPORTED_KERNELS)
    for name, budget in INSTRUCTION_BUDGETS[rows["im2col_i32"].kind].items():
        assert rows[name].per_element <= budget, compile_check.format_instruction_report(list(rows.values()))
    assert rows["im2col_i32"].per_element < rows["im2col_i64"].per_element  # 32-bit math is cheaper


def test_instructions_per_element_weights_loops():
    ptx = """
        mov.u32 %r1, 0;
    $L__BB0_1:
        add.s32 %r1, %r1, 1;
    $L__BB0_2:
        add.s32 %r2, %r2, 1;
        @%p1 bra $L__BB0_2;
        @%p2 bra $L__BB0_1;
        ret;
    """
    # 2 outside (mov, ret) + 2 in the outer loop only (add, bra) × 3 + 2 in the inner loop × 3·3
    assert compile_check.instructions_per_element(ptx, (3, 3), 1, kind="ptx") == 2 + 2 * 3 + 2 * 9
    assert compile_check.instructions_per_element(ptx, (3, 3), 4, kind="ptx") == (2 + 6 + 18) / 4


def test_cubin_is_completed_to_its_elf_size():
    result = compile_check.compile_with_nvrtc('extern "C" __global__ void k(float* x) { x[0] = 1.0f; }',
                                              NVRTC_OPTIONS, "sm_80")
    cubin = result.cubin
    phoff, shoff = struct.unpack_from("<QQ", cubin, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", cubin, 0x36)
    assert len(cubin) >= max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    assert compile_check.complete_elf(cubin) == cubin
