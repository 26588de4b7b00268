"""Spherical pooling modules (see :mod:`sphsal.ops.pooling` for the windows)."""

from __future__ import annotations

import torch
from torch import nn

from sphsal.ops.pooling import sphere_avg_pool2d, sphere_max_pool2d

__all__ = ["SphericalMaxPool2d", "SphericalAvgPool2d"]


class _SphericalPool2d(nn.Module):
    def __init__(self, kernel_size: int = 3, stride: int = 2, stencil: str = "cap"):
        super().__init__()
        if kernel_size not in (2, 3):
            raise ValueError(f"kernel_size must be 2 or 3, got {kernel_size!r}")
        self.kernel_size, self.stride, self.stencil = kernel_size, stride, stencil

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, stencil={self.stencil}"


class SphericalMaxPool2d(_SphericalPool2d):
    """Max pooling ``(B, C, H, W)`` -> ``(B, C, H / stride, W / stride)`` over spherical windows:
    ``kernel_size=3`` the cap stencil, ``kernel_size=2`` the 2x2 ERP cells (exact on the sphere)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sphere_max_pool2d(x, self.kernel_size, self.stride, self.stencil)


class SphericalAvgPool2d(_SphericalPool2d):
    """Average pooling over the same windows as :class:`SphericalMaxPool2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sphere_avg_pool2d(x, self.kernel_size, self.stride, self.stencil)
