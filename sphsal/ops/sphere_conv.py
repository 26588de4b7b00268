"""Spherical convolution on ERP images: functional ops, the plain-torch reference, backend choice.

``sphere_conv2d`` is a convolution whose ``k x k`` taps are the spherical stencil of each output pixel
(see :mod:`sphsal.ops.stencils`) instead of the planar neighbourhood. ``weight[..., a, b]`` multiplies
the tap at row offset ``a - k//2`` (down) and column offset ``b - k//2`` (right), as in ``nn.Conv2d``,
so planar weights apply unchanged. Longitude wraps across the seam and the stencil continues over the
poles; no value comes from zero padding (only the temporal axis of ``sphere_conv3d`` is zero-padded).

Backends: ``"reference"`` (gathers all taps, the ground truth), ``"cpu"`` (banded planar convolutions on
a channels-last layout and numba-gathered pole rows, :mod:`sphsal.ops.cpu_banded`), ``"cuda"`` (the
NVRTC kernel, :mod:`sphsal.ops.cuda`). ``"auto"`` picks ``"cuda"`` for CUDA tensors when CuPy is
importable (else the reference, with a one-time warning) and ``"cpu"`` otherwise; grouped convolutions
(``groups > 1``) of CUDA tensors take the reference, the kernel having no groups, and so do float64 CUDA
tensors (the kernel computes in float32, float16 and bfloat16). On every backend but
the reference, a spatial ``1 x 1`` kernel at stride 1 (whose one tap is each pixel itself) runs as the
planar 1x1 convolution.

The fast backends' operators carry a reverse-mode formula only: calls under a ``torch.func`` transform
(``jvp``, ``grad``, ``vmap``, ...) or with forward-mode tangents run the reference, and a gradient taken
with ``create_graph=True`` is the reference's (so double backward works, holding ``K`` times the input).
``torch.utils.flop_counter`` counts them as the planar convolution of the same shapes (the CUDA backward
operator computes both gradients and is counted for both).
"""

from __future__ import annotations

import functools
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import conv_flop_count

from sphsal._checks import check_integer
from sphsal.ops.stencils import NeighbourTable, table_for, validate_config
from sphsal.ops.time_fold import conv_frames_as_channels, frames_out

__all__ = ["sphere_conv2d", "sphere_conv3d", "sphere_conv2d_reference", "sphere_conv3d_reference",
           "gather_taps", "tap_index", "BACKENDS"]

BACKENDS = ("auto", "reference", "cpu", "cuda")
_warned_no_cupy = False
_warned_grouped_cuda = False


def tap_index(table: NeighbourTable, width: int, device: torch.device) -> torch.Tensor:
    """Flat pixel index ``row * width + col`` of every sample of the table in a ``width``-column image:
    ``(H_out, K, P, W_out)`` int64."""
    out_cols = torch.arange(table.w_out, device=device) * table.stride
    columns = torch.remainder(table.cols.to(device)[..., None] + out_cols, width)
    return table.rows.to(device)[..., None] * width + columns


def gather_taps(x: torch.Tensor, table: NeighbourTable) -> torch.Tensor:
    """All stencil samples of ``x`` ``(..., H, W)``: returns ``(..., H_out, K, W_out)``.

    Holds ``K`` times the output size in memory: this is the ground-truth path, not a fast one.
    """
    h, w = x.shape[-2:]
    index = tap_index(table, w, x.device)
    flat = x.reshape(*x.shape[:-2], h * w)
    samples = flat[..., index.reshape(-1)].reshape(*x.shape[:-2], *index.shape)
    weights = table.weights.to(device=x.device, dtype=x.dtype)[..., None]
    return (samples * weights).sum(dim=-2)


