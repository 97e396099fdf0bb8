"""locate: find one 9x9 square on a 64x64 canvas -- CoordConv's Not-so-Clevr set.

Liu et al., "An intriguing failing of convolutional neural networks and the
CoordConv solution", NeurIPS 2018, Sec. 3: one 9x9 square whose centre lies in
``range(4, 60)`` on each axis of a 64x64 canvas, so 56 x 56 = 3,136 positions.
Two train/test splits of the positions:

* ``uniform``  -- a random 25% of positions is held out (seeded by ``split_seed``,
  so every model of a run sees the same split);
* ``quadrant`` -- every centre with x > 32 and y > 32 is held out (27 x 27 = 729),
  so test positions lie in a region never seen in training.

The target is the square's box, normalised to [0, 1] with pixel i spanning
[i/64, (i+1)/64]; ``meta`` carries the integer centre (x, y) and the square's
mask (for heatmap training). Inputs are one channel: 1 inside the square, 0 outside.
"""
from __future__ import annotations

import torch

from fcnprobe.errors import UsageError
from fcnprobe.tasks.base import Batch, Task, register_task

SPLITS = ("uniform", "quadrant")
PARTS = ("train", "test")


@register_task("locate", kind="box", reference="Liu et al. NeurIPS 2018 (CoordConv), Not-so-Clevr")
class Locate(Task):
    """One square per image; ``sample(n, g, part)`` draws centres from the split's part."""

    kind = "box"
    in_channels = 1

    def __init__(self, image_size: int = 64, split: str = "uniform", side: int = 9,
                 holdout_frac: float = 0.25, split_seed: int = 0) -> None:
        super().__init__(image_size=image_size, split=split, side=side,
                         holdout_frac=holdout_frac, split_seed=split_seed)
        if split not in SPLITS:
            raise UsageError(f"unknown locate split '{split}'; available: {', '.join(SPLITS)}")
        if side % 2 == 0 or side >= image_size:
            raise UsageError(f"locate needs an odd square side below the image size, got {side}")
        self.split, self.side, self.half = split, side, side // 2
        self.holdout_frac, self.split_seed = holdout_frac, split_seed
        self._held = self._held_out_mask()  # (N,) bool over all_positions()

    @property
    def num_outputs(self) -> int:
        return 4

    @property
    def chance(self) -> float:
        """Exact-centre accuracy of one fixed guess: it can hit one test position."""
        return 1.0 / len(self.positions("test"))

    def all_positions(self) -> torch.Tensor:
        """(N, 2) long centres (x, y), x-major; N = (image_size - 2*half)^2 (3,136 at 64/9)."""
        r = torch.arange(self.half, self.image_size - self.half)
        xx, yy = torch.meshgrid(r, r, indexing="ij")
        return torch.stack([xx.flatten(), yy.flatten()], dim=1)

    def _held_out_mask(self) -> torch.Tensor:
        pos = self.all_positions()
        if self.split == "quadrant":
            cut = self.image_size // 2  # 32 at 64: held out where x > 32 and y > 32
            return (pos[:, 0] > cut) & (pos[:, 1] > cut)
        g = torch.Generator().manual_seed(self.split_seed)
        n_test = round(self.holdout_frac * len(pos))
        held = torch.zeros(len(pos), dtype=torch.bool)
        held[torch.randperm(len(pos), generator=g)[:n_test]] = True
        return held

    def positions(self, part: str = "train") -> torch.Tensor:
        """(N_part, 2) long centres of the split's ``train`` or ``test`` part."""
        if part not in PARTS:
            raise UsageError(f"unknown part '{part}'; use train or test")
        keep = self._held if part == "test" else ~self._held
        return self.all_positions()[keep]

    def render(self, centres: torch.Tensor) -> Batch:
        """(B, 2) long centres -> images (B, 1, H, W), boxes (B, 4), meta centre and mask."""
        s, h = self.image_size, self.half
        grid = torch.arange(s, device=centres.device)  # (S,)
        cx, cy = centres[:, :1], centres[:, 1:]  # (B, 1) each
        in_x = (grid >= cx - h) & (grid <= cx + h)  # (B, S)
        in_y = (grid >= cy - h) & (grid <= cy + h)  # (B, S)
        mask = (in_y[:, :, None] & in_x[:, None, :]).float()[:, None]  # (B, 1, S, S)
        box = torch.cat([centres - h, centres + h + 1], dim=1).float() / s  # (B, 4) x0 y0 x1 y1
        return Batch(mask.clone(), box, {"center": centres, "mask": mask})

    def sample(self, n: int, generator: torch.Generator, part: str = "train") -> Batch:
        """``n`` images with centres drawn uniformly, with replacement, from ``part``."""
        pos = self.positions(part).to(generator.device)
        idx = torch.randint(len(pos), (n,), generator=generator, device=generator.device)
        return self.render(pos[idx])
