"""Generative CNNs: DCGAN, Pix2Pix (U-Net + PatchGAN), CycleGAN (ResNet generator), a small
StyleGAN; Gatys et al.'s neural style transfer. The GANs' training loops live in :mod:`minicnn.train_gan`."""
from .cyclegan import ResnetBlock, ResnetGenerator  # noqa: F401
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init, pad_images  # noqa: F401
from .pix2pix import (  # noqa: F401
    NLayerDiscriminator, UnetGenerator, UnetSkipConnectionBlock, patchgan_receptive_field,
)
from .stylegan import (  # noqa: F401
    EqualConv2d, EqualLinear, MappingNetwork, ModulatedConv2d, NoiseInjection, StyleGANDiscriminator,
    StyleGANGenerator, minibatch_stddev,
)
from .style_transfer import (  # noqa: F401
    CONTENT_LAYERS, LAYER_NAMES, STYLE_LAYERS, StyleNet, StyleTransfer, gram_matrix, train_style_net,
)
