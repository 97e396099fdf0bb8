"""Relational long-range tasks: is the red object left of the blue one?

Two 3x3 objects, one red and one blue, sit anywhere in a noisy image at a
Chebyshev centre distance d (uniform in [min_distance, max_distance]) with
distinct centre columns; ``distractors`` green squares are painted first, so
the objects are never hidden. The answer (1 = red is left of blue) depends only
on the *relative position* of two distant objects, so pooling fails where it
solved counting: a global sum of local features keeps *what* is in the image
and loses *where* (see ``analysis.ceilings`` for the derivation and the brute
force that checks it).

* left_of          -- pixel level (``dense:2``): every pixel is labelled with
                      the answer, like global_cue's broadcast. Distance: the
                      pixel's Chebyshev distance to the *farther* object, the
                      distance at which its window first holds both objects.
* left_of_image    -- image level (``vector:2``). Distance: between the centres.
* same_different_dense -- pixel level form of ``same_different`` (which is
                      already image level, ``vector:2``): every pixel gets the
                      same/different answer; distance to the farther cue.

Meta (``TASKS.meta``): ``level`` (pixel | image), ``pooled_local_ceiling`` (best
accuracy beyond reach of the local model class of that level: one window at
pixel level, a pool of windows with a readout at image level; borders aside)
and ``border_leak`` (True where zero padding lets a local model beat that
ceiling: for left_of an FCN+pool can read absolute position off the edges, see
``analysis.ceilings.bordered_bag_ceiling``).

Held-out samples come in pairs: the same image with the two objects' colours
swapped (positions, noise and distractors shared), which flips the answer, so
every distance bin is exactly balanced and a model blind to the order scores 1/2.

References: Kim et al., "Not-So-CLEVR" (2018); Santoro et al., "A simple neural
network module for relational reasoning" (2017), whose Sort-of-CLEVR asks
left/right questions about object pairs.
"""
from __future__ import annotations

import torch

from fcnprobe.analysis.ceilings import LEFT_OF_POOLED_CEILING, PIXEL_SAME_DIFFERENT_CEILING
from fcnprobe.tasks.base import Batch, register_task
from fcnprobe.tasks.context import (CUE_SIZE, PALETTE, PairedTask, SameDifferent, _box_index, _noise, _paint,
                                    _randint, _tile, chebyshev_to_box)


def _colour(rgb: tuple[float, float, float]) -> int:
    """Index of a palette colour given by its (+-1) RGB corner."""
    return int((PALETTE == torch.tensor(rgb)).all(1).nonzero()[0, 0])


RED, BLUE, GREEN = _colour((1.0, -1.0, -1.0)), _colour((-1.0, -1.0, 1.0)), _colour((-1.0, 1.0, -1.0))


