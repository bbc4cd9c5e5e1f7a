"""The seeds' small networks.

- :class:`BasicCNN`: the textbook conv-pool-dense classifier (conv-ReLU-pool twice, then dense);
  the network of the README's main job.
- :class:`SeedCNN`: the seed's CIFAR-style network (conv 32-64-64 3×3, dense 64), 122,570
  parameters on 32×32×3 inputs; ``in_channels=1, image_size=28`` adapts it to Fashion-MNIST.
"""
from .. import nn


class BasicCNN(nn.Module):
    """conv(3×3, c1)-ReLU-maxpool(2) → conv(3×3, c2)-ReLU-maxpool(2) → dense(hidden)-ReLU-dropout → dense.

    Shape: (N, in_channels, S, S) → (N, num_classes) with S divisible by 4 (28 for MNIST).
    """

    def __init__(self, in_channels=1, num_classes=10, image_size=28, channels=(32, 64), hidden=128, dropout=0.25):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class SeedCNN(nn.Module):
    """conv(32, 3×3)-ReLU-pool → conv(64, 3×3)-ReLU-pool → conv(64, 3×3)-ReLU → dense(64)-ReLU → dense.

    Valid (unpadded) convolutions: 32 → 30 → 15 → 13 → 6 → 4, so the dense layer sees 4·4·64 =
    1,024 features and the network has 122,570 parameters on 32×32×3 (28×28×1: 3·3·64 = 576).
    """

    def __init__(self, in_channels=3, num_classes=10, image_size=32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
        )
        side = ((image_size - 2) // 2 - 2) // 2 - 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 64), nn.ReLU(), nn.Linear(64, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def basic_cnn(**kw):
    return BasicCNN(**kw)


def seed_cnn(**kw):
    return SeedCNN(**kw)
