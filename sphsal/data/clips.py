"""Clip sampling: which frames make the clip of target frame ``t``, and which audio samples go with it.

Time convention (DESIGN.md): video frame ``k`` at ``fps`` covers ``[k / fps, (k + 1) / fps)``. All
times are exact fractions, so sample positions never drift however long the video is: the audio sample
that starts frame ``k`` is ``round(k * sample_rate / fps)`` (halves round up) at every frame rate.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["clip_indices", "clip_span", "time_to_sample", "audio_window", "slice_audio"]

CLIP_MODES = ("end", "center")


def clip_indices(t: int, length: int, num_frames: int, mode: str = "end", step: int = 1) -> list[int]:
    """Frame indices of the clip of target frame ``t``.

    Args:
        t: target frame index in ``[0, num_frames)``.
        length: number of frames ``T`` in the clip.
        num_frames: number of frames of the video.
        mode: ``"end"``: the clip ends at ``t`` (causal, as AVS360/ViNet use it), frames before 0 repeat
            frame 0; ``"center"``: ``t`` is the middle frame (index ``T // 2``) as in STAViS, indices out
            of range are clamped to the first/last frame.
        step: spacing between clip frames (in frames).

    Returns:
        ``T`` frame indices, increasing (with repeats at the borders).
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"mode must be one of {CLIP_MODES}, got {mode!r}")
    if length < 1 or step < 1:
        raise ValueError(f"length and step must be >= 1, got length={length}, step={step}")
    if not 0 <= t < num_frames:
        raise IndexError(f"target frame {t} out of range [0, {num_frames})")
    first = t - (length - 1) * step if mode == "end" else t - (length // 2) * step
    return [min(max(first + k * step, 0), num_frames - 1) for k in range(length)]


def clip_span(t: int, length: int, fps, mode: str = "end", step: int = 1) -> tuple[Fraction, Fraction]:
    """Time span ``[t0, t1)`` in seconds (exact fractions) covered by the clip of target frame ``t``.

    It runs from the start of the clip's first (unclamped) frame to the end of its last one, so it has
    the same length ``T * step / fps`` for every ``t``; it may start before 0 for early frames.
    """
    fps = Fraction(fps)
    first = t - (length - 1) * step if mode == "end" else t - (length // 2) * step
    last = first + (length - 1) * step
    return Fraction(first) / fps, Fraction(last + 1) / fps


def time_to_sample(seconds, sample_rate: int) -> int:
    """Index of the audio sample at time ``seconds`` (exact): ``floor(seconds * sample_rate + 1/2)``."""
    return math.floor(Fraction(seconds) * int(sample_rate) + Fraction(1, 2))


def audio_window(t0, t1, sample_rate: int) -> tuple[int, int]:
    """Sample range ``[s0, s1)`` of the time span ``[t0, t1)``.

    ``s0 = round(t0 * sample_rate)`` and the length is ``round((t1 - t0) * sample_rate)``, so every clip
    of a dataset gets the same number of samples (batches stack) and ``s1`` differs from
    ``round(t1 * sample_rate)`` by at most one sample.
    """
    s0 = time_to_sample(t0, sample_rate)
    return s0, s0 + time_to_sample(Fraction(t1) - Fraction(t0), sample_rate)


def slice_audio(audio: np.ndarray, s0: int, s1: int) -> np.ndarray:
    """Samples ``[s0, s1)`` of ``audio`` ``(channels, samples)``; positions outside the signal are
    silence (zeros), e.g. before the start of the video. Returns a new ``(channels, s1 - s0)`` array."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
    out = np.zeros((audio.shape[0], s1 - s0), dtype=audio.dtype)
    lo, hi = max(s0, 0), min(s1, audio.shape[1])
    if hi > lo:
        out[:, lo - s0:hi - s0] = audio[:, lo:hi]
    return out
