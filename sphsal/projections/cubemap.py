"""Equirectangular <-> cubemap.

Faces come in the order front, right, back, left, up, down (:data:`FACE_NAMES`). Vectors use the
sphsal convention (x front, y left, z up). Every face is a 90 deg perspective view seen from the
centre of the cube; face pixel ``(i, j)`` of an ``F x F`` face looks along

    centre + a * right + b * down,   a = (j + 0.5) / F * 2 - 1,   b = (i + 0.5) / F * 2 - 1,

with (centre, right, down) per face (:data:`FACE_FRAMES`):

* front ``+x``: right ``-y``, down ``-z`` (upright, as you see it facing the front);
* right ``-y``: right ``-x``, down ``-z``; back ``-x``: right ``+y``, down ``-z``;
  left ``+y``: right ``+x``, down ``-z`` (each upright, as you see it after turning towards it);
* up ``+z``: right ``-y``, down ``+x``: seen from inside looking up with the front at the bottom edge
  (the view after tilting your head up from the front);
* down ``-z``: right ``-y``, down ``-x``: seen from inside looking down with the front at the top
  edge (the view after tilting your head down from the front).

So the front face's top edge meets the up face's bottom edge, its right edge the right face's left
edge, and so on around the horizon.

Layouts: ``"stack"`` ``(B, 6, C, F, F)`` (default); ``"horizon"`` ``(B, C, F, 6F)``, the faces left to
right in face order; ``"dice"`` ``(B, C, 3F, 4F)``, the horizontal cross::

        .   up    .    .
      left front right back
        .  down   .    .

(empty cells are zero); ``"dict"`` ``{name: (B, C, F, F)}``.
"""

from __future__ import annotations

import torch

from sphsal.projections._grids import (
    build_plan,
    cached_plan,
    check_erp,
    check_mode,
    check_size,
    erp_plan,
)
from sphsal.sphere import directions_to_vectors, equirect_directions, vectors_to_directions

__all__ = [
    "FACE_NAMES",
    "FACE_FRAMES",
    "LAYOUTS",
    "cube_face_vectors",
    "vectors_to_cube_faces",
    "equirect_to_cubemap",
    "cubemap_to_equirect",
    "convert_cubemap_layout",
]

FACE_NAMES = ("front", "right", "back", "left", "up", "down")

# (centre, right, down) unit vectors of every face, shape (6, 3, 3).
FACE_FRAMES = torch.tensor([
    [[1, 0, 0], [0, -1, 0], [0, 0, -1]],   # front
    [[0, -1, 0], [-1, 0, 0], [0, 0, -1]],  # right
    [[-1, 0, 0], [0, 1, 0], [0, 0, -1]],   # back
    [[0, 1, 0], [1, 0, 0], [0, 0, -1]],    # left
    [[0, 0, 1], [0, -1, 0], [1, 0, 0]],    # up
    [[0, 0, -1], [0, -1, 0], [-1, 0, 0]],  # down
], dtype=torch.float64)

LAYOUTS = ("stack", "horizon", "dice", "dict")

# (row, col) cell of every face in the 3 x 4 dice cross.
_DICE_CELLS = ((1, 1), (1, 2), (1, 3), (1, 0), (0, 1), (2, 1))


def _tangent(index: torch.Tensor, size: int) -> torch.Tensor:
    """Tangent coordinate in [-1, 1] of (possibly out-of-face) pixel centres."""
    return (index + 0.5) / size * 2 - 1


def cube_face_vectors(face_size: int, *, dtype=torch.float64) -> torch.Tensor:
    """Directions (not normalised) of the face pixel centres, shape ``(6, F, F, 3)``, faces in
    :data:`FACE_NAMES` order, ``[face, row, col]``."""
    face_size = check_size(face_size, "face_size")
    t = _tangent(torch.arange(face_size, dtype=torch.float64), face_size)
    b, a = torch.meshgrid(t, t, indexing="ij")
    centre, right, down = FACE_FRAMES[:, 0], FACE_FRAMES[:, 1], FACE_FRAMES[:, 2]
    v = (centre[:, None, None] + a[None, ..., None] * right[:, None, None]
         + b[None, ..., None] * down[:, None, None])
    return v.to(dtype)


