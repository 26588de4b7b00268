"""Ground-truth maps from fixations on the sphere: binary fixation maps and Gaussian density maps.

Directions are ``(az, el)`` in radians (``sphsal.sphere`` conventions), given as an ``(N, 2)`` array;
elevations must lie in ``[-pi/2, pi/2]``, else ``ValueError``; any azimuth wraps modulo ``2pi``
(:func:`sphsal.metrics._inputs.check_directions`).
The density is a Gaussian of the great-circle distance, ``exp(-d^2 / (2 sigma^2))``, summed over the
fixations and truncated at ``d <= truncate * sigma``; it is exact everywhere on the sphere (across the
+-180 deg seam and around the poles, where it is a round cap and not an ERP ellipse).
"""

from __future__ import annotations

import decimal
import functools
import math
import struct

import numba
import numpy as np
import torch
from numba import types
from numba.extending import overload

from sphsal._checks import check_number
from sphsal._numba_parallel import parallel_kernel
from sphsal.metrics._inputs import check_directions, direction_pixel_index
from sphsal.metrics._kernels import _bits_to_f64
from sphsal.sphere import (
    _check_hw,
    check_float_dtype,
    equirect_directions,
    great_circle_distance,
    solid_angle_weights,
)

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
    (``(az, el)`` radians, checked as in :func:`density_from_fixations`; the column wraps across the
    seam, the row is clamped at the poles)."""
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
        directions: ``(N, 2)`` fixation directions ``(az, el)`` in radians (tensor or array), ``N >= 1``;
            elevation in ``[-pi/2, pi/2]``, any azimuth (wrapped).
        h, w: ERP size.
        sigma_deg: Gaussian sigma in degrees (see :data:`SIGMA` for the datasets' values).
        norm: ``"sphere"`` (default): ``sum(density * solid_angle) == 1``, a density in 1/steradian that
            integrates to 1 over the sphere; ``"sum"``: ``sum(density) == 1`` (a plain probability per
            pixel, as the planar metrics expect).
        truncate: the Gaussian is cut at a great-circle distance of ``truncate * sigma`` (at most pi).
            At least one pixel centre must lie within it, else ``ValueError`` (there is no density).
        backend: ``"numba"`` (default; visits, for each fixation, only the pixels within the cap:
            the rows of its elevation band and, on each row, the columns within the cap's longitude
            half-width, every longitude near a pole; the loop over those columns is vectorised, with
            polynomials for ``d^2`` and the exponential accurate to about 1e-16) or ``"torch"`` (the
            reference: the exact distance from every pixel to every fixation, in chunks of fixations).
        dtype: floating dtype of the result (the sum is accumulated in float64).
    """
    _check_hw(h, w)
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    sigma_deg = check_number(sigma_deg, "sigma_deg")
    truncate = check_number(truncate, "truncate", finite=False)
    check_float_dtype(dtype)
    d = check_directions(directions, "directions")
    if d.shape[0] == 0:
        raise ValueError("directions is empty: a density needs at least one fixation")
    sigma = math.radians(sigma_deg)
    radius = min(truncate * sigma, math.pi)
    if backend == "numba":
        total = torch.from_numpy(_density_numba(d.cpu().numpy(), h, w, sigma, radius)).to(d.device)
    else:
        total = _density_torch(d, h, w, sigma, radius)
    if not bool((total > 0).any()):
        raise ValueError(f"the density is zero at every pixel centre of the {h}x{w} ERP grid: none lies "
                         f"within truncate * sigma = {math.degrees(radius):.3g} deg of a fixation (or the "
                         "Gaussian underflows there); use a larger sigma_deg, truncate or resolution")
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
                       radius, 1.0 / (2 * sigma * sigma), _squared_distance_series(radius), out)
    return out


_SERIES_TERMS = 24


def _squared_distance_series(radius: float) -> np.ndarray | None:
    """:func:`_series_coefficients` as an array for the kernel (or ``None``)."""
    coefs = _series_coefficients(radius)
    return None if coefs is None else np.array(coefs)


@functools.lru_cache(maxsize=64)
def _series_coefficients(radius: float) -> tuple[float, ...] | None:
    """Coefficients ``a_1 .. a_n`` (``n = _SERIES_TERMS``, an even number) of
    ``d^2 = (2 asin(sqrt(hav)))^2 = sum a_k hav^k``, ``a_k = 2 4^k / (k^2 C(2k, k))`` (the series of
    ``asin^2``), or ``None`` when its remainder exceeds ``1e-17 d^2`` for distances up to ``radius``
    (caps wider than about 58 degrees)."""
    hav_r = math.sin(min(radius, math.pi) / 2) ** 2

    def coef(k):
        return 2 * 4**k / (k * k * math.comb(2 * k, k))

    n = _SERIES_TERMS
    tail = sum(coef(k) * hav_r**k for k in range(n + 1, n + 400))
    if tail > 1e-17 * 4 * hav_r:
        return None
    return tuple(coef(k) for k in range(1, n + 1))


