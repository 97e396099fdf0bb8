"""Long-range (global-context) tasks: global_cue, shift and same_different.

Each task draws a batch on the generator's device with no loop per sample, says
its ``chance`` level and returns the metadata needed to bin results by distance
(``distances(batch)``: one Chebyshev distance in pixels per scored element).
Colours are corners of the RGB cube (values +-1) plus bounded uniform noise
(std 0.25), so one pixel already tells a colour apart: every task is trivially
*local* to decode and hard only through its *distance*.

* global_cue     -- dense broadcast. With probability 1/2 a 3x3 target of class
                    c (K classes) sits somewhere among noise and distractor
                    squares (other colours); every pixel's label is c, or 0 =
                    "absent". Distance: to the nearest target pixel. An FCN with
                    TRF radius r sees no target pixel beyond r.
* shift          -- dense. Each pixel has one of K colours; the label at p is the
                    colour at p + (0, d). Columns whose source is off the image
                    are masked (IGNORE_INDEX). One model per d. A global pool
                    cannot say *which* far pixel to copy, so pooling fixes fail
                    beyond the TRF while attention or dilation can succeed.
* same_different -- vector. Two 3x3 cues of K = 8 colours at centre distance d;
                    label 1 if they share a colour. Near distances are in the
                    training mix so models learn at all. A pooled FCN is a sum of
                    local functions: beyond its reach its best is 9/14 = 0.643
                    for K = 8 (``analysis.context.pooled_pair_ceiling``; not
                    1/2 + 1/(2K), which a two-level score beats).

``heldout`` draws an evaluation batch. global_cue and same_different pair their
held-out samples (the same background twice: with and without the target, or
with a same and a different colour), so every distance bin is exactly balanced.
On global_cue a pixel that cannot see the target sees the same input in both
images of a pair, so it is right on at most one: beyond reach, accuracy <= 1/2
exactly, not just in expectation.

References: ParseNet (Liu et al. 2015) for global pooling as context; Luo et
al., "Understanding the Effective Receptive Field" (NeurIPS 2016); Kim et al.,
"Not-So-CLEVR" (2018) for same-different as a test CNNs find hard.
"""
from __future__ import annotations

import torch

from fcnprobe.analysis.context import pooled_pair_ceiling
from fcnprobe.tasks.base import Batch, Task, register_task

IGNORE_INDEX = -100  # torch cross_entropy's default ignore_index: masked pixels
PALETTE = torch.tensor([[s0, s1, s2] for s0 in (1.0, -1.0) for s1 in (1.0, -1.0) for s2 in (1.0, -1.0)])
NOISE_STD = 0.25  # per channel, uniform: |noise| <= 0.43 < 0.5, so colours (|v| >= 0.57) never pass for background
ASYMMETRIC_PAIR_CEILING = 0.75  # analysis.ceilings.asymmetric_pair_ceiling: u(a) + v(b) rules, any K >= 2
CUE_SIZE = 3  # side of targets, distractors and cues, in pixels


