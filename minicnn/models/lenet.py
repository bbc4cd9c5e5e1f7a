"""LeNet-5 (LeCun et al., 1998) in its common modern form.

conv(6, 5×5, pad 2)-tanh-avgpool(2) → conv(16, 5×5)-tanh-avgpool(2) → dense 120-tanh → 84-tanh → 10.
Parameters: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 (28×28 inputs, padded to the
original 32×32 by the first convolution's padding).
"""
from .. import nn


class LeNet5(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, activation="tanh"):
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def lenet5(**kw):
    return LeNet5(**kw)
