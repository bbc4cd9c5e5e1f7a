"""The global random state: ``minicnn.manual_seed(s)`` makes initialisation and dropout repeatable.

Every random draw of the framework (``nn.init``, dropout masks) comes from one NumPy
``Generator`` returned by :func:`default_generator`; ``manual_seed`` replaces it with a freshly
seeded one. Masks are drawn on the host and copied to the device, so the same seed gives the
same numbers on ``cpu``, ``cuda-emu`` and ``cuda``.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed the global generator (PyTorch's ``torch.manual_seed``); returns it."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    """The global ``numpy.random.Generator``."""
    return _generator


def get_rng(generator=None):
    """``generator`` when given (a Generator or an int seed), else the global generator."""
    if generator is None:
        return _generator
    if isinstance(generator, np.random.Generator):
        return generator
    return np.random.default_rng(int(generator))
