"""Hand-built layouts for the measurement tests, with few channels: receptive fields do not depend on width.

ResNet-18, MobileNetV2-style, VGG-16 and U-Net layouts keep the kernels, strides
and branch structure of the originals (torchvision's, the U-Net paper's).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block; a strided block has a 1x1 strided conv shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv(cout, cout), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18Layout(nn.Module):
    """torchvision resnet18's trunk (stem 7x7/2, max-pool 3x3/2, 4 stages of 2 blocks); output at layer4."""

    def __init__(self, widths: tuple[int, ...] = (4, 4, 8, 8, 16)) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), \
            nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i in range(4):
            s = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(widths[i], widths[i + 1], s),
                                                         BasicBlock(widths[i + 1], widths[i + 1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, ReLU6, 3x3 depthwise (stride s), ReLU6, 1x1 project; residual at stride 1."""

    def __init__(self, c: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        h = c * expand
        self.block = nn.Sequential(conv(c, h, 1), nn.BatchNorm2d(h), nn.ReLU6(), conv(h, h, 3, stride, groups=h),
                                   nn.BatchNorm2d(h), nn.ReLU6(), conv(h, c, 1), nn.BatchNorm2d(c))
        self.residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def inverted_residual_stack(strides: tuple[int, ...] = (1, 2, 1, 2, 1), c: int = 4) -> nn.Module:
    return nn.Sequential(conv(3, c, 3, 2), nn.ReLU6(), *[InvertedResidual(c, s) for s in strides])


VGG16_CFG = (2, 2, 3, 3, 3)  # convs per stage


def vgg16_layout(width: int = 4) -> nn.Sequential:
    """VGG-16 features: 13 3x3 convs in 5 stages, a 2x2/2 max-pool after each; named conv5_3, pool5 etc."""
    layers, cin = [], 3
    for stage, n in enumerate(VGG16_CFG, start=1):
        for j in range(1, n + 1):
            layers += [(f"conv{stage}_{j}", nn.Conv2d(cin, width, 3, padding=1)), (f"relu{stage}_{j}", nn.ReLU())]
            cin = width
        layers.append((f"pool{stage}", nn.MaxPool2d(2, 2)))
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(layers))


class UNet(nn.Module):
    """One-level U-Net: two 3x3 convs, 2x2 max-pool, two 3x3 convs, 2x2/2 ConvTranspose2d, concat skip, two 3x3."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(conv(3, c), nn.ReLU(), conv(c, c), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.enc2 = nn.Sequential(conv(c, 2 * c), nn.ReLU(), conv(2 * c, 2 * c), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * c, c, 2, 2)
        self.dec = nn.Sequential(conv(2 * c, c), nn.ReLU(), conv(c, 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.enc1(x)
        y = self.up(self.enc2(self.pool(s)))
        return self.dec(torch.cat([s, y], 1))


class GlobalMean(nn.Module):
    """A conv plus the functional ``x + x.mean()``: every unit sees the whole image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + y.mean()


class Resampling(nn.Module):
    """Strided convs down 4x, then a functional upsample back (``mode``), plus a full-resolution skip."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.down = nn.Sequential(conv(3, 4, 3, 2), nn.ReLU(), conv(4, 4, 3, 2))
        self.skip = conv(3, 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kw = {} if self.mode.startswith("nearest") else {"align_corners": False}
        up = F.interpolate(self.down(x), size=x.shape[-2:], mode=self.mode, **kw)
        return up + self.skip(x)
