"""3D ResNet (Hara et al., CVPR 2018) with BasicBlocks and the parameter-free type-A shortcut.

The layout follows the Kinetics-pretrained networks that DAVE and AVS360 build on: stem
``Conv3d(k=7, stride=(1, 2, 2))`` + BN + ReLU + ``MaxPool3d(3, stride=2)``, then four stages of
BasicBlocks whose first block strides by 2 in time and space (stages 2-4). A type-A shortcut
subsamples the input (``stride``) and appends zero channels instead of learning a projection.

For 16 x 256 x 320 clips the stage-4 output is ``(B, 512, 1, 8, 10)``. Parameter names
(``conv1``, ``bn1``, ``layer{1..4}.{i}.conv1`` ...) match the published networks, so their weights
load directly. The convolutions are :class:`sphsal.nn.ClipConv3d` (``nn.Conv3d`` parameters; faster
on clips shorter than the kernel, such as 3-frame clips through the 7-frame stem).

The stem can pad spatially with a module of its own instead of zeros (cube padding for cube faces,
spherical ERP padding for the max-pool of a spherical ERP branch): pass ``stem_pad`` and/or
``pool_pad``, callables ``p -> nn.Module`` that pad the last two dimensions by ``p`` pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sphsal.nn.clip_conv import ClipConv3d

__all__ = ["BasicBlock3d", "ResNet3d", "resnet3d18", "scaled_widths"]

PadFactory = Callable[[int], nn.Module]


def scaled_widths(width_mult: float, base: Sequence[int] = (64, 128, 256, 512)) -> tuple[int, ...]:
    """Stage widths ``base * width_mult`` rounded, at least 1 channel each."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    return tuple(max(1, round(w * width_mult)) for w in base)


def shortcut_a(x: torch.Tensor, out_channels: int, stride: int) -> torch.Tensor:
    """Type-A shortcut: ``x[:, :, ::s, ::s, ::s]`` with zero channels appended up to ``out_channels``.

    ``x``: ``(B, C, T, H, W)`` -> ``(B, out_channels, ceil(T/s), ceil(H/s), ceil(W/s))``.
    """
    if stride != 1:
        x = x[:, :, ::stride, ::stride, ::stride]
    extra = out_channels - x.shape[1]
    if extra > 0:
        x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra))
    return x


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convolutions with BN, ReLU and a type-A residual: ``(B, Cin, T, H, W) -> (B, C, ...)``."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = ClipConv3d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.conv2 = ClipConv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)
        self.channels = channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + shortcut_a(x, self.channels, self.stride))


class ResNet3d(nn.Module):
    """3D ResNet feature extractor: ``(B, in_channels, T, H, W) -> (B, widths[-1], T/16, H/32, W/32)``
    (sizes rounded up; no pooling or classifier at the end).

    Args:
        layers: BasicBlocks per stage, ``(2, 2, 2, 2)`` for ResNet-18.
        widths: channels of the four stages.
        in_channels: input channels (3 for RGB and for log-mel tiled to 3 channels).
        stem_pad: ``p -> module`` padding H, W by ``p`` before the stem convolution (replacing its zero
            padding); ``None`` keeps zero padding.
        pool_pad: the same for the stem max-pool (padding 1); ``None`` keeps the pool's own padding.
    """

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), widths: Sequence[int] = (64, 128, 256, 512),
                 in_channels: int = 3, stem_pad: PadFactory | None = None,
                 pool_pad: PadFactory | None = None):
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"layers and widths need 4 stages, got layers={layers}, widths={widths}")
        self.widths = tuple(int(w) for w in widths)
        self.stem_pad = stem_pad(3) if stem_pad else nn.Identity()
        self.conv1 = ClipConv3d(in_channels, self.widths[0], 7, stride=(1, 2, 2),
                                padding=(3, 0, 0) if stem_pad else 3, bias=False)
        self.bn1 = nn.BatchNorm3d(self.widths[0])
        self.pool_pad = pool_pad(1) if pool_pad else nn.Identity()
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=(1, 0, 0) if pool_pad else 1)
        stages = []
        in_ch = self.widths[0]
        for i, (blocks, width) in enumerate(zip(layers, self.widths)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock3d(in_ch, width, stride)]
            stage += [BasicBlock3d(width, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            in_ch = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def out_channels(self) -> int:
        return self.widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"ResNet3d expects (B, C, T, H, W), got shape {tuple(x.shape)}")
        x = F.relu(self.bn1(self.conv1(self.stem_pad(x))))
        x = self.maxpool(self.pool_pad(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet3d18(width_mult: float = 1.0, **kwargs) -> ResNet3d:
    """3D ResNet-18 (BasicBlocks ``[2, 2, 2, 2]``), stage widths ``(64, 128, 256, 512) * width_mult``."""
    return ResNet3d((2, 2, 2, 2), scaled_widths(width_mult), **kwargs)
