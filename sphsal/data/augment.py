"""Training augmentations of 360° batches that keep pictures, maps and spatial audio consistent.

Both move the frames ``(B, 3, T, H, W)``, the maps (:data:`MAP_KEYS`, ``(B, H, W)``: ground truth, the
U-Net's earlier map, MVVA's face map) and the audio ``(B, channels, samples)`` the same way, so that a
sound source stays on the object that makes it (inputs a model derives from these in its
``prepare_inputs``, such as AVS360's audio energy map, follow):

* :func:`mirror` reflects left-right: ERP column ``j`` <-> ``W - 1 - j``, i.e. azimuth ``az -> -az``
  (the front stays the front). Ambisonics (ACN, ``(N+1)^2 >= 4`` channels, any normalisation) negate
  their ``m < 0`` harmonics, which are odd in azimuth; stereo swaps its channels; mono is unchanged.
* :func:`rotate_yaw` turns the scene about the polar axis by whole ERP columns (exact: a column roll of
  the frames; maps of another width roll by the nearest whole number of their columns) and the
  ambisonics by the same angle (as :func:`sphsal.audio.ambisonics.rotate`); mono is unchanged, other
  audio cannot be rotated (``ValueError``). Only for ERP 360° data: a planar video has no other side
  to turn to.

:func:`augment_batch` draws them per item from a given generator (the trainer seeds one per step and
process, so a resumed run draws the same ones); :func:`check_audio_layout` tells before a run whether
the audio allows them.
"""

from __future__ import annotations

import math

import torch

from sphsal._checks import check_number
from sphsal.audio.ambisonics import rotate
from sphsal.audio.harmonics import acn_degrees, order_from_channels

__all__ = ["MAP_KEYS", "mirror", "rotate_yaw", "augment_batch", "check_audio_layout"]

#: Batch keys holding ``(B, H, W)`` ERP maps that move with the frames.
MAP_KEYS = ("saliency", "fixations", "prev_saliency", "face_map")


def check_audio_layout(channels: int, *, hflip: bool, random_yaw: bool) -> None:
    """``ValueError`` when audio of ``channels`` channels (0: none) cannot be mirrored (``hflip``) or
    turned (``random_yaw``): mirroring needs mono, stereo or ambisonics, turning mono or ambisonics."""
    ambisonic = (order_from_channels(channels) or 0) >= 1
    if hflip and channels > 2 and not ambisonic:
        raise ValueError(f"cannot mirror {channels}-channel audio: only mono, stereo and ambisonic (ACN, "
                         "(N+1)^2 channels) audio have a known left and right")
    if random_yaw and channels > 1 and not ambisonic:
        raise ValueError(f"cannot rotate {channels}-channel audio about the polar axis: only mono and "
                         "ambisonic (ACN, (N+1)^2 channels) audio can turn with the picture")


def _mirrored_audio(audio: torch.Tensor) -> torch.Tensor:
    """``(channels, samples)`` mirrored left-right (see the module docstring; layout checked)."""
    channels = audio.shape[0]
    if channels <= 1:
        return audio
    if channels == 2:
        return audio.flip(0)
    acn, degree = torch.arange(channels), acn_degrees(order_from_channels(channels))
    negative_m = acn - degree * degree - degree < 0
    sign = 1.0 - 2.0 * negative_m.to(audio.dtype)
    return audio * sign.to(audio.device)[:, None]


def _rotated_audio(audio: torch.Tensor, yaw: float) -> torch.Tensor:
    """``(channels, samples)`` ambisonics (or mono) rotated by ``yaw`` radians about the polar axis
    (layout checked)."""
    return audio if audio.shape[0] <= 1 else rotate(audio.cpu(), yaw=yaw).to(audio.device)


def _check_batch_audio(batch: dict, *, hflip: bool, random_yaw: bool) -> None:
    """:func:`check_audio_layout` of the batch's ``audio`` ``(B, channels, samples)``, if any."""
    audio = batch.get("audio")
    if isinstance(audio, torch.Tensor) and audio.dim() == 3:
        check_audio_layout(audio.shape[1], hflip=hflip, random_yaw=random_yaw)


def _each_item(batch: dict, which: list[int], picture_fn, audio_fn) -> dict:
    """A copy of ``batch`` whose items ``which`` have their frames and maps replaced by
    ``picture_fn(value, i)`` and their audio by ``audio_fn(audio, i)``."""
    out = dict(batch)
    if not which:
        return out
    for key in ("frames", *MAP_KEYS):
        if isinstance(batch.get(key), torch.Tensor):
            values = batch[key].clone()
            for i in which:
                values[i] = picture_fn(batch[key][i], i)
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
    _check_batch_audio(batch, hflip=True, random_yaw=False)
    return _each_item(batch, [int(i) for i in which], lambda x, _: x.flip(-1),
                      lambda a, _: _mirrored_audio(a))


def rotate_yaw(batch: dict, shifts) -> dict:
    """``batch`` with item ``i`` turned about the polar axis by ``shifts[i]`` whole columns of its frames
    (content moves left, as :func:`sphsal.sphere.rotate_equirect` with yaw ``2 pi shifts[i] / W``; maps
    of another width roll by the nearest whole number of their own columns); 0 leaves an item
    unchanged."""
    _check_batch_audio(batch, hflip=False, random_yaw=True)
    shifts = [int(s) for s in shifts]
    width = batch["frames"].shape[-1]
    yaw = [2.0 * math.pi * s / width for s in shifts]

    def turn(x, i):
        return torch.roll(x, -round(shifts[i] * x.shape[-1] / width), dims=-1)

    return _each_item(batch, [i for i, s in enumerate(shifts) if s % width], turn,
                      lambda a, i: _rotated_audio(a, yaw[i]))


def augment_batch(batch: dict, *, hflip: float = 0.0, random_yaw: bool = False,
                  generator: torch.Generator | None = None) -> dict:
    """``batch`` with each item mirrored with probability ``hflip`` (:func:`mirror`) and, with
    ``random_yaw``, turned by a uniformly drawn whole number of ERP columns (:func:`rotate_yaw`); draws
    from ``generator`` (default: torch's default generator). ``hflip`` in ``[0, 1]`` (``ValueError``
    otherwise), and so is audio that cannot be mirrored or turned, whatever is drawn."""
    hflip = check_number(hflip, "hflip", inclusive=True)
    if hflip > 1:
        raise ValueError(f"hflip must be a probability in [0, 1], got {hflip!r}")
    count, width = batch["frames"].shape[0], batch["frames"].shape[-1]
    _check_batch_audio(batch, hflip=hflip > 0, random_yaw=random_yaw)
    if hflip > 0:
        flips = torch.rand(count, generator=generator) < hflip
        batch = mirror(batch, flips.nonzero().flatten().tolist())
    if random_yaw:
        batch = rotate_yaw(batch, torch.randint(width, (count,), generator=generator).tolist())
    return batch
