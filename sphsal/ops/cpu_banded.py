"""Fast CPU path of spherical convolution: bands of rows computed by planar convolutions.

Consecutive output rows whose stencils have the same relative taps (source row minus ``i * stride``,
column offset, interpolation weight) form a band. Near the equator the band's taps are the planar
3x3 neighbourhood, further out dilated or irregular column patterns. Each band's distinct
``(row offset, column offset)`` cells are covered by *units*: grids ``ro0 + dr * [0, nh)`` x
``co0 + dc * [0, nw)`` that hold only occupied cells (exact arithmetic progressions, no zero taps).
A unit is one ``nn.Conv2d``-style call (``conv3d`` for clips) with dilation ``(dr, dc)`` on the rows
of the band, whose columns are read with circular wrap; its ``(nh, nw)`` weight is the layer's
``(Co, Ci, K)`` weight scattered into the cells (bilinear weights included). The rows next to the
poles, where taps spread over all longitudes, simply become several small units (down to one tap:
a 1x1 convolution on a shifted view of one source row).

Nothing K-times expanded is kept: the autograd function saves only ``x`` and the weight and redoes the
cheap slab extraction in backward, where ``aten.convolution_backward`` gives the gradients of each unit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from sphsal.ops.stencils import NeighbourTable

__all__ = ["ConvUnit", "Band", "banded_plan", "banded_sphere_conv"]

# Bands longer than this many output rows are split so that transient slabs stay small.
_MAX_BAND_ROWS = 32
# Gathered rows are multiplied in batches of at most this many rows (bounds the transient copy).
_GATHER_CHUNK = 8


@dataclass(frozen=True)
class ConvUnit:
    """One planar convolution of a band.

    ``row_lo:row_hi`` are the input rows read, ``segments`` the ``(first column, count)`` runs of
    input columns (wrapped at ``W``) concatenated into the slab, ``box = (nh, nw)`` and ``dilation``
    its kernel grid, ``scatter`` ``(K, nh * nw)`` float64 maps tap weights to grid cells.
    """

    row_lo: int
    row_hi: int
    segments: tuple[tuple[int, int], ...]
    box: tuple[int, int]
    dilation: tuple[int, int]
    scatter: torch.Tensor


@dataclass(frozen=True)
class Band:
    """Output rows ``out_lo:out_hi`` and the units summed into them."""

    out_lo: int
    out_hi: int
    units: tuple[ConvUnit, ...]


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


def _column_segments(start: int, length: int, width: int) -> tuple[tuple[int, int], ...]:
    """Runs ``(first, count)`` of columns ``start, start + 1, ... (length of them)`` modulo ``width``."""
    segments, col = [], start % width
    while length > 0:
        n = min(width - col, length)
        segments.append((col, n))
        length -= n
        col = 0
    return tuple(segments)


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


def _band_units(table: NeighbourTable, cells, out_lo: int, out_hi: int) -> tuple[ConvUnit, ...]:
    by_row: dict[int, list[int]] = {}
    for ro, co in cells:
        by_row.setdefault(ro, []).append(co)
    col_groups: dict[tuple[int, int, int], list[int]] = {}
    for ro in sorted(by_row):
        for group in _ap_groups(by_row[ro]):
            col_groups.setdefault(group, []).append(ro)
    s, w = table.stride, table.width
    units = []
    for (co0, dc, nw), ros in col_groups.items():
        for ro0, dr, nh in _ap_groups(ros):
            scatter = torch.zeros(table.num_taps, nh * nw, dtype=torch.float64)
            for a in range(nh):
                for b in range(nw):
                    for t, weight in cells[(ro0 + a * dr, co0 + b * dc)].items():
                        scatter[t, a * nw + b] += weight
            row_lo = out_lo * s + ro0
            row_hi = (out_hi - 1) * s + ro0 + dr * (nh - 1) + 1
            length = (table.w_out - 1) * s + dc * (nw - 1) + 1
            units.append(ConvUnit(row_lo, row_hi, _column_segments(co0, length, w), (nh, nw), (dr, dc),
                                  scatter))
    return tuple(units)


@dataclass(frozen=True)
class GatherGroup:
    """Output rows computed together as one batched matrix product over their source cells.

    All ``n`` rows have ``m`` distinct (row, column offset) cells: ``positions`` ``(n, m)`` index
    :attr:`Plan.source_rows`, ``cols`` ``(n, m)`` are column offsets, ``scatter`` ``(n, K, m)`` float64
    maps tap weights to cells.
    """

    out_rows: torch.Tensor
    positions: torch.Tensor
    cols: torch.Tensor
    scatter: torch.Tensor


@dataclass(frozen=True)
class Plan:
    """Banded convolution units plus the rows done by gathering (``source_rows`` ``(R,)`` are the
    input rows those read)."""

    bands: tuple[Band, ...]
    gather_groups: tuple[GatherGroup, ...]
    source_rows: torch.Tensor


def _gather_groups(cells_per_row: list[tuple[int, dict]], stride: int,
                   num_taps: int) -> tuple[tuple[GatherGroup, ...], torch.Tensor]:
    """Group gathered rows by their number of cells, at most ``_GATHER_CHUNK`` rows per group."""
    sources = sorted({i * stride + ro for i, cells in cells_per_row for ro, _ in cells})
    where = {r: n for n, r in enumerate(sources)}
    by_size: dict[int, list] = {}
    for i, cells in cells_per_row:
        keys = sorted(cells)
        scatter = torch.zeros(num_taps, len(keys), dtype=torch.float64)
        for q, key in enumerate(keys):
            for t, weight in cells[key].items():
                scatter[t, q] += weight
        by_size.setdefault(len(keys), []).append(
            (i, [where[i * stride + ro] for ro, _ in keys], [co for _, co in keys], scatter))
    groups = []
    for rows in by_size.values():
        for lo in range(0, len(rows), _GATHER_CHUNK):
            chunk = rows[lo:lo + _GATHER_CHUNK]
            out_rows, positions, cols, scatters = zip(*chunk)
            groups.append(GatherGroup(torch.tensor(out_rows), torch.tensor(positions), torch.tensor(cols),
                                      torch.stack(scatters)))
    return tuple(groups), torch.tensor(sources, dtype=torch.long)


@functools.lru_cache(maxsize=128)
def banded_plan(table: NeighbourTable, gather: bool = True) -> Plan:
    """Split the output rows of ``table`` into bands of equal relative stencils and cover each band's
    cells with convolution units (cached per table). With ``gather``, bands that would need more
    than one convolution call per output row (near the poles, and every bilinear row, whose weights
    change from row to row) are computed row by row as matrix products instead."""
    bands, lo, current = [], 0, None
    signatures = []
    for i in range(table.h_out):
        cells = _row_cells(table, i)
        signatures.append((tuple(sorted((key, tuple(sorted(v.items()))) for key, v in cells.items())), cells))
    gathered = []
    for i in range(table.h_out + 1):
        sig = signatures[i][0] if i < table.h_out else None
        if i > lo and (sig != current or i - lo >= _MAX_BAND_ROWS):
            units = _band_units(table, signatures[lo][1], lo, i)
            if gather and len(units) > i - lo:
                gathered += [(r, signatures[r][1]) for r in range(lo, i)]
            else:
                bands.append(Band(lo, i, units))
            lo = i
        current = sig if i == lo else current
    groups, sources = _gather_groups(gathered, table.stride, table.num_taps)
    return Plan(tuple(bands), groups, sources)


def _slab(x: torch.Tensor, unit: ConvUnit) -> torch.Tensor:
    rows = x[..., unit.row_lo:unit.row_hi, :]
    parts = [rows[..., c:c + n] for c, n in unit.segments]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def _unit_weight(weight: torch.Tensor, unit: ConvUnit, spatial_only: bool) -> torch.Tensor:
    """``weight`` ``(Co, Ci, kt, K)`` -> the unit's ``(Co, Ci, [kt,] nh, nw)`` kernel."""
    cells = torch.matmul(weight, unit.scatter.to(weight.dtype))
    cells = cells.reshape(*weight.shape[:3], *unit.box)
    return cells[:, :, 0] if spatial_only else cells


