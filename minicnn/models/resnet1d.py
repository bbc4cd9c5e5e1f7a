"""ResNet-1D (Wang, Yan & Oates 2017): three residual blocks of 64-128-128 channels, GAP, linear.

    block(c_in → c):  x ─ [Conv1d(k=8) BN ReLU] ─ [Conv1d(k=5) BN ReLU] ─ [Conv1d(k=3) BN] ─(+)─ ReLU
                      └──── shortcut: Conv1d(k=1) BN (BN alone when c_in == c) ─────────┘
    x (N, C, L) ─ block 64 ─ block 128 ─ block 128 ─ GAP over time ─ Linear ─ logits

All convolutions keep the length (``padding="same"``), as in the paper's Keras code.
"""
from .. import nn
from .fcn1d import ConvBlock1d
from .signal_common import SignalClassifier


class ResidualBlock1d(nn.Module):
    """Three convolutions (k = 8, 5, 3 by default) with a shortcut; output ``relu(main(x) + short(x))``."""

    def __init__(self, in_channels, out_channels, kernel_sizes=(8, 5, 3)):
        super().__init__()
        k1, k2, k3 = kernel_sizes
        self.block1 = ConvBlock1d(in_channels, out_channels, k1)
        self.block2 = ConvBlock1d(out_channels, out_channels, k2)
        self.conv3 = nn.Conv1d(out_channels, out_channels, k3, padding="same")
        self.bn3 = nn.BatchNorm1d(out_channels)
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, out_channels, 1), nn.BatchNorm1d(out_channels))
        else:
            self.shortcut = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.bn3(self.conv3(self.block2(self.block1(x))))
        return self.relu(y + self.shortcut(x))


class ResNet1D(SignalClassifier):
    """Wang et al.'s residual network for time series; defaults are the paper's (64-128-128).

    Shape: ``(N, in_channels, L) → (N, num_classes)``.
    """

    def __init__(self, in_channels=1, num_classes=2, channels=(64, 128, 128), kernel_sizes=(8, 5, 3)):
        super().__init__(in_channels, num_classes)
        blocks, c = [], in_channels
        for cout in channels:
            blocks.append(ResidualBlock1d(c, cout, kernel_sizes))
            c = cout
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)


def resnet1d(**kw):
    return ResNet1D(**kw)
