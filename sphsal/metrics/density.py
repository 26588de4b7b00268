"""Ground-truth maps from fixations on the sphere: binary fixation maps and Gaussian density maps.

Directions are ``(az, el)`` in radians (``sphsal.sphere`` conventions), given as an ``(N, 2)`` array.
The density is a Gaussian of the great-circle distance, ``exp(-d^2 / (2 sigma^2))``, summed over the
fixations and truncated at ``d <= truncate * sigma``; it is exact everywhere on the sphere (across the
+-180 deg seam and around the poles, where it is a round cap and not an ERP ellipse).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from sphsal.metrics._inputs import check_finite, direction_pixel_index
from sphsal.sphere import _check_hw, equirect_directions, great_circle_distance, solid_angle_weights

__all__ = ["SIGMA", "fixation_map", "density_from_fixations"]

#: Gaussian sigma in degrees used to build the ground truth of the 360-degree datasets.
SIGMA: dict[str, float] = {
    "salient360-headeye": 2.0,  # Salient360! head+eye fixations
    "salient360-head": 3.34,  # Salient360! head-only
    "pvs-hm": 7.0,  # PVS-HM (Xu et al., TPAMI)
    "eccv18": 9.0,  # Zhang et al., ECCV 2018
}

_NORMS = ("sphere", "sum")
_BACKENDS = ("numba", "torch")


def fixation_map(directions, h: int, w: int) -> torch.Tensor:
    """Binary ``(H, W)`` bool map with ``True`` at the nearest ERP pixel of each direction ``(N, 2)``
    (``(az, el)`` radians; the column wraps across the seam, the row is clamped at the poles)."""
    _check_hw(h, w)
    idx = direction_pixel_index(directions, h, w)
    out = torch.zeros(h * w, dtype=torch.bool, device=idx.device)
    out[idx] = True
    return out.view(h, w)


def density_from_fixations(directions, h: int, w: int, sigma_deg: float, *, norm: str = "sphere",
                           truncate: float = 4.0, backend: str = "numba",
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Saliency density ``(H, W)`` from fixations: a Gaussian of the great-circle distance on the sphere.

    Args:
        directions: ``(N, 2)`` fixation directions ``(az, el)`` in radians (tensor or array), ``N >= 1``.
        h, w: ERP size.
        sigma_deg: Gaussian sigma in degrees (see :data:`SIGMA` for the datasets' values).
        norm: ``"sphere"`` (default): ``sum(density * solid_angle) == 1``, a density in 1/steradian that
            integrates to 1 over the sphere; ``"sum"``: ``sum(density) == 1`` (a plain probability per
            pixel, as the planar metrics expect).
        truncate: the Gaussian is cut at a great-circle distance of ``truncate * sigma`` (at most pi).
        backend: ``"numba"`` (default; visits, for each fixation, only the pixels within the cap:
            the rows of its elevation band and, on each row, the columns within the cap's longitude
            half-width, every longitude near a pole) or ``"torch"`` (the reference: the exact distance
            from every pixel to every fixation, in chunks of fixations).
        dtype: dtype of the result (the sum is accumulated in float64).
    """
    _check_hw(h, w)
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if not sigma_deg > 0 or not math.isfinite(sigma_deg):
        raise ValueError(f"sigma_deg must be a positive number of degrees, got {sigma_deg!r}")
    if not truncate > 0:
        raise ValueError(f"truncate must be positive, got {truncate!r}")
    d = directions if isinstance(directions, torch.Tensor) else torch.as_tensor(np.asarray(directions))
    d = d.to(torch.float64)
    if d.dim() != 2 or d.shape[1] != 2:
        raise ValueError(f"directions must be (N, 2) (azimuth, elevation) in radians, got {tuple(d.shape)}")
    if d.shape[0] == 0:
        raise ValueError("directions is empty: a density needs at least one fixation")
    check_finite(d, "directions")
    sigma = math.radians(sigma_deg)
    radius = min(truncate * sigma, math.pi)
    if backend == "numba":
        total = torch.from_numpy(_density_numba(d.cpu().numpy(), h, w, sigma, radius)).to(d.device)
    else:
        total = _density_torch(d, h, w, sigma, radius)
    if norm == "sphere":
        total = total / (total * solid_angle_weights(h, w, dtype=torch.float64, device=total.device)).sum()
    else:
        total = total / total.sum()
    return total.to(dtype)


