"""Transposed spherical convolution layer: a drop-in replacement of ``nn.ConvTranspose2d`` on ERP maps."""

from __future__ import annotations

import torch
from torch import nn

from sphsal.nn.conv import _check_options, _check_padding, _check_padding_mode, _same_pair, with_batch
from sphsal.ops.sphere_conv_transpose import sphere_conv_transpose2d

__all__ = ["SphericalConvTranspose2d", "output_padding_problem"]


def output_padding_problem(output_padding, stride: int) -> str | None:
    """Why a planar ``output_padding`` (int or pair; None: not given) has no spherical meaning, or None:
    only ``stride - 1`` does (the output grid is ``stride`` times the input's)."""
    if output_padding is None:
        return None
    values = (output_padding,) * 2 if isinstance(output_padding, int) else tuple(output_padding)
    if values != (stride - 1,) * 2:
        return f"output_padding={output_padding!r} is not {stride - 1} (stride - 1, an exact x{stride} grid)"
    return None


@torch.fx.wrap
def _conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias, stride: int, dilation: int,
                      interpolation: str, stencil: str, backend: str, groups: int,
                      output_size) -> torch.Tensor:
    """:func:`sphere_conv_transpose2d` of ``(B, Ci, h, w)`` or ``(Ci, h, w)``, once ``output_size`` (None or
    ``nn.ConvTranspose2d``'s argument) is checked to name the output grid; an fx leaf."""
    size = (x.shape[-2] * stride, x.shape[-1] * stride)
    if output_size is not None and tuple(output_size)[-2:] != size:
        raise ValueError(f"output_size={tuple(output_size)} is not {size}: a spherical transposed "
                         f"convolution gives exactly {stride} times the input grid")
    return with_batch(sphere_conv_transpose2d, "SphericalConvTranspose2d", x, ("Ci", "h", "w"), weight, bias,
                      stride, dilation, interpolation, stencil, backend, groups)


class SphericalConvTranspose2d(nn.ConvTranspose2d):
    """Transposed spherical convolution ``(B, Ci, h, w)`` -> ``(B, Co, stride h, stride w)`` on ERP maps (or
    unbatched ``(Ci, h, w)`` -> ``(Co, stride h, stride w)``, as ``nn.ConvTranspose2d``):
    the adjoint of :class:`~sphsal.nn.SphericalConv2d` with the same weight (see
    :func:`sphsal.ops.sphere_conv_transpose2d`), as ``nn.ConvTranspose2d`` is the adjoint of
    ``nn.Conv2d``.

    Parameter names and shapes are those of ``nn.ConvTranspose2d`` (``weight`` ``(Ci, Co / groups, k,
    k)``, ``bias`` ``(Co,)``), and so are the leading arguments, so planar state dicts load unchanged. Its
    planar equivalent is ``nn.ConvTranspose2d(Ci, Co, k, stride, padding=k // 2 * dilation,
    output_padding=stride - 1)``, the only ``padding`` / ``output_padding`` it accepts (the output is
    exactly ``stride`` times the input grid).

    Args:
        in_channels, out_channels, groups, bias: as ``nn.ConvTranspose2d``.
        kernel_size: odd ``k`` (int or ``(k, k)``).
        stride: upsampling factor (int or an equal pair).
        padding, output_padding: accepted so that planar arguments carry over (see above).
        dilation: stencil radius in output pixel pitches per ring.
        interpolation: ``"nearest"`` or ``"bilinear"``.
        stencil: ``"cap"`` (GTSD) or ``"gnomonic"`` (SphereNet).
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"cuda"`` (see
            :func:`sphsal.ops.sphere_conv_transpose2d`).
        padding_mode: only ``"zeros"`` (``nn.ConvTranspose2d``'s only mode).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None,
                 output_padding=None, groups: int = 1, bias: bool = True, dilation=1, *,
                 interpolation: str = "nearest", stencil: str = "cap", backend: str = "auto",
                 padding_mode: str = "zeros", device=None, dtype=None):
        _check_padding_mode("SphericalConvTranspose2d", padding_mode)
        k = _same_pair(kernel_size, "kernel_size")
        s = _same_pair(stride, "stride")
        d = _same_pair(dilation, "dilation")
        _check_options(k, interpolation, stencil)
        _check_padding(padding, (k // 2 * d,) * 2)
        problem = output_padding_problem(output_padding, s)
        if problem:
            raise ValueError(problem)
        super().__init__(in_channels, out_channels, k, stride=s, padding=k // 2 * d, output_padding=s - 1,
                         groups=groups, bias=bias, dilation=d, device=device, dtype=dtype)
        self.interpolation, self.stencil, self.backend = interpolation, stencil, backend

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        """``(B, Ci, h, w)`` -> ``(B, Co, stride h, stride w)`` (or unbatched); ``output_size`` (as
        ``nn.ConvTranspose2d``) may only name that size."""
        return _conv_transpose2d(x, self.weight, self.bias, self.stride[0], self.dilation[0],
                                 self.interpolation, self.stencil, self.backend, self.groups, output_size)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, interpolation={self.interpolation}, stencil={self.stencil}"
