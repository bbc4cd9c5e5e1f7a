"""MobileNet v1 (Howard et al., 2017) and v2 (Sandler et al., 2018).

v1: depthwise separable convolutions: a 3×3 depthwise convolution (``groups = channels``: one
filter per channel) then a 1×1 pointwise convolution, each with BN + ReLU: 4,231,976 parameters
for 1,000 classes.
v2: inverted residuals: 1×1 expand (×t) → 3×3 depthwise → 1×1 linear projection (no ReLU),
ReLU6 activations, a residual connection when stride is 1 and the shape is kept.
torchvision's layout and names: 3,504,872 parameters for 1,000 classes.
"""
from .. import nn


def conv_bn_act(cin, cout, kernel_size=3, stride=1, groups=1, act=nn.ReLU6):
    """Conv (no bias) + BN + activation, torchvision's ``Conv2dNormActivation``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout), act(),
    )


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.depthwise = conv_bn_act(cin, cin, 3, stride, groups=cin, act=nn.ReLU)
        self.pointwise = conv_bn_act(cin, cout, 1, act=nn.ReLU)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    CONFIG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0):
        super().__init__()
        c = int(32 * width_mult)
        layers = [conv_bn_act(in_channels, c, 3, 2, act=nn.ReLU)]
        for cout, s in self.CONFIG:
            cout = int(cout * width_mult)
            layers.append(DepthwiseSeparable(c, cout, s))
            c = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.avgpool(self.features(x)).flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand_ratio):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(cin, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.2):
        super().__init__()
        c = 32
        layers = [conv_bn_act(in_channels, c, 3, 2)]
        for t, cout, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        layers.append(conv_bn_act(c, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def mobilenet_v1(num_classes=1000, **kw):
    return MobileNetV1(num_classes, **kw)


def mobilenet_v2(num_classes=1000, **kw):
    return MobileNetV2(num_classes, **kw)
