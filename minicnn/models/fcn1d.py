"""FCN-1D (Wang, Yan & Oates 2017, "Time series classification from scratch with deep neural
networks: a strong baseline"): three convolution blocks, global average pooling, a linear layer.

    x (N, C, L) ─ [Conv1d(k=8) ─ BN ─ ReLU] 128 ─ [Conv1d(k=5) ─ BN ─ ReLU] 256
                ─ [Conv1d(k=3) ─ BN ─ ReLU] 128 ─ GAP over time ─ Linear ─ logits (N, classes)

Every convolution keeps the length (``padding="same"``: the extra sample of an even kernel goes
after, as PyTorch). The class activation map of class c (Zhou et al. 2016, used by Wang et al.) is
``CAM_c(t) = Σ_k w_{c,k} A_k(t)``, with ``A`` the last block's maps and ``w`` the linear weight:
see :func:`minicnn.models.signal_common.class_activation_map`.
"""
from .. import nn
from .signal_common import SignalClassifier


class ConvBlock1d(nn.Module):
    """Conv1d (same length) ─ BatchNorm1d ─ ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding="same")
        self.bn = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class FCN1D(SignalClassifier):
    """Wang et al.'s fully convolutional network; defaults are the paper's (128-256-128, k = 8, 5, 3).

    Shape: ``(N, in_channels, L) → (N, num_classes)`` for any ``L >= 1``.
    """

    def __init__(self, in_channels=1, num_classes=2, channels=(128, 256, 128), kernel_sizes=(8, 5, 3)):
        super().__init__(in_channels, num_classes)
        if len(channels) != len(kernel_sizes):
            raise ValueError(f"FCN1D: channels {tuple(channels)} and kernel_sizes {tuple(kernel_sizes)} "
                             "must have the same length")
        blocks, c = [], in_channels
        for cout, k in zip(channels, kernel_sizes):
            blocks.append(ConvBlock1d(c, cout, k))
            c = cout
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)


def fcn1d(**kw):
    return FCN1D(**kw)
