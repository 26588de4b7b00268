"""Metrics against fixations: NSS, AUC-Judd, AUC-Borji, shuffled AUC and information gain.

``pred`` is shaped ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)``. ``fixations`` is a binary map of the same
size (every non-zero pixel is one fixation) or ``(az, el)`` directions in radians (an ``(N, 2)`` array for a
single map, a list of ``B`` arrays ``(N_b, 2)`` or a ``(B, N, 2)`` tensor for a batch); a direction counts
on its nearest ERP pixel, and several fixations on one pixel each count. Results: ``(B,)``, 0-d for a single
map, or their mean with ``reduction="mean"``.

``weights`` (``None``, ``"sphere"`` for the solid angle of each ERP pixel, or a tensor broadcastable to
``(H, W)``) weights every pixel-indexed quantity: the statistics of the prediction, the fixated pixels
(positives; a pixel fixated ``c`` times has weight ``c w``) and the non-fixated ones (negatives). Equal
weights give exactly the unweighted value.

A map without fixations scores NaN with a ``RuntimeWarning``. Randomness (AUC jitter, AUC-Borji and
shuffled-AUC negatives) comes from a ``torch.Generator`` seeded with ``seed`` anew for every map, so a
map's score does not depend on the other maps of its batch.
"""

from __future__ import annotations

import torch

from sphsal.metrics._inputs import (
    EPS,
    as_maps,
    check_same_shape,
    finish,
    fixation_counts,
    is_constant,
    minmax,
    minmax_distribution,
    prepare_fixations,
    warn_nan,
    weighted_mean,
    weighted_std,
    weighted_sum,
)

__all__ = ["nss", "auc_judd", "auc_borji", "auc_shuffled", "info_gain"]

# AUC-Judd works on chunks of maps of at most this many pixels in all, to bound memory.
_JUDD_CHUNK_PIXELS = 1 << 22


