"""Shared fixtures: a tiny registered toy probe so the sweep runs end to end in tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # spawn workers must import toy_probe too


@pytest.fixture
def toy_probe():
    """Register the toy probe for one test (its module registers on import)."""
    import toy_probe as tp

    tp.ensure_registered()
    yield tp
