"""Puts this folder on sys.path so the tests import the hand-built layouts of ``nets.py``."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # transformers_gate.py
