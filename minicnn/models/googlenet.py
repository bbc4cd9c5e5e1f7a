"""GoogLeNet / Inception v1 (Szegedy et al., 2014), without the auxiliary heads.

An inception module concatenates four branches along channels: 1×1; 1×1 → 3×3; 1×1 → "5×5";
3×3 max pool → 1×1. The 1×1 convolutions are bottlenecks that cut the channels before the
expensive ones. Every convolution is conv (no bias) + BN (eps 1e-3) + ReLU, as torchvision.
torchvision's third branch uses a 3×3 kernel where the paper has 5×5; we follow torchvision by
default (``branch3_kernel=3``: 6,624,904 parameters for 1,000 classes, its count) and offer the
paper's 5×5.
"""
from .. import functional as F
from .. import nn


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, branch3_kernel=3):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))

    def forward(self, x):
        return F.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.2, branch3_kernel=3):
        super().__init__()
        k = dict(branch3_kernel=branch3_kernel)
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32, **k)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64, **k)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64, **k)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64, **k)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64, **k)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64, **k)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128, **k)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128, **k)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128, **k)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for m in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = m(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


def googlenet(num_classes=1000, **kw):
    return GoogLeNet(num_classes, **kw)
