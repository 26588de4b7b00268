"""Cached resampling plans shared by every projection.

A :class:`SamplingPlan` samples a *source atlas* at fixed output positions. The atlas is a
``(B, C, Hs, Ws)`` image: an ERP image, the six cube faces stacked vertically ``(6F, F)`` or a
perspective view; a HEALPix map ``(B, C, Npix)`` is sampled by a gather-only plan.

Bilinear sampling runs in two parts, chosen because they measured fastest on CPU
(``benchmarks/bench_projections.py``):

* ``torch.nn.functional.grid_sample`` on the unpadded atlas, with a cached grid, for every output;
* a gather (cached tap indices and weights, ``index_select``) that overwrites the few outputs whose
  bilinear taps leave the atlas cell their point belongs to: the ERP columns next to the +-180 deg
  seam, the rows next to the poles, and the cube-face edges. Those taps are resolved to their true
  spherical neighbours, so no output ever reads padding.

This gives the values of :func:`sphsal.sphere.sample_equirect` (the plain-torch reference, which
pads the whole image first) without copying the image on every call: equal to rounding for bilinear,
and identical for nearest except at exact ties between two pixel centres. Nearest sampling reads the
chosen pixel centre through ``grid_sample`` and needs no gather.

Plans are built once in float64 on the CPU (``build_plan``), then converted to the caller's device
and dtype; both steps are cached (:func:`cached_plan`). Projections apply them through the custom
operator ``sphsal::sample_plan`` (:mod:`sphsal.projections._plan_op`), whose backward pass is the
plan's explicit adjoint (:meth:`SamplingPlan.adjoint`), so that ``torch.compile`` never traces plan
building.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sphsal._checks import check_integer
from sphsal.projections import _plan_op
from sphsal.sphere import directions_to_pixels, sampling_dtype

MODES = ("bilinear", "nearest")
_GRID_SAMPLER_MODES = {"bilinear": 0, "nearest": 1}  # aten's interpolation_mode codes
_BORDER_PADDING = 1  # aten's padding_mode code of padding_mode="border"

# resolve(rows, cols, points) -> the source of the (n,) integer taps (rows, cols) that lie outside the
# atlas cell of their output points (flat output indices ``points``): either (n,) flat source indices
# (the tap is one atlas pixel) or a pair ``(indices, weights)`` of (S, n) tensors (the tap is a weighted
# sum of S atlas pixels, e.g. bilinear interpolation on a neighbouring cube face).
Resolver = Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                    torch.Tensor | tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, eq=False)
class SamplingPlan:
    """Fixed resampling from a source atlas to ``out_shape`` output positions.

    Attributes:
        out_shape: trailing output shape, e.g. ``(6F, F)`` or ``(Npix,)``.
        mode: ``"bilinear"`` or ``"nearest"``.
        grid: ``(1, 1, N, 2)`` ``grid_sample`` coordinates (``align_corners=True``) or ``None`` for a
            gather-only plan.
        fix_index: ``(M,)`` flat output positions taken from the gather instead of the grid
            (``None``: the gather produces all ``N`` outputs).
        taps: ``(K, M)`` flat source indices of the gather, or ``None`` when there is nothing to fix.
        weights: ``(K, M)`` tap weights, or ``None`` for a single (nearest) tap.
        coverage: ``(N,)`` 1 where the output position is covered by the source and 0 elsewhere (the
            output is multiplied by it), or ``None`` when everything is covered.
    """

    out_shape: tuple[int, ...]
    mode: str
    grid: torch.Tensor | None
    fix_index: torch.Tensor | None
    taps: torch.Tensor | None
    weights: torch.Tensor | None
    coverage: torch.Tensor | None = None

    def to(self, device, dtype) -> SamplingPlan:
        """A copy with floating tensors in ``dtype`` and everything on ``device``."""

        def move(t, floating):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype) if floating else t.to(device=device)

        return SamplingPlan(self.out_shape, self.mode, move(self.grid, True), move(self.fix_index, False),
                            move(self.taps, False), move(self.weights, True), move(self.coverage, True))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Sample ``x`` (``(B, C, Hs, Ws)``, or ``(B, C, S)`` for a gather-only plan); returns
        ``(B, C, *out_shape)`` (empty when ``B`` or ``C`` is 0). Differentiable with respect to ``x``.
        A float16 or bfloat16 ``x`` is sampled in float32 (the plan's dtype, see
        :func:`sphsal.sphere.sampling_dtype`) and the result cast back."""
        if x.dtype != sampling_dtype(x.dtype):
            return self(x.to(sampling_dtype(x.dtype))).to(x.dtype)
        b, c = x.shape[:2]
        if b * c == 0:
            return x.new_zeros((b, c, *self.out_shape))
        out = None
        if self.grid is not None:
            grid = self.grid.expand(b, -1, -1, -1)
            out = F.grid_sample(x, grid, mode=self.mode, padding_mode="border", align_corners=True)
            out = out.reshape(b * c, -1)
        if self.taps is not None:
            flat = x.reshape(b * c, -1)
            gathered = flat.index_select(1, self.taps[0])
            if self.weights is not None:
                gathered = gathered * self.weights[0]
                for tap, weight in zip(self.taps[1:], self.weights[1:]):
                    gathered = gathered + flat.index_select(1, tap) * weight
            if out is None:
                out = gathered
            else:
                # In place on grid_sample's fresh output (autograd-safe: its backward does not
                # need its output); an out-of-place index_copy would clone the whole output.
                out.index_copy_(1, self.fix_index, gathered)
        if self.coverage is not None:
            out = out * self.coverage
        return out.reshape(b, c, *self.out_shape)

    def adjoint(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to ``x`` of ``(self(x) * grad).sum()``: the transpose of the
        (linear) sampling applied to ``grad`` ``(B, C, *out_shape)``; returns ``x``'s shape and dtype."""
        if x.dtype != sampling_dtype(x.dtype):
            dtype = sampling_dtype(x.dtype)
            return self.adjoint(grad.to(dtype), x.to(dtype)).to(x.dtype)
        b, c = x.shape[:2]
        if b * c == 0:
            return torch.zeros_like(x)
        grad = grad.reshape(b * c, -1)
        if self.coverage is not None:
            grad = grad * self.coverage
        gathered = grad  # the gradient of the gather's outputs
        if self.grid is None:
            grad_x = x.new_zeros(b * c, math.prod(x.shape[2:]))
        else:
            if self.fix_index is not None:  # the gather overwrote these outputs of grid_sample
                gathered = grad.index_select(1, self.fix_index)
                grad = grad.index_fill(1, self.fix_index, 0)
            grad_x = torch.ops.aten.grid_sampler_2d_backward(
                grad.reshape(b, c, 1, -1), x, self.grid.expand(b, -1, -1, -1),
                _GRID_SAMPLER_MODES[self.mode], _BORDER_PADDING, True, [True, False])[0].reshape(b * c, -1)
        if self.taps is not None:
            weights = [None] * len(self.taps) if self.weights is None else self.weights
            for tap, weight in zip(self.taps, weights):
                grad_x.index_add_(1, tap, gathered if weight is None else gathered * weight)
        return grad_x.reshape(x.shape)


def _normalised(coord: torch.Tensor, size: int) -> torch.Tensor:
    """``grid_sample`` coordinate (``align_corners=True``) of a pixel coordinate along an axis."""
    return coord / max(size - 1, 1) * 2 - 1


def build_plan(row: torch.Tensor, col: torch.Tensor, src_hw: tuple[int, int], mode: str,
               resolve: Resolver | None, region: tuple | None = None,
               coverage: torch.Tensor | None = None) -> SamplingPlan:
    """Plan sampling an atlas of size ``src_hw`` at continuous pixel coordinates.

    Args:
        row, col: float64 tensors of the output shape; the centre of atlas pixel ``(i, j)`` is at
            ``(i, j)``.
        src_hw: ``(Hs, Ws)`` of the atlas.
        mode: ``"bilinear"`` or ``"nearest"``.
        resolve: maps integer taps outside the point's cell to flat source indices, or to weighted
            sums of source pixels (see :data:`Resolver`); ``None`` clamps them to the border, as
            ``grid_sample`` does.
        region: ``(row_lo, row_hi, col_lo, col_hi)``, inclusive integer bounds (scalars or tensors
            broadcastable to the output shape) of the cell each point belongs to; default the atlas.
        coverage: optional float64 ``(output shape)`` 0/1 mask stored in the plan.
    """
    hs, ws = src_hw
    out_shape = tuple(row.shape)
    row, col = row.reshape(-1), col.reshape(-1)
    if region is None:
        region = (0, hs - 1, 0, ws - 1)
    row_lo, row_hi, col_lo, col_hi = (torch.as_tensor(b, dtype=torch.int64).expand(out_shape).reshape(-1)
                                      for b in region)
    if coverage is not None:
        coverage = coverage.reshape(-1)
    if mode == "nearest":
        # Sample exactly at the chosen pixel centre: grid_sample then reads that pixel.
        r = torch.minimum(torch.maximum(torch.round(row).long(), row_lo), row_hi)
        c = torch.minimum(torch.maximum(torch.round(col).long(), col_lo), col_hi)
        grid = torch.stack((_normalised(c.double(), ws), _normalised(r.double(), hs)), dim=-1)
        return SamplingPlan(out_shape, mode, grid.reshape(1, 1, -1, 2), None, None, None, coverage)
    grid = torch.stack((_normalised(col, ws), _normalised(row, hs)), dim=-1).reshape(1, 1, -1, 2)
    if resolve is None:
        return SamplingPlan(out_shape, mode, grid, None, None, None, coverage)
    r0, c0 = torch.floor(row).long(), torch.floor(col).long()
    fr, fc = row - r0, col - c0
    tap_rows = torch.stack((r0, r0, r0 + 1, r0 + 1))
    tap_cols = torch.stack((c0, c0 + 1, c0, c0 + 1))
    weights = torch.stack(((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc))
    foreign = (tap_rows < row_lo) | (tap_rows > row_hi) | (tap_cols < col_lo) | (tap_cols > col_hi)
    points = torch.nonzero(foreign.any(dim=0)).reshape(-1)
    if points.numel() == 0:
        return SamplingPlan(out_shape, mode, grid, None, None, None, coverage)
    tap_rows, tap_cols, weights = tap_rows[:, points], tap_cols[:, points], weights[:, points]
    foreign = foreign[:, points]
    taps = tap_rows * ws + tap_cols
    owners = points.expand(4, -1)
    resolved = resolve(tap_rows[foreign], tap_cols[foreign], owners[foreign])
    if isinstance(resolved, torch.Tensor):
        taps[foreign] = resolved
        return SamplingPlan(out_shape, mode, grid, points, taps, weights, coverage)
    # Every foreign tap becomes S weighted pixels: (S, 4, M) taps, the extra ones of an in-cell tap
    # repeat it with weight 0.
    sub_taps, sub_weights = resolved
    taps = taps.expand(len(sub_taps), -1, -1).clone()
    taps[:, foreign] = sub_taps
    weights = torch.cat((weights[None], weights.new_zeros(len(sub_taps) - 1, *weights.shape)))
    weights[:, foreign] = weights[0][foreign] * sub_weights
    return SamplingPlan(out_shape, mode, grid, points, taps.reshape(-1, points.numel()),
                        weights.reshape(-1, points.numel()), coverage)


def gather_plan(out_shape: tuple[int, ...], taps: torch.Tensor, weights: torch.Tensor | None,
                mode: str) -> SamplingPlan:
    """A gather-only plan: output ``n`` is ``sum_k weights[k, n] * source[taps[k, n]]``.

    ``taps``: ``(K, N)`` int64 flat source indices; ``weights``: ``(K, N)`` float64 or ``None``
    when ``K == 1``.
    """
    return SamplingPlan(tuple(out_shape), mode, None, None, taps.long(), weights)


def erp_resolver(h: int, w: int) -> Resolver:
    """Resolve taps around an ``h x w`` ERP image: columns wrap across the +-180 deg seam and a row
    beyond a pole continues on the opposite meridian (row ``-1 - k`` is row ``k`` shifted by
    ``W/2`` columns), exactly as :func:`sphsal.sphere.pad_equirect`."""

    def resolve(rows, cols, points):
        over_north, over_south = rows < 0, rows > h - 1
        flipped = over_north | over_south
        rows = torch.where(over_north, -1 - rows, torch.where(over_south, 2 * h - 1 - rows, rows))
        cols = torch.remainder(cols + flipped.long() * (w // 2), w)
        return rows * w + cols

    return resolve


def erp_plan(az: torch.Tensor, el: torch.Tensor, h: int, w: int, mode: str) -> SamplingPlan:
    """Plan sampling an ``h x w`` ERP image at directions ``az``, ``el`` (float64 radians, any
    shape, which becomes the plan's ``out_shape``)."""
    row, col = directions_to_pixels(az, el, h, w)
    return build_plan(row, col, (h, w), mode, erp_resolver(h, w))


class PlanBuilder:
    """A cached plan builder (see :func:`cached_plan`).

    ``builder(*geometry, device=..., dtype=...)`` returns the plan: built once per geometry in
    float64 on the CPU, converted once per (geometry, device, dtype) (float32 for float16 and
    bfloat16, which are sampled in float32). ``builder.sample(x, *geometry,
    out_shape=...)`` applies it as the custom operator ``sphsal::sample_plan``
    (:mod:`sphsal.projections._plan_op`): what every projection calls.
    """

    def __init__(self, build: Callable[..., SamplingPlan]):
        self.name = f"{build.__module__}.{build.__qualname__}"
        self._on_cpu = functools.lru_cache(maxsize=16)(build)
        self._on_device = functools.lru_cache(maxsize=32)(self._convert)
        functools.update_wrapper(self, build)
        _plan_op.register_builder(self.name, self)

    def _convert(self, geometry: tuple, device, dtype) -> SamplingPlan:
        return self._on_cpu(*geometry).to(device, dtype)

    def __call__(self, *geometry, device, dtype) -> SamplingPlan:
        # Plans for float16 / bfloat16 inputs are float32 (sphsal.sphere.sampling_dtype).
        return self._on_device(geometry, torch.device(device), sampling_dtype(dtype))

    def cache_info(self):
        """The ``functools`` cache statistics of the converted plans."""
        return self._on_device.cache_info()

    def sample(self, x: torch.Tensor, *geometry, out_shape: tuple[int, ...]) -> torch.Tensor:
        """``x`` ``(B, C, ...)`` sampled by the plan of ``geometry``: ``(B, C, *out_shape)``,
        differentiable (twice) with respect to ``x``."""
        return _plan_op.sample(x, self.name, geometry, out_shape)

    def coverage(self, like: torch.Tensor, *geometry, out_shape: tuple[int, ...]) -> torch.Tensor:
        """The plan's 0/1 coverage reshaped to ``out_shape``, in ``like``'s dtype and device."""
        return _plan_op.coverage(like, self.name, geometry, out_shape)


def cached_plan(build: Callable[..., SamplingPlan]) -> PlanBuilder:
    """Decorate a plan builder ``build(*geometry) -> SamplingPlan`` (float64, CPU) as a
    :class:`PlanBuilder`. Geometry arguments must be Python literals (ints, floats, bools, strings,
    tuples of them): they key the caches and travel to the operator as text."""
    return PlanBuilder(build)


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")


def check_erp(x, name: str = "x") -> None:
    """Validate an ERP batch ``(B, C, H, W)`` of floating dtype with ``H >= 1`` and an even width
    ``W >= 2`` (``B`` and ``C`` may be 0: an empty result)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} must be an ERP batch (B, C, H, W) with H, W >= 1, got shape "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.shape[-1] % 2:
        raise ValueError(f"{name} must have an even ERP width to wrap over the poles, got W={x.shape[-1]}")


def check_size(value, name: str) -> int:
    """A positive integer size argument (``8.0`` is accepted as 8)."""
    return check_integer(value, name, whole_floats=True)
