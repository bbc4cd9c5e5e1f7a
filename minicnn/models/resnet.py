"""ResNet (He et al., 2015): residual blocks ``y = relu(F(x) + shortcut(x))``.

- :class:`BasicBlock` (ResNet-18/34): two 3×3 convolutions;
- :class:`Bottleneck` (ResNet-50): 1×1 reduce → 3×3 (stride here, as torchvision "v1.5") → 1×1
  expand ×4.
The shortcut is the identity, or a 1×1 convolution + BN when the shape changes. Names follow
torchvision, so its state_dict loads name for name: resnet18 has 11,689,512 parameters and
resnet50 25,557,032 (1,000 classes). ``small_input=True`` replaces the 7×7/2 stem and max pool by
a 3×3/1 convolution for 28×28 or 32×32 images.

``replace_stride_with_dilation=[False, True, True]`` (torchvision's, for segmentation) keeps the
stride of layer3 and layer4 at 1 and dilates their 3×3 convolutions instead (Chen et al., "atrous"
convolution), so layer4 sees the image at stride 8 instead of 32 with the same weights.

``norm_layer`` (PyTorch's argument; default ``nn.BatchNorm2d``) is the normalisation built after
every convolution, called as ``norm_layer(channels)``: detection backbones pass
:class:`~minicnn.models.detection.misc.FrozenBatchNorm2d`.
"""
from .. import nn


def conv3x3(cin, cout, stride=1, dilation=1):
    """3×3 convolution without bias; ``padding = dilation`` keeps ``H' = ⌈H/stride⌉``."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin, cout, stride=1):
    """1×1 convolution without bias."""
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """``relu(bn2(conv3x3(relu(bn1(conv3x3_s(x))))) + shortcut(x))``: (N, cin, H, W) →
    (N, planes, H/stride, W/stride). Dilation is not supported (torchvision's rule).
    ``norm_layer(channels)`` builds bn1/bn2 (default ``nn.BatchNorm2d``)."""

    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None, dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if dilation > 1:
            raise ValueError(f"BasicBlock: dilation > 1 is not supported (got dilation={dilation}); "
                             "replace_stride_with_dilation needs Bottleneck blocks (resnet50)")
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        out.add_(shortcut)  # torchvision's ``out += identity``: in place, recorded in the graph
        return self.relu(out)


class Bottleneck(nn.Module):
    """``relu(bn3(conv1x1(relu(bn2(conv3x3_{s,d}(relu(bn1(conv1x1(x)))))))) + shortcut(x))``:
    (N, cin, H, W) → (N, 4·planes, H/stride, W/stride); the 3×3 convolution carries the stride
    and the dilation ``d`` (padding ``d``). ``norm_layer(channels)`` builds bn1..bn3 (default
    ``nn.BatchNorm2d``)."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None, dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = norm_layer(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        out.add_(shortcut)  # torchvision's ``out += identity``
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet: stem (7×7/2 conv, BN, ReLU, 3×3/2 max pool) → layer1..layer4 → global average
    pool → fc. Input (N, in_channels, H, W), output (N, num_classes).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, 4 entries (ResNet-50: ``(3, 4, 6, 3)``).
        width: planes of layer1 (64); layer k has ``width·2^(k−1)`` planes, ×4 out for Bottleneck.
        small_input: a 3×3/1 stem without max pool, for 28×28 or 32×32 images.
        replace_stride_with_dilation: 3 bools for layer2..layer4 (default all False). A True
            entry gives that stage stride 1 and multiplies the running dilation by 2; its first
            block keeps the previous dilation, the others use the new one; the downsample
            shortcut is a stride-1 1×1 convolution (torchvision's rule). Feature stride of
            layer4: 32, 16 with ``[False, False, True]``, 8 with ``[False, True, True]``.
        norm_layer: the normalisation after each convolution, ``norm_layer(channels)``
            (default ``nn.BatchNorm2d``; detection uses ``FrozenBatchNorm2d``).
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, small_input=False, width=64,
                 replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("ResNet: replace_stride_with_dilation should be None or 3 bools (layer2, layer3, "
                             f"layer4), got {replace_stride_with_dilation!r}")
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"ResNet: layers should be 4 block counts >= 1 (layer1..layer4), got {tuple(layers)!r}")
        self.inplanes = width
        self.dilation = 1
        # children registered in torchvision's order (conv1, bn1, relu, maxpool, layer1..): the
        # segmentation backbones' IntermediateLayerGetter runs them in this order
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        dilate = [bool(d) for d in replace_stride_with_dilation]
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2, dilate=dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        previous_dilation = self.dilation
        if dilate:  # trade this stage's stride for dilation of its later 3×3 convolutions
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       self._norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, dilation=previous_dilation,
                        norm_layer=self._norm_layer)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation, norm_layer=self._norm_layer)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes=1000, **kw):
    """ResNet-18 (BasicBlock, 2-2-2-2); keywords as :class:`ResNet`."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, **kw)


def resnet34(num_classes=1000, **kw):
    """ResNet-34 (BasicBlock, 3-4-6-3); keywords as :class:`ResNet`."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, **kw)


def resnet50(num_classes=1000, **kw):
    """ResNet-50 (Bottleneck, 3-4-6-3); keywords as :class:`ResNet`, e.g.
    ``replace_stride_with_dilation=[False, True, True]`` for a stride-8 segmentation backbone."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, **kw)
