"""The public testing kit: gradcheck and hypothesis strategies.

    from minicnn.testing import gradcheck, strategies
    gradcheck(lambda x: F.max_pool2d(x, 2), [x])

``strategies`` needs hypothesis (a test extra); ``gradcheck`` needs nothing beyond minicnn.
"""
from .gradcheck import GradcheckError, gradcheck  # noqa: F401


def __getattr__(name):
    if name == "strategies":  # imported on first use: hypothesis is only a test dependency
        import importlib

        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
