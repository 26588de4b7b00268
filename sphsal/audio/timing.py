"""Audio <-> video frame alignment on integer sample indices.

Video frame ``k`` covers ``[k / fps, (k + 1) / fps)`` seconds. Every position is computed directly from
``k`` as ``round(t * sample_rate)`` (half up), never by accumulating a hop, so nothing drifts over long
signals and non-integer ``sample_rate / fps`` ratios (44.1 kHz at 24 fps, 29.97 fps) stay exact to
half a sample.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["check_rates", "num_video_frames", "frame_sample_positions"]


def check_rates(sample_rate, fps) -> None:
    """Raise ``ValueError`` naming the argument when ``sample_rate`` or ``fps`` is not a positive number."""
    for name, value in (("sample_rate", sample_rate), ("fps", fps)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def num_video_frames(num_samples: int, sample_rate, fps) -> int:
    """``floor(duration * fps)``: the number of whole video frames in ``num_samples`` of audio.

    Computed with exact rational arithmetic (``Fraction(float)``), so a 10 s signal at 30 fps gives 300,
    never 299.
    """
    check_rates(sample_rate, fps)
    return math.floor(Fraction(int(num_samples)) * Fraction(fps) / Fraction(sample_rate))


def frame_sample_positions(frames, sample_rate, fps, offset: float = 0.0) -> np.ndarray:
    """Sample index ``round((k + offset) * sample_rate / fps)`` of video frames ``k``.

    ``frames`` is a count ``T`` (frames ``0 .. T-1``) or an array of frame indices. ``offset = 0`` gives
    frame starts, ``0.5`` centres, ``1`` ends. Returns int64 with one entry per frame.
    """
    check_rates(sample_rate, fps)
    k = np.arange(int(frames)) if np.ndim(frames) == 0 else np.asarray(frames)
    k = k.astype(np.float64)
    return np.floor((k + offset) * float(sample_rate) / float(fps) + 0.5).astype(np.int64)
