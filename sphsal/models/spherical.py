"""Spherical variants of planar saliency networks on ERP input: :func:`make_spherical`.

:func:`sphsal.nn.convert_to_spherical` swaps the convolutions (and 2D pools) for their spherical twins.
The video baselines also hold layers it leaves alone, which would break the longitude seam and the
poles; :func:`make_spherical` gives those their spherical neighbours too, without new parameters:

* ``nn.MaxPool3d`` with spatial padding becomes :class:`EquirectMaxPool3d` (pads H, W with
  :func:`sphsal.sphere.pad_equirect`, then pools with no spatial padding; same output size);
* :class:`BilinearUpsample` (the models' spatial upsampling) pads with the spherical neighbours
  before interpolating, so the border columns interpolate across the seam.

A planar network's weights load unchanged into its spherical variant (same names and shapes).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _triple

from sphsal.sphere import pad_equirect

__all__ = ["BilinearUpsample", "EquirectMaxPool3d", "bilinear_upsample", "make_spherical"]


def bilinear_upsample(x: torch.Tensor, scale: int, erp: bool = False) -> torch.Tensor:
    """Bilinear x``scale`` upsampling of the last two dims of ``(B, C, H, W)`` or ``(B, C, T, H, W)``
    (time untouched; ``align_corners=False``).

    ``erp=True``: the map is padded by one pixel with its spherical neighbours first and the extra
    ``scale`` output pixels per side are cropped, so every output pixel interpolates between its true
    neighbours (across the seam and the poles) instead of clamping at the border; the interior is
    identical to the planar result. Returns ``(..., scale H, scale W)``.
    """
    if scale == 1:
        return x
    if erp:
        x = pad_equirect(x, 1)
    size = (scale * x.shape[-2], scale * x.shape[-1])
    if x.dim() == 5:
        out = F.interpolate(x, size=(x.shape[2], *size), mode="trilinear", align_corners=False)
    else:
        out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return out[..., scale:-scale, scale:-scale] if erp else out


class BilinearUpsample(nn.Module):
    """:func:`bilinear_upsample` as a module; :func:`make_spherical` sets ``erp=True``."""

    def __init__(self, scale: int = 2, erp: bool = False):
        super().__init__()
        self.scale, self.erp = int(scale), erp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bilinear_upsample(x, self.scale, self.erp)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, erp={self.erp}"


class EquirectMaxPool3d(nn.Module):
    """``nn.MaxPool3d`` whose spatial padding takes the spherical neighbours (:func:`pad_equirect`)
    instead of ``-inf``; time keeps the pool's own padding. ``(B, C, T, H, W)``, ``W`` even."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.kernel_size, self.stride, self.padding = _triple(kernel_size), _triple(stride), _triple(padding)
        if self.padding[1] != self.padding[2]:
            raise ValueError(f"spatial padding must be equal on H and W, got {self.padding}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_equirect(x, self.padding[1])
        return F.max_pool3d(x, self.kernel_size, self.stride, (self.padding[0], 0, 0))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _pool3d_problem(pool: nn.MaxPool3d) -> str | None:
    """Why a spatially padded ``nn.MaxPool3d`` has no :class:`EquirectMaxPool3d` twin, or None."""
    padding = _triple(pool.padding)
    if padding[1] != padding[2]:
        return f"spatial padding {pool.padding} differs between H and W"
    if pool.ceil_mode or _triple(pool.dilation) != (1, 1, 1) or pool.return_indices:
        return "ceil_mode / dilation / return_indices are not supported"
    return None


def make_spherical(module: nn.Module, keep_planar: tuple[str, ...] = ()) -> nn.Module:
    """Make ``module`` (in place) work on the sphere: :func:`sphsal.nn.convert_to_spherical`, then
    spatially padded ``nn.MaxPool3d`` -> :class:`EquirectMaxPool3d` and ``BilinearUpsample.erp = True``.
    Layers named (as in ``named_modules``) in ``keep_planar`` are left as they are; a padded
    ``MaxPool3d`` with unequal H / W padding, ``ceil_mode``, dilation or ``return_indices`` stays planar
    with a warning (checked before anything is replaced). Returns ``module`` (its twin if ``module``
    itself is a layer that :func:`~sphsal.nn.convert_to_spherical` replaces)."""
    from sphsal.nn import convert_to_spherical

    kept = {id(m) for name, m in module.named_modules(remove_duplicate=False) if name in keep_planar}
    pools = {}
    for name, child in module.named_modules():
        if isinstance(child, nn.MaxPool3d) and any(_triple(child.padding)[1:]) and id(child) not in kept:
            problem = _pool3d_problem(child)
            if problem:
                warnings.warn(f"make_spherical: left layer {name!r} (MaxPool3d) planar: {problem}",
                              stacklevel=2)
            else:
                pools[id(child)] = EquirectMaxPool3d(child.kernel_size, child.stride, child.padding)
    module = convert_to_spherical(module, keep_planar=keep_planar)
    for parent in list(module.modules()):
        for name, child in list(parent._modules.items()):
            if id(child) in pools:
                setattr(parent, name, pools[id(child)])
            elif isinstance(child, BilinearUpsample) and id(child) not in kept:
                child.erp = True
    return module
