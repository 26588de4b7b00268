"""Spherical convolution layers: drop-in replacements of ``nn.Conv2d`` / ``nn.Conv3d`` on ERP maps.

They subclass the planar layers, so parameter names and shapes (``weight`` ``(Co, Ci, k, k)`` or
``(Co, Ci, kt, k, k)``, ``bias`` ``(Co,)``) are identical and planar state dicts load unchanged; only
``forward`` differs (:func:`sphsal.ops.sphere_conv2d` / :func:`sphsal.ops.sphere_conv3d`). Like the
planar layers they take unbatched inputs (no leading batch axis), and ``torch.fx.symbolic_trace`` records
each call as one node (the functions they call are ``torch.fx.wrap``-ped leaves). The
inherited ``padding`` attribute records the equivalent planar "same" padding (``k // 2 * dilation``
spatially, ``kt // 2`` in time): the spherical layers never zero-pad in space (longitude wraps, the
stencil continues over the poles) and zero-pad time by ``kt // 2`` frames.
"""

from __future__ import annotations

import torch
from torch import nn

from sphsal.ops.sphere_conv import sphere_conv2d, sphere_conv3d
from sphsal.ops.stencils import INTERPOLATIONS, STENCILS

__all__ = ["SphericalConv2d", "SphericalConv3d", "padding_problem"]


def _same_pair(value, name: str) -> int:
    """An int, or a tuple of equal ints (the spatial axes must agree on the sphere)."""
    if isinstance(value, int):
        return value
    values = tuple(value)
    if len(set(values)) != 1:
        raise ValueError(f"{name} must be equal along both spatial axes, got {value!r}")
    return int(values[0])


def _time_space(value, name: str) -> tuple[int, int]:
    """``(temporal, spatial)`` of an int or a ``(t, s, s)`` triple."""
    if isinstance(value, int):
        return value, value
    if len(value) != 3:
        raise ValueError(f"{name} must be an int or (t, s, s), got {value!r}")
    return int(value[0]), _same_pair(value[1:], name)


def with_batch(op, layer: str, x: torch.Tensor, dims: tuple[str, ...], *args) -> torch.Tensor:
    """``op(x, *args)`` for a batched ``x`` of shape ``(B, *dims)``; an unbatched ``x`` of shape ``dims`` (as
    the planar layers accept) runs with a batch axis added, then removed. Other ranks: a ValueError."""
    if x.dim() == len(dims) + 1:
        return op(x, *args)
    if x.dim() == len(dims):
        return op(x.unsqueeze(0), *args).squeeze(0)
    shape = ", ".join(dims)
    raise ValueError(f"{layer}: x must be (B, {shape}) or unbatched ({shape}), got shape {tuple(x.shape)}")


@torch.fx.wrap
def _conv2d(x: torch.Tensor, weight: torch.Tensor, bias, stride: int, dilation: int, interpolation: str,
            stencil: str, backend: str, groups: int) -> torch.Tensor:
    """:func:`sphere_conv2d` of ``(B, Ci, H, W)`` or ``(Ci, H, W)``; an fx leaf."""
    return with_batch(sphere_conv2d, "SphericalConv2d", x, ("Ci", "H", "W"), weight, bias, stride, dilation,
                      interpolation, stencil, backend, groups)


@torch.fx.wrap
def _conv3d(x: torch.Tensor, weight: torch.Tensor, bias, stride: tuple[int, int], dilation: int,
            interpolation: str, stencil: str, backend: str, groups: int) -> torch.Tensor:
    """:func:`sphere_conv3d` of ``(B, Ci, T, H, W)`` or ``(Ci, T, H, W)``; an fx leaf."""
    return with_batch(sphere_conv3d, "SphericalConv3d", x, ("Ci", "T", "H", "W"), weight, bias, stride,
                      dilation, interpolation, stencil, backend, groups)


def _check_options(kernel_size: int, interpolation: str, stencil: str) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if stencil not in STENCILS:
        raise ValueError(f"stencil must be one of {STENCILS}, got {stencil!r}")


def padding_problem(padding, same: tuple[int, ...]) -> str | None:
    """Why a planar ``padding`` argument (int, tuple, ``"same"`` or ``"valid"``; None: not given) has no
    spherical meaning, or None: only the "same" padding ``same`` does (a spherical layer never zero-pads
    in space: longitude wraps and the stencil continues over the poles)."""
    if padding is None or padding == "same":
        return None
    given = 0 if padding == "valid" else padding  # nn.Conv2d's "valid": no padding
    values = (given,) * len(same) if isinstance(given, int) else tuple(given)
    if values != same:
        return f"padding={padding!r} is not the 'same' padding {same} that the spherical layer implies"
    return None


def _check_padding(padding, same: tuple[int, ...]) -> None:
    problem = padding_problem(padding, same)
    if problem:
        raise ValueError(f"{problem} (it does not zero-pad in space: longitude wraps, the stencil continues "
                         "over the poles)")


def padding_mode_problem(padding_mode: str, temporal: bool = False) -> str | None:
    """Why a planar ``padding_mode`` has no spherical meaning, or None for ``"zeros"`` (the default): a
    spherical layer does not pad in space (longitude wraps, the stencil continues over the poles) and
    zero-pads time (``temporal``), so any other mode would be dropped."""
    if padding_mode == "zeros":
        return None
    what = "zero-pads time and does not pad in space" if temporal else "does not pad in space"
    return f"padding_mode={padding_mode!r}: the spherical layer {what}, so only 'zeros' keeps its meaning"


def _check_padding_mode(layer: str, padding_mode: str, temporal: bool = False) -> None:
    problem = padding_mode_problem(padding_mode, temporal)
    if problem:
        raise ValueError(f"{layer}: {problem}")


