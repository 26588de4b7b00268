"""Metrics against a continuous ground-truth saliency map: CC, KLD and SIM (MIT benchmark definitions).

All take ``pred`` and ``target`` shaped ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` (equal sizes, no
resizing) and return float64 values, one per map: ``(B,)``, or 0-d for a single ``(H, W)`` map
(``reduction="none"``), or their mean (``reduction="mean"``). ``weights`` is ``None``, ``"sphere"`` (the
solid angle of each ERP pixel) or a tensor broadcastable to ``(H, W)``; equal weights give the unweighted
value. ``backend``: ``"auto"`` (numba kernels for CPU tensors without gradients, torch otherwise),
``"numba"`` or ``"torch"`` (the reference; differentiable, any device). NaN or infinite inputs raise
``ValueError`` naming the argument.
"""

from __future__ import annotations

import torch

from sphsal.metrics._inputs import finish, warn_nan
from sphsal.metrics._reductions import prepare

__all__ = ["cc", "kld", "sim"]


def cc(pred, target, *, weights=None, reduction: str = "none", backend: str = "auto") -> torch.Tensor:
    """Pearson linear correlation coefficient between prediction and ground-truth maps.

    ``cc = sum(w (p - mp)(t - mt)) / sqrt(sum(w (p - mp)^2) sum(w (t - mt)^2))`` with weighted means
    ``mp``, ``mt`` (``w = 1`` unweighted; MIT's z-scoring with ``N - 1`` gives the same value). Invariant to
    affine changes ``a p + b`` with ``a > 0``. A constant ``pred`` or ``target`` has no correlation: its
    score is NaN with a ``RuntimeWarning`` (constant on the pixels of positive weight, with weights that
    have zeros).
    """
    (p, t), red, single = prepare({"pred": pred, "target": target}, weights, backend, reduction)
    sp, st, cross = red.cc(p, t)
    value = cross / torch.sqrt(sp.ss * st.ss)
    bad = red.constant(p, sp) | red.constant(t, st)
    warn_nan("cc", bad, "constant pred or target")
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def kld(pred, target, *, weights=None, reduction: str = "none", backend: str = "auto") -> torch.Tensor:
    """Kullback-Leibler divergence of the prediction from the ground truth (MIT definition).

    Both maps (non-negative) become probability masses ``P = w p / sum(w p)`` and ``G = w t / sum(w t)``
    (no min-max); ``kld = sum(G log(eps + G / (P + eps)))`` with ``eps = 2.2204e-16``, ground truth first,
    natural log. Zero for identical maps. A map that sums to zero is no distribution: NaN with a
    ``RuntimeWarning``. Negative values raise ``ValueError``.
    """
    (p, t), red, single = prepare({"pred": pred, "target": target}, weights, backend, reduction)
    sp, st, value = red.kld(p, t)
    for s, name in ((sp, "pred"), (st, "target")):
        if (s.lo < 0).any():
            raise ValueError(f"kld needs non-negative maps, {name} has negative values")
    bad = (sp.swx == 0) | (st.swx == 0)
    warn_nan("kld", bad, "pred or target sums to zero")
    return finish(torch.where(bad, torch.nan, value), single, reduction)


def sim(pred, target, *, weights=None, reduction: str = "none", backend: str = "auto") -> torch.Tensor:
    """Similarity (histogram intersection) of prediction and ground truth (MIT definition).

    Each map is min-max normalised to ``m`` in ``[0, 1]`` and turned into probability masses
    ``P = w m / sum(w m)``; ``sim = sum(min(P, G))`` in ``[0, 1]``, one for identical maps. A constant map
    (constant on the pixels of positive weight, with weights that have zeros) counts as the uniform
    distribution ``w / sum(w)`` (no NaN).

    With weights, the map itself (a density on the sphere) is min-max normalised before it is weighted.
    The Salient360! toolbox normalises the weighted map ``w p`` instead; its sine weights are zero on the
    pole rows, so it takes ``w p / sum(w p)`` without subtracting the map's minimum, and scores differ
    for maps with a floor (e.g. 0.33 here vs 0.46 there for ``0.5 + u^4`` against ``v^4``, ``u, v``
    uniform noise).
    """
    (p, t), red, single = prepare({"pred": pred, "target": target}, weights, backend, reduction)
    return finish(red.sim(p, t), single, reduction)
