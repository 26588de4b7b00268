"""Fast CPU path of spherical convolution: bands of rows computed by planar convolutions.

Consecutive output rows whose stencils have the same relative taps (source row minus ``i * stride``,
column offset, interpolation weight) form a band. Near the equator the band's taps are the planar
3x3 neighbourhood, further out dilated or irregular column patterns. Each band's distinct
``(row offset, column offset)`` cells are covered by *units*: grids ``ro0 + dr * [0, nh)`` x
``co0 + dc * [0, nw)`` that hold only occupied cells (exact arithmetic progressions, no zero taps).
A unit is one ``nn.Conv2d``-style call with dilation ``(dr, dc)`` on a view of
the band's rows of the input padded circularly by a few columns; its ``(nh, nw)`` weight is the
layer's ``(Co, Ci, K)`` weight scattered into the cells (bilinear weights included): the cell
weights of all bands come from one matrix product of the weight with their joined ``(K, cells)``
scatter matrices.

Rows whose band would need more than one convolution call per two rows (next to the poles, where the
taps spread over all longitudes, and most bilinear rows, whose weights change from row to row) are
*gathered* instead, a few consecutive rows at a time: each tap's value is read from its source pixel
(nearest) or interpolated from its four (bilinear), giving a ``(rows * B * W_out, K * Ci)`` block, and
one matrix product with the layer's ``(K * Ci, Co)`` weight, shared by every row, gives the outputs.

Clips (``sphere_conv3d``) are folded into images: the ``kt`` zero-padded temporal taps of each output
frame become channels, ``(B, Ci, T, H, W)`` -> ``(B * T_out, Ci * kt, H, W)``, so a clip layer is one
image layer (the same few large operations at any clip length; autograd keeps that ``kt``-times
folded input, never a ``K``-times expanded one).

Nothing K-times expanded is kept for backward: the autograd function saves only ``x`` and the weight
and redoes the cheap extraction in backward, where ``aten.convolution_backward`` and batched matrix
products give the gradients. Few, large operations are used on purpose: on a busy machine every
parallel operation costs a thread hand-off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sphsal.ops.stencils import NeighbourTable
from sphsal.ops.time_fold import fold_time, unfold_time

__all__ = ["ConvUnit", "Band", "GatherGroup", "Plan", "banded_plan", "banded_sphere_conv"]

# Consecutive gathered rows are multiplied in groups whose gathered block (rows x W_out x K taps per
# batch item and channel) stays below max(H * W / 8, _GATHER_MIN_BLOCK): an eighth of the input's size
# on large grids (small blocks stay in cache: measured 1.5x faster than half the input at 240 x 480,
# bilinear), and one or two groups for the whole sphere on small ones.
_GATHER_MIN_BLOCK = 4096
# Bands whose column offsets reach further than this are gathered (keeps the circular halo small).
_MAX_HALO = 8


@dataclass(frozen=True)
class ConvUnit:
    """One planar convolution of a band.

    Input rows ``row_lo:row_hi`` and columns ``col_lo:col_hi`` (may reach ``-halo`` .. ``W + halo``;
    read from the circularly padded input), kernel grid ``box = (nh, nw)`` with ``dilation``, whose
    cell weights are columns ``cells`` of its band's ``scatter``.
    """

    row_lo: int
    row_hi: int
    col_lo: int
    col_hi: int
    box: tuple[int, int]
    dilation: tuple[int, int]
    cells: tuple[int, int]


@dataclass(frozen=True)
class Band:
    """Output rows ``out_lo:out_hi``, the units summed into them and their ``(K, cells)`` float64
    tap-to-cell weights ``scatter``."""

    out_lo: int
    out_hi: int
    units: tuple[ConvUnit, ...]
    scatter: torch.Tensor


@dataclass(frozen=True, eq=False)
class GatherGroup:
    """Consecutive output rows ``out_lo:out_hi`` (``n`` of them) computed by one matrix product.

    For each row, tap and interpolation corner: ``positions`` ``(n, K, P)`` index
    :attr:`Plan.source_rows`, ``cols`` ``(n, K, P)`` are column offsets (relative to ``j * stride``) and
    ``weights`` ``(n, K, P)`` float64 the interpolation weights (``None`` when ``P = 1``: nearest taps).
    """

    out_lo: int
    out_hi: int
    positions: torch.Tensor
    cols: torch.Tensor
    weights: torch.Tensor | None


@dataclass(frozen=True, eq=False)
class Plan:
    """How to compute one table: ``pieces`` (bands and gather groups in output-row order),
    ``source_rows`` ``(R,)`` the input rows that gather groups read, ``halo`` the circular column
    padding the units need, ``num_taps`` the stencil's ``K``."""

    pieces: tuple[Band | GatherGroup, ...]
    source_rows: torch.Tensor
    halo: int
    num_taps: int