def _check_inputs(x: torch.Tensor, weight: torch.Tensor, bias, spatial_dims: int, name: str, groups: int = 1):
    dims = 2 + spatial_dims
    if x.dim() != dims:
        shape = "(B, C, H, W)" if spatial_dims == 2 else "(B, C, T, H, W)"
        raise ValueError(f"{name}: x must be {shape}, got shape {tuple(x.shape)}")
    if 0 in x.shape[2:]:
        raise ValueError(f"{name}: x must not be empty beyond (B, C), got shape {tuple(x.shape)}")
    if weight.dim() != dims:
        raise ValueError(f"{name}: weight must have {dims} dims (Co, Ci / groups, ...), "
                         f"got {tuple(weight.shape)}")
    if 0 in weight.shape[:2]:
        raise ValueError(f"{name}: weight must have at least one output and one input channel, got "
                         f"{tuple(weight.shape)}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"{name}: groups must be a positive divisor of the {weight.shape[0]} output "
                         f"channels, got {groups!r}")
    if weight.shape[1] * groups != x.shape[1]:
        raise ValueError(f"{name}: weight expects {weight.shape[1] * groups} input channels "
                         f"({weight.shape[1]} per group, groups={groups}), x has {x.shape[1]}")
    k = weight.shape[-1]
    if weight.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"{name}: the spatial kernel must be square and odd, got {tuple(weight.shape[-2:])}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise ValueError(f"{name}: bias must be a tensor of shape ({weight.shape[0]},) or None, got "
                         f"{type(bias).__name__}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{name}: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    check_dtypes_and_devices(name, x, weight, bias)


def follows_autocast(conv):
    """Make a spherical convolution ``conv(x, weight, bias=None, ...)`` behave under ``torch.autocast`` as
    aten's convolutions do (mixed-precision training passes half-precision activations to layers with
    float32 weights): ``x``, ``weight`` and ``bias`` cast to the autocast dtype of ``x``'s device, the
    body run with autocast off (its float32 arithmetic stays float32). As autocast does, float64 tensors
    are left as they are (a float64 layer on float64 input stays float64). Unchanged outside autocast."""

    @functools.wraps(conv)
    def wrapper(x, weight, bias=None, *args, **kwargs):
        kind = x.device.type
        if not (x.is_floating_point() and torch.amp.is_autocast_available(kind)
                and torch.is_autocast_enabled(kind)):
            return conv(x, weight, bias, *args, **kwargs)
        dtype = torch.get_autocast_dtype(kind)

        def cast(t):
            eligible = isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64
            return t.to(dtype) if eligible else t

        with torch.autocast(kind, enabled=False):
            return conv(cast(x), cast(weight), cast(bias), *args, **kwargs)

    return wrapper


def check_dtypes_and_devices(name: str, x: torch.Tensor, weight: torch.Tensor, bias) -> None:
    """As ``nn.Conv2d``: ``x`` floating point, and ``weight`` and ``bias`` of its dtype and on its device
    (an integer image would otherwise be convolved and truncated back to integers); under
    ``torch.autocast`` the callers first cast all three (:func:`follows_autocast`)."""
    if not x.is_floating_point():
        raise ValueError(f"{name}: x must be a floating-point tensor, got {x.dtype}")
    for label, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            raise ValueError(f"{name}: x is {x.dtype} on {x.device} but {label} is {t.dtype} on {t.device}; "
                             f"move the layer to x's dtype and device (module.to(x))")


def _grouped(tensor: torch.Tensor, groups: int, dim: int) -> torch.Tensor:
    """Split dimension ``dim`` (channels) of ``tensor`` into ``(groups, channels / groups)``."""
    return tensor.unflatten(dim, (groups, -1))


@follows_autocast
def sphere_conv2d_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                            stride: int = 1, dilation: int = 1, interpolation: str = "nearest",
                            stencil: str = "cap", groups: int = 1) -> torch.Tensor:
    """Ground truth of :func:`sphere_conv2d`: gather every tap, then contract with the weight (output
    channels of group ``q`` read the input channels of group ``q`` only)."""
    _check_inputs(x, weight, bias, 2, "sphere_conv2d", groups)
    table = table_for(x, weight.shape[-1], stride, dilation, interpolation, stencil)
    taps = _grouped(gather_taps(x, table), groups, 1)  # (B, g, C / g, H_out, K, W_out)
    kernel = _grouped(weight.reshape(*weight.shape[:2], -1), groups, 0)  # (g, Co / g, C / g, K)
    out = torch.einsum("bqcikj,qock->bqoij", taps, kernel).flatten(1, 2)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


