"""3D ResNet with Bottleneck blocks and projection (type-B) shortcuts (Hara et al., CVPR 2018), the
Kinetics-pretrained ResNet-50 that STAViS truncates after ``layer3``.

Stem: ``Conv3d(3, 64, k=7, stride=(1, 2, 2), padding=3)`` + BN + ReLU, then ``MaxPool3d(3, stride=2,
padding=1)``. Stage ``i`` has Bottleneck blocks (1x1x1 -> 3x3x3 -> 1x1x1 convs, BN, expansion 4) of
``planes = 64, 128, 256`` (x ``width_mult``); the first block of stages 2 and 3 strides by 2 in time and
space, and a block whose shape changes adds ``downsample`` (1x1x1 conv with that stride + BN) to its
residual. For a ``(B, 3, 16, 112, 112)`` clip: stem ``(64, 16, 56, 56)``, ``layer1`` ``(256, 8, 28, 28)``,
``layer2`` ``(512, 4, 14, 14)``, ``layer3`` ``(1024, 2, 7, 7)``.

The stages are attributes (``conv1``, ``bn1``, ``maxpool``, ``layer1`` ...) named as in the released
networks, so a model can run them one by one (STAViS re-weights the features between stages).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Bottleneck3d", "ResNet3dBottleneck"]

EXPANSION = 4


class Bottleneck3d(nn.Module):
    """``(B, Ci, T, H, W) -> (B, 4 planes, T/s, H/s, W/s)``: 1x1x1, 3x3x3 (stride ``s``), 1x1x1 convs with
    BN (ReLU after the first two), plus the input (projected by ``downsample`` when the shape changes),
    then ReLU."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv3d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv3d(in_channels, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm3d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet3dBottleneck(nn.Module):
    """Stem and ``len(layers)`` Bottleneck stages (module docstring); call the parts in order.

    Args:
        layers: blocks per stage, ``(3, 4, 6)`` for ResNet-50 up to ``layer3``.
        width_mult: scales the stem width 64 and the planes 64 / 128 / 256 ...
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6), width_mult: float = 1.0, in_channels: int = 3):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        stem = max(1, round(64 * width_mult))
        self.conv1 = nn.Conv3d(in_channels, stem, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(stem)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self.channels = [stem]
        in_ch = stem
        for i, blocks in enumerate(layers):
            planes = max(1, round(64 * 2 ** i * width_mult))
            stage = [Bottleneck3d(in_ch, planes, 1 if i == 0 else 2)]
            in_ch = planes * EXPANSION
            stage += [Bottleneck3d(in_ch, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            self.channels.append(in_ch)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, 64, T, H/2, W/2)``: conv1 + BN + ReLU (before the max-pool)."""
        return torch.relu(self.bn1(self.conv1(x)))