@parallel_kernel(cache=True, fastmath={"contract"}, error_model="numpy")
def _cap_gaussian_rows(row_el, sin_half_col, cos_half_col, fix_az, fix_el, radius, inv_two_var, series, out):
    """Add ``exp(-d^2 inv_two_var)`` for every pixel within ``radius`` of every fixation into ``out``.

    Rows run in parallel (each writes only its own row). ``d`` is the haversine great-circle distance,
    ``d^2 = (2 asin(sqrt(hav)))^2``, ``hav = sin^2(del/2) + cos el cos el_f sin^2(daz/2)``, with
    ``sin(daz/2)`` from the half-angle tables of the column and fixation azimuths (no cancellation for
    tiny distances). On each row the cap covers one or two runs of columns (two across the seam), and
    the loop over a run vectorises: ``d^2`` is the polynomial ``series`` in ``hav`` (or, when ``None``,
    from ``math.asin``) and the exponential is :func:`_exp_neg`.
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
            # the columns [j0, j1] (fewer than w) wrapped into [0, w): one run, or two across the seam
            shift = (j0 // w) * w
            j0, j1 = j0 - shift, j1 - shift
            row = out[i]
            b = min(j1, w - 1) + 1
            _add_cap_run(row[j0:b], sin_half_col[j0:b], cos_half_col[j0:b], sin_half_f, cos_half_f, hav_lat,
                         cos_prod, radius, inv_two_var, series)
            if j1 >= w:
                b = j1 - w + 1
                _add_cap_run(row[:b], sin_half_col[:b], cos_half_col[:b], sin_half_f, cos_half_f, hav_lat,
                             cos_prod, radius, inv_two_var, series)


@numba.njit(inline="always", fastmath={"contract"}, error_model="numpy")
def _add_cap_run(row, sin_half_col, cos_half_col, sin_half_f, cos_half_f, hav_lat, cos_prod, radius,
                 inv_two_var, series):
    """Add one fixation's Gaussian to a run of columns of a row (all arrays are views of that run, so
    the indices are known to be non-negative and the loop vectorises)."""
    for j in range(row.shape[0]):
        s = sin_half_col[j] * cos_half_f - cos_half_col[j] * sin_half_f
        hav = min(hav_lat + cos_prod * s * s, 1.0)
        d2 = _squared_distance(hav, series)
        g = _exp_neg(-d2 * inv_two_var)
        row[j] += g if d2 <= radius * radius else 0.0


def _squared_distance(hav, series):
    """``(2 asin(sqrt(hav)))^2``: the polynomial ``series`` in ``hav`` (Horner, unrolled), or
    ``math.asin`` when ``series`` is ``None`` (resolved at compile time)."""


@overload(_squared_distance)
def _squared_distance_impl(hav, series):
    if isinstance(series, types.NoneType):
        def with_asin(hav, series):
            d = 2 * math.asin(math.sqrt(hav))
            return d * d
        return with_asin

    def with_series(hav, series):
        # Horner in hav^2 on the even and the odd coefficients: two independent chains (a constant trip
        # count, unrolled)
        h2 = hav * hav
        even, odd = series[_SERIES_TERMS - 2], series[_SERIES_TERMS - 1]
        for k in range(_SERIES_TERMS // 2 - 2, -1, -1):
            even = even * h2 + series[2 * k]
            odd = odd * h2 + series[2 * k + 1]
        return hav * (even + hav * odd)

    return with_series


_INV_LN2 = 1 / math.log(2)
_LN2_HI = struct.unpack("<d", struct.pack("<Q", struct.unpack("<Q", struct.pack("<d", math.log(2)))[0]
                                          & ~0xFFFFFFFF))[0]  # ln 2 with 21 significant bits
_LN2_LO = float(decimal.Decimal("0.693147180559945309417232121458176568075500134") - decimal.Decimal(_LN2_HI))
_EXP_TAYLOR = np.array([1 / math.factorial(n) for n in range(14)])


@numba.njit(inline="always", fastmath={"contract"}, error_model="numpy")
def _exp_neg(x):
    """``exp(x)`` for ``x <= 0`` without a library call (so loops vectorise); 0 below -708 (where the
    result would not be a normal float64). ``x = k ln 2 + r``, ``|r| <= ln 2 / 2``, with ``k ln 2`` in
    two parts (the first exact for the ``k`` that occur); ``exp(r)`` by its Taylor series to ``r^13``
    (remainder below 5e-18 relative; Horner in ``r^2`` on the even and the odd terms); ``2^k`` from the
    exponent bits."""
    k = np.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    even, odd = _EXP_TAYLOR[12], _EXP_TAYLOR[13]
    for n in range(5, -1, -1):
        even = even * r2 + _EXP_TAYLOR[2 * n]
        odd = odd * r2 + _EXP_TAYLOR[2 * n + 1]
    scale = _bits_to_f64((np.int64(np.int32(max(k, -1022.0))) + 1023) << 52)
    return (even + r * odd) * scale if x >= -708.0 else 0.0
