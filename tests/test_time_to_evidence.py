"""Time to evidence: sampling, the two arms, and the stratified speed-up estimate."""
from __future__ import annotations

import json

import pytest

from fcnprobe import time_to_evidence as tte
from fcnprobe.train import ENGINE, PLAIN, active_engine, use_engine


def _pair(stratum: str, plain: float, configured: float, acc=(0.9, 0.9)) -> dict:
    arm = lambda t, a: {"status": "ok", "train_time_s": t, "stopped_at_step": 10, "score_name": "acc_frac",  # noqa
                        "score": a}
    return {"stratum": stratum, "probe": stratum.split("/")[0], "plain": arm(plain, acc[0]),
            "configured": arm(configured, acc[1])}


def test_standard_plan_has_every_training_probe_and_only_cells_that_train():
    cells = tte.training_cells(tte.SpeedConfig("standard"))
    assert {c.probe for c in cells} == set(tte.TRAINING_PROBES)
    assert all(c.task != "none" for c in cells)


def test_sampling_is_seeded_stratified_and_sized():
    cells = tte.training_cells(tte.SpeedConfig("standard"))
    a, sizes = tte.sample_cells(cells, 2, seed=0)
    b, _ = tte.sample_cells(cells, 2, seed=0)
    c, _ = tte.sample_cells(cells, 2, seed=1)
    assert [x.cell_id for x in a] == [x.cell_id for x in b] != [x.cell_id for x in c]
    assert sum(sizes.values()) == len(cells)
    per = {}
    for x in a:
        per[tte.stratum(x)] = per.get(tte.stratum(x), 0) + 1
    assert per == {k: min(2, n) for k, n in sizes.items()}


def test_plain_arm_turns_early_stopping_off_and_configured_keeps_it():
    cell = next(c for c in tte.training_cells(tte.SpeedConfig("standard")) if c.probe == "context")
    assert tte._settings(cell, "standard", "configured").early_stop is True
    assert tte._settings(cell, "standard", "plain").early_stop is False


def test_use_engine_switches_and_restores():
    assert active_engine() == ENGINE
    with use_engine(PLAIN):
        assert active_engine() == PLAIN
    assert active_engine() == ENGINE


def test_stratified_total_weights_each_stratum_by_its_size():
    pairs = [_pair("a/x", 4, 2), _pair("a/x", 6, 2), _pair("b/y", 1, 1)]
    t = tte.stratified_totals(pairs, {"a/x": 10, "b/y": 100})
    assert t == {"plain": 10 * 5 + 100 * 1, "configured": 10 * 2 + 100 * 1}


def test_speedup_interval_covers_a_known_ratio_and_a_one_cell_stratum_gives_none():
    pairs = [_pair("a/x", 2.0 * t, t) for t in (1, 2, 3, 4)] + [_pair("b/y", 2.0 * t, t) for t in (5, 6, 7)]
    out = tte.speedup_interval(pairs, {"a/x": 8, "b/y": 9})
    assert out["speedup"] == pytest.approx(2.0) and out["lo"] == pytest.approx(2.0) and out["hi"] == pytest.approx(2.0)
    noisy = [_pair("a/x", 2.0 * t + e, t) for t, e in ((1, 0.5), (2, -0.5), (3, 0.4), (4, -0.2))]
    out = tte.speedup_interval(noisy, {"a/x": 8})
    assert out["lo"] < out["speedup"] < out["hi"]
    assert tte.speedup_interval([_pair("a/x", 2, 1)], {"a/x": 5}) == {"speedup": 2.0, "lo": None, "hi": None}


def test_failed_arms_are_left_out_and_score_change_is_measured():
    bad = _pair("a/x", 1, 1)
    bad["plain"]["status"] = "error"
    pairs = [_pair("a/x", 3, 1, acc=(0.9, 0.8)), _pair("a/x", 3, 1, acc=(0.9, 0.88)), bad]
    s = tte.summarise(pairs, {"a/x": 3})
    assert s["pairs"] == 3 and s["usable_pairs"] == 2
    assert s["speedup"] == pytest.approx(3.0)
    assert s["score_change"]["mean"] == pytest.approx(-0.06) and s["score_change"]["n"] == 2


def test_a_smoke_pair_runs_both_arms_and_the_plain_arm_takes_every_step(tmp_path):
    cfg = tte.SpeedConfig("smoke", per_stratum=1, workers=1, probes=("context",))
    cells, sizes = tte.sample_cells(tte.training_cells(cfg), 1, 0)
    pair = tte.run_pair(cells[0], "smoke", plain_first=True)
    assert pair["order"] == ["plain", "configured"]
    for arm in tte.ARMS:
        assert pair[arm]["status"] == "ok" and pair[arm]["train_time_s"] > 0
    assert pair["plain"]["stop_reason"] == "budget"
    doc = {"summary": tte.summarise([pair], sizes), "provenance": {"sgemm_gflops_1thread": 90.0}, "wall_s": 60}
    json.dumps(doc)  # the document is JSON
    text = tte.summary_text(doc)
    assert "1 of 1 sampled cells" in text and "90 GFLOP/s" in text and "no interval: one cell per stratum" in text


def test_summary_text_shows_each_probe_with_its_interval():
    pairs = [_pair("context/fcn", 3.0 * t, t, acc=(0.9, 0.85)) for t in (1, 2, 3)]
    pairs += [_pair("difficulty/fcn", 1.2 * t, t) for t in (1, 2)]
    doc = {"summary": tte.summarise(pairs, {"context/fcn": 9, "difficulty/fcn": 4}),
           "provenance": {"sgemm_gflops_1thread": 150.0}, "wall_s": 120}
    text = tte.summary_text(doc)
    assert "| context | 54 | 18 | 3.00× [3.00, 3.00] |" in text, text  # 9 x 6 s and 9 x 2 s
    assert "| difficulty | 7 | 6 | 1.20× [1.20, 1.20] |" in text
    assert "| all training probes | 61 | 24 | 2.55× [" in text  # (54 + 7.2) / (18 + 6)
    assert "over 5 sampled cells: -0.030 [" in text  # three cells lost 0.05, two nothing


def test_an_unknown_preset_or_a_zero_sample_is_one_line_and_exit_2(tmp_path, capsys):
    assert tte.main(["--preset", "nope", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcnprobe: error: unknown preset 'nope'") and err.count("\n") == 1
    assert tte.main(["--per-stratum", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_no_cell_timed_in_both_arms_gives_no_estimate():
    bad = _pair("a/x", 1, 1)
    bad["configured"]["status"] = "error"
    s = tte.summarise([bad], {"a/x": 4})
    assert s["usable_pairs"] == 0 and s["speedup"] is None
    assert "no cell was timed in both arms" in tte.summary_text({"summary": s, "provenance": {}, "wall_s": 1})


def test_ctrl_c_keeps_the_pairs_measured_so_far(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_pair(cell, preset, plain_first):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(cell.cell_id)
        return {**_pair(tte.stratum(cell), 2.0, 1.0), "cell_id": cell.cell_id}

    monkeypatch.setattr(tte, "run_pair", fake_pair)
    monkeypatch.setattr(tte, "_provenance", lambda: {"sgemm_gflops_1thread": 100.0})
    out = tmp_path / "speed.json"
    code = tte.main(["--preset", "smoke", "--per-stratum", "1", "--workers", "1", "--out", str(out)])
    assert code == 130 and "keeps the pairs measured so far" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and [p["cell_id"] for p in doc["cells"]] == calls
    assert doc["summary"]["speedup"] == pytest.approx(2.0)
    assert "interrupted: a partial sample" in tte.summary_text(doc)
