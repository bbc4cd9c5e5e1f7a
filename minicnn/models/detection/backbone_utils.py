"""Feature Pyramid Network (Lin et al., 2017) and the ResNet + FPN backbones of torchvision's detectors.

:class:`FeaturePyramidNetwork` turns backbone maps ``C_i`` (strides increasing, channels
``in_channels_list[i]``) into maps ``P_i`` of ``out_channels`` channels each, top-down::

    inner_N = inner_blocks[N](C_N)                                   (1×1 conv, lateral)
    inner_i = inner_blocks[i](C_i) + nearest_upsample(inner_{i+1}, size of C_i)
    P_i     = layer_blocks[i](inner_i)                               (3×3 conv, padding 1)

then ``extra_blocks`` may append coarser maps: :class:`LastLevelMaxPool` (Faster R-CNN: "pool" =
1×1 max pool of stride 2 of the last P) or :class:`LastLevelP6P7` (RetinaNet: ``P6 = conv3×3/2``,
``P7 = conv3×3/2(relu(P6))``). Module names follow torchvision (``fpn.inner_blocks.0.0.weight``,
``fpn.layer_blocks.0.0.weight``, ``fpn.extra_blocks.p6.weight``), so its state_dicts load.

:class:`BackboneWithFPN` = ``body`` (an IntermediateLayerGetter over a ResNet) + ``fpn``;
:func:`_resnet_fpn_extractor` / :func:`resnet_fpn_backbone` build it as torchvision does.
"""
from collections import OrderedDict

from ... import functional as F
from ... import nn
from .. import resnet as resnet_models
from ..segmentation._backbone import IntermediateLayerGetter
from .misc import FrozenBatchNorm2d


def _init_fpn_conv(conv):
    """torchvision's FPN initialisation: ``kaiming_uniform_(a=1)`` (bound ``sqrt(3/fan_in)``), bias 0."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0.0)


def _conv_norm(cin, cout, k, norm_layer):
    """torchvision's ``Conv2dNormActivation`` without activation: conv (bias iff no norm) [+ norm]."""
    layers = [nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, bias=norm_layer is None)]
    if norm_layer is not None:
        layers.append(norm_layer(cout))
    return nn.Sequential(*layers)


class FeaturePyramidNetwork(nn.Module):
    """The FPN top-down pathway with lateral connections (formula in the module docstring).

    Args:
        in_channels_list: channels of the input maps, finest first (ResNet-50 layer1..4:
            ``[256, 512, 1024, 2048]``).
        out_channels: channels of every output map (256).
        extra_blocks: ``None``, :class:`LastLevelMaxPool` or :class:`LastLevelP6P7` (any module
            ``(results, inputs, names) -> (results, names)``).
        norm_layer: optional normalisation after each convolution (then convolutions have no bias).

    Input: an ordered dict ``{name: (N, C_i, H_i, W_i)}``, finest first.
    Output: an ordered dict ``{name: (N, out_channels, H_i, W_i)}`` with the same names, plus
    those of the extra blocks ("pool", or "p6", "p7").
    """

    def __init__(self, in_channels_list, out_channels, extra_blocks=None, norm_layer=None):
        super().__init__()
        if len(in_channels_list) == 0 or any(int(c) < 1 for c in in_channels_list):
            raise ValueError(f"FeaturePyramidNetwork: in_channels_list must be channel counts >= 1, "
                             f"got {list(in_channels_list)!r}")
        if int(out_channels) < 1:
            raise ValueError(f"FeaturePyramidNetwork: out_channels must be >= 1, got {out_channels!r}")
        self.inner_blocks = nn.ModuleList([_conv_norm(c, out_channels, 1, norm_layer) for c in in_channels_list])
        self.layer_blocks = nn.ModuleList([_conv_norm(out_channels, out_channels, 3, norm_layer)
                                           for _ in in_channels_list])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _init_fpn_conv(m)
        self.extra_blocks = extra_blocks
        self.in_channels_list, self.out_channels = list(in_channels_list), int(out_channels)

    def forward(self, x):
        if not isinstance(x, dict):
            raise TypeError(f"FeaturePyramidNetwork: expected an ordered dict of feature maps, got {type(x).__name__}")
        names, feats = list(x.keys()), list(x.values())
        if len(feats) != len(self.inner_blocks):
            raise ValueError(f"FeaturePyramidNetwork: got {len(feats)} feature maps {names}, expected "
                             f"{len(self.inner_blocks)} (in_channels_list={self.in_channels_list})")
        for name, f, c in zip(names, feats, self.in_channels_list):
            if f.ndim != 4 or f.shape[1] != c:
                raise ValueError(f"FeaturePyramidNetwork: feature map {name!r} must be (N, {c}, H, W), got {tuple(f.shape)}")
        last_inner = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[idx](feats[idx])
            top_down = F.interpolate(last_inner, size=tuple(lateral.shape[-2:]), mode="nearest")
            last_inner = lateral + top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, feats, names)
        return OrderedDict(zip(names, results))


