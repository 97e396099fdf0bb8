"""Planted models for end-to-end verdict tests: hand-built answers with a known reach, run through the probe.

Each planted model decodes the two objects of a same_different or aligned_image
image exactly (painted pixels have |value| >= 0.57 in every channel, noise stays
below 0.44), so what it answers at each distance is set by construction:

* ``plant_global``  (global_op) -- a functional global read-out (an argmax over the whole image): right at
  every distance, beyond any TRF.
* ``plant_const``   (global_op) -- always "different": never beats the constant guess (the gate).
* ``plant_cover``   (fcn, TRF 2x the image) -- right at every distance: a conv-only net that uses far context.
* ``plant_near``    (fcn, TRF = image side) -- right only up to 4 px, then "different": fails below half its reach.
* ``plant_mid``     (fcn, TRF = image side) -- right up to 10 px: fails between half its reach and its reach.
* ``plant_identity``(fcn, TRF 2x) -- compares colours only: solves same_different, not aligned_image.
* ``plant_noisy``   (fcn, TRF 2x) -- right, but flips the answer on ~10% of images (accuracy ~0.9) (keyed on a noise pixel):
  intervals that straddle the thresholds.

Each has one unused parameter, so the probe's optimiser has something to step.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from fcnprobe.models import MODELS
from fcnprobe.models.base import register_model

RED, BLUE, GREEN = 4, 1, 2  # sign codes (R>0)*4 + (G>0)*2 + (B>0) of the palette's red, blue, green


def _decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(answer, distance, aligned_mode) per image of x (B, 3, H, W)."""
    b, _, h, w = x.shape
    strong = (x.abs() > 0.5).all(1).flatten(1)  # (B, HW) painted pixels
    pos = (x > 0).long()
    code = (pos[:, 0] * 4 + pos[:, 1] * 2 + pos[:, 2]).flatten(1)  # (B, HW)
    first = strong.float().argmax(1)
    last = h * w - 1 - strong.flip(1).float().argmax(1)
    same = code.gather(1, first[:, None]) == code.gather(1, last[:, None])  # (B, 1)
    cheb = torch.maximum((first // w - (last // w - 2)).abs(), (first % w - (last % w - 2)).abs())
    red, blue = strong & (code == RED), strong & (code == BLUE)
    other = strong & (code != RED) & (code != BLUE) & (code != GREEN)
    mode = red.any(1) & blue.any(1) & ~other.any(1)  # red + blue objects: the aligned task
    r_first, b_first = red.float().argmax(1), blue.float().argmax(1)
    aligned = (r_first // w) == (b_first // w)
    answer = torch.where(mode, aligned, same[:, 0])
    dist = torch.where(mode, (r_first % w - b_first % w).abs(), cheb)
    return answer.long(), dist, mode


class Planted(nn.Module):
    """Answers by ``_decode``; "different" (0) beyond ``cutoff`` px; optional flips; a declared TRF."""

    def __init__(self, trf: int | None, cutoff: float = float("inf"), identity_only: bool = False,
                 flip: float = 0.0, constant: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.trf, self.cutoff, self.identity_only, self.flip, self.constant = trf, cutoff, identity_only, flip, constant

    def receptive_field(self, image_size: int | None = None) -> int | None:
        return self.trf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        answer, dist, mode = _decode(x)
        if self.identity_only:
            answer = torch.where(mode, torch.zeros_like(answer), answer)
        answer = torch.where(dist <= self.cutoff, answer, torch.zeros_like(answer))
        if self.flip:
            v = x[:, 0, 0, 0]
            noise = torch.where(v.abs() > 0.5, v - v.sign(), v)  # uniform on +-0.433
            answer = torch.where(noise > 0.433 * (1 - 2 * self.flip), 1 - answer, answer)
        if self.constant:
            answer = torch.zeros_like(answer)
        return 10.0 * nn.functional.one_hot(answer, 2).float() + 0 * self.w  # (B, 2)


PLANTS = {  # name: (category, TRF in image sides (None = global), Planted kwargs)
    "plant_global": ("global_op", None, {}),
    "plant_const": ("global_op", None, {"constant": True}),
    "plant_cover": ("fcn", 2, {}),
    "plant_near": ("fcn", 1, {"cutoff": 4}),
    "plant_mid": ("fcn", 1, {"cutoff": 10}),
    "plant_identity": ("fcn", 2, {"identity_only": True}),
    "plant_noisy": ("fcn", 2, {"flip": 0.1}),
}


def _factory(sides: int | None, kw: dict):
    def build(spec, in_channels, image_size, width=None, depth=None):
        return Planted(None if sides is None else sides * image_size, **kw)
    return build


def register_plants() -> None:
    """Register every planted model once (idempotent)."""
    for name, (cat, sides, kw) in PLANTS.items():
        if name not in MODELS:
            register_model(name, native=("vector",), category=cat, family="planted", adapters=False)(
                _factory(sides, kw))
