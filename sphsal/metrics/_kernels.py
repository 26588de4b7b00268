"""Numba CPU kernels of the metrics' full-map passes (the fast path; the torch code is the reference).

Maps are C-contiguous ``(B, H, W)`` float32 or float64 arrays, read as they are (no temporaries), with
float64 accumulators. Every kernel runs in parallel over maps; per map it streams the map (or the pair
of maps) once for its moments and, when a metric needs them first (KLD, SIM, AUC-Judd), a second time
while the map is still in the CPU cache.

* Pixel weights are ``wr`` ``(H,)``, one weight per row (all ones when unweighted; the solid angle of an
  ERP pixel depends only on its row), times ``wf`` ``(H, W)`` when the weights also vary along rows, else
  ``None`` (numba compiles a variant without it). Sums are accumulated per row, then weighted.
* The row loops are vectorised: ``fastmath`` allows only reassociation and contraction, so NaN and
  infinities keep IEEE semantics; ``error_model="numpy"`` drops the division-by-zero checks that would
  stop vectorisation. Extrema are taken on integer order keys of the floats' bits (vector integer
  min/max), and the extrema tell whether a map holds NaN or infinite values. AUC-Judd, whose ties must
  be decided exactly as by the torch reference, is compiled without ``fastmath``.
* Logarithms (KLD) use :func:`_log`, a polynomial that vectorises, within 2 ulp of ``numpy.log``.
* AUC-Borji and shuffled AUC: :func:`split_auc` scores the positives and every split's negatives of a
  map in one task.

The moments of a map are ``(S1, S2, k, lo, hi)``: ``S1 = sum w (x - k)``, ``S2 = sum w (x - k)^2`` around a
shift ``k`` close to the mean (the mean of at most 64 evenly spaced pixels), and the extrema. Then
``sum w x = S1 + k sum w`` and ``sum w (x - mean)^2 = S2 - S1^2 / sum w``, accurate because ``k`` is near
the mean. A map with NaN or infinite values has a non-finite ``lo`` or ``hi`` and no further pass.
"""

from __future__ import annotations

import math
import platform

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from sphsal._numba_parallel import parallel_kernel

EPS = 2.2204e-16
_FAST = {"reassoc", "contract"}
_JIT = {"cache": True, "fastmath": _FAST, "error_model": "numpy"}
_JIT_EXACT = {"cache": True, "error_model": "numpy"}  # no reassociation, no contraction
_NAN = math.nan

#: Number of moments per map in the kernels' outputs: S1, S2, k, lo, hi.
N_MOMENTS = 5


# -- bit-level helpers ---------------------------------------------------------------------------------------


def _float_bits(typ) -> int:
    return 32 if typ == types.float32 else 64


@intrinsic
def _order_key(typingctx, x):
    """Integer key of a float32 / float64 (int32 / int64) that orders like the float; NaN with the sign
    bit clear sorts above +inf, with it set below -inf. The map is its own inverse on the bits."""
    if x not in (types.float32, types.float64):
        return None
    bits = _float_bits(x)
    ity = types.int32 if bits == 32 else types.int64

    def codegen(context, builder, signature, args):
        lty = ir.IntType(bits)
        q = builder.bitcast(args[0], lty)
        flip = builder.and_(builder.ashr(q, lty(bits - 1)), lty((1 << (bits - 1)) - 1))
        return builder.xor(q, flip)

    return ity(x), codegen


@intrinsic
def _key_to_float(typingctx, key, like):
    """Inverse of :func:`_order_key`: the float (of ``like``'s type) whose key is ``key``."""
    if like not in (types.float32, types.float64):
        return None
    bits = _float_bits(like)

    def codegen(context, builder, signature, args):
        lty = ir.IntType(bits)
        q = args[0]
        if q.type.width != bits:
            q = builder.trunc(q, lty) if q.type.width > bits else builder.sext(q, lty)
        flip = builder.and_(builder.ashr(q, lty(bits - 1)), lty((1 << (bits - 1)) - 1))
        return builder.bitcast(builder.xor(q, flip), context.get_value_type(like))

    return like(key, like), codegen


