"""Collect the kernels of a device package.

Every module of ``kernels/cpu`` and ``kernels/cuda`` whose name does not start with ``_`` lists
the kernels it exports in a tuple ``KERNELS``. Discovery is automatic, so adding an op family
means adding one file per device, and the test ``test_kernel_sets_are_equal`` keeps the devices
in step.
"""
import importlib
import pkgutil
import types


def family_modules(package):
    """The op-family modules of ``package`` (a package object), sorted by name."""
    mods = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(mod, "KERNELS"):
            mods.append(mod)
    return mods


def collect(package, bind=None):
    """A namespace of every kernel in ``package``; ``bind(f)`` wraps each (e.g. a backend partial)."""
    ns = {}
    for mod in family_modules(package):
        for name in mod.KERNELS:
            if name in ns:
                raise RuntimeError(f"kernel {name!r} is defined twice in {package.__name__}")
            f = getattr(mod, name)
            ns[name] = bind(f) if bind else f
    return types.SimpleNamespace(**ns)