def farther_box_distance(meta: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """(B, H, W) Chebyshev distance from each pixel to the farther of the two boxes in ``meta``."""
    d1 = chebyshev_to_box(meta["y1"], meta["x1"], CUE_SIZE, size, size)
    d2 = chebyshev_to_box(meta["y2"], meta["x2"], CUE_SIZE, size, size)
    return torch.maximum(d1, d2)


class LeftOfBase(PairedTask):
    """Shared generator: ``flag`` True puts red on the left object, False swaps the two colours."""

    def __init__(self, image_size: int = 32, min_distance: int = CUE_SIZE, max_distance: int | None = None,
                 distractors: int = 1) -> None:
        hi = image_size - CUE_SIZE if max_distance is None else max_distance
        super().__init__(image_size, min_distance=min_distance, max_distance=hi, distractors=distractors)
        if not CUE_SIZE <= min_distance <= hi <= image_size - CUE_SIZE:
            raise ValueError(f"need {CUE_SIZE} <= min_distance <= max_distance <= {image_size - CUE_SIZE}")
        if distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {distractors}")
        self.min_distance, self.max_distance, self.distractors = min_distance, hi, distractors

    @property
    def num_outputs(self) -> int:
        return 2

    @property
    def chance(self) -> float:
        return 0.5  # labels are balanced; no constant guess does better

    @property
    def pooled_local_ceiling(self) -> float:
        """Best accuracy beyond reach of a translation-invariant (sum of) local function(s), borders aside."""
        return LEFT_OF_POOLED_CEILING

    def _offsets(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Offsets (dy, dx) of the right object from the left one: max(|dy|, dx) = d, 1 <= dx <= d."""
        d = _randint(self.max_distance, n, gen, low=self.min_distance)
        on_y = torch.rand(n, generator=gen, device=gen.device) < 0.5
        sign = torch.where(torch.rand(n, generator=gen, device=gen.device) < 0.5, 1, -1)
        minor_x = _randint(d, n, gen, low=1)  # dx in [1, d] when |dy| = d
        minor_y = _randint(2 * d, n, gen) - d  # dy in [-d, d] when dx = d
        dy, dx = torch.where(on_y, sign * d, minor_y), torch.where(on_y, minor_x, d)
        return d, dy, dx

    def _place(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Top-left corners of the left (1) and right (2) objects, both inside the image."""
        d, dy, dx = self._offsets(n, gen)
        top = self.image_size - CUE_SIZE
        y1 = _randint(top - dy.clamp(min=0), n, gen, low=(-dy).clamp(min=0))
        x1 = _randint(top - dx, n, gen)
        return {"distance": d, "y1": y1, "x1": x1, "y2": y1 + dy, "x2": x1 + dx}

    def _draw(self, n: int, red_left: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        s, pal = self.image_size, PALETTE.to(gen.device)
        img, meta = _noise(n, s, gen), self._place(n, gen)  # (B, 3, H*W)
        idx1 = _box_index(meta["y1"], meta["x1"], CUE_SIZE, s)
        idx2 = _box_index(meta["y2"], meta["x2"], CUE_SIZE, s)
        under1, under2 = img.gather(2, idx1), img.gather(2, idx2)  # read before any paint: pure noise
        idx = [_box_index(_randint(s - CUE_SIZE, n, gen), _randint(s - CUE_SIZE, n, gen), CUE_SIZE, s)
               for _ in range(self.distractors)]
        for i, u in zip(idx, [img.gather(2, i) for i in idx]):  # painted first: the objects show in full
            _paint(img, i, pal[GREEN].expand(n, 3), u)
        img, under1, under2, idx1, idx2 = (_tile(t, repeat) for t in (img, under1, under2, idx1, idx2))
        meta = {k: _tile(v, repeat) for k, v in meta.items()}
        c1 = torch.where(red_left, RED, BLUE)  # (B,) colour of the left object
        c2 = torch.where(red_left, BLUE, RED)
        _paint(img, idx1, pal[c1], under1)
        _paint(img, idx2, pal[c2], under2)
        meta.update(colour1=c1, colour2=c2)
        return Batch(img.view(-1, 3, s, s), red_left.long(), meta)


@register_task("left_of_image", kind="vector", level="image", distance="between the two object centres",
               pooled_local_ceiling=LEFT_OF_POOLED_CEILING, border_leak=True, relation="order")
class LeftOfImage(LeftOfBase):
    """Image level: is the red object left of the blue one? (label 1 = yes)."""

    kind = "vector"

    def reach(self, trf_px: int | None) -> int | None:
        """Centre distance at which one TRF window still holds a pixel of each object."""
        return None if trf_px is None else trf_px - 1 + CUE_SIZE - 1

    def distances(self, batch: Batch) -> torch.Tensor:
        return batch.meta["distance"]


@register_task("left_of", kind="dense", level="pixel", distance="to the farther of the two objects",
               pooled_local_ceiling=LEFT_OF_POOLED_CEILING, border_leak=True, relation="order")
class LeftOf(LeftOfBase):
    """Pixel level: every pixel says whether the red object is left of the blue one."""

    kind = "dense"

    def _draw(self, n: int, red_left: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        batch = super()._draw(n, red_left, gen, repeat)
        s = self.image_size
        batch.targets = batch.targets.view(-1, 1, 1).expand(-1, s, s).contiguous()  # (B, H, W)
        return batch

    def distances(self, batch: Batch) -> torch.Tensor:
        return farther_box_distance(batch.meta, self.image_size)


@register_task("same_different_dense", kind="dense", level="pixel", distance="to the farther of the two cues",
               pooled_local_ceiling=PIXEL_SAME_DIFFERENT_CEILING, border_leak=False, relation="identity")
class SameDifferentDense(SameDifferent):
    """Pixel level same_different: every pixel says whether the two cues share a colour."""

    kind = "dense"

    @property
    def pooled_local_ceiling(self) -> float:
        """A pixel beyond reach sees one cue at most: the other colour is a fair coin (1/2)."""
        return PIXEL_SAME_DIFFERENT_CEILING

    def reach(self, trf_px: int | None) -> int | None:
        return None if trf_px is None else (trf_px - 1) // 2

    def _draw(self, n: int, same: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        batch = super()._draw(n, same, gen, repeat)
        s = self.image_size
        batch.targets = batch.targets.view(-1, 1, 1).expand(-1, s, s).contiguous()  # (B, H, W)
        return batch

    def distances(self, batch: Batch) -> torch.Tensor:
        return farther_box_distance(batch.meta, self.image_size)
