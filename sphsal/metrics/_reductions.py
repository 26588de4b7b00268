"""The full-map passes of the metrics, with a plain-torch reference and a numba CPU fast path.

Every metric reduces its maps to a few per-map numbers (weighted moments, extrema, a KLD or SIM sum, the
AUC-Judd ROC rates); the rest works on ``(B,)`` or ``(B, K)`` tensors. :class:`Reducer` computes those
numbers either with torch (``backend="torch"``: the reference, differentiable, any device; maps are
processed in chunks to bound memory) or with the numba kernels of :mod:`sphsal.metrics._kernels`
(``backend="numba"``: CPU only, one or two streaming passes per map, no temporaries; a metric's passes
run in one kernel, so a map's second pass finds it in the CPU cache). ``"auto"`` takes numba for CPU
tensors that do not require gradients, torch otherwise.
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

    def rescale(self, uniform_if_constant: bool, constant: torch.Tensor | None = None) -> Rescale:
        """Min-max rescaling ``m = (x - lo) * scale + offset`` to ``[0, 1]``; a constant map becomes all
        ones (``uniform_if_constant``, the uniform distribution once normalised) or all zeros.
        ``constant`` ``(B,)`` overrides which maps count as constant (default :attr:`constant`; see
        :meth:`Reducer.constant` for weights with zeros)."""
        constant = self.constant if constant is None else constant
        span = self.hi - self.lo
        scale = torch.where((span > 0) & ~constant, 1.0 / torch.where(span > 0, span, 1.0), 0.0)
        offset = (constant & uniform_if_constant).to(torch.float64)
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
    """Full-map reductions of ``(B, H, W)`` maps under ``weights`` (float64 ``(H, W)`` or ``None``).

    Every method checks that the maps it reads are finite and that their value range ``max - min`` and
    its reciprocal are finite float64 numbers, as min-max normalisation needs (``ValueError`` naming the
    argument). The numba path passes the kernels one weight per row when the weights are constant along
    rows (``None`` and ``"sphere"``), and the full ``(H, W)`` weights otherwise.
    """

    def __init__(self, backend: str, weights: torch.Tensor | None, shape, device, requires_grad: bool):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        device = torch.device(device)
        if backend == "numba" and device.type != "cpu":
            raise ValueError(f"backend='numba' runs on CPU tensors only, got tensors on {device}")
        auto_numba = backend == "auto" and device.type == "cpu" and not requires_grad
        self.use_numba = backend == "numba" or auto_numba
        h, w = shape[-2], shape[-1]
        self.n = h * w
        self.weights = weights
        if weights is None:
            self.flat_w = torch.ones(1, dtype=torch.float64, device=device).expand(self.n)
            self.sum_w = float(self.n)
        else:
            self.flat_w = weights.reshape(-1).to(device).contiguous()
            self.sum_w = float(self.flat_w.sum())
        # pixels of positive weight, or None when every pixel has one
        self.support = None if weights is None or bool((self.flat_w > 0).all()) else self.flat_w > 0
        self.chunk = max(1, _CHUNK_PIXELS // self.n)
        if self.use_numba:
            self._wr, self._wf = _kernel_weights(weights, h, w)

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def _np(x: torch.Tensor) -> np.ndarray:
        return x.detach().contiguous().numpy()

    def _vec(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().to(torch.float64).contiguous().numpy()

    def _stats(self, mom: np.ndarray) -> Stats:
        """:class:`Stats` from kernel moments ``(B, 5)`` = ``(S1, S2, k, lo, hi)`` (see ``_kernels``)."""
        s1, s2, k, lo, hi = torch.from_numpy(mom).unbind(1)
        return Stats(self.sum_w, s1 + k * self.sum_w, lo, hi, (s2 - s1 * s1 / self.sum_w).clamp_min(0.0))

    @staticmethod
    def _check_moments(mom: np.ndarray, maps, names) -> None:
        """Raise as :func:`check_finite` for the first of ``maps`` whose moments (``(B, 5)`` blocks of
        ``mom``) show NaN or infinite values, and as :func:`check_span` for one whose range is not
        representable."""
        for m, (x, name) in enumerate(zip(maps, names)):
            ext = mom[:, _kernels.N_MOMENTS * m + 3:_kernels.N_MOMENTS * m + 5]
            if not np.isfinite(ext).all():
                check_finite(x, name)
            check_span(torch.from_numpy(ext[:, 0]), torch.from_numpy(ext[:, 1]), name)

    def constant(self, x: torch.Tensor, stats: Stats) -> torch.Tensor:
        """``(B,)``: whether each map of ``x`` is constant on the pixels of positive weight (all pixels
        unless custom weights have zeros: then a map can vary only where it does not count)."""
        if self.support is None:
            return stats.constant
        values = x.reshape(x.shape[0], -1)[:, self.support.to(x.device)]
        return values.amin(dim=1) == values.amax(dim=1)

    def _chunks(self, *maps: torch.Tensor):
        """Yield float64 ``(b, N)`` chunks of the given ``(B, H, W)`` maps and the chunk's slice."""
        for start in range(0, maps[0].shape[0], self.chunk):
            sl = slice(start, start + self.chunk)
            yield sl, [m[sl].reshape(m[sl].shape[0], -1).to(torch.float64) for m in maps]

    def _wsum(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.flat_w if self.weights is not None else x.sum(dim=1)

    def _pair(self, kernel, p, t, names, *extra) -> tuple[Stats, Stats, torch.Tensor]:
        """Run a pair kernel (``cc_pass``, ``kld_pass``, ``sim_pass``): statistics of both maps and the
        kernel's per-map value."""
        mom = np.empty((p.shape[0], 2 * _kernels.N_MOMENTS))
        value = np.empty(p.shape[0])
        kernel(self._np(p), self._np(t), self._wr, self._wf, *extra, mom, value)
        self._check_moments(mom, (p, t), names)
        n = _kernels.N_MOMENTS
        return self._stats(mom[:, :n]), self._stats(mom[:, n:]), torch.from_numpy(value)

    # -- reductions ---------------------------------------------------------------------------------------
    def stats(self, x: torch.Tensor, name: str) -> Stats:
        """:class:`Stats` of maps ``x``; ``ValueError`` naming ``name`` if ``x`` holds NaN or inf."""
        if self.use_numba:
            mom = np.empty((x.shape[0], _kernels.N_MOMENTS))
            _kernels.moments(self._np(x), self._wr, self._wf, mom)
            self._check_moments(mom, (x,), (name,))
            return self._stats(mom)
        check_finite(x, name)
        parts = []
        for _, (c,) in self._chunks(x):
            swx = self._wsum(c)
            centred = c - (swx / self.sum_w)[:, None]
            parts.append(torch.stack((swx, c.amin(dim=1), c.amax(dim=1), self._wsum(centred * centred)), 1))
        out = torch.cat(parts)
        check_span(out[:, 1], out[:, 2], name)
        return Stats(self.sum_w, out[:, 0], out[:, 1], out[:, 2], out[:, 3])

    def cc(self, p, t, names=("pred", "target")) -> tuple[Stats, Stats, torch.Tensor]:
        """Statistics of ``p`` and ``t`` and ``sum w (p - mean_p)(t - mean_t)`` per map, ``(B,)``."""
        if self.use_numba:
            return self._pair(_kernels.cc_pass, p, t, names, self.sum_w)
        sp, st = self.stats(p, names[0]), self.stats(t, names[1])
        return sp, st, torch.cat([self._wsum((cp - sp.mean[sl, None]) * (ct - st.mean[sl, None]))
                                  for sl, (cp, ct) in self._chunks(p, t)])

    def kld(self, p, t, names=("pred", "target")) -> tuple[Stats, Stats, torch.Tensor]:
        """Statistics of ``p`` and ``t`` and ``sum g log(EPS + g / (q + EPS))`` per map with masses
        ``g = w t / sum w t``, ``q = w p / sum w p``; the value is NaN (numba) or meaningless (torch) for
        maps with a negative value or a zero sum."""
        if self.use_numba:
            return self._pair(_kernels.kld_pass, p, t, names, self.sum_w)
        sp, st = self.stats(p, names[0]), self.stats(t, names[1])
        sum_p = torch.where(sp.swx > 0, sp.swx, 1.0)
        sum_t = torch.where(st.swx > 0, st.swx, 1.0)
        parts = []
        for sl, (cp, ct) in self._chunks(p, t):
            g = ct * self.flat_w / sum_t[sl, None]
            q = cp * self.flat_w / sum_p[sl, None]
            parts.append((g * torch.log(EPS + g / (q + EPS))).sum(dim=1))
        return sp, st, torch.cat(parts)

    def sim(self, p, t, names=("pred", "target")) -> torch.Tensor:
        """``sum min(w m_p / norm_p, w m_t / norm_t)`` per map, ``(B,)``, with the min-max rescalings of
        :meth:`Stats.rescale` (a constant map uniform; with custom weights that have zeros, a map constant
        on the pixels of positive weight, by the torch path, as the kernel knows no such maps)."""
        if self.use_numba and self.support is None:
            return self._pair(_kernels.sim_pass, p, t, names, self.sum_w)[2]
        sp, st = self.stats(p, names[0]), self.stats(t, names[1])
        rp = sp.rescale(uniform_if_constant=True, constant=self.constant(p, sp))
        rt = st.rescale(uniform_if_constant=True, constant=self.constant(t, st))
        parts = []
        for sl, (cp, ct) in self._chunks(p, t):
            mp = self.flat_w * ((cp - rp.lo[sl, None]) * rp.scale[sl, None] + rp.offset[sl, None])
            mt = self.flat_w * ((ct - rt.lo[sl, None]) * rt.scale[sl, None] + rt.offset[sl, None])
            parts.append(torch.minimum(mp / rp.norm[sl, None], mt / rt.norm[sl, None]).sum(dim=1))
        return torch.cat(parts)

    def judd(self, p, jitter: torch.Tensor, pos_idx: torch.Tensor, pos_w: torch.Tensor,
             name: str = "pred") -> tuple[torch.Tensor, torch.Tensor]:
        """AUC-Judd ROC rates ``(tpr, fpr)``, each ``(B, K)``, highest threshold first.

        Scores ``s = (p - lo) * scale + jitter`` (min-max to ``[0, 1]``, a constant map all zeros;
        ``jitter``: float64 ``(N,)``); thresholds at the scores of the fixated pixels ``pos_idx``
        ``(B, K)`` (weights ``pos_w``, 0 for padding); negatives are the other pixels with their weights.
        Equal scores fall on the same side of every threshold.
        """
        if self.use_numba:
            tpr = np.empty(pos_idx.shape)
            fpr = np.empty(pos_idx.shape)
            mom = np.empty((p.shape[0], _kernels.N_MOMENTS))
            _kernels.judd_pass(self._np(p), self._wr, self._wf, self.sum_w,
                               self._vec(jitter).reshape(p.shape[-2:]), pos_idx.contiguous().numpy(),
                               self._vec(pos_w), mom, tpr, fpr)
            self._check_moments(mom, (p,), (name,))
            return torch.from_numpy(tpr), torch.from_numpy(fpr)
        r = self.stats(p, name).rescale(uniform_if_constant=False)
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


    def split_auc(self, p, r: Rescale, pos_idx, pos_w, neg_idx, neg_w, thresholds) -> torch.Tensor:
        """Mean over splits of the ROC area with fixed ascending ``thresholds`` ``(T,)`` of the scores
        ``r.apply(p)`` (AUC-Borji and shuffled AUC), ``(B,)``: positives ``pos_idx`` (flat pixel indices)
        with weights ``pos_w``, ``(B, K)``; per split negatives ``neg_idx`` with weights ``neg_w``,
        ``(B, S, M)`` (0 for padding)."""
        if self.use_numba:
            out = np.empty(p.shape[0])
            _kernels.split_auc(self._np(p), self._vec(r.lo), self._vec(r.scale), self._vec(r.offset),
                               pos_idx.contiguous().numpy(), self._vec(pos_w), neg_idx.contiguous().numpy(),
                               self._vec(neg_w), self._vec(thresholds), out)
            return torch.from_numpy(out)
        batch, splits, m = neg_idx.shape
        neg_val = r.apply(gather(p, neg_idx.reshape(batch, -1))).view(batch, splits, m)
        pos_val = r.apply(gather(p, pos_idx))
        tpr = fraction_at_or_above(threshold_histogram(pos_val, pos_w, thresholds))
        fpr = fraction_at_or_above(threshold_histogram(neg_val.view(batch * splits, m),
                                                       neg_w.reshape(batch * splits, m), thresholds))
        return roc_area(tpr[:, None].expand(batch, splits, -1), fpr.view(batch, splits, -1)).mean(dim=1)


def check_span(lo: torch.Tensor, hi: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if a map's range ``hi - lo`` (finite extrema ``(B,)``) is not a
    finite float64 number or, when positive, has no finite reciprocal: such a map (values near
    +-1.8e308, or differing by less than about 5.6e-309) cannot be min-max normalised."""
    span = hi.to(torch.float64) - lo.to(torch.float64)
    bad = ~torch.isfinite(span) | ((span > 0) & ~torch.isfinite(1.0 / span))
    if bool(bad.any()):
        b = int(torch.nonzero(bad)[0])
        raise ValueError(f"{name}'s value range is out of float64's reach: map {b} spans {float(lo[b])!r} .. "
                         f"{float(hi[b])!r}, and max - min (or its reciprocal, which min-max normalisation "
                         f"needs) is not finite; rescale {name} (e.g. divide it by its largest absolute "
                         "value)")


def roc_area(tpr: torch.Tensor, fpr: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under ROC points ``(..., K)`` (highest threshold first), closed by (0, 0) and
    (1, 1)."""
    zero = torch.zeros(*tpr.shape[:-1], 1, dtype=tpr.dtype, device=tpr.device)
    tpr = torch.cat((zero, tpr, zero + 1), dim=-1)
    fpr = torch.cat((zero, fpr, zero + 1), dim=-1)
    return torch.trapezoid(tpr, fpr, dim=-1)


def _kernel_weights(weights: torch.Tensor | None, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The kernels' weights: ``(row weights (H,), None)`` when ``weights`` is ``None`` or constant along
    every row (as the solid angle of ERP pixels), else ``(ones (H,), weights (H, W))``."""
    if weights is None:
        return np.ones(h), None
    w64 = weights.detach().to(device="cpu", dtype=torch.float64)
    if bool((w64 == w64[:, :1]).all()):
        return w64[:, 0].contiguous().numpy(), None
    return np.ones(h), w64.contiguous().numpy()


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
