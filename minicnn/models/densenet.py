"""DenseNet (Huang et al., 2016): each layer sees the concatenation of all earlier outputs.

Dense layer: BN-ReLU-conv 1×1 (bn_size·k channels) → BN-ReLU-conv 3×3 (k = growth rate new
channels). Transition: BN-ReLU-conv 1×1 (halve channels) → avg pool 2. densenet121: blocks of
(6, 12, 24, 16) layers, k = 32: 7,978,856 parameters for 1,000 classes (torchvision's names).
"""
from collections import OrderedDict

from .. import functional as F
from .. import nn


class DenseLayer(nn.Module):
    def __init__(self, cin, growth_rate, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, features):
        x = F.cat(features, axis=1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, cin, growth_rate, bn_size):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(cin + i * growth_rate, growth_rate, bn_size)

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return F.cat(features, axis=1)


class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(cin)), ("relu", nn.ReLU(inplace=True)),
            ("conv", nn.Conv2d(cin, cout, 1, bias=False)), ("pool", nn.AvgPool2d(2, stride=2)),
        ]))


class DenseNet(nn.Module):
    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 num_classes=1000, in_channels=3):
        super().__init__()
        layers = OrderedDict([
            ("conv0", nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(3, stride=2, padding=1)),
        ])
        c = num_init_features
        for i, n in enumerate(block_config):
            layers[f"denseblock{i + 1}"] = DenseBlock(n, c, growth_rate, bn_size)
            c += n * growth_rate
            if i != len(block_config) - 1:
                layers[f"transition{i + 1}"] = Transition(c, c // 2)
                c //= 2
        layers["norm5"] = nn.BatchNorm2d(c)
        self.features = nn.Sequential(layers)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.avgpool(self.relu(self.features(x)))
        return self.classifier(x.flatten(1))


def densenet121(num_classes=1000, **kw):
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, **kw)
