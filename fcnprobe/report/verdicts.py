"""One verdict per seed claim, computed from the records by explicit rules.

Each rule is a function whose docstring *is* the rule shown in the report. A
verdict is one of: supported, partly, not supported, inconclusive, not measured.
Claims 1 and 3 (issue 15) live in ``report.claims13``: one FCN definition
(category fcn / fcn_pool / global_op), evidence tasks with a pooled-local ceiling
below 1, 95% intervals, constant-guess gates, Holm over {claim 1, claim 3} and
the +-25% threshold sensitivity on the card. Claim 4 (training is harder, read as
difficulty) lives in ``report.claim4``: this module registers it with that module's ``RULE``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import pandas as pd

from fcnprobe.analysis.shape import SEED_PRINTED
from fcnprobe.analysis.stats import clopper_pearson
from fcnprobe.report.data import RunData
from fcnprobe.report.claim4 import RULE as CLAIM4_RULE, claim4 as claim4_difficulty
from fcnprobe.report.claims13 import card
from fcnprobe.report.evidence import hierarchy_note

# Claim 2's reference FCN with a pooling adapter. Every other grouping reads the model catalogue's category.
REFERENCE_FCN = "fcn"
SEED_SHAPES = SEED_PRINTED


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


@rule("claim1", "Claim 1 — hierarchical, global abstraction",
      "FCNs lack an explicit mechanism to aggregate a representation of the whole input.")
def claim1(run: RunData) -> tuple[str, str]:
    """Image-level tasks whose pooled-local ceiling is below 1 (same_different, aligned_image): does an FCN+pool
    (a convolution-only net read out through a parameter-free global pool) answer them where global-op designs
    (fcn_gap, nonlocal, cnn_fc, attention) do? Per task, from 95% intervals of held-out accuracy (t over seeds;
    bootstrap over held-out pairs with one seed): the FCN fails when every FCN+pool upper bound is below the
    success threshold (0.9 at chance 1/2) while a global-op lower bound reaches it; it succeeds when some
    FCN+pool lower bound reaches it. Supported if it fails on every task; not supported if it succeeds on every
    task; partly if mixed; inconclusive if any interval straddles or the Holm-adjusted p exceeds 0.05. A task
    no design solves (every upper bound below the threshold) is left out; not measured if no task is left or
    no global-op design beats the constant guess on it. global_cue is a control (one
    pooling op solves it) and no evidence. The hierarchy probe's abstraction depths are listed beside it."""
    verdict, ev = card(run, "claim1")
    return verdict, ev + hierarchy_note(run)


@rule("claim2", "Claim 2 — output shape tied to input shape",
      "An FCN's output has the input's spatial size, so vector and box outputs need add-ons.")
def claim2(run: RunData) -> tuple[str, str]:
    """From the shape contract: supported if every dense-head cell of the fully convolutional
    families that ran produced an output whose spatial size follows the input; not supported if
    any did not. This holds by construction for the zoo (its dense head resizes the trunk's map to
    the input), and the card says so. The evidence adds what is not by construction: the native
    output stride of real architectures before any resize (realarch), what each box adapter of the
    reference FCN costs (head parameters) and achieves (held-out IoU on locate against the constant
    guess), and how many sizes a pooling adapter and the fixed-size global-op models handle."""
    df = run.ok("shape", variant="contract")
    if df.empty or "follows_input" not in df:
        return "not measured", "needs shape-probe contract records."
    heads = df["param_head"].astype(str)
    fcn_dense = df[df.model.isin(run.models_in("fcn")) & heads.str.startswith("dense")
                   & (df.forward_ok == True)]  # noqa: E712
    if fcn_dense.empty:
        return "not measured", "no dense FCN contract cells ran."
    tied = _following(fcn_dense)
    ev = (_share(tied, len(fcn_dense), "dense FCN cells return the input's spatial size")
          + " (by construction: the zoo's dense head resizes its map to the input)")
    ev += _adapter_and_fc_counts(df, _global_models(run, set(df.model)))
    ev += _native_strides(run) + _adapter_results(run)
    return ("supported" if tied == len(fcn_dense) else "not supported"), ev + "."


def _following(rows: pd.DataFrame) -> int:
    """Contract cells whose output's spatial size follows the input's."""
    return int((rows.follows_input == True).sum())  # noqa: E712


