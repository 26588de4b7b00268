"""Row-wise neighbour tables of spherical convolution stencils on an ERP grid.

A rotation about the polar axis is a column shift of an equirectangular (ERP) image, so the stencil of
an output pixel depends only on its row: the table stores, for every output row ``i`` and kernel tap
``t`` (row-major over the planar ``k x k`` kernel, ``t = a * k + b``), ``P`` source samples
``(row, column offset, weight)``. The sample of output pixel ``(i, j)`` is input pixel
``(rows[i, t, p], (j * stride + cols[i, t, p]) mod W)``. Nearest sampling has ``P = 1`` (weight 1),
bilinear sampling ``P = 4``. Tables are ``[H_out, K, P]``, never ``[H, W, K]``.

Stencils (directions computed exactly on the sphere, then converted to ERP pixel coordinates with
:func:`sphsal.sphere.directions_to_pixels`):

* ``"cap"`` (GTSD spherical cap, the default): the centre plus, for ring ``r = 1 .. k//2``, ``8 r``
  points at geodesic distance ``r * dilation * pi / H`` (``H`` the *input* height) from the output
  pixel's direction, at bearings ``n * 360 / (8 r)`` degrees clockwise from north. They are assigned, in
  order, to the square ring of planar kernel positions starting at the top centre (row offset ``-r``,
  column offset 0) and going clockwise: bearing 0 (north, up) is ``weight[..., k//2 - r, k//2]`` and
  bearing 90 (east, to the right in the image, decreasing azimuth) is ``weight[..., k//2, k//2 + r]``.
  For ``k = 3`` at the equator with nearest sampling this is exactly the planar 3x3 neighbourhood. For
  ``k >= 5`` the ring corners lie on the circle of radius ``r`` pitches, i.e. at about
  ``(r / sqrt 2, r / sqrt 2)`` pixels, so equator rows are not the planar 5x5 stencil (GTSD's geometry).
* ``"gnomonic"`` (SphereNet): the planar ``k x k`` grid with spacing ``tan(dilation * pi / H)`` on the
  plane tangent to the sphere at the output pixel's direction (x to the east, y to the north), mapped
  back to the sphere by the inverse gnomonic projection.

Stride ``s``: the output is the ERP grid of size ``(H / s, W / s)``; its pixel centres (not input pixel
centres when ``s`` is even) are the stencil centres, and the stencil radius stays ``dilation`` *input*
pitches. Nearest sampling rounds half-way cases up (towards larger row and column indices), so for
``s = 2`` at the equator the centre tap is input pixel ``(2 i + 1, 2 j + 1)``.

Bilinear sampling takes the four surrounding pixel centres; a row above row 0 (below row ``H - 1``)
continues over the pole on the opposite meridian, as :func:`sphsal.sphere.pad_equirect` does: row
``-1`` is row 0 shifted by ``W / 2`` columns.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from sphsal._checks import check_integer
from sphsal.sphere import directions_to_pixels, pixels_to_directions

__all__ = ["NeighbourTable", "neighbour_table", "stencil_offsets", "stencil_pixel_coords", "STENCILS",
           "INTERPOLATIONS"]

STENCILS = ("cap", "gnomonic")
INTERPOLATIONS = ("nearest", "bilinear")

# Continuous coordinates within this distance of an integer are snapped to it, and nearest rounding
# is biased by it, so float64 noise never decides a rounding or creates a tiny bilinear weight.
_SNAP = 1e-7
# A tap whose |sin(elevation)| is within this of 1 lies on a pole (up to float64 noise, about 5e-8 rad).
_POLE = 1e-15


@dataclass(frozen=True, eq=False)
class NeighbourTable:
    """Neighbour table of one configuration (see the module docstring).

    Attributes:
        rows: ``(H_out, K, P)`` int64 source rows in ``[0, H)``.
        cols: ``(H_out, K, P)`` int64 column offsets in ``[-W/2, W/2)``, relative to ``j * stride``.
        weights: ``(H_out, K, P)`` float64 interpolation weights (each ``(i, t)`` sums to 1).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    weights: torch.Tensor
    height: int
    width: int
    kernel_size: int
    stride: int
    dilation: int
    stencil: str
    interpolation: str

    @property
    def h_out(self) -> int:
        return self.height // self.stride

    @property
    def w_out(self) -> int:
        return self.width // self.stride

    @property
    def num_taps(self) -> int:
        return self.kernel_size ** 2


