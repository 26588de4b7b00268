"""Numba kernels of the CPU spherical convolution (:mod:`sphsal.ops.cpu_banded`): its gathered rows and
its layout changes, kept apart so that importing :mod:`sphsal.ops` does not import numba.

:func:`to_rows_last` and :func:`to_channels_first` copy tensors into and out of the *flat* channels-last
layout of the fast path, ``src`` ``(H, B, W + 2 halo, C)``. The gather and scatter kernels work on that
layout: input row ``r`` of batch item ``b`` at ``src[r, b, halo:halo + W]``. For output rows ``i0:i1``
they read or write a *tap block* ``(n, B, W_out, K * C)`` (``n = i1 - i0``): element
``[i - i0, b, j, t * C + c]`` is tap ``t`` of output pixel ``(i, j)`` in channel ``c``, the sum over
corners ``p`` of ``weights[i, t, p] * src[rows[i, t, p], b, halo + (j * stride + cols[i, t, p]) mod W, c]``.
The table arrays are those of :class:`~sphsal.ops.stencils.NeighbourTable` with columns reduced to ``[0, W)``
(:func:`table_arrays`). Channels are innermost, so every tap is a contiguous run of ``C`` values.

The tests check all kernels through :func:`sphsal.ops.sphere_conv2d` (``backend="cpu"``) against the
plain torch reference: outputs, gradients and float64 gradcheck.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from sphsal._numba_parallel import forked_from_openmp, parallel_kernel

# 16 float32 values fill one 64-byte cache line.
_CHANNEL_CHUNK = 16
_threads_started = False


@numba.njit(inline="always", cache=True)
def _wrap(col, width):
    """A column in ``[0, 2 W)`` reduced to ``[0, W)``."""
    return col - width if col >= width else col


@parallel_kernel(cache=True, fastmath={"contract"})
def gather_taps(src, halo, i0, i1, rows, cols, weights, stride, block):
    """Fill ``block`` ``(n, B, W_out, K * C)`` with the tap values of output rows ``i0:i1``. Tables have
    one corner per tap (nearest) or four (bilinear); the four are summed in one pass over the channels
    (one store per value: 1.7x faster than accumulating corner by corner), with fused multiply-adds.
    A tap with one nonzero corner weight (a third of the cap stencil's bilinear taps: those on the
    pixel grid) reads that corner alone (zero-weight corners are skipped, here and in
    :func:`scatter_taps`, so a non-finite input value reaches only the taps that weight it).
    Indexed ``[column, channel]`` rather than through per-pixel slices: on an AVX-512 Xeon, (2, 64,
    120x240) bilinear, 50 vs 60 us per row (240x480: 128 vs 147 us)."""
    batch, channels = src.shape[1], src.shape[3]
    width = src.shape[2] - 2 * halo
    num_taps, corners = rows.shape[1], rows.shape[2]
    w_out = block.shape[2]
    for q in numba.prange((i1 - i0) * batch):
        i, b = i0 + q // batch, q % batch
        out_row = block[q // batch, b]
        for t in range(num_taps):
            c0 = t * channels
            nonzero, p = 0, 0
            for corner in range(corners):
                if weights[i, t, corner] != 0:
                    nonzero, p = nonzero + 1, corner
            if nonzero <= 1:
                w0, k0, r0 = weights[i, t, p], cols[i, t, p], src[rows[i, t, p], b]
                for j in range(w_out):
                    j0 = halo + _wrap(j * stride + k0, width)
                    for c in range(channels):
                        out_row[j, c0 + c] = w0 * r0[j0, c]
                continue
            w0, w1, w2, w3 = weights[i, t, 0], weights[i, t, 1], weights[i, t, 2], weights[i, t, 3]
            r0, r1 = src[rows[i, t, 0], b], src[rows[i, t, 1], b]
            r2, r3 = src[rows[i, t, 2], b], src[rows[i, t, 3], b]
            k0, k1, k2, k3 = cols[i, t, 0], cols[i, t, 1], cols[i, t, 2], cols[i, t, 3]
            for j in range(w_out):
                j0 = halo + _wrap(j * stride + k0, width)
                j1 = halo + _wrap(j * stride + k1, width)
                j2 = halo + _wrap(j * stride + k2, width)
                j3 = halo + _wrap(j * stride + k3, width)
                for c in range(channels):
                    out_row[j, c0 + c] = (w0 * r0[j0, c] + w1 * r1[j1, c]) + (w2 * r2[j2, c] + w3 * r3[j3, c])


@parallel_kernel(cache=True, fastmath={"contract"})
def scatter_taps(block, halo, i0, i1, rows, cols, weights, stride, grad_src, chunk):
    """Adjoint of :func:`gather_taps`: add the tap gradients ``block`` into ``grad_src``. Parallel over
    batch items and ``chunk`` channels at a time (see :func:`channel_chunk`), so no two threads write
    the same value. Indexed ``[column, channel]`` with unsigned indices (signed ones make numba wrap
    negative indices, and the loop is not vectorised; per-pixel slices cost as much as the adds) and
    zero-weight corners skipped: on an AVX-512 Xeon, all 120 rows of (2, 64, 120x240), 69 vs 109 us per
    bilinear row and 37 vs 44 us nearest against per-pixel slices over every corner."""
    batch, channels = grad_src.shape[1], grad_src.shape[3]
    width = grad_src.shape[2] - 2 * halo
    num_taps, corners = rows.shape[1], rows.shape[2]
    w_out = block.shape[2]
    chunks = (channels + chunk - 1) // chunk
    for task in numba.prange(batch * chunks):
        b, lo = task // chunks, (task % chunks) * chunk
        n, first = np.uint64(min(channels, lo + chunk) - lo), np.uint64(lo)
        for i in range(i0, i1):
            grad_row = block[i - i0, b]
            for t in range(num_taps):
                c0 = np.uint64(t * channels + lo)
                for p in range(corners):
                    dst_row, w, k = grad_src[rows[i, t, p], b], weights[i, t, p], cols[i, t, p]
                    if w == 0:
                        continue
                    for j in range(w_out):
                        d, g = np.uint64(halo + _wrap(j * stride + k, width)), np.uint64(j)
                        for c in range(n):
                            dst_row[d, first + c] += w * grad_row[g, c0 + c]


@parallel_kernel(cache=True)
def to_rows_last(x, kt, stride_t, first, wrap, dst):
    """The flat rows ``dst`` ``(H, B * T_out, L, C * kt)`` of a clip ``x`` ``(B, C, T, H, W)``.

    Frame ``f`` of clip ``b`` is flat image ``b * T_out + f``; its channel ``c * kt + d`` is input frame
    ``f * stride_t + d - kt // 2`` (zero outside the clip): the ``kt`` temporal taps folded into
    channels. Columns ``first:first + W`` hold the image; the other columns repeat it circularly
    (``wrap``, with ``L = W + 2 first``) or are zero. An image is a clip with ``T = kt = 1``.

    Parallel over rows; each output pixel's channels are written in one contiguous run (reading
    ``C`` strided streams): on an AVX-512 Xeon 1.6x faster at ``(2, 64, 120, 240)`` and 2.1x at
    ``(2, 64, 240, 480)`` than writing channel by channel across the row (256-byte strided stores).
    """
    batch, channels, frames, height, width = x.shape
    images = dst.shape[1]
    t_out = images // batch
    pad = kt // 2
    for q in numba.prange(height * images):
        h, n = q // images, q % images
        b, f = n // t_out, n % t_out
        row = dst[h, n]
        for d in range(kt):
            t = f * stride_t + d - pad
            if t < 0 or t >= frames:
                for j in range(first, first + width):
                    for c in range(channels):
                        row[j, c * kt + d] = 0
                continue
            src = x[b, :, t, h]
            for j in range(width):
                pixel = row[first + j]
                for c in range(channels):
                    pixel[c * kt + d] = src[c, j]
        for j in range(first):
            if wrap:
                row[j] = row[width + j]
                row[first + width + j] = row[first + j]
            else:
                row[j] = 0
                row[first + width + j] = 0


@parallel_kernel(cache=True)
def to_channels_first(src, first, fold, kt, stride_t, dst):
    """Adjoint-style inverse of :func:`to_rows_last`: ``dst`` ``(B, C, T, n, W)`` from the flat rows
    ``src`` ``(n, B * T_out, L, C * kt)``, columns ``first:first + W``.

    Each frame ``t`` sums the folded channels ``c * kt + d`` of the output frames ``f`` with
    ``f * stride_t + d - kt // 2 = t``; with ``fold > 0`` the ``fold`` columns on either side of
    ``first:first + W`` are added onto the ``fold`` columns at the opposite end (the circular halo's
    gradient). With ``kt = stride_t = 1`` it is a plain layout change (forward outputs). Parallel over
    rows; 1.8x faster than torch's strided copy on 2 threads at ``(2, 64, 120, 240)``.
    """
    batch, channels, frames, n, width = dst.shape
    t_out = src.shape[1] // batch
    pad = kt // 2
    for q in numba.prange(batch * frames * n):
        b, t, i = q // (frames * n), (q // n) % frames, q % n
        for c in range(channels):
            out = dst[b, c, t, i]
            written = False  # the first tap is stored, not added (14% faster than zeroing first)
            for d in range(kt):
                f = t + pad - d
                if f < 0 or f % stride_t != 0 or f // stride_t >= t_out:
                    continue
                row = src[i, b * t_out + f // stride_t]
                k = c * kt + d
                if written:
                    for j in range(width):
                        out[j] += row[first + j, k]
                else:
                    for j in range(width):
                        out[j] = row[first + j, k]
                    written = True
                for j in range(fold):
                    out[j] += row[first + width + j, k]
                    out[width - fold + j] += row[first - fold + j, k]
            if not written:
                out[:] = 0


def channel_chunk(channels: int, threads: int, batch: int) -> int:
    """Channels per task of :func:`scatter_taps`: as many as leave one task per thread over the
    ``batch`` items (long runs vectorise: all 64 channels per task, 2 items on 2 threads, is 1.7x
    faster than 32), in whole 64-byte lines of float32 values (16 channels) so that two threads never
    write the same cache line."""
    per_item = -(-max(1, threads) // batch)
    return _CHANNEL_CHUNK * -(-channels // (_CHANNEL_CHUNK * per_item))


def table_arrays(rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor, width: int,
                 dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernels' table arrays: int64 rows, columns reduced to ``[0, W)``, weights in ``dtype``."""
    return (np.ascontiguousarray(rows.numpy(), dtype=np.int64),
            np.ascontiguousarray(torch.remainder(cols, width).numpy(), dtype=np.int64),
            weights.to(dtype).contiguous().numpy())


def match_torch_threads() -> None:
    """Run numba's parallel kernels on torch's intra-op thread count.

    Starting numba's OpenMP threading layer (the first parallel call in a process) resets the OpenMP
    thread count that torch uses; torch's count is restored after that first start. In a process
    forked from one that ran OpenMP threads the kernels run serially (see :mod:`sphsal._numba_parallel`)
    and nothing is started.
    """
    global _threads_started
    if forked_from_openmp():
        return
    threads = torch.get_num_threads()
    if not _threads_started:
        _start_threads(np.zeros(2))
        torch.set_num_threads(threads)
        _threads_started = True
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


@parallel_kernel(cache=True)
def _start_threads(values):
    for i in numba.prange(values.shape[0]):
        values[i] = i
