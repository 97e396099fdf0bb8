"""Report section: the compute-matched view of the context results (issue 13).

Equal steps and batch are not equal compute: at 32 px a conv family spends
~10x the MACs per sample of cnn_fc. This view puts each design's held-out
accuracy beside the training compute it used: the MACs per training sample of
the exact configuration trained (the cost probe's ``trained`` cells: 3 x the
forward MACs of one sample) times the samples it saw (steps actually taken x
batch size). A design that wins with less compute is not flattered by the
budget; one that wins only with ~10x more is named as such.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fcnprobe.analysis.stats import t_interval
from fcnprobe.report import figures as F
from fcnprobe.report.data import RunData, table_html
from fcnprobe.report.sections.base import Section, register_section

KEYS = ("model", "head", "size", "width", "depth")
NONE = -1  # stands for a None width/depth in the join keys


def _keys(df: pd.DataFrame, prefix: str, size: str) -> pd.DataFrame:
    """The join keys of a frame: model and the configuration params, None as NONE."""
    out = pd.DataFrame({"model": df["model"], "head": df.get(f"{prefix}head"), "size": df.get(size)})
    for k in ("width", "depth"):
        col = df.get(f"{prefix}{k}")
        out[k] = pd.to_numeric(col, errors="coerce").fillna(NONE) if col is not None else NONE
    out["size"] = pd.to_numeric(out["size"], errors="coerce")
    return out


def compute_frame(run: RunData) -> pd.DataFrame:
    """One row per context record: accuracy, samples seen, MACs per training sample and training compute."""
    ctx, cost = run.ok("context"), run.ok("cost", variant="trained")
    if ctx.empty or cost.empty or "train_macs_per_sample" not in cost or "acc_frac" not in ctx:
        return pd.DataFrame()
    per = _keys(cost, "param_", "param_size").assign(train_macs=cost["train_macs_per_sample"].to_numpy())
    left = _keys(ctx, "param_", "param_image_size")
    steps = pd.to_numeric(ctx.get("stopped_at_step", ctx.get("steps_count")), errors="coerce")
    left = left.assign(task=_task_labels(ctx), seed=ctx["seed"].to_numpy(), acc=ctx["acc_frac"].to_numpy(),
                       samples=(steps * pd.to_numeric(ctx["batch_size_count"], errors="coerce")).to_numpy())
    out = left.merge(per.drop_duplicates(list(KEYS)), on=list(KEYS), how="left")
    out["train_compute"] = out["train_macs"] * out["samples"]
    return out


def _task_labels(ctx: pd.DataFrame) -> np.ndarray:
    """The task name, with the shift distance where the record has one (one model is trained per d)."""
    dist = pd.to_numeric(ctx.get("param_distance", pd.Series(np.nan, index=ctx.index)), errors="coerce")
    return np.array([t if pd.isna(d) else f"{t} d={int(d)}" for t, d in zip(ctx["task"], dist)])


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model): mean accuracy with its t interval over seeds, MACs per sample and median compute."""
    rows = []
    for (task, model), g in frame.groupby(["task", "model"], sort=True):
        iv = t_interval(g["acc"].to_numpy(float))
        rows.append({"task": task, "model": model, "seeds": len(g), "accuracy": iv.estimate,
                     "95% interval": "—" if not np.isfinite(iv.lo) else f"[{max(iv.lo, 0):.3f}, {min(iv.hi, 1):.3f}]",
                     "MACs / training sample": g["train_macs"].median(),
                     "samples seen (median)": g["samples"].median(),
                     "training MACs (median)": g["train_compute"].median()})
    return pd.DataFrame(rows)


def _figure(frame: pd.DataFrame, task: str, styles: F.StyleMap) -> F.Figure | None:
    data = frame[(frame.task == task)].dropna(subset=["train_compute", "acc"])
    if data.empty:
        return None
    fig, ax = F.new()
    ax = ax[0][0]
    for model, g in data.groupby("model", sort=True):
        st = styles[model]
        ax.scatter(g["train_compute"], g["acc"], color=st["color"], marker=st.get("marker", "o"),
                   label=model.replace("$", r"\$"), s=18)
    ax.set_xscale("log")
    ax.set(xlabel="training compute (MACs: 3 x forward MACs per sample x samples seen, log)",
           ylabel="held-out accuracy (higher is better)", ylim=(0, 1.02))
    ax.legend(fontsize=7, ncols=2)
    cap = (f"{task}: each point is one trained cell (one seed). Up and left is better: more accuracy for less "
           f"compute. Early stopping makes the samples seen differ between cells of one model.")
    cols = ["model", "seed", "train_macs", "samples", "train_compute", "acc"]
    return F.render(fig, f"compute-{F.slug(task)}", cap, f"Accuracy against training compute on {task}", data[cols])


@register_section("compute", order=13)
def compute_section(run: RunData) -> Section | None:
    frame = compute_frame(run)
    if frame.empty or frame["train_compute"].isna().all():
        return None
    sec = Section("compute", "Compute-matched view: accuracy against training compute",
                  "Does a design's advantage survive once the compute it trained with is counted?", _METHOD)
    styles = F.StyleMap.from_models(run.df.model)
    tasks = [t for t in sorted(frame.task.unique()) if " d=" not in t]  # shift (a resolution control): table only
    sec.figures += [f for f in (_figure(frame, t, styles) for t in tasks) if f is not None]
    sec.tables.append(("Accuracy (mean over seeds, t interval) beside training compute, per task and model",
                       table_html(summary(frame), run.labels)))
    return sec


_METHOD = ("Training compute = MACs per training sample x samples seen. MACs per training sample are 3 x the "
           "forward MACs of one sample of the configuration the context probe trained (head, image size, width, "
           "depth), counted by the cost probe's 'trained' cells (conv, linear, matmul and attention MACs; a "
           "backward costs about two forwards, Kaplan et al. 2020). Samples seen = the steps actually taken "
           "(early stopping ends some cells before the budget) x the batch size. Records without a matching "
           "count are left out.")
