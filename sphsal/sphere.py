"""Sphere conventions: the one source of truth for directions, ERP pixels and rotations.

Conventions (radians everywhere):

* A direction is an azimuth ``az`` and an elevation ``el``. ``az = 0`` is the front, positive to
  the LEFT (counter-clockwise seen from above, the ambisonic convention); ``el`` is positive UP.
* Unit vectors: x front, y left, z up, ``(cos el cos az, cos el sin az, sin el)``.
* Equirectangular (ERP) images are tensors ``(..., H, W)``. Normalised coordinates
  ``u = 0.5 - az / 2pi`` (mod 1) and ``v = 0.5 - el / pi``; the front is the image centre, row 0 the
  north (top). Pixel centres: column ``j`` at ``u = (j + 0.5) / W``, row ``i`` at ``v = (i + 0.5) / H``.
* Continuous pixel coordinates (``directions_to_pixels``) are measured so that the centre of pixel
  ``(i, j)`` is at ``(row, col) = (i, j)``; the image edges are at -0.5 and H - 0.5 / W - 0.5.
* Rotations act on the content: ``rotate_equirect(x, yaw=a)`` moves what was seen at azimuth ``az``
  to azimuth ``az + a`` (to the left). The matrix is ``Rz(yaw) @ Ry(-pitch) @ Rx(roll)``: positive
  pitch lifts the front towards the zenith, positive roll turns the left side up.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sphsal._checks import check_integer

__all__ = [
    "equirect_directions",
    "directions_to_vectors",
    "vectors_to_directions",
    "directions_to_pixels",
    "pixels_to_directions",
    "great_circle_distance",
    "solid_angle_weights",
    "rotation_matrix",
    "rotate_directions",
    "rotate_equirect",
    "pad_equirect",
    "sample_equirect",
    "resize_equirect",
]


def _as_tensor(x, dtype=None, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype or (x.dtype if x.is_floating_point() else torch.get_default_dtype()),
                    device=device or x.device)
    return torch.as_tensor(x, dtype=dtype or torch.get_default_dtype(), device=device)


def sampling_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype ``grid_sample`` runs in for inputs of ``dtype``: float32 for float16 and bfloat16 (whose
    CPU kernels return wrong values or NaN, and whose grid coordinates would misplace samples by
    pixels on large images), else ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_hw(h: int, w: int) -> None:
    """Raise ``ValueError`` unless the ERP size ``h``, ``w`` are positive integers (bool excluded)."""
    try:
        ok = not isinstance(h, bool) and not isinstance(w, bool) and int(h) == h >= 1 and int(w) == w >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"ERP size must be positive integers, got h={h!r}, w={w!r}")


def check_angle(value, name: str) -> float:
    """``value`` as a finite angle in radians (a Python ``float``); ``ValueError`` naming ``name`` if it
    is not a number or not finite."""
    try:
        angle = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a finite angle in radians, got {value!r}") from None
    if not math.isfinite(angle):
        raise ValueError(f"{name} must be a finite angle in radians, got {value!r}")
    return angle


def check_float_dtype(dtype, name: str = "dtype") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``dtype`` is ``None`` (the default dtype) or a floating
    torch dtype: directions and weights would be truncated in an integer dtype."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"{name} must be a floating torch dtype (e.g. torch.float32), got {dtype!r}")


def equirect_directions(h: int, w: int, *, dtype=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions of the pixel centres of an ``h x w`` ERP grid.

    Returns ``(az, el)``, each of shape ``(H, W)``, in radians. ``az`` decreases from
    ``pi - pi/W`` at column 0 to ``-pi + pi/W`` at the last column; ``el`` decreases from
    ``pi/2 - pi/(2H)`` at row 0 (north) to ``-pi/2 + pi/(2H)`` at the bottom row. ``dtype`` must be a
    floating dtype (default: torch's default dtype).
    """
    _check_hw(h, w)
    check_float_dtype(dtype)
    dtype = dtype or torch.get_default_dtype()
    cols = torch.arange(w, dtype=torch.float64, device=device)
    rows = torch.arange(h, dtype=torch.float64, device=device)
    az = (0.5 - (cols + 0.5) / w) * (2 * math.pi)
    el = (0.5 - (rows + 0.5) / h) * math.pi
    el_grid, az_grid = torch.meshgrid(el, az, indexing="ij")
    return az_grid.to(dtype), el_grid.to(dtype)


