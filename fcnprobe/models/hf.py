"""Real architectures at random init: builders from ``transformers`` configs, and torchvision where it imports.

Weights cannot be downloaded here, so every network is built from its config
(random init) -- enough for what needs no training: the graph TRF against the
image, the native output stride, the ERF at init and the cost slopes. Each
builder is a plain factory (no ``head``), so it also works from the command line::

    python -m fcnprobe.run diagnose fcnprobe.models.hf:segformer_b0 --image-size 256 --output logits
    python -m fcnprobe.run erf --model fcnprobe.models.hf:resnet18 --output last_hidden_state --image-size 64

``REAL_ARCHS`` registers each with its ``source`` (transformers | torchvision),
the ``output`` to probe, the ``sizes`` it runs at in the quick preset and a
``note``. ``unavailable(source)`` says why a source cannot import (torchvision's
wheels in the registry are CUDA builds that fail beside the CPU torch), so
the probe records a skipped row with that reason. Imports are inside the
builders: importing this module stays torch- and transformers-free.
References: Xie et al. (SegFormer), He et al. (ResNet), Dosovitskiy et al.
(ViT), Liu et al. (Swin), Mehta & Rastegari (MobileViT), Xiao et al. (UperNet),
Liu et al. (ConvNeXt); Long et al. (FCN), Chen et al. (DeepLabv3), Howard et al. (LR-ASPP).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fcnprobe.registry import Registry

if TYPE_CHECKING:
    import torch.nn as nn

REAL_ARCHS: Registry = Registry("real architecture")
SMALL = (64, 128)  # px: two sizes give a cost slope; 64 keeps a float64 ERF check of a 25M-param net cheap
SWIN_SIZES = (224, 448)  # transformers' Swin needs every stage's side to be a multiple of its 7-px window


def unavailable(source: str) -> str | None:
    """Why ``source`` cannot be imported here (one line), or None when it can."""
    try:
        importlib.import_module(source)
    except Exception as exc:  # noqa: BLE001 -- ImportError, or torchvision's own RuntimeError at import
        return f"{source} does not import here ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
    return None


def _t() -> Any:
    import transformers

    return transformers


@REAL_ARCHS.register("segformer_b0", source="transformers", output="logits", sizes=SMALL,
                     note="SegFormer-B0 with its all-MLP decoder; logits at 1/4 resolution")
def segformer_b0() -> "nn.Module":
    T = _t()
    return T.SegformerForSemanticSegmentation(T.SegformerConfig())  # the default config is B0


@REAL_ARCHS.register("resnet18", source="transformers", output="last_hidden_state", sizes=SMALL,
                     note="ResNet-18 (basic blocks) backbone; its stride-32 map")
def resnet18() -> "nn.Module":
    T = _t()
    return T.ResNetModel(T.ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512]))


@REAL_ARCHS.register("resnet50", source="transformers", output="last_hidden_state", sizes=SMALL,
                     note="ResNet-50 (bottlenecks) backbone; its stride-32 map")
def resnet50() -> "nn.Module":
    T = _t()
    return T.ResNetModel(T.ResNetConfig())  # the default config is ResNet-50


def vit_tiny() -> "nn.Module":
    """ViT-Ti/16 (width 192, 12 layers, 3 heads); position embeddings interpolated to any input size."""
    import torch.nn as nn

    T = _t()
    cfg = T.ViTConfig(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768)

    class AnySizeViT(nn.Module):  # defined here so torch is imported lazily
        def __init__(self) -> None:
            super().__init__()
            self.vit = T.ViTModel(cfg, add_pooling_layer=False)

        def forward(self, x):
            return self.vit(pixel_values=x, interpolate_pos_encoding=True)  # (B, 1 + N, 192) tokens

    return AnySizeViT()


REAL_ARCHS.add("vit_tiny", vit_tiny, source="transformers", output="last_hidden_state", sizes=SMALL,
               note="ViT-Ti/16; output is a token sequence (CLS + patches), no spatial map")


@REAL_ARCHS.register("swin_tiny", source="transformers", output="last_hidden_state", sizes=SWIN_SIZES,
                     note="Swin-T backbone; window partitioning")
def swin_tiny() -> "nn.Module":
    T = _t()
    return T.SwinModel(T.SwinConfig(), add_pooling_layer=False)  # the default config is Swin-T


@REAL_ARCHS.register("mobilevit_small", source="transformers", output="logits", sizes=SMALL,
                     note="MobileViT-S with its DeepLabv3 head; unfold-to-patches attention")
def mobilevit_small() -> "nn.Module":
    T = _t()
    return T.MobileViTForSemanticSegmentation(T.MobileViTConfig())


@REAL_ARCHS.register("upernet_convnext", source="transformers", output="logits", sizes=SMALL,
                     note="UperNet on ConvNeXt-T; its pyramid pooling module pools globally")
def upernet_convnext() -> "nn.Module":
    T = _t()
    backbone = T.ConvNextConfig(out_features=["stage1", "stage2", "stage3", "stage4"])
    backbone.hidden_sizes, backbone.depths = list(backbone.hidden_sizes), list(backbone.depths)  # 5.x: tuples break
    return T.UperNetForSemanticSegmentation(T.UperNetConfig(backbone_config=backbone))


def _tv(name: str) -> "nn.Module":
    from torchvision.models import segmentation

    return getattr(segmentation, name)(weights=None, weights_backbone=None)  # random init, nothing downloaded


@REAL_ARCHS.register("tv_fcn_resnet50", source="torchvision", output="out", sizes=SMALL,
                     note="torchvision FCN-ResNet50 (dilated, output stride 8)")
def tv_fcn_resnet50() -> "nn.Module":
    return _tv("fcn_resnet50")


@REAL_ARCHS.register("tv_deeplabv3_resnet50", source="torchvision", output="out", sizes=SMALL,
                     note="torchvision DeepLabv3-ResNet50 (ASPP with image pooling)")
def tv_deeplabv3_resnet50() -> "nn.Module":
    return _tv("deeplabv3_resnet50")


@REAL_ARCHS.register("tv_lraspp", source="torchvision", output="out", sizes=SMALL,
                     note="torchvision LR-ASPP MobileNetV3-Large (squeeze-excite, global pooling branch)")
def tv_lraspp() -> "nn.Module":
    return _tv("lraspp_mobilenet_v3_large")


def build_real(name: str) -> "nn.Module":
    """The registered architecture ``name`` at random init, in eval mode; ImportError says why it cannot build."""
    reason = unavailable(REAL_ARCHS.meta(name)["source"])
    if reason:
        raise ImportError(reason)
    return REAL_ARCHS.get(name)().eval()
