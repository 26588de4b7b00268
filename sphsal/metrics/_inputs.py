"""Input handling shared by the saliency metrics: map layouts, pixel weights, fixations, reductions.

Every metric accepts maps shaped ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)``, seen internally as
``(B, H, W)`` tensors kept in their own float dtype (float32 or float64; other dtypes become float64;
every sum is accumulated in float64). A single ``(H, W)`` map gives a 0-d result, a batch gives ``(B,)``.
Fixations are kept sparse: per map the flat indices of the fixated pixels and how many fixations each got.
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sphsal._checks import check_integer
from sphsal.metrics import _kernels
from sphsal.sphere import directions_to_pixels, resize_equirect, solid_angle_weights

_REDUCTIONS = ("none", "mean")
_LIST_CAPACITY = 256  # fixated pixels per map that the first pass of _cpu_lists keeps
_POLE_TOLERANCE = 1e-6  # radians beyond a pole still taken as the pole (float32 rounding of pi/2)


def as_maps(x, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``(maps, single)``: ``maps`` is a ``(B, H, W)`` view of ``x`` (float32 or float64) and
    ``single`` tells whether ``x`` was one ``(H, W)`` map. Raises ``ValueError`` naming ``name`` on a bad
    layout. Finiteness is checked later, by the pass that reads the values (see ``_reductions``)."""
    maps, single = _as_batch(x, name)
    if maps.dtype not in (torch.float32, torch.float64):
        maps = maps.to(torch.float64)
    return maps, single


def _as_batch(x, name: str) -> tuple[torch.Tensor, bool]:
    """``(B, H, W)`` view of a map in any layout, any dtype, and whether it was a single map."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.dim() == 2:
        maps, single = t.unsqueeze(0), True
    elif t.dim() == 3:
        maps, single = t, False
    elif t.dim() == 4 and t.shape[1] == 1:
        maps, single = t[:, 0], False
    else:
        raise ValueError(f"{name} must be shaped (H, W), (B, H, W) or (B, 1, H, W), got {tuple(t.shape)}")
    if min(maps.shape) < 1:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    return maps, single


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if ``t`` holds NaN or infinite values."""
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN values")
    if torch.isinf(t).any():
        raise ValueError(f"{name} contains infinite values")