def _conv_args(unit: ConvUnit, stride: int, stride_t: int, pad_t: int, spatial_only: bool):
    if spatial_only:
        return [stride, stride], [0, 0], list(unit.dilation)
    return [stride_t, stride, stride], [pad_t, 0, 0], [1, *unit.dilation]


def _gather_source(x: torch.Tensor, plan: Plan) -> torch.Tensor:
    """The rows read by gathered rows, channels last: ``(R * B * W, C)``."""
    return x.index_select(2, plan.source_rows).permute(2, 0, 3, 1).reshape(-1, x.shape[1])


def _gather_index(group: GatherGroup, batch: int, width: int, w_out: int, stride: int) -> torch.Tensor:
    """Flat ``(n * B * W_out * m,)`` indices of a group's cells into :func:`_gather_source`."""
    col = torch.remainder(torch.arange(w_out)[None, :, None] * stride + group.cols[:, None, :], width)
    b = torch.arange(batch)[None, :, None, None]
    return ((group.positions[:, None, None, :] * batch + b) * width + col[:, None]).reshape(-1)


def _group_weight(weight: torch.Tensor, group: GatherGroup) -> torch.Tensor:
    """``(Co, Ci, 1, K)`` weight -> ``(n, m * Ci, Co)`` matrices of a gather group (cell-major rows)."""
    co, ci = weight.shape[:2]
    cells = torch.matmul(weight.reshape(co * ci, -1), group.scatter.to(weight.dtype))  # (n, Co * Ci, m)
    return cells.view(-1, co, ci, cells.shape[-1]).permute(0, 3, 2, 1).reshape(cells.shape[0], -1, co)


