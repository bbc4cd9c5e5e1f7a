"""The CUDA emulator: run the SAME ``.cu`` text that NVRTC compiles for the GPU on the CPU.

:class:`EmuModule` mirrors ``cupy.RawModule``: ``EmuModule(code, options).get_function(name)``
returns a kernel called like ``cupy.RawKernel``: ``k(grid, block, args, shared_mem=0)``.
The source is compiled by g++ against a small header (``cuda_emu.h``: threadIdx/blockIdx,
``__shared__``, ``__syncthreads``, atomics, math) and run through ctypes, with NumPy arrays in
place of CuPy arrays. Blocks run one after another (over several cores when they cannot
interact); the threads of a block run as a loop, or as fibers when the kernel has barriers.

What it catches that a plain CPU port would not: wrong argument types (a Python float for a
``float`` parameter), launch-limit violations, barrier divergence, missing barriers (shared
memory is poisoned with NaN at each block start and threads run in a scrambled order), and,
under ``MINICNN_EMU_SANITIZE``, out-of-bounds accesses (ASan), undefined behaviour (UBSan) and
races between the threads of a block (TSan). README.md in this folder states what it cannot do.
"""
from ._build import EmuCompileError, sanitize_mode
from ._module import EmuKernel, EmuLaunchError, EmuModule, flush_to_zero

__all__ = ["EmuModule", "EmuKernel", "EmuCompileError", "EmuLaunchError", "flush_to_zero", "sanitize_mode"]