def check_same_shape(shape_a, shape_b, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` naming both arguments and shapes unless the canonical ``(B, H, W)`` shapes
    are equal. No resizing happens: see :func:`match_size`."""
    if tuple(shape_a) != tuple(shape_b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same (B, H, W) shape, got {tuple(shape_a)} and "
            f"{tuple(shape_b)} (resize explicitly with sphsal.metrics.match_size)"
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
        return _sphere_weights(h, w, str(torch.device(device or "cpu")))
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


@functools.lru_cache(maxsize=8)
def _sphere_weights(h: int, w: int, device: str) -> torch.Tensor:
    """:func:`sphsal.sphere.solid_angle_weights` in float64, cached per size and device (the metrics only
    read it)."""
    return solid_angle_weights(h, w, dtype=torch.float64, device=device)


def warn_nan(metric: str, bad: torch.Tensor, reason: str) -> None:
    """Warn (``RuntimeWarning``) that the maps flagged in ``bad`` ``(B,)`` score NaN because of ``reason``."""
    if bad.any():
        idx = torch.nonzero(bad).flatten().tolist()
        warnings.warn(f"{metric}: {reason} in map(s) {idx}; their score is NaN", RuntimeWarning, stacklevel=3)


def finish(values: torch.Tensor, single: bool, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` to per-map values ``(B,)``: ``"none"`` keeps ``(B,)`` (0-d for a single map),
    ``"mean"`` averages to a 0-d tensor (NaN scores propagate)."""
    if reduction == "mean":
        return values.mean()
    return values[0] if single else values


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def check_directions(directions, name: str = "directions") -> torch.Tensor:
    """Fixation directions ``(N, 2)`` = ``(az, el)`` in radians as a float64 tensor (``(0, 2)`` when
    empty), checked: ``ValueError`` naming ``name`` for another shape, NaN or infinite values, or an
    elevation outside ``[-pi/2, pi/2]`` (beyond a ``1e-6`` rad tolerance, which admits float32 roundings
    of the poles; a larger one is no elevation in radians: degrees given by mistake?). Any finite
    azimuth is accepted and wraps modulo ``2pi`` (``(-pi, pi]``, ``[0, 2pi)`` and whole turns beyond
    give the same direction)."""
    try:
        d = directions if isinstance(directions, torch.Tensor) else torch.as_tensor(np.asarray(directions))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"{name} must be (N, 2) (azimuth, elevation) in radians, got {directions!r}") from None
    d = d.to(torch.float64)
    if d.numel() == 0:
        return d.new_zeros(0, 2)
    if d.dim() != 2 or d.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) (azimuth, elevation) in radians, got shape {tuple(d.shape)}")
    check_finite(d, name)
    if bool((d[:, 1].abs() > math.pi / 2 + _POLE_TOLERANCE).any()):
        raise ValueError(f"{name} has elevations outside [-pi/2, pi/2] radians (largest |el| "
                         f"{float(d[:, 1].abs().max()):.4g}): give (azimuth, elevation) in radians")
    return d


def direction_pixel_index(directions, h: int, w: int, name: str = "directions") -> torch.Tensor:
    """Flat ERP pixel index ``row * W + col`` ``(N,)`` (int64) of directions ``(N, 2)`` = ``(az, el)`` in
    radians (checked by :func:`check_directions`): the nearest pixel centre by
    :func:`sphsal.sphere.directions_to_pixels`, the column wrapped across the seam, the row clamped at
    the poles."""
    d = check_directions(directions, name)
    if d.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=d.device)
    row, col = directions_to_pixels(d[:, 0], d[:, 1], h, w)
    row = torch.round(row).clamp(0, h - 1).to(torch.int64)
    col = torch.remainder(torch.round(col).to(torch.int64), w)
    return row * w + col


def _is_direction_list(fixations, batch: int) -> bool:
    if isinstance(fixations, torch.Tensor) or not isinstance(fixations, Sequence) or len(fixations) != batch:
        return False
    first = fixations[0]
    if hasattr(first, "shape"):
        return len(first.shape) == 2
    # A plain list of (az, el) pairs for a single map has pairs of numbers as items.
    return not (batch == 1 and len(first) == 2 and all(not isinstance(v, Sequence) for v in first))


def fixation_lists(fixations, shape: tuple[int, int, int], device=None,
                   name: str = "fixations") -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse fixations of ``B`` maps of size ``H x W``: ``(idx, count)``, both ``(B, K)``.

    ``idx`` (int64) holds the flat indices of the fixated pixels of each map, ``count`` (float64) how
    many fixations each got; rows are padded to the largest number ``K >= 1`` of fixated pixels with
    ``count = 0``. ``fixations`` is either a binary fixation map in any map layout (every non-zero pixel
    is one fixation), or directions ``(az, el)`` in radians: an ``(N, 2)`` array for a single map, a
    ``(B, N, 2)`` tensor, or a list of ``B`` arrays ``(N_b, 2)``. A direction counts on its nearest pixel
    (:func:`direction_pixel_index`); several fixations on one pixel all count.
    """
    batch, h, w = shape
    if _is_direction_list(fixations, batch):
        per_map = list(fixations)
    else:
        t = _fixations_tensor(fixations, batch, name)
        if t.dim() >= 2 and tuple(t.shape[-2:]) == (h, w):
            maps, _ = _as_batch(t, name)
            check_same_shape(maps.shape, shape, name, "pred")
            if maps.is_floating_point():
                check_finite(maps, name)
            nonzero = (maps if maps.dtype == torch.bool else maps != 0).reshape(batch, h * w)
            if nonzero.device.type == "cpu" and sys.byteorder == "little":
                return _cpu_lists(nonzero, device)
            b_idx, flat = torch.nonzero(nonzero, as_tuple=True)
            return _pad_lists(b_idx.to(device), flat.to(device), None, batch)
        if t.dim() == 2 and t.shape[-1] == 2 and batch == 1:
            per_map = [t]
        elif t.dim() == 3 and t.shape[-1] == 2 and t.shape[0] == batch:
            per_map = list(t)
        else:
            raise ValueError(
                f"{name} must be a fixation map shaped like pred {shape} or (az, el) directions "
                f"((N, 2) per map), got shape {tuple(t.shape)}"
            )
    flats = [direction_pixel_index(d, h, w, f"{name}[{b}]").to(device) for b, d in enumerate(per_map)]
    keys = torch.cat([b * h * w + f for b, f in enumerate(flats)])
    uniq, cnt = torch.unique(keys, return_counts=True)
    return _pad_lists(uniq // (h * w), uniq % (h * w), cnt.to(torch.float64), batch)


def _fixations_tensor(fixations, batch: int, name: str) -> torch.Tensor:
    """``fixations`` (not a list of per-map direction arrays for ``batch`` maps) as one tensor;
    ``ValueError`` naming ``name`` for a list of per-map arrays of another length, or ragged input."""
    if isinstance(fixations, torch.Tensor):
        return fixations
    if (isinstance(fixations, Sequence) and len(fixations) > 0
            and all(len(getattr(f, "shape", ())) == 2 for f in fixations)):
        raise ValueError(f"{name} is a list of {len(fixations)} per-map arrays, but pred has {batch} "
                         "map(s): give one entry per map")
    try:
        return torch.as_tensor(fixations)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a fixation map shaped like pred or (az, el) directions "
                         f"((N, 2) per map): {err}") from None


def _cpu_lists(nonzero: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fixation_lists` of a CPU ``(B, N)`` bool mask with a numba kernel (one parallel pass that
    reads the mask eight bytes at a time, a second one only if a map has more than ``_LIST_CAPACITY``
    fixated pixels; the same result as ``torch.nonzero``)."""
    mask = nonzero.contiguous().numpy()
    if mask.shape[1] % 8:
        mask = np.pad(mask, ((0, 0), (0, 8 - mask.shape[1] % 8)))
    words = mask.view(np.uint64)
    counts = np.zeros(mask.shape[0], dtype=np.int64)
    idx = np.zeros((mask.shape[0], _LIST_CAPACITY), dtype=np.int64)
    _kernels.nonzero_lists(words, idx, counts)
    k = max(1, int(counts.max()))
    if k > _LIST_CAPACITY:
        idx = np.zeros((mask.shape[0], k), dtype=np.int64)
        _kernels.nonzero_lists(words, idx, counts)
    idx = np.ascontiguousarray(idx[:, :k])
    count = (np.arange(idx.shape[1]) < counts[:, None]).astype(np.float64)
    return torch.from_numpy(idx).to(device), torch.from_numpy(count).to(device)


def _pad_lists(b_idx: torch.Tensor, flat: torch.Tensor, cnt: torch.Tensor | None,
               batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (map, pixel, count) triples sorted by map into ``(B, K)`` index and count tensors."""
    per_map = torch.bincount(b_idx, minlength=batch)
    k = max(1, int(per_map.max())) if b_idx.numel() else 1
    start = torch.cumsum(per_map, 0) - per_map
    slot = torch.arange(b_idx.numel(), device=b_idx.device) - start[b_idx]
    idx = torch.zeros(batch, k, dtype=torch.int64, device=b_idx.device)
    count = torch.zeros(batch, k, dtype=torch.float64, device=b_idx.device)
    idx[b_idx, slot] = flat
    count[b_idx, slot] = 1.0 if cnt is None else cnt
    return idx, count


def match_size(pred: torch.Tensor, target: torch.Tensor, *, mode: str = "bilinear",
               erp: bool = False) -> torch.Tensor:
    """Resize ``pred`` (any map layout) to the ``(H, W)`` of ``target``, keeping ``pred``'s layout.

    The metrics never resize; call this explicitly when sizes differ. ``mode`` is a
    :func:`torch.nn.functional.interpolate` mode (``"bilinear"``, ``"bicubic"``, ``"nearest"``,
    ``"area"``). Bicubic overshoot is clamped: every resized map stays within the ``[min, max]`` range
    of its source map (so a non-negative map stays non-negative, and an all-negative one keeps its
    values). ``erp=True`` (ERP maps, even width; ``"bilinear"`` or ``"nearest"``): pixels next to the
    +-180 deg seam and the poles interpolate across them (:func:`sphsal.sphere.resize_equirect`)
    instead of clamping at the image border.
    """
    size = tuple(target.shape[-2:])
    if tuple(pred.shape[-2:]) == size:
        return pred
    if pred.dim() not in (2, 3, 4):
        raise ValueError(f"pred must be shaped (H, W), (B, H, W) or (B, 1, H, W), got {tuple(pred.shape)}")
    if erp and mode not in ("bilinear", "nearest"):
        raise ValueError(f"match_size(erp=True) resizes with mode 'bilinear' or 'nearest', got {mode!r}")
    lead = pred.shape[:-2]
    x = pred.reshape(-1, 1, *pred.shape[-2:])
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if erp:
        return resize_equirect(x, size, mode=mode).reshape(*lead, *size)
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(x, size=size, mode=mode, **align)
    if mode == "bicubic":
        lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
        out = torch.minimum(torch.maximum(out, lo), hi)
    return out.reshape(*lead, *size)


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as a Python ``int`` for ``numpy.random.default_rng``: a non-negative integer (Python or
    NumPy; not bool), else ``ValueError`` naming ``name``."""
    return check_integer(seed, name, minimum=0)
