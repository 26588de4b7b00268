"""Audio features per video frame: VGGish-style log-mel examples and Hann-windowed waveform windows.

Mono downmix (:func:`mono_downmix`): ambisonic input (``(N+1)^2 >= 4`` channels, ACN) keeps its
omnidirectional W channel (channel 0), which is what an omni microphone at the camera would record;
other multi-channel input (stereo) is averaged over channels.

Log-mel (AVS360 / VGGish parameters): 16 kHz mono, 25 ms (400-sample) periodic Hann frames every 10 ms
(160 samples), FFT 512, magnitude spectrum, 64 mel bands 125-7500 Hz (librosa's HTK-scale filters,
without area normalisation), ``log(mel + 0.01)``. The spectrogram of the whole signal is computed once;
example ``k`` (for video frame ``k``) is the 64 consecutive STFT frames (0.64 s hop span, 0.655 s of
audio) whose last frame ENDS at the end of frame ``k``'s interval, ``(k + 1) / fps``: the features of a
frame use only audio up to that frame (causal, like AVS360's clips that end at the current frame).
Examples are slices of one STFT with a 10 ms hop, so each example's end is the STFT frame boundary
nearest to ``(k + 1) / fps``: within 5 ms (half a hop), computed from ``k`` directly, so there is no
drift over long signals. Audio before the start and after the end of the signal counts as silence.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import scipy.signal
import torch

from sphsal._checks import check_integer
from sphsal.audio._signal import as_signal
from sphsal.audio.harmonics import order_from_channels
from sphsal.audio.timing import check_num_frames, check_rates, frame_sample_positions, num_video_frames

__all__ = [
    "VGGISH_SAMPLE_RATE",
    "mono_downmix",
    "log_mel_spectrogram",
    "log_mel_example_ends",
    "log_mel",
    "waveform_windows",
]

VGGISH_SAMPLE_RATE = 16000
STFT_WINDOW = 400  # 25 ms at 16 kHz
STFT_HOP = 160  # 10 ms
FFT_SIZE = 512
MEL_BANDS = 64
MEL_FMIN, MEL_FMAX = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 64  # 0.64 s of hops
# Zeros prepended so the first example (which may start before the signal) has whole STFT frames.
_LEAD = (EXAMPLE_FRAMES - 1) * STFT_HOP + STFT_WINDOW


def mono_downmix(signal) -> np.ndarray:
    """``(samples,)`` float32 mono version of ``(samples,)`` or ``(channels, samples)`` audio
    (W channel of ambisonics, channel mean otherwise; see the module docstring). A signal with no
    channels, or with more channels than samples (a ``(samples, channels)`` array), raises ``ValueError``."""
    x = _check_layout(as_signal(signal, "signal", ndim=(1, 2))).to(torch.float32).numpy()
    if x.ndim == 1:
        return x.copy()  # never the caller's own array (a float32 one passes through unconverted)
    if x.shape[0] == 0:
        raise ValueError(f"signal has no channels (shape {x.shape}); expected (channels, samples) with at "
                         "least one channel")
    order = order_from_channels(x.shape[0])
    return x[0].copy() if order is not None and order >= 1 else x.mean(axis=0)


def _check_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged, or ``ValueError`` when a 2-D signal has more channels than samples: a
    ``(samples, channels)`` array passed the wrong way round (it would give no frames, or silence)."""
    if x.dim() == 2 and x.shape[0] > x.shape[1] > 0:
        raise ValueError(f"signal must be (channels, samples), got shape {tuple(x.shape)}, i.e. more "
                         "channels than samples; transpose a (samples, channels) array first")
    return x


def mono_at_rate(signal, sample_rate: int, rate: int) -> np.ndarray:
    """:func:`mono_downmix` of ``signal`` (at ``sample_rate`` Hz), resampled to ``rate`` Hz (soxr):
    ``(samples,)`` float32."""
    mono = mono_downmix(signal)
    if sample_rate != rate and mono.size:
        mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=rate, res_type="soxr_hq")
    return np.asarray(mono, dtype=np.float32)


def _to_vggish_rate(signal, sample_rate) -> np.ndarray:
    return mono_at_rate(signal, sample_rate, VGGISH_SAMPLE_RATE)


@functools.lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """``(FFT_SIZE // 2 + 1, 64)`` float32 HTK mel filter bank."""
    return librosa.filters.mel(sr=VGGISH_SAMPLE_RATE, n_fft=FFT_SIZE, n_mels=MEL_BANDS, fmin=MEL_FMIN,
                               fmax=MEL_FMAX, htk=True, norm=None).T.astype(np.float32)


