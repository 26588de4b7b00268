"""Transposed spherical convolution: the adjoint of :func:`~sphsal.ops.sphere_conv2d`.

``sphere_conv_transpose2d(x, weight, stride=s)`` maps an ERP map ``(B, Ci, h, w)`` to ``(B, Co, s h,
s w)``: it is the transpose (adjoint) of the spherical convolution with the same weight from ``(B, Co,
s h, s w)`` to ``(B, Ci, h, w)``, exactly as ``F.conv_transpose2d`` is the adjoint of ``F.conv2d``
(weight ``(Ci, Co / groups, k, k)`` as ``nn.ConvTranspose2d``). Each input pixel spreads its values over
the spherical stencil of its own output position; where that stencil is the planar ``k x k``
neighbourhood it is ``F.conv_transpose2d(..., padding=k // 2, output_padding=s - 1)`` with the longitude
wrapped, and next to the poles it reaches over them as the convolution does.

Backends as :func:`~sphsal.ops.sphere_conv2d`: ``"reference"`` (every tap's contribution scattered with
``index_add``, the ground truth), ``"cpu"`` (the fast CPU convolution's input gradient,
:mod:`sphsal.ops.cpu_transpose`) and ``"cuda"`` (the CUDA convolution's input-gradient kernels,
:func:`sphsal.ops.cuda.sphere_conv_transpose2d_cuda`; grouped layers of CUDA tensors run the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sphsal.ops.sphere_conv import (
    _grouped,
    _resolve_backend,
    check_dtypes_and_devices,
    differentiated_by_transform,
    follows_autocast,
    tap_index,
)
from sphsal.ops.stencils import NeighbourTable, neighbour_table, validate_config

__all__ = ["sphere_conv_transpose2d", "sphere_conv_transpose2d_reference", "scatter_taps", "output_shape"]


def scatter_taps(taps: torch.Tensor, table: NeighbourTable) -> torch.Tensor:
    """Adjoint of :func:`~sphsal.ops.sphere_conv.gather_taps`: ``(..., H_out, K, W_out)`` tap values ->
    ``(..., H, W)``, each tap added into its source pixels (times their interpolation weights)."""
    index = tap_index(table, table.width, taps.device)  # (H_out, K, P, W_out)
    weights = table.weights.to(device=taps.device, dtype=taps.dtype)[..., None]
    values = taps.unsqueeze(-2) * weights  # (..., H_out, K, P, W_out)
    lead = taps.shape[:-3]
    out = taps.new_zeros(*lead, table.height * table.width)
    out = out.index_add(-1, index.reshape(-1), values.flatten(len(lead)))
    return out.view(*lead, table.height, table.width)


def output_shape(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int = 1) -> tuple[int, ...]:
    """``(B, Co, stride h, stride w)`` of input ``(B, Ci, h, w)`` and weight ``(Ci, Co / groups, ...)``."""
    return x.shape[0], weight.shape[1] * groups, x.shape[2] * stride, x.shape[3] * stride


def _check_inputs(x: torch.Tensor, weight: torch.Tensor, bias, stride: int, groups: int) -> None:
    name = "sphere_conv_transpose2d"
    if x.dim() != 4:
        raise ValueError(f"{name}: x must be (B, Ci, h, w), got shape {tuple(x.shape)}")
    if 0 in x.shape[2:]:
        raise ValueError(f"{name}: x must not be empty beyond (B, Ci), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"{name}: weight must be (Ci, Co / groups, k, k), got {tuple(weight.shape)}")
    if 0 in weight.shape[:2]:
        raise ValueError(f"{name}: weight must have at least one input and one output channel, got "
                         f"{tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"{name}: groups must be a positive divisor of the {weight.shape[0]} input "
                         f"channels, got {groups!r}")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"{name}: weight expects {weight.shape[0]} input channels, x has {x.shape[1]}")
    k = weight.shape[-1]
    if weight.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"{name}: the spatial kernel must be square and odd, got {tuple(weight.shape[-2:])}")
    co = weight.shape[1] * groups
    if bias is not None and bias.shape != (co,):
        raise ValueError(f"{name}: bias must have shape ({co},), got {tuple(bias.shape)}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"{name}: stride must be a positive int, got {stride!r}")
    check_dtypes_and_devices(name, x, weight, bias)


@follows_autocast
def sphere_conv_transpose2d_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                                      stride: int = 2, dilation: int = 1, interpolation: str = "nearest",
                                      stencil: str = "cap", groups: int = 1) -> torch.Tensor:
    """Ground truth of :func:`sphere_conv_transpose2d`: every input pixel's taps ``x . weight`` scattered
    into the output (the adjoint of :func:`~sphsal.ops.sphere_conv2d_reference`)."""
    _check_inputs(x, weight, bias, stride, groups)
    h, w = x.shape[-2] * stride, x.shape[-1] * stride
    validate_config(h, w, weight.shape[-1], stride, dilation, stencil, interpolation)
    table = neighbour_table(h, w, weight.shape[-1], stride, dilation, stencil, interpolation)
    kernel = _grouped(weight.reshape(*weight.shape[:2], -1), groups, 0)  # (g, Ci / g, Co / g, K)
    taps = torch.einsum("bqoij,qock->bqcikj", _grouped(x, groups, 1), kernel).flatten(1, 2)
    out = scatter_taps(taps, table)  # (B, Co, H, W)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


@follows_autocast
def sphere_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                            stride: int = 2, dilation: int = 1, interpolation: str = "nearest",
                            stencil: str = "cap", backend: str = "auto", groups: int = 1) -> torch.Tensor:
    """Transposed spherical convolution of ERP feature maps (see the module docstring).

    Args:
        x: ``(B, Ci, h, w)`` ERP input.
        weight: ``(Ci, Co / groups, k, k)``, ``k`` odd, laid out as ``nn.ConvTranspose2d`` weights.
        bias: ``(Co,)`` or None.
        stride: upsampling factor: the output ERP grid is ``(stride h, stride w)`` (``stride w`` even).
        dilation, interpolation, stencil: the stencil of the convolution it transposes (on the output
            grid, see :func:`~sphsal.ops.sphere_conv2d`).
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"cuda"`` (as :func:`~sphsal.ops.sphere_conv2d`).
        groups: as ``nn.ConvTranspose2d``.

    Returns:
        ``(B, Co, stride h, stride w)``, differentiable in ``x``, ``weight`` and ``bias``.
    """
    _check_inputs(x, weight, bias, stride, groups)
    k = weight.shape[-1]
    validate_config(x.shape[-2] * stride, x.shape[-1] * stride, k, stride, dilation, stencil, interpolation)
    chosen = _resolve_backend(x, backend, groups)
    # the fast kernels need at least one image, and differentiate in reverse mode only
    if chosen == "reference" or x.shape[0] == 0 or differentiated_by_transform(x, weight, bias):
        return sphere_conv_transpose2d_reference(x, weight, bias, stride, dilation, interpolation, stencil,
                                                 groups)
    if k == 1 and stride == 1:  # the stencil is each pixel itself (see sphere_conv2d)
        return F.conv_transpose2d(x, weight, bias, groups=groups)
    if chosen == "cpu":
        from sphsal.ops.cpu_transpose import banded_sphere_conv_transpose

        return banded_sphere_conv_transpose(x, weight, bias, stride, dilation, interpolation, stencil, groups)
    from sphsal.ops import cuda

    return cuda.sphere_conv_transpose2d_cuda(x, weight, bias, k, stride, dilation, interpolation, stencil)