def _ap_groups(values: list[int]) -> list[tuple[int, int, int]]:
    """Cover sorted distinct integers by exact arithmetic progressions ``(start, step, count)``,
    greedily taking the longest (then the densest) progression first."""
    remaining = sorted(values)
    groups = []
    while remaining:
        present = set(remaining)
        best_key, best = (1, -math.inf), (remaining[0], 1, 1)
        for i, a in enumerate(remaining):
            for b in remaining[i + 1:]:
                step, n = b - a, 2
                while a + n * step in present:
                    n += 1
                if (n, -step) > best_key:
                    best_key, best = (n, -step), (a, step, n)
        start, step, n = best
        groups.append(best)
        taken = {start + m * step for m in range(n)}
        remaining = [v for v in remaining if v not in taken]
    return groups


def _row_cells(table: NeighbourTable, i: int) -> dict[tuple[int, int], dict[int, float]]:
    """``{(row offset, column offset): {tap: weight}}`` of output row ``i`` (zero weights dropped)."""
    cells: dict[tuple[int, int], dict[int, float]] = {}
    rows = table.rows[i].tolist()
    cols = table.cols[i].tolist()
    weights = table.weights[i].tolist()
    base = i * table.stride
    for t in range(table.num_taps):
        for r, c, w in zip(rows[t], cols[t], weights[t]):
            if w != 0.0:
                taps = cells.setdefault((r - base, c), {})
                taps[t] = taps.get(t, 0.0) + w
    return cells


class _ScatterBuilder:
    """Collects ``(K,)`` tap-weight columns; ``add`` returns the column range it used."""

    def __init__(self, num_taps: int):
        self.num_taps, self.columns = num_taps, []

    def add(self, columns: list[dict[int, float]]) -> tuple[int, int]:
        start = len(self.columns)
        for taps in columns:
            col = torch.zeros(self.num_taps, dtype=torch.float64)
            for t, weight in taps.items():
                col[t] += weight
            self.columns.append(col)
        return start, len(self.columns)

    def matrix(self) -> torch.Tensor:
        if not self.columns:
            return torch.zeros(self.num_taps, 0, dtype=torch.float64)
        return torch.stack(self.columns, dim=1)


def _band_units(table: NeighbourTable, cells, out_lo: int, out_hi: int,
                scatter: _ScatterBuilder | None) -> tuple[ConvUnit, ...]:
    """Units covering a band's cells (with ``scatter=None`` only their number matters)."""
    by_row: dict[int, list[int]] = {}
    for ro, co in cells:
        by_row.setdefault(ro, []).append(co)
    col_groups: dict[tuple[int, int, int], list[int]] = {}
    for ro in sorted(by_row):
        for group in _ap_groups(by_row[ro]):
            col_groups.setdefault(group, []).append(ro)
    s = table.stride
    units = []
    for (co0, dc, nw), ros in col_groups.items():
        for ro0, dr, nh in _ap_groups(ros):
            span = (0, 0) if scatter is None else scatter.add(
                [cells[(ro0 + a * dr, co0 + b * dc)] for a in range(nh) for b in range(nw)])
            units.append(ConvUnit(out_lo * s + ro0, (out_hi - 1) * s + ro0 + dr * (nh - 1) + 1, co0,
                                  (table.w_out - 1) * s + co0 + dc * (nw - 1) + 1, (nh, nw), (dr, dc), span))
    return tuple(units)


def _gather_group(table: NeighbourTable, rows: list[int], where: dict[int, int]) -> GatherGroup:
    lo, hi = rows[0], rows[-1] + 1
    positions = table.rows[lo:hi].clone().apply_(where.__getitem__)
    weights = table.weights[lo:hi] if table.weights.shape[-1] > 1 else None
    return GatherGroup(lo, hi, positions, table.cols[lo:hi], weights)