@follows_autocast
def sphere_conv3d_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                            stride: int | tuple[int, int] = 1, dilation: int = 1,
                            interpolation: str = "nearest", stencil: str = "cap",
                            groups: int = 1) -> torch.Tensor:
    """Ground truth of :func:`sphere_conv3d`: zero-padded planar time, gathered spherical taps."""
    _check_inputs(x, weight, bias, 3, "sphere_conv3d", groups)
    stride_t, stride_s = _split_stride(stride)
    kt = weight.shape[2]
    table = table_for(x, weight.shape[-1], stride_s, dilation, interpolation, stencil)
    taps = gather_taps(x, table)  # (B, C, T, H_out, K, W_out)
    pad = kt // 2
    taps = F.pad(taps, (0, 0, 0, 0, 0, 0, pad, pad))
    t_out = frames_out(x.shape[2], kt, stride_t)
    windows = torch.stack([taps[:, :, d: d + stride_t * (t_out - 1) + 1: stride_t] for d in range(kt)], dim=3)
    kernel = _grouped(weight.reshape(*weight.shape[:3], -1), groups, 0)  # (g, Co / g, C / g, kt, K)
    out = torch.einsum("bqctdikj,qocdk->bqotij", _grouped(windows, groups, 1), kernel).flatten(1, 2)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1, 1)
    return out


def _split_stride(stride) -> tuple[int, int]:
    """``stride`` of sphere_conv3d: an int (both), ``(temporal, spatial)`` or ``(t, s, s)``, each a
    positive integer (whole floats accepted); returns ``(stride_t, stride_s)``."""
    try:
        parts = (stride, stride) if isinstance(stride, numbers.Real) else tuple(stride)
    except TypeError:
        parts = ()
    if isinstance(stride, (str, bytes)) or not (len(parts) == 2 or len(parts) == 3 and parts[1] == parts[2]):
        raise ValueError(f"sphere_conv3d: stride must be an int, (temporal, spatial) or (t, s, s), "
                         f"got {stride!r}")
    stride_t, stride_s = parts[:2]
    return (check_integer(stride_t, "sphere_conv3d: temporal stride", whole_floats=True),
            check_integer(stride_s, "sphere_conv3d: spatial stride", whole_floats=True))


