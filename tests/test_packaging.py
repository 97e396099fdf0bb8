"""Packaging: a regular (non-editable) install carries the report templates and writes a report.

The wheel is built from this checkout and unpacked with ``pip install --target``
into a fresh folder that is put first on ``PYTHONPATH`` (so it shadows an
editable install); torch and the other dependencies come from the running
environment. Under ``CI=true`` a missing build tool fails the test; elsewhere it skips.
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "reports" / "quick"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs {what}")
    pytest.skip(f"{what} is not available")


def test_package_data_globs_match_every_template():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = data.get("fcnprobe.report", [])
    templates = ROOT / "fcnprobe" / "report" / "templates"
    unshipped = [p.name for p in templates.iterdir()
                 if p.is_file() and not any(fnmatch.fnmatch(f"templates/{p.name}", g) for g in globs)]
    assert not unshipped, f"not in the wheel: {unshipped} (globs {globs})"


def _build_and_install(tmp_path: Path) -> Path:
    """The wheel of this checkout, unpacked into tmp_path/site; returns that folder."""
    src = tmp_path / "src"  # a clean copy: no stale build/ or egg-info from the editable install
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("runs", "build", "*.egg-info", ".git", "__pycache__",
                                                             "reports", "tests", "benchmarks"))
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    if wheel.returncode != 0:
        _missing(f"a wheel build (pip wheel: {wheel.stderr.strip().splitlines()[-1:]})")
    site = tmp_path / "site"
    whl = next((tmp_path / "dist").glob("fcnprobe-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(whl)],
                   check=True, capture_output=True, timeout=300)
    return site


@pytest.mark.slow
def test_wheel_install_builds_report_and_compare(tmp_path):
    site = _build_and_install(tmp_path)
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(SAMPLE, runs / name, ignore=shutil.ignore_patterns("index.html", "compare"))
    env = {**os.environ, "PYTHONPATH": str(site)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fcnprobe.run", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import fcnprobe; print(fcnprobe.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    report = cli("report", "--out", str(runs / "a"))
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert (runs / "a" / "index.html").stat().st_size > 10_000
    compare = cli("compare", str(runs / "a"), str(runs / "b"))
    assert compare.returncode == 0, compare.stderr
    assert (runs / "b" / "compare" / "index.html").exists()
