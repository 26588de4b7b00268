"""The CPU path's plan (sphsal.ops.banded_plan): bands, their convolution units and gathered rows."""

import pytest

from sphsal.ops.banded_plan import Band, GatherGroup, _row_cells, banded_plan
from sphsal.ops.stencils import neighbour_table

CONFIGS = [(h, stride, interpolation, stencil) for h in (16, 60, 120) for stride in (1, 2)
           for interpolation in ("nearest", "bilinear") for stencil in ("cap", "gnomonic")]


def _unit_cells(table, band: Band) -> dict:
    """``{(row offset, column offset): {tap: weight}}`` that the band's units put into each output row."""
    cells: dict = {}
    s = table.stride
    for unit in band.units:
        (nh, nw), (dr, dc) = unit.box, unit.dilation
        for a in range(nh):
            for b in range(nw):
                column = band.scatter[:, unit.cells[0] + a * nw + b]
                key = (unit.row_lo - band.out_lo * s + a * dr, unit.shift - unit.pad + b * dc)
                for tap in column.nonzero().flatten().tolist():
                    taps = cells.setdefault(key, {})
                    taps[tap] = taps.get(tap, 0.0) + float(column[tap])
    return cells


@pytest.mark.parametrize("h,stride,interpolation,stencil", CONFIGS)
def test_pieces_cover_every_output_row_once_in_order(h, stride, interpolation, stencil):
    table = neighbour_table(h, 2 * h, 3, stride, 1, stencil, interpolation)
    plan = banded_plan(table)
    bounds = [(p.out_lo, p.out_hi) for p in plan.pieces]
    assert bounds[0][0] == 0 and bounds[-1][1] == table.h_out
    assert all(lo < hi for lo, hi in bounds)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert not any(isinstance(a, GatherGroup) and isinstance(b, GatherGroup)
                   for a, b in zip(plan.pieces, plan.pieces[1:]))  # gathered runs are merged


@pytest.mark.parametrize("h,stride,interpolation,stencil", CONFIGS)
def test_each_band_row_gets_exactly_its_stencil_from_the_units(h, stride, interpolation, stencil):
    """The units' cells and scatter weights rebuild every band row's taps (source row relative to the
    output row, column offset, interpolation weight) exactly; the halo covers every unit's reach."""
    table = neighbour_table(h, 2 * h, 3, stride, 1, stencil, interpolation)
    plan = banded_plan(table)
    for band in (p for p in plan.pieces if isinstance(p, Band)):
        rebuilt = _unit_cells(table, band)
        for i in range(band.out_lo, band.out_hi):
            expected = _row_cells(table, i)
            assert rebuilt.keys() == expected.keys(), f"row {i}"
            for key, taps in expected.items():
                assert rebuilt[key] == pytest.approx(taps, abs=1e-12), f"row {i}, cell {key}"
        assert all(u.reach <= plan.halo for u in band.units)
    assert plan.halo % stride == 0


def test_nearest_cap_plan_at_120x240_is_symmetric_with_the_planar_band_at_the_equator():
    plan = banded_plan(neighbour_table(120, 240, 3, 1, 1, "cap", "nearest"))
    bounds = [(p.out_lo, p.out_hi, type(p)) for p in plan.pieces]
    assert [(120 - hi, 120 - lo, kind) for lo, hi, kind in reversed(bounds)] == bounds
    assert isinstance(plan.pieces[0], GatherGroup) and isinstance(plan.pieces[-1], GatherGroup)
    equator = next(p for p in plan.pieces if p.out_lo <= 60 < p.out_hi)
    assert isinstance(equator, Band) and len(equator.units) == 1
    unit = equator.units[0]
    assert (unit.box, unit.dilation, unit.shift) == ((3, 3), (1, 1), 0)
    assert equator.out_hi - equator.out_lo > 48  # the planar stencil holds to about 48 degrees latitude


def test_odd_column_spans_are_widened_to_a_centred_box():
    plan = banded_plan(neighbour_table(60, 120, 3, 2, 1, "cap", "nearest"))
    units = [u for p in plan.pieces if isinstance(p, Band) for u in p.units]
    assert all(u.dilation[1] * (u.box[1] - 1) == 2 * u.pad for u in units)
    assert plan.halo % 2 == 0 and plan.halo >= max(u.reach for u in units)


def test_small_outputs_are_gathered_whole():
    """At most 128 output pixels: one gathered run (a convolution call per band costs more there)."""
    small, larger = (banded_plan(neighbour_table(h, 2 * h, 3, 1, 1, "cap", "nearest")) for h in (8, 16))
    assert [(type(p), p.out_lo, p.out_hi) for p in small.pieces] == [(GatherGroup, 0, 8)]
    assert any(isinstance(p, Band) for p in larger.pieces)