def _density_torch(d: torch.Tensor, h: int, w: int, sigma: float, radius: float,
                   chunk: int = 64) -> torch.Tensor:
    """Reference: truncated Gaussian of :func:`sphsal.sphere.great_circle_distance` from every pixel to
    every fixation, summed (float64 ``(H, W)``), ``chunk`` fixations at a time."""
    az, el = equirect_directions(h, w, dtype=torch.float64, device=d.device)
    total = torch.zeros(h, w, dtype=torch.float64, device=d.device)
    for start in range(0, d.shape[0], chunk):
        part = d[start:start + chunk]
        dist = great_circle_distance(az, el, part[:, 0, None, None], part[:, 1, None, None])
        g = torch.exp(-(dist * dist) / (2 * sigma * sigma))
        total += torch.where(dist <= radius, g, 0.0).sum(dim=0)
    return total


def _density_numba(d: np.ndarray, h: int, w: int, sigma: float, radius: float) -> np.ndarray:
    """Cap-restricted Gaussian sum (float64 ``(H, W)``); the fixations are sorted by elevation so each
    row finds its band by binary search."""
    order = np.argsort(d[:, 1], kind="stable")
    fix_az = np.ascontiguousarray(d[order, 0])
    fix_el = np.ascontiguousarray(d[order, 1])
    col_az = (0.5 - (np.arange(w) + 0.5) / w) * (2 * math.pi)
    row_el = (0.5 - (np.arange(h) + 0.5) / h) * math.pi
    out = np.zeros((h, w), dtype=np.float64)
    _cap_gaussian_rows(row_el, np.sin(col_az / 2), np.cos(col_az / 2), fix_az, fix_el,
                       radius, 1.0 / (2 * sigma * sigma), out)
    return out


@numba.njit(parallel=True, cache=True)
def _cap_gaussian_rows(row_el, sin_half_col, cos_half_col, fix_az, fix_el, radius, inv_two_var, out):
    """Add ``exp(-d^2 inv_two_var)`` for every pixel within ``radius`` of every fixation into ``out``.

    Rows run in parallel (each writes only its own row). ``d`` is the haversine great-circle distance
    ``2 asin(sqrt(sin^2(del/2) + cos el cos el_f sin^2(daz/2)))``, with ``sin(daz/2)`` from the
    half-angle tables of the column and fixation azimuths (no cancellation for tiny distances).
    """
    h, w = out.shape
    cos_r = math.cos(radius)
    col_pitch = 2 * math.pi / w
    margin = 1e-9
    for i in numba.prange(h):
        el = row_el[i]
        sin_el, cos_el = math.sin(el), math.cos(el)
        lo = np.searchsorted(fix_el, el - radius - margin)
        hi = np.searchsorted(fix_el, el + radius + margin, side="right")
        for f in range(lo, hi):
            el_f, az_f = fix_el[f], fix_az[f]
            cos_prod = cos_el * math.cos(el_f)
            sin_dlat = math.sin((el - el_f) / 2)
            hav_lat = sin_dlat * sin_dlat
            sin_half_f, cos_half_f = math.sin(az_f / 2), math.cos(az_f / 2)
            # Longitude half-width of the cap on this row: cos(daz) >= (cos r - sin el sin el_f) / cos_prod;
            # the whole row when the cap holds a pole (c <= -1) or the half-width covers every column.
            j0, j1 = 0, w - 1
            if cos_prod > 0:
                c = (cos_r - sin_el * math.sin(el_f)) / cos_prod
                if c > -1:
                    half = math.acos(min(c, 1.0)) / col_pitch + 1  # one column of safety margin
                    centre = (0.5 - az_f / (2 * math.pi)) * w - 0.5  # continuous column of the fixation
                    if 2 * half + 1 < w:
                        j0 = int(math.ceil(centre - half))
                        j1 = int(math.floor(centre + half))
            for jj in range(j0, j1 + 1):
                j = jj % w
                s = sin_half_col[j] * cos_half_f - cos_half_col[j] * sin_half_f
                hav = min(hav_lat + cos_prod * s * s, 1.0)
                dist = 2 * math.asin(math.sqrt(hav))
                if dist <= radius:
                    out[i, j] += math.exp(-dist * dist * inv_two_var)
