"""Spherical layers for ERP feature maps: drop-in twins of the planar torch layers (and ``ClipConv3d``, a
planar ``nn.Conv3d`` that is faster on clips shorter than its kernel)."""

from sphsal.nn.clip_conv import ClipConv3d
from sphsal.nn.conv import SphericalConv2d, SphericalConv3d
from sphsal.nn.conv_transpose import SphericalConvTranspose2d
from sphsal.nn.convert import convert_to_spherical
from sphsal.nn.pooling import SphericalAvgPool2d, SphericalMaxPool2d

__all__ = ["ClipConv3d", "SphericalConv2d", "SphericalConv3d", "SphericalConvTranspose2d",
           "SphericalMaxPool2d", "SphericalAvgPool2d", "convert_to_spherical"]