def _share(k: int, n: int, what: str) -> str:
    """'k/n <what> [interval]': a count of deterministic cases with its Clopper-Pearson 95% interval, exact
    for the cases that ran (a shape has no sampling error), a bound on an untried case of the same kind."""
    ci = clopper_pearson(k, n)
    return (f"{k}/{n} {what} [95% Clopper–Pearson {100 * ci.lo:.0f}%–{100 * ci.hi:.0f}% for an untried case of "
            f"this kind; exact for the {n} that ran]")


def _native_strides(run: RunData) -> str:
    """Native output stride (input side / output side, before any resize) of each real architecture."""
    df = run.ok("realarch")
    if df.empty or "output_stride" not in df:
        return ""
    rows = df.dropna(subset=["output_stride"])
    if rows.empty:
        return ""
    parts = [f"{m} {float(v):g}" for m, v in zip(rows.model, rows.output_stride)]
    return "; native output stride of real architectures before any resize: " + ", ".join(parts)


def _adapter_results(run: RunData) -> str:
    """Each box adapter of the reference FCN on locate: head parameters and held-out IoU vs the constant."""
    df = run.ok("shape", task="locate")
    need = {"param_adapter", "iou_mean", "iou_mean_const", "head_params_count"}
    if df.empty or not need <= set(df.columns):
        return ""
    df = df[(df.model == REFERENCE_FCN) & df.param_adapter.notna()]
    parts = [f"{a} IoU {g.iou_mean.mean():.2f} vs constant {g.iou_mean_const.mean():.2f} "
             f"({int(g.head_params_count.mean())} head params)" for a, g in df.groupby("param_adapter", sort=True)]
    return f"; {REFERENCE_FCN}'s box adapters on locate: " + ", ".join(parts) if parts else ""


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
    """Do conv-only nets that can see the whole image use far context? On the tasks whose pooled-local ceiling is
    below 1, for every convolution-only model whose reach covers every distance of the task (dilated_deep,
    fcn_encdec_deep, fcn_pyramid, ...), per distance bin (95% intervals: t over seeds, bootstrap over held-out
    pairs with one seed): supported if each fails (upper bound below the midpoint of chance and 1) in a bin
    below half its reach where a global-op design succeeds (lower bound >= 0.9 at chance 1/2); partly if they
    fail only between half their reach and their reach, or if some fail and others succeed; not supported if
    the lower bound of their accuracy is >= 0.9 in every distance bin; inconclusive if intervals straddle or
    the Holm-adjusted p exceeds 0.05; a task on which no design succeeds in any bin is left out; not measured
    if no such model ran, no task is left, or no global-op design beat the constant guess. A convolution-only model that does not beat the constant guess still counts: its failure
    is the finding."""
    return card(run, "claim3")


@rule("claim4", "Claim 4 — structured outputs are harder to train",
      "Training FCNs for structured, multi-part outputs is harder than with other designs.")
def claim4(run: RunData) -> tuple[str, str]:
    return claim4_difficulty(run)


claim4.__doc__ = CLAIM4_RULE  # the rule shown on the card; its one source is report.claim4


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
        ev = f"{model} on a 1x3x256x256 input returns {got}; the seed prints {want}" + _sizes(df, model)
        return ("supported" if got == want else "not supported"), ev + "."

    check.__doc__ = (f"Supported if the seed's Example {n} model, layer for layer, returns exactly the "
                     f"shape the seed prints ({want}) on a 1x3x256x256 input; not supported otherwise.")
    return check


def _sizes(df: pd.DataFrame, model: str) -> str:
    """How many contract sizes give an output whose spatial size follows the input, as at 256 px."""
    rows = df[(df.model == model) & (df.forward_ok == True)] if "follows_input" in df else df.iloc[:0]  # noqa: E712
    if rows.empty:
        return ""
    return "; at " + _share(_following(rows), len(rows), "input sizes its output's spatial size follows the input")


for _n, (_model, _what) in enumerate([("seed_simple_fcn", "segmentation works as intended"),
                                       ("seed_attempted_vector", "a vector output comes out as a map"),
                                       ("seed_bounding_box", "a box output comes out as a map")], 1):
    rule(f"example{_n}", f"Example {_n} — {_what}", f"The seed's Example {_n} prints {SEED_SHAPES[_model]}.")(
        _example(_model, _n))