@functools.lru_cache(maxsize=128)
def banded_plan(table: NeighbourTable) -> Plan:
    """Split the output rows of ``table`` into bands of equal relative stencils covered by convolution
    units and groups of gathered rows; cached per table."""
    cells = [_row_cells(table, i) for i in range(table.h_out)]
    signatures = [tuple(sorted((key, tuple(sorted(v.items()))) for key, v in c.items())) for c in cells]
    spans, lo = [], 0  # (first row, end row, gathered?)
    for i in range(1, table.h_out + 1):
        if i == table.h_out or signatures[i] != signatures[lo]:
            wide = max(abs(co) for _, co in cells[lo]) > _MAX_HALO
            many = 2 * len(_band_units(table, cells[lo], lo, i, None)) > i - lo
            spans.append((lo, i, wide or many))
            lo = i
    gathered_rows = [r for a, b, g in spans if g for r in range(a, b)]
    sources = sorted(set(table.rows[gathered_rows].reshape(-1).tolist()))
    where = {r: n for n, r in enumerate(sources)}
    rows_per_group = max(1, max(table.height * table.width // 8, _GATHER_MIN_BLOCK)
                         // (table.w_out * table.num_taps))
    pieces, pending = [], []
    for a, b, g in spans + [(table.h_out, table.h_out, False)]:
        for r in range(a, b) if g else ():
            if pending and (r != pending[-1] + 1 or len(pending) == rows_per_group):
                pieces.append(_gather_group(table, pending, where))
                pending = []
            pending.append(r)
        if not g:
            if pending:
                pieces.append(_gather_group(table, pending, where))
                pending = []
            if b > a:
                scatter = _ScatterBuilder(table.num_taps)
                pieces.append(Band(a, b, _band_units(table, cells[a], a, b, scatter), scatter.matrix()))
    units = [u for p in pieces if isinstance(p, Band) for u in p.units]
    halo = max([0] + [-u.col_lo for u in units] + [u.col_hi - table.width for u in units])
    return Plan(tuple(pieces), torch.tensor(sources, dtype=torch.long), halo, table.num_taps)


@functools.lru_cache(maxsize=256)
def _gather_index(group: GatherGroup, batch: int, width: int, w_out: int, stride: int) -> torch.Tensor:
    """``(P, n * B * W_out * K)`` indices of each interpolation corner of a group's taps into
    :func:`_gather_source` (order: row, batch item, output column, tap)."""
    col = torch.remainder(torch.arange(w_out)[None, :, None, None] * stride + group.cols[:, None], width)
    b = torch.arange(batch)[None, :, None, None, None]
    index = (group.positions[:, None, None] * batch + b) * width + col[:, None]  # (n, B, W_out, K, P)
    return index.permute(4, 0, 1, 2, 3).reshape(index.shape[-1], -1)


def _gather_taps(source: torch.Tensor, group: GatherGroup, index: torch.Tensor) -> torch.Tensor:
    """The group's tap values ``(n * B * W_out, K * C)``: source pixels, interpolated when bilinear."""
    n, num_taps = group.positions.shape[:2]
    taps = source.index_select(0, index[0])
    if group.weights is not None:
        weights = group.weights.to(source.dtype)
        taps = taps.view(n, -1, num_taps, source.shape[1]).mul_(weights[:, None, :, 0, None])
        for p in range(1, index.shape[0]):
            corner = source.index_select(0, index[p]).view_as(taps)
            taps.addcmul_(corner, weights[:, None, :, p, None])
    return taps.view(-1, num_taps * source.shape[1])


def _scatter_taps(grad_source: torch.Tensor, group: GatherGroup, index: torch.Tensor,
                  grad_taps: torch.Tensor) -> None:
    """Adjoint of :func:`_gather_taps`: add ``grad_taps`` ``(n * B * W_out, K * C)`` into ``grad_source``."""
    n, num_taps = group.positions.shape[:2]
    channels = grad_source.shape[1]
    if group.weights is None:
        grad_source.index_add_(0, index[0], grad_taps.view(-1, channels))
        return
    weights = group.weights.to(grad_taps.dtype)
    grad = grad_taps.view(n, -1, num_taps, channels)
    for p in range(index.shape[0]):
        grad_source.index_add_(0, index[p], (grad * weights[:, None, :, p, None]).view(-1, channels))


def _gather_source(x: torch.Tensor, plan: Plan) -> torch.Tensor:
    """The rows read by gather groups, channels last: ``(R * B * W, C)``."""
    return x.index_select(2, plan.source_rows).permute(2, 0, 3, 1).reshape(-1, x.shape[1])


def _pad_columns(x: torch.Tensor, halo: int) -> torch.Tensor:
    return x if halo == 0 else torch.cat((x[..., -halo:], x, x[..., :halo]), dim=-1)


@functools.lru_cache(maxsize=256)
def _plan_scatters(plan: Plan, dtype: torch.dtype) -> tuple[torch.Tensor, tuple[int, ...]]:
    """All bands' scatter matrices side by side ``(K, band cells)`` in ``dtype`` and each piece's first
    column in it (gather groups take none): all band weights come from one matrix product per call."""
    bands = [p.scatter for p in plan.pieces if isinstance(p, Band)]
    offsets, seen = [], 0
    for p in plan.pieces:
        offsets.append(seen)
        seen += p.scatter.shape[1] if isinstance(p, Band) else 0
    num_taps = plan.num_taps
    joined = torch.cat(bands, dim=1).to(dtype) if bands else torch.zeros(num_taps, 0, dtype=dtype)
    return joined, tuple(offsets)


def _band_weights(weight: torch.Tensor, plan: Plan) -> torch.Tensor:
    """``(Co, Ci, 1, K)`` weight -> cell weights ``(Co, Ci, band cells)`` of all bands."""
    co, ci, _, k = weight.shape
    return (weight.reshape(co * ci, k) @ _plan_scatters(plan, weight.dtype)[0]).view(co, ci, -1)


def _unit_weight(band_w: torch.Tensor, unit: ConvUnit, offset: int) -> torch.Tensor:
    """The unit's ``(Co, Ci, nh, nw)`` conv2d weight out of the ``(Co, Ci, band cells)`` cell weights."""
    return band_w[:, :, offset + unit.cells[0]:offset + unit.cells[1]].unflatten(-1, unit.box)


def _taps_first(weight: torch.Tensor) -> torch.Tensor:
    """``(Co, Ci, 1, K)`` weight -> ``(K * Ci, Co)``, the matrix of the gathered taps."""
    return weight[:, :, 0].permute(2, 1, 0).reshape(-1, weight.shape[0])


def _unit_view(x_pad: torch.Tensor, unit: ConvUnit, halo: int) -> torch.Tensor:
    return x_pad[..., unit.row_lo:unit.row_hi, unit.col_lo + halo:unit.col_hi + halo]


class _BandedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, plan, table):
        x_pad = _pad_columns(x, plan.halo)
        source = _gather_source(x, plan) if len(plan.source_rows) else None
        band_w, offsets = _band_weights(weight, plan), _plan_scatters(plan, weight.dtype)[1]
        weight_taps = _taps_first(weight) if len(plan.source_rows) else None
        batch, w_out = x.shape[0], table.w_out
        out = None
        for piece, offset in zip(plan.pieces, offsets):
            if isinstance(piece, Band):
                y = None
                for unit in piece.units:
                    z = F.conv2d(_unit_view(x_pad, unit, plan.halo), _unit_weight(band_w, unit, offset),
                                 stride=table.stride, dilation=unit.dilation)
                    y = z if y is None else y.add_(z)
            else:
                index = _gather_index(piece, batch, table.width, w_out, table.stride)
                n = piece.out_hi - piece.out_lo
                y = _gather_taps(source, piece, index) @ weight_taps  # (n * B * W_out, Co)
                y = y.view(n, batch, w_out, -1).permute(1, 3, 0, 2)
            if out is None:
                out = x.new_empty(*y.shape[:-2], table.h_out, w_out)
            out[..., piece.out_lo:piece.out_hi, :] = y
        if bias is not None:
            out += bias.view(1, -1, *([1] * (out.dim() - 2)))
        ctx.save_for_backward(x, weight)
        ctx.plan, ctx.table, ctx.has_bias = plan, table, bias is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = grad_w = grad_b = None
        if need_x or need_w:
            grad_x, grad_w = _backward(ctx.plan, ctx.table, x, weight, grad_out, need_x, need_w)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=[d for d in range(grad_out.dim()) if d != 1])
        return grad_x, grad_w, grad_b, None, None


