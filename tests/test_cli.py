"""The CLI: bad input gives one line on stderr and exit code 2; list and dry-run work."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from fcnprobe.run import main


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "fcnprobe.run", *args], capture_output=True,
                          text=True, timeout=timeout)


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fcnprobe: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_command_suggests():
    _one_line_error(_cli("contxt"), "did you mean context", "available:")


def test_unknown_model_is_a_usage_error(tmp_path):
    _one_line_error(_cli("all", "--models", "fnc", "--dry-run", "--out", str(tmp_path)), "'fnc'", "did you mean")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error(tmp_path):
    _one_line_error(_cli("all", "--device", "cuda", "--out", str(tmp_path)), "no CUDA")


def test_bad_flag_values_are_one_line():
    _one_line_error(_cli("all", "--seeds", "x"), "--seeds")
    _one_line_error(_cli("all", "--preset", "huge"), "preset")


def test_list_prints_models_tasks_probes(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fcn " in out and "trf=13" in out and "trf=global" in out and "probes:" in out


def test_dry_run_lists_cells(tmp_path, capsys, toy_probe):
    code = main(["all", "--dry-run", "--out", str(tmp_path / "r")])
    assert code == 0 and "cells" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_task_filter_matching_nothing_is_exit_2_with_did_you_mean(tmp_path):
    _one_line_error(_cli("all", "--tasks", "lcoate", "--dry-run", "--out", str(tmp_path)), "'lcoate'", "did you mean locate")


def test_huge_seed_range_is_refused_at_once(tmp_path):
    _one_line_error(_cli("all", "--seeds", "0-1000000", "--dry-run", "--out", str(tmp_path), timeout=60), "1000")


def test_duplicate_seeds_are_one_replicate(tmp_path, capsys, toy_probe):
    assert main(["toy", "--seeds", "1,1", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "5 cells"


def test_workers_are_capped_at_cells_and_cores_with_a_note():
    import os

    from fcnprobe.config import RunConfig

    workers, note = RunConfig(workers=999).worker_cap(3)
    assert workers == min(3, os.cpu_count() or 1) and note and "capped" in note
    assert RunConfig(workers=1).worker_cap(3) == (1, None)


def test_a_user_model_that_cannot_build_gives_error_records_in_every_probe(tmp_path, capsys):
    """os:system takes no head: every one of its shape cells is an error record (main recorded 8 ok)."""
    code = main(["shape", "--model", "os:system", "--preset", "smoke", "--workers", "1", "--device", "cpu",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    from fcnprobe.results import load_run

    df = load_run(tmp_path / "r")
    mine = df[df.model == "os:system"]
    assert code == 1 and len(mine) > 0 and (mine.status == "error").all()
    assert "does not accept 'head'" in capsys.readouterr().err


def test_version_and_help_name_the_report_page():
    assert _cli("--version").stdout.startswith("fcnprobe ")
    text = _cli("--help").stdout
    assert "runs/latest/index.html" in text and "runs/latest/report/" not in text


def test_a_plugin_probe_is_a_subcommand_and_listed(tmp_path):
    import os
    from pathlib import Path

    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fcnprobe.run", *args], capture_output=True,
                              text=True, timeout=120, env={**env, **extra})

    dry = run("toy", "--plugin", "toy_probe", "--dry-run", "--out", str(tmp_path / "r"))
    assert dry.returncode == 0 and dry.stdout.strip().endswith("5 cells"), dry.stderr
    listed = run("list", FCNPROBE_PLUGINS="toy_probe")  # the environment variable works too
    assert listed.returncode == 0 and "toy" in listed.stdout.splitlines()[-1].split(", "), listed.stderr


def test_compare_refuses_missing_runs_and_creates_nothing(tmp_path):
    proc = _cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    _one_line_error(proc, "no run directory")
    assert not (tmp_path / "b").exists()
    (tmp_path / "a" / "cells").mkdir(parents=True)
    _one_line_error(_cli("compare", str(tmp_path / "a"), str(tmp_path / "a")), "holds no cell records")


def test_compare_warns_when_presets_differ(tmp_path, capsys, monkeypatch):
    import json
    import shutil
    from pathlib import Path

    sample = Path(__file__).parent.parent / "reports" / "quick"
    for name in ("a", "b"):
        shutil.copytree(sample, tmp_path / name, ignore=shutil.ignore_patterns("index.html", "*.png"))
    manifest = tmp_path / "b" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["preset"] = "smoke"
    manifest.write_text(json.dumps(data))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "differ in preset: quick vs smoke" in capsys.readouterr().err


def test_diagnose_end_to_end_writes_html_and_json(tmp_path):
    import json

    from fcnprobe.models import create_model

    torch.save(create_model("fcn", head="dense:4").state_dict(), tmp_path / "w.pt")
    out = tmp_path / "diag"
    proc = _cli("diagnose", "fcn", "--image-size", "32", "--image-size", "48", "--weights", str(tmp_path / "w.pt"),
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "diagnosis.json").read_text())
    assert [r["image_px"] for r in data["sizes"]] == [32, 48]
    assert all(r["trf_px"] == 13 and r["trf_kind"] == "finite" and "erf_trained" in r for r in data["sizes"])
    assert data["slopes"]["macs_vs_side"] > 1.9 and data["findings"]
    assert "13" in (out / "diagnosis.html").read_text()


def test_diagnose_bad_input_is_one_line(tmp_path):
    _one_line_error(_cli("diagnose", "fnc", "--out", str(tmp_path)), "did you mean")
    _one_line_error(_cli("diagnose", "fcn", "--weights", str(tmp_path / "none.pt"), "--out", str(tmp_path)),
                    "no weights file")
    (tmp_path / "bad.pt").write_text("not a state dict")
    _one_line_error(_cli("diagnose", "fcn", "--weights", str(tmp_path / "bad.pt"), "--out", str(tmp_path)),
                    "weights_only")
    _one_line_error(_cli("diagnose", "fcn", "--image-size", "0", "--out", str(tmp_path)), "--image-size")


def test_image_size_output_and_layer_flags_reach_the_cells(tmp_path, capsys):
    code = main(["erf", "--dry-run", "--preset", "smoke", "--models", "fcn", "--image-size", "40",
                 "--image-size", "72", "--layer", "trunk", "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0 and "'image_size': 40" in out and "'image_size': 72" in out and "'layer': 'trunk'" in out


def test_list_names_a_real_layout_it_cannot_build(capsys, monkeypatch):
    import fcnprobe.models.real as real

    def missing():
        raise ImportError("the real layouts need transformers (No module named 'transformers')")

    monkeypatch.setattr(real, "_transformers", missing)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet18_fcn" in out and "unavailable: the real layouts need transformers" in out
    assert "fcn_gap" in out  # every other model is still listed
