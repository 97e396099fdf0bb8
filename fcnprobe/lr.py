"""The learning rate each trained cell uses, and where it came from.

Every trained cell asks ``learning_rate(model, task, preset)``. Today this is
the family's registered default (``lr`` in the model registry's metadata); the
learning-rate grid (``lrgrid`` preset) will fill a committed table that this
function reads first, per (family, task). The returned source string is stored
in the record, so a report always says which rate a model trained with and why.
"""
from __future__ import annotations

def learning_rate(model: str, task: str, preset: str) -> tuple[float, str]:
    """``(lr, source)`` for ``model`` trained on ``task`` at ``preset``."""
    from fcnprobe.train import family_lr

    return family_lr(model), "family default (no LR table yet)"