class LastLevelMaxPool(nn.Module):
    """Append ``"pool"`` = ``max_pool2d(P_last, kernel 1, stride 2)``: ``(H, W) -> (⌊(H−1)/2⌋+1, ⌊(W−1)/2⌋+1)``."""

    def forward(self, results, inputs, names):
        return results + [F.max_pool2d(results[-1], 1, 2, 0)], names + ["pool"]


class LastLevelP6P7(nn.Module):
    """Append RetinaNet's ``p6 = conv3×3/2(x)`` and ``p7 = conv3×3/2(relu(p6))`` (padding 1).

    ``x`` is P5 when ``in_channels == out_channels`` and C5 (the last backbone map) otherwise,
    torchvision's rule (``use_P5``). Convolutions: kaiming-uniform ``a=1``, bias 0.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        _init_fpn_conv(self.p6)
        _init_fpn_conv(self.p7)
        self.use_P5 = in_channels == out_channels

    def forward(self, results, inputs, names):
        x = results[-1] if self.use_P5 else inputs[-1]
        p6 = self.p6(x)
        p7 = self.p7(F.relu(p6))
        return results + [p6, p7], names + ["p6", "p7"]


class BackboneWithFPN(nn.Module):
    """``fpn(body(x))``: ``body`` an :class:`IntermediateLayerGetter` of ``backbone`` at
    ``return_layers`` (``{"layer2": "0", ...}``), then a :class:`FeaturePyramidNetwork`.

    Input ``(N, 3, H, W)``; output the FPN's ordered dict of ``(N, out_channels, H_i, W_i)``.
    Attribute ``out_channels`` (what the detection heads read).
    """

    def __init__(self, backbone, return_layers, in_channels_list, out_channels, extra_blocks=None, norm_layer=None):
        super().__init__()
        if extra_blocks is None:
            extra_blocks = LastLevelMaxPool()
        self.body = IntermediateLayerGetter(backbone, return_layers=return_layers)
        self.fpn = FeaturePyramidNetwork(in_channels_list, out_channels, extra_blocks=extra_blocks,
                                         norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x):
        return self.fpn(self.body(x))


def _resnet_fpn_extractor(backbone, trainable_layers, returned_layers=None, extra_blocks=None, norm_layer=None,
                          out_channels=256):
    """A :class:`BackboneWithFPN` over a minicnn ResNet, as torchvision builds it.

    Only the last ``trainable_layers`` (0..5) of ``layer4, layer3, layer2, layer1, conv1`` (and
    ``bn1`` when 5) keep ``requires_grad``; ``returned_layers`` (default ``[1, 2, 3, 4]``) are fed
    to the FPN as maps ``"0", "1", ...``; their channels are ``(inplanes / 8) · 2^(k−1)`` for
    ``layer k`` (ResNet-50: 256, 512, 1024, 2048). ``out_channels``: torchvision's 256 (a keyword
    here so small configurations can narrow it).
    """
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= 5:
        raise ValueError(f"_resnet_fpn_extractor: trainable_layers must be an integer in [0, 5], got {trainable_layers!r}")
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in backbone.named_parameters():
        if all(not name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)
    if extra_blocks is None:
        extra_blocks = LastLevelMaxPool()
    if returned_layers is None:
        returned_layers = [1, 2, 3, 4]
    if len(returned_layers) == 0 or min(returned_layers) <= 0 or max(returned_layers) >= 5:
        raise ValueError(f"_resnet_fpn_extractor: returned_layers must be in [1, 4], got {list(returned_layers)!r}")
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    stage2 = backbone.inplanes // 8
    in_channels_list = [stage2 * 2 ** (k - 1) for k in returned_layers]
    return BackboneWithFPN(backbone, return_layers, in_channels_list, out_channels, extra_blocks=extra_blocks,
                           norm_layer=norm_layer)


def resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3,
                        returned_layers=None, extra_blocks=None, out_channels=256, **resnet_kwargs):
    """``resnet_fpn_backbone(backbone_name="resnet50")``: a ResNet (``resnet18/34/50`` of
    :mod:`minicnn.models.resnet`, built with ``norm_layer`` and ``resnet_kwargs`` such as
    ``width``) cut into a :class:`BackboneWithFPN` by :func:`_resnet_fpn_extractor`.

    ``weights`` must be None (nothing is downloaded; load a torchvision state_dict instead).
    """
    if weights is not None:
        raise ValueError("resnet_fpn_backbone: weights must be None (minicnn downloads nothing; "
                         "load a state_dict with load_state_dict instead)")
    builders = {"resnet18": resnet_models.resnet18, "resnet34": resnet_models.resnet34,
                "resnet50": resnet_models.resnet50}
    if backbone_name not in builders:
        raise ValueError(f"resnet_fpn_backbone: backbone_name must be one of {sorted(builders)}, got {backbone_name!r}")
    backbone = builders[backbone_name](norm_layer=norm_layer, **resnet_kwargs)
    return _resnet_fpn_extractor(backbone, trainable_layers, returned_layers, extra_blocks, out_channels=out_channels)
