"""Metrics against a continuous ground-truth saliency map: CC, KLD and SIM (MIT benchmark definitions).

All take ``pred`` and ``target`` shaped ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` (equal sizes, no
resizing) and return one value per map: ``(B,)``, or 0-d for a single ``(H, W)`` map (``reduction="none"``),
or their mean (``reduction="mean"``). ``weights`` is ``None``, ``"sphere"`` (solid angle of each ERP pixel)
or a tensor broadcastable to ``(H, W)``; equal weights give exactly the unweighted value.
"""

from __future__ import annotations

import torch

from sphsal.metrics._inputs import (
    EPS,
    finish,
    is_constant,
    minmax_distribution,
    prepare_pair,
    warn_nan,
    weighted_mean,
    weighted_sum,
)

__all__ = ["cc", "kld", "sim"]


def cc(pred, target, *, weights=None, reduction: str = "none") -> torch.Tensor:
    """Pearson linear correlation coefficient between prediction and ground-truth maps.

    ``cc = sum(w (p - mp)(t - mt)) / sqrt(sum(w (p - mp)^2) sum(w (t - mt)^2))`` with weighted means
    ``mp``, ``mt`` (``w = 1`` unweighted; MIT's z-scoring with ``N - 1`` gives the same value). Invariant to
    affine changes ``a p + b`` with ``a > 0``. A constant ``pred`` or ``target`` has no correlation: its
    score is NaN with a ``RuntimeWarning``.
    """
    p, t, w, single = prepare_pair(pred, target, weights)
    pc = p - weighted_mean(p, w)[:, None, None]
    tc = t - weighted_mean(t, w)[:, None, None]
    value = weighted_sum(pc * tc, w) / torch.sqrt(weighted_sum(pc * pc, w) * weighted_sum(tc * tc, w))
    bad = is_constant(p) | is_constant(t)
    warn_nan("cc", bad, "constant pred or target")
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def kld(pred, target, *, weights=None, reduction: str = "none") -> torch.Tensor:
    """Kullback-Leibler divergence of the prediction from the ground truth (MIT definition).

    Both maps (non-negative) become probability masses ``P = w p / sum(w p)`` and ``G = w t / sum(w t)``
    (no min-max); ``kld = sum(G log(eps + G / (P + eps)))`` with ``eps = 2.2204e-16``, ground truth first,
    natural log. Zero for identical maps. A map that sums to zero is no distribution: NaN with a
    ``RuntimeWarning``. Negative values raise ``ValueError``.
    """
    p, t, w, single = prepare_pair(pred, target, weights)
    for x, name in ((p, "pred"), (t, "target")):
        if (x < 0).any():
            raise ValueError(f"kld needs non-negative maps, {name} has negative values")
    p_sum, t_sum = weighted_sum(p, w), weighted_sum(t, w)
    bad = (p_sum == 0) | (t_sum == 0)
    warn_nan("kld", bad, "pred or target sums to zero")
    mass_p = (p if w is None else p * w) / torch.where(bad, 1.0, p_sum)[:, None, None]
    mass_t = (t if w is None else t * w) / torch.where(bad, 1.0, t_sum)[:, None, None]
    value = (mass_t * torch.log(EPS + mass_t / (mass_p + EPS))).sum(dim=(-2, -1))
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def sim(pred, target, *, weights=None, reduction: str = "none") -> torch.Tensor:
    """Similarity (histogram intersection) of prediction and ground truth (MIT definition).

    Each map is min-max normalised to ``[0, 1]`` and then turned into probability masses
    ``P = w m / sum(w m)`` (see :func:`sphsal.metrics._inputs.minmax_distribution`);
    ``sim = sum(min(P, G))`` in ``[0, 1]``, one for identical maps. A constant map counts as the uniform
    distribution (no NaN).
    """
    p, t, w, single = prepare_pair(pred, target, weights)
    value = torch.minimum(minmax_distribution(p, w), minmax_distribution(t, w)).sum(dim=(-2, -1))
    return finish(value, single, reduction)
