"""The transformers gate of the real-layout tests: skip without transformers, but fail under CI (env CI=true)."""
from __future__ import annotations

import os

import pytest


def require_transformers():
    """The transformers module; skips when it is missing, fails instead when CI=true (it must be installed there)."""
    try:
        import transformers
    except ImportError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"transformers is required under CI=true: {e}")
        pytest.skip("transformers is not installed")
    return transformers
