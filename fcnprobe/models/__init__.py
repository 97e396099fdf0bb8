"""The model zoo: every family registered in ``MODELS``; import this package to fill it.

Public API: ``create_model(name, head=..., in_channels=..., image_size=..., width=..., depth=...)``,
``list_models(pattern)`` and ``theoretical_receptive_field(model, image_size)``.
"""
import importlib

from fcnprobe.models import attention, cnn_fc, convnets, encdec, seed  # noqa: F401  (registration)
from fcnprobe.models.base import MODELS, ModelInfo, ProbeNet, create_model, list_models, register_model
from fcnprobe.models.heads import ADAPTERS, HeadSpec, parse_head
from fcnprobe.models.receptive import theoretical_receptive_field

__all__ = ["ADAPTERS", "MODELS", "HeadSpec", "ModelInfo", "ProbeNet", "create_model", "list_models",
           "parse_head", "register_model", "theoretical_receptive_field"]

try:  # extra adapters (soft-argmax, heatmap decoding) register themselves when present
    importlib.import_module("fcnprobe.models.adapters")
except ModuleNotFoundError as _exc:
    if _exc.name != "fcnprobe.models.adapters":
        raise
