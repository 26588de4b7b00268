"""Training augmentations of 360° batches that keep pictures, maps and spatial audio consistent.

Both move everything an item holds the same way: the frames ``(B, 3, T, H, W)``, the ground-truth maps
(``saliency``, ``fixations``, ``prev_saliency``, ``(B, H, W)``) and the audio ``(B, channels,
samples)``, so that a sound source stays on the object that makes it:

* :func:`mirror` reflects left-right: ERP column ``j`` <-> ``W - 1 - j``, i.e. azimuth ``az -> -az``
  (the front stays the front). Ambisonics (ACN, ``(N+1)^2 >= 4`` channels, any normalisation) negate
  their ``m < 0`` harmonics, which are odd in azimuth; stereo swaps its channels; mono is unchanged.
* :func:`rotate_yaw` turns the scene about the polar axis by whole ERP columns (exact: a column roll of
  the pictures, :func:`sphsal.sphere.rotate_equirect`) and the ambisonics by the same angle
  (:func:`sphsal.audio.ambisonics.rotate`); mono is unchanged, other audio cannot be rotated
  (``ValueError``). Only for ERP 360° data: a planar video has no other side to turn to.

:func:`augment_batch` draws them per item from torch's default generator, so a training run that
restores its RNG state on resume draws the same ones.
"""

from __future__ import annotations

import math

import torch

from sphsal._checks import check_number
from sphsal.audio.ambisonics import sh_rotation_matrix
from sphsal.sphere import rotate_equirect

__all__ = ["MAP_KEYS", "mirror", "rotate_yaw", "augment_batch"]

#: Batch keys holding ``(B, H, W)`` ERP maps that move with the frames.
MAP_KEYS = ("saliency", "fixations", "prev_saliency")


def _ambisonic_order(channels: int) -> int | None:
    """``N`` when ``channels == (N+1)^2`` with ``N >= 1``, else None."""
    order = math.isqrt(channels) - 1
    return order if order >= 1 and (order + 1) ** 2 == channels else None


def _mirrored_audio(audio: torch.Tensor) -> torch.Tensor:
    """``(channels, samples)`` mirrored left-right (see the module docstring)."""
    channels = audio.shape[0]
    if channels <= 1:
        return audio
    if channels == 2:
        return audio.flip(0)
    if _ambisonic_order(channels) is None:
        raise ValueError(f"cannot mirror {channels}-channel audio: only mono, stereo and ambisonic "
                         "(ACN, (N+1)^2 channels) audio have a known left and right")
    acn = torch.arange(channels)
    degree = torch.sqrt(acn.double()).floor().long()
    negative_m = acn - degree * degree - degree < 0
    sign = 1.0 - 2.0 * negative_m.to(audio.dtype)
    return audio * sign.to(audio.device)[:, None]


def _rotated_audio(audio: torch.Tensor, yaw: float) -> torch.Tensor:
    """``(channels, samples)`` ambisonics rotated by ``yaw`` radians about the polar axis."""
    channels = audio.shape[0]
    if channels <= 1:
        return audio
    order = _ambisonic_order(channels)
    if order is None:
        raise ValueError(f"cannot rotate {channels}-channel audio about the polar axis: only mono and "
                         "ambisonic (ACN, (N+1)^2 channels) audio can turn with the picture")
    matrix = sh_rotation_matrix(order, yaw=yaw).to(audio.device)
    return (matrix @ audio.double()).to(audio.dtype)


def _each_item(batch: dict, which: list[int], picture_fn, audio_fn) -> dict:
    """A copy of ``batch`` whose items ``which`` have their frames and maps replaced by
    ``picture_fn(key, value, i)`` and their audio by ``audio_fn(audio, i)``."""
    out = dict(batch)
    if not which:
        return out
    for key in ("frames", *MAP_KEYS):
        if isinstance(batch.get(key), torch.Tensor):
            values = batch[key].clone()
            for i in which:
                values[i] = picture_fn(key, batch[key][i], i)
            out[key] = values
    audio = batch.get("audio")
    if isinstance(audio, torch.Tensor) and audio.dim() == 3 and audio.shape[1] > 0:
        values = audio.clone()
        for i in which:
            values[i] = audio_fn(audio[i], i)
        out["audio"] = values
    return out


def mirror(batch: dict, which) -> dict:
    """``batch`` with the items ``which`` (indices) mirrored left-right; other items and keys unchanged
    (a new dict; the given tensors are not modified)."""
    return _each_item(batch, [int(i) for i in which], lambda _, x, __: x.flip(-1),
                      lambda a, _: _mirrored_audio(a))


def rotate_yaw(batch: dict, shifts) -> dict:
    """``batch`` with item ``i`` turned about the polar axis by ``shifts[i]`` whole columns of its frames
    (content moves left, as :func:`sphsal.sphere.rotate_equirect` with yaw ``2 pi shifts[i] / W``; maps
    of another width are resampled, fixations to the nearest pixel); 0 leaves an item unchanged."""
    shifts = [int(s) for s in shifts]
    width = batch["frames"].shape[-1]
    yaw = [2.0 * math.pi * s / width for s in shifts]

    def turn(key, x, i):
        return rotate_equirect(x, yaw=yaw[i], mode="nearest" if key == "fixations" else "bilinear")

    return _each_item(batch, [i for i, s in enumerate(shifts) if s % width], turn,
                      lambda a, i: _rotated_audio(a, yaw[i]))


def augment_batch(batch: dict, *, hflip: float = 0.0, random_yaw: bool = False,
                  generator: torch.Generator | None = None) -> dict:
    """``batch`` with each item mirrored with probability ``hflip`` (:func:`mirror`) and, with
    ``random_yaw``, turned by a uniformly drawn whole number of ERP columns (:func:`rotate_yaw`); draws
    from ``generator`` (default: torch's default generator). ``hflip`` in ``[0, 1]`` (``ValueError``
    otherwise)."""
    hflip = check_number(hflip, "hflip", inclusive=True)
    if hflip > 1:
        raise ValueError(f"hflip must be a probability in [0, 1], got {hflip!r}")
    count, width = batch["frames"].shape[0], batch["frames"].shape[-1]
    if hflip > 0:
        flips = torch.rand(count, generator=generator) < hflip
        batch = mirror(batch, flips.nonzero().flatten().tolist())
    if random_yaw:
        batch = rotate_yaw(batch, torch.randint(width, (count,), generator=generator).tolist())
    return batch
