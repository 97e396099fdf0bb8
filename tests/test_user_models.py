"""User models: ``module.path:factory`` through create_model, the CLI, the probes and ``fcnprobe.probe``.

The factories live in ``tests/user_model_fixture.py``, a module the zoo does
not know; the probes reach them only by import path.
"""
from __future__ import annotations

import pytest
import torch

import fcnprobe
from fcnprobe import run
from fcnprobe.config import RunConfig
from fcnprobe.errors import UsageError
from fcnprobe.models import MODELS, create_model
from fcnprobe.probes import PROBES
from fcnprobe.results import load_run
from fcnprobe.sweep import run_sweep

TINY = "user_model_fixture:tiny_fcn"
REAL_PROBES = tuple(n for n in PROBES.names() if type(PROBES.get(n)).__module__.startswith("fcnprobe."))


@pytest.mark.parametrize("head, shape", [("dense:4", (2, 4, 20, 24)), ("vector:5", (2, 5)), ("box", (2, 4))])
def test_create_model_builds_a_user_factory_by_import_path(head, shape):
    model = create_model(TINY, head=head, image_size=20, width=4, depth=3)
    assert tuple(model(torch.zeros(2, 3, 20, 24)).shape) == shape
    assert model.info.name == TINY and model.info.head == head
    if head == "dense:4":  # a plain conv chain: 1 + 2 * depth
        assert fcnprobe.theoretical_receptive_field(model, 20) == 7


def test_bad_factories_raise_clear_errors():
    with pytest.raises(UsageError, match="cannot import 'no_such_pkg.nets'"):
        create_model("no_such_pkg.nets:net")
    with pytest.raises(UsageError, match="did you mean tiny_fcn"):
        create_model("user_model_fixture:tiny_fnc")
    with pytest.raises(TypeError, match="does not accept 'head'"):
        create_model("user_model_fixture:no_head")
    with pytest.raises(TypeError, match="does not accept in_channels=1"):
        create_model("user_model_fixture:no_depth", in_channels=1)
    built = create_model("user_model_fixture:no_depth", depth=4)  # width/depth are optional for a factory
    assert built.info.depth is None and built.info.image_size == 32


def test_user_models_replace_the_default_list_unless_models_are_named(toy_probe):
    probe = PROBES.get("toy_model")
    assert probe.model_names(RunConfig(user_models=(TINY,)), ["fcn"]) == [TINY]
    assert probe.model_names(RunConfig(models=("dilated",), user_models=(TINY,)), ["fcn"]) == ["dilated", TINY]
    assert probe.model_names(RunConfig(), ["fcn"]) == ["fcn"]


def test_unimportable_model_exits_2_with_one_line(capsys):
    code = run.main(["all", "--model", "no_such_pkg.nets:net", "--dry-run", "--out", "unused"])
    err = capsys.readouterr().err
    assert code == run.EXIT_USAGE and err.count("\n") == 1 and "cannot import 'no_such_pkg.nets'" in err


