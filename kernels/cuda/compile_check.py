"""Compile CUDA C with NVRTC, without a GPU, the way CuPy will on one; report registers and memory.

NVRTC (the ``nvidia-cuda-nvrtc`` wheel, through ``cupy.cuda.nvrtc``) needs no driver. Each module
is compiled with exactly the options CuPy gets (:data:`NVRTC_OPTIONS`) plus
``--gpu-architecture=sm_80`` or ``sm_90``, so NVRTC runs ptxas and produces a cubin. One more
option, ``--ptxas-options=-v``, only makes ptxas print its per-kernel resource report
(registers, spill stores/loads, stack frame, static shared memory) into the program log: the
same figures ``cuobjdump --dump-resource-usage`` gives, with no driver and no CUDA toolkit.
Any warning in the log (front end or ptxas) is treated as an error.

Instruction report. :func:`instruction_report` disassembles the cubin with ``nvdisasm`` (the
``nvidia-cuda-nvdisasm`` wheel, or a CUDA toolkit on the PATH) and estimates the SASS
instructions a kernel spends per element it writes (:func:`instructions_per_element`); without
nvdisasm it counts PTX instructions instead, labelled as such. The figures of the kernels in
:data:`REPORTED_KERNELS` are a performance check a reviewer can follow from commit to commit.

Run ``python -m minicnn.kernels.cuda.compile_check`` for a table of every ``kernels/cuda/*.cu``
and the instruction report.
"""
import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
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
    cubin: bytes = b""
    ptx: str = ""

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
        cubin = complete_elf(nvrtc.getCUBIN(prog))
        ptx = nvrtc.getPTX(prog)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    finally:
        nvrtc.destroyProgram(prog)
    warnings = [ln for ln in log.splitlines() if _WARNING_RE.search(ln)]
    if warnings and warnings_as_errors:
        raise NvrtcCompileError(f"NVRTC warned while compiling {name} for {arch} (warnings are errors):\n{log}")
    result = CompileResult(name, arch, opts, log, len(cubin), parse_ptxas_report(log), cubin, ptx)
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


# ---- instruction report ------------------------------------------------------------------------------

#: kernel -> (trip counts of its nested loops, innermost last; elements it writes per thread), for a
#: 3×3 window: the im2col kernels write kH·kW = 9 column entries per thread in two nested tap loops;
#: col2im writes one input element per thread after visiting 3·3 taps.
REPORTED_KERNELS = {
    "im2col_i32": ((3, 3), 9), "im2col_i64": ((3, 3), 9),
    "col2im_i32": ((3, 3), 1), "col2im_i64": ((3, 3), 1),
}

#: The implicit-GEMM convolution forward (conv_igemm.cu) on a 64-channel 3×3 layer: its chunk loop
#: runs R/BK = 64·9/16 = 36 times and each thread writes TM·TN = 16 outputs, so the figure is the
#: instructions per output element, each a sum of R = 576 multiply-adds (ideal: 1.5 per multiply-add,
#: 16 FFMA + 8 LDS per 16 updates). Reported in its own table (IGEMM_MULTIPLY_ADDS divides it).
IGEMM_REPORTED_KERNELS = {"conv2d_igemm_forward": ((36,), 16)}
IGEMM_MULTIPLY_ADDS = 576

_ADDR_RE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_SASS_LABEL_RE = re.compile(r"^(\.L_x_\d+):")
_SASS_TARGET_RE = re.compile(r"\bBRA\b.*`\((\.L_x_\d+)\)")
_PTX_LABEL_RE = re.compile(r"^(\$L__\w+):")
_PTX_TARGET_RE = re.compile(r"\bbra(?:\.uni)?\s+(\$L__\w+)")


