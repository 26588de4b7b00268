"""S3D encoder without feature gating (Xie et al., ECCV 2018), as used by TASED-Net and ViNet.

Separable 3D convolutions (a ``1 x k x k`` spatial conv then a ``k x 1 x 1`` temporal conv, each with
BN + ReLU) and Inception blocks of four branches (1x1x1; 1x1x1 -> separable 3x3x3; 1x1x1 -> separable
3x3x3; 3x3x3 max-pool -> 1x1x1) concatenated along channels. BatchNorm uses ``eps=1e-3``,
``momentum=1e-3`` as the released weights were trained with.

For a ``(B, 3, T, H, W)`` clip the encoder returns four feature maps, deepest first (for the published
``32 x 224 x 384`` clips):

* ``y0``: ``(B, 1024, T/8, H/32, W/32)`` = ``(1024, 4, 7, 12)`` after ``base4`` (Mixed_5b/5c),
* ``y1``: ``(B, 832, T/4, H/16, W/16)`` = ``(832, 8, 14, 24)`` after ``base3`` (Mixed_4b-4f),
* ``y2``: ``(B, 480, T/2, H/8, W/8)`` = ``(480, 16, 28, 48)`` after ``base2`` (Mixed_3b/3c),
* ``y3``: ``(B, 192, T/2, H/4, W/4)`` = ``(192, 16, 56, 96)`` after ``base1``.

Module names (``base1.0.conv_s``, ``base2.0.branch1.1.conv_t`` ...) are those of the released S3D /
TASED / ViNet weights, so their backbone entries load without renaming. ``width_mult`` scales every
channel count (for reduced test and demo configurations).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BasicConv3d", "SepConv3d", "Mixed", "S3DEncoder", "MIXED_WIDTHS", "S3D_WIDTHS"]

#: Inception blocks: ``(branch0, branch1 reduce, branch1, branch2 reduce, branch2, branch3)`` channels.
MIXED_WIDTHS = {
    "3b": (64, 96, 128, 16, 32, 32),
    "3c": (128, 128, 192, 32, 96, 64),
    "4b": (192, 96, 208, 16, 48, 64),
    "4c": (160, 112, 224, 24, 64, 64),
    "4d": (128, 128, 256, 24, 64, 64),
    "4e": (112, 144, 288, 32, 64, 64),
    "4f": (256, 160, 320, 32, 128, 128),
    "5b": (256, 160, 320, 32, 128, 128),
    "5c": (384, 192, 384, 48, 128, 128),
}
#: Stem widths: the 7x7x7 separable conv and the 3x3x3 separable conv after it.
S3D_WIDTHS = (64, 192)
BN = {"eps": 1e-3, "momentum": 1e-3}


def _bn_relu(channels: int) -> tuple[nn.Module, nn.Module]:
    return nn.BatchNorm3d(channels, **BN), nn.ReLU()


class BasicConv3d(nn.Module):
    """Bias-free 3D conv + BN + ReLU (pointwise in the encoder)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=1, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn, self.relu = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class SepConv3d(nn.Module):
    """``1 x k x k`` conv (stride ``(1, s, s)``) + BN + ReLU, then ``k x 1 x 1`` conv (stride
    ``(s, 1, 1)``) + BN + ReLU: ``(B, Ci, T, H, W) -> (B, Co, T/s, H/s, W/s)`` ("same" padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        k, s, p = kernel_size, stride, kernel_size // 2
        self.conv_s = nn.Conv3d(in_channels, out_channels, (1, k, k), (1, s, s), (0, p, p), bias=False)
        self.bn_s, self.relu_s = _bn_relu(out_channels)
        self.conv_t = nn.Conv3d(out_channels, out_channels, (k, 1, 1), (s, 1, 1), (p, 0, 0), bias=False)
        self.bn_t, self.relu_t = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu_s(self.bn_s(self.conv_s(x)))
        return self.relu_t(self.bn_t(self.conv_t(x)))


class Mixed(nn.Module):
    """Inception block without gating: ``(B, Ci, T, H, W) -> (B, c0 + c2 + c4 + c5, T, H, W)`` for
    widths ``(c0, c1, c2, c3, c4, c5)`` (see :data:`MIXED_WIDTHS`)."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        c0, c1, c2, c3, c4, c5 = widths
        self.branch0 = nn.Sequential(BasicConv3d(in_channels, c0))
        self.branch1 = nn.Sequential(BasicConv3d(in_channels, c1), SepConv3d(c1, c2, 3))
        self.branch2 = nn.Sequential(BasicConv3d(in_channels, c3), SepConv3d(c3, c4, 3))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), BasicConv3d(in_channels, c5))
        self.out_channels = c0 + c2 + c4 + c5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


def _scale(widths: Sequence[int], width_mult: float) -> tuple[int, ...]:
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    return tuple(max(1, round(w * width_mult)) for w in widths)


class S3DEncoder(nn.Module):
    """S3D feature pyramid (module docstring): ``(B, 3, T, H, W) -> [y0, y1, y2, y3]``.

    ``T`` must be a multiple of 8 and ``H``, ``W`` multiples of 32 (the strides of ``y0``).
    :attr:`channels` holds the widths of ``(y0, y1, y2, y3)``.
    """

    def __init__(self, width_mult: float = 1.0, in_channels: int = 3):
        super().__init__()
        stem, mid = _scale(S3D_WIDTHS, width_mult)
        self.base1 = nn.Sequential(
            SepConv3d(in_channels, stem, 7, stride=2),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            BasicConv3d(stem, stem),
            SepConv3d(stem, mid, 3),
        )
        self.maxp2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.base2, c2 = self._stage(mid, ("3b", "3c"), width_mult)
        self.maxp3 = nn.MaxPool3d(3, stride=2, padding=1)
        self.base3, c1 = self._stage(c2, ("4b", "4c", "4d", "4e", "4f"), width_mult)
        self.maxt4 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        self.maxp4 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.base4, c0 = self._stage(c1, ("5b", "5c"), width_mult)
        self.channels = (c0, c1, c2, mid)

    @staticmethod
    def _stage(in_channels: int, names: Sequence[str], width_mult: float) -> tuple[nn.Sequential, int]:
        blocks = []
        for name in names:
            blocks.append(Mixed(in_channels, _scale(MIXED_WIDTHS[name], width_mult)))
            in_channels = blocks[-1].out_channels
        return nn.Sequential(*blocks), in_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 5:
            raise ValueError(f"S3D expects a clip (B, C, T, H, W), got shape {tuple(x.shape)}")
        t, h, w = x.shape[-3:]
        if t % 8 or h % 32 or w % 32:
            raise ValueError(f"S3D needs T a multiple of 8 and H, W multiples of 32, got T={t}, H={h}, W={w}")
        y3 = self.base1(x)
        y2 = self.base2(self.maxp2(y3))
        y1 = self.base3(self.maxp3(y2))
        y0 = self.base4(self.maxp4(self.maxt4(y1)))
        return [y0, y1, y2, y3]
