"""Test configuration: hypothesis profiles and the device fixtures.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (default, modest), ``thorough`` (long runs), ``dev``.
Devices: every op test runs on ``cpu`` and ``cuda-emu``; on ``cuda`` only where a GPU exists.
"""
import os

import pytest

from minicnn.device import cuda_is_available
from minicnn.testing.strategies import register_profiles
from hypothesis import settings

register_profiles()
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DEVICES = ["cpu", "cuda-emu", "cuda"]


def device_param(name):
    marks = []
    if name == "cuda":
        marks.append(pytest.mark.gpu)
        marks.append(pytest.mark.skipif(not cuda_is_available(), reason="no GPU: CuPy sees no CUDA device"))
    return pytest.param(name, marks=marks, id=name)


DEVICE_PARAMS = [device_param(d) for d in DEVICES]


@pytest.fixture
def torch_one_thread():
    """PyTorch on one thread for the test (``pytestmark = pytest.mark.usefixtures("torch_one_thread")``):
    its OpenMP pool and Numba's fight over the 2 cores (a tiny float64 forward took 8 s, not 20 ms)."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=DEVICE_PARAMS)
def device(request):
    """Each op test runs once per device."""
    return request.param


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped with a reason when none is present)")
    config.addinivalue_line("markers", "slow: long-running (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "sanitizer: runs the emulator under a sanitizer in a subprocess")
