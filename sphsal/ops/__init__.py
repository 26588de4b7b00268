"""Functional spherical operators on ERP images: neighbour tables and spherical convolution.

Importing this package never needs CuPy or a GPU; the CUDA backend loads on first use.
"""

from sphsal.ops.pooling import sphere_avg_pool2d, sphere_max_pool2d
from sphsal.ops.sphere_conv import (
    sphere_conv2d,
    sphere_conv2d_reference,
    sphere_conv3d,
    sphere_conv3d_reference,
)
from sphsal.ops.stencils import NeighbourTable, neighbour_table

__all__ = [
    "NeighbourTable",
    "neighbour_table",
    "sphere_conv2d",
    "sphere_conv2d_reference",
    "sphere_conv3d",
    "sphere_conv3d_reference",
    "sphere_max_pool2d",
    "sphere_avg_pool2d",
]
