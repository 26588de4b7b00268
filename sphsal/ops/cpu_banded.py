"""Fast CPU path of spherical convolution: bands of rows computed by planar convolutions.

The output rows are split by :func:`~sphsal.ops.banded_plan.banded_plan` into *bands* (consecutive rows
with the same relative stencil), each computed by a few planar ``F.conv2d`` calls (its *units*, dilated
as the stencil needs, with the layer's weight scattered into their cells), and *gathered* rows.

Gathered rows (next to the poles, where the taps spread over all longitudes, and most bilinear rows,
whose weights change from row to row) are computed a few consecutive rows at a time: a numba kernel
reads each tap's value from its source pixel (nearest) or interpolates it from its four (bilinear) into
a ``(rows * B * W_out, K * Ci)`` block, and one 1x1 convolution with the layer's weight as
``(Co, K * Ci)``, shared by every row, gives the outputs (matrix products in backward).

The data layout is *flat channels-last*: the input is copied once into ``(H, B, W + 2 halo, C)``, its
columns padded circularly by ``halo`` on both sides, with ``halo`` zero pixels before and after the
whole buffer. Seen as a channels-last ``(1, C, H, B * (W + 2 halo))`` image, every band's rows are a
contiguous slice, so oneDNN convolves them in place (no copies, no layout reorders); the columns where
one batch item's window reaches into the next are computed and thrown away. Each unit's input view is
shifted by its centre column and padded by half its span, so every unit's output lands on the same
``(rows, B, (W + 2 halo) / stride, Co)`` grid, and so does the output gradient in backward: one buffer
serves all units. Weight gradients come from one matrix product per cell on shifted views of the same
buffers, except the dense undilated units' where the CPU has AVX-512: those come from oneDNN's
channels-last weight gradient (see ``ONEDNN_WEIGHT_GRAD``).

Clips (``sphere_conv3d``) are folded into images while they are copied into the flat buffer: the
``kt`` zero-padded temporal taps of each output frame become channels, ``(B, Ci, T, H, W)`` ->
``B * T_out`` images of ``Ci * kt`` channels, so a clip layer is one image layer; the input gradient
is unfolded back the same way.

Grouped convolutions (``groups > 1``) run the same plan: band units are grouped oneDNN convolutions
(weight gradients from oneDNN too), and gathered rows' tap blocks are reordered group-major (column
``c * K + t``), so that each group's taps are one contiguous run and the products are one grouped 1x1
convolution. Depthwise ones (one input channel per group) keep the tap-major block and take its
products as ``K`` channel-wise multiply-adds instead (:func:`_depthwise_forward`).

Nothing expanded is kept for backward: the autograd function saves only ``x`` (the clip itself, not
its folded copy) and the weight, and rebuilds the flat input in backward. float32 and float64 run
natively; other dtypes in float32. Numba's kernels run on torch's intra-op thread count.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import register_flop_formula

from sphsal.ops.banded_plan import Band, ConvUnit, GatherGroup, Plan, banded_plan
from sphsal.ops.sphere_conv import (
    planar_conv_flops,
    reference_vjp,
    sphere_conv2d_reference,
    sphere_conv3d_reference,
)
from sphsal.ops.stencils import NeighbourTable, table_for
from sphsal.ops.time_fold import frames_out

__all__ = ["banded_sphere_conv"]

# Gathered rows are multiplied a few at a time: their tap block (rows x B x W_out x K x C values) stays
# below this many bytes (at least one row) and is reused from chunk to chunk (a fresh block per chunk
# paid its page faults every time: 2.5x slower at AVS360's clip shapes). Small enough to stay in L2
# between the gather and the products: at (2, 64, 120x240), one row per block (1.1 MB) instead of three
# made the step 7% (nearest) to 11% (bilinear) faster on an AVX-512 Xeon (1.25 MB L2 per core).
_GATHER_BLOCK_BYTES = 1 << 20
# ... but a block holds at least this many output pixels, so that its matrix products are not too
# short: at (1, 256, 60x120) bilinear (120 pixels per row), one row per block made the step 1.5x slower
# than four.
_GATHER_MIN_PIXELS = 384
# Slices of the tall matrix products of the weight gradient (see _chunked_gram).
_GRAM_CHUNKS = 4
# Whether the dense, undilated units (the planar k x k stencil near the equator) take their weight
# gradients from oneDNN (with the input gradient, in one call) or from per-cell matrix products
# (_add_cell_weight_grads). On AVX2 (AMD EPYC) oneDNN's channels-last weight gradient was 3x slower
# than its NCHW one and the per-cell products were faster; with AVX-512 (Xeon) it is 1.2-1.4x faster
# than them for the plain 3x3 band of (2, 64, 120x240) (28.0 vs 38.7 ms with the input gradient).
# Every other unit (dilated, or fewer rows or columns) takes the per-cell products on both: there
# oneDNN's was 1.1-1.8x slower on the Xeon too (see _onednn_weight_grad).
ONEDNN_WEIGHT_GRAD = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@dataclass(frozen=True)
class _Flat:
    """The flat channels-last layout of ``batch`` images ``(C, H, W)``: ``(H, batch, W + 2 halo, C)`` rows
    after ``halo`` guard pixels (zero), followed by ``halo`` more. A clip's frames are images
    ``b * T_out + f`` with the temporal taps folded into channels (see
    :func:`~sphsal.ops._cpu_kernels.to_rows_last`)."""

    batch: int
    height: int
    width: int
    halo: int

    @property
    def padded_width(self) -> int:
        return self.width + 2 * self.halo

    @property
    def row_pixels(self) -> int:
        return self.batch * self.padded_width

    @property
    def pixels(self) -> int:
        return self.height * self.row_pixels + 2 * self.halo

    def rows(self, buffer: torch.Tensor) -> torch.Tensor:
        """The ``(H, B, W + 2 halo, C)`` view of a ``(pixels, C)`` buffer."""
        return buffer[self.halo:self.halo + self.height * self.row_pixels].view(
            self.height, self.batch, self.padded_width, -1)

    def image(self, buffer: torch.Tensor, first: int, count: int, length: int) -> torch.Tensor:
        """``count`` rows of ``length`` pixels from buffer pixel ``first`` as a channels-last
        ``(1, C, count, length)`` image (a view)."""
        return buffer[first:first + count * length].view(1, count, length, -1).permute(0, 3, 1, 2)


def _as_clip(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` images as one-frame clips ``(B, C, 1, H, W)`` (a view); clips unchanged."""
    return x.unsqueeze(2) if x.dim() == 4 else x


