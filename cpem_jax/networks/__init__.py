"""PE-Net and its backbones (Flax Linen).

`PENet` maps images [N, H, W, 3] in [0, 1] to `Coefficients` with leading [N]; backbones are
ResNet-50 (the paper's), ResNet-18 and MobileNet-V2 (light). ImageNet weights a user brings as a
torchvision state dict are loaded with `load_into_pe_net`.
"""
from cpem_jax.networks.heads import CoefficientHeads, lighting_offset
from cpem_jax.networks.mobilenet import MobileNetV2, mobilenet_v2
from cpem_jax.networks.pe_net import (BACKBONES, IMAGENET_MEAN, IMAGENET_STD, PENet, fold_frames,
                                      pe_net_from_config,
                                      init_pe_net, make_backbone, normalize_images, unfold_frames)
from cpem_jax.networks.resnet import ResNet, resnet18, resnet50
from cpem_jax.networks.torchvision_convert import (ConversionError, convert_state_dict,
                                                   load_into_pe_net, load_state_dict,
                                                   required_torch_names)

__all__ = [
    "BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD", "CoefficientHeads", "ConversionError",
    "MobileNetV2", "PENet", "ResNet", "convert_state_dict", "fold_frames", "init_pe_net",
    "lighting_offset", "load_into_pe_net", "load_state_dict", "make_backbone", "mobilenet_v2",
    "normalize_images", "pe_net_from_config", "required_torch_names", "resnet18", "resnet50",
    "unfold_frames",
]
