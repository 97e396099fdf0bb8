"""Torch-free helpers for the shape probe and its report: conv size arithmetic,
box IoU and centre metrics, and the model x input-size contract matrix.

* Conv output size: ``floor((H + 2p - d(k - 1) - 1) / s) + 1`` (PyTorch's
  ``nn.Conv2d`` docs; with d = 1 this is the textbook floor((H + 2p - k)/s) + 1).
* Boxes are (x0, y0, x1, y1) normalised to [0, 1], pixel i spanning [i/n, (i+1)/n];
  a box's centre in pixel coordinates is ``(x0 + x1)/2 * n - 0.5`` (pixel i's centre
  is i). The exact-centre hit is CoordConv's accuracy metric (Liu et al. 2018):
  the rounded predicted centre equals the true integer centre on both axes.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from fcnprobe.analysis.common import is_variant


SEED_PRINTED = {"seed_simple_fcn": [1, 10, 256, 256], "seed_attempted_vector": [1, 5, 256, 256],
                "seed_bounding_box": [1, 4, 256, 256]}  # the shapes the seed's Examples 1-3 print


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis; below 1 means the input is too small."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (N, 4) box arrays; 0 where the union is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_centre_px(boxes: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(N, 4) normalised boxes -> (N, 2) centres (x, y) in pixel coordinates."""
    h, w = (size, size) if isinstance(size, int) else size
    b = np.asarray(boxes, dtype=float)
    return np.stack([(b[:, 0] + b[:, 2]) / 2 * w - 0.5, (b[:, 1] + b[:, 3]) / 2 * h - 0.5], axis=1)


def centre_metrics(pred: np.ndarray, true_centre: np.ndarray, size: int | tuple[int, int]) -> dict[str, float]:
    """Mean Euclidean centre error (px) and the exact-centre hit fraction."""
    c = box_centre_px(pred, size)
    t = np.asarray(true_centre, dtype=float)
    err = np.linalg.norm(c - t, axis=1)
    hit = np.all(np.floor(c + 0.5) == t, axis=1)  # round half up, no banker's rounding
    return {"center_err_px": float(err.mean()), "center_acc_frac": float(hit.mean())}


def multilabel_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Micro F1 and per-label accuracy of boolean (N, L) predictions; F1 is 1 when nothing is true or predicted."""
    p, t = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
    f1 = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return {"findings_f1": float(f1), "findings_acc_frac": float((p == t).mean()),
            "findings_exact_frac": float((p == t).all(1).mean())}


def size_label(height: int, width: int) -> str:
    """'256' for a square input, '48x80' (H x W) otherwise."""
    return str(height) if height == width else f"{height}x{width}"


def contract_matrix(df: pd.DataFrame, mark: Iterable[str] = ("\u2713", "\u2717")) -> pd.DataFrame:
    """Model/head x input size: the output shape with a mark, or the error type, per contract record.

    ``df`` is ``load_run(...)`` filtered to the shape probe's contract records
    (variant ``contract``). A tick means the forward ran *and* the shape matches the
    head's target; a cross with a shape means it ran but gave the wrong shape.
    """
    ok, bad = tuple(mark)
    rows = df[is_variant(df, "contract")]

    def cell(r: pd.Series) -> str:
        if not r["forward_ok"]:
            return f"{bad} {r['error_type']}"
        shape = "x".join(str(v) for v in r["out_shape"])
        return f"{ok if r['matches_target'] else bad} {shape}"

    sizes = [size_label(int(h), int(w)) for h, w in zip(rows["param_height"], rows["param_width"])]
    out = rows.assign(size=sizes,
                      entry=rows.apply(cell, axis=1), row=rows["model"] + " " + rows["param_head"])
    table = out.pivot_table(index="row", columns="size", values="entry", aggfunc="first")
    order = sorted(set(zip(rows["param_height"], rows["param_width"])), key=lambda hw: (hw[0] * hw[1], hw))
    return table[[size_label(int(h), int(w)) for h, w in order]]  # columns by input area


def structured_scores(pred: np.ndarray, true: np.ndarray, count: np.ndarray, side: np.ndarray,
                      layout: dict[str, slice], max_count: int, max_side: int) -> dict[str, float]:
    """Per-output errors of a multi_output prediction (findings as logits, numbers scaled, box).

    Each score also comes as ``<name>_const``: a model-blind baseline that says
    "every finding present" and the mean of ``true`` for the numbers and the box.
    """
    f, p, b = layout["findings"], layout["params"], layout["box"]

    def scores(y: np.ndarray) -> dict[str, float]:
        n_hat, s_hat = y[:, p][:, 0] * max_count, y[:, p][:, 1] * max_side
        return {**multilabel_scores(y[:, f] > 0, true[:, f] > 0.5),
                "count_mae": float(np.abs(n_hat - count).mean()),
                "count_acc_frac": float((np.floor(n_hat + 0.5) == count).mean()),
                "size_mae": float(np.abs(s_hat - side).mean()),
                "box_iou_mean": float(box_iou(y[:, b], true[:, b]).mean())}

    const = np.broadcast_to(true.mean(0), true.shape).copy()
    const[:, f] = 1.0  # logit > 0: every finding present
    return {**scores(np.asarray(pred)), **{f"{k}_const": v for k, v in scores(const).items()}}
