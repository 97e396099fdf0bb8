"""``fcnprobe diagnose``: what a user's own network can see, what it outputs and what it costs, over image sizes.

For each image size: the graph TRF of the probed unit and of every stage
(``fcnprobe.measure.trf_graph``), the ERF of the centre unit at init (and with
``weights``, a local ``state_dict`` loaded with ``weights_only=True``) and its
50% square's coverage of the image, the native output size against the input
size, MACs and other FLOPs (``fcnprobe.measure.flops``, meta device), the median
latency of a batch-1 forward (``torch.utils.benchmark``) and the bytes of
every fresh tensor a forward creates (an upper bound on peak activation
memory). Then growth exponents against resolution (log-log slopes against the
side) and a short list of findings. ``write_diagnosis`` writes
``diagnosis.json`` and ``diagnosis.html`` (Jinja2, autoescaped).
``build_for_diagnosis`` builds a zoo name or ``module.path:factory`` (plain
builders such as ``fcnprobe.models.hf:segformer_b0`` included) for the
``python -m fcnprobe.run diagnose`` subcommand (``fcnprobe.run_diagnose``).

Example::

    >>> result = diagnose(model, image_sizes=(256,), output="logits")
    >>> write_diagnosis(result, "out/")
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Sequence

ERF_INPUTS = 4  # inputs averaged per ERF map at init: enough for coverage to ~10%
LATENCY_MAX_MACS = 20e9  # forwards above this are counted, not timed (~1 s on one slow core)
STAGE_DEPTH = 2  # modules with at most this many dots in their name form the per-stage table
FAR_CONTEXT_FRAC = 0.25  # an ERF 50% square below this share of the image flags missing far context


def build_for_diagnosis(name: str, image_size: int) -> Any:
    """A zoo model (dense head where it has one) or a user factory; UsageError (one line) when it cannot build."""
    from fcnprobe.errors import UsageError
    from fcnprobe.models import MODELS
    from fcnprobe.user import build_probe_model, is_user_model, resolve_factory
    from fcnprobe.utils import default_head, one_line

    if is_user_model(name):
        resolve_factory(name)  # import errors as one line
        head = "dense:2"
    else:
        head = default_head(MODELS.meta(name)["native"])  # unknown names: the registry's did-you-mean
    try:
        return build_probe_model(name, head, image_size)[0]
    except Exception as exc:  # noqa: BLE001 -- the user's factory: its error is the message
        raise UsageError(f"model '{name}' does not build ({one_line(exc)})") from None


def _erf(model: Any, size: int, channels: int, output: str | int | None, layer: str | None, seed: int) -> dict:
    """ERF metrics of the centre unit over ERF_INPUTS Gaussian inputs; its 50% square's share of the image."""
    import torch

    from fcnprobe.analysis.erf import map_metrics
    from fcnprobe.measure.erf import UnitModule, gradient_maps

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(ERF_INPUTS, channels, size, size, generator=gen)
    m_abs, m_sq, hw = gradient_maps(UnitModule(model, output, layer), x, ERF_INPUTS, gen)
    centre = tuple((u // 2 + 0.5) * size / u - 0.5 for u in hw)  # centre of the unit's cell
    m = map_metrics(m_abs, m_sq, centre)
    return {"erf_std_px": m["erf_std_px"], "erf_side50_px": m["hca_side_px_t50"],
            "erf_cover50_frac": m["hca_area_frac_t50"]}


def _fresh_bytes(model: Any, shape: tuple) -> int | None:
    """Bytes of every non-view, out-of-place op output of one meta forward (None where meta cannot run it)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    total = [0]

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not func.is_view:
                ins = {id(t) for t in tree_flatten(args)[0]}
                total[0] += sum(t.numel() * t.element_size() for t in tree_flatten(out)[0]
                                if torch.is_tensor(t) and id(t) not in ins)
            return out

    meta = copy.deepcopy(model).to("meta").eval()
    try:
        with torch.no_grad(), Count():
            meta(torch.empty(shape, device="meta"))
    except (RuntimeError, NotImplementedError):  # data-dependent ops (.item()) have no meta kernel
        return None
    return total[0]


def _latency_ms(model: Any, shape: tuple) -> float:
    import torch
    from torch.utils import benchmark

    x = torch.randn(shape)
    with torch.inference_mode():
        model(x)  # warm-up
        m = benchmark.Timer("model(x)", globals={"model": model, "x": x}).blocked_autorange(min_run_time=0.3)
    return 1e3 * m.median


def _stage_rows(nodes: dict, size: int) -> list[dict]:
    rows = []
    for name, f in nodes.items():
        if name.count(".") <= STAGE_DEPTH:
            rows.append({"name": name, "kind": f.kind, "trf_px": f.side_px, "reason": f.reason,
                         "covers_image": f.kind == "global" or (f.side_px is not None and min(f.size_px) >= size)})
    return rows


def _at_size(model: Any, size: int, output: str | int | None, layer: str | None, seed: int) -> dict:
    import torch

    from fcnprobe.measure.flops import count_flops
    from fcnprobe.measure.trf_graph import graph_receptive_field, input_shape, model_in_channels

    shape = input_shape(size, model_in_channels(model))
    g = graph_receptive_field(model, shape[1:], output=output, layer=layer)
    c = count_flops(model, torch.zeros(shape), cross_check=False, meta_above_macs=-1)
    row = {"image_px": size, "in_channels": shape[1], "trf_kind": g.field.kind, "trf_px": g.field.side_px,
           "trf_reason": g.field.reason,
           "output_shape": list(g.output_shape), "stages": _stage_rows(g.nodes, size),
           "output_stride": (size / g.output_shape[-1]) if len(g.output_shape) == 4 else None,
           "macs": c.macs, "other_flops": c.other_flops, "activation_bytes": _fresh_bytes(model, shape),
           "latency_ms": _latency_ms(model, shape) if c.macs <= LATENCY_MAX_MACS else None}
    if len(g.output_shape) == 4:  # the probed output (or --layer) is a map; tokens have no ERF square
        row["erf_init"] = _erf(model, size, shape[1], output, layer, seed)
    return row


def _slopes(rows: list[dict]) -> dict:
    from fcnprobe.analysis.common import loglog_slope

    sizes = [r["image_px"] for r in rows]
    return {f"{k}_vs_side": loglog_slope(sizes, [r[k] for r in rows])
            for k in ("macs", "latency_ms", "activation_bytes")}


def diagnose(model: Any, image_sizes: Sequence[int], output: str | int | None = None, layer: str | None = None,
             weights: str | Path | None = None, seed: int = 0) -> dict:
    """Measure ``model`` (an ``nn.Module``, at its current init) at each image size; see the module docstring."""
    from fcnprobe.measure.outputs import preserved_mode

    with preserved_mode(model):
        model.eval()
        rows = [_at_size(model, s, output, layer, seed) for s in image_sizes]
        if weights is not None:
            trained = copy.deepcopy(model)
            trained.load_state_dict(_state_dict(weights))
            for r in rows:
                if "erf_init" in r:
                    r["erf_trained"] = _erf(trained.eval(), r["image_px"], r["in_channels"], output, layer, seed)
    result = {"model": type(model).__name__, "output": output, "layer": layer, "weights": str(weights or ""),
              "sizes": rows, "slopes": _slopes(rows)}
    result["findings"] = findings(result)
    return result


def _state_dict(path: "str | Path") -> dict:
    """A local state_dict, tensors only (``weights_only=True``); UsageError in one line when it is not one."""
    import torch

    from fcnprobe.errors import UsageError
    from fcnprobe.utils import one_line

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- a pickle with code, a truncated file, ...
        raise UsageError(f"cannot load weights {path} with weights_only=True ({one_line(exc)})") from None
    if not isinstance(state, dict):
        raise UsageError(f"weights {path} hold a {type(state).__name__}, not a state_dict")
    return state


def _trf_finding(r: dict) -> str:
    if r["trf_kind"] == "global":
        return (f"The TRF is global at {r['image_px']} px: every output unit can see the whole image "
                f"({r['trf_reason']}).")
    if r["trf_kind"] == "unknown":
        return f"The TRF could not be established at {r['image_px']} px: {r['trf_reason']}."
    first = next((s["name"] for s in r["stages"] if s["covers_image"]), None)
    return (f"The TRF is {r['trf_px']} px at {r['image_px']} px" +
            (f"; the first stage whose TRF covers the image is {first}." if first else
             f": it covers {min(1.0, (r['trf_px'] / r['image_px']) ** 2):.0%} of the image, so no unit sees it all."))


def findings(result: dict) -> list[str]:
    """A short list of plain sentences drawn from the measurements."""
    out = []
    for r in result["sizes"]:
        s, shape = r["image_px"], r["output_shape"]
        if r["output_stride"] and r["output_stride"] != 1:
            out.append(f"The native output is 1/{r['output_stride']:g} of the input per axis "
                       f"({shape[-2]} x {shape[-1]} for {s} x {s}): a dense task needs upsampling.")
        out.append(_trf_finding(r))
        erf = r.get("erf_trained") or r.get("erf_init")
        if erf and erf["erf_cover50_frac"] is not None and erf["erf_cover50_frac"] < FAR_CONTEXT_FRAC:
            head = f"The ERF 50% square covers {erf['erf_cover50_frac']:.0%} of a {s} px image"
            out.append(f"{head} although the TRF is global: far pixels carry little weight at these weights."
                       if r["trf_kind"] == "global" else
                       f"{head}: far context is out of reach; the suite's evidence suggests a global-pool branch "
                       "or attention.")
    slope = result["slopes"]["macs_vs_side"]
    if slope is not None:
        kind = "quadratic in the pixel count (global attention)" if slope > 2.5 else "linear in the pixel count"
        out.append(f"MACs grow as side^{slope:.2f}: {kind}.")
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x.item() if hasattr(x, "item") else x


def write_diagnosis(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``diagnosis.json`` and ``diagnosis.html`` into ``out_dir``; returns both paths."""
    import jinja2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _jsonable(result)
    js = out / "diagnosis.json"
    js.write_text(json.dumps(data, indent=1))
    env = jinja2.Environment(loader=jinja2.PackageLoader("fcnprobe.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    html = out / "diagnosis.html"
    html.write_text(env.get_template("diagnosis.html.j2").render(d=data))
    return js, html
