"""Neural style transfer (Gatys, Ecker & Bethge, 2016): optimise an image, not a network.

A frozen CNN maps an image ``x`` to feature maps ``F_l(x)`` of shape ``(N, C_l, H_l, W_l)`` at
chosen layers ``l``. Starting from the content image (or noise), the pixels of ``x`` follow the
gradient of::

    L(x) = α Σ_{l ∈ content} mean (F_l(x) − F_l(c))²                       content
         + β Σ_{l ∈ style}   mean (G_l(x) − G_l(s))²                       style
         + γ [mean (x_{i+1,j} − x_{i,j})² + mean (x_{i,j+1} − x_{i,j})²]   total variation

with ``G_l = gram_matrix(F_l)`` the channel correlations, which keep the textures of the style image
``s`` and drop where they are. The features are captured with forward hooks
(``module.register_forward_hook``) on a network trained here (:func:`train_style_net`: a small
VGG-style net trained on Fashion-MNIST or the embedded digits).

    >>> net = train_style_net("style_net.npz")                       # trains ~1 min once, then loads
    >>> st = StyleTransfer(net)
    >>> image, history = st.run(content, style, steps=200)            # (N, 1, 32, 32) in [-1, 1]
"""
import os

import numpy as np

from ... import functional as F
from ... import nn
from ...autograd import no_grad
from ...data.dataset import ArrayDataset
from ...data.loader import DataLoader
from ...optim.adam import Adam
from ...random import manual_seed
from ...tensor import Tensor
from ...train import Trainer, save_checkpoint
from ..vgg import make_layers

#: torchvision-style indices of :class:`StyleNet`'s ``features`` (VGG's relu<block>_<conv> names)
LAYER_NAMES = {
    "relu1_1": "features.1", "relu1_2": "features.3",
    "relu2_1": "features.6", "relu2_2": "features.8",
    "relu3_1": "features.11", "relu3_2": "features.13",
}
CONTENT_LAYERS = ("features.8",)                               # relu2_2
STYLE_LAYERS = ("features.1", "features.6", "features.11")     # relu1_1, relu2_1, relu3_1


def gram_matrix(features):
    """Gram matrices of feature maps: ``G[n] = F_n F_nᵀ / (C H W)`` with ``F_n`` = ``features[n]``
    reshaped to ``(C, H·W)``: ``G[n, c, d] = Σ_{h,w} f[n,c,h,w] f[n,d,h,w] / (C H W)``.

    Differentiable (a batched ``matmul``). Shape: ``(N, C, H, W)`` → ``(N, C, C)``.
    """
    if not isinstance(features, Tensor) or features.ndim != 4:
        raise ValueError(f"gram_matrix: features must be a Tensor (N, C, H, W), got "
                         f"{getattr(features, 'shape', type(features).__name__)}")
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return F.matmul(f, f.transpose(1, 2)) / float(c * h * w)


