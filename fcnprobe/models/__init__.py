"""The model zoo: every family registered in ``MODELS``; import this package to fill it.

Every module of this package is imported here, so adding a family is adding a
file with a ``@register_model(name, category=...)`` factory.

Public API: ``create_model(name, head=..., in_channels=..., image_size=..., width=..., depth=...)``,
``list_models(pattern)`` and ``theoretical_receptive_field(model, image_size)``.
"""
from fcnprobe.measure.receptive import theoretical_receptive_field
from fcnprobe.models.base import (CATEGORIES, MODELS, ModelInfo, ProbeNet, create_model, list_models, model_catalog,
                                  register_model)
from fcnprobe.models.heads import ADAPTERS, HeadSpec, parse_head
from fcnprobe.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["ADAPTERS", "CATEGORIES", "MODELS", "HeadSpec", "ModelInfo", "ProbeNet", "create_model", "list_models",
           "model_catalog", "parse_head", "register_model", "theoretical_receptive_field"]
