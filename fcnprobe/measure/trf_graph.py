"""Graph-exact theoretical receptive field (TRF) of any ``nn.Module``, per output and per module.

The forward pass runs once under a ``TorchDispatchMode`` that sees every aten
op, functional calls and ``x + x.mean()`` included (``torch.fx`` symbolic
tracing stops at data-dependent Python control flow, which transformers models
have). Each value that depends on the input gets a layout, a kind (finite,
global or unknown) and, when finite, the op that made it (``trf_rules``).
The TRF of a unit is then found by walking the recorded graph backwards from
that unit, carrying the index interval it needs on each image axis: convs and
pools widen it, transposed convs and upsampling narrow it, residual adds and
concatenations take the union of their branches (Araujo et al., "Computing
receptive fields of CNNs", Distill 2019; run from one unit, branches of
different strides and offsets combine exactly). A value reached through a
global op is "global"; an op the table cannot place makes it "unknown", with
the op's name, and never silently global.

The probed unit is the centre one, index ``extent // 2`` on each axis (as
``fcnprobe.probes.erf``). Sizes are unclipped: padding counts, as in the
closed form ``1 + L (k - 1)`` of L stacked k x k convs.

Example::

    >>> r = graph_receptive_field(model, 224)
    >>> r.field.kind, r.field.size_px, r.nodes["layer3"].size_px
    ('finite', (435, 435), (211, 211))
"""
from __future__ import annotations

import copy
import dataclasses
import heapq
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fcnprobe.measure.outputs import find_module, first_tensor, preserved_mode, select_output
from fcnprobe.measure.trf_ops import Global, Opaque, Unknown, axes, plain
from fcnprobe.measure.trf_rules import CONSTANT, RULES, Call
from fcnprobe.utils import no_mha_fast_path

__all__ = ["GraphRF", "ReceptiveField", "graph_receptive_field", "input_shape", "model_in_channels"]


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """TRF of one unit: ``kind`` 'finite' | 'global' | 'unknown'; sizes per image axis (H, W)."""

    kind: str
    size_px: tuple[int, ...] | None = None  # unclipped side per axis; None unless finite
    reason: str | None = None  # the op that made it global or unknown
    box: tuple[tuple[int, int], ...] | None = None  # first and last input pixel per axis, unclipped

    @property
    def side_px(self) -> int | None:
        """The larger side, or None when not finite."""
        return max(self.size_px) if self.size_px else None


@dataclasses.dataclass(frozen=True)
class GraphRF:
    """``field``: the probed output's centre unit; ``nodes``: module name -> RF of its output, in call order."""

    field: ReceptiveField
    nodes: dict[str, ReceptiveField]
    output_shape: tuple[int, ...]
    path: str  # 'meta' (shapes only) or the real device the trace ran on


@dataclasses.dataclass(eq=False)
class _Value:
    seq: int
    shape: tuple
    layout: tuple
    kind: str = "finite"
    reason: str | None = None
    back: Any = None
    srcs: list = dataclasses.field(default_factory=list)


