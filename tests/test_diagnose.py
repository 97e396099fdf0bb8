"""fcnprobe.diagnose on a small strided conv net (fast) and on SegFormer-B0 from its transformers config."""
from __future__ import annotations

import json
import os
import time

import pytest
import torch
import torch.nn as nn

from fcnprobe.diagnose import diagnose, write_diagnosis


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_small_net_over_sizes(tmp_path):
    model = _net().train()
    r = diagnose(model, [32, 64])
    assert model.training  # the caller's mode is back
    a, b = r["sizes"]
    assert a["trf_kind"] == "finite" and a["trf_px"] == 7 and a["output_shape"] == [1, 2, 16, 16]
    assert a["output_stride"] == 2 and b["macs"] == 4 * a["macs"]  # 1 + 2 + 2 * 2 = 7 px; MACs ~ pixels
    assert r["slopes"]["macs_vs_side"] == pytest.approx(2.0)
    assert any("1/2 of the input" in f for f in r["findings"])
    assert any("far context is out of reach" in f for f in r["findings"])
    assert 0 < a["erf_init"]["erf_cover50_frac"] < 0.25
    js, html = write_diagnosis(r, tmp_path)
    assert json.loads(js.read_text())["sizes"][1]["image_px"] == 64
    assert "TRF per stage at 64 px" in html.read_text()


def test_trained_weights_and_escaping(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(_net().state_dict(), path)
    r = diagnose(_net(), [32], weights=path)
    assert "erf_trained" in r["sizes"][0]
    r["findings"].append("<script>alert(1)</script>")
    _, html = write_diagnosis(r, tmp_path)
    text = html.read_text()
    assert "<script>alert" not in text and "&lt;script&gt;" in text


def test_segformer_end_to_end(tmp_path):
    from transformers_gate import require_transformers

    T = require_transformers()
    torch.manual_seed(0)
    model = T.SegformerForSemanticSegmentation(T.SegformerConfig())
    start = time.perf_counter()
    r = diagnose(model, [256], output="logits")
    write_diagnosis(r, tmp_path)
    assert time.perf_counter() - start < 120 or os.environ.get("CI") == "true"
    row = r["sizes"][0]
    assert row["trf_kind"] == "global" and row["output_shape"][-2:] == [64, 64]
    assert any("1/4 of the input" in f for f in r["findings"]) and any("global" in f for f in r["findings"])
    assert (tmp_path / "diagnosis.html").exists() and (tmp_path / "diagnosis.json").exists()


def test_a_token_layer_gets_no_erf_and_a_data_dependent_model_is_counted_for_real():
    """--layer on a (B, C, N) output has no ERF square (it used to crash); ``.item()`` has no meta kernel."""
    from torch import nn

    tokens = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(2), nn.Linear(64, 5))
    row = diagnose(tokens, [8], layer="1")["sizes"][0]
    assert "erf_init" not in row and row["macs"] == 8 * 8 * 4 * 27 + 4 * 64 * 5

    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(x) * float(x.abs().max().item() > 0)

    row = diagnose(Gated(), [8])["sizes"][0]
    assert row["macs"] == 8 * 8 * 4 * 27 and row["activation_bytes"] is None