def directions_to_vectors(az, el) -> torch.Tensor:
    """Unit vectors ``(..., 3)`` (x front, y left, z up) of directions ``az``, ``el`` (radians)."""
    az = _as_tensor(az)
    el = _as_tensor(el, dtype=az.dtype, device=az.device)
    cos_el = torch.cos(el)
    return torch.stack((cos_el * torch.cos(az), cos_el * torch.sin(az), torch.sin(el)), dim=-1)


def vectors_to_directions(v) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions ``(az, el)`` in radians of vectors ``(..., 3)`` (need not be unit length).

    ``az`` is in ``(-pi, pi]`` and ``el`` in ``[-pi/2, pi/2]``.
    """
    v = _as_tensor(v)
    if v.shape[-1] != 3:
        raise ValueError(f"vectors must have a last dimension of 3, got shape {tuple(v.shape)}")
    x, y, z = v.unbind(-1)
    az = torch.atan2(y, x)
    el = torch.atan2(z, torch.hypot(x, y))
    return az, el


def directions_to_pixels(az, el, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous ERP pixel coordinates ``(row, col)`` of directions (radians).

    Pixel ``(i, j)`` has its centre at ``(i, j)``. ``col`` is wrapped into ``[-0.5, W - 0.5)``;
    ``row`` lies in ``[-0.5, H - 0.5]`` (-0.5 is the north pole).
    """
    _check_hw(h, w)
    az = _as_tensor(az)
    el = _as_tensor(el, dtype=az.dtype, device=az.device)
    u = torch.remainder(0.5 - az / (2 * math.pi), 1.0)
    v = 0.5 - el / math.pi
    col = u * w - 0.5
    row = v * h - 0.5
    return row, col


