"""Spherical pooling modules (see :mod:`sphsal.ops.pooling` for the windows).

Their leading arguments are those of ``nn.MaxPool2d`` / ``nn.AvgPool2d``, in their order, so planar
arguments carry over; the options a spherical window cannot honour (padding other than the window's
implied ``(kernel_size - 1) // 2``, dilation, ``ceil_mode``, ``return_indices``, ``divisor_override``) are a
``ValueError`` naming the layer. The stencil is keyword-only. Like the planar pools they take unbatched
``(C, H, W)`` inputs, and ``torch.fx.symbolic_trace`` records each call as one node.
"""

from __future__ import annotations

import torch
from torch import nn

from sphsal.nn.conv import with_batch
from sphsal.ops.pooling import sphere_avg_pool2d, sphere_max_pool2d
from sphsal.ops.stencils import STENCILS

__all__ = ["SphericalMaxPool2d", "SphericalAvgPool2d"]


def _values(value) -> set:
    """The distinct values of an option given as one value or per axis (a tuple or list)."""
    return set(value) if isinstance(value, (tuple, list)) else {value}


def _one_value(layer: str, name: str, value) -> int:
    """An int, or a pair of equal ints (the spatial axes must agree on the sphere)."""
    values = _values(value)
    if len(values) != 1 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{layer}: {name} must be an int or a pair of equal ints, got {value!r}")
    return values.pop()


@torch.fx.wrap
def _max_pool2d(x: torch.Tensor, kernel_size: int, stride: int, stencil: str) -> torch.Tensor:
    """:func:`sphere_max_pool2d` of ``(B, C, H, W)`` or ``(C, H, W)``; an fx leaf."""
    return with_batch(sphere_max_pool2d, "SphericalMaxPool2d", x, ("C", "H", "W"), kernel_size, stride,
                      stencil)


@torch.fx.wrap
def _avg_pool2d(x: torch.Tensor, kernel_size: int, stride: int, stencil: str) -> torch.Tensor:
    """:func:`sphere_avg_pool2d` of ``(B, C, H, W)`` or ``(C, H, W)``; an fx leaf."""
    return with_batch(sphere_avg_pool2d, "SphericalAvgPool2d", x, ("C", "H", "W"), kernel_size, stride,
                      stencil)


class _SphericalPool2d(nn.Module):
    def __init__(self, kernel_size=3, stride=2, padding=None, *, stencil: str = "cap", **unsupported):
        """``unsupported``: ``{planar option: (its value, the only value the spherical pool honours)}``."""
        super().__init__()
        layer = type(self).__name__
        k = _one_value(layer, "kernel_size", kernel_size)
        if k not in (2, 3):
            raise ValueError(f"{layer}: kernel_size must be 2 or 3, got {kernel_size!r}")
        s = k if stride is None else _one_value(layer, "stride", stride)  # None: nn's default, the kernel
        if s < 1 or (k == 2 and s != 2):
            raise ValueError(f"{layer}: stride={stride!r} is not supported (kernel_size=2 needs stride 2, "
                             "kernel_size=3 a positive stride)")
        implied = (k - 1) // 2
        if padding is not None and _one_value(layer, "padding", padding) != implied:
            raise ValueError(f"{layer}: padding={padding!r} is not {implied}, the padding that the spherical "
                             f"{k}x{k} window implies (it does not pad: longitude wraps, the window "
                             "continues over the poles)")
        for name, (value, default) in unsupported.items():
            if _values(value) != {default}:
                raise ValueError(f"{layer}: {name}={value!r} is not supported (only {default!r})")
        if stencil not in STENCILS:
            raise ValueError(f"{layer}: stencil must be one of {STENCILS}, got {stencil!r}")
        self.kernel_size, self.stride, self.stencil = k, s, stencil

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, stencil={self.stencil}"


class SphericalMaxPool2d(_SphericalPool2d):
    """Max pooling ``(B, C, H, W)`` -> ``(B, C, H / stride, W / stride)`` (or unbatched ``(C, H, W)`` ->
    ``(C, H / stride, W / stride)``, as ``nn.MaxPool2d``) over spherical windows:
    ``kernel_size=3`` the cap stencil (``stride`` 1 or 2), ``kernel_size=2`` the 2x2 ERP cells (exact on
    the sphere, ``stride`` 2). Arguments as ``nn.MaxPool2d`` (``stride=None``: the kernel size);
    ``padding`` only ``(kernel_size - 1) // 2``, ``dilation`` 1, ``return_indices`` and ``ceil_mode``
    False."""

    def __init__(self, kernel_size=3, stride=2, padding=None, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False, *, stencil: str = "cap"):
        super().__init__(kernel_size, stride, padding, stencil=stencil, dilation=(dilation, 1),
                         return_indices=(return_indices, False), ceil_mode=(ceil_mode, False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _max_pool2d(x, self.kernel_size, self.stride, self.stencil)


class SphericalAvgPool2d(_SphericalPool2d):
    """Average pooling over the same windows as :class:`SphericalMaxPool2d`. Arguments as
    ``nn.AvgPool2d``; every window is full (nothing is padded), so ``count_include_pad`` changes nothing;
    ``ceil_mode`` only False and ``divisor_override`` only None."""

    def __init__(self, kernel_size=3, stride=2, padding=None, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None, *, stencil: str = "cap"):
        super().__init__(kernel_size, stride, padding, stencil=stencil, ceil_mode=(ceil_mode, False),
                         divisor_override=(divisor_override, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _avg_pool2d(x, self.kernel_size, self.stride, self.stencil)