def vectors_to_cube_faces(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Face index (int64), and tangent coordinates ``a`` (rightwards) and ``b`` (downwards) in
    ``[-1, 1]`` of vectors ``(..., 3)``; the face is the one whose centre is closest."""
    frames = FACE_FRAMES.to(dtype=v.dtype, device=v.device)
    along = v @ frames[:, 0].T                                # (..., 6)
    face = torch.argmax(along, dim=-1)
    frame = frames[face]                                      # (..., 3, 3)
    depth = torch.gather(along, -1, face[..., None])[..., 0]
    a = (v * frame[..., 1, :]).sum(-1) / depth
    b = (v * frame[..., 2, :]).sum(-1) / depth
    return face, a, b


@cached_plan
def _to_cube_plan(face_size: int, h: int, w: int, mode: str):
    az, el = vectors_to_directions(cube_face_vectors(face_size))
    return erp_plan(az.reshape(6 * face_size, face_size), el.reshape(6 * face_size, face_size), h, w, mode)


def _cube_resolver(face_size: int, faces: torch.Tensor):
    """Resolve taps beyond a face edge to the value at the tap's direction, interpolated bilinearly on
    the neighbouring face that contains it (clamped to that face's pixel centres): four ``(row, col)``
    pixels of the ``(6F, F)`` stacked atlas and their weights per tap. (The neighbour's nearest pixel
    alone would be up to half a pixel off along the edge: a first-order error at the face edges.)"""
    frames = FACE_FRAMES

    def resolve(rows, cols, points):
        face = faces[points]
        a = _tangent(cols.double(), face_size)
        b = _tangent((rows - face * face_size).double(), face_size)
        frame = frames[face]
        v = frame[:, 0] + a[:, None] * frame[:, 1] + b[:, None] * frame[:, 2]
        face2, a2, b2 = vectors_to_cube_faces(v)
        row2 = ((b2 + 1) / 2 * face_size - 0.5).clamp(0, face_size - 1)
        col2 = ((a2 + 1) / 2 * face_size - 0.5).clamp(0, face_size - 1)
        r0 = torch.floor(row2).long().clamp(max=max(face_size - 2, 0))
        c0 = torch.floor(col2).long().clamp(max=max(face_size - 2, 0))
        r1, c1 = (r0 + 1).clamp(max=face_size - 1), (c0 + 1).clamp(max=face_size - 1)
        fr, fc = row2 - r0, col2 - c0
        top = face2 * face_size
        taps = torch.stack([((top + r) * face_size + c) for r, c in ((r0, c0), (r0, c1), (r1, c0), (r1, c1))])
        weights = torch.stack(((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc))
        return taps, weights

    return resolve


@cached_plan
def _from_cube_plan(face_size: int, h: int, w: int, mode: str):
    az, el = equirect_directions(h, w, dtype=torch.float64)
    face, a, b = vectors_to_cube_faces(directions_to_vectors(az, el))
    row = face * face_size + (b + 1) / 2 * face_size - 0.5
    col = (a + 1) / 2 * face_size - 0.5
    top = face * face_size
    region = (top, top + face_size - 1, 0, face_size - 1)
    return build_plan(row, col, (6 * face_size, face_size), mode,
                      _cube_resolver(face_size, face.reshape(-1)), region)


def equirect_to_cubemap(x: torch.Tensor, face_size: int, mode: str = "bilinear", layout: str = "stack"):
    """Project ERP images onto the six faces of a cube (90 deg field of view each).

    Args:
        x: ``(B, C, H, W)`` ERP batch (``W`` even), any floating dtype and device.
        face_size: ``F``, the side of each face in pixels.
        mode: ``"bilinear"`` or ``"nearest"``; sampling wraps across the seam and over the poles.
        layout: ``"stack"`` -> ``(B, 6, C, F, F)`` (a non-contiguous view of the sampled faces;
            call ``.contiguous()`` if needed), ``"horizon"`` -> ``(B, C, F, 6F)``, ``"dice"`` ->
            ``(B, C, 3F, 4F)`` or ``"dict"`` -> ``{name: (B, C, F, F)}`` (see the module docstring for
            face orientations).

    Differentiable with respect to ``x``; the sampling plan is cached per (F, H, W, mode, device,
    dtype).
    """
    check_erp(x)
    check_mode(mode)
    face_size = check_size(face_size, "face_size")
    _check_layout(layout)
    b, c, h, w = x.shape
    out = _to_cube_plan.sample(x, face_size, h, w, mode, out_shape=(6 * face_size, face_size))
    # out: (B, C, 6F, F)
    stack = out.reshape(b, c, 6, face_size, face_size).transpose(1, 2)
    return convert_cubemap_layout(stack, layout)


def cubemap_to_equirect(faces, h: int, w: int, mode: str = "bilinear", layout: str | None = None):
    """Resample a cubemap onto an ``h x w`` ERP grid.

    Args:
        faces: a cubemap of a floating dtype in any layout (see the module docstring); the layout is
            recognised from the type and shape unless given: a dict, a 5-D ``(B, 6, C, F, F)`` stack, a
            4-D ``(B, C, F, 6F)`` horizon or a 4-D ``(B, C, 3F, 4F)`` dice.
        h, w: ERP size (``w`` even).
        mode: ``"bilinear"`` (taps beyond a face edge read the neighbouring face) or ``"nearest"``.
        layout: optional explicit layout (the shape must fit it).

    Returns:
        ``(B, C, h, w)``, differentiable with respect to the faces.
    """
    check_mode(mode)
    h, w = check_size(h, "h"), check_size(w, "w")
    if w % 2:
        raise ValueError(f"w must be even, got {w}")
    stack = convert_cubemap_layout(faces, "stack", source_layout=layout)
    if not stack.is_floating_point():
        raise ValueError(f"faces must have a floating dtype, got {stack.dtype}")
    b, _, c, face_size, _ = stack.shape
    atlas = stack.transpose(1, 2).reshape(b, c, 6 * face_size, face_size)
    return _from_cube_plan.sample(atlas, face_size, h, w, mode, out_shape=(h, w))


def _check_layout(layout) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


# the shape of every tensor layout, for the error messages
_SHAPES = {"stack": "(B, 6, C, F, F)", "horizon": "(B, C, F, 6F)", "dice": "(B, C, 3F, 4F)"}


def _has_layout(t: torch.Tensor, layout: str) -> bool:
    """Whether tensor ``t`` is shaped as a cubemap in tensor layout ``layout`` (faces of ``F >= 1``)."""
    if layout == "stack":
        return t.dim() == 5 and t.shape[1] == 6 and t.shape[-1] == t.shape[-2] >= 1
    if layout == "horizon":
        return t.dim() == 4 and t.shape[-2] >= 1 and t.shape[-1] == 6 * t.shape[-2]
    return t.dim() == 4 and t.shape[-1] >= 4 and t.shape[-1] % 4 == 0 and 4 * t.shape[-2] == 3 * t.shape[-1]


def _detect_layout(faces) -> str:
    """The layout of ``faces``: ``"dict"`` for a dict, else the tensor layout its shape has."""
    if isinstance(faces, dict):
        return "dict"
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces must be a tensor or a dict of tensors, got {type(faces).__name__}")
    for layout in _SHAPES:
        if _has_layout(faces, layout):
            return layout
    raise ValueError("faces must be a cubemap: (B, 6, C, F, F) stack, (B, C, F, 6F) horizon, "
                     f"(B, C, 3F, 4F) dice or a dict of faces; got shape {tuple(faces.shape)}")


def _check_source(faces, layout: str) -> None:
    """Raise ``ValueError`` naming ``faces`` unless it is a cubemap in the given ``layout``."""
    if layout == "dict":
        _check_face_dict(faces)
    elif not isinstance(faces, torch.Tensor) or not _has_layout(faces, layout):
        got = f"shape {tuple(faces.shape)}" if isinstance(faces, torch.Tensor) else type(faces).__name__
        raise ValueError(f"faces is no {layout!r} cubemap {_SHAPES[layout]}: got {got}")


def _check_face_dict(faces) -> None:
    """Raise ``ValueError`` naming ``faces`` unless it maps exactly :data:`FACE_NAMES` to ``(B, C, F, F)``
    tensors of one shape, dtype and device."""
    if not isinstance(faces, dict):
        raise ValueError(f"faces must be a dict {{name: (B, C, F, F)}} for layout 'dict', got "
                         f"{type(faces).__name__}")
    missing = [n for n in FACE_NAMES if n not in faces]
    unknown = [k for k in faces if k not in FACE_NAMES]
    if missing or unknown:
        raise ValueError(f"faces dict must have exactly the keys {FACE_NAMES}; missing {missing}, "
                         f"unknown {unknown}")
    first = faces[FACE_NAMES[0]]
    for name in FACE_NAMES:
        face = faces[name]
        if not isinstance(face, torch.Tensor) or face.dim() != 4 or not face.shape[-1] == face.shape[-2] >= 1:
            got = tuple(face.shape) if isinstance(face, torch.Tensor) else type(face).__name__
            raise ValueError(f"faces[{name!r}] must be a square face (B, C, F, F), got {got}")
        if (face.shape, face.dtype, face.device) != (first.shape, first.dtype, first.device):
            raise ValueError(f"faces[{name!r}] is {tuple(face.shape)} {face.dtype} on {face.device}, but "
                             f"faces[{FACE_NAMES[0]!r}] is {tuple(first.shape)} {first.dtype} on "
                             f"{first.device}: every face must have the same shape, dtype and device")


def _to_stack(faces, layout: str) -> torch.Tensor:
    """The ``(B, 6, C, F, F)`` stack of a cubemap in ``layout`` (checked against it first)."""
    _check_source(faces, layout)
    if layout == "dict":
        return torch.stack([faces[n] for n in FACE_NAMES], dim=1)
    if layout == "stack":
        return faces
    if layout == "horizon":
        b, c, f, _ = faces.shape
        return faces.reshape(b, c, f, 6, f).permute(0, 3, 1, 2, 4)
    f = faces.shape[-1] // 4
    return torch.stack([faces[..., r * f:(r + 1) * f, k * f:(k + 1) * f] for r, k in _DICE_CELLS], dim=1)


def convert_cubemap_layout(faces, layout: str, *, source_layout: str | None = None):
    """Convert a cubemap between layouts (see the module docstring).

    ``faces`` is in ``source_layout`` (recognised from type and shape when ``None``; when given, the
    shape must fit it) and may have any dtype; returns the cubemap in ``layout``. A dict must hold
    exactly the six :data:`FACE_NAMES`, as ``(B, C, F, F)`` faces of one shape. Stack results may be
    non-contiguous views. Bad input raises ``ValueError`` naming ``faces``.
    """
    _check_layout(layout)
    if source_layout is not None:
        _check_layout(source_layout)
    stack = _to_stack(faces, source_layout or _detect_layout(faces))
    if layout == "stack":
        return stack
    if layout == "dict":
        return {name: stack[:, k] for k, name in enumerate(FACE_NAMES)}
    b, _, c, f, _ = stack.shape
    if layout == "horizon":
        return stack.permute(0, 2, 3, 1, 4).reshape(b, c, f, 6 * f)
    dice = stack.new_zeros(b, c, 3 * f, 4 * f)
    for k, (r, col) in enumerate(_DICE_CELLS):
        dice[..., r * f:(r + 1) * f, col * f:(col + 1) * f] = stack[:, k]
    return dice
