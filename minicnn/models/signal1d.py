"""A 1-D CNN for signals: Conv1d-BN-ReLU-MaxPool1d blocks, global average pool, dense.

Shape: (N, in_channels, L) → (N, num_classes).
"""
from .. import nn


class Signal1DCNN(nn.Module):
    def __init__(self, in_channels=1, num_classes=4, channels=(16, 32, 64), kernel_size=5):
        super().__init__()
        layers, c = [], in_channels
        for cout in channels:
            layers += [nn.Conv1d(c, cout, kernel_size, padding=kernel_size // 2), nn.BatchNorm1d(cout), nn.ReLU(),
                       nn.MaxPool1d(2)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(axis=2))


def signal_cnn(**kw):
    return Signal1DCNN(**kw)
