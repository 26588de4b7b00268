"""CUDA backend of spherical convolution: ``csrc/sphere_conv.cu`` compiled at run time by NVRTC (CuPy).

The kernels are wrapped as the custom ops ``sphsal::sphere_conv2d_fwd`` and ``sphsal::sphere_conv2d_bwd``
(``torch.library.custom_op`` with ``register_fake`` and ``register_autograd``) and launched on PyTorch's
current CUDA stream. float32, float16 and bfloat16 inputs are supported (float32 accumulation);
gradients are accumulated in float32 and returned in the input's dtype. Importing this module needs
neither CuPy nor a GPU; calling the ops without CuPy raises an ``ImportError`` saying what to install.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from sphsal.ops.stencils import NeighbourTable

__all__ = ["available", "kernel_source_path", "sphere_conv2d_cuda", "sphere_conv3d_cuda"]

_TILE, _PER_THREAD = 32, 4  # must match csrc/sphere_conv.cu
_SHARED_FLOATS = 12288      # 48 KiB of dynamic shared memory
_TYPE_NAMES = {torch.float32: "float", torch.float16: "half_t", torch.bfloat16: "bf16_t"}
_KERNELS = ("sphere_conv_forward", "sphere_conv_backward_input", "sphere_conv_backward_weight")


def available() -> bool:
    """Whether CuPy can be imported (the CUDA backend's only extra requirement)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_source_path(name: str = "sphere_conv.cu") -> str:
    """Path of a kernel source: ``sphsal/csrc/`` in an installed package, ``<repo>/csrc/`` in an
    editable install."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.path.join(here, "..", "csrc"), os.path.join(here, "..", "..", "csrc")):
        path = os.path.normpath(os.path.join(folder, name))
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"CUDA kernel source {name!r} not found in sphsal/csrc/ or <repo>/csrc/")


@functools.cache
def _module():
    try:
        import cupy
    except ImportError as err:
        raise ImportError("the CUDA backend of sphsal.ops needs CuPy: pip install cupy-cuda12x "
                          "(or sphsal[cuda])") from err
    with open(kernel_source_path(), encoding="utf-8") as f:
        code = f.read()
    names = [f"{k}<{t}>" for k in _KERNELS for t in _TYPE_NAMES.values()]
    return cupy.RawModule(code=code, options=("--std=c++14",), name_expressions=names)


def _kernel(name: str, dtype: torch.dtype):
    if dtype not in _TYPE_NAMES:
        raise ValueError(f"the CUDA backend supports float32, float16 and bfloat16, got {dtype}")
    return _module().get_function(f"{name}<{_TYPE_NAMES[dtype]}>")


def _launch(name: str, dtype: torch.dtype, grid, block, args, shared_floats: int = 0) -> None:
    import cupy

    def arg(v):
        if isinstance(v, torch.Tensor):
            return np.uint64(v.data_ptr())
        return np.int32(v)

    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
    with stream:
        _kernel(name, dtype)(grid, block, tuple(arg(a) for a in args), shared_mem=4 * shared_floats)


def _dims(x, weight, rows, stride):
    b, c, h, w = x.shape
    h_out, k, p = rows.shape
    return b, c, h, w, weight.shape[0], k, p, h_out, w // stride


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@torch.library.custom_op("sphsal::sphere_conv2d_fwd", mutates_args=())
def _forward_op(x: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                taps: torch.Tensor, stride: int) -> torch.Tensor:
    x, weight = x.contiguous(), weight.contiguous()
    b, c, h, w, co, k, p, h_out, w_out = _dims(x, weight, rows, stride)
    out = x.new_empty(b, co, h_out, w_out)
    cc = max(1, min(8, _SHARED_FLOATS // (2 * k * _TILE)))
    _launch("sphere_conv_forward", x.dtype, (_ceil(w_out, _TILE), _ceil(co, _TILE), b * h_out),
            (_TILE, _TILE // _PER_THREAD, 1),
            (x, weight, rows, cols, taps, out, b, c, h, w, co, k, p, h_out, w_out, stride, cc),
            shared_floats=2 * cc * k * _TILE)
    return out


@_forward_op.register_fake
def _(x, weight, rows, cols, taps, stride):
    return x.new_empty(x.shape[0], weight.shape[0], rows.shape[0], x.shape[3] // stride)


@torch.library.custom_op("sphsal::sphere_conv2d_bwd", mutates_args=())
def _backward_op(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor, taps: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    grad_out, x, weight = grad_out.contiguous(), x.contiguous(), weight.contiguous()
    b, c, h, w, co, k, p, h_out, w_out = _dims(x, weight, rows, stride)
    grad_x = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=x.device)
    oc = 32
    _launch("sphere_conv_backward_input", x.dtype, (_ceil(w_out, _TILE), _ceil(c, _TILE), b * h_out),
            (_TILE, _TILE // _PER_THREAD, 1),
            (grad_out, weight, rows, cols, taps, grad_x, b, c, h, w, co, k, p, h_out, w_out, stride, oc),
            shared_floats=2 * oc * _TILE)
    per_block = 4  # output rows per weight-gradient block
    grid = (_ceil(co, 16), _ceil(c, 16), k * _ceil(h_out, per_block))
    _launch("sphere_conv_backward_weight", x.dtype, grid, (16, 16, 1),
            (grad_out, x, rows, cols, taps, grad_w, b, c, h, w, co, k, p, h_out, w_out, stride, per_block))
    return grad_x.to(x.dtype), grad_w.to(weight.dtype)


@_backward_op.register_fake
def _(grad_out, x, weight, rows, cols, taps, stride):
    return torch.empty_like(x), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    x, weight, rows, cols, taps, stride = inputs
    ctx.save_for_backward(x, weight, rows, cols, taps)
    ctx.stride = stride


def _backward(ctx, grad_out):
    x, weight, rows, cols, taps = ctx.saved_tensors
    grad_x, grad_w = _backward_op(grad_out, x, weight, rows, cols, taps, ctx.stride)
    return grad_x, grad_w, None, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


@functools.lru_cache(maxsize=64)
def _device_table(table: NeighbourTable, device: torch.device):
    return (table.rows.to(device=device, dtype=torch.int32), table.cols.to(device=device, dtype=torch.int32),
            table.weights.to(device=device, dtype=torch.float32))


def sphere_conv2d_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       table: NeighbourTable) -> torch.Tensor:
    """``(B, Ci, H, W)`` CUDA input, ``(Co, Ci, k, k)`` weight -> ``(B, Co, H_out, W_out)``."""
    if x.shape[0] * table.h_out > 65535:
        raise ValueError(f"the CUDA backend handles at most 65535 output rows per call (B * H_out), got "
                         f"{x.shape[0]} x {table.h_out}; split the batch")
    rows, cols, taps = _device_table(table, x.device)
    weight = weight.to(x.dtype).reshape(*weight.shape[:2], -1)  # the kernels read both in x's dtype
    out = _forward_op(x, weight, rows, cols, taps, table.stride)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1).to(out.dtype)
    return out


def sphere_conv3d_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       table: NeighbourTable, stride_t: int) -> torch.Tensor:
    """``(B, Ci, T, H, W)`` CUDA clip: one 2D spherical convolution per temporal tap (time zero-padded
    by ``kt // 2``), frames folded into the batch. Returns ``(B, Co, T_out, H_out, W_out)``."""
    b, _, t, h, w = x.shape
    kt = weight.shape[2]
    pad = kt // 2
    t_out = (t + 2 * pad - kt) // stride_t + 1
    padded = torch.nn.functional.pad(x, (0, 0, 0, 0, pad, pad))
    out = None
    for d in range(kt):
        frames = padded[:, :, d: d + stride_t * (t_out - 1) + 1: stride_t].transpose(1, 2)
        y = sphere_conv2d_cuda(frames.reshape(b * t_out, -1, h, w), weight[:, :, d], None, table)
        out = y if out is None else out + y
    out = out.reshape(b, t_out, *out.shape[1:]).transpose(1, 2)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1, 1).to(out.dtype)
    return out
