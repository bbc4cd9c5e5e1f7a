"""Architectures of the classic CNN literature, one file per family, PyTorch-like constructors.

``from minicnn.models import resnet18; net = resnet18(num_classes=10, small_input=True)``
"""
from .alexnet import AlexNet, alexnet  # noqa: F401
from .basic import BasicCNN, SeedCNN, basic_cnn, seed_cnn  # noqa: F401
from .densenet import DenseNet, densenet121  # noqa: F401
from .fcn1d import FCN1D, fcn1d  # noqa: F401
from .googlenet import GoogLeNet, googlenet  # noqa: F401
from .inception1d import InceptionTime1D, inception1d  # noqa: F401
from .lenet import LeNet5, lenet5  # noqa: F401
from .localization import LocalizationNet, localization_loss  # noqa: F401
from .mobilenet import (  # noqa: F401
    MobileNetV1, MobileNetV2, MobileNetV3, mobilenet_v1, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small,
)
from .resnet import ResNet, resnet18, resnet34, resnet50  # noqa: F401
from .resnet1d import ResNet1D, resnet1d  # noqa: F401
from .signal_common import SignalClassifier, class_activation_map  # noqa: F401
from .signal1d import Signal1DCNN, signal_cnn  # noqa: F401
from .vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn  # noqa: F401

MODELS = {
    "basic": basic_cnn, "seed": seed_cnn, "lenet5": lenet5, "alexnet": alexnet, "vgg11": vgg11, "vgg16": vgg16,
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "googlenet": googlenet,
    "densenet121": densenet121, "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large, "mobilenet_v3_small": mobilenet_v3_small,
    # 1-D time-series classifiers (input (N, C, L)): python -m minicnn train --task signals
    "fcn1d": fcn1d, "resnet1d": resnet1d, "inception1d": inception1d,
}