@intrinsic
def _f64_to_bits(typingctx, x):
    """The bits of a float64 as an int64."""
    if x != types.float64:
        return None
    return types.int64(x), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64))


@intrinsic
def _bits_to_f64(typingctx, q):
    """The float64 with the bits of an int64."""
    if q != types.int64:
        return None
    return types.float64(q), lambda context, builder, sig, args: builder.bitcast(args[0], ir.DoubleType())


def _times_weight(wf, i, j, v):
    """``wf[i, j] * v``, or ``v`` when ``wf`` is ``None`` (resolved at compile time)."""


@overload(_times_weight, inline="always")
def _times_weight_impl(wf, i, j, v):
    if isinstance(wf, types.NoneType):
        return lambda wf, i, j, v: v
    return lambda wf, i, j, v: wf[i, j] * v


_LN2 = math.log(2.0)
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # the bits of sqrt(1/2)


def _atanh_polynomial(degree: int = 6) -> tuple[float, ...]:
    """Coefficients (lowest first) of ``2 P(z)`` where ``P`` interpolates ``(atanh(s) / s - 1) / z``,
    ``z = s^2``, at the Chebyshev points of ``[0, z_max]``, ``z_max = ((sqrt 2 - 1) / (sqrt 2 + 1))^2`` (the
    largest ``z`` of :func:`_log`). The function is evaluated by its series ``sum z^n / (2n + 3)``
    (summed to ``n = 40``, exact in float64 there); degree 6 is within 3e-16 of it on the interval, so
    ``log m = 2s + s z 2P(z)`` is off by less than 3e-18."""
    z_max = ((math.sqrt(2.0) - 1) / (math.sqrt(2.0) + 1)) ** 2

    def series(z):
        acc = np.zeros_like(z)
        for n in range(40, -1, -1):
            acc = acc * z + 1.0 / (2 * n + 3)
        return acc

    fit = np.polynomial.Chebyshev.interpolate(series, degree, domain=[0.0, z_max])
    return tuple(float(2 * c) for c in fit.convert(kind=np.polynomial.Polynomial).coef)


_ATANH = _atanh_polynomial()


@numba.njit(inline="always", fastmath=_FAST, error_model="numpy")
def _log(y):
    """Natural logarithm of a positive, normal float64 without a library call or a branch (so that loops
    over it vectorise); at most 2 ulp from ``numpy.log`` (tested).

    ``y = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``, both from the bits: subtracting the bits of
    ``sqrt(1/2)`` leaves ``e`` in the exponent field, and removing ``e`` from the exponent gives ``m``
    (``e`` goes through int32, which converts to float64 in vector registers). Then
    ``log m = 2 atanh(s) = 2s + s z 2P(z)``, ``s = (m - 1) / (m + 1)``, ``z = s^2 <= 0.0295``, with the
    polynomial ``2P`` of :func:`_atanh_polynomial` (Horner, unrolled).
    """
    q = _f64_to_bits(y)
    e = (q - _SQRT_HALF_BITS) >> 52
    m = _bits_to_f64(q - (e << 52))
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    poly = _ATANH[len(_ATANH) - 1]
    for k in range(len(_ATANH) - 2, -1, -1):
        poly = poly * z + _ATANH[k]
    return np.float64(np.int32(e)) * _LN2 + (s * (z * poly) + (s + s))


@intrinsic
def _opaque(typingctx, x):
    """``x`` unchanged, through an empty inline-assembly statement the optimiser cannot see through.

    Under reassociation LLVM turns ``(1 / s) * v`` in a loop into ``v / s``, a division per element;
    hiding where ``1 / s`` comes from keeps the multiplication. (Other than on x86-64 it is the identity:
    the division then comes back, a cost, not an error.)
    """
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        if _FLOAT_REGISTER is None:
            return args[0]
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()])
        return builder.asm(fnty, "", f"={_FLOAT_REGISTER},0", [args[0]], side_effect=False)

    return types.float64(x), codegen


# the inline-assembly register class of a float64 (SSE/AVX register); only x86-64, where it is tested
_FLOAT_REGISTER = {"x86_64": "x", "amd64": "x"}.get(platform.machine().lower())


