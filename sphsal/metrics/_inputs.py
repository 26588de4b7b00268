"""Input handling shared by the saliency metrics: map layouts, pixel weights, fixations, reductions.

Every metric accepts maps shaped ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` and works internally on
float64 ``(B, H, W)`` tensors. A single ``(H, W)`` map gives a 0-d result, a batch gives ``(B,)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sphsal.sphere import directions_to_pixels, solid_angle_weights

#: Floating-point epsilon of the MIT saliency benchmark (MATLAB's ``eps``), used by KLD and info gain.
EPS = 2.2204e-16

_REDUCTIONS = ("none", "mean")


def as_maps(x, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``(maps, single)``: ``maps`` is a float64 ``(B, H, W)`` view of ``x`` and ``single`` tells
    whether ``x`` was one ``(H, W)`` map. Raises ``ValueError`` naming ``name`` on a bad layout, NaN
    or inf."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.dim() == 2:
        maps, single = t.unsqueeze(0), True
    elif t.dim() == 3:
        maps, single = t, False
    elif t.dim() == 4 and t.shape[1] == 1:
        maps, single = t[:, 0], False
    else:
        raise ValueError(f"{name} must be shaped (H, W), (B, H, W) or (B, 1, H, W), got {tuple(t.shape)}")
    if maps.shape[-2] < 1 or maps.shape[-1] < 1 or maps.shape[0] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    maps = maps.to(torch.float64)
    check_finite(maps, name)
    return maps, single


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if ``t`` holds NaN or infinite values."""
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN values")
    if torch.isinf(t).any():
        raise ValueError(f"{name} contains infinite values")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` naming both arguments and shapes unless ``a`` and ``b`` have equal shapes
    (both in the canonical ``(B, H, W)`` layout). No resizing happens: see :func:`match_size`."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same (B, H, W) shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)} (resize explicitly with sphsal.metrics.match_size)"
        )


def resolve_weights(weights, h: int, w: int, device=None) -> torch.Tensor | None:
    """Pixel weights as a float64 ``(H, W)`` tensor, or ``None`` for uniform weights.

    ``weights`` is ``None`` (uniform), ``"sphere"`` (the solid angle of every ERP pixel, in steradians,
    from :func:`sphsal.sphere.solid_angle_weights`) or a non-negative tensor broadcastable to ``(H, W)``.
    Only ratios of weights matter: every metric normalises by the weight sums it uses.
    """
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights != "sphere":
            raise ValueError(f"weights must be None, 'sphere' or a tensor, got {weights!r}")
        return solid_angle_weights(h, w, dtype=torch.float64, device=device)
    t = weights if isinstance(weights, torch.Tensor) else torch.as_tensor(weights)
    try:
        t = torch.broadcast_to(t.to(dtype=torch.float64, device=device), (h, w))
    except RuntimeError as err:
        raise ValueError(
            f"weights of shape {tuple(t.shape)} do not broadcast to the map size ({h}, {w})"
        ) from err
    check_finite(t, "weights")
    if (t < 0).any():
        raise ValueError("weights must be non-negative")
    if not (t > 0).any():
        raise ValueError("weights are all zero")
    return t


def weighted_sum(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Sum over the last two dims of ``x`` ``(B, H, W)``, each pixel times its weight -> ``(B,)``."""
    if weights is None:
        return x.sum(dim=(-2, -1))
    return (x * weights).sum(dim=(-2, -1))


def weighted_mean(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Weighted mean ``sum(w x) / sum(w)`` over the last two dims of ``(B, H, W)`` -> ``(B,)``."""
    if weights is None:
        return x.mean(dim=(-2, -1))
    return weighted_sum(x, weights) / weights.sum()


def weighted_std(x: torch.Tensor, weights: torch.Tensor | None, mean: torch.Tensor) -> torch.Tensor:
    """Unbiased standard deviation of ``(B, H, W)`` maps around ``mean`` ``(B,)`` -> ``(B,)``.

    Unweighted: the sample std with ``N - 1``. Weighted (reliability weights ``w``):
    ``sqrt(sum(w (x - mean)^2) / (V1 - V2 / V1))`` with ``V1 = sum(w)`` and ``V2 = sum(w^2)``, which is the
    ``N - 1`` sample std again when all weights are equal.
    """
    sq = (x - mean[:, None, None]) ** 2
    if weights is None:
        return torch.sqrt(sq.sum(dim=(-2, -1)) / (x.shape[-2] * x.shape[-1] - 1))
    v1 = weights.sum()
    v2 = (weights**2).sum()
    return torch.sqrt(weighted_sum(sq, weights) / (v1 - v2 / v1))


def is_constant(x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: which of the ``(B, H, W)`` maps have a single value everywhere."""
    flat = x.flatten(1)
    return flat.amax(dim=1) == flat.amin(dim=1)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Rescale each ``(B, H, W)`` map to ``[0, 1]``; a constant map becomes all zeros."""
    flat = x.flatten(1)
    lo = flat.amin(dim=1)[:, None, None]
    span = flat.amax(dim=1)[:, None, None] - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1.0), torch.zeros_like(x))


def minmax_distribution(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Probability mass per pixel of min-max normalised maps (the SIM / info-gain normalisation).

    ``m = minmax(x)``, then ``p = w m / sum(w m)`` (``w = 1`` when unweighted), so ``p.sum() == 1``.
    A constant map is taken as the uniform distribution ``p = w / sum(w)``.
    """
    m = minmax(x)
    m = torch.where(is_constant(x)[:, None, None], torch.ones_like(m), m)
    mass = m if weights is None else m * weights
    return mass / mass.sum(dim=(-2, -1), keepdim=True)


def warn_nan(metric: str, bad: torch.Tensor, reason: str) -> None:
    """Warn (``RuntimeWarning``) that the maps flagged in ``bad`` ``(B,)`` score NaN because of ``reason``."""
    if bad.any():
        idx = torch.nonzero(bad).flatten().tolist()
        warnings.warn(f"{metric}: {reason} in map(s) {idx}; their score is NaN", RuntimeWarning, stacklevel=3)


def finish(values: torch.Tensor, single: bool, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` to per-map values ``(B,)``: ``"none"`` keeps ``(B,)`` (0-d for a single map),
    ``"mean"`` averages to a 0-d tensor (NaN scores propagate)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if reduction == "mean":
        return values.mean()
    return values[0] if single else values