def _output_shape(x: torch.Tensor, weight: torch.Tensor, table: NeighbourTable, stride_t: int):
    if x.dim() == 4:
        return x.shape[0], weight.shape[0], table.h_out, table.w_out
    t_out = (x.shape[2] + 2 * (weight.shape[2] // 2) - weight.shape[2]) // stride_t + 1
    return x.shape[0], weight.shape[0], t_out, table.h_out, table.w_out


class _BandedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, plan, table, stride_t):
        spatial_only = x.dim() == 4
        pad_t = weight.shape[2] // 2
        out = x.new_empty(_output_shape(x, weight, table, stride_t))
        for band in plan.bands:
            target = out[..., band.out_lo:band.out_hi, :]
            for n, unit in enumerate(band.units):
                stride, padding, dilation = _conv_args(unit, table.stride, stride_t, pad_t, spatial_only)
                y = torch.ops.aten.convolution(_slab(x, unit), _unit_weight(weight, unit, spatial_only), None,
                                               stride, padding, dilation, False, [0] * len(stride), 1)
                if n == 0:
                    target.copy_(y)
                else:
                    target.add_(y)
        if plan.gather_groups:
            batch, width, w_out = x.shape[0], table.width, table.w_out
            source = _gather_source(x, plan)
            for group in plan.gather_groups:
                index = _gather_index(group, batch, width, w_out, table.stride)
                cols = source.index_select(0, index).view(len(group.out_rows), batch * w_out, -1)
                y = torch.bmm(cols, _group_weight(weight, group))  # (n, B * W_out, Co)
                out[:, :, group.out_rows, :] = y.view(-1, batch, w_out, y.shape[-1]).permute(1, 3, 0, 2)
        if bias is not None:
            out += bias.view(1, -1, *([1] * (out.dim() - 2)))
        ctx.save_for_backward(x, weight)
        ctx.plan, ctx.table, ctx.stride_t, ctx.has_bias = plan, table, stride_t, bias is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(x) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        if need_x or need_w:
            _units_backward(ctx, x, weight, grad_out, grad_x, grad_w)
            if ctx.plan.gather_groups:
                _gather_backward(ctx, x, weight, grad_out, grad_x, grad_w)
        grad_b = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=[d for d in range(grad_out.dim()) if d != 1])
        return grad_x, grad_w, grad_b, None, None, None


