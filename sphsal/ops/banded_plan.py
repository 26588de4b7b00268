"""How the fast CPU path of spherical convolution splits an output into bands and gathered rows.

Consecutive output rows whose stencils have the same relative taps (source row minus ``i * stride``,
column offset, interpolation weight) form a band. Near the equator the band's taps are the planar
3x3 neighbourhood, further out dilated or irregular column patterns. Each band's distinct
``(row offset, column offset)`` cells are covered by *units*: grids ``ro0 + dr * [0, nh)`` x
``co0 + dc * [0, nw)`` that hold only occupied cells (exact arithmetic progressions; a unit whose
column span ``dc * (nw - 1)`` is odd gets one zero column so that it has a centre). A unit is one
``F.conv2d`` call with dilation ``(dr, dc)``; its ``(nh, nw)`` weight is the layer's ``(Co, Ci, K)``
weight scattered into the cells (bilinear weights included) by one matrix product with the unit's
``(K, cells)`` scatter matrix, made when the unit runs (one unit's cell weights exist at a time).

Rows whose band would need more than one convolution call per two rows (next to the poles, where the
taps spread over all longitudes, and most bilinear rows, whose weights change from row to row), whose
column offsets reach beyond ``_MAX_HALO``, or whole small outputs, are *gathered* (see
:mod:`sphsal.ops.cpu_banded`, which runs the plan).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from sphsal.ops.stencils import NeighbourTable

__all__ = ["ConvUnit", "Band", "GatherGroup", "Plan", "banded_plan"]

# Bands whose column offsets reach further than this are gathered; at most W / 16 on narrow grids,
# where the 2 * halo padding columns would otherwise be a large share of the work.
_MAX_HALO = 8
# Outputs of at most this many pixels are gathered whole: on such small grids a convolution call per
# band costs more than it computes (at 4 x 8, all gathered: 2.0x nn.Conv3d's time; banded: 3.3x).
_ALL_GATHERED_PIXELS = 128

@dataclass(frozen=True)
class ConvUnit:
    """One planar convolution of a band.

    Input rows ``row_lo:row_hi``; kernel grid ``box = (nh, nw)`` with ``dilation = (dr, dc)`` whose cell
    ``(a, b)`` is column offset ``shift + (b - (nw - 1) / 2) * dc``: the input view is shifted by
    ``shift`` columns and padded by ``pad = dc * (nw - 1) / 2``. Its cell weights are columns ``cells``
    of its band's ``scatter``.
    """

    row_lo: int
    row_hi: int
    shift: int
    pad: int
    box: tuple[int, int]
    dilation: tuple[int, int]
    cells: tuple[int, int]

    @property
    def reach(self) -> int:
        """How many columns beyond a pixel's own the unit reads, either way."""
        return abs(self.shift) + self.pad


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
    """Consecutive gathered output rows ``out_lo:out_hi`` (their taps are read from the table by the
    gather kernels, a few rows per matrix product)."""

    out_lo: int
    out_hi: int


@dataclass(frozen=True, eq=False)
class Plan:
    """How to compute one table: ``pieces`` (bands and gather groups in output-row order), ``halo``
    the circular column padding of the flat layout (a multiple of the stride), ``num_taps`` the
    stencil's ``K``."""

    pieces: tuple[Band | GatherGroup, ...]
    halo: int
    num_taps: int

    @property
    def gathered(self) -> bool:
        """Whether any output rows are gathered."""
        return any(isinstance(piece, GatherGroup) for piece in self.pieces)


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
        box_w = nw + (dc * (nw - 1)) % 2  # an odd span gets a zero column on the right
        for ro0, dr, nh in _ap_groups(ros):
            span = (0, 0) if scatter is None else scatter.add(
                [cells.get((ro0 + a * dr, co0 + b * dc), {}) for a in range(nh) for b in range(box_w)])
            pad = dc * (box_w - 1) // 2
            row_hi = (out_hi - 1) * s + ro0 + dr * (nh - 1) + 1
            units.append(ConvUnit(out_lo * s + ro0, row_hi, co0 + pad, pad, (nh, box_w), (dr, dc), span))
    return tuple(units)


def _max_halo(width: int) -> int:
    return max(1, min(_MAX_HALO, width // 16))


@functools.lru_cache(maxsize=128)
def banded_plan(table: NeighbourTable) -> Plan:
    """Split the output rows of ``table`` into bands of equal relative stencils covered by convolution
    units and groups of gathered rows; cached per table."""
    cells = [_row_cells(table, i) for i in range(table.h_out)]
    signatures = [tuple(sorted((key, tuple(sorted(v.items()))) for key, v in c.items())) for c in cells]
    spans, lo = [], 0  # (first row, end row, gathered?)
    for i in range(1, table.h_out + 1):
        if i == table.h_out or signatures[i] != signatures[lo]:
            units = _band_units(table, cells[lo], lo, i, None)
            wide = max(u.reach for u in units) > _max_halo(table.width)
            small = table.h_out * table.w_out <= _ALL_GATHERED_PIXELS
            spans.append((lo, i, wide or small or 2 * len(units) > i - lo))
            lo = i
    pieces, pending = [], None  # pending: first row of the gathered run in progress
    for a, b, g in spans + [(table.h_out, table.h_out, False)]:
        if g and pending is None:
            pending = a
        if not g:
            if pending is not None:
                pieces.append(GatherGroup(pending, a))
                pending = None
            if b > a:
                scatter = _ScatterBuilder(table.num_taps)
                pieces.append(Band(a, b, _band_units(table, cells[a], a, b, scatter), scatter.matrix()))
    reach = max([0] + [u.reach for p in pieces if isinstance(p, Band) for u in p.units])
    halo = -(-reach // table.stride) * table.stride
    return Plan(tuple(pieces), halo, table.num_taps)
