"""A model that returns NaN, through each probe's run_cell: an error naming the stage, never a crash
(issue 12, defect 9: the erf noise cell used to raise a TypeError), or, for the shape contract,
a finding that says the output is not finite."""
from __future__ import annotations

import pytest

from fcnprobe.config import RunConfig
from fcnprobe.errors import CellError
from fcnprobe.probes import PROBES
from fcnprobe.probes.base import CellContext
from fcnprobe.user import registered

NAN = "user_model_fixture:nan_fcn"


def _cells(probe: str, tmp_path, **cfg) -> tuple[list, CellContext]:
    p = PROBES.get(probe)
    config = RunConfig(out=str(tmp_path), preset="smoke", device="cpu", workers=1, user_models=(NAN,), **cfg)
    ctx = CellContext("cpu", "smoke", p.settings("smoke"), tmp_path, tmp_path / "cell")
    ctx.cell_dir.mkdir(parents=True, exist_ok=True)
    return [c for c in p.cells(config, p.settings("smoke")) if c.model == NAN], ctx


@pytest.mark.parametrize("probe, stage", [("erf", "forward"), ("cost", "forward"), ("context", "")])
def test_nan_output_is_a_cell_error_naming_the_stage(probe, stage, tmp_path):
    with registered([NAN]):
        cells, ctx = _cells(probe, tmp_path)
        assert cells
        for cell in cells[:2]:
            with pytest.raises(CellError, match=f"non-finite values at stage '{stage}|training loss|NaN"):
                PROBES.get(probe).run_cell(cell, ctx)


def test_erf_gradient_check_names_its_stage():
    import torch

    from fcnprobe.utils import check_finite

    with pytest.raises(CellError, match="stage 'erf_gradient'"):
        check_finite(torch.tensor([1.0, float("inf")]), "erf_gradient")
    assert check_finite(1.5, "x") == 1.5 and check_finite(None, "x") is None


def test_shape_contract_records_a_non_finite_output_as_a_finding(tmp_path):
    with registered([NAN]):
        cells, ctx = _cells("shape", tmp_path, tasks=("contract",))
        out = PROBES.get("shape").run_cell(cells[0], ctx).metrics
    assert out["forward_ok"] is True and out["out_finite"] is False