class _Tracer(TorchDispatchMode):
    """Gives every input-dependent tensor a ``_Value``; keeps tensors alive so ids stay unique."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        n = x.dim() - 2
        layout = (plain(x.shape[0]), plain(x.shape[1]), *(((a, x.shape[2 + a]),) for a in range(n)))
        self.input = _Value(0, tuple(x.shape), layout)
        self.state: dict[int, _Value] = {id(x): self.input}
        self.keep: list = [x]

    def value(self, t: Any) -> _Value | None:
        return self.state.get(id(t)) if torch.is_tensor(t) else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name.endswith("_") and not name.endswith("__") and (name[:-1] in RULES or name[:-1] in CONSTANT):
            name = name[:-1]  # in place: the same rule, and a new value for the same tensor
        outs = [t for t in tree_flatten(out)[0] if torch.is_tensor(t)]
        call = Call(name, args, kwargs, outs, self.value)
        deps = call.deps()
        if name in CONSTANT:
            for t in outs:
                self.state.pop(id(t), None)
        elif deps and outs:
            self._record(call, deps)
        return out

    def _record(self, call: Call, deps: list) -> None:
        kind, reason, results = self._apply(call, deps)
        for i, t in enumerate(call.outs):
            layout, back, srcs = results[min(i, len(results) - 1)] if results else (None, None, [])
            self.state[id(t)] = _Value(len(self.keep), tuple(t.shape), layout, kind, reason, back, srcs)
            self.keep.append(t)

    @staticmethod
    def _apply(call: Call, deps: list) -> tuple[str, str | None, list | None]:
        """(kind, reason, per-output rule results). Global inputs win; unknown ones with a layout still
        run the rule, so that mixing their tokens later is seen as global."""
        glob = next((v for v in deps if v.kind == "global"), None)
        if glob is not None:
            return "global", glob.reason, None
        unk = next((v for v in deps if v.kind != "finite"), None)
        if unk is not None and any(v.layout is None for v in deps):
            return "unknown", unk.reason, None
        if call.name not in RULES:
            return "unknown", (unk.reason if unk else f"no receptive-field rule for aten op {call.name!r}"), None
        try:
            results = RULES[call.name](call)
        except Global as e:
            return "global", f"{e} (aten.{call.name})", None
        except Opaque as e:
            return "unknown", unk.reason if unk else f"aten.{call.name}: {e}", [(e.layout, None, [])]
        except Unknown as e:
            return "unknown", unk.reason if unk else f"aten.{call.name}: {e}", None
        return ("unknown", unk.reason, results) if unk else ("finite", None, results)


def _hull(a: dict, b: dict) -> dict:
    return {k: (min(a[k][0], b[k][0]), max(a[k][1], b[k][1])) if k in a and k in b else a.get(k, b.get(k))
            for k in {**a, **b}}


def unit_field(target: _Value | None, source: _Value) -> ReceptiveField:
    """RF of ``target``'s centre unit on ``source`` (the input), by the backward interval walk."""
    if target is None:
        return ReceptiveField("unknown", reason="the tensor does not depend on the input (or was not traced)")
    if target.kind != "finite":
        return ReceptiveField(target.kind, reason=target.reason)
    needed = {target.seq: (target, {a: (e // 2, e // 2) for a, e in axes(target.layout).items()})}
    heap = [-target.seq]
    while heap:
        v, box = needed[-heapq.heappop(heap)]
        if v is source:
            continue
        for src, sbox in zip(v.srcs, v.back(box)):
            if src.seq in needed:
                needed[src.seq] = (src, _hull(needed[src.seq][1], sbox))
            else:
                needed[src.seq] = (src, sbox)
                heapq.heappush(heap, -src.seq)
    box = needed.get(source.seq, (None, {}))[1]
    if sorted(box) != sorted(axes(source.layout)):
        return ReceptiveField("unknown", reason="an image axis was lost on the way to this unit")
    spans = tuple(box[a] for a in sorted(box))
    return ReceptiveField("finite", tuple(hi - lo + 1 for lo, hi in spans), None, spans)


def input_shape(input_size: "int | Sequence[int]", in_channels: int = 3) -> tuple[int, ...]:
    """(1, C, H, W) from an int side, (H, W), (C, H, W) or a full shape."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) == 2:
        return (1, in_channels, *size)
    return (1, *size) if len(size) == 3 else size


def model_in_channels(model: nn.Module) -> int:
    """Input channels: a zoo/user model's ``info.in_channels`` (also inside a wrapper), else the first conv's, else 3."""
    info = next((m.info for m in model.modules() if hasattr(getattr(m, "info", None), "in_channels")), None)
    if info is not None:
        return int(info.in_channels)
    conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return conv.in_channels if conv is not None else 3


def _trace(model: nn.Module, shape: tuple, device: torch.device) -> tuple[_Tracer, Any, dict]:
    """One forward under the tracer; returns it, the output and module name -> output value."""
    x = torch.zeros(shape, device=device)
    tracer, seen = _Tracer(x), {}

    def hook(name: str):
        def record(m: nn.Module, args: tuple, out: Any) -> None:  # must return None: no output replaced
            seen.setdefault(name, tracer.value(first_tensor(out)))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        with no_mha_fast_path(), torch.no_grad(), tracer:
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return tracer, out, seen


def _run(model: nn.Module, shape: tuple) -> tuple[_Tracer, Any, dict, str]:
    """Trace a meta-device copy (no compute); fall back to the real model where meta fails."""
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        return (*_trace(meta, shape, torch.device("meta")), "meta")
    except Exception:  # data-dependent ops (``.item()``, ``nonzero``) need real values
        device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
        with preserved_mode(model):
            return (*_trace(model.eval(), shape, device), str(device))


def graph_receptive_field(model: nn.Module, input_size: "int | Sequence[int]", output: str | int | None = None,
                          layer: str | None = None) -> GraphRF:
    """TRF of the centre unit of ``model``'s output (or of module ``layer``'s output), and of every module.

    ``input_size``: side, (H, W), (C, H, W) or (N, C, H, W); channels default to
    the first conv's. ``output`` picks a part of a dict/tuple/ModelOutput (see
    ``fcnprobe.measure.outputs``). The caller's model is not modified.
    """
    if layer is not None:
        find_module(model, layer)  # a clear error before tracing
    shape = input_shape(input_size, model_in_channels(model))
    try:
        tracer, out, seen, path = _run(model, shape)
    except Exception as e:  # the model cannot run at this size: a result, not a crash
        bad = ReceptiveField("unknown", reason=f"forward failed: {type(e).__name__}: {e}"[:300])
        return GraphRF(bad, {}, (), "none")
    target = seen.get(layer) if layer is not None else tracer.value(select_output(out, output))
    nodes = {n: unit_field(v, tracer.input) for n, v in seen.items()}
    chosen = nodes.get(layer) if layer is not None else unit_field(target, tracer.input)
    if chosen is None:
        chosen = ReceptiveField("unknown", reason=f"layer {layer!r} was not called in forward")
    shape_out = tuple(target.shape) if target is not None else ()
    return GraphRF(chosen, nodes, shape_out, path)
