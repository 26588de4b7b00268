"""Functional spherical operators on ERP images: neighbour tables and spherical convolution.

Importing this package never needs CuPy, numba or a GPU (the CUDA kernels compile on first use), and
it registers the custom operators ``sphsal::*`` of both backends, so that a program exported with
``torch.export`` loads in a process that has imported ``sphsal.ops`` (or ``sphsal.nn``).
"""

from sphsal.ops import cpu_banded as _cpu_banded  # noqa: F401  (registers sphsal::sphere_conv_cpu)
from sphsal.ops import cpu_transpose as _cpu_transpose  # noqa: F401  (sphsal::sphere_conv_transpose_cpu)
from sphsal.ops import cuda as _cuda  # noqa: F401  (registers sphsal::sphere_conv2d_fwd / _bwd)
from sphsal.ops.pooling import sphere_avg_pool2d, sphere_max_pool2d
from sphsal.ops.sphere_conv import (
    sphere_conv2d,
    sphere_conv2d_reference,
    sphere_conv3d,
    sphere_conv3d_reference,
)
from sphsal.ops.sphere_conv_transpose import sphere_conv_transpose2d, sphere_conv_transpose2d_reference
from sphsal.ops.stencils import NeighbourTable, neighbour_table

__all__ = [
    "NeighbourTable",
    "neighbour_table",
    "sphere_conv2d",
    "sphere_conv2d_reference",
    "sphere_conv3d",
    "sphere_conv3d_reference",
    "sphere_conv_transpose2d",
    "sphere_conv_transpose2d_reference",
    "sphere_max_pool2d",
    "sphere_avg_pool2d",
]
