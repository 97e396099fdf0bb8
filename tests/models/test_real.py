"""The real layouts trained by the context probe (issue 17, part 7): they build from transformers configs at
64 px with every head, declare their category, stay out of the default model lists, and their TRFs read as
the graph says: the ResNet-18 FCN finite and covering the image, SegFormer global."""
from __future__ import annotations

import pytest
import torch

from fcnprobe.models import MODELS, create_model, list_models
from tests.transformers_gate import require_transformers


@pytest.mark.parametrize("name,category", [("resnet18_fcn", "fcn"), ("segformer_b0_seg", "global_op")])
@pytest.mark.parametrize("head,shape", [("dense:2", (2, 2, 64, 64)), ("vector:3", (2, 3))])
def test_real_layouts_build_with_every_head(name, category, head, shape):
    require_transformers()
    model = create_model(name, head=head, image_size=64, width=16 if name == "resnet18_fcn" else None)
    assert model(torch.randn(2, 3, 64, 64)).shape == shape
    assert MODELS.meta(name)["category"] == category and model.info.head.startswith(head)


def test_real_layouts_are_named_but_not_listed():
    assert not {"resnet18_fcn", "segformer_b0_seg"} & set(list_models())
    assert MODELS.select(["resnet18_fcn"]) == ["resnet18_fcn"]


def test_resnet18_fcn_covers_the_image_and_segformer_is_global():
    require_transformers()
    fcn = create_model("resnet18_fcn", head="dense:2", image_size=64, width=16)
    trf = fcn.receptive_field(64)
    assert trf is not None and trf >= 2 * 64  # ResNet-18 to stage 4 alone is 435 px
    seg = create_model("segformer_b0_seg", head="dense:2", image_size=64)
    assert seg.receptive_field(64) is None
    from fcnprobe.measure.receptive import UnknownReceptiveField

    with pytest.raises(UnknownReceptiveField, match="cat of maps"):  # unknown is said, never read as global
        seg.receptive_field(32)


def test_width_scales_the_resnet_stages():
    require_transformers()
    small = create_model("resnet18_fcn", head="dense:2", image_size=64, width=8)
    widths = [m.out_channels for m in small.trunk.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(widths) == 64 and min(widths) == 8  # 8, 16, 32, 64