def _ring_positions(r: int) -> list[tuple[int, int]]:
    """The ``8 r`` (row offset, column offset) cells of square ring ``r``, clockwise from the top
    centre ``(-r, 0)``."""
    cells = [(-r, c) for c in range(0, r + 1)]
    cells += [(a, r) for a in range(-r + 1, r + 1)]
    cells += [(r, c) for c in range(r - 1, -r - 1, -1)]
    cells += [(a, -r) for a in range(r - 1, -r - 1, -1)]
    cells += [(-r, c) for c in range(-r + 1, 0)]
    return cells


def stencil_offsets(kernel_size: int, stencil: str, dilation: int, height: int) -> tuple[torch.Tensor, ...]:
    """Tangent-frame description of a stencil, one entry per tap ``t = a * k + b``.

    Returns ``(distance, bearing)`` in radians, each ``(K,)`` float64: the geodesic distance from the
    stencil centre and the bearing clockwise from north (east = towards the right of the image).
    """
    k = kernel_size
    distance = torch.zeros(k * k, dtype=torch.float64)
    bearing = torch.zeros(k * k, dtype=torch.float64)
    pitch = dilation * math.pi / height
    if stencil == "cap":
        for r in range(1, k // 2 + 1):
            for n, (da, db) in enumerate(_ring_positions(r)):
                t = (da + k // 2) * k + (db + k // 2)
                distance[t] = r * pitch
                bearing[t] = n * 2 * math.pi / (8 * r)
    else:
        spacing = math.tan(pitch)
        offs = torch.arange(k, dtype=torch.float64) - k // 2
        a, b = torch.meshgrid(offs, offs, indexing="ij")
        east, north = (b * spacing).reshape(-1), (-a * spacing).reshape(-1)
        # Inverse gnomonic projection: a tangent-plane point at radius rho lies atan(rho) away.
        distance = torch.atan(torch.hypot(east, north))
        bearing = torch.atan2(east, north)
    return distance, bearing


def _destination(el0: torch.Tensor, az0: float, distance: torch.Tensor, bearing: torch.Tensor):
    """Direction reached from ``(az0, el0)`` along a great circle (radians; bearing clockwise from
    north, east = decreasing azimuth). A tap landing on a pole (reached along the meridian ``az0``)
    gets azimuth ``az0``: there ``atan2`` would return the angle of two rounding errors, so that e.g.
    the north and south pole taps of a stride-2 stencil sampled different columns."""
    sin_el = torch.sin(el0) * torch.cos(distance) + torch.cos(el0) * torch.sin(distance) * torch.cos(bearing)
    sin_el = sin_el.clamp(-1.0, 1.0)
    east = torch.atan2(torch.sin(bearing) * torch.sin(distance) * torch.cos(el0),
                       torch.cos(distance) - torch.sin(el0) * sin_el)
    east = torch.where(1 - sin_el.abs() < _POLE, 0.0, east)
    return az0 - east, torch.asin(sin_el)


def _snap(v: torch.Tensor) -> torch.Tensor:
    near = torch.round(v)
    return torch.where((v - near).abs() < _SNAP, near, v)


def _fold_over_poles(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int):
    """Rows -1 and H (beyond a pole) are rows 0 and H-1 on the opposite meridian."""
    beyond = (rows < 0) | (rows >= height)
    rows = torch.where(rows < 0, -1 - rows, rows)
    rows = torch.where(rows >= height, 2 * height - 1 - rows, rows)
    return rows, torch.where(beyond, cols + width // 2, cols)


def validate_config(height: int, width: int, kernel_size: int, stride: int, dilation: int,
                    stencil: str, interpolation: str) -> None:
    """Raise ``ValueError`` naming the argument that is not supported."""
    if stencil not in STENCILS:
        raise ValueError(f"stencil must be one of {STENCILS}, got {stencil!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    stride = check_integer(stride, "stride", whole_floats=True)
    check_integer(dilation, "dilation", whole_floats=True)
    if width % 2:
        raise ValueError(f"the ERP width W must be even to wrap over the poles, got W={width}")
    if height % stride or width % stride:
        raise ValueError(f"the ERP size {height}x{width} must be divisible by stride={stride}")


def stencil_pixel_coords(height: int, width: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                         stencil: str = "cap") -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous ERP pixel coordinates ``(row, col)``, each ``(H_out, K)`` float64, of the stencil taps
    of output column 0 (``col`` relative to it, in ``[-W/2, W/2)``; add ``j * stride`` for column ``j``).
    Values within 1e-7 of an integer are snapped to it."""
    h_out, w_out = height // stride, width // stride
    distance, bearing = stencil_offsets(kernel_size, stencil, dilation, height)
    out_rows = torch.arange(h_out, dtype=torch.float64)[:, None]
    az0, el0 = pixels_to_directions(out_rows, torch.zeros(1, dtype=torch.float64), h_out, w_out)
    az, el = _destination(el0, float(az0.reshape(-1)[0]), distance[None, :], bearing[None, :])
    row, col = directions_to_pixels(az, el, height, width)
    return _snap(row), _snap(torch.remainder(col + width / 2, width) - width / 2)


@functools.lru_cache(maxsize=128)
def neighbour_table(height: int, width: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                    stencil: str = "cap", interpolation: str = "nearest") -> NeighbourTable:
    """The cached :class:`NeighbourTable` of an ``height x width`` ERP input (CPU tensors). Built with
    ``torch.func`` transforms disabled: inside ``jvp`` or ``vmap`` its tensors would otherwise be the
    transform's wrappers, cached and later read (without storage) outside it."""
    validate_config(height, width, kernel_size, stride, dilation, stencil, interpolation)
    with torch._C._DisableFuncTorch():
        return _build_table(height, width, kernel_size, stride, dilation, stencil, interpolation)


def _build_table(height: int, width: int, kernel_size: int, stride: int, dilation: int, stencil: str,
                 interpolation: str) -> NeighbourTable:
    row, col = stencil_pixel_coords(height, width, kernel_size, stride, dilation, stencil)
    if interpolation == "nearest":
        rows = torch.floor(row + 0.5 + _SNAP).long().clamp(0, height - 1)[..., None]
        cols = torch.floor(col + 0.5 + _SNAP).long()[..., None]
        weights = torch.ones_like(rows, dtype=torch.float64)
    else:
        r0, c0 = torch.floor(row), torch.floor(col)
        fr, fc = row - r0, col - c0
        rows = torch.stack((r0, r0, r0 + 1, r0 + 1), dim=-1).long()
        cols = torch.stack((c0, c0 + 1, c0, c0 + 1), dim=-1).long()
        weights = torch.stack(((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc), dim=-1)
        rows, cols = _fold_over_poles(rows, cols, height, width)
    cols = torch.remainder(cols + width // 2, width) - width // 2
    return NeighbourTable(rows.contiguous(), cols.contiguous(), weights.contiguous(), height, width,
                          kernel_size, stride, dilation, stencil, interpolation)


def table_for(x: torch.Tensor, kernel_size: int, stride: int, dilation: int, interpolation: str,
              stencil: str) -> NeighbourTable:
    """The cached :class:`NeighbourTable` of ``x``'s ERP size (``x``: ``(..., H, W)``)."""
    h, w = x.shape[-2:]
    return neighbour_table(int(h), int(w), int(kernel_size), int(stride), int(dilation), stencil,
                           interpolation)
