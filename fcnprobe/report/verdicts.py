"""One verdict per seed claim, computed from the records by explicit rules.

Each rule is a function whose docstring *is* the rule shown in the report. A
verdict is one of: supported, partly, not supported, not measured. Thresholds:
a model "succeeds" on a binned task when every distance bin is at or above
``SUCCESS`` (0.9); it "fails beyond its TRF" when the mean accuracy of the bins
beyond its TRF radius is below the midpoint between chance and 1.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import pandas as pd

from fcnprobe.analysis.shape import SEED_PRINTED
from fcnprobe.report.data import RunData, fmt
from fcnprobe.report.evidence import distance_summary, threshold

SUCCESS = 0.9  # min per-bin accuracy for "succeeds at every distance"
WORSE = 0.10  # relative margin for "worse" in claim 4
# The experiment's designed pair for claim 1: the plain FCN and the same stack plus one global-average
# branch. Every other grouping reads the model catalogue's category ('fcn' = convolution only).
REFERENCE_FCN, ONE_POOL_FCN = "fcn", "fcn_gap"
SEED_SHAPES = SEED_PRINTED


def _local_variants(run: RunData, present) -> list[str]:
    """Convolution-only models (category 'fcn') other than the reference, present in ``present``."""
    return [m for m in run.models_in("fcn") if m != REFERENCE_FCN and m in present]


def _global_models(run: RunData, present) -> list[str]:
    """Models with a global operation (category 'global_op') present in ``present``."""
    return [m for m in run.models_in("global_op") if m in present]


@dataclasses.dataclass
class Verdict:
    key: str
    title: str
    claim: str
    verdict: str  # supported | partly | not supported | not measured
    evidence: str
    rule: str


RULES: list[tuple[str, str, str, Callable]] = []


def rule(key: str, title: str, claim: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        RULES.append((key, title, claim, fn))
        return fn
    return deco


def compute_verdicts(run: RunData) -> list[Verdict]:
    out = []
    for key, title, claim, fn in RULES:
        verdict, evidence = fn(run)
        out.append(Verdict(key, title, claim, verdict, evidence, " ".join((fn.__doc__ or "").split())))
    return out


def _cue(run: RunData) -> pd.DataFrame:
    s = distance_summary(run, "global_cue")
    return s.set_index("model") if not s.empty else s


def _fails_beyond(row: pd.Series) -> bool:
    return row.beyond is not None and not pd.isna(row.beyond) and row.beyond < threshold(row.chance)


def _untrained(row: pd.Series) -> str | None:
    """Why a distance verdict cannot be read: the fcn did not learn even inside its TRF."""
    if row.within is None or pd.isna(row.within) or row.within < SUCCESS:
        return (f"not measured: fcn reached only {_pct(row.within)} within its own TRF radius (gate: "
                f"{SUCCESS:.0%}), so this budget cannot tell a reach limit from a failure to learn")
    return None


def _succeeds(row: pd.Series) -> bool:
    return row.min_acc is not None and row.min_acc >= SUCCESS


def _pct(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{100 * v:.0f}%"


def _describe(s: pd.DataFrame, model: str) -> str:
    r = s.loc[model]
    trf = "global" if pd.isna(r.trf_px) else f"{int(r.trf_px)} px"
    return f"{model} (TRF {trf}): min bin {_pct(r.min_acc)}"


@rule("claim1", "Claim 1 — hierarchical, global abstraction",
      "FCNs lack an explicit mechanism to aggregate a representation of the whole input.")
def claim1(run: RunData) -> tuple[str, str]:
    """On global_cue (is a target of class c anywhere in the image?): not measured unless the plain
    fcn reaches 90% within its own TRF; not supported if the plain fcn does not fail beyond its TRF;
    supported if fcn_gap (an FCN plus one global-average branch, no FC layer) also fails beyond the
    plain fcn's reach; partly if fcn_gap does not (a fully convolutional net needs only one pooling
    op to abstract globally)."""
    s, ref = _cue(run), distance_summary(run, "global_cue", radius_of=REFERENCE_FCN)
    if s.empty or REFERENCE_FCN not in s.index or ONE_POOL_FCN not in s.index:
        return "not measured", f"needs context-probe records for {REFERENCE_FCN} and {ONE_POOL_FCN} on global_cue."
    fcn, gap = s.loc[REFERENCE_FCN], ref.set_index("model").loc[ONE_POOL_FCN]
    ev = (f"global_cue: {REFERENCE_FCN} {_pct(fcn.within)} within its {fmt(fcn.radius_px)} px reach, "
          f"{_pct(fcn.beyond)} beyond (chance {_pct(fcn.chance)}); {ONE_POOL_FCN} {_pct(gap.beyond)} beyond that reach")
    for m in _global_models(run, s.index):
        if m != ONE_POOL_FCN:
            ev += f"; {m} min bin {_pct(s.loc[m].min_acc)}"
    if _untrained(fcn):
        return "not measured", ev + f"; {_untrained(fcn)}."
    if not _fails_beyond(fcn):
        return "not supported", ev + "."
    if _fails_beyond(gap):
        return "supported", ev + "."
    return "partly", ev + ": the plain stack lacks it, one global-pool branch supplies it."


@rule("claim2", "Claim 2 — output shape tied to input shape",
      "An FCN's output has the input's spatial size, so vector and box outputs need add-ons.")
def claim2(run: RunData) -> tuple[str, str]:
    """From the shape contract: supported if every dense-head cell of the fully convolutional
    families that ran produced an output whose spatial size follows the input; not supported if
    any did not. The evidence adds what the add-ons do: how many sizes a pooling adapter and
    the fixed-size global-op models (cnn_fc) handle."""
    df = run.ok("shape", variant="contract")
    if df.empty or "follows_input" not in df:
        return "not measured", "needs shape-probe contract records."
    heads = df["param_head"].astype(str)
    fcn_dense = df[df.model.isin(run.models_in("fcn")) & heads.str.startswith("dense")
                   & (df.forward_ok == True)]  # noqa: E712
    if fcn_dense.empty:
        return "not measured", "no dense FCN contract cells ran."
    tied = int((fcn_dense.follows_input == True).sum())  # noqa: E712
    ev = f"{tied}/{len(fcn_dense)} dense FCN cells return the input's spatial size"
    ev += _adapter_and_fc_counts(df, _global_models(run, set(df.model)))
    return ("supported" if tied == len(fcn_dense) else "not supported"), ev + "."


def _adapter_and_fc_counts(df: pd.DataFrame, global_models: list[str]) -> str:
    """What the add-ons do: the reference FCN with a pooling adapter, and global-op models that reject sizes."""
    heads = df["param_head"].astype(str)
    gap = df[(df.model == REFERENCE_FCN) & heads.str.startswith("vector")]
    out = ""
    if len(gap):
        hits = int((gap.matches_target == True).sum())  # noqa: E712
        out += f"; {REFERENCE_FCN} with a pooling adapter gives a fixed vector at {hits}/{len(gap)} sizes"
    for m in global_models:
        rows = df[df.model == m]
        ran = int((rows.forward_ok == True).sum())  # noqa: E712
        if ran < len(rows):  # a fixed-size model: the add-on that ties the input size instead
            out += f"; {m} runs at {ran}/{len(rows)} sizes"
    return out


@rule("claim3", "Claim 3 — global context is not used",
      "FCNs, even deep or dilated ones, struggle to integrate information across the whole input.")
def claim3(run: RunData) -> tuple[str, str]:
    """On global_cue: not measured unless the plain fcn reaches 90% within its own TRF; not
    supported if the plain fcn does not fail beyond its TRF (accuracy there at or above the
    midpoint of chance and 1); partly if another convolution-only model (category 'fcn': dilated, fcn_encdec,
    coordconv) succeeds (90%) at every distance, which it can only do when its TRF covers the
    image, so the limit is the TRF, not convolution; supported otherwise."""
    s = _cue(run)
    if s.empty or REFERENCE_FCN not in s.index:
        return "not measured", f"needs context-probe records for {REFERENCE_FCN} on global_cue."
    fcn = s.loc[REFERENCE_FCN]
    local = _local_variants(run, s.index)
    parts = [f"fcn {_pct(fcn.within)} within its {fmt(fcn.radius_px)} px TRF radius and "
             f"{_pct(fcn.beyond)} beyond (chance {_pct(fcn.chance)})"]
    parts += [_describe(s, m) for m in (*local, *_global_models(run, s.index))]
    ev = "; ".join(parts)
    if _untrained(fcn) or fcn.beyond is None or pd.isna(fcn.beyond):
        return "not measured", ev + f"; {_untrained(fcn) or 'no distance bin lies beyond the fcn TRF'}."
    if not _fails_beyond(fcn):
        return "not supported", ev + "."
    rescued = [m for m in local if _succeeds(s.loc[m])]
    if rescued:
        return "partly", ev + f". {', '.join(rescued)} reach every distance without any global op."
    return "supported", ev + "."


@rule("claim4", "Claim 4 — structured outputs are harder to train",
      "Training FCNs for structured, multi-part outputs is harder than with other designs.")
def claim4(run: RunData) -> tuple[str, str]:
    """On multi_output (findings, two numbers, one box; same budget): compare the FCN-trunk
    design with the best other design per output, counting only outputs that some design learned
    (beat the constant-guess baseline by more than 10%). Supported if the FCN design is worse by
    more than 10% (relative) on at least 3 of the learned outputs, or on all of them if fewer
    than 3 were learned; not supported if it is worse on none; partly otherwise; not measured if
    no design learned any output."""
    df = run.ok("shape", "multi_output")
    metrics = {"findings_f1": True, "count_mae": False, "size_mae": False, "box_iou_mean": True}
    if df.empty or "param_design" not in df or not set(metrics) <= set(df.columns):
        return "not measured", "needs shape-probe multi_output records."
    means = df.groupby("param_design")[list(metrics)].mean()
    fcn_rows = [d for d in means.index if str(d).startswith("fcn")]
    if not fcn_rows or len(means) < 2:
        return "not measured", "needs an FCN design and at least one other."
    fcn, others = means.loc[fcn_rows[0]], means.drop(index=fcn_rows[0])
    const = df.groupby("param_design")[[f"{m}_const" for m in metrics if f"{m}_const" in df]].mean().mean()
    worse, learned, parts, names = 0, 0, [], run.labels
    for m, higher in metrics.items():
        best = others[m].max() if higher else others[m].min()
        top = max(best, fcn[m]) if higher else min(best, fcn[m])
        if f"{m}_const" in const and _gain(top, const[f"{m}_const"], higher) <= WORSE:
            parts.append(f"{names.get(m, m)}: no design beat the constant guess ({fmt(const[f'{m}_const'])})")
            continue
        learned += 1
        worse += _gain(best, fcn[m], higher) > WORSE
        parts.append(f"{names.get(m, m)} {fmt(fcn[m])} vs best other {fmt(best)}")
    ev = f"{fcn_rows[0]}: " + "; ".join(parts) + f" — worse on {worse}/{learned} learned outputs"
    if learned == 0:
        return "not measured", ev + "."
    verdict = "supported" if worse >= min(3, learned) else "not supported" if worse == 0 else "partly"
    return verdict, ev + "."


def _gain(a: float, b: float, higher: bool) -> float:
    """Relative amount by which ``a`` is better than ``b``."""
    return (a - b) / max(abs(b), 1e-9) * (1 if higher else -1)


def _example(model: str, n: int):
    want = SEED_SHAPES[model]

    def check(run: RunData) -> tuple[str, str]:
        df = run.ok("shape", variant="contract")
        if df.empty or "out_shape" not in df:
            return "not measured", "needs shape-probe contract records."
        hit = df[(df.model == model) & (df.get("param_height") == 256) & (df.get("param_width") == 256)]
        if hit.empty:
            return "not measured", f"no 256x256 contract cell for {model}."
        got = hit.iloc[0].out_shape
        got = list(got) if isinstance(got, (list, tuple)) else got
        ev = f"{model} on a 1x3x256x256 input returns {got}; the seed prints {want}"
        return ("supported" if got == want else "not supported"), ev + "."

    check.__doc__ = (f"Supported if the seed's Example {n} model, layer for layer, returns exactly the "
                     f"shape the seed prints ({want}) on a 1x3x256x256 input; not supported otherwise.")
    return check


for _n, (_model, _what) in enumerate([("seed_simple_fcn", "segmentation works as intended"),
                                       ("seed_attempted_vector", "a vector output comes out as a map"),
                                       ("seed_bounding_box", "a box output comes out as a map")], 1):
    rule(f"example{_n}", f"Example {_n} — {_what}", f"The seed's Example {_n} prints {SEED_SHAPES[_model]}.")(
        _example(_model, _n))