def _grid(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index grids shaped (1, H, 1) and (1, 1, W) for broadcasting."""
    return (torch.arange(h, device=device).view(1, h, 1), torch.arange(w, device=device).view(1, 1, w))


def _noise(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, H*W) uniform noise with std NOISE_STD, 256 levels.

    One 64-bit draw gives 8 bytes, so this costs an eighth of the random numbers
    of ``torch.randn``, which alone capped the generator near 60k samples/s on one
    core. Uniform, not Gaussian: bounded noise keeps every pixel's colour decodable.
    """
    count = n * 3 * size * size
    raw = torch.empty((count + 7) // 8, dtype=torch.int64, device=gen.device)
    raw.random_(-(2**63), None, generator=gen)  # the full 64-bit range: every byte uniform
    step = NOISE_STD * 3**0.5 / 128  # int8 levels -> [-sqrt(3) std, sqrt(3) std]
    noise = raw.view(torch.int8)[:count].float().mul_(step).add_(step / 2)  # in place: no extra buffers
    return noise.view(n, 3, size * size)


def _randint(high: torch.Tensor | int, n: int, gen: torch.Generator, low: torch.Tensor | int = 0) -> torch.Tensor:
    """n integers uniform in [low, high] inclusive; low and high may be per-sample tensors."""
    u = torch.rand(n, generator=gen, device=gen.device)
    return (low + (u * (high - low + 1)).floor()).long()


def _box_index(y0: torch.Tensor, x0: torch.Tensor, size: int, width: int) -> torch.Tensor:
    """(B, 3, size*size) flat pixel indices of squares with top-left corners (y0, x0)."""
    off = torch.arange(size, device=y0.device)
    rows = (y0.view(-1, 1, 1) + off.view(1, -1, 1)) * width  # (B, size, 1)
    idx = (rows + x0.view(-1, 1, 1) + off.view(1, 1, -1)).flatten(1)  # (B, size*size)
    return idx[:, None].expand(-1, 3, -1)


def _paint(img: torch.Tensor, idx: torch.Tensor, colour: torch.Tensor, noise: torch.Tensor,
           keep: torch.Tensor | None = None) -> torch.Tensor:
    """Write colour (B, 3) plus the pixels' own noise (B, 3, k) at idx into img (B, 3, H*W), in place.

    Only the box's pixels are touched (a scatter, not a whole-image ``where``).
    Samples where ``keep`` is False are left as they are.
    """
    value = colour[:, :, None] + noise  # (B, 3, k)
    if keep is not None:
        value = torch.where(keep.view(-1, 1, 1), value, img.gather(2, idx))
    return img.scatter_(2, idx, value)


def _tile(t: torch.Tensor, repeat: int) -> torch.Tensor:
    """Stack ``repeat`` copies of t along the batch axis (paired held-out samples)."""
    return t if repeat == 1 else t.repeat(repeat, *[1] * (t.dim() - 1))


def chebyshev_to_box(y0: torch.Tensor, x0: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """(B, H, W) Chebyshev distance from each pixel to the nearest pixel of a square."""
    yy, xx = _grid(h, w, y0.device)
    y0, x0 = y0.view(-1, 1, 1), x0.view(-1, 1, 1)
    dy = torch.clamp(torch.maximum(y0 - yy, yy - (y0 + size - 1)), min=0)  # (B, H, 1)
    dx = torch.clamp(torch.maximum(x0 - xx, xx - (x0 + size - 1)), min=0)  # (B, 1, W)
    return torch.maximum(dy, dx)  # (B, H, W)


class ContextTask(Task):
    """A task whose results are binned by a distance in pixels."""

    def heldout(self, n: int, generator: torch.Generator) -> Batch:
        """Evaluation samples; by default simply fresh samples."""
        return self.sample(n, generator)

    def distances(self, batch: Batch) -> torch.Tensor:
        """Chebyshev distance in px for each scored element, shaped like ``batch.targets``."""
        raise NotImplementedError

    def reach(self, trf_px: int | None) -> int | None:
        """Largest distance at which a model with a TRF of this side can see the cue; None if global."""
        return None if trf_px is None else (trf_px - 1) // 2


class PairedTask(ContextTask):
    """A task with a binary condition per sample (target present, cues the same), drawn by
    ``_draw(n, flag, gen, repeat)``. Training flips a fair coin; held-out samples come in pairs that
    share everything but the flag (GlobalCue: the same image without its target; SameDifferent:
    the same positions and first colour), so a model blind to the flag scores exactly 0.5."""

    paired = True  # held-out samples i and i + n/2 form a pair: the bootstrap unit

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        flag = torch.rand(n, generator=generator, device=generator.device) < 0.5
        return self._draw(n, flag, generator)

    def heldout(self, n: int, generator: torch.Generator) -> Batch:
        half = max(1, n // 2)
        flag = torch.arange(2 * half, device=generator.device) < half
        return self._draw(half, flag, generator, repeat=2)

    def _draw(self, n: int, flag: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        raise NotImplementedError


# Meta for the verdicts (issue 15): ``level`` (pixel | image) and the pooled-local ceilings, the best accuracy
# beyond reach of a local model (pixel level: one window; image level: a global pool of windows), without
# edges (``pooled_local_ceiling``) and with zero padding (``padded_ceiling``; analysis.ceilings). None: no
# distance-free bound (shift beyond reach is chance, 1/K, but it is a resolution/copy task, not a verdict task).
# ``control``: global_cue's pixel ceiling is 1/2, but one pooling op solves it (its image-level ceiling is 1),
# so it is a control, never verdict evidence.
@register_task("global_cue", kind="dense", distance="to the nearest target pixel", bins="near_cue",
               level="pixel", pooled_local_ceiling=0.5, padded_ceiling=0.5, control=True)
class GlobalCue(PairedTask):
    """Dense broadcast of the class of a small target (or 'absent', label 0) to every pixel."""

    def __init__(self, image_size: int = 32, classes: int = 4, distractors: int = 2) -> None:
        super().__init__(image_size, classes=classes, distractors=distractors)
        if not 1 <= classes < len(PALETTE):
            raise ValueError(f"global_cue needs 1..{len(PALETTE) - 1} classes (the rest are distractor colours)")
        self.classes, self.distractors = classes, distractors

    @property
    def num_outputs(self) -> int:
        return self.classes + 1  # 0 = absent

    @property
    def chance(self) -> float:
        return 0.5  # the target is absent half the time; no constant guess does better

    def _draw(self, n: int, present: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        s, pal = self.image_size, PALETTE.to(gen.device)
        img = _noise(n, s, gen)  # (B, 3, H*W); boxes read their noise before anything is painted
        boxes = [(_randint(s - CUE_SIZE, n, gen), _randint(s - CUE_SIZE, n, gen))
                 for _ in range(self.distractors + 1)]  # the last one is the target
        idx = [_box_index(y, x, CUE_SIZE, s) for y, x in boxes]
        under = [img.gather(2, i) for i in idx]
        for i, u in zip(idx[:-1], under[:-1]):  # distractors: other colours, before the target
            _paint(img, i, pal[self.classes + _randint(len(PALETTE) - self.classes - 1, n, gen)], u)
        (y0, x0), cls = boxes[-1], _randint(self.classes - 1, n, gen)
        img, y0, x0, cls, tidx, tnoise = (_tile(t, repeat) for t in (img, y0, x0, cls, idx[-1], under[-1]))
        _paint(img, tidx, pal[cls], tnoise, keep=present)
        label = torch.where(present, cls + 1, torch.zeros_like(cls))
        targets = label.view(-1, 1, 1).expand(-1, s, s).contiguous()  # (B, H, W)
        # for absent samples (y0, x0) is where the target would have been: bins stay balanced
        meta = {"present": present, "cls": cls, "y0": y0, "x0": x0}
        return Batch(img.view(-1, 3, s, s), targets, meta)

    def distances(self, batch: Batch) -> torch.Tensor:
        return chebyshev_to_box(batch.meta["y0"], batch.meta["x0"], CUE_SIZE, self.image_size, self.image_size)


@register_task("shift", kind="dense", distance="the shift d (one model per d; d = 0 is the resolution control)",
               bins="fixed", sweep_param="distance", level="pixel", pooled_local_ceiling=None, padded_ceiling=None)
class Shift(ContextTask):
    """Dense copy: the label at (y, x) is the colour class at (y, x + d)."""

    def __init__(self, image_size: int = 32, distance: int = 1, classes: int = 4) -> None:
        super().__init__(image_size, distance=distance, classes=classes)
        if not 0 <= distance < image_size:
            raise ValueError(f"shift distance {distance} must be in [0, {image_size - 1}]")
        if not 2 <= classes <= len(PALETTE):
            raise ValueError(f"shift needs 2..{len(PALETTE)} classes")
        self.distance, self.classes = distance, classes

    @property
    def num_outputs(self) -> int:
        return self.classes

    @property
    def chance(self) -> float:
        return 1.0 / self.classes  # colours are i.i.d. uniform per pixel

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        s, d, dev = self.image_size, self.distance, generator.device
        cls = torch.randint(self.classes, (n, s, s), generator=generator, device=dev)  # (B, H, W)
        img = PALETTE.to(dev)[cls].permute(0, 3, 1, 2) + _noise(n, s, generator).view(n, 3, s, s)  # (B, 3, H, W)
        targets = torch.full_like(cls, IGNORE_INDEX)
        targets[:, :, : s - d] = cls[:, :, d:]  # the last d columns have no source: masked
        return Batch(img, targets, {"distance": torch.full((n,), d, device=dev)})

    def distances(self, batch: Batch) -> torch.Tensor:
        return batch.meta["distance"].view(-1, 1, 1).expand_as(batch.targets)


@register_task("same_different", kind="vector", distance="between the two cue centres", bins="uniform",
               level="image", pooled_local_ceiling=pooled_pair_ceiling(8), padded_ceiling=ASYMMETRIC_PAIR_CEILING)
class SameDifferent(PairedTask):
    """Are two 3x3 cues, at a random centre distance, the same colour? (label 1 = same)."""

    kind = "vector"

    def __init__(self, image_size: int = 32, classes: int = 8, min_distance: int = CUE_SIZE,
                 max_distance: int | None = None) -> None:
        hi = image_size - CUE_SIZE if max_distance is None else max_distance
        super().__init__(image_size, classes=classes, min_distance=min_distance, max_distance=hi)
        if not CUE_SIZE <= min_distance <= hi <= image_size - CUE_SIZE:
            raise ValueError(f"need {CUE_SIZE} <= min_distance <= max_distance <= {image_size - CUE_SIZE}")
        if not 2 <= classes <= len(PALETTE):
            raise ValueError(f"same_different needs 2..{len(PALETTE)} colours")
        self.classes, self.min_distance, self.max_distance = classes, min_distance, hi

    @property
    def num_outputs(self) -> int:
        return 2

    @property
    def chance(self) -> float:
        return 0.5  # labels are balanced

    @property
    def pooled_ceiling(self) -> float:
        """Best accuracy of a pooled sum of local functions that never sees both cues."""
        return pooled_pair_ceiling(self.classes)

    def reach(self, trf_px: int | None) -> int | None:
        """Centre distance at which one TRF window still holds a pixel of each cue."""
        return None if trf_px is None else trf_px - 1 + CUE_SIZE - 1

    def _offsets(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centre offsets (dy, dx) with max(|dy|, |dx|) = d, d uniform in [min, max]."""
        d = _randint(self.max_distance, n, gen, low=self.min_distance)
        minor = _randint(2 * d, n, gen) - d  # uniform in [-d, d]
        sign = torch.where(torch.rand(n, generator=gen, device=gen.device) < 0.5, 1, -1)
        on_y = torch.rand(n, generator=gen, device=gen.device) < 0.5
        dy, dx = torch.where(on_y, sign * d, minor), torch.where(on_y, minor, sign * d)
        return d, dy, dx

    def _draw(self, n: int, same: torch.Tensor, gen: torch.Generator, repeat: int = 1) -> Batch:
        s, pal = self.image_size, PALETTE.to(gen.device)
        d, dy, dx = self._offsets(n, gen)
        top = s - CUE_SIZE  # largest top-left coordinate
        y1 = _randint(top - dy.clamp(min=0), n, gen, low=(-dy).clamp(min=0))
        x1 = _randint(top - dx.clamp(min=0), n, gen, low=(-dx).clamp(min=0))
        a = _randint(self.classes - 1, n, gen)
        other = (a + 1 + _randint(self.classes - 2, n, gen)) % self.classes  # any colour but a
        img = _noise(n, s, gen)  # (B, 3, H*W)
        img, d, dy, dx, y1, x1, a, other = (_tile(t, repeat) for t in (img, d, dy, dx, y1, x1, a, other))
        b = torch.where(same, a, other)
        idx1, idx2 = _box_index(y1, x1, CUE_SIZE, s), _box_index(y1 + dy, x1 + dx, CUE_SIZE, s)
        under1, under2 = img.gather(2, idx1), img.gather(2, idx2)  # cues never overlap (d >= CUE_SIZE)
        _paint(img, idx1, pal[a], under1)
        _paint(img, idx2, pal[b], under2)
        img = img.view(-1, 3, s, s)  # (B, 3, H, W)
        meta = {"distance": d, "y1": y1, "x1": x1, "y2": y1 + dy, "x2": x1 + dx, "colour1": a, "colour2": b}
        return Batch(img, same.long(), meta)

    def distances(self, batch: Batch) -> torch.Tensor:
        return batch.meta["distance"]
