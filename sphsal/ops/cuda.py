"""CUDA backend of spherical convolution: the kernels in ``csrc/`` compiled at run time by NVRTC (CuPy).

Two kernel families: tensor-core implicit GEMMs (``sphere_conv_mma.cu``: mma.sync, float16, bfloat16,
and float32 as TF32) and exact float32 kernels (``sphere_conv.cu``), chosen by :func:`uses_tensor_cores`
the way ``nn.Conv2d`` chooses TF32. Both gather the stencil taps through the row-wise neighbour table
into shared memory; nothing K-times expanded is stored. The input gradient is the same gather kernel run
on the output gradient with the transposed weight and the table's inverse (:func:`_inverse_table`), so
it needs no atomics; the weight gradient is a split reduction with one float atomic per element and block.

The kernels are wrapped as the custom ops ``sphsal::sphere_conv2d_fwd``,
``sphsal::sphere_conv2d_weight_grad`` and ``sphsal::sphere_conv_transpose2d_fwd`` (the input-gradient
gather: the convolution's input gradient and the transposed convolution's forward), with
``torch.library.custom_op``, ``register_fake`` and ``register_autograd`` (each backward computes only the
gradients that are needed; the neighbour tables are looked up inside the ops, so ``torch.compile``
captures a layer as one call), and launched on PyTorch's current CUDA stream; products accumulate in
float32 and results come back in the input's dtype.
Importing this module needs neither CuPy nor a GPU; calling the ops without CuPy raises an
``ImportError`` saying what to install.
"""

from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import torch
from torch.utils.flop_counter import register_flop_formula

from sphsal.ops.sphere_conv import (
    planar_conv_flops,
    planar_conv_transpose_flops,
    reference_vjp,
    sphere_conv2d_reference,
    square_kernel_reference,
)
from sphsal.ops.sphere_conv_transpose import output_shape, sphere_conv_transpose2d_reference
from sphsal.ops.stencils import NeighbourTable, table_for
from sphsal.ops.time_fold import fold_time, unfold_time

__all__ = ["available", "kernel_source_path", "sphere_conv2d_cuda", "sphere_conv3d_cuda",
           "sphere_conv_transpose2d_cuda", "uses_tensor_cores"]

_TILE, _PER_THREAD = 32, 4  # exact kernels (sphere_conv.cu): tile and channels per thread
_MMA_TILE, _MMA_SLICE, _MMA_THREADS = 64, 32, 128  # sphere_conv_mma.cu: BM = BN, BK, 4 warps
_SHARED_FLOATS = 12288      # 48 KiB of dynamic shared memory
_DEFAULT_SHARED_BYTES = 48 * 1024  # static + dynamic shared memory a block may use without opting in
_MAX_GRID_Z = 65535         # blocks along a launch grid's z (and y) axis
_TYPE_NAMES = {torch.float32: "float", torch.float16: "half_t", torch.bfloat16: "bf16_t"}
_EXACT_KERNELS = ("sphere_conv_forward<float>", "sphere_conv_backward_weight<float>")
_MMA_KERNELS = tuple(f"{k}<{t}>" for k in ("sphere_conv_mma_gather", "sphere_conv_mma_weight_grad",
                                           "sphere_conv_mma_operands") for t in _TYPE_NAMES.values())


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
def _module(source: str, names: tuple[str, ...]):
    try:
        import cupy
    except ImportError as err:
        raise ImportError("the CUDA backend of sphsal.ops needs CuPy: pip install cupy-cuda12x "
                          "(or sphsal[cuda])") from err
    path = kernel_source_path(source)
    with open(path, encoding="utf-8") as f:
        code = f.read()
    return cupy.RawModule(code=code, options=("--std=c++14", f"-I{os.path.dirname(path)}"),
                          name_expressions=list(names))


@functools.lru_cache(maxsize=16)
def _stream(pointer: int, device: int):
    """CuPy's handle of stream ``pointer`` of CUDA device ``device`` (called with that device current)."""
    import cupy

    with warnings.catch_warnings():  # newer CuPy prefers Stream.from_external; this works in all versions
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(pointer)


@functools.cache
def _function(kernel: str, shared_bytes: int, device: int):
    """The compiled ``kernel`` (a name with its template argument) on CUDA device ``device`` (called with
    that device current), allowed ``shared_bytes`` of dynamic shared memory there (large tables opt in
    beyond the default 48 KiB; the limit is a per-device attribute)."""
    source, names = ("sphere_conv.cu", _EXACT_KERNELS) if kernel in _EXACT_KERNELS \
        else ("sphere_conv_mma.cu", _MMA_KERNELS)
    function = _module(source, names).get_function(kernel)
    if shared_bytes + function.shared_size_bytes > _DEFAULT_SHARED_BYTES:  # opt in (whatever the default)
        function.max_dynamic_shared_size_bytes = shared_bytes
    return function


