"""User-model factories for tests: models the zoo does not know, given by import path.

``tiny_fcn`` is what a user would write: a plain conv stack taking the zoo's
arguments (head, in_channels, image_size, width, depth). ``no_head`` forgets
``head``; ``no_depth`` takes neither ``in_channels`` nor ``depth``; ``broken``
builds but fails in forward; ``nan_fcn`` returns NaN everywhere.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from fcnprobe.models import parse_head


class TinyFCN(nn.Module):
    """3x3 conv + ReLU stack; a 1x1 conv for dense heads, average pooling + linear otherwise."""

    def __init__(self, head: str, in_channels: int, width: int, depth: int) -> None:
        super().__init__()
        spec = parse_head(head)
        layers, ch = [], in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(ch, width, 3, padding=1), nn.ReLU()]
            ch = width
        self.body = nn.Sequential(*layers)
        self.dense, self.is_box = spec.kind == "dense", spec.kind == "box"
        self.out = nn.Conv2d(width, spec.channels, 1) if self.dense else nn.Linear(width, spec.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x)  # (B, width, H, W)
        if self.dense:
            return self.out(f)  # (B, C, H, W)
        v = self.out(f.mean((-2, -1)))  # (B, N)
        return torch.sigmoid(v) if self.is_box else v


def tiny_fcn(head: str, in_channels: int = 3, image_size: int = 32,
             width: int | None = None, depth: int | None = None) -> nn.Module:
    return TinyFCN(head, in_channels, width or 8, depth or 2)


def no_head(in_channels: int = 3, image_size: int = 32) -> nn.Module:
    return TinyFCN("dense:4", in_channels, 8, 2)


def no_depth(head: str, image_size: int = 32) -> nn.Module:
    return TinyFCN(head, 3, 8, 2)


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this user model always fails")


def broken(head: str, in_channels: int = 3, image_size: int = 32) -> nn.Module:
    return _Broken()


class NaNNet(TinyFCN):
    """A TinyFCN whose output is all NaN: every probe must turn it into an error naming the stage."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


def nan_fcn(head: str, in_channels: int = 3, image_size: int = 32,
            width: int | None = None, depth: int | None = None) -> nn.Module:
    return NaNNet(head, in_channels, width or 4, depth or 1)


def swallow(**kwargs) -> nn.Module:
    """Takes ``head`` into **kwargs and ignores it: always 21 dense classes (a segmentation builder's habit)."""
    return TinyFCN("dense:21", 3, 8, 1)


class _DictNet(nn.Module):
    """torchvision-segmentation style: ``{"out": map, "aux": vector}``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict:
        y = self.conv(x)
        return {"out": y, "aux": y.mean((-2, -1))}


def dict_out(image_size: int = 32) -> nn.Module:
    """A plain builder (no head) whose model returns a dict."""
    return _DictNet()
