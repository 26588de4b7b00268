"""Spherical max and average pooling of ERP feature maps.

``kernel_size=3`` pools over the spherical-cap stencil (:mod:`sphsal.ops.stencils`, nearest sampling)
of each output pixel, so near the poles the window spreads over all longitudes as it should.
``kernel_size=2`` (with stride 2) pools each 2x2 block of ERP pixels: such a block is exactly one
latitude-longitude cell of the half-resolution ERP grid, it wraps nowhere and is unchanged by rotations
about the polar axis, so the planar 2x2 pool already is the spherical one and is used as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sphsal.ops.sphere_conv import differentiated_by_transform, gather_taps, reference_vjp, tap_index
from sphsal.ops.stencils import table_for, validate_config

__all__ = ["sphere_max_pool2d", "sphere_avg_pool2d"]


def _pool(x: torch.Tensor, kernel_size: int, stride: int, stencil: str, reduce: str) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    if 0 in x.shape[2:]:
        raise ValueError(f"x must not be empty beyond (B, C), got shape {tuple(x.shape)}")
    if kernel_size == 2:
        if stride != 2:
            raise ValueError(f"kernel_size=2 pools 2x2 ERP cells and needs stride=2, got stride={stride}")
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"2x2 spherical pooling needs an even ERP size, got {h}x{w}")
        return F.max_pool2d(x, 2) if reduce == "max" else F.avg_pool2d(x, 2)
    if kernel_size != 3:
        raise ValueError(f"kernel_size must be 2 or 3, got {kernel_size!r}")
    validate_config(x.shape[-2], x.shape[-1], 3, stride, 1, stencil, "nearest")
    if x.shape[0] == 0 or differentiated_by_transform(x):  # plain torch: any batch, any autograd transform
        return _stencil_pool(x, stride, stencil, reduce)
    return _stencil_pool_op(x, stride, stencil, reduce)


def _stencil_pool(x: torch.Tensor, stride: int, stencil: str, reduce: str) -> torch.Tensor:
    """Max or mean over the 3x3 stencil taps: ``(B, C, H, W)`` -> ``(B, C, H / stride, W / stride)``."""
    table = table_for(x, 3, stride, 1, "nearest", stencil)
    taps = gather_taps(x, table)  # (B, C, H_out, K, W_out)
    return taps.amax(dim=-2) if reduce == "max" else taps.mean(dim=-2)


@torch.library.custom_op("sphsal::sphere_pool", mutates_args=())
def _stencil_pool_op(x: torch.Tensor, stride: int, stencil: str, reduce: str) -> torch.Tensor:
    """:func:`_stencil_pool` as one operator, its table looked up inside (one opaque call to
    ``torch.compile``)."""
    return _stencil_pool(x, stride, stencil, reduce)


@_stencil_pool_op.register_fake
def _(x, stride, stencil, reduce):
    return x.new_empty(*x.shape[:2], x.shape[2] // stride, x.shape[3] // stride)


@torch.library.custom_op("sphsal::sphere_pool_backward", mutates_args=())
def _stencil_pool_backward_op(grad_out: torch.Tensor, x: torch.Tensor, stride: int, stencil: str,
                              reduce: str) -> torch.Tensor:
    """The input gradient of :func:`_stencil_pool_op` (contiguous, ``x``'s shape): each output's gradient
    goes to its window's maximum (the first one among equals) or, divided by the window size, to every
    tap. The max pool's taps are gathered again here rather than kept from the forward pass."""
    b, c, h, w = x.shape
    table = table_for(x, 3, stride, 1, "nearest", stencil)
    index = tap_index(table, w, x.device)[:, :, 0]  # (H_out, K, W_out), nearest: one sample per tap
    grad = x.new_zeros(b, c, h * w)
    if reduce == "max":
        first_max = gather_taps(x, table).max(dim=-2, keepdim=True).indices  # 9x faster than argmax
        source = index.expand(b, c, *index.shape).gather(-2, first_max)
        grad.scatter_add_(-1, source.reshape(b, c, -1), grad_out.reshape(b, c, -1))
    else:
        share = (grad_out / table.num_taps).unsqueeze(-2).expand(b, c, *index.shape)
        grad.index_add_(-1, index.reshape(-1), share.reshape(b, c, -1))
    return grad.view(b, c, h, w)


@_stencil_pool_backward_op.register_fake
def _(grad_out, x, stride, stencil, reduce):
    return x.new_empty(x.shape)


def _setup_context(ctx, inputs, output):
    x, *ctx.config = inputs
    ctx.save_for_backward(x)


def _backward(ctx, grad_out):
    x = ctx.saved_tensors[0]
    if torch.is_grad_enabled():  # create_graph: a gradient autograd can differentiate
        grad = reference_vjp(lambda x_: _stencil_pool(x_, *ctx.config), (x,), (True,), grad_out)[0]
    else:
        grad = _stencil_pool_backward_op(grad_out, x, *ctx.config)
    return (grad,) + (None,) * 3


_stencil_pool_op.register_autograd(_backward, setup_context=_setup_context)


def sphere_max_pool2d(x: torch.Tensor, kernel_size: int = 3, stride: int = 2,
                      stencil: str = "cap") -> torch.Tensor:
    """Max over each output pixel's spherical window: ``(B, C, H, W)`` -> ``(B, C, H/stride, W/stride)``.

    ``kernel_size`` 3 (spherical stencil, ``stride`` 1 or 2) or 2 (2x2 ERP cells, ``stride`` 2).
    """
    return _pool(x, kernel_size, stride, stencil, "max")


def sphere_avg_pool2d(x: torch.Tensor, kernel_size: int = 3, stride: int = 2,
                      stencil: str = "cap") -> torch.Tensor:
    """Mean over each output pixel's spherical window; arguments as :func:`sphere_max_pool2d`."""
    return _pool(x, kernel_size, stride, stencil, "mean")
