"""Equirectangular <-> perspective (pinhole) viewports.

A viewport of ``H x W`` square pixels with horizontal field of view ``fov`` (radians) looks along
``R @ front``, ``R = sphsal.sphere.rotation_matrix(yaw, pitch, roll)``; its image right is
``R @ (-y)`` and its image down ``R @ (-z)``, so ``yaw = pitch = roll = 0`` shows the front upright.
Pixel ``(i, j)`` looks along ``R @ (1, -tx, -ty)`` with

    tx = ((j + 0.5) / W * 2 - 1) * tan(fov / 2),   ty = ((i + 0.5) / H * 2 - 1) * tan(fov / 2) * H / W.
"""

from __future__ import annotations

import math

import torch

from sphsal.projections._grids import (
    build_plan,
    cached_plan,
    check_erp,
    check_mode,
    check_size,
    erp_plan,
)
from sphsal.sphere import (
    check_angle,
    directions_to_vectors,
    equirect_directions,
    rotation_matrix,
    vectors_to_directions,
)

__all__ = ["perspective_vectors", "equirect_to_perspective", "perspective_to_equirect"]


def _check_view(fov, yaw, pitch, roll) -> tuple[float, float, float, float]:
    fov = check_angle(fov, "fov")
    if not 0.0 < fov < math.pi:
        raise ValueError(f"fov must be a horizontal field of view in (0, pi) radians, got {fov!r}")
    return fov, check_angle(yaw, "yaw"), check_angle(pitch, "pitch"), check_angle(roll, "roll")


def _check_out_hw(out_hw) -> tuple[int, int]:
    """``out_hw`` as a pair of positive ints (``ValueError`` naming ``out_hw`` otherwise)."""
    if isinstance(out_hw, (str, bytes)) or not hasattr(out_hw, "__len__") or len(out_hw) != 2:
        raise ValueError(f"out_hw must be a pair (H, W) of positive integers, got {out_hw!r}")
    return check_size(out_hw[0], "out_hw[0]"), check_size(out_hw[1], "out_hw[1]")


def perspective_vectors(fov: float, yaw: float, pitch: float, roll: float, out_hw: tuple[int, int]):
    """Directions (float64, not normalised) of the viewport pixel centres, shape ``(H, W, 3)``."""
    fov, yaw, pitch, roll = _check_view(fov, yaw, pitch, roll)
    h, w = _check_out_hw(out_hw)
    half = math.tan(fov / 2)
    tx = ((torch.arange(w, dtype=torch.float64) + 0.5) / w * 2 - 1) * half
    ty = ((torch.arange(h, dtype=torch.float64) + 0.5) / h * 2 - 1) * half * h / w
    ty, tx = torch.meshgrid(ty, tx, indexing="ij")
    camera = torch.stack((torch.ones_like(tx), -tx, -ty), dim=-1)
    return camera @ rotation_matrix(yaw, pitch, roll).T


@cached_plan
def _to_view_plan(fov, yaw, pitch, roll, out_hw, h, w, mode):
    az, el = vectors_to_directions(perspective_vectors(fov, yaw, pitch, roll, out_hw))
    return erp_plan(az, el, h, w, mode)


@cached_plan
def _from_view_plan(fov, yaw, pitch, roll, view_hw, h, w, mode):
    hv, wv = view_hw
    az, el = equirect_directions(h, w, dtype=torch.float64)
    camera = directions_to_vectors(az, el) @ rotation_matrix(yaw, pitch, roll)   # R^T d
    depth = camera[..., 0]
    ahead = depth > 0
    safe = torch.where(ahead, depth, torch.ones_like(depth))
    half = math.tan(fov / 2)
    col = (-camera[..., 1] / safe / half + 1) / 2 * wv - 0.5
    row = (-camera[..., 2] / safe / (half * hv / wv) + 1) / 2 * hv - 0.5
    covered = ahead & (col >= -0.5) & (col <= wv - 0.5) & (row >= -0.5) & (row <= hv - 0.5)
    col = torch.where(covered, col, torch.zeros_like(col))
    row = torch.where(covered, row, torch.zeros_like(row))
    # A viewport is a plane: taps beyond its edge repeat the border pixel (grid_sample's border mode).
    return build_plan(row, col, (hv, wv), mode, None, coverage=covered.double())


def equirect_to_perspective(x: torch.Tensor, fov: float, yaw: float, pitch: float, roll: float = 0.0,
                            out_hw: tuple[int, int] = (512, 512), mode: str = "bilinear") -> torch.Tensor:
    """Render perspective viewports of ERP images.

    Args:
        x: ``(B, C, H, W)`` ERP batch (``W`` even).
        fov: horizontal field of view in radians, in ``(0, pi)``.
        yaw, pitch, roll: viewing rotation in radians (:func:`sphsal.sphere.rotation_matrix`); the
            viewport looks at ``R @ front``, e.g. ``yaw = pi/2`` looks left, ``pitch = pi/2`` up.
        out_hw: ``(H, W)`` of the viewport.
        mode: ``"bilinear"`` or ``"nearest"`` (wraps across the seam and the poles).

    Returns:
        ``(B, C, H, W)`` viewports, differentiable with respect to ``x``; plans are cached per view.
    """
    check_erp(x)
    check_mode(mode)
    out_hw = _check_out_hw(out_hw)
    view = _check_view(fov, yaw, pitch, roll)
    h, w = x.shape[-2:]
    return _to_view_plan.sample(x, *view, out_hw, h, w, mode, out_shape=out_hw)


def perspective_to_equirect(view: torch.Tensor, fov: float, yaw: float, pitch: float, roll: float,
                            h: int, w: int, mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Paste perspective viewports back onto an ``h x w`` ERP grid.

    Args:
        view: ``(B, C, Hv, Wv)`` viewports taken with ``fov``, ``yaw``, ``pitch``, ``roll`` (radians,
            as in :func:`equirect_to_perspective`).
        h, w: ERP size.
        mode: ``"bilinear"`` or ``"nearest"`` sampling of the viewport.

    Returns:
        ``(erp, mask)``: ``erp`` ``(B, C, h, w)`` is the viewport seen from each ERP pixel direction and
        0 where the viewport does not cover it; ``mask`` ``(h, w)`` (dtype of ``view``) is 1 on covered
        pixels and 0 elsewhere. Differentiable with respect to ``view``.
    """
    if (not isinstance(view, torch.Tensor) or view.dim() != 4 or not view.is_floating_point()
            or min(view.shape[-2:]) < 1):
        shape = tuple(view.shape) if isinstance(view, torch.Tensor) else type(view).__name__
        raise ValueError(f"view must be a floating (B, C, H, W) viewport batch with H, W >= 1, got {shape}")
    check_mode(mode)
    h, w = check_size(h, "h"), check_size(w, "w")
    angles = _check_view(fov, yaw, pitch, roll)
    geometry = (*angles, tuple(view.shape[-2:]), h, w, mode)
    return (_from_view_plan.sample(view, *geometry, out_shape=(h, w)),
            _from_view_plan.coverage(view, *geometry, out_shape=(h, w)))
