"""The model registry, the ``ProbeNet`` wrapper every family returns, and
``create_model`` / ``list_models``.

A ``ProbeNet`` is ``head(trunk(x), input_size)``:

* the *trunk* maps ``(B, Cin, H, W)`` to a feature map ``(B, F, h, w)`` and knows
  its own theoretical receptive field (``None`` when a unit sees the whole input);
* the *head* turns that map into the requested output (see ``heads.py``).

Example::

    >>> import fcnprobe
    >>> m = fcnprobe.create_model("fcn", head="vector:10")
    >>> m.info.head            # the adapter is part of the name
    'vector:10@gap'
    >>> m.receptive_field(32)  # 1 + 2 * depth for 3x3 stride-1 convs
    13
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn as nn

from fcnprobe.errors import UsageError
from fcnprobe.models.heads import DenseConvHead, HeadSpec, build_adapter, parse_head
from fcnprobe.registry import Registry

MODELS: Registry = Registry("model")

DEFAULT_WIDTH = 32  # channels; ~48k parameters at depth 6, trains in seconds on 2 CPU cores
DEFAULT_DEPTH = 6  # 3x3 layers; fcn TRF = 13 px, well inside a 32 px image so far cues are out of reach
DEFAULT_IMAGE_SIZE = 32  # the size fixed-size families (cnn_fc, attention's positions) are built for
# What kind of network a family is (issue 15): 'fcn' = convolution only, no global pooling, FC layer or
# attention anywhere; 'fcn_pool' = an FCN whose dense map is reduced by a parameter-free global pool at the
# output only; 'global_op' = global pooling, attention or an FC layer inside the network.
CATEGORIES = ("fcn", "fcn_pool", "global_op")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a built model is: registry name, resolved head, build arguments."""

    name: str
    head: str  # resolved head string, e.g. 'vector:10@gap'
    in_channels: int
    image_size: int
    width: int | None
    depth: int | None
    native_head: bool  # False when a registered adapter bridges the trunk to the head


class ProbeNet(nn.Module):
    """``head(trunk(x))`` with the metadata probes need."""

    def __init__(self, trunk: nn.Module, head: nn.Module, info: ModelInfo) -> None:
        super().__init__()
        self.trunk, self.head, self.info = trunk, head, info

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last spatial feature map, (B, F, h, w)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), tuple(x.shape[-2:]))

    def receptive_field(self, image_size: int | None = None) -> int | None:
        """Side of the trunk's theoretical receptive field in pixels; None if global.

        Computed from the layers' kernel sizes, strides and dilations. For
        convolutions the value does not depend on ``image_size`` (it is not
        clipped to the image); global operations make it ``None`` at any size.
        """
        if getattr(self.trunk, "rf_depends_on_size", False):  # e.g. encoder-decoders with resizing
            return self.trunk.receptive_field(image_size or self.info.image_size)
        return self.trunk.receptive_field()


def register_model(name: str | None = None, *, native: tuple[str, ...] = ("dense",), category: str | None = None,
                   **meta: Any) -> Callable:
    """Decorator for a family factory ``f(spec, in_channels, image_size, width, depth, **kw)``.

    ``native`` lists the head kinds the family produces without an adapter;
    ``category`` is one of ``CATEGORIES`` (the report's verdicts group models by it).
    """
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"model '{name}': category must be one of {CATEGORIES}, got {category!r}")
    return MODELS.register(name, native=native, category=category, **meta)


def model_catalog() -> dict[str, dict[str, Any]]:
    """Plain-data metadata of every registered model (category, family, native heads), for the manifest.

    The report reads it from there, since it cannot import the zoo (torch).
    """
    keep = ("category", "family", "native", "user")
    out = {n: {k: v for k, v in MODELS.meta(n).items() if k in keep} for n in MODELS.names()}
    for name, meta in out.items():
        if meta.get("category") is None:
            meta["category"] = measured_category(name)
    return out


def measured_category(name: str) -> str | None:
    """For a family that declares no category: 'fcn' if its TRF is finite, 'global_op' if global.

    A finite TRF rules out global pooling, attention and FC layers; None when the model cannot be built.
    """
    from fcnprobe.measure.receptive import theoretical_receptive_field
    from fcnprobe.utils import default_head

    try:
        model = create_model(name, head=default_head(MODELS.meta(name)["native"]))
    except Exception:  # noqa: BLE001 -- a user factory may fail; the catalogue then says nothing
        return None
    try:
        return "fcn" if theoretical_receptive_field(model) is not None else "global_op"
    except ValueError:  # UnknownReceptiveField: an op the graph cannot place; the catalogue says nothing
        return None


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, e.g. ``list_models("fcn*")``.

    Families registered with ``listed=False`` (the heavy real layouts of ``real.py``) are left out;
    ``--models`` (``MODELS.select``) still names them.
    """
    return [n for n in MODELS.names(pattern) if MODELS.meta(n).get("listed", True)]


def resolve_head(name: str, head: "str | HeadSpec") -> HeadSpec:
    """Parse ``head`` and, where the family has no native head of that kind, name the adapter."""
    spec = parse_head(head)
    native = MODELS.meta(name)["native"]
    if spec.kind not in native and spec.adapter is None:
        if spec.kind == "dense" or not MODELS.meta(name).get("adapters", True):
            raise UsageError(f"model '{name}' has no {spec.kind} head; its heads: {', '.join(native)}")
        spec = spec.with_adapter("gap")
    return spec


def create_model(
    name: str,
    head: "str | HeadSpec" = "dense:4",
    in_channels: int = 3,
    image_size: int = DEFAULT_IMAGE_SIZE,
    width: int | None = None,
    depth: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model. ``width``/``depth`` default to the family's defaults.

    A ``module.path:factory`` name builds a user's model instead (``fcnprobe.models.user``).

    >>> create_model("cnn_fc", head="box", image_size=32)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 4])
    """
    if ":" in name:  # a user model; registry names never hold a colon
        return _create_user_model(name, head, in_channels, image_size, width, depth, **kwargs)
    factory = MODELS.get(name)
    spec = resolve_head(name, head)
    model = factory(spec=spec, in_channels=in_channels, image_size=image_size,
                    width=width, depth=depth, **kwargs)
    if getattr(model, "info", None) is None:
        model.info = ModelInfo(name, str(spec), in_channels, image_size, width, depth, spec.adapter is None)
    return model


def _create_user_model(path: str, head: "str | HeadSpec", in_channels: int, image_size: int,
                       width: int | None, depth: int | None, **kwargs: Any) -> nn.Module:
    """Build a user's model; its ``info`` records what was really passed (None where the factory took nothing)."""
    from fcnprobe.models.user import build_user_model

    model, args = build_user_model(path, head, in_channels, image_size, width, depth, **kwargs)
    if getattr(model, "info", None) is None:
        spec = str(parse_head(head))
        model.info = ModelInfo(path, spec, in_channels, image_size, args.get("width"), args.get("depth"), True)
    return model


def make_head(trunk_channels: int, spec: HeadSpec) -> nn.Module:
    """The default head for a spatial trunk: a 1x1 conv for dense, else the adapter."""
    return DenseConvHead(trunk_channels, spec) if spec.kind == "dense" else build_adapter(trunk_channels, spec)


def wrap(name: str, trunk: nn.Module, head: nn.Module, spec: HeadSpec, in_channels: int,
         image_size: int, width: int, depth: int) -> ProbeNet:
    """Assemble a ProbeNet with its ModelInfo."""
    info = ModelInfo(name, str(spec), in_channels, image_size, width, depth, spec.adapter is None)
    return ProbeNet(trunk, head, info)
