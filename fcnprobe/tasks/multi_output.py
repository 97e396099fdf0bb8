"""multi_output: the seed's structured output -- findings, two numbers and a box from one image.

The seed (claim 2) asks for "a sequence of diagnostic findings, a set of
numerical parameters, and a bounding box for a relevant anatomical structure"
from one image. This synthetic stand-in, on a 4-channel canvas:

* channels 0-2 hold 1 to ``max_count`` coloured squares (side 2 to ``max_side`` px),
  each in its own cell of an 8 px grid so none overlap; a square's colour is its
  kind, one of ``NUM_FINDINGS`` (red, green, blue, yellow);
* channel 3 holds the "structure": one filled rectangle anywhere (a second modality,
  so it never hides a square).

Targets, one row of ``num_outputs`` = 4 + 2 + 4 per image (see ``LAYOUT``):
findings (multi-hot: which kinds are present), count / max_count and
mean side / max_side (scaled to about [0, 1]), and the structure's box (normalised,
pixel i spans [i/S, (i+1)/S]). ``meta`` has the unscaled count and mean side.
"""
from __future__ import annotations

import torch

from fcnprobe.errors import UsageError
from fcnprobe.tasks.base import Batch, Task, register_task

NUM_FINDINGS = 4  # kinds of square; a multi-label vector of 4
PALETTE = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0))  # kind -> RGB
SLOT = 8  # grid cell side in px; a square sits inside one cell, so squares never overlap
LAYOUT = {"findings": slice(0, 4), "params": slice(4, 6), "box": slice(6, 10)}  # target columns
HEADS = {"findings": "vector:4", "params": "vector:2", "box": "box"}  # the head each output needs


@register_task("multi_output", kind="vector", reference="seed text, claim 2 (structured output)")
class MultiOutput(Task):
    """Findings + (count, mean size) + box; ``sample`` is vectorised over the batch."""

    kind = "vector"
    in_channels = 4

    def __init__(self, image_size: int = 32, max_count: int = 5, max_side: int = 6) -> None:
        super().__init__(image_size=image_size, max_count=max_count, max_side=max_side)
        self.slots = (image_size // SLOT) ** 2
        if max_count > self.slots or not 2 <= max_side < SLOT:
            raise UsageError(f"multi_output: need max_count <= {self.slots} and 2 <= max_side < {SLOT}")
        self.max_count, self.max_side = max_count, max_side

    @property
    def num_outputs(self) -> int:
        return LAYOUT["box"].stop

    @property
    def chance(self) -> float:
        """Per-label findings accuracy of the best constant guess, in closed form.

        A kind is present with p = 1 - mean_{c=1..max_count} (1 - 1/K)^c (count uniform, kinds
        uniform and independent per object); the best constant scores max(p, 1 - p).
        """
        n = self.params["max_count"]
        p = 1 - sum((1 - 1 / NUM_FINDINGS) ** c for c in range(1, n + 1)) / n
        return max(p, 1 - p)

    def _squares(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Per sample and object slot k < max_count: valid, kind, side, top-left (y, x)."""
        dev, k = g.device, self.max_count
        count = torch.randint(1, k + 1, (n,), generator=g, device=dev)  # (B,)
        valid = torch.arange(k, device=dev)[None] < count[:, None]  # (B, K)
        slot = torch.rand(n, self.slots, generator=g, device=dev).argsort(1)[:, :k]  # (B, K) distinct
        kind = torch.randint(NUM_FINDINGS, (n, k), generator=g, device=dev)
        side = torch.randint(2, self.max_side + 1, (n, k), generator=g, device=dev)
        off = (torch.rand(n, k, 2, generator=g, device=dev) * (SLOT - side + 1)[..., None]).long()
        per_row = self.image_size // SLOT
        top = torch.stack([slot // per_row, slot % per_row], -1) * SLOT + off  # (B, K, 2) y, x
        return valid, kind, side, top

    def _structure(self, n: int, g: torch.Generator) -> torch.Tensor:
        """(B, 4) long box x0, y0, x1, y1 (exclusive) of a rectangle of side 6 .. S/2."""
        s, dev = self.image_size, g.device
        wh = torch.randint(6, s // 2 + 1, (n, 2), generator=g, device=dev)
        xy = (torch.rand(n, 2, generator=g, device=dev) * (s - wh + 1)).long()
        return torch.cat([xy, xy + wh], dim=1)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        s, g = self.image_size, generator
        valid, kind, side, top = self._squares(n, g)
        grid = torch.arange(s, device=g.device)
        in_y = (grid >= top[..., :1]) & (grid < top[..., :1] + side[..., None])  # (B, K, S)
        in_x = (grid >= top[..., 1:]) & (grid < top[..., 1:] + side[..., None])  # (B, K, S)
        sq = (in_y[..., :, None] & in_x[..., None, :] & valid[..., None, None]).float()  # (B, K, S, S)
        colour = torch.tensor(PALETTE, device=g.device)[kind] * valid[..., None]  # (B, K, 3)
        rgb = torch.einsum("bkhw,bkc->bchw", sq, colour)  # (B, 3, S, S); squares are disjoint
        box = self._structure(n, g)  # (B, 4)
        in_bx = (grid >= box[:, None, 0:1]) & (grid < box[:, None, 2:3])  # (B, 1, S)
        in_by = (grid >= box[:, None, 1:2]) & (grid < box[:, None, 3:4])  # (B, 1, S)
        struct = (in_by[..., :, None] & in_bx[..., None, :]).float()  # (B, 1, S, S)
        findings = torch.zeros(n, NUM_FINDINGS, device=g.device).scatter_add_(1, kind, valid.float()) > 0
        count = valid.sum(1).float()  # (B,)
        mean_side = (side * valid).sum(1).float() / count  # (B,)
        params = torch.stack([count / self.max_count, mean_side / self.max_side], dim=1)
        targets = torch.cat([findings.float(), params, box.float() / s], dim=1)  # (B, 10)
        return Batch(torch.cat([rgb, struct], dim=1), targets, {"count": count, "mean_side": mean_side})
