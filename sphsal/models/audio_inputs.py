"""Audio inputs of the baseline models from a collated batch (``audio`` ``(B, channels, S)`` covering
the clip's time span, ``sample_rate``, optionally ``fps``).

* :func:`clip_waveform`: SoundNet input (AViNet, STAViS): the clip's mono audio at 22,050 Hz, multiplied
  by a Hann window as long as the clip's audio and centred in a zero buffer of fixed length (70,560
  samples for AViNet's 32 frames, 35,280 for STAViS's 16: 3.2 s and 1.6 s, the clip at 10 fps).
* :func:`clip_mel_windows`: the visual-audio-face model's input: a log-mel spectrogram (librosa's
  defaults: 22,050 Hz, FFT 2048, hop 512, 128 bands; dB relative to the maximum, min-max scaled to
  ``[0, 255]``), one window of 20 hops (0.46 s) starting at each video frame, resized to an image.

Mono: ambisonic audio keeps its W channel, stereo is averaged (:func:`sphsal.audio.mono_downmix`).
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F

from sphsal.audio.features import mono_at_rate
from sphsal.models.inputs import batch_value, clip_fps, require_item_audio, require_keys

__all__ = ["clip_waveform", "clip_mel_windows", "MEL_HOP", "MEL_RATE"]

MEL_RATE = 22050
MEL_HOP = 512


def _mono(batch: dict, i: int, rate: int) -> np.ndarray:
    """Item ``i``'s audio as float32 mono at ``rate`` Hz (``ValueError`` naming the video of an item
    without audio, :func:`~sphsal.models.inputs.require_item_audio`)."""
    require_item_audio(batch, i, "its audio waveform")
    return mono_at_rate(batch["audio"][i].detach().float().cpu(), int(batch_value(batch, "sample_rate", i)),
                        rate)


def clip_waveform(batch: dict, length: int, sample_rate: int = 22050) -> torch.Tensor:
    """``(B, length)`` Hann-windowed clip audio centred in a zero buffer (module docstring); a clip
    longer than ``length`` keeps its central ``length`` samples (windowed over its whole length)."""
    require_keys(batch, ("audio", "sample_rate"), "the SoundNet waveform")
    out = torch.zeros(batch["audio"].shape[0], length)
    for i in range(out.shape[0]):
        mono = _mono(batch, i, sample_rate)
        wave = torch.from_numpy(mono * np.hanning(mono.size).astype(np.float32))
        if wave.numel() > length:
            start = (wave.numel() - length) // 2
            wave = wave[start:start + length]
        start = (length - wave.numel()) // 2
        out[i, start:start + wave.numel()] = wave
    return out.to(batch["audio"].device)


def clip_mel_windows(batch: dict, num_frames: int, windows: int, size: tuple[int, int],
                     hops: int = 20) -> torch.Tensor:
    """Log-mel windows of the clip's last ``windows`` frames: ``(B, 1, windows, h, w)`` in ``[0, 255]``.

    Window ``k`` spans ``hops`` spectrogram frames from the start of clip frame ``k`` (shifted inside
    the spectrogram near its end); the ``(128, hops)`` window is resized bilinearly to ``size``. The
    dB range is scaled per clip (the released code scaled per video).
    """
    require_keys(batch, ("audio", "sample_rate"), "the log-mel windows")
    if num_frames < windows:
        raise ValueError(f"the clip has {num_frames} frames; the audio needs the last {windows}")
    items = []
    for i in range(batch["audio"].shape[0]):
        fps = clip_fps(batch, i, num_frames)
        mono = _mono(batch, i, MEL_RATE)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=mono, sr=MEL_RATE, hop_length=MEL_HOP),
                                  ref=np.max)
        mel = torch.from_numpy(mel - mel.min()).float()
        mel = mel / mel.max().clamp_min(1e-12) * 255.0
        if mel.shape[1] < hops:
            mel = F.pad(mel, (0, hops - mel.shape[1]))
        starts = [min(int(k / fps * MEL_RATE / MEL_HOP), mel.shape[1] - hops)
                  for k in range(num_frames - windows, num_frames)]
        stack = torch.stack([mel[:, s:s + hops] for s in starts])  # (windows, 128, hops)
        resized = F.interpolate(stack[:, None], size=tuple(size), mode="bilinear", align_corners=False)
        items.append(resized[:, 0])
    return torch.stack(items)[:, None].to(batch["audio"].device)