def direction_pixel_index(directions, h: int, w: int, name: str = "directions") -> torch.Tensor:
    """Flat ERP pixel index ``row * W + col`` ``(N,)`` (int64) of directions ``(N, 2)`` = ``(az, el)`` in
    radians: the nearest pixel centre by :func:`sphsal.sphere.directions_to_pixels`, the column wrapped
    across the seam, the row clamped at the poles."""
    d = directions if isinstance(directions, torch.Tensor) else torch.as_tensor(directions)
    d = d.to(torch.float64)
    if d.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=d.device)
    if d.dim() != 2 or d.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) (azimuth, elevation) in radians, got shape {tuple(d.shape)}")
    check_finite(d, name)
    row, col = directions_to_pixels(d[:, 0], d[:, 1], h, w)
    row = torch.round(row).clamp(0, h - 1).to(torch.int64)
    col = torch.remainder(torch.round(col).to(torch.int64), w)
    return row * w + col


def _is_direction_list(fixations, batch: int, single: bool) -> bool:
    if isinstance(fixations, torch.Tensor):
        return False
    if not isinstance(fixations, Sequence) or len(fixations) != batch:
        return False
    first = fixations[0]
    shape = first.shape if hasattr(first, "shape") else None
    if shape is not None:
        return len(shape) == 2
    # A list of (az, el) pairs for a single map has scalar pairs as items.
    return not (single and len(first) == 2 and all(not isinstance(v, Sequence) for v in first))


