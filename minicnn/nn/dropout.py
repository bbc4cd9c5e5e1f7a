"""Dropout layers: active in training mode, the identity in eval mode."""
from .. import functional as F
from .module import Module


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Inverted dropout: in training each element is zeroed with probability p and the rest
    scaled by 1/(1 − p); masks come from the global seed (``minicnn.manual_seed``)."""

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Channel-wise dropout for (N, C, H, W): whole feature maps are zeroed together."""

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)
