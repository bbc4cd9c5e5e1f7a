"""What the torchvision-style segmentation models share: a backbone cut at named layers and a
head whose output is resized to the input.

* :class:`IntermediateLayerGetter`: the children of a classification network up to the last
  layer asked for, run in order; returns ``{out_name: feature map}`` for the asked layers.
  Children are kept under their own names, so ``backbone.layer4.0.conv1.weight`` in a
  torchvision state_dict lands on the same parameter here.
* :class:`SimpleSegmentationModel`: ``out = upsample(classifier(backbone(x)["out"]))`` to the
  input's ``H × W`` (bilinear, ``align_corners=False``), plus ``aux`` from an auxiliary head when
  there is one; returns a dict ``{"out": (N, classes, H, W)[, "aux": …]}`` as torchvision does.
"""
from collections import OrderedDict

from ... import functional as F
from ... import nn


class IntermediateLayerGetter(nn.ModuleDict):
    """Keep ``model``'s children up to the last name in ``return_layers`` and return their outputs.

    Args:
        model: a Module whose children run in registration order (ResNet: conv1, bn1, relu,
            maxpool, layer1..4; a Sequential: 0, 1, ...).
        return_layers: ``{child name: output name}``, e.g. ``{"layer4": "out", "layer3": "aux"}``.
    """

    def __init__(self, model, return_layers):
        names = [name for name, _ in model.named_children()]
        missing = [k for k in return_layers if k not in names]
        if missing:
            raise ValueError(f"IntermediateLayerGetter: return_layers {missing} are not children of "
                             f"{type(model).__name__} (children: {names})")
        layers, wanted = OrderedDict(), dict(return_layers)
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x):
        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class SimpleSegmentationModel(nn.Module):
    """``backbone`` (an :class:`IntermediateLayerGetter` giving ``"out"`` and maybe ``"aux"``),
    ``classifier`` on ``"out"``, optional ``aux_classifier`` on ``"aux"``; both upsampled bilinearly
    (``align_corners=False``) to the input size. Input ``(N, C, H, W)``, output
    ``{"out": (N, classes, H, W)}`` (and ``"aux"`` when ``aux_classifier`` is set)."""

    def __init__(self, backbone, classifier, aux_classifier=None):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier

    def forward(self, x):
        size = tuple(x.shape[-2:])
        features = self.backbone(x)
        result = OrderedDict()
        result["out"] = F.interpolate(self.classifier(features["out"]), size=size, mode="bilinear",
                                      align_corners=False)
        if self.aux_classifier is not None:
            result["aux"] = F.interpolate(self.aux_classifier(features["aux"]), size=size, mode="bilinear",
                                          align_corners=False)
        return result
