"""Straightforward per-image numpy versions of the saliency metrics (MIT benchmark style).

They follow the published MATLAB code's structure, one image at a time with explicit threshold loops,
and serve two purposes: the ground truth the batched torch metrics are checked against in the tests, and
the baseline that benchmarks/bench_metrics.py times them against. Maps are 2-D float arrays; fixation
maps are 2-D binary arrays; ``w`` is an optional 2-D pixel-weight array. Maps are converted to float64
first, as the MATLAB code's ``im2double`` does.
"""

from __future__ import annotations

import numpy as np

EPS = 2.2204e-16


def _minmax(x):
    lo = x.min()
    span = x.max() - lo
    return (x - lo) / span if span > 0 else np.zeros_like(x)


def _distribution(x, w):
    m = _minmax(x)
    if not m.any():
        m = np.ones_like(m)
    m = m if w is None else m * w
    return m / m.sum()


def cc(pred, gt, w=None):
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if w is None:  # Pearson's r of the centred maps (MIT z-scores them first: the same value)
        p = pred - pred.mean()
        g = gt - gt.mean()
        return np.sum(p * g) / np.sqrt(np.sum(p * p) * np.sum(g * g))
    p = pred - np.average(pred, weights=w)
    g = gt - np.average(gt, weights=w)
    return np.sum(w * p * g) / np.sqrt(np.sum(w * p * p) * np.sum(w * g * g))


def kld(pred, gt, w=None):
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    p = pred if w is None else pred * w
    g = gt if w is None else gt * w
    p = p / p.sum()
    g = g / g.sum()
    return np.sum(g * np.log(EPS + g / (p + EPS)))


def sim(pred, gt, w=None):
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    return np.sum(np.minimum(_distribution(pred, w), _distribution(gt, w)))


def nss(pred, fixmap, w=None):
    pred = np.asarray(pred, np.float64)
    if w is None:
        z = (pred - pred.mean()) / pred.std(ddof=1)
        return z[fixmap > 0].mean()
    mean = np.average(pred, weights=w)
    v1, v2 = w.sum(), (w * w).sum()
    std = np.sqrt(np.sum(w * (pred - mean) ** 2) / (v1 - v2 / v1))
    z = (pred - mean) / std
    return z[fixmap > 0].mean()  # weighted moments, but every fixation counts once


def auc_judd(pred, fixmap, noise=None, w=None):
    """AUC-Judd with MIT's loop over the fixated values; ``noise`` (same shape) is added after min-max.
    With ``w``, the false-positive rate is the ``w``-weighted fraction of the non-fixated pixels."""
    s = _minmax(pred.astype(np.float64))
    if noise is not None:
        s = s + noise
    s = s.ravel()
    fix = fixmap.ravel() > 0
    neg_w = np.ones(s.size) if w is None else np.broadcast_to(w, pred.shape).ravel()
    neg_w = np.where(fix, 0.0, neg_w)
    sth = s[fix]
    n_fix = sth.size
    thresholds = np.sort(sth)[::-1]
    tp = np.zeros(n_fix + 2)
    fp = np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1
    for i, t in enumerate(thresholds, start=1):
        tp[i] = i / n_fix
        fp[i] = neg_w[s >= t].sum() / neg_w.sum()
    return np.trapezoid(tp, fp)


def _split_auc(sth, neg_values, step):
    """Mean over rows of ``neg_values`` (splits, M) of the thresholded ROC area (MIT AUC-Borji loop)."""
    aucs = []
    for cur in neg_values:
        top = max(sth.max(), cur.max())
        thresholds = np.arange(0, top + 1e-12, step)[::-1]
        tp = [0.0]
        fp = [0.0]
        for t in thresholds:
            tp.append(np.sum(sth >= t) / sth.size)
            fp.append(np.sum(cur >= t) / cur.size)
        tp.append(1.0)
        fp.append(1.0)
        aucs.append(np.trapezoid(tp, fp))
    return float(np.mean(aucs))


def auc_borji(pred, fixmap, neg_index, step=0.1):
    """AUC-Borji; ``neg_index`` (splits, n_fix) are flat pixel indices of the random negatives."""
    s = _minmax(pred.astype(np.float64)).ravel()
    return _split_auc(s[fixmap.ravel() > 0], s[neg_index], step)


def auc_shuffled(pred, fixmap, neg_index, step=0.1):
    """Shuffled AUC; ``neg_index`` (splits, m) are flat pixel indices drawn from the other fixations."""
    return auc_borji(pred, fixmap, neg_index, step)


def info_gain(pred, fixmap, baseline):
    p = _distribution(pred.astype(np.float64), None)
    b = _distribution(baseline.astype(np.float64), None)
    fix = fixmap > 0
    return np.mean(np.log2(EPS + p[fix]) - np.log2(EPS + b[fix]))


def density(directions, h, w, sigma, radius, chunk_elements=1 << 23):
    """Sum over fixations of ``exp(-d^2 / 2 sigma^2)`` for ``d <= radius`` (radians), dense over pixels
    x fixations in chunks of fixations (about ``chunk_elements`` pairs each); ``d`` from the dot product
    of unit vectors."""
    chunk = max(1, chunk_elements // (h * w))
    az = (0.5 - (np.arange(w) + 0.5) / w) * 2 * np.pi
    el = (0.5 - (np.arange(h) + 0.5) / h) * np.pi
    az, el = np.meshgrid(az, el)
    pix = _unit_vectors(az.ravel(), el.ravel())
    d = np.asarray(directions, dtype=np.float64)
    fix = _unit_vectors(d[:, 0], d[:, 1])
    out = np.zeros(h * w)
    for start in range(0, len(fix), chunk):
        dist = np.arccos(np.clip(pix @ fix[start:start + chunk].T, -1.0, 1.0))
        out += np.where(dist <= radius, np.exp(-dist**2 / (2 * sigma**2)), 0.0).sum(axis=1)
    return out.reshape(h, w)


def _unit_vectors(az, el):
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
