from fractions import Fraction

import cv2
import numpy as np
import pytest
from data_fixtures import frame_number, frame_pattern, write_stavis_tree

from sphsal.data import audio_window, clip_indices, clip_span, create_dataset, slice_audio, time_to_sample


def test_clip_ending_at_t_repeats_the_first_frame():
    assert clip_indices(2, 5, 10) == [0, 0, 0, 1, 2]
    assert clip_indices(9, 3, 10) == [7, 8, 9]
    assert clip_indices(6, 3, 10, step=2) == [2, 4, 6]


def test_clip_centred_on_t_clamps_at_both_ends():
    assert clip_indices(5, 5, 10, mode="center") == [3, 4, 5, 6, 7]
    assert clip_indices(0, 4, 10, mode="center") == [0, 0, 0, 1]
    assert clip_indices(9, 4, 10, mode="center") == [7, 8, 9, 9]


def test_clip_arguments_are_checked():
    with pytest.raises(ValueError, match="mode"):
        clip_indices(0, 2, 4, mode="middle")
    with pytest.raises(IndexError):
        clip_indices(4, 2, 4)


@pytest.mark.parametrize("fps", [24, 25, 30, 60, Fraction(30000, 1001)])
@pytest.mark.parametrize("sample_rate", [16000, 44100, 48000])
def test_audio_windows_have_constant_length_and_no_drift(fps, sample_rate):
    lengths = set()
    for t in [0, 1, 7, 1000, 100_000]:
        t0, t1 = clip_span(t, 16, fps)
        s0, s1 = audio_window(t0, t1, sample_rate)
        lengths.add(s1 - s0)
        # The window starts exactly at the first clip frame's start sample, however far into the video.
        assert s0 == time_to_sample(Fraction(t - 15) / Fraction(fps), sample_rate)
        assert abs(s1 - time_to_sample(t1, sample_rate)) <= 1
    assert len(lengths) == 1


def test_slice_audio_pads_outside_the_signal_with_silence():
    audio = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_array_equal(slice_audio(audio, -2, 3), [[0, 0, 0, 1, 2]])
    np.testing.assert_array_equal(slice_audio(audio, 8, 12), [[8, 9, 0, 0]])


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_item_audio_is_frame_exact(tmp_path, fps):
    sample_rate, n_frames, clip_len = 44100, 12, 4
    clicks = [3, 6, 11]
    write_stavis_tree(str(tmp_path), fps, n_frames, sample_rate, clicks)
    ds = create_dataset("stavis", tmp_path, split="train", clip_len=clip_len)
    for item in ds:
        t = item["frame_index"]
        first = t - (clip_len - 1)
        audio = item["audio"][0].numpy()
        assert item["sample_rate"] == sample_rate
        assert audio.shape[0] == time_to_sample(Fraction(clip_len) / fps, sample_rate)
        expected = [time_to_sample(Fraction(k) / fps, sample_rate) - time_to_sample(Fraction(first) / fps,
                                                                                     sample_rate)
                    for k in clicks if first <= k <= t]
        assert np.flatnonzero(audio).tolist() == expected


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_mp4_item_frames_and_audio_are_frame_exact(tmp_path, fps):
    # One mp4 holding both streams (H.264 video, lossless ALAC audio), read through the folder adapter:
    # each item's clip shows the frames clip_indices names, and its audio window puts a click written at
    # the start of frame k at the exact sample offset of frame k within the clip.
    from sphsal.data.synthetic import _write_streams

    sample_rate, n_frames, clip_len, h, w = 44100, 12, 4, 32, 64
    clicks = [0, 3, 6, 11]
    audio = np.zeros((4, time_to_sample(Fraction(n_frames, fps), sample_rate)), dtype=np.float32)
    for k in clicks:
        audio[0, time_to_sample(Fraction(k, fps), sample_rate)] = 0.5
    (tmp_path / "videos").mkdir()
    frames = [frame_pattern(k, h, w) for k in range(n_frames)]
    _write_streams(str(tmp_path / "videos" / "v.mp4"), frames, fps, h, w, audio, sample_rate, "alac")
    (tmp_path / "saliency" / "v").mkdir(parents=True)
    for k in range(n_frames):
        cv2.imwrite(str(tmp_path / "saliency" / "v" / f"{k:04d}.png"), np.full((h, w), 9, np.uint8))
    ds = create_dataset("folder", tmp_path, clip_len=clip_len)
    assert len(ds) == n_frames
    for item in ds:
        t = item["frame_index"]
        first = t - (clip_len - 1)
        shown = [frame_number(item["frames"][:, k]) for k in range(clip_len)]
        assert shown == clip_indices(t, clip_len, n_frames)
        assert item["sample_rate"] == sample_rate
        track = item["audio"][0].numpy()
        assert track.shape[0] == time_to_sample(Fraction(clip_len, fps), sample_rate)
        start = time_to_sample(Fraction(first, fps), sample_rate)
        expected = [time_to_sample(Fraction(k, fps), sample_rate) - start for k in clicks if first <= k <= t]
        assert np.flatnonzero(np.abs(track) > 0.25).tolist() == expected


def test_audio_track_checks_its_own_duration_on_a_cache_hit(tmp_path):
    """Two tracks of one file share the decoded samples; each still checks that they cover its video."""
    from sphsal.audio import write_audio
    from sphsal.data.sources import AudioTrack

    path = str(tmp_path / "a.wav")
    write_audio(path, np.zeros((4, 8000), np.float32), 8000)
    assert AudioTrack(path, 1, 8).load()[0].shape == (4, 8000)
    track = AudioTrack(path, 1, 8)
    track.duration = Fraction(2)  # the probe passed; the decoded samples (cached) must be checked too
    with pytest.raises(ValueError, match="a.wav"):
        track.load()


def test_audio_track_of_a_container_that_declares_no_length_is_checked_when_decoded(tmp_path, monkeypatch):
    """A container without a declared duration probes as 0 samples: not "shorter than the video"."""
    import dataclasses

    import sphsal.audio
    from sphsal.audio import write_audio
    from sphsal.data.sources import AudioTrack

    path = str(tmp_path / "a.wav")
    write_audio(path, np.zeros((4, 8000), np.float32), 8000)
    probe = sphsal.audio.probe_audio
    monkeypatch.setattr(sphsal.audio, "probe_audio", lambda p: dataclasses.replace(probe(p), num_samples=0))
    assert AudioTrack(path, 1, 8).load()[0].shape == (4, 8000)
    with pytest.raises(ValueError, match="a.wav"):
        AudioTrack(path, 2, 8).load()  # the decoded samples still must cover the video
