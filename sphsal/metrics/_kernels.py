"""Numba CPU kernels of the metrics' full-map passes (the fast path; the torch code is the reference).

Every kernel runs in parallel over maps and streams each map once with float64 accumulators,
reading ``float32`` or ``float64`` maps as they are, without temporaries. Maps are ``(B, N)`` arrays
(``N = H * W``), pixel weights an ``(N,)`` float64 array (all ones when unweighted). Per-map affine
rescalings are passed as ``(B,)`` arrays ``lo``, ``scale``, ``offset`` meaning
``m = (x - lo) * scale + offset`` (min-max: ``scale = 1 / (max - min)``, ``offset = 0``; a constant map taken
as uniform: ``scale = 0``, ``offset = 1``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

EPS = 2.2204e-16


@numba.njit(parallel=True, cache=True)
def map_stats(x, w, out):
    """Per map, in one pass: ``out[b] = (sum w x, min x, max x, sum w (x - mean)^2)``, ``mean = sum w x /
    sum w``. The moments are accumulated around a shift ``k`` (the mean of 64 evenly spaced samples):
    ``S1 = sum w (x - k)``, ``S2 = sum w (x - k)^2``, then ``sum w (x - mean)^2 = S2 - S1^2 / sum w``, which
    stays accurate because ``k`` is close to the mean. A NaN or infinite value makes ``out[b, 0]``
    non-finite."""
    sum_w = 0.0
    for j in range(w.shape[0]):
        sum_w += w[j]
    n = x.shape[1]
    step = max(1, n // 64)
    for b in numba.prange(x.shape[0]):
        k = 0.0
        m = 0
        for j in range(0, n, step):
            k += np.float64(x[b, j])
            m += 1
        k /= m
        if not math.isfinite(k):
            k = 0.0
        s1 = 0.0
        s2 = 0.0
        lo = np.inf
        hi = -np.inf
        for j in range(n):
            v = np.float64(x[b, j])
            d = v - k
            wd = w[j] * d
            s1 += wd
            s2 += wd * d
            lo = min(lo, v)
            hi = max(hi, v)
        out[b, 0] = s1 + k * sum_w
        out[b, 1] = lo
        out[b, 2] = hi
        out[b, 3] = max(s2 - s1 * s1 / sum_w, 0.0)


@numba.njit(parallel=True, cache=True)
def centred_cross(p, t, w, mean_p, mean_t, out):
    """``out[b] = sum w (p - mean_p[b]) (t - mean_t[b])``."""
    for b in numba.prange(p.shape[0]):
        acc = 0.0
        for j in range(p.shape[1]):
            acc += w[j] * (np.float64(p[b, j]) - mean_p[b]) * (np.float64(t[b, j]) - mean_t[b])
        out[b] = acc


@numba.njit(parallel=True, cache=True)
def kld_sum(p, t, w, sum_p, sum_t, out):
    """``out[b] = sum g log(EPS + g / (q + EPS))``, masses ``g = w t / sum_t[b]``, ``q = w p / sum_p[b]``."""
    for b in numba.prange(p.shape[0]):
        acc = 0.0
        for j in range(p.shape[1]):
            g = w[j] * np.float64(t[b, j]) / sum_t[b]
            if g > 0:  # zero ground truth adds exactly 0 * log(EPS + 0)
                q = w[j] * np.float64(p[b, j]) / sum_p[b]
                acc += g * math.log(EPS + g / (q + EPS))
        out[b] = acc


@numba.njit(parallel=True, cache=True)
def sim_sum(p, t, w, lo_p, scale_p, offset_p, norm_p, lo_t, scale_t, offset_t, norm_t, out):
    """``out[b] = sum min(w m_p / norm_p[b], w m_t / norm_t[b])`` with the affine rescalings ``m``."""
    for b in numba.prange(p.shape[0]):
        acc = 0.0
        for j in range(p.shape[1]):
            mp = w[j] * ((np.float64(p[b, j]) - lo_p[b]) * scale_p[b] + offset_p[b]) / norm_p[b]
            mt = w[j] * ((np.float64(t[b, j]) - lo_t[b]) * scale_t[b] + offset_t[b]) / norm_t[b]
            acc += min(mp, mt)
        out[b] = acc


@numba.njit(parallel=True, cache=True)
def judd_rates(p, w, lo, scale, jitter, pos_idx, pos_w, tpr, fpr):
    """ROC points of AUC-Judd at the fixated values, highest threshold first.

    ``s = (p - lo[b]) * scale[b] + jitter`` per pixel (in ``[0, 1 + jitter)``); ``pos_idx`` ``(B, K)`` flat
    indices of the fixated pixels with weights ``pos_w`` (0 for padding). Thresholds are the ``s`` of the
    fixated pixels; ``tpr[b, k]`` / ``fpr[b, k]`` are the weighted fractions of fixations / non-fixated
    pixels with ``s >= threshold`` for the ``k``-th highest threshold (padding repeats (0, 0) first).

    Counting the thresholds ``<= s`` of every pixel uses a table over ``_BUCKETS`` equal buckets of
    ``[0, 1]``: ``first[g]`` is the number of thresholds in buckets below ``g`` (all of them ``< s`` for an
    ``s`` in bucket ``g``, exactly, since scaling by a power of two is exact), and only the thresholds
    inside the pixel's own bucket, usually none, are compared.
    """
    n_k = pos_idx.shape[1]
    for b in numba.prange(p.shape[0]):
        thr = np.full(n_k, np.inf)
        for k in range(n_k):
            if pos_w[b, k] > 0:
                j = pos_idx[b, k]
                thr[k] = (np.float64(p[b, j]) - lo[b]) * scale[b] + jitter[j]
        thr.sort()
        first = np.zeros(_BUCKETS + 1, dtype=np.int64)
        for k in range(n_k):
            if thr[k] < np.inf:
                first[_bucket(thr[k]) + 1] += 1
        for g in range(_BUCKETS):
            first[g + 1] += first[g]
        hist_all = np.zeros(n_k + 1)  # then the negatives' histogram
        hist_pos = np.zeros(n_k + 1)
        for j in range(p.shape[1]):
            s = (np.float64(p[b, j]) - lo[b]) * scale[b] + jitter[j]
            g = _bucket(s)
            c = first[g]
            while c < first[g + 1] and thr[c] <= s:
                c += 1
            hist_all[c] += w[j]
        for k in range(n_k):
            if pos_w[b, k] > 0:
                j = pos_idx[b, k]
                s = (np.float64(p[b, j]) - lo[b]) * scale[b] + jitter[j]
                m = np.searchsorted(thr, s, side="right")
                hist_pos[m] += pos_w[b, k]
                hist_all[m] -= w[j]  # a fixated pixel is no negative
        pos_total = hist_pos.sum()
        neg_total = hist_all.sum()
        above_pos = 0.0
        above_neg = 0.0
        for m in range(n_k, 0, -1):  # thresholds from the highest down
            above_pos += hist_pos[m]
            above_neg += hist_all[m]
            tpr[b, n_k - m] = above_pos / pos_total
            fpr[b, n_k - m] = above_neg / neg_total


_BUCKETS = 4096  # a power of two


@numba.njit(inline="always")
def _bucket(s):
    """Bucket of a score ``s >= 0`` among ``_BUCKETS`` equal buckets of ``[0, 1]`` (the last one also
    takes ``s >= 1``)."""
    return min(int(s * _BUCKETS), _BUCKETS - 1)


@numba.njit(parallel=True, cache=True)
def nonzero_counts(mask, counts):
    """``counts[b]`` = number of ``True`` entries of ``mask[b]`` (``(B, N)`` bool)."""
    for b in numba.prange(mask.shape[0]):
        c = 0
        for j in range(mask.shape[1]):
            c += mask[b, j]
        counts[b] = c


@numba.njit(parallel=True, cache=True)
def nonzero_fill(mask, idx):
    """Write the flat indices of the ``True`` entries of every ``mask[b]`` into ``idx[b, :count]``, in
    increasing order (``idx`` is ``(B, K)``, ``K`` at least the largest count)."""
    for b in numba.prange(mask.shape[0]):
        c = 0
        for j in range(mask.shape[1]):
            if mask[b, j]:
                idx[b, c] = j
                c += 1
