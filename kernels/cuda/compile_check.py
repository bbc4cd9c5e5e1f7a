"""Compile CUDA C with NVRTC, without a GPU, the way CuPy will on one; report registers and memory.

NVRTC (the ``nvidia-cuda-nvrtc`` wheel, through ``cupy.cuda.nvrtc``) needs no driver. Each module
is compiled with exactly the options CuPy gets (:data:`NVRTC_OPTIONS`) plus
``--gpu-architecture=sm_80`` or ``sm_90``, so NVRTC runs ptxas and produces a cubin. One more
option, ``--ptxas-options=-v``, only makes ptxas print its per-kernel resource report
(registers, spill stores/loads, stack frame, static shared memory) into the program log: the
same figures ``cuobjdump --dump-resource-usage`` gives, with no driver and no CUDA toolkit.
Any warning in the log (front end or ptxas) is treated as an error.

Run ``python -m minicnn.kernels.cuda.compile_check`` for a table of every ``kernels/cuda/*.cu``.
"""
import glob
import os
import re
from dataclasses import dataclass, field

from ._launch import CUDA_DIR, NVRTC_OPTIONS, module_source

ARCHS = ("sm_80", "sm_90")
MAX_SHARED_BYTES = 48 * 1024  # static shared memory a kernel may use without opting in

_ENTRY_RE = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_PROPS_RE = re.compile(r"Function properties for (\w+)")
_FRAME_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED_RE = re.compile(r"Used (\d+) registers")
_SMEM_RE = re.compile(r"(\d+) bytes smem")
_WARNING_RE = re.compile(r"\bwarning\b", re.I)


class NvrtcCompileError(RuntimeError):
    """NVRTC rejected the source, or (warnings being errors) warned about it."""


@dataclass
class KernelResources:
    """ptxas's report for one kernel (``__global__`` entry)."""
    name: str
    registers: int = 0
    shared_bytes: int = 0
    stack_frame: int = 0
    spill_stores: int = 0
    spill_loads: int = 0


@dataclass
class CompileResult:
    name: str
    arch: str
    options: tuple
    log: str
    cubin_size: int
    kernels: dict = field(default_factory=dict)  # name -> KernelResources

    def table(self):
        rows = [f"{self.name} [{self.arch}]"]
        for k in self.kernels.values():
            rows.append(f"  {k.name:40s} {k.registers:4d} regs  {k.shared_bytes:6d} B smem  "
                        f"{k.stack_frame:5d} B stack  {k.spill_stores}/{k.spill_loads} B spill st/ld")
        return "\n".join(rows)


def nvrtc_module():
    """``cupy.cuda.nvrtc`` if it imports and finds libnvrtc; else raise ImportError with why."""
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as e:  # cupy missing, or libnvrtc not found
        raise ImportError(f"NVRTC is not usable: {type(e).__name__}: {e} "
                          "(install cupy-cuda13x and nvidia-cuda-nvrtc)") from e
    return nvrtc


def parse_ptxas_report(log):
    """``{kernel: KernelResources}`` from the ``ptxas info`` lines of a ``-v`` compile log."""
    kernels, current = {}, None
    for line in log.splitlines():
        m = _ENTRY_RE.search(line)
        if m:
            current = kernels.setdefault(m.group(1), KernelResources(m.group(1)))
            continue
        m = _PROPS_RE.search(line)
        if m:  # device functions have properties too; keep only entries
            current = kernels.get(m.group(1))
            continue
        if current is None:
            continue
        m = _FRAME_RE.search(line)
        if m:
            current.stack_frame, current.spill_stores, current.spill_loads = map(int, m.groups())
        m = _USED_RE.search(line)
        if m:
            current.registers = int(m.group(1))
            s = _SMEM_RE.search(line)
            current.shared_bytes = int(s.group(1)) if s else 0
    return kernels


def compile_with_nvrtc(code, options=NVRTC_OPTIONS, arch="sm_80", name="module.cu", warnings_as_errors=True):
    """Compile ``code`` for ``arch``; return a :class:`CompileResult` with ptxas's per-kernel report.

    Raises :class:`NvrtcCompileError` with NVRTC's log on an error, or on a warning when
    ``warnings_as_errors``, or when a kernel uses more than 48 KiB of static shared memory.
    """
    nvrtc = nvrtc_module()
    opts = tuple(options) + (f"--gpu-architecture={arch}", "--ptxas-options=-v")
    prog = nvrtc.createProgram(code, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(opts))
        except nvrtc.NVRTCError as e:
            raise NvrtcCompileError(f"NVRTC failed to compile {name} for {arch} ({e}):\n"
                                    f"{nvrtc.getProgramLog(prog)}") from None
        log = nvrtc.getProgramLog(prog)
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    warnings = [ln for ln in log.splitlines() if _WARNING_RE.search(ln)]
    if warnings and warnings_as_errors:
        raise NvrtcCompileError(f"NVRTC warned while compiling {name} for {arch} (warnings are errors):\n{log}")
    result = CompileResult(name, arch, opts, log, len(cubin), parse_ptxas_report(log))
    for k in result.kernels.values():
        if k.shared_bytes > MAX_SHARED_BYTES:
            raise NvrtcCompileError(f"{name} [{arch}]: kernel {k.name!r} uses {k.shared_bytes} bytes of static "
                                    f"shared memory, more than {MAX_SHARED_BYTES}")
    return result


def cuda_sources():
    """The ``kernels/cuda/*.cu`` files (names), sorted."""
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(CUDA_DIR, "*.cu")))


def check_all(archs=ARCHS, dtypes=("float32", "float64")):
    """Compile every ``kernels/cuda/*.cu`` for every dtype and arch; return the results."""
    results = []
    for cu in cuda_sources():
        for dtype in dtypes:
            for arch in archs:
                results.append(compile_with_nvrtc(module_source(cu, dtype), arch=arch, name=f"{cu}<{dtype}>"))
    return results


if __name__ == "__main__":
    found = check_all()
    for r in found:
        print(r.table())
    print(f"{len(found)} compiles, no warnings" if found else "no kernels/cuda/*.cu files")
