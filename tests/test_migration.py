"""Record schema migration: a v1 record's pseudo-task and pseudo-model become a variant."""
from __future__ import annotations

import pytest

from fcnprobe.results import SCHEMA_VERSION, Record


def _v1(**kw):
    d = {"probe": "cost", "model": "fcn", "task": "forward", "params": {"size": 32}, "seed": 0, "cell_id": "c",
         "metrics": {}, "schema_version": 1}
    return {**d, **kw}


@pytest.mark.parametrize("task", ["noise", "contract", "forward", "roofline"])
def test_pseudo_tasks_become_variants(task):
    r = Record.from_dict(_v1(task=task))
    assert (r.task, r.variant, r.params["variant"], r.schema_version) == ("none", task, task, SCHEMA_VERSION)


def test_real_tasks_and_the_sgemm_model():
    r = Record.from_dict(_v1(task="global_cue", probe="context"))
    assert (r.task, r.variant, "variant" in r.params) == ("global_cue", None, False)
    assert Record.from_dict(_v1(task="roofline", model="sgemm")).model == "none"


def test_new_records_take_their_variant_from_params_and_unknown_versions_fail():
    assert Record("erf", "fcn", "none", {"variant": "noise"}, 0, "c").variant == "noise"
    with pytest.raises(ValueError, match="schema_version"):
        Record.from_dict(_v1(schema_version=99))
