"""Two real layouts as trainable families (issue 17, part 7): the claims beyond 12k-parameter nets at 32 px.

* ``resnet18_fcn`` -- an FCN in the seed's sense on a ResNet-18 backbone (basic
  blocks, depths 2-2-2-2) built from a ``transformers`` ``ResNetConfig``: the
  stride-8, -16 and -32 stage maps are each projected by a 1x1 conv, resized to
  the stride-8 grid and summed (the FCN-8s skip fusion of Long et al.).
  Convolution and bilinear resizing only: no global pooling, FC layer or
  attention, so category ``fcn``; its graph TRF (467 px: 435 px of backbone to
  stage 4, plus the fusion) covers a 64 px image.
* ``segformer_b0_seg`` -- SegFormer-B0 (``SegformerConfig()``'s defaults) with
  its all-MLP decoder; the decoder's 256-channel 1/4-resolution map is the
  trunk output (its 1x1 classifier is replaced by the probe's head).
  Efficient self-attention makes it ``global_op``.

Both are random-init (nothing is downloaded) and take any head through the
zoo's ``make_head``: a dense head is a 1x1 conv resized to the input, a vector
or box head reads the average-pooled map (an adapter). ``width`` scales the
ResNet's stage widths (None: the published 64-128-256-512); SegFormer keeps its
published widths. They are registered with ``listed=False``: ``list_models()``
(the default model lists of erf and shape) leaves them out, ``--models`` names
them. The context probe trains them at 64 px in ``standard``.
References: He et al. 2016 (ResNet), Long et al. 2015 (FCN), Xie et al. 2021 (SegFormer).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fcnprobe.models.base import make_head, register_model, wrap
from fcnprobe.models.heads import HeadSpec

RESNET18_WIDTHS = (64, 128, 256, 512)
FUSE_CHANNELS = 64  # channels of the fused stride-8 map of resnet18_fcn
REAL_LR = 1e-3  # the zoo's attention default; not tuned for these layouts (they have no LR-grid rows yet)


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"the real layouts need transformers ({exc}): pip install 'fcnprobe[zoo]'") from None
    return transformers


class _GraphRF(nn.Module):
    """Trunk mix-in: the TRF of the centre unit from the traced graph at the image size (None = global)."""

    rf_depends_on_size = True

    def receptive_field(self, image_size: int) -> int | None:
        from fcnprobe.measure.trf_graph import graph_receptive_field

        field = graph_receptive_field(self, image_size).field
        if field.kind == "unknown":
            from fcnprobe.measure.receptive import UnknownReceptiveField

            raise UnknownReceptiveField(field.reason or "no reason given")
        return field.side_px


class ResNet18FCNTrunk(_GraphRF):
    """ResNet-18 stages 2-4 -> 1x1 projections -> resized to stride 8 and summed: (B, 64, H/8, W/8)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        T = _transformers()

        cfg = T.ResNetConfig(num_channels=in_channels, layer_type="basic", depths=[2, 2, 2, 2],
                             hidden_sizes=list(widths), embedding_size=widths[0],
                             out_features=["stage2", "stage3", "stage4"])
        self.backbone = T.ResNetBackbone(cfg)
        self.proj = nn.ModuleList(nn.Conv2d(w, FUSE_CHANNELS, 1) for w in widths[1:])
        self.out_channels = FUSE_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.backbone(x).feature_maps  # strides 8, 16, 32
        size = maps[0].shape[-2:]
        return sum(F.interpolate(p(m), size=size, mode="bilinear", align_corners=False)
                   for p, m in zip(self.proj, maps))


class SegformerTrunk(_GraphRF):
    """SegFormer-B0 encoder and all-MLP decoder without its classifier: (B, 256, H/4, W/4)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        T = _transformers()

        cfg = T.SegformerConfig(num_channels=in_channels)
        self.net = T.SegformerForSemanticSegmentation(cfg)
        self.net.decode_head.classifier = nn.Identity()
        self.out_channels = cfg.decoder_hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).logits


@register_model("resnet18_fcn", family="resnet18_fcn", category="fcn", lr=REAL_LR, listed=False,
                native=("dense",), real=True)
def resnet18_fcn(spec: HeadSpec, in_channels: int, image_size: int, width=None, depth=None) -> nn.Module:
    widths = RESNET18_WIDTHS if width is None else tuple(width * 2 ** i for i in range(4))
    trunk = ResNet18FCNTrunk(in_channels, widths)
    return wrap("resnet18_fcn", trunk, make_head(trunk.out_channels, spec), spec, in_channels, image_size,
                widths[0], 18)


@register_model("segformer_b0_seg", family="segformer_b0_seg", category="global_op", lr=REAL_LR, listed=False,
                native=("dense",), real=True)
def segformer_b0_seg(spec: HeadSpec, in_channels: int, image_size: int, width=None, depth=None) -> nn.Module:
    trunk = SegformerTrunk(in_channels)
    return wrap("segformer_b0_seg", trunk, make_head(trunk.out_channels, spec), spec, in_channels, image_size,
                32, 8)
