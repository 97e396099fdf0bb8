"""Presets never mix: cell ids hash the settings; a run directory made with other settings is refused."""
from __future__ import annotations

import dataclasses

import pytest

from fcnprobe.config import RunConfig
from fcnprobe.errors import UsageError
from fcnprobe.probes import PROBES
from fcnprobe.results import RunStore
from fcnprobe.sweep import plan, run_sweep


@pytest.mark.parametrize("probe", ["shape", "context", "erf", "cost"])
def test_cell_ids_of_two_presets_never_coincide(probe):
    if probe not in PROBES:
        pytest.skip(f"probe '{probe}' is not built")
    ids = {p: {c.cell_id for c in plan([probe], RunConfig(preset=p, device="cpu"))[probe]}
           for p in ("smoke", "quick")}
    assert not ids["smoke"] & ids["quick"], f"{len(ids['smoke'] & ids['quick'])} ids shared"


def test_probe_version_changes_ids_but_not_seeds(toy_probe, monkeypatch):
    cfg = RunConfig(device="cpu")
    before = plan(["toy"], cfg)["toy"]
    monkeypatch.setattr(type(PROBES.get("toy")), "version", 2, raising=False)
    after = plan(["toy"], cfg)["toy"]
    assert {c.cell_id for c in before}.isdisjoint(c.cell_id for c in after)
    assert [c.torch_seed for c in before] == [c.torch_seed for c in after]  # same numbers, new ids


def _run(out, **kw):
    return run_sweep(["toy"], RunConfig(out=str(out), device="cpu", workers=1, **kw), progress=False)


def test_other_preset_is_refused_in_one_line_unless_overwrite(tmp_path, toy_probe):
    _run(tmp_path / "r", preset="smoke")
    with pytest.raises(UsageError, match="made with --preset smoke, not quick") as err:
        _run(tmp_path / "r", preset="quick")
    assert "\n" not in str(err.value) and "--overwrite" in str(err.value)
    again = _run(tmp_path / "r", preset="quick", overwrite=True)
    assert again.ran == 5 and len(RunStore(tmp_path / "r").read_records()) == 5  # the smoke records are gone
    assert RunStore(tmp_path / "r").read_manifest()["config"]["preset"] == "quick"


def test_other_settings_are_refused_naming_the_field(tmp_path, toy_probe, monkeypatch):
    _run(tmp_path / "r", preset="smoke")
    probe = type(PROBES.get("toy"))
    monkeypatch.setattr(probe, "settings_by_preset", {**probe.settings_by_preset, "smoke": {"n": 5}})
    with pytest.raises(UsageError, match="toy settings differ: n 4 -> 5"):
        _run(tmp_path / "r", preset="smoke")


def test_seeds_and_user_models_only_add_cells(tmp_path, toy_probe):
    _run(tmp_path / "r", seeds=(0,))
    more = _run(tmp_path / "r", seeds=(0, 1))
    assert (more.skipped, more.ran) == (5, 5)
    cfg = RunConfig(out=str(tmp_path / "m"), device="cpu", workers=1)
    run_sweep(["toy_model"], cfg, progress=False)
    added = run_sweep(["toy_model"], dataclasses.replace(cfg, models=("fcn",),
                                                         user_models=("user_model_fixture:tiny_fcn",)),
                      progress=False)
    assert (added.skipped, added.ran) == (2, 2)
