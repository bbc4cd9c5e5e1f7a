"""Every kernel exists on every device: the CPU and CUDA kernel namespaces have the same names,
and each CUDA wrapper takes the CPU wrapper's arguments (plus the leading backend)."""
import inspect

import pytest

from minicnn.kernels import cpu, cuda
from minicnn.kernels._registry import family_modules


def test_kernel_sets_are_equal():
    cpu_names = set(vars(cpu.kernels()))
    cuda_names = set(vars(cuda.kernels(cuda.emulator_backend())))
    assert cpu_names, "no CPU kernels were found"
    assert cpu_names - cuda_names == set(), f"CPU-only kernels: {sorted(cpu_names - cuda_names)}"
    assert cuda_names - cpu_names == set(), f"CUDA-only kernels: {sorted(cuda_names - cpu_names)}"


def _signatures(package, drop_first):
    sigs = {}
    for mod in family_modules(package):
        for name in mod.KERNELS:
            params = list(inspect.signature(getattr(mod, name)).parameters)
            sigs[name] = params[1:] if drop_first else params
    return sigs


def test_kernel_signatures_match():
    cpu_sigs = _signatures(cpu, drop_first=False)
    cuda_sigs = _signatures(cuda, drop_first=True)
    for name, params in cpu_sigs.items():
        if name in cuda_sigs:
            assert cuda_sigs[name] == params, f"{name}: cpu {params} vs cuda {cuda_sigs[name]}"


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_device_kernels_namespace(device):
    from minicnn.device import get_device

    ks = get_device(device).kernels
    assert callable(getattr(ks, "conv2d_forward"))
