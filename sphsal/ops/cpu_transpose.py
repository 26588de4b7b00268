"""Fast CPU path of the transposed spherical convolution: the custom operator
``sphsal::sphere_conv_transpose_cpu``.

The transposed convolution is the input gradient of the spherical convolution with the same weight
(:mod:`sphsal.ops.sphere_conv_transpose`), so it runs the fast convolution's backward pass
(:mod:`sphsal.ops.cpu_banded`: banded oneDNN convolutions and scattered pole rows) with the input as
the output gradient; its own gradients are that convolution's forward pass (for the input) and its
weight gradient (for the weight). Nothing but the input and the weight is saved for backward.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import register_flop_formula

from sphsal.ops.banded_plan import banded_plan
from sphsal.ops.cpu_banded import (
    _backward,
    _conv_backward_op,
    _conv_op,
    _memory_format,
    _setup_context,
)
from sphsal.ops.sphere_conv import planar_conv_transpose_flops, reference_vjp, square_kernel_reference
from sphsal.ops.sphere_conv_transpose import output_shape, sphere_conv_transpose2d_reference
from sphsal.ops.stencils import table_for

__all__ = ["banded_sphere_conv_transpose"]


@torch.library.custom_op("sphsal::sphere_conv_transpose_cpu", mutates_args=())
def _transpose_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel_size: int,
                  stride: int, dilation: int, interpolation: str, stencil: str, groups: int) -> torch.Tensor:
    """``x`` ``(B, Ci, h, w)`` float32/64, ``weight`` ``(Ci, Co / groups, K)`` -> ``(B, Co, stride h,
    stride w)``: the input gradient of the convolution ``(B, Co, stride h, stride w) -> (B, Ci, h, w)``
    at output gradient ``x``."""
    shape = output_shape(x, weight, stride, groups)
    out_like = torch.empty(shape, dtype=x.dtype, memory_format=_memory_format(x))  # values never read
    table = table_for(out_like, kernel_size, stride, dilation, interpolation, stencil)
    out, _ = _backward(banded_plan(table), table, 1, 1, out_like, weight, x, True, False, groups)
    return out if bias is None else out.add_(bias.view(1, -1, 1, 1))


@_transpose_op.register_fake
def _(x, weight, bias, kernel_size, stride, dilation, interpolation, stencil, groups):
    return x.new_empty(output_shape(x, weight, stride, groups)).contiguous(memory_format=_memory_format(x))


def _transpose_backward(ctx, grad_out):
    """Gradients from the saved ``x`` and ``weight`` (:func:`~sphsal.ops.cpu_banded._setup_context`)."""
    x, weight = ctx.saved_tensors
    kernel_size, stride, dilation, interpolation, stencil, groups = ctx.config
    stencil_args = (kernel_size, stride, dilation, interpolation, stencil, groups)
    need_x, need_w = ctx.needs_input_grad[:2]
    grad_x = grad_w = grad_b = None
    if torch.is_grad_enabled() and (need_x or need_w):  # create_graph: a gradient autograd can differentiate
        reference = square_kernel_reference(sphere_conv_transpose2d_reference, *stencil_args)
        grad_x, grad_w = reference_vjp(reference, (x, weight), (need_x, need_w), grad_out)
    else:
        if need_x:  # the convolution itself
            grad_x = _conv_op(grad_out, weight, None, 1, 1, *stencil_args)
        if need_w:  # the convolution's weight gradient, its input grad_out and its output gradient x
            grad_w = _conv_backward_op(x, grad_out, weight, False, True, 1, 1, *stencil_args)[1]
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_b = grad_out.sum(dim=(0, 2, 3))
    return (grad_x, grad_w, grad_b) + (None,) * len(ctx.config)


_transpose_op.register_autograd(_transpose_backward, setup_context=_setup_context)


register_flop_formula(torch.ops.sphsal.sphere_conv_transpose_cpu)(planar_conv_transpose_flops)


def banded_sphere_conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                                 stride: int, dilation: int, interpolation: str, stencil: str,
                                 groups: int) -> torch.Tensor:
    """Transposed spherical convolution ``(B, Ci, h, w)`` -> ``(B, Co, stride h, stride w)`` with weight
    ``(Ci, Co / groups, k, k)`` (see :func:`~sphsal.ops.sphere_conv_transpose2d`), in ``x``'s dtype
    (computed in float32 unless that is float64) and memory format."""
    if x.dtype not in (torch.float32, torch.float64):
        bias = None if bias is None else bias.float()
        return banded_sphere_conv_transpose(x.float(), weight.float(), bias, stride, dilation, interpolation,
                                            stencil, groups).to(x.dtype)
    k = weight.shape[-1]
    return _transpose_op(x, weight.reshape(*weight.shape[:2], -1), bias, k, stride, dilation, interpolation,
                         stencil, groups)