def _launch(kernel: str, grid, block, args, shared_floats: int = 0) -> None:
    """Launch ``kernel`` on the device of its tensor arguments, on PyTorch's current stream there (CuPy
    launches on the current device, which need not be theirs); tensors are passed as device pointers."""

    def arg(v):
        if isinstance(v, torch.Tensor):
            return np.uint64(v.data_ptr())
        return np.int32(v)

    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    with torch.cuda.device(device):
        function = _function(kernel, 4 * shared_floats, device.index)
        with _stream(torch.cuda.current_stream(device).cuda_stream, device.index):
            function(grid, block, tuple(arg(a) for a in args), shared_mem=4 * shared_floats)


@functools.lru_cache(maxsize=8)
def _properties(index: int) -> tuple[bool, int]:
    props = torch.cuda.get_device_properties(index)
    return props.major >= 8, props.multi_processor_count


def _device_facts(x: torch.Tensor) -> tuple[bool, int]:
    """For CUDA tensor ``x``'s device: (has tensor-core mma.sync, i.e. compute capability >= 8.0;
    number of multiprocessors)."""
    return _properties(x.device.index if x.device.index is not None else torch.cuda.current_device())


def uses_tensor_cores(x: torch.Tensor) -> bool:
    """Whether CUDA tensor ``x`` is convolved by the tensor-core kernels: float16 and bfloat16 on GPUs of
    compute capability 8.0 or newer, and float32 there too (as TF32) while
    ``torch.backends.cudnn.allow_tf32`` is True (PyTorch's default, which ``nn.Conv2d`` follows);
    otherwise by the exact float32 kernels."""
    if not _device_facts(x)[0]:
        return False
    return x.dtype != torch.float32 or torch.backends.cudnn.allow_tf32


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _check_dtype(x: torch.Tensor) -> None:
    if x.dtype not in _TYPE_NAMES:
        raise ValueError(f"the CUDA backend supports float32, float16 and bfloat16, got {x.dtype}")


