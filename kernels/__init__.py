"""Hand-written kernels of minicnn: arrays in, arrays out.

This package never imports ``minicnn``. It has four parts:

- ``reference/``: slow, obviously correct NumPy loops (the test oracle);
- ``cpu/``: Numba kernels (the ``cpu`` device);
- ``cuda/``: CUDA C kernels (``*.cu``) and their thin Python launch wrappers, shared by the
  ``cuda`` device (CuPy ``RawModule``) and the ``cuda-emu`` device (the same ``.cu`` on the CPU);
- ``emulator/``: compiles a ``.cu`` with g++ against a small header and runs it through ctypes.

Every kernel name exists on all three devices (``cpu.KERNELS``, ``cuda.KERNELS``).
"""
