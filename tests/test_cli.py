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