@numba.njit(inline="always")
def _reciprocal(x):
    """``1 / x`` as an opaque value (see :func:`_opaque`)."""
    return _opaque(1.0 / x)


# -- per-map passes ------------------------------------------------------------------------------------------


@numba.njit(inline="always")
def _shift(x, b):
    """Mean of at most 64 evenly spaced pixels of map ``b`` (0 if not finite)."""
    h, w = x.shape[1], x.shape[2]
    n = h * w
    step = max(1, n // 64)
    k = 0.0
    m = 0
    for f in range(0, n, step):
        k += np.float64(x[b, f // w, f % w])
        m += 1
    k /= m
    return k if math.isfinite(k) else 0.0


@numba.njit(fastmath=_FAST, error_model="numpy")
def _moments(x, b, wr, wf, out, o, partner=None, k_partner=0.0):
    """Moments ``(S1, S2, k, lo, hi)`` of map ``x[b]`` into ``out[o:o + 5]``; returns whether the map is
    finite and, with a ``partner`` map (in the same pass, while it is still in the cache),
    ``sum w (x - k) (partner - k_partner)`` (0 without one)."""
    k = _shift(x, b)
    s1 = 0.0
    s2 = 0.0
    cross = 0.0
    lo = hi = _order_key(x[b, 0, 0])
    for i in range(x.shape[1]):
        r1 = 0.0
        r2 = 0.0
        rc = 0.0
        rlo = rhi = _order_key(x[b, i, 0])
        for j in range(x.shape[2]):
            v = x[b, i, j]
            d = np.float64(v) - k
            wd = _times_weight(wf, i, j, d)
            r1 += wd
            r2 += wd * d
            rc = _add_product(rc, wd, partner, b, i, j, k_partner)
            key = _order_key(v)
            rlo = min(rlo, key)
            rhi = max(rhi, key)
        s1 += wr[i] * r1
        s2 += wr[i] * r2
        cross += wr[i] * rc
        lo = min(lo, rlo)
        hi = max(hi, rhi)
    like = x[b, 0, 0]
    out[o] = s1
    out[o + 1] = s2
    out[o + 2] = k
    out[o + 3] = _key_to_float(lo, like)
    out[o + 4] = _key_to_float(hi, like)
    return math.isfinite(out[o + 3]) and math.isfinite(out[o + 4]), cross


def _add_product(acc, wd, partner, b, i, j, k_partner):
    """``acc + wd * (partner[b, i, j] - k_partner)``, or ``acc`` when ``partner`` is ``None``."""


@overload(_add_product, inline="always")
def _add_product_impl(acc, wd, partner, b, i, j, k_partner):
    if isinstance(partner, (types.NoneType, types.Omitted)):
        return lambda acc, wd, partner, b, i, j, k_partner: acc
    return lambda acc, wd, partner, b, i, j, k_partner: acc + wd * (np.float64(partner[b, i, j]) - k_partner)


@numba.njit(inline="always")
def _rescale(mom, o, sum_w, uniform_if_constant):
    """Min-max rescaling of a map with moments ``mom[o:o + 5]``: ``(lo, scale, offset, norm)`` meaning
    ``m = (x - lo) * scale + offset`` and ``norm = sum w m``; a constant map becomes all ones when
    ``uniform_if_constant``, else all zeros. ``sum w (x - lo) = S1 + (k - lo) sum w``."""
    lo, span = mom[o + 3], mom[o + 4] - mom[o + 3]
    scale = 1.0 / span if span > 0 else 0.0
    offset = 1.0 if (span == 0 and uniform_if_constant) else 0.0
    norm = scale * (mom[o] + (mom[o + 2] - lo) * sum_w) + offset * sum_w
    return lo, scale, offset, norm


# -- kernels -------------------------------------------------------------------------------------------------


@parallel_kernel(**_JIT)
def moments(x, wr, wf, mom):
    """``mom[b] = (S1, S2, k, lo, hi)`` of every map ``x[b]``."""
    for b in numba.prange(x.shape[0]):
        _moments(x, b, wr, wf, mom[b], 0)


@parallel_kernel(**_JIT)
def cc_pass(p, t, wr, wf, sum_w, mom, cross):
    """Moments of ``p[b]`` and ``t[b]`` into ``mom[b, :5]`` and ``mom[b, 5:]``, and
    ``cross[b] = sum w (p - mean_p) (t - mean_t)`` (NaN where a map is not finite), accumulated with the
    moments of ``t`` around the shifts as ``sum w (t - k_t) (p - k_p) - S1_p S1_t / sum w``."""
    for b in numba.prange(p.shape[0]):
        ok_p, _ = _moments(p, b, wr, wf, mom[b], 0)
        ok_t, c = _moments(t, b, wr, wf, mom[b], N_MOMENTS, p, mom[b, 2])
        cross[b] = c - mom[b, 0] * mom[b, N_MOMENTS] / sum_w if ok_p and ok_t else _NAN


@parallel_kernel(**_JIT)
def kld_pass(p, t, wr, wf, sum_w, mom, value):
    """Moments of ``p[b]``, ``t[b]`` (as :func:`cc_pass`) and ``value[b] = sum g log(EPS + g / (q + EPS))``
    with masses ``g = w t / sum w t``, ``q = w p / sum w p``; NaN where a map is not finite, has a
    negative value or sums to zero (the caller tells which)."""
    for b in numba.prange(p.shape[0]):
        ok = _moments(p, b, wr, wf, mom[b], 0)[0]
        ok = _moments(t, b, wr, wf, mom[b], N_MOMENTS)[0] and ok
        m = mom[b]
        sum_p = m[0] + m[2] * sum_w
        sum_t = m[N_MOMENTS] + m[N_MOMENTS + 2] * sum_w
        if not (ok and m[3] >= 0 and m[N_MOMENTS + 3] >= 0 and sum_p > 0 and sum_t > 0):
            value[b] = _NAN
            continue
        inv_p, inv_t = _reciprocal(sum_p), _reciprocal(sum_t)
        acc = 0.0
        for i in range(p.shape[1]):
            cp = wr[i] * inv_p
            ct = wr[i] * inv_t
            r = 0.0
            for j in range(p.shape[2]):
                g = _times_weight(wf, i, j, ct * np.float64(t[b, i, j]))
                q = _times_weight(wf, i, j, cp * np.float64(p[b, i, j]))
                r += g * _log(EPS + g / (q + EPS))  # zero ground truth adds 0 * log(EPS)
            acc += r
        value[b] = acc


@parallel_kernel(**_JIT)
def sim_pass(p, t, wr, wf, sum_w, mom, value):
    """Moments of ``p[b]``, ``t[b]`` (as :func:`cc_pass`) and ``value[b] = sum min(w m_p / norm_p,
    w m_t / norm_t)`` of the min-max rescaled maps ``m`` (a constant map uniform); NaN where a map is
    not finite."""
    for b in numba.prange(p.shape[0]):
        ok = _moments(p, b, wr, wf, mom[b], 0)[0]
        ok = _moments(t, b, wr, wf, mom[b], N_MOMENTS)[0] and ok
        if not ok:
            value[b] = _NAN
            continue
        lo_p, scale_p, offset_p, norm_p = _rescale(mom[b], 0, sum_w, True)
        lo_t, scale_t, offset_t, norm_t = _rescale(mom[b], N_MOMENTS, sum_w, True)
        scale_p, offset_p = _opaque(scale_p / norm_p), _opaque(offset_p / norm_p)
        scale_t, offset_t = _opaque(scale_t / norm_t), _opaque(offset_t / norm_t)
        acc = 0.0
        for i in range(p.shape[1]):
            r = 0.0
            for j in range(p.shape[2]):
                mp = (np.float64(p[b, i, j]) - lo_p) * scale_p + offset_p
                mt = (np.float64(t[b, i, j]) - lo_t) * scale_t + offset_t
                r += _times_weight(wf, i, j, min(mp, mt))
            acc += wr[i] * r
        value[b] = acc


@parallel_kernel(**_JIT_EXACT)
def judd_pass(p, wr, wf, sum_w, jitter, pos_idx, pos_w, mom, tpr, fpr):
    """Moments of ``p[b]`` into ``mom[b]`` and the ROC points of AUC-Judd at the fixated values, highest
    threshold first (NaN where the map is not finite).

    Scores are ``s = (p - lo) * scale + jitter`` (min-max, ``jitter`` ``(H, W)``, finite and ``>= 0``:
    checked by the caller; a map whose range ``hi - lo`` or ``scale`` is not finite gets NaN rates and
    no second pass); ``pos_idx`` ``(B, K)``
    are the flat indices of the fixated pixels with weights ``pos_w`` (0 for padding). The thresholds are
    the scores of the fixated pixels; ``tpr[b, k]`` / ``fpr[b, k]`` are the weighted fractions of
    fixations / non-fixated pixels with ``s >= threshold`` for the ``k``-th highest threshold (padding
    repeats (0, 0) first). ``sum_w`` is the total weight of a map.

    Every pixel belongs to bin ``c``, the number of thresholds ``<= s``. The pixels are counted in a
    histogram over ``_BUCKETS`` equal buckets of ``[0, 1]``; a bucket without a threshold lies in one bin
    (``first[g]``: the number of thresholds in the buckets below ``g``, all ``< s`` for an ``s`` in bucket
    ``g``, exactly, as scaling by a power of two is exact). Only the pixels of the few buckets that hold
    a threshold are compared with those thresholds.
    """
    n_k = pos_idx.shape[1]
    w = p.shape[2]
    for b in numba.prange(p.shape[0]):
        if not _moments(p, b, wr, wf, mom[b], 0)[0]:
            tpr[b] = _NAN
            fpr[b] = _NAN
            continue
        lo, scale, _, _ = _rescale(mom[b], 0, 1.0, False)
        if not (math.isfinite(scale) and math.isfinite(mom[b, 4] - lo)):
            tpr[b] = _NAN  # the caller raises: the value range cannot be min-max normalised
            fpr[b] = _NAN
            continue
        thr = np.full(n_k, np.inf)
        for k in range(n_k):
            if pos_w[b, k] > 0:
                f = pos_idx[b, k]
                thr[k] = (np.float64(p[b, f // w, f % w]) - lo) * scale + jitter[f // w, f % w]
        thr.sort()
        first = np.zeros(_BUCKETS + 1, dtype=np.int64)
        shared = np.zeros(_BUCKETS, dtype=np.uint8)  # buckets holding a threshold
        for k in range(n_k):
            if thr[k] < np.inf:
                first[_bucket(thr[k]) + 1] += 1
                shared[_bucket(thr[k])] = 1
        for g in range(_BUCKETS):
            first[g + 1] += first[g]
        per_bucket = np.zeros(_BUCKETS)
        hist_all = np.zeros(n_k + 1)  # then the negatives' histogram
        row_buckets = np.empty(w, dtype=np.int32)
        for i in range(p.shape[1]):
            for j in range(w):  # vectorised
                row_buckets[j] = _bucket((np.float64(p[b, i, j]) - lo) * scale + jitter[i, j])
            for j in range(w):
                g = row_buckets[j]
                if shared[g]:
                    s = (np.float64(p[b, i, j]) - lo) * scale + jitter[i, j]
                    c = first[g]
                    while c < first[g + 1] and thr[c] <= s:
                        c += 1
                    hist_all[c] += _times_weight(wf, i, j, wr[i])
                else:
                    per_bucket[g] += _times_weight(wf, i, j, wr[i])
        for g in range(_BUCKETS):
            hist_all[first[g]] += per_bucket[g]
        hist_pos = np.zeros(n_k + 1)
        neg_total = sum_w
        for k in range(n_k):
            if pos_w[b, k] > 0:
                f = pos_idx[b, k]
                i, j = f // w, f % w
                s = (np.float64(p[b, i, j]) - lo) * scale + jitter[i, j]
                c = np.searchsorted(thr, s, side="right")
                hist_pos[c] += pos_w[b, k]
                w_pixel = _times_weight(wf, i, j, wr[i])
                hist_all[c] -= w_pixel  # a fixated pixel is no negative
                neg_total -= w_pixel
        pos_total = hist_pos.sum()
        above_pos = 0.0
        above_neg = 0.0
        for c in range(n_k, 0, -1):  # thresholds from the highest down
            above_pos += hist_pos[c]
            above_neg += hist_all[c]
            tpr[b, n_k - c] = above_pos / pos_total
            fpr[b, n_k - c] = above_neg / neg_total


@parallel_kernel(**_JIT_EXACT)
def split_auc(p, lo, scale, offset, pos_idx, pos_w, neg_idx, neg_w, thresholds, out):
    """Mean over splits of the ROC area with fixed ``thresholds`` (ascending), as in AUC-Borji.

    Scores are ``(p - lo) * scale + offset`` (per map ``(B,)`` rescalings). The positives of map ``b``
    are the pixels ``pos_idx[b]`` (flat indices) with weights ``pos_w[b]``; split ``s`` has the negatives
    ``neg_idx[b, s]`` with weights ``neg_w[b, s]`` (0 for padding). True / false positive rates at each
    threshold are the weighted fractions of positives / negatives scoring ``>=`` it; the trapezoid area
    under them, closed by (0, 0) and (1, 1), is averaged over the splits into ``out[b]``.
    """
    n_t = thresholds.shape[0]
    for b in numba.prange(p.shape[0]):
        hist = np.empty(n_t + 1)
        tpr = np.empty(n_t)
        fpr = np.empty(n_t)
        _rates(p, b, lo[b], scale[b], offset[b], pos_idx[b], pos_w[b], thresholds, hist, tpr)
        total = 0.0
        for s in range(neg_idx.shape[1]):
            _rates(p, b, lo[b], scale[b], offset[b], neg_idx[b, s], neg_w[b, s], thresholds, hist, fpr)
            area = 0.0
            x, y = 0.0, 0.0
            for k in range(n_t):  # highest threshold first
                area += (fpr[k] - x) * (tpr[k] + y)
                x, y = fpr[k], tpr[k]
            total += (area + (1.0 - x) * (1.0 + y)) / 2
        out[b] = total / neg_idx.shape[1]


@numba.njit(inline="always")
def _rates(p, b, lo, scale, offset, idx, weight, thresholds, hist, rate):
    """Weighted fraction of the pixels ``idx`` of map ``b`` scoring ``>=`` each threshold, highest
    threshold first, into ``rate`` (``hist``: scratch, one bin per number of thresholds ``<=`` a score)."""
    w = p.shape[2]
    n_t = thresholds.shape[0]
    hist[:] = 0.0
    for k in range(idx.shape[0]):
        f = idx[k]
        v = (np.float64(p[b, f // w, f % w]) - lo) * scale + offset
        hist[np.searchsorted(thresholds, v, side="right")] += weight[k]
    total = hist.sum()
    above = 0.0
    for c in range(n_t, 0, -1):
        above += hist[c]
        rate[n_t - c] = above / total


_BUCKETS = 4096  # a power of two


@numba.njit(inline="always")
def _bucket(s):
    """Bucket of a score ``s`` among ``_BUCKETS`` equal buckets of ``[0, 1]``: the first one also takes
    ``s < 0`` and NaN, the last one ``s >= 1``, so the index is in range whatever ``s`` is (the callers
    validate their scores; this keeps a bad one from writing outside the histograms)."""
    t = s if s > 0.0 else 0.0
    t = t if t < 1.0 else 1.0
    return min(np.int32(t * _BUCKETS), np.int32(_BUCKETS - 1))


@parallel_kernel(cache=True)
def nonzero_lists(words, idx, counts):
    """Flat byte indices of the non-zero bytes of every ``words[b]`` (a bool mask read as ``(B, M)``
    little-endian uint64 words, so runs of eight zero bytes cost one test), in increasing order:
    ``counts[b]`` is their number and ``idx[b, :min(count, K)]`` the first ones (``idx`` is ``(B, K)``)."""
    cap = idx.shape[1]
    for b in numba.prange(words.shape[0]):
        c = 0
        for m in range(words.shape[1]):
            q = words[b, m]
            if q:
                for s in range(8):
                    if (q >> (8 * s)) & 0xFF:
                        if c < cap:
                            idx[b, c] = 8 * m + s
                        c += 1
        counts[b] = c