def _to_flat(x: torch.Tensor, flat: _Flat, kt: int, stride_t: int) -> torch.Tensor:
    """Copy ``x`` (images or clips, temporal taps folded) into a new flat ``(pixels, C * kt)`` buffer,
    halo columns included."""
    from sphsal.ops import _cpu_kernels

    clip = _as_clip(x)  # any strides (a channels-last input is read in place)
    buffer = x.new_empty(flat.pixels, clip.shape[1] * kt)
    buffer[:flat.halo].zero_()
    buffer[buffer.shape[0] - flat.halo:].zero_()
    _cpu_kernels.to_rows_last(clip.numpy(), kt, stride_t, flat.halo, True, flat.rows(buffer).numpy())
    return buffer


def _to_channels_first(src: torch.Tensor, first: int, fold: int, dst: torch.Tensor, kt: int = 1,
                       stride_t: int = 1) -> None:
    """``dst`` (images ``(B, C, n, W)`` or clips ``(B, C, T, n, W)``) from the flat rows ``src``, columns
    ``first:first + W`` (temporal taps unfolded and the ``fold`` halo columns on either side folded
    back, see :func:`~sphsal.ops._cpu_kernels.to_channels_first`)."""
    from sphsal.ops import _cpu_kernels

    _cpu_kernels.to_channels_first(src.numpy(), first, fold, kt, stride_t, _as_clip(dst).numpy())


