"""The argument check of the optimizer kernels, shared by ``kernels/cpu/optim.py`` and
``kernels/cuda/optim.py`` (it runs before any kernel: the kernels do no bounds checking)."""
import numpy as np


def check_step_arrays(op, param, array_type, library, **arrays):
    """TypeError/ValueError naming ``op`` and the argument unless ``param`` and every array given
    (None entries skipped) is a C-contiguous ``array_type`` (``library``'s ndarray) of ``param``'s
    dtype (float32 or float64) and size."""
    if not isinstance(param, array_type) or param.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: param must be a float32 or float64 {library} array, got {type(param).__name__} "
                        f"of dtype {getattr(param, 'dtype', None)}")
    for name, a in dict(param=param, **arrays).items():
        if a is None:
            continue
        if not isinstance(a, array_type) or a.dtype != param.dtype:
            raise TypeError(f"{op}: {name} must be a {library} array of param's dtype {param.dtype}, got "
                            f"{type(a).__name__} of dtype {getattr(a, 'dtype', None)}")
        if a.size != param.size or not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous with param's {param.size} elements "
                             f"(param shape {param.shape}), got shape {a.shape}"
                             f"{'' if a.flags.c_contiguous else ', not contiguous'}")