def test_factory_without_head_gives_error_records_and_one_warning(tmp_path, toy_probe, capsys, monkeypatch):
    code = run.main(["toy_model", "--model", "user_model_fixture:no_head", "--model", TINY, "--workers", "1",
                     "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == run.EXIT_FAILED
    assert len(err) == 2 and "does not accept 'head'" in err[0] and "2 cells failed" in err[1]
    assert "user_model_fixture:no_head" not in MODELS and TINY not in MODELS  # registered for the sweep only
    df = load_run(tmp_path / "run")
    bad, good = df[df.model == "user_model_fixture:no_head"], df[df.model == TINY]
    assert (bad.status == "error").all() and bad.error.str.startswith("TypeError: model factory").all()
    assert (good.status == "ok").all() and sorted(map(tuple, good.out_shape)) == [(1, 2, 16, 16), (1, 3)]


def test_python_api_runs_a_callable_and_returns_its_records(tmp_path, toy_probe):
    from user_model_fixture import tiny_fcn

    df = fcnprobe.probe(tiny_fcn, probes=["toy_model"], out=str(tmp_path / "api"))
    assert set(df.model) == {TINY} and (df.status == "ok").all() and len(df) == 2
    local = fcnprobe.probe(lambda head, **kw: tiny_fcn(head, width=2), probes=["toy_model"],
                           out=str(tmp_path / "lambda"))
    assert (local.status == "ok").all() and local.params_count.max() < df.params_count.max()
    with pytest.raises(UsageError, match="cannot be imported by worker processes"):
        fcnprobe.probe(lambda head: tiny_fcn(head), probes=["toy_model"], out=str(tmp_path / "x"), workers=2)
    with pytest.raises(UsageError, match="did you mean seeds"):
        fcnprobe.probe(TINY, probes=["toy_model"], out=str(tmp_path / "y"), seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_PROBES)
def test_a_user_model_runs_through_each_probe(tmp_path, name):
    if name not in PROBES:
        pytest.skip(f"probe '{name}' is not built yet")
    if name in ("realarch", "difficulty"):
        pytest.skip(f"{name} measures registered trunks only; a user-only run plans none of its cells")
    tasks = ("global_cue",) if name in ("context", "hierarchy") else ()  # one training task keeps it short
    cfg = RunConfig(out=str(tmp_path / name), device="cpu", preset="smoke", workers=1, tasks=tasks,
                    user_models=(TINY,))
    probes = ["context", name] if name == "hierarchy" else [name]  # hierarchy reads context's trained weights
    summary = run_sweep(probes, cfg, progress=False)
    df = load_run(cfg.out)
    mine = df[df.model == TINY]
    assert len(mine) > 0 and summary.ran >= len(mine)
    assert (mine.status == "ok").all(), mine[mine.status != "ok"][["task", "error"]].to_string()


def test_plain_builder_runs_in_probes_without_training_and_swallowed_heads_are_errors(tmp_path):
    plain, swallow = "user_model_fixture:no_head", "user_model_fixture:swallow"
    cfg = RunConfig(out=str(tmp_path / "r"), device="cpu", preset="smoke", workers=1, user_models=(plain, swallow),
                    image_sizes=(24,))
    run_sweep(["erf", "shape", "cost"], cfg, progress=False)
    df = load_run(cfg.out)
    mine, bad = df[df.model == plain], df[df.model == swallow]
    assert set(mine.probe) == {"erf", "shape", "cost"} and (mine.status == "ok").all(), mine.error.tolist()
    assert set(mine[mine.probe == "erf"].trf_px) == {5} and set(mine[mine.probe == "erf"].trf_check) == {"agree"}
    assert set(mine[mine.probe == "shape"].task) == {"none"} and "control_wrong_rank" not in set(df.model)
    assert not (df.probe == "erf").any() or (df[df.probe == "erf"].param_trained == False).all()  # noqa: E712
    assert len(bad) > 0 and (bad.status == "error").all() and bad.error.str.contains("ignores 'head'").all()


def test_dict_output_through_erf_shape_and_cost_with_output_key(tmp_path):
    name = "user_model_fixture:dict_out"
    cfg = RunConfig(out=str(tmp_path / "r"), device="cpu", preset="smoke", workers=1, user_models=(name,),
                    image_sizes=(20,), output="out")
    run_sweep(["erf", "shape", "cost"], cfg, progress=False)
    df = load_run(cfg.out)
    mine = df[df.model == name]
    assert set(mine.probe) == {"erf", "shape", "cost"} and (mine.status == "ok").all(), mine.error.tolist()
    assert set(mine[mine.probe == "erf"].trf_px) == {3}
    assert [list(s) for s in mine[mine.probe == "shape"].out_shape] == [[1, 2, 20, 20]]
    assert (mine[mine.probe == "cost"].macs == 3 * 9 * 2 * 400).all()
