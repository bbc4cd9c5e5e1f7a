"""What the 1-D time-series classifiers share: input checks, global average pooling, the CAM.

A :class:`SignalClassifier` has ``features`` (N, C, L) → (N, K, L) and ``fc`` (K → classes);
``forward(x) = fc(mean_t features(x))``, or with a mask of the real time steps (series padded to
one length) ``fc(Σ_t m_t·A_t / Σ_t m_t)``: the padded steps then do not enter the average.
"""
import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn._checks import check_counts
from ..tensor import Tensor


class SignalClassifier(nn.Module):
    """Base of FCN1D, ResNet1D, InceptionTime1D: checks the input, pools over time, classifies."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        name = type(self).__name__
        check_counts(name, in_channels=in_channels, num_classes=num_classes)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)

    def check_input(self, x):
        """(N, in_channels, L) with L >= 1, else a ValueError naming the model and the shapes."""
        name = type(self).__name__
        shape = tuple(x.shape)
        if len(shape) != 3:
            raise ValueError(f"{name}.forward: x must be (N, C, L) = (N, {self.in_channels}, L), got shape {shape}")
        if shape[1] != self.in_channels:
            raise ValueError(f"{name}.forward: x has {shape[1]} channels (shape {shape}) but the model was built "
                             f"for in_channels={self.in_channels}")
        if shape[2] < 1:
            raise ValueError(f"{name}.forward: x has length 0 (shape {shape})")

    def forward(self, x, mask=None):
        """Logits ``(N, num_classes)``; ``mask`` (optional, ``(N, L)``, True/1 on real samples, at
        least one per row) restricts the global average pooling to the real time steps."""
        self.check_input(x)
        a = self.features(x)
        if mask is None:
            return self.fc(a.mean(axis=2))
        m = self._mask(mask, x, a)
        return self.fc((a * m).sum(axis=2) / m.sum(axis=2))

    def _mask(self, mask, x, a):
        """The mask as a float Tensor ``(N, 1, L)`` on the features' device, after shape checks."""
        name = type(self).__name__
        m = mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)
        expected = (x.shape[0], x.shape[2])
        if m.shape != expected:
            raise ValueError(f"{name}.forward: mask must be (N, L) = {expected} for x of shape {tuple(x.shape)}, "
                             f"got shape {m.shape}")
        if a.shape[2] != m.shape[1]:
            raise ValueError(f"{name}.forward: a mask needs features as long as the input, got length "
                             f"{a.shape[2]} for {m.shape[1]}")
        if not (m != 0).any(axis=1).all():
            raise ValueError(f"{name}.forward: every row of mask needs a real (nonzero) step")
        return Tensor((m != 0).astype(a.dtype)[:, None, :], device=a.device)


def class_activation_map(model, x, mask=None):
    """Class activation maps over time (Zhou et al. 2016; Wang et al. 2017 for time series).

    With ``A = model.features(x)`` of shape ``(N, K, L')`` and the linear layer's weight ``W``
    ``(classes, K)``: ``CAM[n, c, t] = Σ_k W[c, k] · A[n, k, t]``. Its mean over ``t`` plus the bias
    is the logit, so the CAM says where in time the evidence for class c lies.

    Returns a float64 NumPy array ``(N, classes, L')`` (eval mode, no graph); with ``mask``
    (``(N, L)``, True on real samples) the padded steps are 0.
    """
    if not isinstance(x, Tensor):
        first = next(iter(model.parameters()))
        x = Tensor(np.asarray(x, dtype=first.dtype), device=first.device)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model.check_input(x)
            a = model.features(x).numpy().astype(np.float64)
    finally:
        model.train(was_training)
    w = model.fc.weight.numpy().astype(np.float64)
    cam = np.einsum("ck,nkt->nct", w, a)
    if mask is not None:
        cam = cam * (np.asarray(mask) != 0)[:, None, :]
    return cam

