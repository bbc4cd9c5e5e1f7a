"""The op table: one :class:`OpInfo` per op drives forward-vs-reference, gradcheck and device
parity (``tests/test_op_table.py``).

Each family adds a module ``tests/optable/<family>.py`` with a list ``OPS``; discovery is
automatic. An entry states only what is particular to the op:

- ``fn(*tensors, **kwargs)``: the minicnn op (Tensor in, Tensor or tuple out);
- ``reference(*arrays, **kwargs)``: an independent NumPy computation (plain loops in
  ``kernels/reference``, or NumPy one-liners for simple ops);
- ``samples(rng)``: a list of ``Sample(arrays, kwargs)`` (float64 arrays);
- ``grad_inputs``: which positional inputs to gradcheck (default: every float input).
"""
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence


@dataclass
class Sample:
    arrays: tuple
    kwargs: dict = field(default_factory=dict)
    name: str = ""


@dataclass
class OpInfo:
    name: str
    fn: Callable
    reference: Callable
    samples: Callable
    grad_inputs: Optional[Sequence[int]] = None
    atol: float = 1e-5
    rtol: float = 1e-5
    f32_rtol: float = 1e-4  # float32 vs float64 reference
    gradcheck_atol: float = 1e-5
    gradcheck_rtol: float = 1e-3
    gradcheck: bool = True
    devices: Sequence[str] = ("cpu", "cuda-emu", "cuda")

    def __str__(self):
        return self.name


def all_ops():
    ops = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        ops.extend(getattr(mod, "OPS", []))
    return ops
