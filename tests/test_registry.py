"""Registry: decorator registration, duplicates, unknown names with near matches, globs."""
from __future__ import annotations

import pytest

from fcnprobe.errors import UsageError
from fcnprobe.registry import DuplicateNameError, Registry, UnknownNameError


@pytest.fixture
def reg():
    r = Registry("widget")

    @r.register("alpha", colour="red")
    def alpha():
        return 1

    r.add("alpine", object())
    r.add("beta", object())
    return r


def test_register_and_get(reg):
    assert reg.get("alpha")() == 1
    assert reg.meta("alpha") == {"colour": "red"}
    assert "beta" in reg and len(reg) == 3


def test_duplicate_name_raises(reg):
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.add("alpha", object())


def test_unknown_name_suggests_and_lists(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("alpah")
    msg = str(info.value)
    assert "did you mean 'alpha'" in msg and "available: alpha, alpine, beta" in msg
    assert isinstance(info.value, UsageError) and "\n" not in msg


def test_unknown_without_close_match_still_lists(reg):
    msg = Registry.unknown_message(reg, "zzz")
    assert "did you mean" not in msg and msg.endswith("available: alpha, alpine, beta")


def test_glob_selection(reg):
    assert reg.names("al*") == ["alpha", "alpine"]
    assert reg.select(["beta", "al*"]) == ["beta", "alpha", "alpine"]
    assert reg.select([]) == ["alpha", "alpine", "beta"]
    with pytest.raises(UnknownNameError, match="did you mean"):
        reg.select(["bet"])


def test_real_registries_reject_unknown_models():
    import fcnprobe

    with pytest.raises(UnknownNameError, match="did you mean 'fcn'"):
        fcnprobe.create_model("fnc")
