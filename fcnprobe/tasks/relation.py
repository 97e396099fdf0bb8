"""Relational long-range tasks: where are two distant objects relative to each other?

Two 3x3 objects, one red and one blue, sit in a noisy image; ``distractors``
green squares are painted first, so the objects are never hidden. The answer
depends only on the *relative position* of the two objects, so pooling fails
where it solved counting: a global sum of local features keeps *what* is in the
image and loses *where* (``analysis.ceilings`` derives each ceiling and checks
it by brute force).

* left_of_image    -- ``vector:2``: is the red object left of the blue one? The
                      centres are d apart (Chebyshev, uniform in [min, max]) with
                      distinct columns. Distance: between the centres.
* left_of          -- the pixel-level form (``dense:2``): every pixel carries the
                      answer, like global_cue's broadcast. Distance: the pixel's
                      Chebyshev distance to the *farther* object, the distance at
                      which its window first holds both.
* aligned_image    -- ``vector:2``: are the two objects in the same row? The
                      centres are d apart horizontally; the other row is uniform
                      over the rest. Distance: the horizontal separation.
* same_different_dense -- the pixel-level form of ``same_different`` (which is
                      already image level, ``vector:2``); distance to the farther cue.

Meta (``TASKS.meta``): ``level`` (pixel | image); ``pooled_local_ceiling``, the
best accuracy beyond reach of the local model class of that level (one window
at pixel level, a global pool of windows at image level) when windows cannot
see an image edge; ``padded_ceiling``, the same with zero padding, where a
window near an edge knows where it is. left_of loses its ceiling there: an
FCN+pool reads each object's column off the edges, and a linear readout of
``x_blue - x_red`` decides the order (0.99 at 32 px for fcn's TRF of 13). So
left_of shows *where* designs fail but is no verdict evidence against zero-
padded FCNs. aligned_image keeps 3/4 with padding: knowing both rows does not
make their *equality* linearly readable, so it (with same_different) can enter
a verdict.

Held-out samples come in pairs that share everything but the answer: left_of
swaps the two colours; aligned moves the blue object to another row;
same_different changes the second colour. Every distance bin is exactly
balanced and a model blind to the answer scores 1/2.

References: Kim et al., "Not-So-CLEVR" (2018); Santoro et al., "A simple neural
network module for relational reasoning" (2017), whose Sort-of-CLEVR asks
left/right questions about object pairs; Islam et al., "How much position
information do convolutional neural networks encode?" (ICLR 2020).
"""
from __future__ import annotations

import torch

from fcnprobe.analysis.ceilings import (ALIGNED_PADDED_CEILING, LEFT_OF_POOLED_CEILING,
                                        PIXEL_SAME_DIFFERENT_CEILING)
from fcnprobe.tasks.base import TASKS, Batch, register_task
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


