"""Assertions for users' own CI: receptive field, output shape and cost of a model, each with a readable failure.

Each function raises ``AssertionError`` with one paragraph that says what was
measured, what was required and what to look at; it returns the measurement
when it passes. Nothing is trained or downloaded; the shape and MAC checks run
on a meta-device copy where the model allows it (no compute, no memory).

Example (in a pytest file)::

    from fcnprobe.testing import assert_macs, assert_output_shape, assert_receptive_field

    def test_my_segmenter():
        model = MySegmenter(num_classes=21)
        assert_receptive_field(model, covers=512)  # every output unit sees a 512 px image
        assert_output_shape(model, (3, 512, 512), (1, 21, 512, 512))
        assert_macs(model, (3, 512, 512), below=20e9)
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn

from fcnprobe.measure.outputs import preserved_mode, select_output
from fcnprobe.measure.trf_graph import GraphRF, graph_receptive_field, input_shape, model_in_channels

__all__ = ["assert_macs", "assert_output_shape", "assert_receptive_field"]


def _name(model: nn.Module) -> str:
    return type(model).__name__


def _stages(r: GraphRF, n: int = 6) -> str:
    """The last ``n`` top-level modules' TRFs, e.g. 'layer3 211 px, layer4 435 px'."""
    top = [(k, v) for k, v in r.nodes.items() if "." not in k]
    parts = [f"{k} {v.side_px} px" if v.kind == "finite" else f"{k} {v.kind}" for k, v in top[-n:]]
    return ", ".join(parts) or "no named modules"


def assert_receptive_field(model: nn.Module, covers: int, input_size: "int | Sequence[int] | None" = None,
                           output: str | int | None = None, layer: str | None = None) -> GraphRF:
    """Fail unless the centre output unit's theoretical RF is global or at least ``covers`` px on each side.

    ``input_size`` defaults to a ``covers`` px square image. An RF that cannot
    be established (an op without a rule) fails too, naming the op.
    """
    r = graph_receptive_field(model, input_size or covers, output=output, layer=layer)
    f = r.field
    where = f"{_name(model)}" + (f" layer {layer!r}" if layer else "") + (f" output {output!r}" if output else "")
    if f.kind == "unknown":
        raise AssertionError(f"The receptive field of {where} could not be established: {f.reason}. "
                             f"fcnprobe cannot confirm that it covers {covers} px.")
    if f.kind == "finite" and min(f.size_px) < covers:
        raise AssertionError(
            f"The centre unit of {where} sees {f.size_px[0]} x {f.size_px[1]} px, less than the required {covers} px "
            f"(theoretical receptive field, padding included; the effective one is smaller). Per stage: "
            f"{_stages(r)}. Context beyond it cannot reach the unit: add depth or stride, dilation, a global-pool "
            f"branch or attention.")
    return r


def _forward_shape(model: nn.Module, shape: tuple, output: str | int | None) -> tuple[int, ...]:
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        with torch.no_grad():
            return tuple(select_output(meta(torch.empty(shape, device="meta")), output).shape)
    except (RuntimeError, NotImplementedError, TypeError):  # data-dependent ops need real values
        dev = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
        with preserved_mode(model), torch.no_grad():
            return tuple(select_output(model.eval()(torch.zeros(shape, device=dev)), output).shape)


def assert_output_shape(model: nn.Module, input_size: "int | Sequence[int]", expected: Sequence[int | None],
                        output: str | int | None = None) -> tuple[int, ...]:
    """Fail unless ``model``'s output (or its part ``output``) has shape ``expected``; None matches any size."""
    shape = input_shape(input_size, model_in_channels(model))
    got = _forward_shape(model, shape, output)
    ok = len(got) == len(expected) and all(e is None or e == g for e, g in zip(expected, got))
    if not ok:
        ratio = ""
        if len(got) == len(shape) and got[-1]:
            ratio = f" Its spatial size is 1/{shape[-1] / got[-1]:g} of the input's, per axis."
        raise AssertionError(f"{_name(model)} maps an input of shape {shape} to {got}, not the expected "
                             f"{tuple(expected)}.{ratio} Check the output stride, the final upsampling and the head.")
    return got


def assert_macs(model: nn.Module, input_size: "int | Sequence[int]", below: float) -> int:
    """Fail unless one forward at ``input_size`` (batch 1) costs fewer than ``below`` multiply-accumulates.

    MACs follow ``fcnprobe.measure.flops``: conv, linear, matmul and attention only,
    counted on a meta-device copy (shapes only).
    """
    from fcnprobe.measure.flops import count_flops

    shape = input_shape(input_size, model_in_channels(model))
    c = count_flops(model, torch.zeros(shape), cross_check=False, meta_above_macs=-1)
    if c.macs >= below:
        top = ", ".join(f"{op} {n / 1e9:.3g} G" for op, n, _ in c.rows()[:3])
        raise AssertionError(f"{_name(model)} costs {c.macs / 1e9:.4g} GMACs per forward at {shape}, not below the "
                             f"{below / 1e9:.4g} GMACs limit (conv, linear, matmul and attention MACs; elementwise "
                             f"work adds {c.other_flops / 1e9:.3g} GFLOPs). Largest: {top}.")
    return c.macs