class SphericalConv2d(nn.Conv2d):
    """Spherical convolution ``(B, Ci, H, W)`` -> ``(B, Co, H / stride, W / stride)`` on ERP maps (or
    unbatched ``(Ci, H, W)`` -> ``(Co, H / stride, W / stride)``, as ``nn.Conv2d``).

    The leading arguments are ``nn.Conv2d``'s, in its order (``SphericalConv2d(3, 8, 5, 1, 2)`` is
    ``nn.Conv2d(3, 8, 5, 1, 2)`` on the sphere); the spherical options are keyword-only.

    Args:
        in_channels, out_channels: as ``nn.Conv2d``.
        kernel_size: odd ``k`` (int or ``(k, k)``).
        stride: 1 or any divisor of ``H`` and ``W`` (the output is an ERP grid of that size).
        padding: accepted so that ``nn.Conv2d`` arguments carry over: only ``k // 2 * dilation`` (as an
            int or pair) or ``"same"``, the padding that the layer's output size implies.
        dilation: stencil radius in input pixel pitches per ring.
        groups: as ``nn.Conv2d`` (``in_channels`` and ``out_channels`` divisible by it; ``groups =
            in_channels`` is a depthwise convolution); weight ``(Co, Ci / groups, k, k)``.
        bias: learn a bias.
        interpolation: ``"nearest"`` or ``"bilinear"``.
        stencil: ``"cap"`` (GTSD) or ``"gnomonic"`` (SphereNet).
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"cuda"`` (see :func:`sphsal.ops.sphere_conv2d`).
        padding_mode: accepted so that ``nn.Conv2d`` arguments carry over: only ``"zeros"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, *, interpolation: str = "nearest", stencil: str = "cap",
                 backend: str = "auto", padding_mode: str = "zeros", device=None, dtype=None):
        k = _same_pair(kernel_size, "kernel_size")
        s = _same_pair(stride, "stride")
        d = _same_pair(dilation, "dilation")
        _check_padding_mode("SphericalConv2d", padding_mode)
        _check_options(k, interpolation, stencil)
        _check_padding(padding, (k // 2 * d,) * 2)
        super().__init__(in_channels, out_channels, k, stride=s, padding=k // 2 * d, dilation=d,
                         groups=groups, bias=bias, device=device, dtype=dtype)
        self.interpolation, self.stencil, self.backend = interpolation, stencil, backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv2d(x, self.weight, self.bias, self.stride[0], self.dilation[0], self.interpolation,
                       self.stencil, self.backend, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, interpolation={self.interpolation}, stencil={self.stencil}"


class SphericalConv3d(nn.Conv3d):
    """Spatio-temporal convolution on ERP clips ``(B, Ci, T, H, W)`` (or unbatched ``(Ci, T, H, W)``, as
    ``nn.Conv3d``): planar in time, spherical in space.

    Args:
        kernel_size: int ``k`` (``kt = k``) or ``(kt, k, k)`` with ``k`` odd.
        stride: int (time and space) or ``(st, s, s)``.
        dilation: spatial stencil dilation (int or ``(1, d, d)``; no temporal dilation).
        padding: only ``(kt // 2, k // 2 * d, k // 2 * d)`` (or that int) or, for an odd ``kt``, ``"same"``
            (``nn.Conv3d``'s "same" pads an even ``kt`` unevenly, keeping ``T`` frames; this layer's
            ``kt // 2`` frames on both ends give ``T + 1``).
        padding_mode: only ``"zeros"`` (as ``nn.Conv3d``'s default; time is zero-padded).
        Other arguments as :class:`SphericalConv2d` (``nn.Conv3d``'s leading arguments in its order, the
        spherical options keyword-only).

    Time is zero-padded by ``kt // 2`` frames (``nn.Conv3d(..., padding=kt // 2)``), so
    ``T_out = (T + 2 (kt // 2) - kt) // st + 1``; space gives ``(H / s, W / s)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, bias: bool = True, *, interpolation: str = "nearest", stencil: str = "cap",
                 backend: str = "auto", padding_mode: str = "zeros", device=None, dtype=None):
        _check_padding_mode("SphericalConv3d", padding_mode, temporal=True)
        kt, k = _time_space(kernel_size, "kernel_size")
        st, s = _time_space(stride, "stride")
        d = dilation if isinstance(dilation, int) else _time_space(dilation, "dilation")[1]
        if not isinstance(dilation, int) and int(dilation[0]) != 1:
            raise ValueError(f"temporal dilation is not supported, got dilation={dilation!r}")
        _check_options(k, interpolation, stencil)
        if padding == "same" and kt % 2 == 0:
            raise ValueError(f"SphericalConv3d: padding='same' with the even temporal kernel of "
                             f"kernel_size={kernel_size!r} is not supported: nn.Conv3d pads it unevenly to "
                             "keep T frames, this layer zero-pads kt // 2 frames at both ends (T + 1 frames, "
                             "what padding=None gives)")
        _check_padding(padding, (kt // 2, k // 2 * d, k // 2 * d))
        super().__init__(in_channels, out_channels, (kt, k, k), stride=(st, s, s),
                         padding=(kt // 2, k // 2 * d, k // 2 * d), dilation=(1, d, d), groups=groups,
                         bias=bias, device=device, dtype=dtype)
        self.interpolation, self.stencil, self.backend = interpolation, stencil, backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv3d(x, self.weight, self.bias, (self.stride[0], self.stride[1]), self.dilation[1],
                       self.interpolation, self.stencil, self.backend, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, interpolation={self.interpolation}, stencil={self.stencil}"
