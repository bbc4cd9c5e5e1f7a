"""A small InceptionTime-style network (Fawaz et al. 2020, "InceptionTime: finding AlexNet for time
series classification"): inception modules, a residual shortcut every three modules, GAP, linear.

    module(c_in):  x ─ bottleneck Conv1d(k=1) → b ─┬─ Conv1d(k=k1) → f ─┐
                   │                               ├─ Conv1d(k=k2) → f ─┤ concat (4f) ─ BN ─ ReLU
                   │                               └─ Conv1d(k=k3) → f ─┤
                   └─ MaxPool1d(3, stride 1, pad 1) ─ Conv1d(k=1) → f ───┘

The paper uses f = 32, b = 32, kernels 40/20/10 (odd kernels 39/19/9 in its code) and depth 6;
the defaults here are smaller (f = 16, kernels 9/19/39, depth 3: one residual group) so that it
trains on two CPU cores. Every convolution keeps the length (``padding="same"``).
"""
from .. import functional as F
from .. import nn
from .signal_common import SignalClassifier


class InceptionModule1d(nn.Module):
    """Parallel convolutions of three lengths and a max-pool branch, concatenated: ``4·filters`` channels."""

    def __init__(self, in_channels, filters=16, bottleneck=16, kernel_sizes=(9, 19, 39)):
        super().__init__()
        use_bottleneck = in_channels > 1
        self.bottleneck = nn.Conv1d(in_channels, bottleneck, 1, bias=False) if use_bottleneck else None
        c = bottleneck if use_bottleneck else in_channels
        self.branches = nn.ModuleList([nn.Conv1d(c, filters, k, padding="same", bias=False) for k in kernel_sizes])
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = nn.Conv1d(in_channels, filters, 1, bias=False)
        self.bn = nn.BatchNorm1d(filters * (len(kernel_sizes) + 1))
        self.relu = nn.ReLU()

    def forward(self, x):
        z = self.bottleneck(x) if self.bottleneck is not None else x
        outs = [conv(z) for conv in self.branches] + [self.pool_conv(self.pool(x))]
        return self.relu(self.bn(F.cat(outs, axis=1)))


class InceptionTime1D(SignalClassifier):
    """InceptionTime-style classifier: ``depth`` inception modules, a shortcut around each three.

    Shape: ``(N, in_channels, L) → (N, num_classes)``.
    """

    def __init__(self, in_channels=1, num_classes=2, filters=16, depth=3, kernel_sizes=(9, 19, 39)):
        super().__init__(in_channels, num_classes)
        width = filters * (len(kernel_sizes) + 1)
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        c, res_c = in_channels, in_channels
        for d in range(depth):
            self.blocks.append(InceptionModule1d(c, filters, filters, kernel_sizes))
            c = width
            if d % 3 == 2:
                self.shortcuts.append(nn.Sequential(nn.Conv1d(res_c, width, 1, bias=False), nn.BatchNorm1d(width)))
                res_c = width
        self.relu = nn.ReLU()
        self.fc = nn.Linear(width, num_classes)

    def features(self, x):
        """The last module's maps ``(N, 4·filters, L)``: what the CAM weighs."""
        res, s = x, 0
        for d, module in enumerate(self.blocks):
            x = module(x)
            if d % 3 == 2:
                x = self.relu(x + self.shortcuts[s](res))
                res, s = x, s + 1
        return x


def inception1d(**kw):
    return InceptionTime1D(**kw)
