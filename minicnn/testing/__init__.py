"""The public testing kit: gradcheck and hypothesis strategies.

    from minicnn.testing import gradcheck, strategies
    gradcheck(lambda x: F.max_pool2d(x, 2), [x])
"""
from . import strategies  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