def _mma_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(Co, C, K)`` weight (any strides) -> the gather kernel's A operands ``(Co_pad, k_pad)`` in one
    launch: tap-major ``k = t * C + c``, zero-padded to whole ``64 x 32`` tiles, in ``dtype``, float32
    rounded to TF32."""
    co, c, k = weight.shape
    co_pad, k_pad = _ceil(co, _MMA_TILE) * _MMA_TILE, _ceil(k * c, _MMA_SLICE) * _MMA_SLICE
    operands = torch.empty(co_pad, k_pad, dtype=dtype, device=weight.device)
    weight = weight.to(dtype)
    _launch(f"sphere_conv_mma_operands<{_TYPE_NAMES[dtype]}>", (_ceil(co_pad * k_pad, 256), 1, 1),
            (256, 1, 1), (weight, operands, co, c, k, *weight.stride(), co_pad, k_pad))
    return operands


def _gather_conv(x: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 taps: torch.Tensor, stride: int, w_out: int) -> torch.Tensor:
    """``out[b, o, i, j] = sum_{c, t} weight[o, c, t] * sample_t(x[b, c], i, j)`` through the table
    ``(H_out, K, P)``: ``(B, C, H, W)`` contiguous x, ``(Co, C, K)`` weight (any strides) ->
    ``(B, Co, H_out, w_out)`` in x's dtype. One launch covers at most 65535 output rows ``B * H_out`` (the
    grid's z limit), larger batches run in parts (the input gradient has ``stride`` times the forward's
    rows: a batch whose forward fits may not)."""
    b, c, h, w = x.shape
    co, k, p, h_out = weight.shape[0], rows.shape[1], rows.shape[2], rows.shape[0]
    if b * h_out > _MAX_GRID_Z:
        if h_out > _MAX_GRID_Z:
            raise ValueError(f"the CUDA backend handles at most {_MAX_GRID_Z} output rows, got H_out={h_out}")
        return torch.cat([_gather_conv(part, weight, rows, cols, taps, stride, w_out)
                          for part in x.split(_MAX_GRID_Z // h_out)])
    if uses_tensor_cores(x):
        out = x.new_empty(b, co, h_out, w_out)
        operands = _mma_weight(weight, x.dtype)
        _launch(f"sphere_conv_mma_gather<{_TYPE_NAMES[x.dtype]}>",
                (_ceil(w_out, _MMA_TILE), operands.shape[0] // _MMA_TILE, b * h_out), (_MMA_THREADS, 1, 1),
                (x, operands, rows, cols, taps, out, b, c, h, w, co, k, p, h_out, w_out, stride,
                 operands.shape[1]), shared_floats=k * p * (_MMA_TILE + 1))
        return out
    xf, wf = x.float(), weight.float().contiguous()
    out = xf.new_empty(b, co, h_out, w_out)
    cc = max(1, min(8, _SHARED_FLOATS // (2 * k * _TILE)))
    _launch("sphere_conv_forward<float>", (_ceil(w_out, _TILE), _ceil(co, _TILE), b * h_out),
            (_TILE, _TILE // _PER_THREAD, 1),
            (xf, wf, rows, cols, taps, out, b, c, h, w, co, k, p, h_out, w_out, stride, cc),
            shared_floats=2 * cc * k * _TILE)
    return out.to(x.dtype)


def _weight_grad(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor, taps: torch.Tensor, stride: int) -> torch.Tensor:
    """``grad_w[o, c, t] = sum_{b, i, j} grad_out[b, o, i, j] * sample_t(x[b, c], i, j)``, float32
    ``(Co, C, K)``."""
    b, c, h, w = x.shape
    co, k, p, h_out, w_out = weight.shape[0], rows.shape[1], rows.shape[2], rows.shape[0], grad_out.shape[3]
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=x.device)
    if uses_tensor_cores(x):
        tiles = _ceil(co, _MMA_TILE) * _ceil(c * k, _MMA_TILE)
        sms = _device_facts(x)[1]
        per_block = max(1, _ceil(b * h_out * tiles, 4 * sms))  # about four blocks per multiprocessor
        _launch(f"sphere_conv_mma_weight_grad<{_TYPE_NAMES[x.dtype]}>",
                (_ceil(co, _MMA_TILE), _ceil(c * k, _MMA_TILE), _ceil(b * h_out, per_block)),
                (_MMA_THREADS, 1, 1),
                (grad_out, x, rows, cols, taps, grad_w, b, c, h, w, co, k, p, h_out, w_out, stride,
                 per_block), shared_floats=2 * k * p * (_MMA_SLICE + 1))
        return grad_w.view(co, k, c).transpose(1, 2)  # the kernel's layout is tap-major
    per_block = 4  # output rows per weight-gradient block
    grid = (_ceil(co, 16), _ceil(c, 16), k * _ceil(h_out, per_block))
    _launch("sphere_conv_backward_weight<float>", grid, (16, 16, 1),
            (grad_out.float(), x.float(), rows, cols, taps, grad_w, b, c, h, w, co, k, p, h_out, w_out,
             stride, per_block))
    return grad_w


def _input_grad(grad_out: torch.Tensor, weight: torch.Tensor, inv_rows: torch.Tensor, inv_cols: torch.Tensor,
                inv_taps: torch.Tensor, stride: int, width: int) -> torch.Tensor:
    """Input gradient ``(B, C, H, width)`` of the convolution with ``(Co, C, K)`` weight at the contiguous
    output gradient ``grad_out`` ``(B, Co, H_out, width / stride)``: the gather kernel on the output
    gradient (zero-inserted to the input's width when ``stride > 1``) with the transposed weight through
    the inverse table; in ``grad_out``'s dtype."""
    g_up = grad_out
    if stride > 1:
        b, co, h_out, _ = grad_out.shape
        g_up = grad_out.new_zeros(b, co, h_out, width)
        g_up[..., ::stride] = grad_out
    return _gather_conv(g_up, weight.transpose(0, 1), inv_rows, inv_cols, inv_taps, 1, width)


def _tables(x: torch.Tensor, kernel_size: int, stride: int, dilation: int, interpolation: str,
            stencil: str) -> tuple[torch.Tensor, ...]:
    """The device tables of ``x``'s ERP size (:func:`_device_table`)."""
    return _device_table(table_for(x, kernel_size, stride, dilation, interpolation, stencil), x.device)


@torch.library.custom_op("sphsal::sphere_conv2d_fwd", mutates_args=())
def _forward_op(x: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int, dilation: int,
                interpolation: str, stencil: str) -> torch.Tensor:
    """``(B, C, H, W)`` x, ``(Co, C, K)`` weight -> ``(B, Co, H / stride, W / stride)``. The tables are
    looked up here, inside the operator, so that ``torch.compile`` sees one opaque call."""
    _check_dtype(x)
    rows, cols, taps = _tables(x, kernel_size, stride, dilation, interpolation, stencil)[:3]
    return _gather_conv(x.contiguous(), weight.contiguous(), rows, cols, taps, stride, x.shape[3] // stride)


@_forward_op.register_fake
def _(x, weight, kernel_size, stride, *_):
    return x.new_empty(x.shape[0], weight.shape[0], x.shape[2] // stride, x.shape[3] // stride)


def _setup_context(ctx, inputs, output):
    x, weight, *ctx.config = inputs
    ctx.save_for_backward(x, weight)


def _double_differentiable(ctx, grad_out: torch.Tensor, op) -> tuple | None:
    """The backward's result by the reference of ``op`` when the gradient's graph is recorded, else None."""
    if not (torch.is_grad_enabled() and any(ctx.needs_input_grad[:2])):
        return None
    reference = square_kernel_reference(op, *ctx.config)
    grads = reference_vjp(reference, ctx.saved_tensors, ctx.needs_input_grad[:2], grad_out)
    return tuple(grads) + (None,) * len(ctx.config)


def _gradients(ctx, grad_out, reference, adjoint, transposed: bool):
    """The gradients that are needed of a convolution (``transposed=False``) or of its transpose: the
    input's is the other one of the pair applied to ``grad_out`` (``adjoint``: the gather through the
    inverse table, or the convolution), the weight's :func:`_weight_grad_op` of the convolution's input
    and output gradient (``x`` and ``grad_out``, swapped for the transpose)."""
    differentiable = _double_differentiable(ctx, grad_out, reference)
    if differentiable is not None:
        return differentiable
    x, weight = ctx.saved_tensors
    conv_input, conv_grad = (grad_out, x) if transposed else (x, grad_out)
    grad_x = adjoint(grad_out, weight, *ctx.config) if ctx.needs_input_grad[0] else None
    grad_w = _weight_grad_op(conv_grad, conv_input, weight, *ctx.config) if ctx.needs_input_grad[1] else None
    return (grad_x, grad_w) + (None,) * len(ctx.config)


def _backward(ctx, grad_out):
    """The convolution's gradients: the input's is a gather too (:func:`_transpose_op`, through the
    inverse table, no atomics), the weight's :func:`_weight_grad_op`."""
    return _gradients(ctx, grad_out, sphere_conv2d_reference, _transpose_op, transposed=False)


_forward_op.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("sphsal::sphere_conv2d_weight_grad", mutates_args=())
def _weight_grad_op(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, kernel_size: int,
                    stride: int, dilation: int, interpolation: str, stencil: str) -> torch.Tensor:
    """The weight gradient of :func:`_forward_op` alone (the transposed convolution's)."""
    grad_out, x = grad_out.contiguous(), x.contiguous()
    rows, cols, taps = _tables(x, kernel_size, stride, dilation, interpolation, stencil)[:3]
    return _weight_grad(grad_out, x, weight, rows, cols, taps, stride).to(weight.dtype).contiguous()


@_weight_grad_op.register_fake
def _(grad_out, x, weight, *_):
    return weight.new_empty(weight.shape)


@torch.library.custom_op("sphsal::sphere_conv_transpose2d_fwd", mutates_args=())
def _transpose_op(x: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int, dilation: int,
                  interpolation: str, stencil: str) -> torch.Tensor:
    """``(B, Ci, h, w)`` x, ``(Ci, Co, K)`` weight -> ``(B, Co, stride h, stride w)``: the input gradient of
    the convolution ``(B, Co, stride h, stride w) -> (B, Ci, h, w)`` at output gradient ``x``."""
    _check_dtype(x)
    shape = output_shape(x, weight, stride)
    out_like = x.new_empty(1, 1, 1, 1).expand(shape)  # the tables depend on its size only
    inverse = _tables(out_like, kernel_size, stride, dilation, interpolation, stencil)[3:]
    return _input_grad(x.contiguous(), weight.contiguous(), *inverse, stride, shape[3])


@_transpose_op.register_fake
def _(x, weight, kernel_size, stride, *_):
    return x.new_empty(output_shape(x, weight, stride))


def _transpose_backward(ctx, grad_out):
    """The convolution of ``grad_out`` (input gradient) and that convolution's weight gradient at output
    gradient ``x`` (weight gradient)."""
    return _gradients(ctx, grad_out, sphere_conv_transpose2d_reference, _forward_op, transposed=True)


_transpose_op.register_autograd(_transpose_backward, setup_context=_setup_context)


register_flop_formula(torch.ops.sphsal.sphere_conv2d_fwd)(planar_conv_flops)
register_flop_formula(torch.ops.sphsal.sphere_conv_transpose2d_fwd)(planar_conv_transpose_flops)


@register_flop_formula(torch.ops.sphsal.sphere_conv2d_weight_grad)
def _(grad_shape, x_shape, w_shape, *_, **__) -> int:
    return planar_conv_flops(x_shape, w_shape, out_shape=grad_shape)


@functools.lru_cache(maxsize=64)
def _inverse_table(table: NeighbourTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every input pixel row ``r`` and tap ``t``, who reads it: ``(H, K, Q)`` output rows ``i``,
    column shifts ``s`` and weights ``w`` such that the adjoint of the table's sampling is
    ``grad_x[r, col] = sum_{t, q} w * g_up[i, (col + s) mod W]`` per tap (``g_up``: the output gradient
    at input resolution, output column ``j`` at ``j * stride``). Entries with the same ``(i, s)`` are
    merged; unused ones have weight 0. Float64 weights, int64 indices, on the CPU."""
    h, w, k, h_out = table.height, table.width, table.num_taps, table.h_out
    used = table.weights != 0
    tap = torch.arange(k)[None, :, None].expand_as(table.rows)[used]
    out_row = torch.arange(h_out)[:, None, None].expand_as(table.rows)[used]
    key = ((table.rows[used] * k + tap) * h_out + out_row) * w + torch.remainder(-table.cols[used], w)
    keys, where = torch.unique(key, return_inverse=True)  # sorted, so grouped by (row, tap)
    weights = torch.zeros(len(keys), dtype=torch.float64).index_add_(0, where, table.weights[used])
    group = keys // (h_out * w)
    counts = torch.bincount(group, minlength=h * k)
    slot = torch.arange(len(keys)) - (torch.cumsum(counts, 0) - counts)[group]
    q = int(counts.max())
    rows, cols = torch.zeros(h * k, q, dtype=torch.long), torch.zeros(h * k, q, dtype=torch.long)
    taps = torch.zeros(h * k, q, dtype=torch.float64)
    rows[group, slot] = (keys // w) % h_out
    cols[group, slot] = keys % w
    taps[group, slot] = weights
    return rows.view(h, k, q), cols.view(h, k, q), taps.view(h, k, q)


@functools.lru_cache(maxsize=64)
def _device_table(table: NeighbourTable, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The table and its inverse as int32 / float32 tensors on ``device``."""
    tensors = (table.rows, table.cols, table.weights, *_inverse_table(table))
    return tuple(t.to(device=device, dtype=torch.float32 if t.is_floating_point() else torch.int32)
                 for t in tensors)


def sphere_conv2d_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel_size: int,
                       stride: int, dilation: int, interpolation: str, stencil: str) -> torch.Tensor:
    """``(B, Ci, H, W)`` CUDA input, ``(Co, Ci, k, k)`` weight -> ``(B, Co, H_out, W_out)``; the stencil
    arguments as :func:`~sphsal.ops.stencils.neighbour_table`."""
    weight = weight.to(x.dtype).reshape(*weight.shape[:2], -1)  # the kernels read both in x's dtype
    out = _forward_op(x, weight, kernel_size, stride, dilation, interpolation, stencil)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1).to(out.dtype)
    return out


def sphere_conv_transpose2d_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                                 kernel_size: int, stride: int, dilation: int, interpolation: str,
                                 stencil: str) -> torch.Tensor:
    """``(B, Ci, h, w)`` CUDA input, ``(Ci, Co, k, k)`` weight -> ``(B, Co, stride h, stride w)``: the
    transposed convolution (:func:`sphsal.ops.sphere_conv_transpose2d`) as the convolution's input
    gradient kernels."""
    weight = weight.to(x.dtype).reshape(*weight.shape[:2], -1)
    out = _transpose_op(x, weight, kernel_size, stride, dilation, interpolation, stencil)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1).to(out.dtype)
    return out


def sphere_conv3d_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel_size: int,
                       stride: int, dilation: int, interpolation: str, stencil: str,
                       stride_t: int) -> torch.Tensor:
    """``(B, Ci, T, H, W)`` CUDA clip (time zero-padded by ``kt // 2``): one image convolution of the
    clip with its temporal taps folded into channels (:mod:`sphsal.ops.time_fold`). Returns
    ``(B, Co, T_out, H_out, W_out)``."""
    co, ci, kt = weight.shape[:3]
    out = sphere_conv2d_cuda(fold_time(x, kt, stride_t), weight.reshape(co, ci * kt, *weight.shape[3:]), bias,
                             kernel_size, stride, dilation, interpolation, stencil)
    return unfold_time(out, x.shape[0])
