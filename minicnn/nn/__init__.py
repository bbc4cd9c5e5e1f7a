"""Layers and models, PyTorch-style: ``minicnn.nn.Conv2d``, ``nn.Sequential``, ``nn.init`` ...

Each layer validates its arguments and input, owns its :class:`Parameter` s and buffers, and
calls the functional op of :mod:`minicnn.functional` of the same name.
"""
from . import init  # noqa: F401
from .activation import (  # noqa: F401
    GELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, Sigmoid, Softmax, Tanh,
)
from .container import ModuleDict, ModuleList, Sequential  # noqa: F401
from .conv import Conv1d, Conv2d, ConvTranspose2d  # noqa: F401
from .dropout import Dropout, Dropout2d  # noqa: F401
from .linear import Flatten, Identity, Linear, Unflatten  # noqa: F401
from .loss import (  # noqa: F401
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss, SigmoidFocalLoss,
    SmoothL1Loss,
)
from .module import Module, Parameter  # noqa: F401
from .padding import (  # noqa: F401
    ConstantPad2d, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d, ReplicationPad2d, ZeroPad2d,
)
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm, LocalResponseNorm  # noqa: F401
from .pooling import (  # noqa: F401
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d, MaxUnpool2d, Upsample,
)