def _units_backward(ctx, x, weight, grad_out, grad_x, grad_w) -> None:
    spatial_only = x.dim() == 4
    pad_t = weight.shape[2] // 2
    mask = [grad_x is not None, grad_w is not None, False]
    for band in ctx.plan.bands:
        g = grad_out[..., band.out_lo:band.out_hi, :]
        for unit in band.units:
            stride, padding, dilation = _conv_args(unit, ctx.table.stride, ctx.stride_t, pad_t, spatial_only)
            gi, gw, _ = torch.ops.aten.convolution_backward(
                g, _slab(x, unit), _unit_weight(weight, unit, spatial_only), None, stride, padding, dilation,
                False, [0] * len(stride), 1, mask)
            if grad_w is not None:
                grad_w += torch.matmul(gw.reshape(*weight.shape[:3], -1), unit.scatter.to(gw.dtype).T)
            if grad_x is not None:
                rows = grad_x[..., unit.row_lo:unit.row_hi, :]
                offset = 0
                for c, n in unit.segments:
                    rows[..., c:c + n] += gi[..., offset:offset + n]
                    offset += n


def _gather_backward(ctx, x, weight, grad_out, grad_x, grad_w) -> None:
    plan, table = ctx.plan, ctx.table
    batch, channels, width, w_out = x.shape[0], x.shape[1], table.width, table.w_out
    co = weight.shape[0]
    source = _gather_source(x, plan)
    grad_source = torch.zeros_like(source) if grad_x is not None else None
    for group in plan.gather_groups:
        n = len(group.out_rows)
        index = _gather_index(group, batch, width, w_out, table.stride)
        g = grad_out[:, :, group.out_rows, :].permute(2, 0, 3, 1).reshape(n, batch * w_out, co)
        if grad_w is not None:
            cols = source.index_select(0, index).view(n, batch * w_out, -1)
            gw = torch.bmm(cols.transpose(1, 2), g)  # (n, m * Ci, Co)
            gw = gw.view(n, -1, channels, co).permute(0, 3, 2, 1).reshape(n, co * channels, -1)
            gw = torch.matmul(gw, group.scatter.to(gw.dtype).transpose(1, 2)).sum(0)
            grad_w[:, :, 0] += gw.view(co, channels, -1)
        if grad_source is not None:
            grad_cols = torch.bmm(g, _group_weight(weight, group).transpose(1, 2))
            grad_source.index_add_(0, index, grad_cols.view(-1, channels))
    if grad_x is not None:
        grad_source = grad_source.view(len(plan.source_rows), batch, width, channels).permute(1, 3, 0, 2)
        grad_x.index_add_(2, plan.source_rows, grad_source)


def banded_sphere_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       table: NeighbourTable, stride_t: int = 1) -> torch.Tensor:
    """Spherical convolution by banded planar convolutions.

    Args:
        x: ``(B, Ci, H, W)`` or ``(B, Ci, T, H, W)``.
        weight: ``(Co, Ci, kt, K)`` taps (``kt = 1`` for images), ``K = k * k`` row-major.
        bias: ``(Co,)`` or None.
        table: the :class:`~sphsal.ops.stencils.NeighbourTable` for ``x``'s ERP size.
        stride_t: temporal stride (clips; time is zero-padded by ``kt // 2``).

    Returns ``(B, Co, H_out, W_out)`` or ``(B, Co, T_out, H_out, W_out)``.
    """
    if x.dim() == 4 and weight.shape[2] != 1:
        raise ValueError(f"weight for an image must have kt = 1, got shape {tuple(weight.shape)}")
    return _BandedConv.apply(x, weight, bias, banded_plan(table, x.dim() == 4), table, stride_t)
