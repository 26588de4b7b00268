import math

import librosa
import numpy as np
import pytest
import torch

from sphsal.audio.ambisonics import encode
from sphsal.audio.features import log_mel, log_mel_example_ends, mono_downmix, waveform_windows
from sphsal.audio.timing import frame_sample_positions

SR16 = 16000
FPS_VALUES = (24, 25, 30, 60)


def _clicks(seconds, times):
    x = np.zeros(int(seconds * SR16), dtype=np.float32)
    for t in times:
        x[int(t)] = 1.0
    return x


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_example_count(fps):
    x = np.random.default_rng(0).standard_normal(SR16 * 4).astype(np.float32)
    assert log_mel(x, SR16, fps).shape == (4 * fps, 64, 64)
    assert log_mel(x[:-1], SR16, fps).shape == (4 * fps - 1, 64, 64)  # one sample short of 4 s
    assert log_mel(x, SR16, fps, num_frames=7).shape == (7, 64, 64)


def test_selected_frames_match_the_full_result():
    x = np.random.default_rng(4).standard_normal(SR16 * 3).astype(np.float32)
    full = log_mel(x, SR16, 30)
    picked = [0, 45, 89, 46]
    torch.testing.assert_close(log_mel(x, SR16, 30, frames=picked), full[picked], rtol=0, atol=1e-5)
    assert log_mel(x, SR16, 30, frames=[]).shape == (0, 64, 64)
    with pytest.raises(ValueError, match="frames"):
        log_mel(x, SR16, 30, frames=[-1])


def test_example_count_after_resampling():
    x = np.zeros((4, 44100 * 3), dtype=np.float32)
    out = log_mel(x, 44100, 29.97)
    assert out.shape == (89, 64, 64) and out.dtype == torch.float32
    assert float(out.max()) == pytest.approx(math.log(0.01), abs=1e-4)  # silence -> log(0 + 0.01)


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_example_timing_has_no_drift_over_ten_minutes(fps):
    frames = 600 * fps
    ends = log_mel_example_ends(frames, fps)
    exact = frame_sample_positions(frames, SR16, fps, offset=1.0)  # round((k + 1) * 16000 / fps)
    error = ends - exact
    assert int(np.abs(error).max()) <= 80  # half a 10 ms hop, at the start and after ten minutes alike
    assert np.array_equal(error[:fps], error[-fps:])  # the pattern repeats every second: no drift
    if (SR16 // fps) % 160 == 0 and SR16 % fps == 0:
        assert np.array_equal(ends, exact)  # 25 fps: frame ends fall on the 10 ms grid


def _expected_click_row(example_end, click):
    """Row (0..63) whose 400-sample STFT frame is centred nearest the click."""
    return 63 - round((example_end - 200 - click) / 160)


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_click_alignment_at_the_end_of_a_ten_minute_signal(fps):
    frames = np.array([600 * fps - 2, 600 * fps - 1])
    ends = log_mel_example_ends(600 * fps, fps)[frames]
    clicks = [ends[0] - 3000, ends[1] - 700]
    out = log_mel(_clicks(600, clicks), SR16, fps, frames=frames)
    assert out.shape == (2, 64, 64)
    for example, end in zip(out, ends):
        energy = example.exp().sum(dim=1).numpy()
        expected = [_expected_click_row(end, c) for c in clicks if 0 <= _expected_click_row(end, c) <= 63]
        assert expected
        peaks = np.argsort(energy)[::-1][:len(expected)]
        for row in expected:
            assert np.abs(peaks - row).min() <= 1


def test_matches_a_direct_librosa_stft_of_one_example():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SR16 * 2).astype(np.float32)
    fps, k = 30, 17
    end = int(log_mel_example_ends(k + 1, fps)[k])
    start = end - 63 * 160 - 400
    # librosa centres the 400-sample window in each 512-sample frame: start 56 samples earlier.
    segment = np.zeros(63 * 160 + 512, dtype=np.float32)
    lo = start - 56
    segment[max(0, -lo):] = x[max(lo, 0):lo + segment.shape[0]]
    spec = np.abs(librosa.stft(segment, n_fft=512, hop_length=160, win_length=400, window="hann",
                               center=False))
    mel = librosa.filters.mel(sr=SR16, n_fft=512, n_mels=64, fmin=125, fmax=7500, htk=True, norm=None)
    reference = np.log(mel @ spec + 0.01).T
    np.testing.assert_allclose(log_mel(x, SR16, fps)[k].numpy(), reference, atol=2e-4, rtol=1e-4)


