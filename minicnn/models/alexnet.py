"""AlexNet (Krizhevsky et al., 2012), single-tower form as torchvision builds it.

features: conv 64 11×11/4 → pool → conv 192 5×5 → pool → conv 384, 256, 256 3×3 → pool;
adaptive average pool to 6×6; classifier: dropout-4096-dropout-4096-classes.
61,100,840 parameters for 1,000 classes. ``lrn=True`` adds the paper's local response
normalisation after the first two convolutions (no parameters).
"""
from .. import nn


class AlexNet(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.5, lrn=False):
        super().__init__()

        def norm():
            return [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if lrn else []

        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), *norm(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), *norm(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(**kw):
    return AlexNet(**kw)