def nss(pred, fixations, *, weights=None, reduction: str = "none") -> torch.Tensor:
    """Normalised scanpath saliency: the mean z-scored prediction at the fixations.

    ``z = (p - m) / s`` with the weighted mean ``m = sum(w p) / sum(w)`` and the unbiased weighted std
    ``s = sqrt(sum(w (p - m)^2) / (V1 - V2 / V1))``, ``V1 = sum(w)``, ``V2 = sum(w^2)`` (the sample std with
    ``N - 1`` of the MIT benchmark when unweighted); ``nss = sum(c w z) / sum(c w)`` over pixels fixated
    ``c`` times. Invariant to ``a p + b`` with ``a > 0``. A constant prediction has no z-score: NaN with a
    ``RuntimeWarning``.
    """
    p, counts, w, single = prepare_fixations(pred, fixations, weights)
    mean = weighted_mean(p, w)
    std = weighted_std(p, w, mean)
    fix_w = weighted_sum(counts, w)
    value = (weighted_sum(counts * p, w) - mean * fix_w) / (std * fix_w)
    bad = _flag_empty("nss", counts) | is_constant(p)
    warn_nan("nss", is_constant(p), "constant pred")
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def auc_judd(pred, fixations, *, weights=None, reduction: str = "none", jitter: float = 1e-7,
             seed: int = 0) -> torch.Tensor:
    """Area under the ROC curve with thresholds at the fixated values (AUC-Judd, MIT definition).

    The prediction is min-max normalised to ``[0, 1]`` and a uniform jitter in ``[0, jitter)`` (default
    ``1e-7``, the same ``(H, W)`` pattern for every map, drawn from a generator seeded with ``seed``) breaks
    ties, as the MIT code does. Each fixated value is a threshold ``t``; the ROC point is the weighted
    fraction of fixations with value ``>= t`` (true positives) against the weighted fraction of
    non-fixated pixels with value ``>= t`` (false positives), completed by (0, 0) and (1, 1) and integrated
    with the trapezoid rule. Equal values count together (exact ties give the tie-aware ROC). A constant
    prediction scores chance level (about 0.5, exactly 0.5 with ``jitter=0``).
    """
    p, counts, w, single = prepare_fixations(pred, fixations, weights)
    s = minmax(p)
    if jitter:
        gen = torch.Generator(device=p.device).manual_seed(seed)
        s = s + jitter * torch.rand(p.shape[-2:], generator=gen, dtype=torch.float64, device=p.device)
    pixel_w = torch.ones_like(p[0]) if w is None else w
    chunk = max(1, _JUDD_CHUNK_PIXELS // (p.shape[-2] * p.shape[-1]))
    values = []
    for start in range(0, p.shape[0], chunk):
        s_c = s[start:start + chunk].flatten(1)
        c_c = counts[start:start + chunk].flatten(1)
        idx, valid = _fixated_pixels(c_c)
        thresholds = torch.where(valid, s_c.gather(1, idx), torch.inf).sort(dim=1).values
        pos_w = c_c * pixel_w.flatten()
        neg_w = (c_c == 0) * pixel_w.flatten()
        values.append(_roc_auc(s_c, pos_w, neg_w, thresholds))
    value = torch.cat(values)
    bad = _flag_empty("auc_judd", counts)
    no_neg = ~bad & (weighted_sum((counts == 0).to(p.dtype), w) == 0)
    warn_nan("auc_judd", no_neg, "no non-fixated pixel (no negatives)")
    return finish(torch.where(bad | no_neg, torch.nan, value), single, reduction)


def auc_borji(pred, fixations, *, weights=None, reduction: str = "none", splits: int = 100,
              step: float = 0.1, seed: int = 0) -> torch.Tensor:
    """AUC with uniformly drawn negatives (AUC-Borji, MIT definition), averaged over ``splits`` draws.

    The prediction is min-max normalised to ``[0, 1]``. For each of ``splits`` (default 100) splits, as many
    negatives as there are fixations are drawn with replacement from all pixels (uniformly, or with
    probability proportional to ``weights``, e.g. to the solid angle with ``weights="sphere"``) by
    inverse-CDF sampling of ``torch.rand(splits, n_fix, dtype=float64)`` from a generator seeded with
    ``seed`` (default 0) for every map. Thresholds run from 0 in steps of ``step``
    (default 0.1); true positives are the weighted fraction of fixations at or above the threshold, false
    positives the fraction of negatives; trapezoid rule with (0, 0) and (1, 1) added.
    """
    p, counts, w, single = prepare_fixations(pred, fixations, weights)
    _check_splits(splits, step)
    s = minmax(p).flatten(1)
    n_fix = counts.flatten(1).sum(dim=1).round().to(torch.int64)
    # Inverse-CDF sampling of float64 uniforms, so equal weights draw exactly the unweighted pixels.
    pixel_w = torch.ones(s.shape[1], dtype=torch.float64, device=p.device) if w is None else w.flatten()
    cdf = torch.cumsum(pixel_w, 0)
    gen = torch.Generator(device=p.device)
    neg_idx = []
    for n in n_fix.tolist():
        gen.manual_seed(seed)
        u = torch.rand(splits, n, generator=gen, dtype=torch.float64, device=p.device) * cdf[-1]
        neg_idx.append(torch.searchsorted(cdf, u, right=True).clamp_max(s.shape[1] - 1))
    value = _split_auc(s, counts, w, neg_idx, None, step)
    bad = _flag_empty("auc_borji", counts)
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def auc_shuffled(pred, fixations, other_fixations, *, weights=None, reduction: str = "none",
                 splits: int = 100, step: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Shuffled AUC: AUC-Borji with negatives taken from fixations on other images (MIT definition).

    ``other_fixations`` has the same forms as ``fixations`` (one set per map; for videos usually the
    fixations of the same video's other frames). In each of ``splits`` splits, ``min(n_fix, n_other)``
    negatives are drawn without replacement from the other fixations (a generator seeded with ``seed``
    for every map); they are weighted by their pixels' weights. Thresholds from 0 in steps of ``step``,
    trapezoid rule. An empty ``other_fixations`` set scores NaN with a ``RuntimeWarning``.
    """
    p, counts, w, single = prepare_fixations(pred, fixations, weights)
    other = fixation_counts(other_fixations, p, "other_fixations").flatten(1)
    _check_splits(splits, step)
    s = minmax(p).flatten(1)
    n_fix = counts.flatten(1).sum(dim=1).round().to(torch.int64)
    gen = torch.Generator(device=p.device)
    neg_idx = []
    for b, n in enumerate(n_fix.tolist()):
        pool = torch.repeat_interleave(torch.arange(s.shape[1], device=p.device),
                                       other[b].round().to(torch.int64))
        take = min(n, pool.shape[0])
        gen.manual_seed(seed)
        draws = [pool[torch.randperm(pool.shape[0], generator=gen, device=p.device)[:take]]
                 for _ in range(splits)]
        neg_idx.append(torch.stack(draws))
    value = _split_auc(s, counts, w, neg_idx, w, step)
    bad = _flag_empty("auc_shuffled", counts)
    no_other = ~bad & (other.sum(dim=1) == 0)
    warn_nan("auc_shuffled", no_other, "empty other_fixations")
    return finish(torch.where(bad | no_other, torch.nan, value), single, reduction)


def info_gain(pred, fixations, *, baseline, weights=None, reduction: str = "none") -> torch.Tensor:
    """Information gain of the prediction over a baseline map at the fixations, in bits per fixation.

    Both maps are min-max normalised and turned into probability masses ``P = w m / sum(w m)`` (a constant
    map is uniform); ``ig = sum(c w (log2(eps + P) - log2(eps + B))) / sum(c w)`` over pixels fixated ``c``
    times, ``eps = 2.2204e-16`` (MIT definition when unweighted). ``baseline`` (required; no centre or
    equator prior is assumed) is one ``(H, W)`` map for all, or one per map in any map layout.
    """
    p, counts, w, single = prepare_fixations(pred, fixations, weights)
    base, _ = as_maps(baseline, "baseline")
    base = base.to(p.device)
    if base.shape[0] == 1:
        base = base.expand(p.shape[0], *base.shape[1:])
    check_same_shape(p, base, "pred", "baseline")
    gain = torch.log2(EPS + minmax_distribution(p, w)) - torch.log2(EPS + minmax_distribution(base, w))
    value = weighted_sum(counts * gain, w) / weighted_sum(counts, w)
    bad = _flag_empty("info_gain", counts)
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def _flag_empty(metric: str, counts: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool of maps without fixations, with a ``RuntimeWarning`` naming them."""
    empty = counts.flatten(1).sum(dim=1) == 0
    warn_nan(metric, empty, "no fixations")
    return empty


def _check_splits(splits: int, step: float) -> None:
    if int(splits) != splits or splits < 1:
        raise ValueError(f"splits must be a positive integer, got {splits!r}")
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step!r}")


def _fixated_pixels(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(B, K)`` of the fixated pixels of ``counts`` ``(B, N)`` padded to the largest
    number ``K`` of fixated pixels, and a ``(B, K)`` mask of the entries that are real fixated pixels."""
    fixated = (counts > 0).to(counts.dtype)
    k = max(1, int(fixated.sum(dim=1).max()))
    _, idx = torch.topk(fixated, k, dim=1)
    return idx, fixated.gather(1, idx) > 0


def _roc_auc(scores: torch.Tensor, pos_w: torch.Tensor, neg_w: torch.Tensor,
             thresholds: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under the ROC curve of weighted positives and negatives, ``(R,)``.

    ``scores``, ``pos_w``, ``neg_w``: ``(R, N)``; ``thresholds``: ``(R, K)`` ascending (``+inf`` entries
    are padding and add the point (0, 0) again). The ROC point of threshold ``t`` is
    (weighted fraction of negatives with score ``>= t``, weighted fraction of positives with score
    ``>= t``); (0, 0) and (1, 1) close the curve. One ``searchsorted`` bins every score among the
    thresholds, so the cost is ``O(N log K)`` per row with no sort of the scores.
    """
    rows, k = thresholds.shape
    bins = torch.searchsorted(thresholds.contiguous(), scores.contiguous(), right=True)

    def fraction_at_or_above(weight: torch.Tensor) -> torch.Tensor:
        hist = torch.zeros(rows, k + 1, dtype=torch.float64, device=scores.device)
        hist.scatter_add_(1, bins, weight.to(torch.float64))
        suffix = hist.flip(1).cumsum(1).flip(1)  # suffix[:, m] = weight of scores in bins >= m
        return (suffix[:, 1:] / suffix[:, :1]).flip(1)  # highest threshold first

    tpr = fraction_at_or_above(pos_w)
    fpr = fraction_at_or_above(neg_w)
    zero = torch.zeros(rows, 1, dtype=torch.float64, device=scores.device)
    tpr = torch.cat((zero, tpr, zero + 1), dim=1)
    fpr = torch.cat((zero, fpr, zero + 1), dim=1)
    return torch.trapezoid(tpr, fpr, dim=1)


def _split_auc(s: torch.Tensor, counts: torch.Tensor, w: torch.Tensor | None, neg_idx: list[torch.Tensor],
               neg_weights: torch.Tensor | None, step: float) -> torch.Tensor:
    """Mean AUC over splits with sampled negatives (AUC-Borji and shuffled AUC), ``(B,)``.

    ``s``: min-max normalised predictions ``(B, N)``; ``counts``: fixation counts ``(B, H, W)``;
    ``neg_idx``: per map a ``(splits, M_b)`` tensor of flat negative pixel indices; ``neg_weights``: pixel
    weights ``(H, W)`` of the negatives or ``None`` (each negative counts once). Thresholds
    ``0, step, 2 step, ...`` up to 1 (those above every score only repeat (0, 0)).
    """
    batch = s.shape[0]
    splits = neg_idx[0].shape[0]
    flat_counts = counts.flatten(1)
    pos_idx, valid = _fixated_pixels(flat_counts)
    pos_w = flat_counts.gather(1, pos_idx) * valid
    if w is not None:
        pos_w = pos_w * w.flatten()[pos_idx]
    pos_val = s.gather(1, pos_idx)
    m = max(1, max(idx.shape[1] for idx in neg_idx))
    neg_val = torch.zeros(batch, splits, m, dtype=torch.float64, device=s.device)
    neg_w = torch.zeros_like(neg_val)
    for b, idx in enumerate(neg_idx):
        neg_val[b, :, :idx.shape[1]] = s[b][idx]
        neg_w[b, :, :idx.shape[1]] = 1.0 if neg_weights is None else neg_weights.flatten()[idx]
    k = pos_val.shape[1]
    scores = torch.cat((pos_val[:, None].expand(batch, splits, k), neg_val), dim=2).flatten(0, 1)
    pos_all = torch.cat((pos_w[:, None].expand(batch, splits, k), torch.zeros_like(neg_w)), dim=2)
    neg_all = torch.cat((torch.zeros(batch, splits, k, dtype=torch.float64, device=s.device), neg_w), dim=2)
    n_steps = int(1.0 / step + 1e-9)
    grid = torch.arange(n_steps + 1, dtype=torch.float64, device=s.device) * step
    thresholds = grid.expand(batch * splits, n_steps + 1)
    auc = _roc_auc(scores, pos_all.flatten(0, 1), neg_all.flatten(0, 1), thresholds)
    return auc.view(batch, splits).mean(dim=1)