def complete_elf(cubin):
    """``cubin`` padded with zero bytes to the size its ELF header declares (``cupy.cuda.nvrtc``
    returns the image one byte short, which ``nvdisasm`` then refuses)."""
    if cubin[:4] != b"\x7fELF" or len(cubin) < 64:
        return cubin
    phoff, shoff = struct.unpack_from("<QQ", cubin, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", cubin, 0x36)
    size = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    return cubin + b"\0" * max(0, size - len(cubin))


def find_nvdisasm():
    """Path of ``nvdisasm`` ($NVDISASM, the PATH, or the ``nvidia-cuda-nvdisasm`` wheel), or None."""
    candidates = [os.environ.get("NVDISASM"), shutil.which("nvdisasm")]
    for base in sys.path:
        for sub in ("cu13", "cu12", "cuda_nvdisasm"):
            candidates.append(os.path.join(base, "nvidia", sub, "bin", "nvdisasm"))
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def sass_listing(cubin, nvdisasm=None):
    """``{kernel: text}``: nvdisasm's SASS of every function section of ``cubin``."""
    nvdisasm = nvdisasm or find_nvdisasm()
    if nvdisasm is None:
        raise FileNotFoundError("nvdisasm not found (pip install nvidia-cuda-nvdisasm)")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([nvdisasm, "-c", f.name], check=True, capture_output=True, text=True).stdout
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("//---") or line.lstrip().startswith(".section"):
            m = re.search(r"\.text\.(\w+)", line)
            current = m.group(1) if m and line.startswith("//---") else (current if not line.startswith("//---")
                                                                          else None)
            if current is not None:
                sections.setdefault(current, [])
            continue
        if current is not None:
            sections[current].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def ptx_listing(ptx):
    """``{kernel: text}``: the body of every ``.entry`` of a PTX module."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)\s*\{(.*?)\n\}", ptx, re.S):
        out[m.group(1)] = m.group(3)
    return out


def _instructions(text, kind):
    """``(instructions, label_index)``: the instruction texts in order and, per label, the index of
    the instruction that follows it."""
    label_re, instr, labels = (_SASS_LABEL_RE if kind == "sass" else _PTX_LABEL_RE), [], {}
    for raw in text.splitlines():
        line = raw.strip()
        m = label_re.match(line)
        if m:
            labels[m.group(1)] = len(instr)
            continue
        if kind == "sass":
            m = _ADDR_RE.search(raw)
            if m and not re.match(r"NOP\b", m.group(2)):
                instr.append(m.group(2))
        elif line.endswith(";") and not line.startswith((".", "//", "{", "}")):
            instr.append(line[:-1])
    return instr, labels


def instructions_per_element(text, trips, elements_per_thread, kind="sass"):
    """Estimated instructions executed per element written, from a kernel's static listing.

    Each backward branch (a branch to an earlier instruction) closes a loop; an instruction inside
    d nested loops counts ``trips[0]·…·trips[d−1]`` times (deeper loops reuse the last trip count),
    the total is divided by ``elements_per_thread``. Both sides of every branch count (an upper
    bound of any one path), and so does each out-of-line subroutine (e.g. a 64-bit division), once.
    Unrolled loops are straight code, so a kernel measured this way should keep its loops rolled
    (``#pragma unroll 1``) to be comparable."""
    instr, labels = _instructions(text, kind)
    target_re = _SASS_TARGET_RE if kind == "sass" else _PTX_TARGET_RE
    loops = []
    for i, ins in enumerate(instr):
        m = target_re.search(ins)
        if m and m.group(1) in labels and labels[m.group(1)] < i:  # (a branch to itself is a trap)
            loops.append((labels[m.group(1)], i))
    total = 0
    for i in range(len(instr)):
        depth = sum(1 for a, b in loops if a <= i <= b)
        weight = 1
        for d in range(depth):
            weight *= trips[min(d, len(trips) - 1)] if trips else 1
        total += weight
    return total / elements_per_thread


@dataclass
class InstructionFigure:
    """One row of the instruction report."""
    module: str
    arch: str
    kernel: str
    kind: str  # "SASS" or "PTX"
    static: int  # instructions in the listing
    per_element: float  # instructions_per_element


def instruction_report(results, kernels=None):
    """:class:`InstructionFigure` rows for the kernels of ``kernels`` (default
    :data:`REPORTED_KERNELS`) found in compile ``results``: SASS through nvdisasm where it is
    installed, PTX otherwise."""
    kernels = REPORTED_KERNELS if kernels is None else kernels
    nvdisasm = find_nvdisasm()
    rows = []
    for r in results:
        if not any(k in r.kernels for k in kernels):
            continue
        kind, listing = ("sass", sass_listing(r.cubin, nvdisasm)) if nvdisasm else ("ptx", ptx_listing(r.ptx))
        for name, (trips, per_thread) in kernels.items():
            if name in listing:
                text = listing[name]
                rows.append(InstructionFigure(r.name, r.arch, name, kind.upper(), len(_instructions(text, kind)[0]),
                                              instructions_per_element(text, trips, per_thread, kind)))
    return rows


def format_instruction_report(rows):
    lines = [f"{'module':16s} {'arch':6s} {'kernel':14s} {'kind':5s} {'static':>7s} {'per element':>12s}"]
    for f in rows:
        lines.append(f"{f.module:16s} {f.arch:6s} {f.kernel:14s} {f.kind:5s} {f.static:7d} {f.per_element:12.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    found = check_all()
    for r in found:
        print(r.table())
    print(f"{len(found)} compiles, no warnings" if found else "no kernels/cuda/*.cu files")
    figures = instruction_report(found)
    if figures:
        print("\ninstructions per element written (3×3 window; both sides of branches counted):")
        print(format_instruction_report(figures))
    igemm = instruction_report(found, IGEMM_REPORTED_KERNELS)
    if igemm:
        print(f"\nimplicit-GEMM convolution forward, per output element of a 64-channel 3×3 layer "
              f"({IGEMM_MULTIPLY_ADDS} multiply-adds each):")
        print(format_instruction_report(igemm))
        print("per multiply-add: " + ", ".join(f"{f.module} {f.arch} {f.per_element / IGEMM_MULTIPLY_ADDS:.2f}"
                                               for f in igemm))