def differentiated_by_transform(*tensors) -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vjp``, ``jvp``, ``jacrev``, ``vmap``, ...) is active
    or any of ``tensors`` carries a forward-mode tangent (``torch.autograd.forward_ad``). The fast
    kernels are custom operators with a reverse-mode formula only (under ``jvp`` their tangents came out
    zero, under ``grad`` they failed): such calls take the plain-torch reference, which every transform
    differentiates. Not checked while ``torch.compile`` traces."""
    if torch.compiler.is_compiling():
        return False
    if torch._C._are_functorch_transforms_active():
        return True
    unpack = torch.autograd.forward_ad.unpack_dual
    return any(t is not None and unpack(t).tangent is not None for t in tensors)


def reference_vjp(reference, inputs: tuple, needs: tuple, grad_out: torch.Tensor) -> list:
    """Gradients of ``reference(*inputs)`` for the ``inputs`` whose ``needs`` flag is set (None for the
    others), as a differentiable graph: the fast operators' backward passes call this when the graph of
    the gradient is recorded (``create_graph=True``, double backward), since their own backward kernels
    have no derivative."""
    with torch.enable_grad():
        wanted = [t for t, need in zip(inputs, needs) if need]
        grads = iter(torch.autograd.grad(reference(*inputs), wanted, grad_out, create_graph=True))
    return [next(grads) if need else None for need in needs]


def square_kernel_reference(op, kernel_size: int, *args):
    """``(x, weight) -> op(x, weight, None, *args)`` with a fast operator's ``(C0, C1, K)`` weight viewed as
    ``(C0, C1, k, k)``: the plain reference of that operator, for :func:`reference_vjp`."""
    return lambda x, weight: op(x, weight.view(*weight.shape[:2], kernel_size, kernel_size), None, *args)


def planar_conv_flops(x_shape, w_shape, *_, out_shape, **__) -> int:
    """``torch.utils.flop_counter`` formula of the fast operators (``x``, ``weight`` first; weight
    ``(C_out, C_in / groups, ...)``): the planar convolution's count, the interpolation of bilinear taps
    not counted."""
    return conv_flop_count(x_shape, w_shape, out_shape)


def planar_conv_transpose_flops(x_shape, w_shape, *_, out_shape, **__) -> int:
    """As :func:`planar_conv_flops` for the transposed operators (weight ``(C_in, C_out / groups, ...)``)."""
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=True)


def _resolve_backend(x: torch.Tensor, backend: str, groups: int = 1) -> str:
    global _warned_no_cupy, _warned_grouped_cuda
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        if backend == "cpu" and x.is_cuda:
            raise ValueError("backend='cpu' needs a CPU tensor, got a CUDA tensor")
        if backend == "cuda" and not x.is_cuda:
            raise ValueError("backend='cuda' needs a CUDA tensor, got a CPU tensor")
        if backend == "cuda" and groups != 1:
            raise ValueError(f"backend='cuda' has no grouped convolution (groups={groups}); use 'auto' or "
                             "'reference'")
        return backend
    if not x.is_cuda:
        return "cpu" if x.device.type == "cpu" else "reference"
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):  # not a dtype of the CUDA kernels
        return "reference"
    if groups != 1:
        if not _warned_grouped_cuda:
            warnings.warn(f"the CUDA kernel has no grouped convolution: groups={groups} on CUDA tensors runs "
                          "the reference path (it holds k*k times the input for backward)", stacklevel=3)
            _warned_grouped_cuda = True
        return "reference"
    from sphsal.ops import cuda

    if cuda.available():
        return "cuda"
    if not _warned_no_cupy:
        warnings.warn("CuPy is not installed: sphere_conv on CUDA tensors falls back to the slow "
                      "reference path; install the 'cuda' extra (pip install cupy-cuda12x)", stacklevel=3)
        _warned_no_cupy = True
    return "reference"


@follows_autocast
def sphere_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: int = 1, dilation: int = 1, interpolation: str = "nearest", stencil: str = "cap",
                  backend: str = "auto", groups: int = 1) -> torch.Tensor:
    """Spherical convolution of ERP feature maps.

    Args:
        x: ``(B, Ci, H, W)`` ERP input (``W`` even, ``H`` and ``W`` divisible by ``stride``).
        weight: ``(Co, Ci / groups, k, k)``, ``k`` odd, laid out as ``nn.Conv2d`` weights.
        bias: ``(Co,)`` or None.
        stride: output ERP grid ``(H / stride, W / stride)``.
        dilation: stencil radius in input pixel pitches ``pi / H`` per ring.
        interpolation: ``"nearest"`` or ``"bilinear"`` sampling of the stencil points.
        stencil: ``"cap"`` (GTSD) or ``"gnomonic"`` (SphereNet).
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"cuda"``.
        groups: as ``nn.Conv2d``: ``Ci`` and ``Co`` split into ``groups`` blocks, output block ``q``
            reading input block ``q`` only (``groups = Ci``: depthwise). The CUDA kernel has no groups:
            grouped convolutions of CUDA tensors run the reference path.

    Returns:
        ``(B, Co, H / stride, W / stride)``, differentiable in ``x``, ``weight`` and ``bias``.
    """
    _check_inputs(x, weight, bias, 2, "sphere_conv2d", groups)
    validate_config(x.shape[-2], x.shape[-1], weight.shape[-1], stride, dilation, stencil, interpolation)
    chosen = _resolve_backend(x, backend, groups)
    # the fast kernels need at least one image, and differentiate in reverse mode only
    if chosen == "reference" or x.shape[0] == 0 or differentiated_by_transform(x, weight, bias):
        return sphere_conv2d_reference(x, weight, bias, stride, dilation, interpolation, stencil, groups)
    if weight.shape[-1] == 1 and stride == 1:  # the stencil is each pixel itself: a planar 1x1 convolution
        return F.conv2d(x, weight, bias, groups=groups)
    if chosen == "cpu":
        from sphsal.ops.cpu_banded import banded_sphere_conv

        return banded_sphere_conv(x, weight.reshape(*weight.shape[:2], 1, -1), bias, weight.shape[-1], stride,
                                  dilation, interpolation, stencil, groups=groups)
    from sphsal.ops import cuda

    return cuda.sphere_conv2d_cuda(x, weight, bias, weight.shape[-1], stride, dilation, interpolation,
                                   stencil)


@follows_autocast
def sphere_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: int | tuple[int, int] = 1, dilation: int = 1, interpolation: str = "nearest",
                  stencil: str = "cap", backend: str = "auto", groups: int = 1) -> torch.Tensor:
    """Spatio-temporal convolution: planar in time, spherical in space.

    Args:
        x: ``(B, Ci, T, H, W)`` ERP clip.
        weight: ``(Co, Ci / groups, kt, k, k)`` as ``nn.Conv3d`` (``k`` odd).
        bias: ``(Co,)`` or None.
        stride: int, ``(temporal, spatial)`` or ``(t, s, s)``.
        dilation, interpolation, stencil, backend, groups: as :func:`sphere_conv2d` (spatial only).

    Time is zero-padded by ``kt // 2`` on both ends (``nn.Conv3d`` with ``padding=kt//2``), so the
    output has ``(T + 2 (kt//2) - kt) // stride_t + 1`` frames. Returns
    ``(B, Co, T_out, H / s, W / s)``. A clip shorter than the kernel (``T < kt``) runs as one image
    convolution with its frames as channels (:func:`sphsal.ops.time_fold.frames_weight`; ``groups = 1``).
    """
    _check_inputs(x, weight, bias, 3, "sphere_conv3d", groups)
    stride_t, stride_s = _split_stride(stride)
    chosen = _resolve_backend(x, backend, groups)
    # the fast kernels need at least one clip, and differentiate in reverse mode only
    if chosen == "reference" or x.shape[0] == 0 or differentiated_by_transform(x, weight, bias):
        return sphere_conv3d_reference(x, weight, bias, (stride_t, stride_s), dilation, interpolation,
                                       stencil, groups)
    validate_config(x.shape[-2], x.shape[-1], weight.shape[-1], stride_s, dilation, stencil, interpolation)
    frames, kt = x.shape[2], weight.shape[2]
    if weight.shape[-1] == 1 and stride_s == 1:  # each pixel itself (see sphere_conv2d), planar in time
        return F.conv3d(x, weight, bias, (stride_t, 1, 1), (kt // 2, 0, 0), groups=groups)
    if frames < kt and groups == 1:  # frames as channels: T / kt of the work (see sphsal.ops.time_fold)
        return conv_frames_as_channels(x, weight, bias, stride_t, kt // 2, lambda images, w, b: sphere_conv2d(
            images, w, b, stride_s, dilation, interpolation, stencil, chosen))
    if chosen == "cpu":
        from sphsal.ops.cpu_banded import banded_sphere_conv

        return banded_sphere_conv(x, weight.reshape(*weight.shape[:3], -1), bias, weight.shape[-1], stride_s,
                                  dilation, interpolation, stencil, stride_t, groups)
    from sphsal.ops import cuda

    return cuda.sphere_conv3d_cuda(x, weight, bias, weight.shape[-1], stride_s, dilation, interpolation,
                                   stencil, stride_t)
