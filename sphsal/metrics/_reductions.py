"""The full-map passes of the metrics, with a plain-torch reference and a numba CPU fast path.

Every metric reduces its maps to a few per-map numbers (weighted moments, extrema, a KLD or SIM sum, the
AUC-Judd ROC rates); the rest works on ``(B,)`` or ``(B, K)`` tensors. :class:`Reducer` computes those
numbers either with torch (``backend="torch"``: the reference, differentiable, any device; maps are
processed in chunks to bound memory) or with the numba kernels of :mod:`sphsal.metrics._kernels`
(``backend="numba"``: CPU only, one or two streaming passes per map, no temporaries). ``"auto"`` takes
numba for CPU tensors that do not require gradients, torch otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sphsal.metrics import _kernels
from sphsal.metrics._inputs import as_maps, check_finite, check_reduction, check_same_shape, resolve_weights

EPS = _kernels.EPS
BACKENDS = ("auto", "numba", "torch")
_CHUNK_PIXELS = 1 << 22


@dataclass
class Stats:
    """Per-map statistics of ``B`` maps under pixel weights ``w``; tensors are float64 ``(B,)``."""

    sum_w: float  # sum of the weights over one map
    swx: torch.Tensor  # sum w x
    lo: torch.Tensor  # min x
    hi: torch.Tensor  # max x
    ss: torch.Tensor  # sum w (x - mean)^2

    @property
    def mean(self) -> torch.Tensor:
        return self.swx / self.sum_w

    @property
    def constant(self) -> torch.Tensor:
        return self.hi == self.lo

    def rescale(self, uniform_if_constant: bool) -> Rescale:
        """Min-max rescaling ``m = (x - lo) * scale + offset`` to ``[0, 1]``; a constant map becomes all
        ones (``uniform_if_constant``, the uniform distribution once normalised) or all zeros."""
        span = self.hi - self.lo
        scale = torch.where(span > 0, 1.0 / torch.where(span > 0, span, 1.0), 0.0)
        offset = (self.constant & uniform_if_constant).to(torch.float64)
        norm = scale * (self.swx - self.lo * self.sum_w) + offset * self.sum_w
        return Rescale(self.lo, scale, offset, norm)


@dataclass
class Rescale:
    """Per-map affine map ``m = (x - lo) * scale + offset`` and ``norm = sum w m``; float64 ``(B,)``."""

    lo: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor
    norm: torch.Tensor

    def apply(self, values: torch.Tensor) -> torch.Tensor:
        """Rescale gathered values ``(B, K)`` of the maps."""
        return (values.to(torch.float64) - self.lo[:, None]) * self.scale[:, None] + self.offset[:, None]


class Reducer:
    """Full-map reductions of ``(B, H, W)`` maps under ``weights`` (float64 ``(H, W)`` or ``None``)."""

    def __init__(self, backend: str, weights: torch.Tensor | None, shape, device, requires_grad: bool):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        device = torch.device(device)
        if backend == "numba" and device.type != "cpu":
            raise ValueError(f"backend='numba' runs on CPU tensors only, got tensors on {device}")
        auto_numba = backend == "auto" and device.type == "cpu" and not requires_grad
        self.use_numba = backend == "numba" or auto_numba
        self.n = shape[-2] * shape[-1]
        self.weights = weights
        ones = torch.ones(self.n, dtype=torch.float64, device=device)
        self.flat_w = ones if weights is None else weights.reshape(-1).to(device).contiguous()
        self.sum_w = float(self.flat_w.sum())
        self.chunk = max(1, _CHUNK_PIXELS // self.n)

    # -- helpers ------------------------------------------------------------------------------------------
    def _np(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().reshape(x.shape[0], -1).contiguous().numpy()

    def _vec(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().to(torch.float64).contiguous().numpy()

    def _chunks(self, *maps: torch.Tensor):
        """Yield float64 ``(b, N)`` chunks of the given ``(B, H, W)`` maps and the chunk's slice."""
        for start in range(0, maps[0].shape[0], self.chunk):
            sl = slice(start, start + self.chunk)
            yield sl, [m[sl].reshape(m[sl].shape[0], -1).to(torch.float64) for m in maps]

    def _wsum(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.flat_w if self.weights is not None else x.sum(dim=1)

    # -- reductions ---------------------------------------------------------------------------------------
    def stats(self, x: torch.Tensor, name: str) -> Stats:
        """:class:`Stats` of maps ``x``; ``ValueError`` naming ``name`` if ``x`` holds NaN or inf."""
        if self.use_numba:
            out = np.empty((x.shape[0], 4))
            _kernels.map_stats(self._np(x), self._vec(self.flat_w), out)
            if not np.isfinite(out[:, 0]).all():
                check_finite(x, name)
            out = torch.from_numpy(out)
            return Stats(self.sum_w, out[:, 0], out[:, 1], out[:, 2], out[:, 3])
        check_finite(x, name)
        parts = []
        for _, (c,) in self._chunks(x):
            swx = self._wsum(c)
            centred = c - (swx / self.sum_w)[:, None]
            parts.append(torch.stack((swx, c.amin(dim=1), c.amax(dim=1), self._wsum(centred * centred)), 1))
        out = torch.cat(parts)
        return Stats(self.sum_w, out[:, 0], out[:, 1], out[:, 2], out[:, 3])

    def cross(self, p, t, mean_p, mean_t) -> torch.Tensor:
        """``sum w (p - mean_p)(t - mean_t)`` per map, ``(B,)``."""
        if self.use_numba:
            out = np.empty(p.shape[0])
            _kernels.centred_cross(self._np(p), self._np(t), self._vec(self.flat_w), self._vec(mean_p),
                                   self._vec(mean_t), out)
            return torch.from_numpy(out)
        return torch.cat([self._wsum((cp - mean_p[sl, None]) * (ct - mean_t[sl, None]))
                          for sl, (cp, ct) in self._chunks(p, t)])

    def kld(self, p, t, sum_p, sum_t) -> torch.Tensor:
        """``sum g log(EPS + g / (q + EPS))`` with ``g = w t / sum_t``, ``q = w p / sum_p``, ``(B,)``."""
        if self.use_numba:
            out = np.empty(p.shape[0])
            _kernels.kld_sum(self._np(p), self._np(t), self._vec(self.flat_w), self._vec(sum_p),
                             self._vec(sum_t), out)
            return torch.from_numpy(out)
        parts = []
        for sl, (cp, ct) in self._chunks(p, t):
            g = ct * self.flat_w / sum_t[sl, None]
            q = cp * self.flat_w / sum_p[sl, None]
            parts.append((g * torch.log(EPS + g / (q + EPS))).sum(dim=1))
        return torch.cat(parts)

    def sim(self, p, t, rp: Rescale, rt: Rescale) -> torch.Tensor:
        """``sum min(w m_p / norm_p, w m_t / norm_t)`` per map, ``(B,)``."""
        if self.use_numba:
            out = np.empty(p.shape[0])
            _kernels.sim_sum(self._np(p), self._np(t), self._vec(self.flat_w),
                             *(self._vec(v) for v in (rp.lo, rp.scale, rp.offset, rp.norm)),
                             *(self._vec(v) for v in (rt.lo, rt.scale, rt.offset, rt.norm)), out)
            return torch.from_numpy(out)
        parts = []
        for sl, (cp, ct) in self._chunks(p, t):
            mp = self.flat_w * ((cp - rp.lo[sl, None]) * rp.scale[sl, None] + rp.offset[sl, None])
            mt = self.flat_w * ((ct - rt.lo[sl, None]) * rt.scale[sl, None] + rt.offset[sl, None])
            parts.append(torch.minimum(mp / rp.norm[sl, None], mt / rt.norm[sl, None]).sum(dim=1))
        return torch.cat(parts)

    def judd(self, p, r: Rescale, jitter: torch.Tensor, pos_idx: torch.Tensor,
             pos_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AUC-Judd ROC rates ``(tpr, fpr)``, each ``(B, K)``, highest threshold first.

        Scores ``s = (p - lo) * scale + jitter`` (``jitter``: float64 ``(N,)``); thresholds at the scores
        of the fixated pixels ``pos_idx`` ``(B, K)`` (weights ``pos_w``, 0 for padding); negatives are
        the other pixels with their weights. Equal scores fall on the same side of every threshold.
        """
        if self.use_numba:
            tpr = np.empty(pos_idx.shape)
            fpr = np.empty(pos_idx.shape)
            _kernels.judd_rates(self._np(p), self._vec(self.flat_w), self._vec(r.lo), self._vec(r.scale),
                                self._vec(jitter), pos_idx.contiguous().numpy(), self._vec(pos_w), tpr, fpr)
            return torch.from_numpy(tpr), torch.from_numpy(fpr)
        tprs, fprs = [], []
        k = pos_idx.shape[1]
        for sl, (c,) in self._chunks(p):
            s = (c - r.lo[sl, None]) * r.scale[sl, None] + jitter
            idx, pw = pos_idx[sl], pos_w[sl]
            valid = pw > 0
            pos_s = s.gather(1, idx)
            thresholds = torch.where(valid, pos_s, torch.inf).sort(dim=1).values
            bins = torch.searchsorted(thresholds, s, right=True)
            pos_bins = torch.searchsorted(thresholds, pos_s, right=True)
            rows = c.shape[0]
            hist_all = torch.zeros(rows, k + 1, dtype=torch.float64, device=c.device)
            hist_all.scatter_add_(1, bins, self.flat_w.expand(rows, -1))
            hist_all.scatter_add_(1, pos_bins, -self.flat_w[idx] * valid)  # fixated pixels are no negatives
            hist_pos = torch.zeros_like(hist_all).scatter_add_(1, pos_bins, pw)
            tprs.append(fraction_at_or_above(hist_pos))
            fprs.append(fraction_at_or_above(hist_all))
        return torch.cat(tprs), torch.cat(fprs)


def threshold_histogram(values: torch.Tensor, weights: torch.Tensor,
                        thresholds: torch.Tensor) -> torch.Tensor:
    """Weight of ``values`` ``(R, M)`` per bin of ascending ``thresholds`` ``(K,)`` or ``(R, K)``:
    ``(R, K + 1)``, bin ``m`` holding the values with exactly ``m`` thresholds ``<= value``."""
    bins = torch.searchsorted(thresholds.contiguous(), values.contiguous(), right=True)
    hist = torch.zeros(values.shape[0], thresholds.shape[-1] + 1, dtype=torch.float64, device=values.device)
    return hist.scatter_add_(1, bins, weights.to(torch.float64))


def fraction_at_or_above(hist: torch.Tensor) -> torch.Tensor:
    """From a ``(R, K + 1)`` histogram over ascending thresholds (bin ``m``: ``m`` thresholds ``<=`` the
    value), the weighted fraction of values ``>=`` each threshold, highest threshold first, ``(R, K)``."""
    return hist[:, 1:].flip(1).cumsum(1) / hist.sum(dim=1, keepdim=True)


def prepare(maps: dict, weights, backend: str, reduction: str):
    """Canonicalise the maps of a metric call (the first is the prediction; all must share its shape).

    Returns ``(tensors, reducer, single)``: the ``(B, H, W)`` maps in the order given, a
    :class:`Reducer` for their size and weights, and whether the prediction was one ``(H, W)`` map.
    """
    check_reduction(reduction)
    names = list(maps)
    tensors, single = [], True
    for i, name in enumerate(names):
        t, one = as_maps(maps[name], name)
        if i == 0:
            single = one
        else:
            check_same_shape(tensors[0].shape, t.shape, names[0], name)
            t = t.to(tensors[0].device)
        tensors.append(t)
    p = tensors[0]
    w = resolve_weights(weights, p.shape[-2], p.shape[-1], p.device)
    grad = any(t.requires_grad for t in tensors)
    return tensors, Reducer(backend, w, p.shape, p.device, grad), single


def gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Values of maps ``x`` ``(B, H, W)`` at flat pixel indices ``idx`` ``(B, K)``, float64 ``(B, K)``."""
    return x.reshape(x.shape[0], -1).gather(1, idx).to(torch.float64)