def test_tone_lands_in_its_mel_band():
    t = np.arange(48000 * 2) / 48000
    out = log_mel(np.sin(2 * math.pi * 1000 * t), 48000, 25)
    band = int(out[10:].mean(dim=(0, 1)).argmax())
    centres = librosa.mel_frequencies(66, fmin=125, fmax=7500, htk=True)[1:-1]
    assert band == int(np.argmin(np.abs(centres - 1000)))


def test_mono_downmix():
    s = np.random.default_rng(2).standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(mono_downmix(encode(s, 1.0, 0.5, order=2)), s)  # ambisonics: W
    stereo = np.stack([s, -s + 1])
    np.testing.assert_allclose(mono_downmix(stereo), np.full(100, 0.5), atol=1e-6)
    np.testing.assert_array_equal(mono_downmix(s), s)
    assert not np.shares_memory(mono_downmix(s), s)  # a new array, whatever the input
    with pytest.raises(ValueError, match="signal"):
        mono_downmix(np.zeros((2, 3, 4)))


def test_waveform_windows_are_centred_and_padded():
    rate, fps, length = 8000, 10, 1001
    x = np.zeros(rate * 2, dtype=np.float32)
    centres = frame_sample_positions(20, rate, fps, offset=0.5)
    x[centres[5]] = 1.0
    out = waveform_windows(x, rate, fps, length)
    assert out.shape == (20, length) and out.dtype == torch.float32
    assert int(out[5].abs().argmax()) == length // 2 and float(out[5].max()) == pytest.approx(1.0)
    # A window reaching before the signal start is zero-padded there.
    ones = waveform_windows(np.ones(rate, dtype=np.float32), rate, fps, 2 * length)
    assert float(ones[0, :length - centres[0] - 1].abs().max()) == 0.0
    assert waveform_windows(x, rate, fps, 64, num_frames=3).shape == (3, 64)
    with pytest.raises(ValueError, match="length"):
        waveform_windows(x, rate, fps, 0)


def test_frame_counts_are_checked_and_channelless_signals_rejected():
    x = np.zeros((4, 8000), dtype=np.float32)
    for frames in (-3, 2.7, True):
        with pytest.raises(ValueError, match="num_frames"):
            log_mel(x, 8000, 10, num_frames=frames)
        with pytest.raises(ValueError, match="num_frames"):
            waveform_windows(x, 8000, 10, 64, num_frames=frames)
    assert log_mel(x, 8000, 10, num_frames=2.0).shape == (2, 64, 64)
    with pytest.raises(ValueError, match="no channels"):
        mono_downmix(np.zeros((0, 100)))


def test_samples_by_channels_arrays_are_refused_not_read_as_silence():
    # A (samples, channels) array read as (channels, samples) is 48000 channels of 2 samples: it gave
    # no example at all (or, with num_frames, examples of pure silence) without a word.
    x = np.random.default_rng(3).standard_normal((48000, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\(48000, 2\).*transpose"):
        log_mel(x, 48000, 30)
    with pytest.raises(ValueError, match=r"\(48000, 4\).*transpose"):
        log_mel(np.ascontiguousarray(np.tile(x, 2)), 48000, 30, num_frames=30)
    with pytest.raises(ValueError, match="transpose"):
        waveform_windows(x, 48000, 30, 1000)
    with pytest.raises(ValueError, match="transpose"):
        mono_downmix(x)
    # The right way round it gives one example per frame.
    assert log_mel(x.T, 48000, 30).shape == (30, 64, 64)
