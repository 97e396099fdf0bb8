"""Shared helpers of the measurement tests: the hand-built layouts and the transformers gate."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # nets.py


def require_transformers():
    """The transformers module; skips without it, but fails under CI (env CI=true), where it must be installed."""
    try:
        import transformers
    except ImportError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"transformers is required under CI=true: {e}")
        pytest.skip("transformers is not installed")
    return transformers