def log_mel_spectrogram(mono_16k: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram of a 16 kHz mono signal, ``(frames, 64)`` float32.

    STFT frame ``j`` covers samples ``[160 j, 160 j + 400)`` (no centring or padding): there are
    ``1 + (samples - 400) // 160`` frames (0 for signals shorter than one frame).
    """
    x = np.asarray(mono_16k, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"mono_16k must have shape (samples,), got shape {x.shape}")
    count = 0 if x.shape[0] < STFT_WINDOW else 1 + (x.shape[0] - STFT_WINDOW) // STFT_HOP
    if count == 0:
        return np.zeros((0, MEL_BANDS), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(x, shape=(count, STFT_WINDOW),
                                             strides=(x.strides[0] * STFT_HOP, x.strides[0]))
    window = scipy.signal.get_window("hann", STFT_WINDOW, fftbins=True).astype(np.float32)
    magnitude = np.abs(np.fft.rfft(frames * window, n=FFT_SIZE, axis=1)).astype(np.float32)
    return np.log(magnitude @ _mel_filters() + LOG_OFFSET).astype(np.float32)


def log_mel_example_ends(num_frames: int, fps) -> np.ndarray:
    """Sample index (16 kHz, relative to the signal start) at which each example ends: the STFT
    frame boundary nearest to ``(k + 1) / fps``. Returns ``(num_frames,)`` int64.

    With the STFT grid of :func:`log_mel` (frame ends at ``160 j + 400 - 10480``), this is
    ``160 * round((e_k + 10080) / 160) - 10080`` for ``e_k = round((k + 1) * 16000 / fps)``.
    """
    last = _last_stft_frame(frame_sample_positions(num_frames, VGGISH_SAMPLE_RATE, fps, offset=1.0))
    return last * STFT_HOP + STFT_WINDOW - _LEAD



def _last_stft_frame(ends: np.ndarray) -> np.ndarray:
    """Index (in the padded STFT) of the frame ending nearest to each 16 kHz sample index in ``ends``."""
    return np.floor((ends + _LEAD - STFT_WINDOW) / STFT_HOP + 0.5).astype(np.int64)


def log_mel(signal, sample_rate, fps, num_frames: int | None = None, *, frames=None) -> torch.Tensor:
    """One VGGish log-mel example per video frame (see the module docstring for alignment).

    Args:
        signal: ``(samples,)`` or ``(channels, samples)`` audio (ambisonics: W channel is used).
        sample_rate: Hz (resampled to 16 kHz with soxr). fps: video frames per second.
        num_frames: number of examples ``T`` (a non-negative integer); default ``floor(duration * fps)``.
        frames: optional video frame indices (non-negative ints) to compute examples for instead of
            ``0 .. T-1``, e.g. one clip of a long video (only the span they cover is transformed; the
            values are the same as in the full result); ``num_frames`` is then ignored.

    Returns:
        ``(T, 64, 64)`` (or ``(len(frames), 64, 64)``) float32 tensor: ``[k, i, m]`` is STFT frame ``i``
        (time, oldest first) and mel band ``m`` (low to high) of the example of video frame ``k``.
    """
    check_rates(sample_rate, fps)
    x = _check_layout(as_signal(signal, "signal", ndim=(1, 2)))
    if frames is None:
        t_frames = check_num_frames(num_frames)
        if t_frames is None:
            t_frames = num_video_frames(x.shape[-1], sample_rate, fps)
        frames = np.arange(t_frames)
    frames = np.asarray(frames)
    if frames.ndim != 1 or (frames.size and (frames.dtype.kind not in "iu" or frames.min() < 0)):
        raise ValueError(f"frames must be a 1-D sequence of non-negative frame indices, got {frames!r}")
    if frames.size == 0:
        return torch.zeros(0, EXAMPLE_FRAMES, MEL_BANDS)
    mono = _to_vggish_rate(x, sample_rate)
    last = _last_stft_frame(frame_sample_positions(frames, VGGISH_SAMPLE_RATE, fps, offset=1.0))
    # One spectrogram over the span the requested examples cover (the whole signal by default).
    first = int(last.min()) - (EXAMPLE_FRAMES - 1)
    needed = int(last.max()) * STFT_HOP + STFT_WINDOW
    padded = np.zeros(max(needed, _LEAD + mono.shape[0]), dtype=np.float32)
    padded[_LEAD:_LEAD + mono.shape[0]] = mono
    spec = torch.from_numpy(log_mel_spectrogram(padded[first * STFT_HOP:needed]))
    index = torch.from_numpy(last - first)[:, None] + torch.arange(1 - EXAMPLE_FRAMES, 1)  # (T, 64)
    return spec[index]


def waveform_windows(signal, sample_rate, fps, length: int, num_frames: int | None = None) -> torch.Tensor:
    """Hann-windowed raw waveform windows centred on each video frame (SoundNet-style models).

    Window ``k`` covers samples ``[c_k - length // 2, c_k - length // 2 + length)`` around the frame
    centre ``c_k = round((k + 0.5) * sample_rate / fps)``, zero-padded outside the signal, multiplied
    by a symmetric Hann window. No resampling: pass audio at the model's rate (e.g. 22050 Hz for
    SoundNet; :func:`sphsal.audio.load_audio` resamples on load).

    Args:
        signal: ``(samples,)`` or ``(channels, samples)`` (downmixed by :func:`mono_downmix`).
        length: window length in samples (AViNet: 70560).
        num_frames: number of windows ``T`` (a non-negative integer); default ``floor(duration * fps)``.

    Returns:
        ``(T, length)`` float32 tensor, ``T = floor(duration * fps)`` unless ``num_frames`` is given.
    """
    check_rates(sample_rate, fps)
    length = check_integer(length, "length", whole_floats=True, unit="samples")
    t_frames = check_num_frames(num_frames)
    mono = torch.from_numpy(mono_downmix(signal))
    if t_frames is None:
        t_frames = num_video_frames(mono.shape[0], sample_rate, fps)
    starts = frame_sample_positions(t_frames, sample_rate, fps, offset=0.5) - length // 2
    if t_frames == 0:
        return torch.zeros(0, length)
    pad_left = max(0, int(-starts.min()))
    pad_right = max(0, int(starts.max()) + length - mono.shape[0])
    padded = torch.nn.functional.pad(mono, (pad_left, pad_right))
    index = torch.from_numpy(starts + pad_left)[:, None] + torch.arange(length)
    window = torch.from_numpy(scipy.signal.get_window("hann", length, fftbins=False).astype(np.float32))
    return padded[index] * window
