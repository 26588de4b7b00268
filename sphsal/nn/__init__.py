"""Spherical layers for ERP feature maps: drop-in twins of the planar torch layers."""

from sphsal.nn.conv import SphericalConv2d, SphericalConv3d
from sphsal.nn.convert import convert_to_spherical
from sphsal.nn.pooling import SphericalAvgPool2d, SphericalMaxPool2d

__all__ = ["SphericalConv2d", "SphericalConv3d", "SphericalMaxPool2d", "SphericalAvgPool2d",
           "convert_to_spherical"]
