"""MobileNet v1 (Howard et al., 2017), v2 (Sandler et al., 2018) and v3 (Howard et al., 2019).

v1: depthwise separable convolutions: a 3×3 depthwise convolution (``groups = channels``: one
filter per channel) then a 1×1 pointwise convolution, each with BN + ReLU: 4,231,976 parameters
for 1,000 classes.
v2: inverted residuals: 1×1 expand (×t) → 3×3 depthwise → 1×1 linear projection (no ReLU),
ReLU6 activations, a residual connection when stride is 1 and the shape is kept.
torchvision's layout and names: 3,504,872 parameters for 1,000 classes.
v3: v2's inverted residuals found by architecture search, some with squeeze-and-excitation
(a per-channel gate ``x · hardsigmoid(fc2(relu(fc1(avgpool(x)))))``), hardswish activations in
the deeper half, 5×5 depthwise kernels, and a 1×1 conv + Linear head. torchvision's layout,
names, initialisation and BatchNorm settings (eps=0.001, momentum=0.01): 5,483,032 (large) and
2,542,856 (small) parameters for 1,000 classes, so a torchvision state_dict loads name for name.
"""
from functools import partial

from .. import nn
from ..nn._checks import check_counts


def conv_bn_act(cin, cout, kernel_size=3, stride=1, groups=1, act=nn.ReLU6):
    """Conv (no bias) + BN + activation, torchvision's ``Conv2dNormActivation``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout), act(inplace=True),
    )


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.depthwise = conv_bn_act(cin, cin, 3, stride, groups=cin, act=nn.ReLU)
        self.pointwise = conv_bn_act(cin, cout, 1, act=nn.ReLU)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    CONFIG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0):
        super().__init__()
        c = int(32 * width_mult)
        layers = [conv_bn_act(in_channels, c, 3, 2, act=nn.ReLU)]
        for cout, s in self.CONFIG:
            cout = int(cout * width_mult)
            layers.append(DepthwiseSeparable(c, cout, s))
            c = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.avgpool(self.features(x)).flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand_ratio):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(cin, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.2):
        super().__init__()
        c = 32
        layers = [conv_bn_act(in_channels, c, 3, 2)]
        for t, cout, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        layers.append(conv_bn_act(c, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def mobilenet_v1(num_classes=1000, **kw):
    return MobileNetV1(num_classes, **kw)


def mobilenet_v2(num_classes=1000, **kw):
    return MobileNetV2(num_classes, **kw)


# ---- MobileNetV3 (torchvision's mobilenetv3.py layout) ----------------------------------------


def _make_divisible(v, divisor=8, min_value=None):
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), moved one ``divisor`` up when rounding lost more than 10% (TF-slim's rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    """torchvision's conv block: ``Conv2d`` (no bias, padding ``(k − 1) // 2 · dilation``, so the
    size is kept at stride 1) → ``norm_layer`` → ``activation_layer`` (left out when ``None``).
    Children ``0, 1[, 2]``; ``out_channels`` is kept for the segmentation models.
    Shape: ``(N, in_channels, H, W)`` → ``(N, out_channels, ⌈H / stride⌉, ⌈W / stride⌉)``."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, dilation=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                            padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, groups=groups,
                            bias=False),
                  norm_layer(out_channels)]
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): ``x · σ(fc2(δ(fc1(avgpool(x)))))`` with 1×1 convs
    ``fc1`` (C → squeeze_channels) and ``fc2`` (back to C); δ = ``activation`` (ReLU), σ =
    ``scale_activation`` (torchvision's default Sigmoid; MobileNetV3 uses Hardsigmoid).
    Shape: ``(N, C, H, W)`` → ``(N, C, H, W)``."""

    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidualConfig:
    """One row of Tables 1–2 of the MobileNetV3 paper: input, expanded and output channels (each
    scaled by ``width_mult`` and rounded to a multiple of 8), depthwise ``kernel``, ``use_se``,
    ``activation`` ("RE" = ReLU, "HS" = hardswish), ``stride`` and ``dilation``."""

    def __init__(self, input_channels, kernel, expanded_channels, out_channels, use_se, activation, stride,
                 dilation, width_mult):
        self.input_channels = self.adjust_channels(input_channels, width_mult)
        self.kernel = kernel
        self.expanded_channels = self.adjust_channels(expanded_channels, width_mult)
        self.out_channels = self.adjust_channels(out_channels, width_mult)
        self.use_se = use_se
        self.use_hs = activation == "HS"
        self.stride = stride
        self.dilation = dilation

    @staticmethod
    def adjust_channels(channels, width_mult):
        return _make_divisible(channels * width_mult, 8)


class InvertedResidualV3(nn.Module):
    """MobileNetV3 bottleneck (torchvision's ``mobilenetv3.InvertedResidual``; v2's block above
    keeps that name here): ``block`` = [1×1 expand] → k×k depthwise (stride, or dilation with
    stride 1 when dilated) → [squeeze-excitation, squeeze ``_make_divisible(E // 4, 8)``] →
    1×1 linear projection; ``+ x`` when stride is 1 and channels are kept. ``_is_cn`` marks a
    block that strides in the undilated network (where a stage begins).
    Shape: ``(N, input_channels, H, W)`` → ``(N, out_channels, H / stride, W / stride)``."""

    def __init__(self, cnf, norm_layer, se_layer=partial(SqueezeExcitation, scale_activation=nn.Hardsigmoid)):
        super().__init__()
        if cnf.stride not in (1, 2):
            raise ValueError(f"InvertedResidual (MobileNetV3): stride must be 1 or 2, got {cnf.stride}")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, cnf.expanded_channels, 1,
                                               norm_layer=norm_layer, activation_layer=act))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.expanded_channels, cnf.kernel,
                                           stride=1 if cnf.dilation > 1 else cnf.stride, dilation=cnf.dilation,
                                           groups=cnf.expanded_channels, norm_layer=norm_layer, activation_layer=act))
        if cnf.use_se:
            layers.append(se_layer(cnf.expanded_channels, _make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(Conv2dNormActivation(cnf.expanded_channels, cnf.out_channels, 1, norm_layer=norm_layer,
                                           activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels
        self._is_cn = cnf.stride > 1

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res_connect else y


class MobileNetV3(nn.Module):
    """MobileNetV3 (Howard et al., 2019), torchvision's layout.

    ``features`` = [3×3 stride-2 conv → BN → hardswish] + one :class:`InvertedResidualV3` per
    config + [1×1 conv to 6·C_last → BN → hardswish]; ``avgpool`` (global); ``classifier`` =
    Linear(6·C_last, last_channel) → Hardswish → Dropout(dropout) → Linear(last_channel, num_classes).
    Initialised as torchvision: convs Kaiming-normal (fan_out), BN weight 1 / bias 0, Linear
    weights N(0, 0.01), biases 0.

    Args:
        inverted_residual_setting: list of :class:`InvertedResidualConfig`.
        last_channel: width of the classifier's hidden layer.
    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)`` (output stride 32, 16 when dilated).
    """

    def __init__(self, inverted_residual_setting, last_channel, num_classes=1000, block=None, norm_layer=None,
                 dropout=0.2, in_channels=3):
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("MobileNetV3: inverted_residual_setting must not be empty")
        if not all(isinstance(c, InvertedResidualConfig) for c in inverted_residual_setting):
            raise TypeError("MobileNetV3: inverted_residual_setting must be a list of InvertedResidualConfig")
        check_counts("MobileNetV3", num_classes=num_classes, in_channels=in_channels, last_channel=last_channel)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MobileNetV3: dropout must be in [0, 1], got {dropout}")
        block = InvertedResidualV3 if block is None else block
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01) if norm_layer is None else norm_layer
        self.in_channels = in_channels
        first = inverted_residual_setting[0].input_channels
        layers = [Conv2dNormActivation(in_channels, first, 3, stride=2, norm_layer=norm_layer,
                                       activation_layer=nn.Hardswish)]
        layers += [block(cnf, norm_layer) for cnf in inverted_residual_setting]
        last_in = inverted_residual_setting[-1].out_channels
        last_out = 6 * last_in
        layers.append(Conv2dNormActivation(last_in, last_out, 1, norm_layer=norm_layer,
                                           activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(last_out, last_channel), nn.Hardswish(inplace=True),
                                        nn.Dropout(p=dropout, inplace=True), nn.Linear(last_channel, num_classes))
        _init_like_torchvision(self)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MobileNetV3: expected input (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _init_like_torchvision(model):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def _mobilenet_v3_conf(arch, width_mult=1.0, reduced_tail=False, dilated=False):
    """The bottleneck table and ``last_channel`` of ``arch`` (Tables 1 and 2 of the paper).
    ``reduced_tail`` halves the channels of the last stage; ``dilated`` makes the last stage
    stride 1 with dilation 2 (output stride 16, for segmentation)."""
    if not width_mult > 0:
        raise ValueError(f"{arch}: width_mult must be > 0, got {width_mult}")
    r = 2 if reduced_tail else 1
    d = 2 if dilated else 1
    conf = partial(InvertedResidualConfig, width_mult=width_mult)
    if arch == "mobilenet_v3_large":
        rows = [(16, 3, 16, 16, False, "RE", 1, 1),
                (16, 3, 64, 24, False, "RE", 2, 1),  # C1
                (24, 3, 72, 24, False, "RE", 1, 1),
                (24, 5, 72, 40, True, "RE", 2, 1),  # C2
                (40, 5, 120, 40, True, "RE", 1, 1),
                (40, 5, 120, 40, True, "RE", 1, 1),
                (40, 3, 240, 80, False, "HS", 2, 1),  # C3
                (80, 3, 200, 80, False, "HS", 1, 1),
                (80, 3, 184, 80, False, "HS", 1, 1),
                (80, 3, 184, 80, False, "HS", 1, 1),
                (80, 3, 480, 112, True, "HS", 1, 1),
                (112, 3, 672, 112, True, "HS", 1, 1),
                (112, 5, 672, 160 // r, True, "HS", 2, d),  # C4
                (160 // r, 5, 960 // r, 160 // r, True, "HS", 1, d),
                (160 // r, 5, 960 // r, 160 // r, True, "HS", 1, d)]
        last = 1280 // r
    elif arch == "mobilenet_v3_small":
        rows = [(16, 3, 16, 16, True, "RE", 2, 1),  # C1
                (16, 3, 72, 24, False, "RE", 2, 1),  # C2
                (24, 3, 88, 24, False, "RE", 1, 1),
                (24, 5, 96, 40, True, "HS", 2, 1),  # C3
                (40, 5, 240, 40, True, "HS", 1, 1),
                (40, 5, 240, 40, True, "HS", 1, 1),
                (40, 5, 120, 48, True, "HS", 1, 1),
                (48, 5, 144, 48, True, "HS", 1, 1),
                (48, 5, 288, 96 // r, True, "HS", 2, d),  # C4
                (96 // r, 5, 576 // r, 96 // r, True, "HS", 1, d),
                (96 // r, 5, 576 // r, 96 // r, True, "HS", 1, d)]
        last = 1024 // r
    else:
        raise ValueError(f"MobileNetV3: unknown arch {arch!r} (mobilenet_v3_large or mobilenet_v3_small)")
    return [conf(*row) for row in rows], InvertedResidualConfig.adjust_channels(last, width_mult)


def mobilenet_v3_large(num_classes=1000, dilated=False, in_channels=3, width_mult=1.0, reduced_tail=False, **kw):
    """MobileNetV3-Large, torchvision's ``mobilenet_v3_large`` (5,483,032 parameters for 1,000
    classes). ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``kw``: ``dropout``, ``norm_layer``."""
    setting, last = _mobilenet_v3_conf("mobilenet_v3_large", width_mult, reduced_tail, dilated)
    return MobileNetV3(setting, last, num_classes=num_classes, in_channels=in_channels, **kw)


def mobilenet_v3_small(num_classes=1000, dilated=False, in_channels=3, width_mult=1.0, reduced_tail=False, **kw):
    """MobileNetV3-Small, torchvision's ``mobilenet_v3_small`` (2,542,856 parameters for 1,000
    classes). ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``kw``: ``dropout``, ``norm_layer``."""
    setting, last = _mobilenet_v3_conf("mobilenet_v3_small", width_mult, reduced_tail, dilated)
    return MobileNetV3(setting, last, num_classes=num_classes, in_channels=in_channels, **kw)
