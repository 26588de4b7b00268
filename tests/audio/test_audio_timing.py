from fractions import Fraction

import numpy as np
import pytest

from sphsal.audio.timing import check_num_frames, frame_sample_positions, num_video_frames


@pytest.mark.parametrize(("samples", "rate", "fps", "expected"), [
    (480000, 48000, 30, 300), (479999, 48000, 30, 299), (48000 * 600, 48000, 29.97, 17982),
    (48000 * 600, 48000, 30000 / 1001, 17982), (44100 * 10, 44100, 24, 240), (0, 16000, 25, 0),
])
def test_num_video_frames(samples, rate, fps, expected):
    assert num_video_frames(samples, rate, fps) == expected


@pytest.mark.parametrize(("rate", "fps"), [(48000, 29.97), (44100, 24), (16000, 60), (22050, 30000 / 1001)])
def test_positions_are_exact_rounding_without_drift(rate, fps):
    frames = 600 * 60
    fps_exact = Fraction(fps).limit_denominator(1_000_000)
    for offset in (0.0, 0.5, 1.0):
        got = frame_sample_positions(frames, rate, fps, offset)
        k = np.array([0, 1, 2, frames // 2, frames - 2, frames - 1])
        exact = [int((Fraction(int(i)) + Fraction(offset)) * rate / fps_exact + Fraction(1, 2)) for i in k]
        assert got[k].tolist() == exact
        np.testing.assert_array_equal(frame_sample_positions(k, rate, fps, offset), got[k])


def test_bad_rates():
    with pytest.raises(ValueError, match="fps"):
        num_video_frames(10, 48000, -1)
    with pytest.raises(ValueError, match="sample_rate"):
        frame_sample_positions(3, float("nan"), 30)
    assert frame_sample_positions([1.0, 2.0], 48000, 30).tolist() == [1600, 3200]
    for frames in ([2.5], [True, False], [float("nan")]):  # 2.5 was read as frame 2
        with pytest.raises(ValueError, match="whole frame indices"):
            frame_sample_positions(frames, 48000, 30)


def test_check_num_frames():
    assert check_num_frames(None) is None and check_num_frames(3.0) == 3
    assert check_num_frames(np.int64(0)) == 0
    for bad in (-1, 2.7, True, float("nan"), "3"):
        with pytest.raises(ValueError, match="num_frames must be None or an integer >= 0"):
            check_num_frames(bad)
