"""Audio <-> video frame alignment on integer sample indices.

Video frame ``k`` covers ``[k / fps, (k + 1) / fps)`` seconds. Every position is computed directly from
``k`` as ``round(t * sample_rate)`` (half up), never by accumulating a hop, so nothing drifts over long
signals. Rates are taken as exact fractions (a float rate is read as the nearest fraction with a
denominator up to 10^6, so 29.97 is 2997/100 and 30000/1001 stays 30000/1001) and positions are computed
in integer arithmetic: exact for any signal length.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from sphsal._checks import check_integer, check_number

__all__ = ["check_rates", "check_num_frames", "num_video_frames", "frame_sample_positions"]


def check_rates(sample_rate, fps) -> None:
    """Raise ``ValueError`` naming the argument when ``sample_rate`` or ``fps`` is not a positive number."""
    check_number(sample_rate, "sample_rate")
    check_number(fps, "fps")


def check_num_frames(num_frames) -> int | None:
    """``num_frames`` as an int (``None`` stays ``None``); ``ValueError`` naming the argument unless it is
    a non-negative integer (``2.0`` is accepted, ``2.7``, ``-3``, ``True`` and NaN are not)."""
    return check_integer(num_frames, "num_frames", minimum=0, optional=True, whole_floats=True)


def _rational(value) -> Fraction:
    return Fraction(value).limit_denominator(1_000_000)


def num_video_frames(num_samples: int, sample_rate, fps) -> int:
    """``floor(duration * fps)``: the number of whole video frames in ``num_samples`` of audio.

    Exact rational arithmetic: 10 s at 30 fps gives 300 (never 299), 10 minutes at 29.97 fps 17982.
    """
    check_rates(sample_rate, fps)
    return math.floor(int(num_samples) * _rational(fps) / _rational(sample_rate))


def frame_sample_positions(frames, sample_rate, fps, offset: float = 0.0) -> np.ndarray:
    """Sample index ``round((k + offset) * sample_rate / fps)`` of video frames ``k``.

    ``frames`` is a count ``T`` (frames ``0 .. T-1``) or an array of whole frame indices (``ValueError``
    for other values). ``offset = 0`` gives frame starts, ``0.5`` centres, ``1`` ends. Returns int64 with
    one entry per frame.
    """
    check_rates(sample_rate, fps)
    k = np.arange(int(frames)) if np.ndim(frames) == 0 else np.asarray(frames)
    if not np.issubdtype(k.dtype, np.number) or not np.array_equal(k, np.round(k)):  # 2.5 became frame 2
        raise ValueError(f"frames must be a count or whole frame indices, got {frames!r}")
    k = k.astype(np.int64)
    ratio = _rational(sample_rate) / _rational(fps)
    shift = _rational(offset)
    # round((k + a/d) * p/q) = floor((2 (k d + a) p + d q) / (2 d q)), all in int64.
    p, q, a, d = ratio.numerator, ratio.denominator, shift.numerator, shift.denominator
    return (2 * (k * d + a) * p + d * q) // (2 * d * q)
