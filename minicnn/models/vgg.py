"""VGG (Simonyan & Zisserman, 2014): stacks of 3×3 convolutions and 2×2 max pools.

Configurations "A" (VGG-11) and "D" (VGG-16); numbers are output channels, "M" a max pool.
Classifier: adaptive average pool to 7×7, then 4096-4096-classes with dropout.
vgg16: 138,357,544 parameters (1,000 classes); with batch norm each conv is followed by BN.
"""
from .. import nn

CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_layers(config, batch_norm=False, in_channels=3):
    layers = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def vgg11(num_classes=1000, batch_norm=False, **kw):
    return VGG(make_layers(CONFIGS["A"], batch_norm), num_classes, **kw)


def vgg16(num_classes=1000, batch_norm=False, **kw):
    return VGG(make_layers(CONFIGS["D"], batch_norm), num_classes, **kw)


def vgg11_bn(num_classes=1000, **kw):
    return vgg11(num_classes, batch_norm=True, **kw)


def vgg16_bn(num_classes=1000, **kw):
    return vgg16(num_classes, batch_norm=True, **kw)