def _out_rows(y: torch.Tensor, flat: _Flat, stride: int) -> torch.Tensor:
    """A unit's channels-last output ``(1, Co, n, B * (W + 2 halo) / stride)`` as flat rows ``(n, B,
    (W + 2 halo) / stride, Co)``."""
    return y.permute(0, 2, 3, 1).view(y.shape[2], flat.batch, flat.padded_width // stride, -1)


@functools.lru_cache(maxsize=256)
def _unit_scatter(band: Band, unit: ConvUnit, dtype: torch.dtype) -> torch.Tensor:
    """The unit's ``(K, cells)`` tap-to-cell weights in ``dtype``."""
    return band.scatter[:, unit.cells[0]:unit.cells[1]].to(dtype)


@functools.lru_cache(maxsize=64)
def _kernel_table(table: NeighbourTable, dtype: torch.dtype):
    from sphsal.ops import _cpu_kernels

    return _cpu_kernels.table_arrays(table.rows, table.cols, table.weights, table.width, dtype)


@functools.lru_cache(maxsize=256)
def _cell_taps(band: Band, unit: ConvUnit) -> tuple[tuple[tuple[int, float], ...], ...]:
    """The ``(tap, weight)`` pairs of each of the unit's cells (nonzero weights only)."""
    scatter = band.scatter[:, unit.cells[0]:unit.cells[1]]
    return tuple(tuple((int(t), float(scatter[t, c])) for t in scatter[:, c].nonzero().flatten())
                 for c in range(scatter.shape[1]))


@functools.lru_cache(maxsize=256)
def _unit_taps(band: Band, unit: ConvUnit) -> tuple[torch.Tensor | None, torch.Tensor] | None:
    """For a unit whose cells each hold at most one tap at weight 1 (nearest sampling): the tap of each
    cell (0 for an empty one; None when the cells are the taps in order, the planar ``k x k`` stencil)
    and the empty cells; None where a cell mixes weights (bilinear)."""
    cells = _cell_taps(band, unit)
    if any(len(taps) > 1 or (taps and taps[0][1] != 1.0) for taps in cells):
        return None
    tap = [taps[0][0] if taps else 0 for taps in cells]
    empty = torch.tensor([c for c, taps in enumerate(cells) if not taps], dtype=torch.long)
    return (None if tap == list(range(band.scatter.shape[0])) else torch.tensor(tap)), empty


def _unit_weight(weight: torch.Tensor, band: Band, unit: ConvUnit) -> torch.Tensor:
    """``(Co, Ci, K)`` weight -> the unit's ``(Co, Ci, nh, nw)`` conv2d weight (made per unit, so that
    at most one unit's cell weights exist at a time): the weight itself for the planar stencil, the
    cells' taps picked where each cell holds one (4x faster than the product at C = 256), else the
    product with the unit's scatter matrix."""
    co, ci, k = weight.shape
    taps = _unit_taps(band, unit)
    if taps is None:
        cells = weight.reshape(co * ci, k) @ _unit_scatter(band, unit, weight.dtype)
    elif taps[0] is None:
        cells = weight
    else:
        cells = weight.index_select(2, taps[0])
        if len(taps[1]):
            cells.index_fill_(2, taps[1], 0)
    return cells.view(co, ci, *unit.box)


def _taps_1x1(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``(Co, Ci / groups, K)`` weight -> the ``(Co, K * Ci / groups, 1, 1)`` 1x1 convolution of the
    gathered taps: tap-major columns ``t * Ci + c`` (``groups = 1``) or group-major ``c * K + t``."""
    if groups == 1:
        weight = weight.transpose(1, 2)
    return weight.reshape(weight.shape[0], -1, 1, 1)


def _block_image(taps: torch.Tensor) -> torch.Tensor:
    """A tap block ``(M, N)`` as a channels-last ``(1, N, 1, M)`` image (a view)."""
    return taps.view(1, 1, taps.shape[0], -1).permute(0, 3, 1, 2)


def _gathered_forward(taps: torch.Tensor, weight_1x1: torch.Tensor, bias: torch.Tensor | None,
                      groups: int = 1) -> torch.Tensor:
    """Outputs ``(M, Co)`` of a tap block ``(M, K * Ci)``: a 1x1 convolution (bias included) of the block
    seen as a channels-last ``(1, K * Ci, 1, M)`` image. oneDNN's 1x1 convolution rather than a matrix
    product: on an AVX-512 Xeon 1.25x faster alone at ``M = 1440``, ``K * Ci = 576``, and the forward of
    (2, 64, 120x240) bilinear, all rows gathered, 15% faster."""
    y = F.conv2d(_block_image(taps), weight_1x1, bias, groups=groups)
    return y.permute(0, 2, 3, 1).reshape(taps.shape[0], -1)


def _depthwise(weight: torch.Tensor, groups: int) -> bool:
    """Whether a ``(Co, Ci / groups, K)`` weight is depthwise: one input channel per group."""
    return groups > 1 and weight.shape[1] == 1


def _depthwise_taps_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Depthwise ``(C * m, 1, K)`` weight (``C = groups`` input channels, ``m`` outputs each, output
    channel ``c * m + j``) -> ``(K, C, m)``."""
    return weight.view(groups, -1, weight.shape[2]).permute(2, 0, 1).contiguous()


def _depthwise_forward(taps: torch.Tensor, taps_weight: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
    """Outputs ``(M, C * m)`` of a tap-major block ``(M, K * C)`` of a depthwise convolution with
    ``taps_weight`` ``(K, C, m)``: ``K`` channel-wise multiply-adds (on an AVX-512 Xeon 3.3x faster
    than the grouped 1x1 convolution of the group-major block at ``M = 480``, ``C = 128``)."""
    k, c, m = taps_weight.shape
    t = taps.view(taps.shape[0], k, c, 1)
    out = t[:, 0] * taps_weight[0]
    for tap in range(1, k):
        out.addcmul_(t[:, tap], taps_weight[tap])
    out = out.view(taps.shape[0], -1)
    return out if bias is None else out.add_(bias)


def _unit_span(flat: _Flat, unit: ConvUnit) -> tuple[int, int]:
    """First buffer pixel and pixel count of the unit's input rows (shifted by ``unit.shift``)."""
    first = flat.halo + unit.row_lo * flat.row_pixels + unit.shift
    return first, (unit.row_hi - unit.row_lo) * flat.row_pixels


def _unit_input(buffer: torch.Tensor, flat: _Flat, unit: ConvUnit) -> torch.Tensor:
    """The unit's input rows of the flat buffer, shifted by ``unit.shift`` columns, as a channels-last
    ``(1, C, rows, B * (W + 2 halo))`` image."""
    first, count = _unit_span(flat, unit)
    return flat.image(buffer, first, count // flat.row_pixels, flat.row_pixels)


class _TapBlocks:
    """The tap blocks of one call's gathered rows: chunks of at most ``rows`` output rows, one reused
    ``(rows * B * W_out, K * C)`` buffer (see ``_GATHER_BLOCK_BYTES``). The kernels fill and read it
    tap-major (column ``t * C + c``); with ``groups > 1`` (grouped convolutions, depthwise ones
    excepted) :meth:`gather` returns, and :meth:`scatter` takes, a group-major copy (column
    ``c * K + t``, see :func:`_taps_1x1`) in a second reused buffer."""

    def __init__(self, buffer: torch.Tensor, flat: _Flat, table: NeighbourTable, groups: int = 1):
        self.buffer, self.flat, self.table, self.groups = buffer, flat, table, groups
        self.pixels_per_row = flat.batch * table.w_out
        width = table.num_taps * buffer.shape[1]
        self.rows = max(-(-_GATHER_MIN_PIXELS // self.pixels_per_row),
                        _GATHER_BLOCK_BYTES // (self.pixels_per_row * width * buffer.element_size()))
        self.arrays = _kernel_table(table, buffer.dtype)
        self.width, self.block, self.grouped = width, None, None

    def chunks(self, group: GatherGroup) -> list[tuple[int, int]]:
        starts = range(group.out_lo, group.out_hi, self.rows)
        return [(lo, min(lo + self.rows, group.out_hi)) for lo in starts]

    def view(self, lo: int, hi: int) -> torch.Tensor:
        """The block for output rows ``lo:hi``, ``((hi - lo) * B * W_out, K * C)``, contents undefined."""
        if self.block is None:
            self.block = self.buffer.new_empty(self.rows * self.pixels_per_row, self.width)
        return self.block[:(hi - lo) * self.pixels_per_row]

    def _kernel_view(self, block: torch.Tensor, lo: int, hi: int):
        return block.view(hi - lo, self.flat.batch, self.table.w_out, -1).numpy()

    def _tap_major(self, block: torch.Tensor) -> torch.Tensor:
        """``(M, K * C)`` tap-major block as ``(M, groups, C / groups, K)`` (a view)."""
        return block.view(block.shape[0], self.table.num_taps, self.groups, -1).permute(0, 2, 3, 1)

    def gather(self, lo: int, hi: int) -> torch.Tensor:
        """The tap values of output rows ``lo:hi`` (in a reused block; group-major if grouped)."""
        from sphsal.ops import _cpu_kernels

        block = self.view(lo, hi)
        _cpu_kernels.gather_taps(self.flat.rows(self.buffer).numpy(), self.flat.halo, lo, hi, *self.arrays,
                                 self.table.stride, self._kernel_view(block, lo, hi))
        if self.groups == 1:
            return block
        if self.grouped is None:
            self.grouped = torch.empty_like(self.block)
        grouped, taps = self.grouped[:block.shape[0]], self._tap_major(block)
        grouped.view(taps.shape).copy_(taps)
        return grouped

    def scatter(self, grad_taps: torch.Tensor, lo: int, hi: int, grad_buffer: torch.Tensor) -> None:
        """Add the tap gradients of output rows ``lo:hi`` (group-major if grouped) into the flat gradient
        buffer."""
        from sphsal.ops import _cpu_kernels

        if self.groups != 1:
            block = self.view(lo, hi)
            taps = self._tap_major(block)
            taps.copy_(grad_taps.view(taps.shape))
            grad_taps = block
        chunk = _cpu_kernels.channel_chunk(grad_buffer.shape[1], torch.get_num_threads(), self.flat.batch)
        _cpu_kernels.scatter_taps(self._kernel_view(grad_taps, lo, hi), self.flat.halo, lo, hi, *self.arrays,
                                  self.table.stride, self.flat.rows(grad_buffer).numpy(), chunk)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a channels-last image input (as nn.Conv2d does), else contiguous."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, plan: Plan,
             table: NeighbourTable, kt: int, stride_t: int, groups: int) -> torch.Tensor:
    """Outputs ``(B, Co, [T_out,] H_out, W_out)`` in ``x``'s memory format (see :func:`_conv_op`)."""
    from sphsal.ops import _cpu_kernels

    _cpu_kernels.match_torch_threads()
    t_out = _frames_out(x, kt, stride_t)
    flat = _Flat(x.shape[0] * t_out, table.height, table.width, plan.halo)
    buffer = _to_flat(x, flat, kt, stride_t)
    depthwise = _depthwise(weight, groups)
    if plan.gathered:  # the products' weight: (K, C, m) depthwise, else (Co, K * Ci / groups, 1, 1)
        gathered_weight = _depthwise_taps_weight(weight, groups) if depthwise else _taps_1x1(weight, groups)
    blocks = _TapBlocks(buffer, flat, table, 1 if depthwise else groups)
    frames = (t_out,) if x.dim() == 5 else ()
    out = torch.empty((x.shape[0], weight.shape[0], *frames, table.h_out, table.w_out), dtype=x.dtype,
                      memory_format=_memory_format(x))
    for piece in plan.pieces:
        if isinstance(piece, Band):
            y = None
            for unit in piece.units:
                z = F.conv2d(_unit_input(buffer, flat, unit), _unit_weight(weight, piece, unit),
                             bias if y is None else None, table.stride, (0, unit.pad), unit.dilation, groups)
                y = z if y is None else y.add_(z)
            _to_channels_first(_out_rows(y, flat, table.stride), flat.halo // table.stride, 0,
                               out[..., piece.out_lo:piece.out_hi, :])
        else:
            for lo, hi in blocks.chunks(piece):
                taps = blocks.gather(lo, hi)
                y = (_depthwise_forward(taps, gathered_weight, bias) if depthwise
                     else _gathered_forward(taps, gathered_weight, bias, groups))
                _to_channels_first(y.view(hi - lo, flat.batch, table.w_out, -1), 0, 0, out[..., lo:hi, :])
    return out


def _frames_out(x: torch.Tensor, kt: int, stride_t: int) -> int:
    """Output frames of a clip (time zero-padded by ``kt // 2``); 1 for an image."""
    return frames_out(x.shape[2], kt, stride_t) if x.dim() == 5 else 1


def _grad_flat(grad_out: torch.Tensor, flat: _Flat, stride: int) -> torch.Tensor:
    """The output gradient (images or clips) on the units' output grid ``(H_out * images *
    (W + 2 halo) / stride, Co)``, zero in the columns that are thrown away."""
    from sphsal.ops import _cpu_kernels

    clip = _as_clip(grad_out)  # any strides: the gradient of a sum is one value expanded, read in place
    grid = grad_out.new_empty(clip.shape[3], flat.batch, flat.padded_width // stride, clip.shape[1])
    _cpu_kernels.to_rows_last(clip.numpy(), 1, 1, flat.halo // stride, False, grid.numpy())
    return grid.view(-1, clip.shape[1])


def _chunked_gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.T @ b`` for tall ``(M, P)`` and ``(M, Q)``: as a batch of ``_GRAM_CHUNKS`` products over
    slices of ``M`` (MKL splits one product with a small result poorly across threads: 1.17x faster
    on 2 threads at ``M = 31488``, ``C = 64``)."""
    m = a.shape[0] - a.shape[0] % _GRAM_CHUNKS
    if m < _GRAM_CHUNKS * 1024:
        return a.T @ b
    out = torch.bmm(a[:m].view(_GRAM_CHUNKS, m // _GRAM_CHUNKS, -1).transpose(1, 2),
                    b[:m].view(_GRAM_CHUNKS, m // _GRAM_CHUNKS, -1)).sum(0)
    return out.addmm_(a[m:].T, b[m:]) if m < a.shape[0] else out


def _add_cell_weight_grads(grad_taps: torch.Tensor, buffer: torch.Tensor, grad_grid: torch.Tensor,
                           flat: _Flat, band: Band, unit: ConvUnit, stride: int) -> None:
    """Add the weight gradients of a unit's cells into ``grad_taps`` ``(Co, K, Ci)``: per cell, one
    matrix product of the output gradient rows with a shifted view of the flat input, added to the
    cell's taps (one cell's gradient exists at a time)."""
    n = band.out_hi - band.out_lo
    out_row = flat.row_pixels // stride
    grad = grad_grid[band.out_lo * out_row:band.out_hi * out_row]  # (n * out_row, Co)
    channels = buffer.shape[1]
    (nh, nw), (dr, dc) = unit.box, unit.dilation
    cell_taps = _cell_taps(band, unit)
    for a in range(nh):
        for b in range(nw):
            if not cell_taps[a * nw + b]:
                continue
            first = flat.halo + (unit.row_lo + a * dr) * flat.row_pixels + unit.shift - unit.pad + b * dc
            if stride == 1:
                gram = _chunked_gram(grad, buffer[first:first + n * out_row])
            else:
                source = buffer.as_strided((n, out_row, channels),
                                           (stride * flat.row_pixels * channels, stride * channels, 1),
                                           buffer.storage_offset() + first * channels)
                gram = torch.bmm(grad.view(n, out_row, -1).transpose(1, 2), source).sum(0)
            for tap, weight in cell_taps[a * nw + b]:
                grad_taps[:, tap].add_(gram, alpha=weight)


def _onednn_weight_grad(unit: ConvUnit, groups: int) -> bool:
    """Whether ``unit``'s weight gradient comes from oneDNN (see ``ONEDNN_WEIGHT_GRAD``): every unit of
    a grouped convolution, else only a dense ``k x k`` (k >= 3) undilated unit. On the AVX-512 Xeon,
    input gradient and per-cell products / one oneDNN call for both, (2, 64, 120x240): the ten dilated
    units next to the plain band 22.3 / 27.3 ms; a dilation-2 layer's units 46.6 / 60.6 ms; a stride-2
    layer's 9.3 / 14.0 ms."""
    nh, nw = unit.box
    return groups > 1 or (ONEDNN_WEIGHT_GRAD and nh == nw >= 3 and unit.dilation == (1, 1))


def _unit_backward(grad_rows: torch.Tensor, buffer: torch.Tensor, grad_buffer: torch.Tensor | None,
                   grad_w_cells: torch.Tensor | None, flat: _Flat, band: Band, unit: ConvUnit,
                   weight: torch.Tensor, stride: int, anchor: bool, groups: int) -> None:
    """One oneDNN call for a unit's input gradient (added into ``grad_buffer``, or copied for the
    ``anchor`` unit; skipped when None) and its weight gradient (mapped back to the taps through the
    unit's scatter matrix and added into ``grad_w_cells`` ``(Co * Ci, K)``; skipped when None)."""
    gi, gw, _ = torch.ops.aten.convolution_backward(
        grad_rows, _unit_input(buffer, flat, unit), _unit_weight(weight, band, unit), None, [stride] * 2,
        [0, unit.pad], list(unit.dilation), False, [0, 0], groups,
        [grad_buffer is not None, grad_w_cells is not None, False])
    if grad_buffer is not None:
        target = _unit_input(grad_buffer, flat, unit)
        if anchor:
            target.copy_(gi)
        else:
            target.add_(gi)
    if grad_w_cells is not None:
        grad_w_cells.addmm_(gw.reshape(grad_w_cells.shape[0], -1), _unit_scatter(band, unit, gw.dtype).T)


def _anchor(plan: Plan) -> tuple[Band, ConvUnit] | None:
    """The unit reading the most rows: its input gradient is copied, not added, into the gradient
    buffer (processed first; the rest of the buffer is zeroed)."""
    units = [(p, u) for p in plan.pieces if isinstance(p, Band) for u in p.units]
    return max(units, key=lambda pu: pu[1].row_hi - pu[1].row_lo, default=None)


def _grad_buffer(buffer: torch.Tensor, flat: _Flat, anchor: tuple[Band, ConvUnit] | None) -> torch.Tensor:
    """The flat input gradient buffer, zero outside the anchor unit's rows (see :func:`_anchor`)."""
    grad = torch.empty_like(buffer)
    if anchor is None:
        return grad.zero_()
    first, count = _unit_span(flat, anchor[1])
    grad[:first].zero_()
    grad[first + count:].zero_()
    return grad


def _grouped_gathered_backward(blocks: _TapBlocks, lo: int, hi: int, grad: torch.Tensor,
                               weight_1x1: torch.Tensor, grad_buffer: torch.Tensor | None,
                               grad_w_cells: torch.Tensor | None) -> None:
    """Gathered rows ``lo:hi`` of a grouped convolution, output gradient ``grad`` ``(M, Co)``: one oneDNN
    call for the group-major tap gradients (scattered into ``grad_buffer``; skipped when None) and the
    weight gradient (added into ``grad_w_cells`` ``(Co * Ci / groups, K)``; skipped when None)."""
    need_x, need_w = grad_buffer is not None, grad_w_cells is not None
    taps = blocks.gather(lo, hi) if need_w else blocks.view(lo, hi)  # only its shape matters without need_w
    gi, gw, _ = torch.ops.aten.convolution_backward(
        _block_image(grad), _block_image(taps), weight_1x1, None, [1, 1], [0, 0], [1, 1], False, [0, 0],
        blocks.groups, [need_x, need_w, False])
    if need_w:
        grad_w_cells.add_(gw.view(grad_w_cells.shape))
    if need_x:
        blocks.scatter(gi.permute(0, 2, 3, 1).reshape(taps.shape), lo, hi, grad_buffer)


def _depthwise_gathered_backward(blocks: _TapBlocks, lo: int, hi: int, grad: torch.Tensor,
                                 taps_weight: torch.Tensor, grad_buffer: torch.Tensor | None,
                                 grad_w_cells: torch.Tensor | None) -> None:
    """Gathered rows ``lo:hi`` of a depthwise convolution (see :func:`_depthwise_forward`), output
    gradient ``grad`` ``(M, C * m)``: the weight gradient added into ``grad_w_cells`` ``(C * m, K)`` and
    the tap gradients (channel-wise products, written over the taps) scattered into ``grad_buffer``
    (each skipped when None)."""
    k, c, m = taps_weight.shape
    g = grad.view(-1, c, m)
    if grad_w_cells is not None:
        taps = blocks.gather(lo, hi).view(-1, k, c, 1)
        grad_w_cells.add_((taps * g.unsqueeze(1)).sum(0).view(k, -1).T)
    if grad_buffer is not None:
        grad_taps = blocks.view(lo, hi).view(-1, k, c)
        for tap in range(k):
            if m == 1:
                torch.mul(grad, taps_weight[tap, :, 0], out=grad_taps[:, tap])
            else:
                torch.sum(g * taps_weight[tap], dim=2, out=grad_taps[:, tap])
        blocks.scatter(grad_taps.view(grad.shape[0], -1), lo, hi, grad_buffer)


def _backward(plan: Plan, table: NeighbourTable, kt: int, stride_t: int, x, weight, grad_out, need_x: bool,
              need_w: bool, groups: int):
    from sphsal.ops import _cpu_kernels

    _cpu_kernels.match_torch_threads()
    channels, co, stride = weight.shape[1], weight.shape[0], table.stride
    flat = _Flat(x.shape[0] * _frames_out(x, kt, stride_t), table.height, table.width, plan.halo)
    batch = flat.batch
    # x's values enter the weight gradient only; the input gradient needs the buffer's layout alone
    buffer = _to_flat(x, flat, kt, stride_t) if need_w else x.new_empty(flat.pixels, x.shape[1] * kt)
    grad_grid = _grad_flat(grad_out, flat, stride)
    anchor = _anchor(plan) if need_x else None
    grad_buffer = _grad_buffer(buffer, flat, anchor) if need_x else None
    # (Co, K * Ci): the gathered taps' product grad.T @ taps is 1.3-2x faster than taps.T @ grad with
    # MKL on an AVX-512 Xeon (M = 2048, K * Ci = 432, Co = 16: 0.19 vs 0.39 ms; 1440, 576, 64: 0.60 vs 0.79)
    grad_taps = weight.new_zeros(co, weight.shape[2] * channels) if need_w and groups == 1 else None
    grad_w_cells = None  # (Co * Ci / groups, K): the weight gradients that oneDNN computes
    units = [u for p in plan.pieces if isinstance(p, Band) for u in p.units]
    if need_w and (groups > 1 or any(_onednn_weight_grad(u, groups) for u in units)):
        grad_w_cells = weight.new_zeros(co * channels, weight.shape[2])
    # The gathered rows' weight: (K, C, m) depthwise, else (Co, K * Ci / groups) (for groups = 1, used by
    # the input gradient only: 8% faster products than with the transposed taps)
    depthwise, gathered_weight = _depthwise(weight, groups), None
    if plan.gathered and (need_x or groups > 1):
        gathered_weight = (_depthwise_taps_weight(weight, groups) if depthwise
                           else _taps_1x1(weight, groups).view(co, -1))
    out_row = flat.row_pixels // stride
    blocks = _TapBlocks(buffer, flat, table, 1 if depthwise else groups)
    for piece in sorted(plan.pieces, key=lambda p: anchor is None or p is not anchor[0]):
        n = piece.out_hi - piece.out_lo
        if isinstance(piece, Band):
            grad_rows = flat.image(grad_grid, piece.out_lo * out_row, n, out_row)
            for unit in sorted(piece.units, key=lambda u: anchor is None or u is not anchor[1]):
                onednn_w = need_w and _onednn_weight_grad(unit, groups)
                if need_x or onednn_w:
                    _unit_backward(grad_rows, buffer, grad_buffer, grad_w_cells if onednn_w else None, flat,
                                   piece, unit, weight, stride, anchor is not None and unit is anchor[1],
                                   groups)
                if need_w and not onednn_w:
                    _add_cell_weight_grads(grad_taps.view(co, -1, channels), buffer, grad_grid, flat, piece,
                                           unit, stride)
        else:
            grid = grad_grid.view(table.h_out, batch, out_row // batch, co)
            first = flat.halo // stride
            for lo, hi in blocks.chunks(piece):
                grad = grid[lo:hi, :, first:first + table.w_out].reshape(-1, co)
                if depthwise:
                    _depthwise_gathered_backward(blocks, lo, hi, grad, gathered_weight, grad_buffer,
                                                 grad_w_cells)
                    continue
                if groups > 1:
                    _grouped_gathered_backward(blocks, lo, hi, grad, gathered_weight.view(co, -1, 1, 1),
                                               grad_buffer, grad_w_cells)
                    continue
                if need_w:
                    grad_taps.addmm_(grad.T, blocks.gather(lo, hi))
                if need_x:
                    grad_block = torch.mm(grad, gathered_weight, out=blocks.view(lo, hi))
                    blocks.scatter(grad_block, lo, hi, grad_buffer)
    grad_x = None
    del buffer, grad_grid, blocks  # freed before the result is allocated, which may reuse their memory
    if need_x:
        grad_x = torch.empty_like(x)
        _to_channels_first(flat.rows(grad_buffer), flat.halo, flat.halo, grad_x, kt, stride_t)
    grad_w = None
    if need_w:
        grad_w = None if grad_taps is None else grad_taps.view(co, -1, channels).transpose(1, 2)
        if grad_w_cells is not None:
            cells = grad_w_cells.view(co, channels, -1)
            grad_w = cells if grad_w is None else grad_w + cells
    return grad_x, grad_w


@torch.library.custom_op("sphsal::sphere_conv_cpu", mutates_args=())
def _conv_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kt: int, stride_t: int,
             kernel_size: int, stride: int, dilation: int, interpolation: str, stencil: str,
             groups: int) -> torch.Tensor:
    """``x`` ``(B, Ci, [T,] H, W)`` float32/64, ``weight`` ``(Co, Ci / groups * kt, K)`` (temporal taps
    folded into channels) -> ``(B, Co, [T_out,] H_out, W_out)``. The neighbour table and the plan are
    looked up here, inside the operator, so that ``torch.compile`` sees one opaque call."""
    table = table_for(x, kernel_size, stride, dilation, interpolation, stencil)
    return _forward(x, weight, bias, banded_plan(table), table, kt, stride_t, groups)


@_conv_op.register_fake
def _(x, weight, bias, kt, stride_t, kernel_size, stride, *_):
    frames = (_frames_out(x, kt, stride_t),) if x.dim() == 5 else ()
    shape = (x.shape[0], weight.shape[0], *frames, x.shape[-2] // stride, x.shape[-1] // stride)
    return x.new_empty(shape).contiguous(memory_format=_memory_format(x))


@torch.library.custom_op("sphsal::sphere_conv_cpu_backward", mutates_args=())
def _conv_backward_op(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_x: bool,
                      need_w: bool, kt: int, stride_t: int, kernel_size: int, stride: int, dilation: int,
                      interpolation: str, stencil: str, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_conv_op` for ``x`` and ``weight`` (empty where not needed), from ``x`` and
    ``weight`` alone (nothing else is saved by the forward pass)."""
    table = table_for(x, kernel_size, stride, dilation, interpolation, stencil)
    grad_x, grad_w = _backward(banded_plan(table), table, kt, stride_t, x, weight, grad_out, need_x, need_w,
                               groups)
    return (grad_x if need_x else x.new_empty(0)), (grad_w.contiguous() if need_w else weight.new_empty(0))


@_conv_backward_op.register_fake
def _(grad_out, x, weight, need_x, need_w, *_):
    grad_x = torch.empty_like(x) if need_x else x.new_empty(0)
    return grad_x, weight.new_empty(weight.shape if need_w else 0)


def _setup_context(ctx, inputs, output):
    x, weight, bias, *config = inputs
    ctx.save_for_backward(x, weight)
    ctx.config, ctx.has_bias = config, bias is not None


def _reference_conv(x: torch.Tensor, weight: torch.Tensor, kt: int, stride_t: int, kernel_size: int,
                    stride: int, dilation: int, interpolation: str, stencil: str,
                    groups: int) -> torch.Tensor:
    """:func:`_conv_op` (no bias) by the plain-torch reference, which autograd can differentiate again."""
    spatial = (kernel_size, kernel_size)
    if x.dim() == 4:
        return sphere_conv2d_reference(x, weight.view(*weight.shape[:2], *spatial), None, stride, dilation,
                                       interpolation, stencil, groups)
    return sphere_conv3d_reference(x, weight.view(weight.shape[0], -1, kt, *spatial), None,
                                   (stride_t, stride), dilation, interpolation, stencil, groups)


def _conv_backward(ctx, grad_out):
    x, weight = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad[:2]
    grad_x = grad_w = grad_b = None
    if torch.is_grad_enabled() and (need_x or need_w):  # create_graph: a gradient autograd can differentiate
        grad_x, grad_w = reference_vjp(lambda *xw: _reference_conv(*xw, *ctx.config), (x, weight),
                                       (need_x, need_w), grad_out)
    elif need_x or need_w:
        grad_x, grad_w = _conv_backward_op(grad_out, x, weight, need_x, need_w, *ctx.config)
        grad_x, grad_w = (grad_x if need_x else None), (grad_w if need_w else None)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_b = grad_out.sum(dim=[d for d in range(grad_out.dim()) if d != 1])
    return (grad_x, grad_w, grad_b) + (None,) * len(ctx.config)


_conv_op.register_autograd(_conv_backward, setup_context=_setup_context)


register_flop_formula(torch.ops.sphsal.sphere_conv_cpu)(planar_conv_flops)


@register_flop_formula(torch.ops.sphsal.sphere_conv_cpu_backward)
def _(grad_shape, x_shape, w_shape, need_x, need_w, *_, **__) -> int:
    """The planar convolution's count for each gradient computed (:func:`planar_conv_flops`)."""
    return planar_conv_flops(x_shape, w_shape, out_shape=grad_shape) * (int(need_x) + int(need_w))


def banded_sphere_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel_size: int,
                       stride: int = 1, dilation: int = 1, interpolation: str = "nearest",
                       stencil: str = "cap", stride_t: int = 1, groups: int = 1) -> torch.Tensor:
    """Spherical convolution by banded planar convolutions and gathered pole rows: the custom operator
    ``sphsal::sphere_conv_cpu`` (autograd registered; ``torch.compile`` traces it as one call).

    Args:
        x: ``(B, Ci, H, W)`` or ``(B, Ci, T, H, W)``.
        weight: ``(Co, Ci / groups, kt, K)`` taps (``kt = 1`` for images), ``K = k * k`` row-major.
        bias: ``(Co,)`` or None.
        kernel_size, stride, dilation, interpolation, stencil: the stencil (see
            :func:`~sphsal.ops.stencils.neighbour_table`).
        stride_t: temporal stride (clips; time is zero-padded by ``kt // 2``).
        groups: grouped convolution as ``nn.Conv2d`` (``Ci`` and ``Co`` divisible by it).

    Returns ``(B, Co, H_out, W_out)`` or ``(B, Co, T_out, H_out, W_out)`` in ``x``'s dtype (computed in
    float32 unless that is float64) and memory format.
    """
    if x.dtype not in (torch.float32, torch.float64):
        bias = None if bias is None else bias.float()
        return banded_sphere_conv(x.float(), weight.float(), bias, kernel_size, stride, dilation,
                                  interpolation, stencil, stride_t, groups).to(x.dtype)
    co, ci, kt = weight.shape[:3]
    if x.dim() == 4 and kt != 1:
        raise ValueError(f"weight for an image must have kt = 1, got shape {tuple(weight.shape)}")
    return _conv_op(x, weight.reshape(co, ci * kt, -1), bias, kt, stride_t, kernel_size, stride, dilation,
                    interpolation, stencil, groups)