def fixation_counts(fixations, like: torch.Tensor, name: str = "fixations") -> torch.Tensor:
    """Number of fixations on every pixel, float64 ``(B, H, W)`` shaped like ``like``.

    ``fixations`` is either a binary fixation map in any of the map layouts (every non-zero pixel counts
    as one fixation), or directions ``(az, el)`` in radians: an ``(N, 2)`` array for a single map, an
    ``(B, N, 2)`` tensor, or a list of ``B`` arrays ``(N_b, 2)``. Directions land on their nearest pixel
    (:func:`direction_pixel_index`); several fixations on one pixel all count.
    """
    batch, h, w = like.shape
    single = batch == 1
    if _is_direction_list(fixations, batch, single):
        per_map = list(fixations)
    else:
        t = fixations if isinstance(fixations, torch.Tensor) else torch.as_tensor(fixations)
        if t.dim() >= 2 and tuple(t.shape[-2:]) == (h, w):
            maps, _ = as_maps(t, name)
            check_same_shape(maps, like, name, "pred")
            return (maps != 0).to(torch.float64)
        if t.dim() == 2 and t.shape[-1] == 2 and single:
            per_map = [t]
        elif t.dim() == 3 and t.shape[-1] == 2 and t.shape[0] == batch:
            per_map = list(t)
        else:
            raise ValueError(
                f"{name} must be a fixation map shaped like pred {tuple(like.shape)} or (az, el) directions "
                f"((N, 2) per map), got shape {tuple(t.shape)}"
            )
    counts = torch.zeros(batch, h * w, dtype=torch.float64, device=like.device)
    for b, dirs in enumerate(per_map):
        idx = direction_pixel_index(dirs, h, w, f"{name}[{b}]").to(like.device)
        counts[b].index_add_(0, idx, torch.ones(idx.shape[0], dtype=torch.float64, device=like.device))
    return counts.view(batch, h, w)


def match_size(pred: torch.Tensor, target: torch.Tensor, *, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``pred`` (any map layout) to the ``(H, W)`` of ``target``, keeping ``pred``'s layout.

    The metrics never resize; call this explicitly when sizes differ. ``mode`` is a
    :func:`torch.nn.functional.interpolate` mode (``"bilinear"``, ``"bicubic"``, ``"nearest"``,
    ``"area"``). Negative values that bicubic overshoot may create are clamped to zero.
    """
    size = tuple(target.shape[-2:])
    if tuple(pred.shape[-2:]) == size:
        return pred
    if pred.dim() not in (2, 3, 4):
        raise ValueError(f"pred must be shaped (H, W), (B, H, W) or (B, 1, H, W), got {tuple(pred.shape)}")
    lead = pred.shape[:-2]
    x = pred.reshape(-1, 1, *pred.shape[-2:])
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(x, size=size, mode=mode, **align)
    if mode == "bicubic":
        out = out.clamp_min(0)
    return out.reshape(*lead, *size)


def prepare_pair(pred, target, weights, target_name: str = "target"):
    """Canonicalise a prediction and a continuous ground truth: returns ``(p, t, w, single)`` with ``p``
    and ``t`` float64 ``(B, H, W)`` of equal shape and ``w`` from :func:`resolve_weights`."""
    p, single = as_maps(pred, "pred")
    t, _ = as_maps(target, target_name)
    check_same_shape(p, t, "pred", target_name)
    return p, t, resolve_weights(weights, p.shape[-2], p.shape[-1], p.device), single


def prepare_fixations(pred, fixations, weights, name: str = "fixations"):
    """Canonicalise a prediction and its fixations: returns ``(p, counts, w, single)`` with ``counts``
    from :func:`fixation_counts` and ``w`` from :func:`resolve_weights`."""
    p, single = as_maps(pred, "pred")
    counts = fixation_counts(fixations, p, name)
    return p, counts, resolve_weights(weights, p.shape[-2], p.shape[-1], p.device), single
