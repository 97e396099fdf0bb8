"""Parameter parity (+-20% of fcn, same heads) at every width, depth and image size a preset runs,
read from the probes' settings objects; cnn_fc's FC layer never drops below MIN_HIDDEN units."""
from __future__ import annotations

import dataclasses

import pytest

import fcnprobe
from fcnprobe.config import PRESETS
from fcnprobe.models.adapters import build_multi_head
from fcnprobe.models.attention import fixed_params, layer_params
from fcnprobe.models.base import DEFAULT_DEPTH, DEFAULT_IMAGE_SIZE, DEFAULT_WIDTH
from fcnprobe.models.cnn_fc import MIN_HIDDEN, CNNFCTrunk, trunk_params
from fcnprobe.probes import PROBES

TOLERANCE = 0.20
MODELS = ("cnn_fc", "attention", "attention_fullres")
HEADS = ("dense:4", "dense:5", "vector:2", "box", "box@linear", "vector:2@linear", "box@softargmax",
         "box@heatmap_decode")
MULTI = {"findings": "vector:4@linear", "params": "vector:2@linear", "box": "box@softargmax"}
# Preset points where parity is impossible for some heads, with the heads it may miss and why.
# Any other head off by more than TOLERANCE at that point still fails.
KNOWN_GAPS = {
    (8, 4, 64): (set(HEADS), "width 8 at 64 px: cnn_fc (FC >= 64 units) and attention's per-pixel heads "
                             "cannot reach parity with a 2k-parameter fcn; the locate preset runs at width 16"),
    (16, 4, 64): ({"dense:5"}, "locate's point (64 px) trains box heads only; a 5-class dense cnn_fc head "
                               "must upsample 4x4 -> 64x64 and exceeds fcn's 1x1 head by ~21%"),
}


def _task_size(name: str) -> int | None:
    from fcnprobe.tasks import create_task

    try:
        return create_task(name).image_size
    except Exception:  # not a task name
        return None


def _points_of(settings) -> set[tuple[int, int, int]]:
    """(width, depth, image size) of every trained or built model in one probe preset."""
    out, w0, d0 = set(), DEFAULT_WIDTH, DEFAULT_DEPTH
    if hasattr(settings, "width") and hasattr(settings, "image_sizes"):  # one model grid (context)
        for s in (*settings.image_sizes, *getattr(settings, "cuda_image_sizes", ())):
            out.add((settings.width or w0, settings.depth or d0, s))
    for f in dataclasses.fields(settings):  # nested per-task budgets (shape: locate, multi)
        v = getattr(settings, f.name)
        if dataclasses.is_dataclass(v) and hasattr(v, "width") and hasattr(v, "depth"):
            size = getattr(settings, f"{f.name}_image_size", None) or _task_size(f.name)
            out.add((v.width or w0, v.depth or d0, size or DEFAULT_IMAGE_SIZE))
    if not out:  # probes that build every family at its defaults (cost, the shape contract)
        out.add((w0, d0, getattr(settings, "build_size", DEFAULT_IMAGE_SIZE)))
    return out


def preset_points() -> list[tuple[int, int, int]]:
    """Every point of every non-smoke preset (smoke is sized for test speed, not meaning)."""
    pts: set[tuple[int, int, int]] = set()
    for preset in (p for p in PRESETS if p != "smoke"):
        for name in PROBES.names():
            s = PROBES.get(name).settings(preset)
            if dataclasses.is_dataclass(s):
                pts |= _points_of(s)
    return sorted(pts)


POINTS = preset_points()


def _n(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _ratio(name: str, head: str, w: int, d: int, size: int) -> float:
    kw = dict(width=w, depth=d, image_size=size)
    return _n(fcnprobe.create_model(name, head=head, **kw)) / _n(fcnprobe.create_model("fcn", head=head, **kw))


def _check(off: dict, point: tuple[int, int, int]) -> None:
    heads, why = KNOWN_GAPS.get(point, (set(), ""))
    if off and set(off) <= heads:
        pytest.xfail(f"{why}: {off}")
    assert not off, f"outside +-{TOLERANCE:.0%} of fcn at (width, depth, px) = {point}: {off}"


def test_the_presets_are_found():
    assert (16, 6, 32) in POINTS and len(POINTS) >= 4  # context quick, at least


@pytest.mark.parametrize("point", POINTS, ids=[f"w{w}-d{d}-{s}px" for w, d, s in POINTS])
@pytest.mark.parametrize("name", MODELS)
def test_parity_at_every_preset_point(name, point):
    off = {h: round(r, 2) for h in HEADS if abs((r := _ratio(name, h, *point)) - 1) > TOLERANCE}
    _check(off, point)


@pytest.mark.parametrize("point", POINTS, ids=[f"w{w}-d{d}-{s}px" for w, d, s in POINTS])
@pytest.mark.parametrize("name", ("cnn_fc", "attention"))
def test_multi_head_parity(name, point):
    w, d, size = point
    kw = dict(in_channels=4, image_size=size, width=w, depth=d)
    ratio = _n(build_multi_head(name, MULTI, **kw)) / _n(build_multi_head("fcn", MULTI, **kw))
    _check({"multi": round(ratio, 2)} if abs(ratio - 1) > TOLERANCE else {}, point)


@pytest.mark.parametrize("point", POINTS, ids=[f"w{w}-d{d}-{s}px" for w, d, s in POINTS])
def test_cnn_fc_fc_layer_and_conv_width_bounds(point):
    w, d, size = point
    for head in HEADS:
        plan = fcnprobe.create_model("cnn_fc", head=head, width=w, depth=d, image_size=size).plan
        assert plan.hidden >= MIN_HIDDEN and w / 2 <= plan.conv_width <= w, (head, plan)


@pytest.mark.parametrize("point", POINTS, ids=[f"w{w}-d{d}-{s}px" for w, d, s in POINTS])
def test_cnn_fc_fullres_is_at_parity_exactly_where_its_plan_says(point):
    for head in ("dense:4", "dense:5"):
        model = fcnprobe.create_model("cnn_fc_fullres", head=head, width=point[0], depth=point[1],
                                      image_size=point[2])
        ratio = _ratio("cnn_fc_fullres", head, *point)
        assert model.plan.fits == (abs(ratio - 1) <= 0.10), (head, ratio, model.plan)
        assert model.plan.params == _n(model)


@pytest.mark.parametrize("cin,c,stages,hidden,size", [(3, 8, 5, 128, 32), (4, 12, 3, 64, 64), (1, 5, 1, 96, 16)])
def test_cnn_fc_trunk_closed_form(cin, c, stages, hidden, size):
    assert _n(CNNFCTrunk(cin, c, stages, hidden, size)) == trunk_params(cin, c, stages, hidden)


@pytest.mark.parametrize("width,size,name", [(16, 32, "attention"), (32, 64, "attention"),
                                             (16, 32, "attention_fullres")])
def test_attention_closed_form(width, size, name):
    trunk = fcnprobe.create_model(name, head="vector:2", width=width, image_size=size).trunk
    layers = len(trunk.encoder.layers)
    grid = size // trunk.patch
    heads = trunk.encoder.layers[0].self_attn.num_heads
    assert _n(trunk) == fixed_params(3, width, trunk.patch, grid, heads) + layers * layer_params(width)
