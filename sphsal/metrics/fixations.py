"""Metrics against fixations: NSS, AUC-Judd, AUC-Borji, shuffled AUC and information gain.

``pred`` is shaped ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)``. ``fixations`` is a binary map of the same
size (every non-zero pixel is one fixation) or ``(az, el)`` directions in radians (an ``(N, 2)`` array for a
single map, a list of ``B`` arrays ``(N_b, 2)`` or a ``(B, N, 2)`` tensor for a batch); a direction counts
on its nearest ERP pixel, and several fixations on one pixel each count. Results: ``(B,)``, 0-d for a single
map, or their mean with ``reduction="mean"``.

``weights`` (``None``, ``"sphere"`` for the solid angle of each ERP pixel, or a tensor broadcastable to
``(H, W)``) is the measure of the map's domain: it weights the statistics of the prediction (NSS's mean
and std, the probability masses of information gain) and the pixels that negatives stand for (AUC-Judd's
non-fixated pixels, AUC-Borji's draws). Fixations are not weighted by it: each is one sample of where
people looked (a pixel fixated ``c`` times counts ``c`` times), and a small polar pixel already
collects fewer of them, so weighting them by their pixel's solid angle would count the area twice
(viewers looking uniformly over the sphere would score below chance on a map favouring the poles).
Fixations and shuffled-AUC negatives on pixels of zero weight (outside the domain) are left out.
Equal weights give exactly the unweighted value. (No public toolbox weights these metrics; AVS360
reports them with cos-latitude weighting.)

A map without fixations, or whose fixations all lie on pixels of zero weight, scores NaN with a
``RuntimeWarning``. Directions are checked (:func:`sphsal.metrics._inputs.check_directions`): elevations
in ``[-pi/2, pi/2]`` (else ``ValueError``), any azimuth (wrapped modulo ``2pi``). Randomness (AUC
jitter, AUC-Borji and shuffled-AUC negatives) comes from ``numpy.random.default_rng(seed)``, created
anew for every map, so a map's score does not depend on the other maps of its batch (nor on the
device).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from sphsal._checks import check_integer, check_number
from sphsal.metrics._inputs import as_maps, check_same_shape, check_seed, finish, fixation_lists, warn_nan
from sphsal.metrics._reductions import EPS, Reducer, Rescale, gather, prepare, roc_area

__all__ = ["nss", "auc_judd", "auc_borji", "auc_shuffled", "info_gain"]


def nss(pred, fixations, *, weights=None, reduction: str = "none", backend: str = "auto") -> torch.Tensor:
    """Normalised scanpath saliency: the mean z-scored prediction at the fixations.

    ``z = (p - m) / s`` with the weighted mean ``m = sum(w p) / sum(w)`` and the unbiased weighted std
    ``s = sqrt(sum(w (p - m)^2) / (V1 - V2 / V1))``, ``V1 = sum(w)``, ``V2 = sum(w^2)`` (the sample std with
    ``N - 1`` of the MIT benchmark when unweighted); ``nss = sum(c z) / sum(c)`` over pixels fixated
    ``c`` times (of positive weight). Invariant to ``a p + b`` with ``a > 0``. A constant prediction
    (constant on the pixels of positive weight, with weights that have zeros) has no z-score: NaN with a
    ``RuntimeWarning``.
    """
    (p,), red, single = prepare({"pred": pred}, weights, backend, reduction)
    idx, pos_w, _, empty = _positives("nss", fixations, p, red)
    sp = red.stats(p, "pred")
    v1 = red.sum_w
    v2 = v1 if red.weights is None else float((red.flat_w**2).sum())
    std = torch.sqrt(sp.ss / (v1 - v2 / v1))
    value = (pos_w * (gather(p, idx) - sp.mean[:, None])).sum(dim=1) / (std * pos_w.sum(dim=1))
    constant = red.constant(p, sp)
    warn_nan("nss", constant, "constant pred")
    return finish(torch.where(empty | constant, torch.nan, value), single, reduction)


def auc_judd(pred, fixations, *, weights=None, reduction: str = "none", jitter: float = 1e-7,
             seed: int = 0, backend: str = "auto") -> torch.Tensor:
    """Area under the ROC curve with thresholds at the fixated values (AUC-Judd, MIT definition).

    The prediction is min-max normalised to ``[0, 1]`` and a uniform jitter in ``[0, jitter)`` (default
    ``1e-7``, finite and ``>= 0``; ``jitter * default_rng(seed).random(H * W)``, the same for every map;
    ``seed`` a non-negative integer) breaks ties, as the
    MIT code does. Each fixated value is a threshold ``t``; the ROC point is the fraction of fixations
    with value ``>= t`` (true positives) against the weighted fraction of non-fixated pixels with value
    ``>= t`` (false positives), completed by (0, 0) and (1, 1) and integrated with the
    trapezoid rule. No sort of the map: every pixel is binned among the sorted
    thresholds. Exact ties give the tie-aware ROC. A constant prediction scores chance level (about 0.5,
    exactly 0.5 with ``jitter=0``). All pixels fixated (no negatives): NaN with a ``RuntimeWarning``.
    """
    (p,), red, single = prepare({"pred": pred}, weights, backend, reduction)
    jitter, seed = check_number(jitter, "jitter", inclusive=True), check_seed(seed)
    idx, pos_w, _, empty = _positives("auc_judd", fixations, p, red)
    noise = torch.zeros(red.n, dtype=torch.float64, device=p.device)
    if jitter:
        noise = jitter * torch.tensor(_pixel_uniforms(seed, red.n), device=p.device)
    tpr, fpr = red.judd(p, noise, idx, pos_w)
    value = roc_area(tpr, fpr)
    no_neg = ~empty & (red.sum_w - (red.flat_w[idx] * (pos_w > 0)).sum(dim=1) <= 0)
    warn_nan("auc_judd", no_neg, "no non-fixated pixel (no negatives)")
    return finish(torch.where(empty | no_neg, torch.nan, value), single, reduction)


def auc_borji(pred, fixations, *, weights=None, reduction: str = "none", splits: int = 100,
              step: float = 0.1, seed: int = 0, backend: str = "auto") -> torch.Tensor:
    """AUC with uniformly drawn negatives (AUC-Borji, MIT definition), averaged over ``splits`` draws.

    The prediction is min-max normalised to ``[0, 1]``. In each of ``splits`` (default 100) splits, as many
    negatives as there are fixations are drawn with replacement from all pixels (uniformly, or with
    probability proportional to ``weights``, e.g. to the solid angle with ``weights="sphere"``) by
    inverse-CDF sampling of ``default_rng(seed).random((splits, n_fix))`` (``seed`` default 0, the generator
    created anew for every map); each negative counts once. Thresholds run from 0 in steps of
    ``step`` (default 0.1); true positives are the fraction of fixations at or above the threshold,
    false positives the fraction of negatives; trapezoid rule with (0, 0) and (1, 1) added.
    """
    (p,), red, single = prepare({"pred": pred}, weights, backend, reduction)
    _check_splits(splits, step)
    seed = check_seed(seed)
    idx, pos_w, n_fix, empty = _positives("auc_borji", fixations, p, red)
    # Inverse-CDF sampling of float64 uniforms u: pixel floor(u N) when unweighted, the same pixels (up
    # to rounding of the cumulative sum) as for equal weights.
    cdf = None if red.weights is None else np.cumsum(red.flat_w.cpu().numpy())
    neg_idx = []
    for n in n_fix:
        u = _split_uniforms(seed, splits, n)
        if cdf is None:
            drawn = (u * red.n).astype(np.int64)
        else:
            drawn = np.searchsorted(cdf, u * cdf[-1], side="right")
        neg_idx.append(np.minimum(drawn, red.n - 1))
    r = red.stats(p, "pred").rescale(uniform_if_constant=False)
    value, _ = _split_auc(p, red, r, idx, pos_w, neg_idx, None, step)
    return finish(torch.where(empty, torch.nan, value), single, reduction)


def auc_shuffled(pred, fixations, other_fixations, *, weights=None, reduction: str = "none",
                 splits: int = 100, step: float = 0.1, seed: int = 0, backend: str = "auto") -> torch.Tensor:
    """Shuffled AUC: AUC-Borji with negatives taken from fixations on other images (MIT definition).

    ``other_fixations`` has the same forms as ``fixations`` (one set per map; for videos usually the
    fixations of the same video's other frames). In each of ``splits`` splits, ``min(n_fix, n_other)``
    negatives are drawn without replacement from the other fixations (the first ones of the permutations
    ``default_rng(seed).random((splits, n_other)).argsort(axis=1)``, the generator created anew for every
    map, of the pool listing the other fixations by pixel index); each counts once, as each fixation
    does (those on pixels of zero weight not at all). Thresholds from 0 in steps of ``step``, trapezoid
    rule. An empty ``other_fixations`` set, or a split whose negatives all lie on pixels of zero weight,
    scores NaN with a ``RuntimeWarning``.
    """
    (p,), red, single = prepare({"pred": pred}, weights, backend, reduction)
    _check_splits(splits, step)
    seed = check_seed(seed)
    idx, pos_w, n_fix, empty = _positives("auc_shuffled", fixations, p, red)
    other_idx, other_cnt = fixation_lists(other_fixations, tuple(p.shape), p.device, "other_fixations")
    other_idx, other_cnt = other_idx.cpu().numpy(), other_cnt.round().long().cpu().numpy()
    neg_idx = []
    for b, n in enumerate(n_fix):
        pool = np.repeat(other_idx[b], other_cnt[b])
        order = _permutations(seed, splits, pool.shape[0])
        neg_idx.append(pool[order[:, :min(n, pool.shape[0])]])
    r = red.stats(p, "pred").rescale(uniform_if_constant=False)
    value, weightless = _split_auc(p, red, r, idx, pos_w, neg_idx, _in_domain(red), step)
    no_other = ~empty & torch.from_numpy(other_cnt.sum(axis=1) == 0).to(p.device)
    warn_nan("auc_shuffled", no_other, "empty other_fixations")
    weightless = ~empty & ~no_other & weightless
    warn_nan("auc_shuffled", weightless, "a split's negatives (other_fixations) all on pixels of zero weight")
    return finish(torch.where(empty | no_other | weightless, torch.nan, value), single, reduction)


def info_gain(pred, fixations, *, baseline, weights=None, reduction: str = "none",
              backend: str = "auto") -> torch.Tensor:
    """Information gain of the prediction over a baseline map at the fixations, in bits per fixation.

    Both maps are min-max normalised and turned into probability masses ``P = w m / sum(w m)`` (a constant
    map, or with weights that have zeros one constant on the pixels of positive weight, is uniform);
    ``ig = sum(c (log2(eps + P) - log2(eps + B))) / sum(c)`` over pixels fixated ``c`` times (of
    positive weight), ``eps = 2.2204e-16`` (MIT definition when unweighted). ``baseline`` (required; no
    centre or equator prior is assumed) is one ``(H, W)`` map for all, or one per map in any map layout.
    """
    (p,), red, single = prepare({"pred": pred}, weights, backend, reduction)
    base, _ = as_maps(baseline, "baseline")
    base = base.to(p.device)
    check_same_shape(p.shape, (p.shape[0] if base.shape[0] == 1 else base.shape[0], *base.shape[1:]),
                     "pred", "baseline")
    idx, pos_w, _, empty = _positives("info_gain", fixations, p, red)
    gain = 0.0
    for x, name, sign in ((p, "pred", 1.0), (base, "baseline", -1.0)):
        stats = red.stats(x, name)  # one baseline map: (1,) statistics
        r = stats.rescale(uniform_if_constant=True, constant=red.constant(x, stats))
        values = gather(x.expand(p.shape[0], *x.shape[1:]), idx)
        gain = gain + sign * torch.log2(EPS + red.flat_w[idx] * r.apply(values) / r.norm[:, None])
    value = (pos_w * gain).sum(dim=1) / pos_w.sum(dim=1)
    return finish(torch.where(empty, torch.nan, value), single, reduction)


def _positives(metric: str, fixations, p: torch.Tensor, red: Reducer):
    """Fixated pixels ``idx`` ``(B, K)``, their fixation counts ``(B, K)`` (0 for padding and for pixels of
    zero weight: see the module docstring), the number of fixations of every map (a list) and the
    ``(B,)`` mask of maps without fixations or whose fixations all have zero weight (both warned
    about)."""
    idx, count = fixation_lists(fixations, tuple(p.shape), p.device)
    total = count.sum(dim=1)
    empty = total == 0
    warn_nan(metric, empty, "no fixations")
    pos_w = count if red.weights is None else count * _in_domain(red)[idx]
    weightless = ~empty & (pos_w.sum(dim=1) <= 0)
    warn_nan(metric, weightless, "fixations only on pixels of zero weight")
    return idx, pos_w, total.round().long().tolist(), empty | weightless


def _in_domain(red: Reducer) -> torch.Tensor:
    """Float64 ``(N,)``: 1 for the pixels of positive weight, 0 for the others."""
    return (red.flat_w > 0).to(torch.float64)


def _uniforms(seed: int, *shape: int) -> np.ndarray:
    """``default_rng(seed).random(shape)``, read-only. Every map draws from a new generator, so maps of
    the same shape draw the same numbers: the callers cache them."""
    u = np.random.default_rng(seed).random(shape)
    u.flags.writeable = False
    return u


_split_uniforms = functools.lru_cache(maxsize=64)(_uniforms)  # (splits, n) per fixation count
_pixel_uniforms = functools.lru_cache(maxsize=4)(_uniforms)  # (H * W,) AUC-Judd jitter


@functools.lru_cache(maxsize=64)
def _permutations(seed: int, splits: int, n: int) -> np.ndarray:
    """``default_rng(seed).random((splits, n)).argsort(axis=1)``, cached (read-only)."""
    order = _uniforms(seed, splits, n).argsort(axis=1)
    order.flags.writeable = False
    return order


def _check_splits(splits: int, step: float) -> None:
    """``ValueError`` unless ``splits`` is a positive int (not a float or bool) and ``0 < step <= 1``."""
    check_integer(splits, "splits")
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step!r}")


def _split_auc(p: torch.Tensor, red: Reducer, r: Rescale, pos_idx: torch.Tensor, pos_w: torch.Tensor,
               neg_idx: list[np.ndarray], neg_pixel_w: torch.Tensor | None,
               step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean AUC over splits with sampled negatives (AUC-Borji and shuffled AUC), ``(B,)``.

    ``p``: maps ``(B, H, W)`` rescaled by ``r`` to ``[0, 1]``; ``pos_idx``, ``pos_w``: fixated pixels and
    their weights ``(B, K)``; ``neg_idx``: per map a ``(splits, M_b)`` array of negative pixel indices;
    ``neg_pixel_w``: flat per-pixel factors ``(N,)`` of the negatives (1 inside the domain, 0 on pixels
    of zero weight), or ``None`` (each counts once).
    Thresholds ``0, step, 2 step, ...`` up to 1 (those above every score only repeat (0, 0)).
    Returns the AUCs and the ``(B,)`` mask of maps with a split whose negatives have zero total weight
    (their AUC is NaN).
    """
    batch, splits = p.shape[0], neg_idx[0].shape[0]
    m = max(1, max(n.shape[1] for n in neg_idx))
    flat_idx = np.zeros((batch, splits, m), dtype=np.int64)
    taken = np.zeros((batch, splits, m))
    for b, n in enumerate(neg_idx):
        flat_idx[b, :, :n.shape[1]] = n
        taken[b, :, :n.shape[1]] = 1.0
    flat_idx = torch.from_numpy(flat_idx).to(p.device)
    neg_w = torch.from_numpy(taken).to(p.device)
    if neg_pixel_w is not None and red.weights is not None:
        neg_w = neg_w * neg_pixel_w[flat_idx]
    n_steps = int(1.0 / step + 1e-9)
    thresholds = torch.arange(n_steps + 1, dtype=torch.float64, device=p.device) * step
    weightless = (neg_w.sum(dim=2) <= 0).any(dim=1)
    return red.split_auc(p, r, pos_idx, pos_w, flat_idx, neg_w, thresholds), weightless