class StyleNet(nn.Module):
    """A small VGG-style classifier whose ReLU outputs serve as style and content features.

    ``features``: three blocks of two 3×3 conv-ReLU and a 2×2 max pool, ``channels`` per block
    (16, 32, 64 by default; VGG's layer order, see :data:`LAYER_NAMES`); ``avgpool``: global average;
    ``classifier``: one linear layer. Shape: ``(N, in_channels, S, S)`` → ``(N, num_classes)``.
    """

    def __init__(self, in_channels=1, num_classes=10, channels=(16, 32, 64)):
        super().__init__()
        config = []
        for c in channels:
            config += [c, c, "M"]
        self.features = make_layers(config, in_channels=in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def train_style_net(path=None, dataset="fashion-mnist", epochs=2, n=10000, device="cpu", seed=0,
                    batch_size=64, lr=2e-3, channels=(16, 32, 64), progress=False):
    """Train a :class:`StyleNet` to classify 32 × 32 images in [-1, 1] (about a minute on 2 cores
    with the defaults), or load it from ``path`` when that checkpoint exists.

    Args:
        path: ``.npz`` checkpoint to load, or to write after training (None: neither).
        dataset: ``"fashion-mnist"`` or ``"digits"`` (:func:`~minicnn.data.generative.gan_images`).
        epochs, n, batch_size, lr: the first ``n`` training images, Adam, ``seed`` for init and order.
    Returns:
        the network in eval mode with ``history`` (one dict per epoch; empty when loaded).
    """
    from ...data.generative import gan_images

    manual_seed(seed)
    net = StyleNet(1, 10, channels).to(device)
    net.history = []
    if path is not None and os.path.exists(path):
        with np.load(path) as f:
            net.load_state_dict({k: f[k] for k in f.files})
        return net.eval()
    data = gan_images(dataset, "train", image_size=32, n=n)
    trainer = Trainer(net, Adam(net.parameters(), lr=lr), device=device, progress=progress)
    loader = DataLoader(ArrayDataset(data.images, data.labels), batch_size=batch_size, shuffle=True, seed=seed)
    for epoch in range(1, epochs + 1):
        net.history.append(dict(epoch=epoch, **trainer.train_epoch(loader, epoch)))
    if path is not None:
        save_checkpoint(net, path)
    return net.eval()


class StyleTransfer:
    """Gatys et al.'s optimisation of an image against a frozen feature network.

    Args:
        feature_net: an ``nn.Module`` taking ``(N, C, H, W)`` images; it is put in eval mode and its
            parameters stop requiring gradients (frozen).
        content_layers, style_layers: names of its modules (``dict(feature_net.named_modules())``)
            whose outputs give the content features and the Gram matrices.
        style_weight, content_weight, tv_weight: β, α, γ of the module docstring.
        style_layer_weights: one weight per style layer (default 1 each).

    The forward hooks stay registered until :meth:`remove` (or the end of a ``with`` block).
    Call :meth:`set_targets` (or :meth:`run`, which does) before :meth:`loss`.
    """

    def __init__(self, feature_net, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, style_weight=1e3,
                 content_weight=1.0, tv_weight=1e-2, style_layer_weights=None):
        modules = dict(feature_net.named_modules())
        content_layers, style_layers = tuple(content_layers), tuple(style_layers)
        missing = [n for n in content_layers + style_layers if n not in modules]
        if missing:
            raise ValueError(f"StyleTransfer: feature_net has no module named {', '.join(map(repr, missing))}")
        if not style_layers and not content_layers:
            raise ValueError("StyleTransfer: give at least one content or style layer")
        weights = (1.0,) * len(style_layers) if style_layer_weights is None else tuple(style_layer_weights)
        if len(weights) != len(style_layers):
            raise ValueError(f"StyleTransfer: style_layer_weights needs {len(style_layers)} values, got {len(weights)}")
        self.net = feature_net.eval()
        for p in self.net.parameters():
            p.requires_grad = False
        self.device = next(iter(self.net.parameters())).device
        self.dtype = next(iter(self.net.parameters())).dtype
        self.content_layers, self.style_layers, self.style_layer_weights = content_layers, style_layers, weights
        self.style_weight, self.content_weight, self.tv_weight = style_weight, content_weight, tv_weight
        self._captured = {}
        self._handles = [modules[name].register_forward_hook(self._hook(name))
                         for name in dict.fromkeys(content_layers + style_layers)]
        self.content_targets = self.style_targets = None

    def _hook(self, name):
        def hook(module, args, output):
            self._captured[name] = output
        return hook

    def remove(self):
        """Unregister the forward hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def _tensor(self, image, name):
        x = image if isinstance(image, Tensor) else Tensor(np.asarray(image), device=self.device, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"StyleTransfer: {name} must be (N, C, H, W), got shape {tuple(x.shape)}")
        return x

    def features(self, image):
        """``{layer name: output Tensor}`` of the network on ``image`` (with the graph when it needs one)."""
        self._captured = {}
        self.net(image)
        return dict(self._captured)

    def set_targets(self, content, style):
        """Record the content features of ``content (N, C, H, W)`` and the Gram matrices of
        ``style (1 or N, C, H', W')`` (any size the network takes; one style image is shared)."""
        content, style = self._tensor(content, "content"), self._tensor(style, "style")
        if style.shape[0] not in (1, content.shape[0]):
            raise ValueError(f"StyleTransfer: style must hold 1 image or as many as content ({content.shape[0]}), "
                             f"got shape {tuple(style.shape)}")
        with no_grad():
            fc = self.features(content)
            self.content_targets = {n: fc[n].numpy() for n in self.content_layers}
            fs = self.features(style)
            grams = {n: gram_matrix(fs[n]).numpy() for n in self.style_layers}
        self.style_targets = {n: np.repeat(g, content.shape[0] // g.shape[0], axis=0) for n, g in grams.items()}

    def losses(self, image):
        """The three terms (scalar Tensors, weights applied) and their sum: ``{"content", "style", "tv", "total"}``."""
        if self.content_targets is None:
            raise RuntimeError("StyleTransfer: call set_targets(content, style) before computing the loss")
        x = self._tensor(image, "image")
        feats = self.features(x)
        zero = Tensor(np.zeros((), dtype=self.dtype), device=self.device)
        content = zero
        for n in self.content_layers:
            target = Tensor(self.content_targets[n], device=self.device)
            content = content + F.mse_loss(feats[n], target)
        style = zero
        for n, w in zip(self.style_layers, self.style_layer_weights):
            target = Tensor(self.style_targets[n], device=self.device)
            style = style + w * F.mse_loss(gram_matrix(feats[n]), target)
        tv = F.mse_loss(x[:, :, 1:, :], x[:, :, :-1, :]) + F.mse_loss(x[:, :, :, 1:], x[:, :, :, :-1])
        out = {"content": self.content_weight * content, "style": self.style_weight * style,
               "tv": self.tv_weight * tv}
        out["total"] = out["content"] + out["style"] + out["tv"]
        return out

    def loss(self, image):
        """The total loss ``L(x)`` (a scalar Tensor, differentiable with respect to ``image``)."""
        return self.losses(image)["total"]

    def run(self, content, style, steps=200, lr=0.05, init="content", seed=0, value_range=(-1.0, 1.0),
            callback=None):
        """Optimise an image with Adam for ``steps`` steps, clamping it to ``value_range`` after each.

        Args:
            content: ``(N, C, H, W)`` array; style: ``(1 or N, C, H', W')`` array.
            init: ``"content"`` (start from the content image) or ``"noise"`` (uniform in the range,
                drawn with ``seed``).
            callback: ``f(step, image_array, losses_dict)`` after each step.
        Returns:
            ``(image, history)``: the image as a NumPy array of ``content``'s shape, and one dict of
            float losses (content, style, tv, total) per step, measured before that step's update.
        """
        if init not in ("content", "noise"):
            raise ValueError(f"StyleTransfer.run: init must be 'content' or 'noise', got {init!r}")
        content = np.asarray(content)
        self.set_targets(content, style)
        lo, hi = value_range
        start = content if init == "content" else np.random.default_rng(seed).uniform(lo, hi, content.shape)
        image = Tensor(np.array(start, dtype=self.dtype), device=self.device, requires_grad=True)   # a copy
        opt = Adam([image], lr=lr)
        history = []
        for step in range(1, steps + 1):
            parts = self.losses(image)
            opt.zero_grad()
            parts["total"].backward()
            opt.step()
            image.data[...] = self.device.xp.clip(image.data, lo, hi)
            row = {k: float(v.item()) for k, v in parts.items()}
            history.append(row)
            if callback is not None:
                callback(step, image.numpy(), row)
        return image.numpy(), history


__all__ = ["CONTENT_LAYERS", "LAYER_NAMES", "STYLE_LAYERS", "StyleNet", "StyleTransfer", "gram_matrix",
           "train_style_net"]
