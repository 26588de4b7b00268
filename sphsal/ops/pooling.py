"""Spherical max and average pooling of ERP feature maps.

``kernel_size=3`` pools over the spherical-cap stencil (:mod:`sphsal.ops.stencils`, nearest sampling)
of each output pixel, so near the poles the window spreads over all longitudes as it should.
``kernel_size=2`` (with stride 2) pools each 2x2 block of ERP pixels: such a block is exactly one
latitude-longitude cell of the half-resolution ERP grid, it wraps nowhere and is unchanged by rotations
about the polar axis, so the planar 2x2 pool already is the spherical one and is used as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sphsal.ops.sphere_conv import gather_taps
from sphsal.ops.stencils import neighbour_table

__all__ = ["sphere_max_pool2d", "sphere_avg_pool2d"]


def _pool(x: torch.Tensor, kernel_size: int, stride: int, stencil: str, reduce: str) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    if kernel_size == 2:
        if stride != 2:
            raise ValueError(f"kernel_size=2 pools 2x2 ERP cells and needs stride=2, got stride={stride}")
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"2x2 spherical pooling needs an even ERP size, got {h}x{w}")
        return F.max_pool2d(x, 2) if reduce == "max" else F.avg_pool2d(x, 2)
    if kernel_size != 3:
        raise ValueError(f"kernel_size must be 2 or 3, got {kernel_size!r}")
    h, w = x.shape[-2:]
    table = neighbour_table(int(h), int(w), 3, int(stride), 1, stencil, "nearest")
    taps = gather_taps(x, table)  # (B, C, H_out, K, W_out)
    return taps.amax(dim=-2) if reduce == "max" else taps.mean(dim=-2)


def sphere_max_pool2d(x: torch.Tensor, kernel_size: int = 3, stride: int = 2,
                      stencil: str = "cap") -> torch.Tensor:
    """Max over each output pixel's spherical window: ``(B, C, H, W)`` -> ``(B, C, H/stride, W/stride)``.

    ``kernel_size`` 3 (spherical stencil, ``stride`` 1 or 2) or 2 (2x2 ERP cells, ``stride`` 2).
    """
    return _pool(x, kernel_size, stride, stencil, "max")


def sphere_avg_pool2d(x: torch.Tensor, kernel_size: int = 3, stride: int = 2,
                      stencil: str = "cap") -> torch.Tensor:
    """Mean over each output pixel's spherical window; arguments as :func:`sphere_max_pool2d`."""
    return _pool(x, kernel_size, stride, stencil, "mean")
