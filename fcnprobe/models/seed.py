"""The three example models of the seed text, layer for layer.

Source: ``shared/seed/000_b6fc7fb2875792c1.txt`` ("What are the problems with
using a fully convolutional neural network ... ?", 2025-01-26), Examples 1-3.
Only the docstrings are new; layers and ``forward`` are the seed's. They are
registered with the head kind each example *wanted*; Examples 2 and 3 return a
dense map instead, which is the seed's point and the shape probe's finding.
"""
from __future__ import annotations

import torch.nn as nn

from fcnprobe.errors import UsageError
from fcnprobe.models.base import register_model


class SimpleFCN(nn.Module):
    """Example 1: segmentation, (1, 3, 256, 256) -> (1, num_classes, 256, 256)."""

    def __init__(self, num_classes):
        super(SimpleFCN, self).__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(64, num_classes, kernel_size=1)

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.conv3(x)
        return x


class AttemptedFCNOutput(nn.Module):
    """Example 2: wanted (1, output_size); returns (1, output_size, 256, 256)."""

    def __init__(self, output_size):
        super(AttemptedFCNOutput, self).__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(64, output_size, kernel_size=1)

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.conv3(x)
        return x


class BoundingBoxFCN(nn.Module):
    """Example 3: wanted one box (1, 4); returns (1, 4, 256, 256)."""

    def __init__(self):
        super(BoundingBoxFCN, self).__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(64, 4, kernel_size=1)

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.conv3(x)
        return x


def _check_rgb(name: str, in_channels: int) -> None:
    if in_channels != 3:
        raise UsageError(f"{name} is the seed's model, layer for layer: it takes 3 input channels")


@register_model("seed_simple_fcn", family="seed", category="fcn",
                native=("dense",), adapters=False, seed_output="dense")
def seed_simple_fcn(spec, in_channels, image_size, width=None, depth=None):
    _check_rgb("seed_simple_fcn", in_channels)
    return SimpleFCN(num_classes=spec.channels)


@register_model("seed_attempted_vector", family="seed", category="fcn",
                native=("vector",), adapters=False, seed_output="dense")
def seed_attempted_vector(spec, in_channels, image_size, width=None, depth=None):
    _check_rgb("seed_attempted_vector", in_channels)
    return AttemptedFCNOutput(output_size=spec.channels)


@register_model("seed_bounding_box", family="seed", category="fcn",
                native=("box",), adapters=False, seed_output="dense")
def seed_bounding_box(spec, in_channels, image_size, width=None, depth=None):
    _check_rgb("seed_bounding_box", in_channels)
    return BoundingBoxFCN()
