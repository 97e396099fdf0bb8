"""Which tensor of a model to probe, for any ``nn.Module``.

Models return a tensor, a dict (torchvision segmentation: ``{"out": ...,
"aux": ...}``), a transformers ``ModelOutput`` (``.logits``,
``.last_hidden_state``) or a tuple. ``select_output`` picks one tensor from
that, by a user's key (``output="out"``, ``output="0"``) or by a fixed order of
defaults. ``capture_layer`` takes the output of a named submodule through a
forward hook instead (``layer="layer3"``), for models whose own output has no
spatial map. ``preserved_mode`` gives the caller back its train/eval flags, and
``model_device`` works for modules without parameters.

Example::

    >>> with preserved_mode(model):
    ...     y = probe_tensor(model.eval(), x, output="out")  # (B, K, h, w)
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn

DEFAULT_KEYS = ("out", "logits", "last_hidden_state", "pred_masks", "predicted_depth")  # tried in order


def _candidates(out: Any) -> dict[str, Any]:
    """Named parts of a model output: mapping items, tuple positions or public attributes."""
    if isinstance(out, Mapping):  # transformers' ModelOutput is an OrderedDict too
        return {str(k): v for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return {str(i): v for i, v in enumerate(out)}
    return {k: getattr(out, k) for k in DEFAULT_KEYS if hasattr(out, k)}


def select_output(out: Any, output: str | int | None = None) -> torch.Tensor:
    """The tensor to probe: ``out`` itself, or its part named by ``output``, else the first default key.

    Raises ValueError with the available keys when the key is missing or no tensor is found.
    """
    if torch.is_tensor(out):
        if output not in (None, "", 0, "0"):
            raise ValueError(f"output={output!r} given but the model returns a single tensor")
        return out
    parts = _candidates(out)
    tensors = {k: v for k, v in parts.items() if torch.is_tensor(v)}
    if output is not None:
        if str(output) not in tensors:
            raise ValueError(f"output {output!r} not in the model's output; available: {sorted(tensors)}")
        return tensors[str(output)]
    for key in (*DEFAULT_KEYS, *tensors):
        if key in tensors:
            return tensors[key]
    raise ValueError(f"no tensor in the model's output of type {type(out).__name__}; parts: {sorted(parts)}")


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter, else of the first buffer, else the CPU (parameter-free modules)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every submodule's ``training`` flag on exit, whatever the body switched."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


class _Capture:
    """Holder filled by a forward hook: ``tensor`` is the layer's last output (first tensor in it)."""

    def __init__(self) -> None:
        self.tensor: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: tuple, out: Any) -> None:
        self.tensor = first_tensor(out)


def first_tensor(out: Any) -> torch.Tensor | None:
    """The first tensor in a (possibly nested) output, or None."""
    if torch.is_tensor(out):
        return out
    for v in _candidates(out).values():
        t = first_tensor(v) if isinstance(v, (Mapping, tuple, list)) or torch.is_tensor(v) else None
        if t is not None:
            return t
    return None


def find_module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called ``layer``; a ValueError lists near names when there is none."""
    named = dict(model.named_modules())
    if layer in named and layer:
        return named[layer]
    import difflib

    near = difflib.get_close_matches(layer, [n for n in named if n], n=5)
    raise ValueError(f"no module named {layer!r} in {type(model).__name__}; did you mean {near}?")


@contextlib.contextmanager
def capture_layer(model: nn.Module, layer: str) -> Iterator[_Capture]:
    """Hook the module named ``layer``; the yielded holder's ``tensor`` is its output after a forward."""
    holder = _Capture()
    handle = find_module(model, layer).register_forward_hook(holder)
    try:
        yield holder
    finally:
        handle.remove()


def probe_tensor(model: nn.Module, x: torch.Tensor, output: str | int | None = None,
                 layer: str | None = None) -> torch.Tensor:
    """Run ``model(x)`` and return the chosen tensor: ``layer``'s output if given, else ``select_output``."""
    if layer is None:
        return select_output(model(x), output)
    with capture_layer(model, layer) as cap:
        model(x)
    if cap.tensor is None:
        raise ValueError(f"layer {layer!r} produced no tensor (was it called in forward?)")
    return cap.tensor
