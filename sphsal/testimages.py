"""Generated test images: an ERP pattern that makes projection mistakes easy to see.

:func:`erp_test_pattern` draws, on a smooth colour gradient over the sphere,

* a latitude/longitude grid every 30 deg (dark lines; the equator and the 0 deg meridian are
  thicker);
* a coloured disc of 20 deg radius around each of the six cube axes, with the initial of its name
  written upright as it appears on the matching cubemap face (:mod:`sphsal.projections.cubemap`):
  front ``F`` red, right ``R`` yellow, back ``B`` blue, left ``L`` green, up ``U`` white, down ``D``
  grey.

So ``sphsal project --to cubemap --layout dice`` shows each letter centred and upright on its face,
and a wrong axis, mirror or rotation shows as a misplaced or flipped letter.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from sphsal.projections.cubemap import FACE_FRAMES, FACE_NAMES, cubemap_to_equirect
from sphsal.sphere import directions_to_vectors, equirect_directions

__all__ = ["FACE_COLOURS", "erp_test_pattern"]

# RGB colour in [0, 1] of each face's disc, in FACE_NAMES order.
FACE_COLOURS = {
    "front": (0.90, 0.12, 0.12),
    "right": (0.95, 0.85, 0.10),
    "back": (0.15, 0.30, 0.95),
    "left": (0.10, 0.75, 0.20),
    "up": (0.97, 0.97, 0.97),
    "down": (0.35, 0.35, 0.35),
}

_DISC_RADIUS = math.radians(20.0)
_GRID_STEP = math.radians(30.0)


def _smooth_inside(distance: torch.Tensor, edge, softness: float) -> torch.Tensor:
    """1 for ``distance`` well below ``edge`` (a float or a tensor), 0 well above, linear over
    ``softness`` around it."""
    return ((edge - distance) / softness + 0.5).clamp(0.0, 1.0)


def _letter_faces(face_size: int) -> torch.Tensor:
    """``(1, 6, 1, F, F)`` masks with each face's initial drawn upright in its centre."""
    masks = np.zeros((6, face_size, face_size), dtype=np.uint8)
    scale = face_size / 120.0
    thickness = max(1, round(face_size / 40))
    for k, name in enumerate(FACE_NAMES):
        letter = name[0].upper()
        (tw, th), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        origin = ((face_size - tw) // 2, (face_size + th) // 2)
        cv2.putText(masks[k], letter, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    return torch.from_numpy(masks).double().div(255)[None, :, None]


def erp_test_pattern(h: int = 512, w: int = 1024) -> torch.Tensor:
    """A colourful ERP test image of shape ``(3, H, W)``, float32 in ``[0, 1]`` (see the module
    docstring). ``H >= 8`` and ``W`` even."""
    if int(h) != h or int(w) != w or h < 8 or w < 2 or w % 2:
        raise ValueError(f"erp_test_pattern needs integer h >= 8 and an even w >= 2, got h={h!r}, w={w!r}")
    h, w = int(h), int(w)
    az, el = equirect_directions(h, w, dtype=torch.float64)
    v = directions_to_vectors(az, el)
    phases = torch.tensor([0.0, 2 * math.pi / 3, -2 * math.pi / 3], dtype=torch.float64)
    colour = 0.55 + 0.25 * torch.cos(az[None] - phases[:, None, None]) * torch.cos(el) + 0.15 * torch.sin(el)

    pixel = math.pi / h
    lon_offset = torch.remainder(az + _GRID_STEP / 2, _GRID_STEP) - _GRID_STEP / 2
    lat_offset = torch.remainder(el + _GRID_STEP / 2, _GRID_STEP) - _GRID_STEP / 2
    # Half line widths: the equator and the 0 deg meridian are drawn thicker.
    lon_half = torch.where(az.abs() < _GRID_STEP / 2, 1.0, 0.5) * pixel
    lat_half = torch.where(el.abs() < _GRID_STEP / 2, 1.0, 0.5) * pixel
    on_grid = torch.maximum(_smooth_inside((lon_offset * torch.cos(el)).abs(), lon_half, pixel),
                            _smooth_inside(lat_offset.abs(), lat_half, pixel))
    colour = colour * (1 - 0.7 * on_grid)

    letters = cubemap_to_equirect(_letter_faces(max(8, h // 2)), h, w)[0, 0]
    for k, name in enumerate(FACE_NAMES):
        angle = torch.acos((v @ FACE_FRAMES[k, 0]).clamp(-1, 1))
        disc = _smooth_inside(angle, _DISC_RADIUS, pixel)
        fill = torch.tensor(FACE_COLOURS[name], dtype=torch.float64)[:, None, None]
        ink = torch.full_like(fill, 0.0 if sum(FACE_COLOURS[name]) > 1.5 else 1.0)
        face_colour = fill + (ink - fill) * letters
        colour = colour + (face_colour - colour) * disc
    return colour.clamp(0.0, 1.0).float()