def pixels_to_directions(row, col, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions ``(az, el)`` (radians) of continuous ERP pixel coordinates; inverse of
    :func:`directions_to_pixels` (``az`` wrapped into ``(-pi, pi]``)."""
    _check_hw(h, w)
    row = _as_tensor(row)
    col = _as_tensor(col, dtype=row.dtype, device=row.device)
    az = (0.5 - (col + 0.5) / w) * (2 * math.pi)
    az = math.pi - torch.remainder(math.pi - az, 2 * math.pi)
    el = (0.5 - (row + 0.5) / h) * math.pi
    return az, el


def great_circle_distance(az1, el1, az2, el2) -> torch.Tensor:
    """Angle in radians between two directions (broadcasting), accurate for tiny and antipodal
    separations (Vincenty's formula)."""
    az1 = _as_tensor(az1)
    el1, az2, el2 = (_as_tensor(t, dtype=az1.dtype, device=az1.device) for t in (el1, az2, el2))
    daz = az2 - az1
    s1, c1 = torch.sin(el1), torch.cos(el1)
    s2, c2 = torch.sin(el2), torch.cos(el2)
    num = torch.hypot(c2 * torch.sin(daz), c1 * s2 - s1 * c2 * torch.cos(daz))
    den = s1 * s2 + c1 * c2 * torch.cos(daz)
    return torch.atan2(num, den)


def solid_angle_weights(h: int, w: int, *, dtype=None, device=None) -> torch.Tensor:
    """Solid angle in steradians of every ERP pixel, shape ``(H, W)``; the sum is exactly 4pi.

    Row ``i`` spans elevations ``[el_i - pi/2H, el_i + pi/2H]``, so its pixels subtend
    ``(2pi / W) * (sin(el_top) - sin(el_bottom))``. ``dtype`` must be a floating dtype (default: torch's
    default dtype).
    """
    _check_hw(h, w)
    check_float_dtype(dtype)
    dtype = dtype or torch.get_default_dtype()
    edges = (0.5 - torch.arange(h + 1, dtype=torch.float64, device=device) / h) * math.pi
    band = torch.sin(edges[:-1]) - torch.sin(edges[1:])
    return (band[:, None] * (2 * math.pi / w)).expand(h, w).to(dtype).contiguous()


def rotation_matrix(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, *,
                    dtype=torch.float64, device=None) -> torch.Tensor:
    """The 3x3 matrix ``Rz(yaw) @ Ry(-pitch) @ Rx(roll)`` acting on (x front, y left, z up) vectors.

    Positive yaw turns the front to the left, positive pitch lifts the front up, positive roll
    turns the left side up. Angles in radians (finite; ``ValueError`` naming the angle otherwise).
    """
    yaw, pitch, roll = check_angle(yaw, "yaw"), check_angle(pitch, "pitch"), check_angle(roll, "roll")
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = torch.tensor([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    # Ry(-pitch): x (front) goes to +z (up) for positive pitch.
    ry = torch.tensor([[cp, 0.0, -sp], [0.0, 1.0, 0.0], [sp, 0.0, cp]], dtype=torch.float64)
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]], dtype=torch.float64)
    return (rz @ ry @ rx).to(dtype=dtype, device=device)


def rotate_directions(az, el, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0):
    """Rotate directions (radians) by :func:`rotation_matrix`; returns ``(az, el)``."""
    v = directions_to_vectors(az, el)
    r = rotation_matrix(yaw, pitch, roll, dtype=v.dtype, device=v.device)
    return vectors_to_directions(v @ r.T)


def pad_equirect(x: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Pad an ERP tensor ``(..., H, W)`` by ``pad`` pixels on every side with its true spherical
    neighbours: columns wrap across the +-180 deg seam, and rows beyond a pole continue on the
    opposite meridian (row ``-1 - k`` is row ``k`` shifted by ``W/2`` columns). ``W`` must be even and
    ``pad`` a non-negative integer no larger than ``H`` or ``W``.

    Returns ``(..., H + 2 pad, W + 2 pad)``; no value comes from zero padding.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be an ERP tensor (..., H, W), got {shape}")
    pad = check_integer(pad, "pad", minimum=0, unit="pixels")
    h, w = x.shape[-2:]
    if w % 2:
        raise ValueError(f"pad_equirect needs an even ERP width to wrap over the poles, got W={w}")
    if pad > h or pad > w:
        raise ValueError(f"pad={pad} is larger than the ERP size {h}x{w}")
    if pad == 0:
        return x
    top = torch.roll(x[..., :pad, :], w // 2, dims=-1).flip(-2)
    bottom = torch.roll(x[..., h - pad:, :], w // 2, dims=-1).flip(-2)
    x = torch.cat((top, x, bottom), dim=-2)
    return torch.cat((x[..., -pad:], x, x[..., :pad]), dim=-1)


def sample_equirect(x: torch.Tensor, row: torch.Tensor, col: torch.Tensor,
                    mode: str = "bilinear") -> torch.Tensor:
    """Sample an ERP image at continuous pixel coordinates, wrapping across the seam and the poles.

    Args:
        x: ``(B, C, H, W)`` image of a floating dtype (``W`` even).
        row, col: ``(Ho, Wo)`` continuous coordinates as returned by :func:`directions_to_pixels`, both
            of the same shape and finite (``row`` in ``[-0.5, H - 0.5]``; ``col`` any value, it is
            wrapped). ``ValueError`` naming ``row`` / ``col`` otherwise.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(B, C, Ho, Wo)`` in ``x``'s dtype (float16 and bfloat16 are sampled in float32).
        Differentiable with respect to ``x``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be (B, C, H, W), got shape {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must have a floating dtype, got {x.dtype}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    row, col = _check_coordinates(row, col)
    h, w = x.shape[-2:]
    padded = pad_equirect(x, 1)
    col = torch.remainder(col + 0.5, w) - 0.5
    # Normalised grid_sample coordinates on the padded image (align_corners=True: -1 is the centre
    # of padded pixel 0, i.e. original coordinate -1).
    gx = (col + 1.0) / (w + 1) * 2 - 1
    gy = (row + 1.0) / (h + 1) * 2 - 1
    dtype = sampling_dtype(x.dtype)  # half-precision inputs are sampled in float32
    grid = torch.stack((gx, gy), dim=-1).to(dtype=dtype, device=x.device)
    grid = grid.unsqueeze(0).expand(x.shape[0], *grid.shape)
    out = F.grid_sample(padded.to(dtype), grid, mode=mode, padding_mode="border", align_corners=True)
    return out.to(x.dtype)


def _check_coordinates(row, col) -> tuple[torch.Tensor, torch.Tensor]:
    """``row`` and ``col`` as floating tensors, after checking that they are ``(Ho, Wo)``, of one shape
    and finite (``ValueError`` naming them otherwise)."""
    row = _as_tensor(row)
    col = _as_tensor(col, device=row.device)
    if row.shape != col.shape or row.dim() != 2:
        raise ValueError(f"row and col must be (Ho, Wo) coordinate grids of the same shape, got "
                         f"{tuple(row.shape)} and {tuple(col.shape)}")
    for t, name in ((row, "row"), (col, "col")):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite pixel coordinates")
    return row, col


def rotate_equirect(x: torch.Tensor, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                    mode: str = "bilinear") -> torch.Tensor:
    """Rotate the content of ERP tensors ``(..., H, W)`` by :func:`rotation_matrix`.

    The feature seen at direction ``d`` appears at ``R d``. A pure yaw that is a whole number ``k``
    of column pitches ``2pi / W`` is exactly ``torch.roll`` by ``-k`` columns (content moves left);
    other rotations resample with :func:`sample_equirect`. Angles in radians, finite (``ValueError``
    naming ``yaw``, ``pitch`` or ``roll`` otherwise).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be (..., H, W), got shape {shape}")
    yaw, pitch, roll = check_angle(yaw, "yaw"), check_angle(pitch, "pitch"), check_angle(roll, "roll")
    h, w = x.shape[-2:]
    if pitch == 0.0 and roll == 0.0:
        k = yaw * w / (2 * math.pi)
        if abs(k - round(k)) < 1e-9:
            return torch.roll(x, -int(round(k)), dims=-1)
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, h, w)
    az, el = equirect_directions(h, w, dtype=torch.float64, device=x.device)
    # Output pixel d takes the input at R^T d.
    v = directions_to_vectors(az, el) @ rotation_matrix(yaw, pitch, roll, device=x.device)
    src_az, src_el = vectors_to_directions(v)
    row, col = directions_to_pixels(src_az, src_el, h, w)
    out = sample_equirect(flat, row, col, mode=mode)
    return out.reshape(*lead, h, w)


def resize_equirect(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ERP tensors ``(..., H, W)`` (floating dtype, ``W`` even) to ``size = (Ho, Wo)``.

    Each output pixel samples the input at its own centre (the geometry of ``F.interpolate`` with
    ``align_corners=False``, whose result it equals away from the border) with :func:`sample_equirect`,
    so the pixels next to the +-180 deg seam interpolate between their neighbours across it, and those
    next to a pole over it, rather than clamping at the image border: resizing commutes with a yaw
    rotation by whole columns of both grids. ``mode``: ``"bilinear"`` or ``"nearest"``. No
    antialiasing: a large reduction should be area-averaged instead. Returns ``(..., Ho, Wo)``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be an ERP tensor (..., H, W), got {shape}")
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"size must be a pair (Ho, Wo) of positive integers, got {size!r}")
    ho, wo = (check_integer(n, "size", unit="pixels") for n in size)
    h, w = x.shape[-2:]
    if (ho, wo) == (h, w):
        return x
    if w % 2:
        raise ValueError(f"resize_equirect needs an even ERP width to wrap over the poles, got shape "
                         f"{tuple(x.shape)}")
    lead = x.shape[:-2]
    rows = (torch.arange(ho, dtype=torch.float64, device=x.device) + 0.5) * (h / ho) - 0.5
    cols = (torch.arange(wo, dtype=torch.float64, device=x.device) + 0.5) * (w / wo) - 0.5
    row, col = torch.meshgrid(rows, cols, indexing="ij")
    out = sample_equirect(x.reshape(-1, 1, h, w), row, col, mode=mode)
    return out.reshape(*lead, ho, wo)