def _backward(plan: Plan, table: NeighbourTable, x, weight, grad_out, need_x: bool, need_w: bool):
    batch, channels, co, w_out, halo = x.shape[0], x.shape[1], weight.shape[0], table.w_out, plan.halo
    x_pad = _pad_columns(x, halo)
    grad_x_pad = torch.zeros_like(x_pad) if need_x else None
    has_groups = len(plan.source_rows) > 0
    source = _gather_source(x, plan) if has_groups else None
    band_w, offsets = _band_weights(weight, plan), _plan_scatters(plan, weight.dtype)[1]
    grad_band = torch.empty_like(band_w) if need_w else None  # every cell belongs to one unit
    weight_taps = _taps_first(weight) if has_groups else None
    grad_weight_taps = torch.zeros_like(weight_taps) if has_groups and need_w else None
    grad_source = torch.zeros_like(source) if has_groups and need_x else None
    for piece, offset in zip(plan.pieces, offsets):
        if isinstance(piece, Band):
            g = grad_out[..., piece.out_lo:piece.out_hi, :]
            for unit in piece.units:
                gi, gw, _ = torch.ops.aten.convolution_backward(
                    g, _unit_view(x_pad, unit, halo), _unit_weight(band_w, unit, offset), None,
                    [table.stride] * 2, [0, 0], list(unit.dilation), False, [0, 0], 1,
                    [need_x, need_w, False])
                if need_x:
                    _unit_view(grad_x_pad, unit, halo).add_(gi)
                if need_w:
                    _unit_weight(grad_band, unit, offset).copy_(gw)
        else:
            n = piece.out_hi - piece.out_lo
            index = _gather_index(piece, batch, table.width, w_out, table.stride)
            g = grad_out[:, :, piece.out_lo:piece.out_hi].permute(2, 0, 3, 1).reshape(n * batch * w_out, co)
            if need_w:
                grad_weight_taps.addmm_(_gather_taps(source, piece, index).T, g)
            if need_x:
                _scatter_taps(grad_source, piece, index, g @ weight_taps.T)
    grad_x = grad_w = None
    if need_w:
        grad_w = (grad_band.view(co * channels, -1) @ _plan_scatters(plan, weight.dtype)[0].T).view_as(weight)
        if has_groups:
            grad_w[:, :, 0] += grad_weight_taps.view(-1, channels, co).permute(2, 1, 0)
    if need_x:
        width = table.width
        if halo:  # fold the circular halo back onto the columns it copied, in place
            grad_x_pad[..., halo:2 * halo] += grad_x_pad[..., halo + width:]
            grad_x_pad[..., width:width + halo] += grad_x_pad[..., :halo]
        grad_x = grad_x_pad[..., halo:halo + width]
        if has_groups:
            grad_source = grad_source.view(len(plan.source_rows), batch, width, channels).permute(1, 3, 0, 2)
            grad_x.index_add_(2, plan.source_rows, grad_source)
    return grad_x, grad_w


def banded_sphere_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       table: NeighbourTable, stride_t: int = 1) -> torch.Tensor:
    """Spherical convolution by banded planar convolutions and gathered pole rows.

    Args:
        x: ``(B, Ci, H, W)`` or ``(B, Ci, T, H, W)``.
        weight: ``(Co, Ci, kt, K)`` taps (``kt = 1`` for images), ``K = k * k`` row-major.
        bias: ``(Co,)`` or None.
        table: the :class:`~sphsal.ops.stencils.NeighbourTable` for ``x``'s ERP size.
        stride_t: temporal stride (clips; time is zero-padded by ``kt // 2``).

    Returns ``(B, Co, H_out, W_out)`` or ``(B, Co, T_out, H_out, W_out)``.
    """
    plan = banded_plan(table)
    if x.dim() == 4:
        if weight.shape[2] != 1:
            raise ValueError(f"weight for an image must have kt = 1, got shape {tuple(weight.shape)}")
        return _BandedConv.apply(x, weight, bias, plan, table)
    co, ci, kt = weight.shape[:3]
    out = _BandedConv.apply(fold_time(x, kt, stride_t), weight.reshape(co, ci * kt, 1, -1), bias, plan, table)
    return unfold_time(out, x.shape[0])
