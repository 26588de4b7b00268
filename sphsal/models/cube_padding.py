"""Cube padding (Cheng et al., CVPR 2018): pad each cube face with the pixels of its neighbours.

A convolution over the six faces of a cubemap sees, beyond a face edge, the adjacent face instead of
zeros. The padded pixel ``(i, j)`` of a face (``i, j`` in ``[-p, F + p)``) looks along
``centre + a * right + b * down`` with the tangent coordinates ``a, b`` of
:mod:`sphsal.projections.cubemap` extended past ``[-1, 1]``; it takes the value of the face pixel
nearest to that direction (:func:`sphsal.projections.vectors_to_cube_faces`). Inside a face this is
the pixel itself; next to an edge it is the neighbouring face's pixel, rotated as the cube geometry
requires (the up face's bottom rows pad the front face's top, ...). The index table depends only on
``(F, p)`` and is cached (per device).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from sphsal.projections.cubemap import FACE_FRAMES, vectors_to_cube_faces

__all__ = ["cube_padding_index", "cube_pad", "CubePad"]


@functools.lru_cache(maxsize=32)
def cube_padding_index(face_size: int, pad: int) -> torch.Tensor:
    """Flat source indices ``(6, F + 2p, F + 2p)`` into the ``6 * F * F`` face pixels (face-major,
    then row, then column) that fill the padded faces."""
    if face_size < 1 or pad < 0:
        raise ValueError(f"face_size must be >= 1 and pad >= 0, got face_size={face_size}, pad={pad}")
    if pad > face_size:
        raise ValueError(f"pad={pad} is larger than the face size {face_size}")
    idx = torch.arange(-pad, face_size + pad, dtype=torch.float64)
    t = (idx + 0.5) / face_size * 2 - 1
    b, a = torch.meshgrid(t, t, indexing="ij")
    centre, right, down = FACE_FRAMES[:, 0], FACE_FRAMES[:, 1], FACE_FRAMES[:, 2]
    v = (centre[:, None, None] + a[None, ..., None] * right[:, None, None]
         + b[None, ..., None] * down[:, None, None])
    face, a2, b2 = vectors_to_cube_faces(v)
    col = torch.floor((a2 + 1) / 2 * face_size).long().clamp(0, face_size - 1)
    row = torch.floor((b2 + 1) / 2 * face_size).long().clamp(0, face_size - 1)
    return (face * face_size + row) * face_size + col


@functools.lru_cache(maxsize=32)
def _flat_index_on(face_size: int, pad: int, device: torch.device) -> torch.Tensor:
    return cube_padding_index(face_size, pad).reshape(-1).to(device)


@torch.library.custom_op("sphsal::cube_padding_index", mutates_args=())
def _flat_index(like: torch.Tensor, face_size: int, pad: int) -> torch.Tensor:
    """:func:`cube_padding_index` flattened, ``(6 (F + 2p)^2,)``, on ``like``'s device: an operator, so
    that ``torch.compile`` takes the cached table instead of tracing its construction into the graph
    (returned as a copy, since a compiled graph may reuse its intermediates' memory)."""
    return _flat_index_on(face_size, pad, like.device).clone()


@_flat_index.register_fake
def _(like, face_size, pad):
    return like.new_empty(6 * (face_size + 2 * pad) ** 2, dtype=torch.long)


def cube_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Cube-pad faces stacked along the batch dimension.

    Args:
        x: ``(B * 6, ..., F, F)``: each group of six consecutive items is one cubemap in
            front, right, back, left, up, down order (any dimensions between, e.g. ``C, T``).
        pad: pixels added on every side.

    Returns:
        ``(B * 6, ..., F + 2 pad, F + 2 pad)``.
    """
    if x.dim() < 3 or x.shape[0] % 6 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"cube_pad expects square faces (B*6, ..., F, F), got {tuple(x.shape)}")
    if pad == 0:
        return x
    face_size = x.shape[-1]
    index = _flat_index(x.detach(), face_size, pad)
    groups = x.shape[0] // 6
    mid = x.shape[1:-2]
    # (B, 6, *mid, F*F) -> (B, *mid, 6*F*F): every face of a cubemap side by side in one flat axis.
    flat = x.reshape(groups, 6, *mid, face_size * face_size).movedim(1, -2).flatten(-2)
    out = flat[..., index]
    size = face_size + 2 * pad
    out = out.reshape(groups, *mid, 6, size, size).movedim(-3, 1)
    return out.reshape(x.shape[0], *mid, size, size)


class CubePad(nn.Module):
    """:func:`cube_pad` as a module: ``(B * 6, ..., F, F) -> (B * 6, ..., F + 2p, F + 2p)``."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = int(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cube_pad(x, self.pad)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"