class TwoObjectTask(PairedTask):
    """A red and a blue 3x3 object plus green distractors; subclasses place them.

    ``_place`` draws everything the two images of a held-out pair share;
    ``_resolve`` turns it and the per-sample flag into corners and colours.
    """

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
        return TASKS.meta(self.name)["pooled_local_ceiling"]

    def _place(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _resolve(self, geo: dict[str, torch.Tensor], flag: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _draw(self, n: int, flag: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        s, pal = self.image_size, PALETTE.to(gen.device)
        img, geo = _noise(n, s, gen), self._place(n, gen)  # (B, 3, H*W)
        pristine = img.clone()  # every box is painted over pure noise, never over paint
        for _ in range(self.distractors):  # painted first: the objects always show in full
            idx = _box_index(_randint(s - CUE_SIZE, n, gen), _randint(s - CUE_SIZE, n, gen), CUE_SIZE, s)
            _paint(img, idx, pal[GREEN].expand(n, 3), pristine.gather(2, idx))
        img, pristine = _tile(img, repeat), _tile(pristine, repeat)
        meta = self._resolve({k: _tile(v, repeat) for k, v in geo.items()}, flag)
        for i in ("1", "2"):  # objects cannot overlap: their centres are >= CUE_SIZE apart
            idx = _box_index(meta["y" + i], meta["x" + i], CUE_SIZE, s)
            _paint(img, idx, pal[meta["colour" + i]], pristine.gather(2, idx))
        return Batch(img.view(-1, 3, s, s), flag.long(), meta)


class LeftOfBase(TwoObjectTask):
    """``flag`` True puts red on the left object, False swaps the two colours (positions shared)."""

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

    def _resolve(self, geo: dict[str, torch.Tensor], red_left: torch.Tensor) -> dict[str, torch.Tensor]:
        colour1 = torch.where(red_left, RED, BLUE)  # (B,) colour of the left object
        return {**geo, "colour1": colour1, "colour2": RED + BLUE - colour1}


class ImageLevelPair:
    """Image-level answer about two objects: one label per image, binned by the objects' separation."""

    kind = "vector"

    def reach(self, trf_px: int | None) -> int | None:
        """Separation at which one TRF window still holds a pixel of each object."""
        return None if trf_px is None else trf_px - 1 + CUE_SIZE - 1

    def distances(self, batch: Batch) -> torch.Tensor:
        return batch.meta["distance"]


@register_task("left_of_image", kind="vector", level="image", distance="between the two object centres",
               pooled_local_ceiling=LEFT_OF_POOLED_CEILING, padded_ceiling=1.0, relation="order")
class LeftOfImage(ImageLevelPair, LeftOfBase):
    """Image level: is the red object left of the blue one? (label 1 = yes)."""


@register_task("left_of", kind="dense", level="pixel", distance="to the farther of the two objects",
               pooled_local_ceiling=LEFT_OF_POOLED_CEILING, padded_ceiling=1.0, relation="order")
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


class AlignedBase(TwoObjectTask):
    """``flag`` True puts the two objects in the same row; False in another row, uniform over the rest.

    Distance is the horizontal separation ``d = |dx|`` of the centres (uniform in
    [min, max]); the colour order and the red object's row are shared by a pair.
    """

    def _place(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        top = self.image_size - CUE_SIZE
        d = _randint(self.max_distance, n, gen, low=self.min_distance)
        x1 = _randint(top - d, n, gen)
        row = _randint(top, n, gen)
        other = (row + 1 + _randint(top - 1, n, gen)) % (top + 1)  # any row but ``row``
        red_left = torch.rand(n, generator=gen, device=gen.device) < 0.5
        return {"distance": d, "x1": x1, "x2": x1 + d, "row": row, "other_row": other, "red_left": red_left}

    def _resolve(self, geo: dict[str, torch.Tensor], same: torch.Tensor) -> dict[str, torch.Tensor]:
        red_row, blue_row = geo["row"], torch.where(same, geo["row"], geo["other_row"])
        red_left = geo["red_left"]
        colour1 = torch.where(red_left, RED, BLUE)
        return {"distance": geo["distance"], "x1": geo["x1"], "x2": geo["x2"],
                "y1": torch.where(red_left, red_row, blue_row), "y2": torch.where(red_left, blue_row, red_row),
                "colour1": colour1, "colour2": RED + BLUE - colour1}


@register_task("aligned_image", kind="vector", level="image", distance="horizontal separation of the centres",
               pooled_local_ceiling=LEFT_OF_POOLED_CEILING, padded_ceiling=ALIGNED_PADDED_CEILING,
               relation="alignment")
class AlignedImage(ImageLevelPair, AlignedBase):
    """Image level: are the red and the blue object in the same row? (label 1 = yes)."""


@register_task("same_different_dense", kind="dense", level="pixel", distance="to the farther of the two cues",
               pooled_local_ceiling=PIXEL_SAME_DIFFERENT_CEILING, padded_ceiling=PIXEL_SAME_DIFFERENT_CEILING, relation="identity")
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
