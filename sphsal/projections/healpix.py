"""Equirectangular <-> HEALPix, with healpy's pixel geometry.

healpy's colatitude ``theta`` and longitude ``phi`` (counter-clockwise from the x axis, seen from
above) map onto sphsal directions as ``az = phi`` (wrapped into ``(-pi, pi]``) and
``el = pi/2 - theta``: healpy's x axis is the sphsal front, its y axis the left and its z axis up, so
``healpy.pix2vec`` and :func:`sphsal.sphere.directions_to_vectors` agree. Maps are ``(B, C, Npix)``
with ``Npix = 12 nside^2``, NESTED ordering by default (``nest=False``: RING).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sphsal.projections._grids import cached_plan, check_erp, check_mode, check_size, erp_plan, gather_plan
from sphsal.sphere import equirect_directions

__all__ = ["healpix_directions", "equirect_to_healpix", "healpix_to_equirect"]


def _check_nside(nside, nest: bool) -> int:
    import healpy

    nside = check_size(nside, "nside")
    if not healpy.isnsideok(nside, nest=nest):
        need = "a power of 2 (NESTED ordering)" if nest else "a positive integer"
        raise ValueError(f"nside must be {need}, got {nside}")
    return nside


def healpix_directions(nside: int, nest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions ``(az, el)`` (float64 radians, shape ``(Npix,)``) of the HEALPix pixel centres."""
    import healpy

    nside = _check_nside(nside, nest)
    theta, phi = healpy.pix2ang(nside, np.arange(12 * nside * nside), nest=nest)
    az = torch.from_numpy(phi)
    az = math.pi - torch.remainder(math.pi - az, 2 * math.pi)
    return az, math.pi / 2 - torch.from_numpy(theta)


@cached_plan
def _to_healpix_plan(nside: int, nest: bool, h: int, w: int, mode: str):
    az, el = healpix_directions(nside, nest)
    return erp_plan(az, el, h, w, mode)


@cached_plan
def _from_healpix_plan(nside: int, nest: bool, h: int, w: int, mode: str):
    import healpy

    az, el = equirect_directions(h, w, dtype=torch.float64)
    theta = (math.pi / 2 - el).reshape(-1).numpy()
    phi = torch.remainder(az, 2 * math.pi).reshape(-1).numpy()
    if mode == "nearest":
        pix = healpy.ang2pix(nside, theta, phi, nest=nest)
        return gather_plan((h, w), torch.from_numpy(pix)[None], None, mode)
    pix, weights = healpy.get_interp_weights(nside, theta, phi, nest=nest)
    return gather_plan((h, w), torch.from_numpy(pix), torch.from_numpy(weights), mode)


def equirect_to_healpix(x: torch.Tensor, nside: int, nest: bool = True, mode: str = "bilinear"):
    """Sample ERP images at the HEALPix pixel centres.

    Args:
        x: ``(B, C, H, W)`` ERP batch (``W`` even), any floating dtype and device.
        nside: HEALPix resolution (a power of 2 when ``nest``).
        nest: NESTED (default) or RING pixel ordering.
        mode: ``"bilinear"`` or ``"nearest"`` ERP sampling (wraps across the seam and the poles).

    Returns:
        ``(B, C, 12 nside^2)``, differentiable with respect to ``x``; the plan is cached.
    """
    check_erp(x)
    check_mode(mode)
    nside = _check_nside(nside, nest)
    h, w = x.shape[-2:]
    return _to_healpix_plan.sample(x, nside, bool(nest), h, w, mode, out_shape=(12 * nside * nside,))


def healpix_to_equirect(x: torch.Tensor, h: int, w: int, nest: bool = True, mode: str = "bilinear"):
    """Resample HEALPix maps onto an ``h x w`` ERP grid.

    Args:
        x: ``(B, C, Npix)`` maps, ``Npix = 12 nside^2``.
        h, w: ERP size.
        nest: ordering of ``x``.
        mode: ``"nearest"`` (``healpy.ang2pix``) or ``"bilinear"`` (``healpy.get_interp_weights``: four
            pixels and weights per ERP pixel centre).

    Returns:
        ``(B, C, h, w)``, differentiable with respect to ``x``; the plan is cached.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be floating HEALPix maps (B, C, Npix), got {shape}")
    check_mode(mode)
    h, w = check_size(h, "h"), check_size(w, "w")
    npix = x.shape[-1]
    nside = math.isqrt(npix // 12)
    if nside < 1 or 12 * nside * nside != npix:
        raise ValueError(f"x has {npix} pixels, which is not 12 nside^2 for any nside")
    nside = _check_nside(nside, nest)
    return _from_healpix_plan.sample(x, nside, bool(nest), h, w, mode, out_shape=(h, w))
