"""Deep supervision: auxiliary heads on intermediate layers of a trunk (Lee et al., AISTATS 2015,
"Deeply-Supervised Nets"; the seed's "intermediate supervision").

``DeepSupervised(net, taps)`` wraps a ``MultiHeadNet``: a forward hook on each
tapped trunk layer keeps that layer's feature map, and a copy of every output
head (the same head spec, built fresh with ``build_adapter``) reads it. In
training, ``outputs`` returns the main outputs and one dict per tap; the loss
averages the auxiliary losses and adds them with weight ``aux_weight``. At
evaluation only the main heads are used, so the auxiliary heads are a
training-time cost only; ``aux_params`` counts them.

``trunk_layers`` lists the tappable layers: the trunk's conv blocks (``ConvBNReLU``)
in forward order. ``default_taps`` taps every block but the last (the main heads
read the last), as deeply-supervised nets do for every hidden layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from fcnprobe.models.adapters import MultiHeadNet
from fcnprobe.models.heads import build_adapter, parse_head
from fcnprobe.models.layers import ConvBNReLU


def trunk_layers(trunk: nn.Module) -> list[nn.Module]:
    """The trunk's conv blocks in forward (registration) order."""
    return [m for m in trunk.modules() if isinstance(m, ConvBNReLU)]


def default_taps(trunk: nn.Module) -> tuple[int, ...]:
    """Every conv block but the last; empty for a trunk with fewer than two blocks."""
    return tuple(range(len(trunk_layers(trunk)) - 1))


def _channels(layer: nn.Module) -> int:
    convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"cannot tap {type(layer).__name__}: it has no Conv2d")
    return convs[-1].out_channels


class DeepSupervised(nn.Module):
    """A ``MultiHeadNet`` plus auxiliary heads on tapped trunk layers; ``forward`` is the main net's."""

    def __init__(self, net: MultiHeadNet, taps: tuple[int, ...] | None = None) -> None:
        super().__init__()
        layers = trunk_layers(net.trunk)
        self.net, self.taps = net, tuple(default_taps(net.trunk) if taps is None else taps)
        if not self.taps or any(not 0 <= t < len(layers) for t in self.taps):
            raise ValueError(f"taps {self.taps} must be non-empty indices into the trunk's {len(layers)} conv blocks")
        self.aux = nn.ModuleList(
            nn.ModuleDict({k: build_adapter(_channels(layers[t]), parse_head(s)) for k, s in net.specs.items()})
            for t in self.taps)
        self._feats: dict[int, torch.Tensor] = {}
        for i, t in enumerate(self.taps):
            layers[t].register_forward_hook(self._keeper(i))

    def _keeper(self, i: int):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            self._feats[i] = output  # (B, C, H, W) of tap i, replaced on every forward
        return hook

    @property
    def trunk(self) -> nn.Module:
        return self.net.trunk

    @property
    def heads(self) -> nn.ModuleDict:
        return self.net.heads

    @property
    def specs(self) -> dict[str, str]:
        return self.net.specs

    def aux_features(self) -> list[torch.Tensor]:
        """The tapped feature maps of the last forward, in tap order."""
        return [self._feats[i] for i in range(len(self.taps))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def aux_params(model: nn.Module) -> int:
    """Parameters of the auxiliary heads (0 for a model without deep supervision)."""
    aux = getattr(model, "aux", None)
    return 0 if aux is None else sum(p.numel() for p in aux.parameters())


def head_outputs(heads: nn.ModuleDict, specs: dict[str, str], feats: torch.Tensor,
                 size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Each head's trainable output: the heatmap logits for ``heatmap_decode``, else its output."""
    return {k: heads[k].heatmap(feats, size) if s.endswith("@heatmap_decode") else heads[k](feats, size)
            for k, s in specs.items()}


class TrainingView(nn.Module):
    """The training forward of a multi-head (optionally deeply supervised) net: a dict
    ``{'main': output -> tensor, 'aux': [output -> tensor per tap]}``; shares the net's weights."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        feats = self.model.trunk(x)  # (B, F, h, w); fills the taps' features via the hooks
        size = tuple(x.shape[-2:])
        main = head_outputs(self.model.heads, self.model.specs, feats, size)
        if not isinstance(self.model, DeepSupervised):
            return {"main": main, "aux": []}
        aux = [head_outputs(a, self.model.specs, f, size) for a, f in zip(self.model.aux, self.model.aux_features())]
        return {"main": main, "aux": aux}
