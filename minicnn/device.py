"""Devices: where a tensor's array lives and which kernels run on it.

=============  ==========  =================================================================
name           ``xp``      kernels
=============  ==========  =================================================================
``cpu``        numpy       Numba kernels of ``kernels/cpu``
``cuda``       cupy        the CUDA C of ``kernels/cuda`` through ``cupy.RawModule`` (NVRTC)
``cuda-emu``   numpy       the same CUDA C compiled by g++ and run on the CPU (tests, learning)
=============  ==========  =================================================================

CuPy is imported only when the ``cuda`` device is first used, so ``import minicnn`` works
without it.
"""
import numpy as np

DEVICE_NAMES = ("cpu", "cuda", "cuda-emu")


class Device:
    """One device: ``name``, its array module ``xp`` and its kernel namespace ``kernels``."""

    def __init__(self, name):
        if name not in DEVICE_NAMES:
            raise ValueError(f"unknown device {name!r}; expected one of {DEVICE_NAMES}")
        self.name = name
        self._xp = None
        self._kernels = None

    @property
    def xp(self):
        if self._xp is None:
            if self.name == "cuda":
                self._xp = _import_cupy()
            else:
                self._xp = np
        return self._xp

    @property
    def kernels(self):
        """The kernel namespace: ``device.kernels.max_pool2d_forward(x, ...)`` etc."""
        if self._kernels is None:
            if self.name == "cpu":
                from .kernels import cpu

                self._kernels = cpu.kernels()
            else:
                from .kernels import cuda

                if self.name == "cuda":
                    self.xp  # noqa: B018 - raises CudaUnavailableError where no GPU can be used
                backend = cuda.cupy_backend() if self.name == "cuda" else cuda.emulator_backend()
                self._kernels = cuda.kernels(backend)
        return self._kernels

    def to_numpy(self, a):
        """A NumPy copy (or view, on the CPU devices) of array ``a`` of this device."""
        return a.get() if self.name == "cuda" else np.asarray(a)

    def from_numpy(self, a):
        """Array ``a`` placed on this device (a copy when it moves to the GPU)."""
        return self.xp.asarray(a)

    def __repr__(self):
        return f"device({self.name!r})"

    def __eq__(self, other):
        return isinstance(other, Device) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


class CudaUnavailableError(RuntimeError):
    """The ``cuda`` device was asked for where no CUDA GPU can be used; the message says why in one
    line and names ``cuda-emu``."""


_NO_GPU_HINT = "use device='cuda-emu' to run the same CUDA kernels on the CPU, or 'cpu'"


def _import_cupy():
    """CuPy, once it is known to see a usable GPU; :class:`CudaUnavailableError` otherwise (raised
    here, before any array is made, instead of CuPy's traceback from deep inside an allocation)."""
    try:
        import cupy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise CudaUnavailableError(
            f"cuda: the 'cuda' device needs CuPy (pip install 'minicnn[gpu]'); {_NO_GPU_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, insufficient driver, no device
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CudaUnavailableError(f"cuda: no usable CUDA GPU or driver ({reason}); {_NO_GPU_HINT}") from None
    if count < 1:
        raise CudaUnavailableError(f"cuda: CuPy sees no CUDA GPU; {_NO_GPU_HINT}")
    return cupy


_DEVICES = {name: Device(name) for name in DEVICE_NAMES}


def get_device(device=None):
    """The :class:`Device` named ``device`` (a name or a Device; None means ``cpu``)."""
    if device is None:
        return _DEVICES["cpu"]
    if isinstance(device, Device):
        return device
    if isinstance(device, str) and device in _DEVICES:
        return _DEVICES[device]
    raise ValueError(f"unknown device {device!r}; expected one of {DEVICE_NAMES}")


def cuda_is_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def device_of_array(a):
    """``cuda`` for a CuPy array, else ``cpu``."""
    return _DEVICES["cuda"] if type(a).__module__.startswith("cupy") else _DEVICES["cpu"]
