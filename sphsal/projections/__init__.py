"""Projections between equirectangular (ERP) images and cubemaps, HEALPix maps and perspective views.

All functions take batched tensors (``(B, C, H, W)`` ERP images), work on any device and floating
dtype, are differentiable, sample with ``"bilinear"`` or ``"nearest"`` interpolation that wraps across
the +-180 deg seam and over the poles, and cache their sampling plans. Directions follow
:mod:`sphsal.sphere`.
"""

from sphsal.projections.cubemap import (
    FACE_FRAMES,
    FACE_NAMES,
    LAYOUTS,
    convert_cubemap_layout,
    cube_face_vectors,
    cubemap_to_equirect,
    equirect_to_cubemap,
    vectors_to_cube_faces,
)
from sphsal.projections.healpix import equirect_to_healpix, healpix_directions, healpix_to_equirect
from sphsal.projections.perspective import (
    equirect_to_perspective,
    perspective_to_equirect,
    perspective_vectors,
)

__all__ = [
    "FACE_FRAMES",
    "FACE_NAMES",
    "LAYOUTS",
    "convert_cubemap_layout",
    "cube_face_vectors",
    "cubemap_to_equirect",
    "equirect_to_cubemap",
    "vectors_to_cube_faces",
    "equirect_to_healpix",
    "healpix_directions",
    "healpix_to_equirect",
    "equirect_to_perspective",
    "perspective_to_equirect",
    "perspective_vectors",
]
